//! What the fuzz targets in `fuzz/` need that is not the engine's API:
//! parsers that are private to their module, and the parallel slow paths
//! the fast paths are checked against. Hidden from the documentation; no
//! engine code calls it.

use crate::wire;

pub use crate::app::http::{parse_pieces as http_parse_pieces, ParsedReply};

/// The metrics server's answer to the request bytes read so far from a
/// client (`local`: on a loopback address): status and the whole
/// response, or `None` while the head is incomplete.
pub fn metrics_answer(req: &[u8], local: bool, pages: &mut dyn crate::metrics::Pages) -> Option<(u16, Vec<u8>)> {
    crate::metrics::server::answer(req, local, pages)
}

/// The layer-by-layer frame parse that the IPv4 fast path of
/// [`wire::parse_tcp_frame`] must agree with.
pub fn parse_frame_general(frame: &[u8], verify_checksums: bool) -> wire::Result<wire::Frame<'_>> {
    wire::frame::parse_any(frame, verify_checksums)
}

/// The option walk that the layouts recognised whole by
/// [`wire::TcpOptions::parse`] must agree with.
pub fn parse_options_general(opts: &[u8]) -> wire::Result<wire::TcpOptions> {
    wire::TcpOptions::parse_any(opts)
}

//! Path MTU discovery (RFC 1191, RFC 8201 for IPv6) from ICMP "too big"
//! errors, with the checks of RFC 5927 §4.1 against blind attacks: the
//! error must name an existing connection, and the sequence number of the
//! segment it quotes must be in flight (SND.UNA <= SEG.SEQ < SND.MAX).
//! The XDP program passes such errors for owned (address, port) pairs to
//! the engine; everything else ICMP goes to the kernel.
//!
//! The connection's MSS only ever goes down here (`--mtu` is the ceiling,
//! applied at the handshake), and never below what the floors allow: 552
//! bytes of IPv4 MTU (Linux's `min_pmtu`; RFC 1191 §3 allows down to 68,
//! which would let a forged error shrink segments to nothing) and 1280 for
//! IPv6 (RFC 8201 §4). The segments in flight were too big for the path
//! and are lost: they are resent at once at the new size (RFC 1191 §6.3,
//! Linux's `tcp_simple_retransmit`), which is not a congestion signal, so
//! cwnd and ssthresh stay. Raising the MSS again later (RFC 1191 §6.3's
//! aging) is not done: a connection keeps the lower MSS.

use super::Endpoint;
use crate::tcp::tcb::flag;
use crate::wire::icmp::TooBig;

/// Lowest path MTUs believed: IPv4 (Linux's `ip_rt_min_pmtu`), IPv6 (RFC 8201 §4).
pub const MIN_PMTU_V4: u32 = 552;
pub const MIN_PMTU_V6: u32 = 1280;

impl Endpoint {
    /// An ICMP error reported a smaller path MTU for one of our segments.
    pub(super) fn on_too_big(&mut self, tb: &TooBig) {
        self.stats.icmp_too_big_received += 1;
        let Some(h) = self.conns.lookup(&tb.tuple) else {
            self.stats.icmp_too_big_ignored += 1;
            return;
        };
        let Some(tcb) = self.conns.get_mut(h).filter(|t| !t.has(flag::ZOMBIE)) else {
            self.stats.icmp_too_big_ignored += 1;
            return;
        };
        // RFC 5927 §4.1: only about a segment we sent and that is not yet
        // acknowledged; a guess from off the path rarely lands there.
        if !(tcb.snd_una <= tb.seq && tb.seq < tcb.snd_max) {
            self.stats.icmp_too_big_ignored += 1;
            return;
        }
        let v6 = tcb.has(flag::V6);
        let mtu = tb.mtu.max(if v6 { MIN_PMTU_V6 } else { MIN_PMTU_V4 });
        // IP and TCP headers, and the timestamp option every segment carries.
        let headers = if v6 { 40 } else { 20 } + 20 + if tcb.has(flag::TS) { 12 } else { 0 };
        let mss = mtu.saturating_sub(headers);
        if mss >= tcb.mss as u32 {
            // No news (an MTU of 0 from an RFC 1191 §5 old router lands
            // here too, at the floor): nothing to lower.
            self.stats.icmp_too_big_ignored += 1;
            return;
        }
        tcb.mss = mss as u16;
        tcb.pmtu_resend();
        self.stats.pmtu_mss_lowered += 1;
        self.mark_dirty(h);
    }
}

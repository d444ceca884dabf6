//! The HTTP responder's request parser (`app::http`) on raw request bytes,
//! fed as the responder feeds it from the receive buffer.
//!
//! Checked on every input: no panic; consumed-byte accounting (never more
//! than offered, never short without a reply); the replies do not depend on
//! how the bytes were split across segments (whole, one byte at a time, in
//! 7-byte and 1460-byte pieces), since a request may be cut anywhere; each
//! reply's response is well-formed, with a Content-Length equal to its body
//! (HEAD: no body), and a closing reply is the last.
#![no_main]

use floodgate::fuzzing::{http_parse_pieces, ParsedReply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The default head limit, and a small one so 431 is reachable.
    for max_head in [8192, 64] {
        let whole = http_parse_pieces(data, data.len().max(1), max_head);
        for piece in [1, 7, 1460] {
            assert_eq!(http_parse_pieces(data, piece, max_head), whole, "replies depend on the split ({piece} bytes)");
        }
        let mut last_end = 0;
        for (i, r) in whole.iter().enumerate() {
            assert!(r.end > last_end && r.end <= data.len(), "reply {i} at {} after {last_end}", r.end);
            last_end = r.end;
            assert!(!r.closes || i == whole.len() - 1, "a reply after the closing one");
            check_response(r);
        }
    }
});

fn check_response(r: &ParsedReply) {
    let text = &r.response;
    let head_end = text.windows(4).position(|w| w == b"\r\n\r\n").expect("response head ends") + 4;
    let head = std::str::from_utf8(&text[..head_end]).expect("response head is ASCII");
    assert!(head.starts_with("HTTP/1.1 "), "{head}");
    let cl: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .expect("Content-Length is a number");
    let body = text.len() - head_end;
    if r.reply.starts_with("Head(") {
        assert_eq!(body, 0, "HEAD with a body");
    } else {
        assert_eq!(body, cl, "Content-Length {cl} but {body} bytes");
    }
    assert_eq!(r.closes, head.contains("Connection: close\r\n"), "{head}");
}

//! The metrics server's request handling (`metrics::server`) on raw bytes,
//! read as the server reads a client: pieces of up to 2048 bytes appended
//! until the head ends or the request passes `MAX_REQUEST`.
//!
//! Checked on every input: no panic; an answer exactly when the head is
//! complete or too long; the response well-formed (status line, one
//! Content-Length equal to the body, HEAD without body, `Connection:
//! close`); 431 exactly for a request longer than the limit, 200 only
//! for GET or HEAD of `/` or `/metrics`, or an admin page (`/backends`
//! and below) read, or changed from a loopback client; 403 exactly for a
//! change from elsewhere. The first byte of the input says whether the
//! client is on loopback.
#![no_main]

use floodgate::fuzzing::metrics_answer;
use floodgate::metrics::Pages;
use libfuzzer_sys::fuzz_target;

const MAX_REQUEST: usize = 8192;
const BODY: &str = "floodgate_up 1\n";

/// Metrics, and an admin interface that has every page.
struct Both;

impl Pages for Both {
    fn metrics(&mut self) -> String {
        BODY.to_string()
    }
    fn admin(&mut self, _method: &str, _path: &str, _query: &str) -> Option<(u16, String)> {
        Some((200, "admin\n".to_string()))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else { return };
    let local = first & 1 == 1;
    let mut req = Vec::new();
    let mut answer = None;
    for piece in data.chunks(2048) {
        req.extend_from_slice(piece);
        answer = metrics_answer(&req, local, &mut Both);
        if answer.is_some() {
            break;
        }
    }
    let head_done = req.windows(4).any(|w| w == b"\r\n\r\n") || req.windows(2).any(|w| w == b"\n\n");
    let Some((status, resp)) = answer else {
        assert!(!head_done && req.len() <= MAX_REQUEST, "no answer to a complete request");
        return;
    };
    assert!(head_done || req.len() > MAX_REQUEST, "answered an incomplete head");
    assert_eq!(status == 431, req.len() > MAX_REQUEST);
    let head_end = resp.windows(4).position(|w| w == b"\r\n\r\n").expect("response head ends") + 4;
    let head = std::str::from_utf8(&resp[..head_end]).expect("response head is ASCII");
    assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"));
    let cls: Vec<usize> =
        head.lines().filter_map(|l| l.strip_prefix("Content-Length: ")).map(|v| v.parse().unwrap()).collect();
    assert_eq!(cls.len(), 1, "{head}");
    let line = String::from_utf8_lossy(req.split(|&b| b == b'\n').next().unwrap_or_default()).into_owned();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let is_head = method == "HEAD" && status != 431;
    let body = resp.len() - head_end;
    if is_head {
        assert_eq!(body, 0, "HEAD answered with a body");
    } else {
        assert_eq!(body, cls[0]);
    }
    let path = target.split('?').next().unwrap_or("");
    let admin = path == "/backends" || path.starts_with("/backends/");
    let reads = matches!(method, "GET" | "HEAD");
    if status == 200 {
        assert!(reads || (admin && local), "200 to {line:?} (local: {local})");
        assert!(path == "/" || path == "/metrics" || admin, "200 for {path:?}");
        if path == "/metrics" && !is_head {
            assert!(resp.ends_with(BODY.as_bytes()));
        }
    }
    if status != 431 {
        assert_eq!(status == 403, admin && !reads && !local, "{line:?} (local: {local})");
    }
});

//! Active health checks: every `interval` each shard opens a TCP
//! connection to each backend from its own source tuples; the check passes
//! when the backend completes the handshake within `timeout` (then
//! floodgate resets the connection at once, so no TIME-WAIT is spent on
//! it), and fails on an RST or silence. HAProxy's `check inter rise fall`
//! semantics: a backend that is up goes down after `fall` failures in a
//! row, one that is down comes back after `rise` passes in a row; a backend
//! starts up (as HAProxy's servers do), so a dead one is out within
//! `interval x fall` of the start.
//!
//! With an HTTP probe ([`Probe::Http`]) the check writes a `GET` once
//! connected (after a PROXY v2 `LOCAL` header where the pool sends PROXY
//! headers) and passes when the status line shows the expected status, or
//! any 2xx or 3xx (HAProxy's `option httpchk` default); anything else, a
//! close before the status line, or the timeout fails it.
//!
//! A backend that is down takes no new client (as an ejected or drained
//! one: see `balance.rs`); its connections go on. The state machine is
//! here; the connections are the proxy's (`mod.rs`).

use crate::table::Handle;
use crate::time::{Duration, Instant};

/// How a pool checks its backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub interval: Duration,
    pub timeout: Duration,
    /// Passes in a row that bring a down backend back.
    pub rise: u16,
    /// Failures in a row that take an up backend down.
    pub fall: u16,
}

/// Defaults: a check a second, each given a second; down after 3 failures
/// (so within 3 s), up after 2 passes.
pub const CHECK: Check = Check { interval: Duration::from_secs(1), timeout: Duration::from_secs(1), rise: 2, fall: 3 };

/// What a check asks of the backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Probe {
    /// The TCP handshake alone.
    #[default]
    Connect,
    /// After the handshake, `GET path`; the answer's status must be
    /// `expect`, or 2xx/3xx when `None`.
    Http { path: std::sync::Arc<str>, expect: Option<u16> },
}

/// The HTTP/1.1 `GET path` a check sends to `host` (its address), closed
/// after the answer. Built once per backend, at start.
pub fn http_request(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: floodgate-check\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// The verdict on the first bytes of an HTTP answer: `None` while the
/// status line is incomplete (fewer than 12 bytes), then whether it passes.
pub fn http_verdict(head: &[u8], expect: Option<u16>) -> Option<bool> {
    if head.len() < 12 {
        return None;
    }
    let ok_version = head.starts_with(b"HTTP/1.") && head[8] == b' ';
    let status = std::str::from_utf8(&head[9..12]).ok().and_then(|s| s.parse::<u16>().ok());
    Some(match (ok_version, status, expect) {
        (true, Some(s), Some(want)) => s == want,
        (true, Some(s), None) => (200..400).contains(&s),
        _ => false,
    })
}

/// One backend's checks on one shard.
#[derive(Clone, Copy, Debug)]
pub struct CheckState {
    pub up: bool,
    passes: u16,
    failures: u16,
    /// The check connection under way.
    pub in_flight: Option<Handle>,
    /// When the next check starts.
    pub due: Instant,
}

impl CheckState {
    /// Up, first check at `due`.
    pub fn new(due: Instant) -> CheckState {
        CheckState { up: true, passes: 0, failures: 0, in_flight: None, due }
    }

    /// A check's result; `Some(up)` when the backend's state flips.
    pub fn record(&mut self, passed: bool, c: &Check) -> Option<bool> {
        self.in_flight = None;
        if passed {
            self.failures = 0;
            self.passes = self.passes.saturating_add(1);
            if !self.up && self.passes >= c.rise {
                self.up = true;
                return Some(true);
            }
        } else {
            self.passes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.up && self.failures >= c.fall {
                self.up = false;
                return Some(false);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_are_judged_by_their_status_line() {
        assert_eq!(http_verdict(b"HTTP/1.1 20", None), None, "incomplete");
        assert_eq!(http_verdict(b"HTTP/1.1 200 OK\r\n", None), Some(true));
        assert_eq!(http_verdict(b"HTTP/1.0 302 Found\r\n", None), Some(true));
        assert_eq!(http_verdict(b"HTTP/1.1 503 Service Unavailable\r\n", None), Some(false));
        assert_eq!(http_verdict(b"HTTP/1.1 404 Not Found\r\n", Some(404)), Some(true));
        assert_eq!(http_verdict(b"HTTP/1.1 200 OK\r\n", Some(204)), Some(false));
        assert_eq!(http_verdict(b"SSH-2.0-OpenSSH_9.2\r\n", None), Some(false));
        assert_eq!(http_verdict(b"HTTP/1.1 2x0 OK\r\n", None), Some(false));
        let request = http_request("/health", "198.18.2.10:80");
        assert!(request.starts_with(b"GET /health HTTP/1.1\r\nHost: 198.18.2.10:80\r\n"));
        assert!(request.ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn down_after_fall_failures_up_after_rise_passes() {
        let c = Check { rise: 2, fall: 3, ..CHECK };
        let mut s = CheckState::new(Instant::from_secs(0));
        assert!(s.up, "a backend starts up");
        assert_eq!([false, false].map(|r| s.record(r, &c)), [None, None]);
        assert_eq!(s.record(true, &c), None, "a pass between failures starts the count again");
        assert_eq!([false, false].map(|r| s.record(r, &c)), [None, None]);
        assert_eq!(s.record(false, &c), Some(false), "the third failure in a row");
        assert_eq!(s.record(false, &c), None, "already down");
        assert_eq!(s.record(true, &c), None);
        assert_eq!(s.record(false, &c), None);
        assert_eq!(s.record(true, &c), None);
        assert_eq!(s.record(true, &c), Some(true), "two passes in a row");
        assert!(s.up);
    }
}

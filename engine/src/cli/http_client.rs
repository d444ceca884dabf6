//! The command-line tools' HTTP client (`floodgate ctl`, `floodgate top`):
//! one HTTP/1.1 request (RFC 9112) to the metrics listener of a running
//! `floodgate serve`, `Connection: close`, bounded in time and in size. A
//! status other than 200 is an error carrying the server's reason.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long the connect, and then each read or write, may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read (a busy engine's /metrics is some hundred kB).
const MAX_ANSWER: u64 = 16 << 20;

/// Sends `method target` to `addr`; the body of a 200 answer, or the error to print.
pub fn request(addr: SocketAddr, method: &str, target: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)
        .map_err(|e| format!("cannot reach floodgate at {addr}: {e} (is it serving with --metrics {addr}?)"))?;
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
    let req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("{addr}: {e}"))?;
    let mut resp = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut resp).map_err(|e| format!("{addr}: no answer: {e}"))?;
    let resp = String::from_utf8_lossy(&resp);
    let (head, body) = resp.split_once("\r\n\r\n").ok_or_else(|| format!("{addr}: not an HTTP answer"))?;
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(200) => Ok(body.to_string()),
        Some(code) => Err(format!("{method} {target}: {code}: {}", body.trim_end())),
        None => Err(format!("{addr}: not an HTTP answer")),
    }
}

/// `GET target`.
pub fn get(addr: SocketAddr, target: &str) -> Result<String, String> {
    request(addr, "GET", target)
}

/// A one-shot HTTP server for tests: answers each of `answers` (status
/// line, body) to one connection in turn, and hands back the requests it read.
#[cfg(test)]
pub(crate) fn serve_canned(answers: Vec<(&'static str, String)>) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut reqs = Vec::new();
        for (status, body) in answers {
            let (mut c, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0);
                req.extend_from_slice(&buf[..n]);
            }
            let r = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            c.write_all(r.as_bytes()).unwrap();
            reqs.push(String::from_utf8(req).unwrap());
        }
        reqs
    });
    (addr, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a one-shot server: the request as sent, 200's body returned,
    /// any other status an error carrying the server's reason.
    #[test]
    fn answers_and_refusals() {
        let (addr, t) = serve_canned(vec![("200 OK", "a\nb\n".into()), ("404 Not Found", "no such page\n".into())]);
        assert_eq!(get(addr, "/metrics").unwrap(), "a\nb\n");
        let e = request(addr, "POST", "/x").unwrap_err();
        assert!(e.contains("404") && e.contains("no such page"), "{e}");
        let reqs = t.join().unwrap();
        assert!(reqs[0].starts_with("GET /metrics HTTP/1.1\r\n"), "{}", reqs[0]);
        assert!(reqs[1].starts_with("POST /x HTTP/1.1\r\n") && reqs[1].contains("Connection: close\r\n"));
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(get(gone, "/metrics").unwrap_err().contains("cannot reach"));
    }
}

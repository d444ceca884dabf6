//! A minimal HTTP/1.1 server for `GET /metrics` on mio: non-blocking, one
//! response per connection (`Connection: close`), bounded request size,
//! bounded number of clients, idle clients dropped. Runs in the control
//! thread's poll loop, beside the signal pipe.
//!
//! It also carries the admin interface ([`Pages::admin`], `/backends...`):
//! anyone who can reach the listener may read it, but a request that
//! changes something (any method but GET and HEAD) is taken only from a
//! loopback address, and refused with 403 from anywhere else, whatever
//! address `--metrics` binds.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

/// Largest request head read; more gets 431 and a close.
pub const MAX_REQUEST: usize = 8192;
/// Clients served at once; more are accepted and closed at once.
pub const MAX_CLIENTS: usize = 256;
/// A client that has not finished in this long is dropped.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server answers besides its fixed pages.
pub trait Pages {
    /// The metrics text (`/metrics`).
    fn metrics(&mut self) -> String;
    /// The admin interface: the status and text for `method` on `path`
    /// (with `query`, the part after `?`), `None` when no such page exists.
    fn admin(&mut self, _method: &str, _path: &str, _query: &str) -> Option<(u16, String)> {
        None
    }
}

/// A closure is a server with metrics only.
impl<F: FnMut() -> String> Pages for F {
    fn metrics(&mut self) -> String {
        self()
    }
}

/// The admin interface's paths: `/backends` and below.
pub const ADMIN_PREFIX: &str = "/backends";

struct Client {
    stream: TcpStream,
    /// The client connected from a loopback address (may change settings).
    local: bool,
    req: Vec<u8>,
    resp: Vec<u8>,
    written: usize,
    since: Instant,
}

/// The listener and its clients, with tokens from `first_token` up.
pub struct MetricsServer {
    listener: TcpListener,
    listener_token: Token,
    clients: HashMap<Token, Client>,
    next: usize,
    first_client: usize,
    pub scrapes: u64,
    pub rejected: u64,
}

enum Step {
    Wait,
    Done,
}

impl MetricsServer {
    /// Binds `addr` and registers the listener as `token`; clients get
    /// tokens above it.
    pub fn bind(addr: SocketAddr, registry: &Registry, token: Token) -> io::Result<MetricsServer> {
        let mut listener = TcpListener::bind(addr)?;
        registry.register(&mut listener, token, Interest::READABLE)?;
        Ok(MetricsServer {
            listener,
            listener_token: token,
            clients: HashMap::new(),
            next: token.0 + 1,
            first_client: token.0 + 1,
            scrapes: 0,
            rejected: 0,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `token` is this server's.
    pub fn owns(&self, token: Token) -> bool {
        token == self.listener_token || self.clients.contains_key(&token)
    }

    /// Handles readiness of `token`; `body` renders the pages.
    pub fn ready(&mut self, registry: &Registry, token: Token, body: &mut dyn Pages) {
        if token == self.listener_token {
            return self.accept(registry);
        }
        let done = match self.clients.get_mut(&token) {
            Some(c) => matches!(Self::drive(c, body, &mut self.scrapes), Ok(Step::Done) | Err(_)),
            None => false,
        };
        if done {
            if let Some(mut c) = self.clients.remove(&token) {
                let _ = registry.deregister(&mut c.stream);
            }
        }
    }

    /// Drops clients that took too long.
    pub fn expire(&mut self, registry: &Registry) {
        let now = Instant::now();
        let stale: Vec<Token> =
            self.clients.iter().filter(|(_, c)| now - c.since > CLIENT_TIMEOUT).map(|(t, _)| *t).collect();
        for t in stale {
            if let Some(mut c) = self.clients.remove(&t) {
                let _ = registry.deregister(&mut c.stream);
            }
        }
    }

    fn accept(&mut self, registry: &Registry) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.clients.len() >= MAX_CLIENTS {
                        self.rejected += 1;
                        continue; // dropped: closed
                    }
                    let token = self.alloc_token();
                    if registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_ok() {
                        self.clients.insert(
                            token,
                            Client {
                                stream,
                                local: peer.ip().is_loopback(),
                                req: Vec::new(),
                                resp: Vec::new(),
                                written: 0,
                                since: Instant::now(),
                            },
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("metrics: accept: {e}");
                    return;
                }
            }
        }
    }

    fn alloc_token(&mut self) -> Token {
        loop {
            let t = Token(self.next);
            self.next = if self.next == usize::MAX { self.first_client } else { self.next + 1 };
            if !self.clients.contains_key(&t) {
                return t;
            }
        }
    }

    /// Reads the request (edge-triggered: until WouldBlock), answers, writes.
    fn drive(c: &mut Client, body: &mut dyn Pages, scrapes: &mut u64) -> io::Result<Step> {
        if c.resp.is_empty() {
            let mut buf = [0u8; 2048];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return Ok(Step::Done),
                    Ok(n) => {
                        c.req.extend_from_slice(&buf[..n]);
                        if c.req.len() > MAX_REQUEST || find_head_end(&c.req).is_some() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            match answer(&c.req, c.local, body) {
                Some((status, resp)) => {
                    if status == 200 {
                        *scrapes += 1;
                    }
                    c.resp = resp;
                }
                None => return Ok(Step::Wait),
            }
        }
        while c.written < c.resp.len() {
            match c.stream.write(&c.resp[c.written..]) {
                Ok(0) => return Ok(Step::Done),
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Wait),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        Ok(Step::Done)
    }
}

/// The status and the whole response to the request bytes read so far, or
/// `None` while the head is incomplete (no empty line yet, within
/// [`MAX_REQUEST`]); `local`: from a loopback address. Pure, so the fuzz
/// target `metrics_request` drives it.
pub(crate) fn answer(req: &[u8], local: bool, body: &mut dyn Pages) -> Option<(u16, Vec<u8>)> {
    if req.len() > MAX_REQUEST {
        return Some((431, response(431, "text/plain", b"request too large\n", false)));
    }
    find_head_end(req)?;
    let (status, ctype, payload, head) = route(req, local, body);
    Some((status, response(status, ctype, payload.as_bytes(), head)))
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| b.windows(2).position(|w| w == b"\n\n"))
}

/// (status, content type, body, HEAD?)
fn route(req: &[u8], local: bool, body: &mut dyn Pages) -> (u16, &'static str, String, bool) {
    let line = req.split(|&b| b == b'\n').next().unwrap_or(b"");
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let reads = matches!(method, "GET" | "HEAD");
    if path == ADMIN_PREFIX || path.strip_prefix(ADMIN_PREFIX).is_some_and(|r| r.starts_with('/')) {
        const TEXT: &str = "text/plain; charset=utf-8";
        if !reads && !local {
            return (403, TEXT, "admin changes are taken from loopback addresses only\n".into(), false);
        }
        return match body.admin(method, path, query) {
            Some((status, text)) => (status, TEXT, text, method == "HEAD"),
            None if reads => (404, "text/plain", format!("not found: {path}\n"), method == "HEAD"),
            None => (405, "text/plain", "method not allowed\n".into(), false),
        };
    }
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            (200, "text/plain; version=0.0.4; charset=utf-8", body.metrics(), method == "HEAD")
        }
        ("GET" | "HEAD", "/") => {
            (200, "text/plain; charset=utf-8", "floodgate: metrics at /metrics\n".into(), method == "HEAD")
        }
        ("GET" | "HEAD", _) => (404, "text/plain", "not found: try /metrics\n".into(), method == "HEAD"),
        _ => (405, "text/plain", "method not allowed\n".into(), false),
    }
}

fn response(status: u16, ctype: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let mut r = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        r.extend_from_slice(body);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};
    use std::io::{Read, Write};

    /// Serves on loopback in a thread while clients scrape it.
    #[test]
    fn serves_metrics_404_and_bounds_requests() {
        let mut poll = Poll::new().unwrap();
        let mut srv = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), poll.registry(), Token(10)).unwrap();
        let addr = srv.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || {
            let mut events = Events::with_capacity(64);
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                poll.poll(&mut events, Some(Duration::from_millis(20))).unwrap();
                for e in events.iter() {
                    srv.ready(poll.registry(), e.token(), &mut || "floodgate_up 1\n".to_string());
                }
                srv.expire(poll.registry());
            }
            srv.scrapes
        });
        let get = move |req: &[u8]| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(req).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        };
        let r = get(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nfloodgate_up 1\n"), "{r}");
        assert!(r.contains("version=0.0.4"));
        assert!(get(b"GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        let big = vec![b'a'; MAX_REQUEST + 100];
        assert!(get(&big).starts_with("HTTP/1.1 431"));
        // Many scrapers at once.
        let hs: Vec<_> = (0..20).map(|_| std::thread::spawn(move || get(b"GET /metrics HTTP/1.0\r\n\r\n"))).collect();
        for h in hs {
            assert!(h.join().unwrap().contains("floodgate_up 1"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(t.join().unwrap(), 21);
    }

    /// The admin pages: read from anywhere, changed from loopback only.
    #[test]
    fn admin_changes_only_from_loopback() {
        struct Admin(u32);
        impl Pages for Admin {
            fn metrics(&mut self) -> String {
                String::new()
            }
            fn admin(&mut self, method: &str, path: &str, query: &str) -> Option<(u16, String)> {
                self.0 += 1;
                (path != "/backends/none").then(|| (200, format!("{method} {path} {query}\n")))
            }
        }
        let mut a = Admin(0);
        let status = |a: &mut Admin, req: &[u8], local: bool| answer(req, local, a).unwrap().0;
        assert_eq!(status(&mut a, b"GET /backends HTTP/1.1\r\n\r\n", false), 200);
        assert_eq!(status(&mut a, b"POST /backends/drain?backend=1.2.3.4:80 HTTP/1.1\r\n\r\n", false), 403);
        assert_eq!(a.0, 1, "a refused change never reaches the admin interface");
        let (st, resp) = answer(b"POST /backends/drain?backend=1.2.3.4:80 HTTP/1.1\r\n\r\n", true, &mut a).unwrap();
        assert_eq!(st, 200);
        assert!(resp.ends_with(b"POST /backends/drain backend=1.2.3.4:80\n"));
        assert_eq!(status(&mut a, b"GET /backends/none HTTP/1.1\r\n\r\n", true), 404);
        assert_eq!(status(&mut a, b"PUT /backends/none HTTP/1.1\r\n\r\n", true), 405);
        assert_eq!(status(&mut a, b"GET /backendsx HTTP/1.1\r\n\r\n", true), 404, "not an admin path");
        assert_eq!(a.0, 4);
    }
}

//! `http`: an HTTP/1.1 responder for load generators (wrk, ab, h2load --h1).
//!
//! Every GET is answered `200 OK` with one configured body, every HEAD with
//! the same header block and no body (RFC 9110 §9.3.1, §9.3.2). All
//! responses are built once at construction; a request costs a scan of its
//! bytes and one `write`.
//!
//! Requests are parsed in place in the receive buffer, one byte at a time by
//! a small per-connection state machine, so a request split anywhere (across
//! segments, or across the wrap of the receive ring) needs no copy and no
//! buffer. What is followed of RFC 9112:
//! - §2.2: empty lines before a request line are ignored; a bare LF ends a
//!   line; a bare CR, or a control character in a field value (RFC 9110
//!   §5.5), is rejected with 400.
//! - §3: `method SP request-target SP HTTP-version CRLF`; the method is
//!   case-sensitive (RFC 9110 §9.1). §2.3: `HTTP/1.0` and `HTTP/1.1`; a higher
//!   minor version is served as 1.1, another major version gets 505.
//! - §3.2: an HTTP/1.1 request without exactly one `Host` gets 400 (the
//!   value itself is not checked).
//! - §5.1: whitespace between a field name and its colon gets 400; §5.2: an
//!   obsolete line folding gets 400.
//! - §6.3: a `Content-Length` body is read and discarded before the request
//!   is answered; an invalid Content-Length, or several that disagree, get
//!   400. `Transfer-Encoding` gets 501 (§6.1: chunked bodies are not decoded
//!   here) and a close, which also settles §6.3's request-smuggling rule.
//! - §9.3: HTTP/1.1 is persistent unless `Connection: close` (a
//!   case-insensitive token list, RFC 9110 §7.6.1); HTTP/1.0 only with
//!   `Connection: keep-alive`, which the response repeats (Appendix C.2.2).
//!   §9.3.2: pipelined requests are answered in order.
//! - §9.6: the last response carries `Connection: close` and the server then
//!   closes (FIN after the response), so the server, not the client, holds
//!   the TIME-WAIT. Bytes still unread at that point are discarded (counted);
//!   bytes that arrive after the close make the engine reset the connection,
//!   as Linux does after `close()`.
//!
//! Errors are answered as soon as they are seen, each with a short text
//! body and `Connection: close`, then the connection is closed: 400 for
//! malformed requests, 405 with `Allow: GET, HEAD` (RFC 9110 §15.5.6) for
//! any other method, 431 (RFC 6585 §5) when the request line and header
//! block exceed `max_header_bytes`, 501 for Transfer-Encoding, 505 for
//! HTTP versions other than 1.x. No `Date` header: the engine only has a
//! monotonic clock, and RFC 9110 §6.6.1 lets an origin without a reliable
//! clock omit it.
//!
//! Slow and idle clients (slowloris) are bounded by two deadlines, armed
//! through [`Endpoint::set_deadline`] (one timer in the connection's timing
//! wheel entry, no scan):
//! - `header_timeout` (default 20 s): from the accept, or from the first
//!   byte of a later request, to the complete request (head, and the
//!   Content-Length body the responder skips). It is not pushed back by
//!   bytes arriving, so one byte every few seconds does not keep a
//!   connection. At the deadline a client that has sent part of a request
//!   gets `408 Request Timeout` with `Connection: close` (RFC 9110 §15.5.9,
//!   as HAProxy and Apache answer), then FIN; a client that has sent nothing
//!   at all is closed with a bare FIN, as nginx does, since it may be a
//!   browser's speculative preconnect that a 408 would only confuse.
//! - `keepalive_timeout` (default 75 s, nginx's keepalive_timeout): how
//!   long a persistent connection may sit idle between requests; then a
//!   graceful close (FIN). The same bound applies to a response that makes
//!   no progress for that long (a client that does not read: the window
//!   stays closed and TCP's persist probes are answered forever); that one
//!   is reset (RST), since its bytes can no longer be delivered.
//!
//! Unread bytes are discarded before each close, so the close is a FIN;
//! bytes that arrive after it get an RST from the engine (CONFORMANCE
//! item 21). Each ending is counted (`header_timeouts`,
//! `keepalive_timeouts`, `send_timeouts`).
//!
//! Backpressure: a response that does not fit the send buffer is written in
//! parts as ACKs free space (`Writable`); until it is complete no further
//! request is read, so the receive window closes on a client that pipelines
//! faster than it reads. A response is never dropped or truncated.

use super::App;
use crate::counters::counters;
use crate::table::Handle;
use crate::tcp::{CloseReason, Endpoint, Event};
use crate::time::{Duration, Instant};

/// What the responder serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// The body of every `200 OK` (`Content-Type: text/plain`).
    pub body: Vec<u8>,
    /// Bytes allowed for a request line plus its header block (and the
    /// empty lines before it); beyond that the answer is 431 and a close.
    pub max_header_bytes: usize,
    /// The `Server` header's value; empty leaves the header out. Control
    /// characters are removed, so configuration cannot inject headers.
    pub server_name: String,
    /// Time allowed from the start of a request to its end (`None`: no limit).
    pub header_timeout: Option<Duration>,
    /// Time a persistent connection may wait idle for the next request, and
    /// a response may make no progress (`None`: no limit).
    pub keepalive_timeout: Option<Duration>,
}

/// Defaults of the HTTP deadlines, for a front end facing the internet:
/// between HAProxy's recommended `timeout http-request 10s` and nginx's
/// `client_header_timeout 60s`; nginx's `keepalive_timeout 75s`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body: b"Hello, World!".to_vec(),
            max_header_bytes: 8192,
            server_name: "floodgate".into(),
            header_timeout: Some(HEADER_TIMEOUT),
            keepalive_timeout: Some(KEEPALIVE_TIMEOUT),
        }
    }
}

counters! {
    /// What the HTTP responder of one shard has seen and done.
    pub struct HttpStats {
        /// Connections accepted.
        connections_accepted,
        /// Connections that ended with FIN both ways.
        connections_closed,
        /// Connections that ended otherwise (reset, timed out).
        connections_aborted,
        /// GET requests answered with 200.
        requests_get,
        /// HEAD requests answered with 200 (headers only).
        requests_head,
        /// Responses that ended the connection because the client asked
        /// (`Connection: close`, or HTTP/1.0 without keep-alive).
        responses_close,
        /// Malformed requests answered with 400.
        bad_request,
        /// Requests with a method other than GET or HEAD, answered with 405.
        method_not_allowed,
        /// Request heads larger than max_header_bytes, answered with 431.
        header_too_large,
        /// Requests with Transfer-Encoding, answered with 501.
        transfer_encoding_refused,
        /// Requests with an HTTP major version other than 1, answered with 505.
        version_not_supported,
        /// Request body bytes (Content-Length) read and discarded.
        body_bytes_skipped,
        /// Bytes discarded unread because the connection was closing.
        bytes_discarded,
        /// Times a response did not fit the send buffer and waited for ACKs.
        responses_blocked,
        /// Writes refused by the endpoint (connection no longer sending).
        write_errors,
        /// Connections whose peer closed in the middle of a request.
        incomplete_at_peer_close,
        /// Connections that ended with a response not completely written.
        responses_lost,
        /// Events for a connection the responder does not know (stale or out of range).
        stale_events,
        /// Connections closed because a request was not complete within
        /// header_timeout (408 when part of it had come, else a bare FIN).
        header_timeouts,
        /// Persistent connections closed (FIN) after keepalive_timeout idle.
        keepalive_timeouts,
        /// Connections reset because a response made no progress for keepalive_timeout.
        send_timeouts,
    }
}

/// What to send in answer to a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Reply {
    #[default]
    None,
    Get(Persist),
    Head(Persist),
    BadRequest,
    MethodNotAllowed,
    HeaderTooLarge,
    NotImplemented,
    VersionNotSupported,
    RequestTimeout,
}

impl Reply {
    /// Whether the connection closes once this reply is written.
    fn closes(self) -> bool {
        match self {
            Reply::None => false,
            Reply::Get(p) | Reply::Head(p) => p == Persist::Close,
            _ => true,
        }
    }
}

/// Whether the connection persists after a 200, and how the response says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persist {
    /// HTTP/1.1 default: no `Connection` header.
    KeepAlive = 0,
    /// HTTP/1.0 asking for keep-alive: `Connection: keep-alive`.
    KeepAlive10 = 1,
    /// `Connection: close`, then close.
    Close = 2,
}

/// Which deadline the connection has armed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Wait {
    #[default]
    None,
    /// For the request being received (header_timeout).
    Head,
    /// Idle between requests (keepalive_timeout).
    Idle,
    /// For a blocked response to make progress (keepalive_timeout).
    Send,
}

/// Where the parser is in the current request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    /// Before a request line (empty lines are skipped).
    #[default]
    LineStart,
    Method,
    Target,
    Version,
    /// After the version, expecting the line end.
    VersionEnd,
    /// At the start of a header line, or of the empty line ending the head.
    HeaderStart,
    HeaderName,
    HeaderValue,
    /// Skipping `body_left` bytes of request body.
    Body,
    /// The connection is closing: everything is discarded.
    Closed,
}

/// The header fields the parser acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Field {
    #[default]
    Other,
    Connection,
    ContentLength,
    TransferEncoding,
    Host,
}

/// Field names matched, lowercase, bit `i` of `Conn::cand` for entry `i`.
const FIELDS: [(&[u8], Field); 4] = [
    (b"connection", Field::Connection),
    (b"content-length", Field::ContentLength),
    (b"transfer-encoding", Field::TransferEncoding),
    (b"host", Field::Host),
];
/// Methods served, bit `i` for entry `i`.
const METHODS: [&[u8]; 2] = [b"GET", b"HEAD"];
/// `Connection` options acted on, lowercase, bit `i` for entry `i`.
const OPTIONS: [&[u8]; 2] = [b"close", b"keep-alive"];

/// `Content-Length` value parse: before, inside and after the digits.
const CL_EMPTY: u8 = 0;
const CL_DIGITS: u8 = 1;
const CL_AFTER: u8 = 2;

/// One connection's parser and output state; a few dozen bytes, so a table
/// of millions is affordable.
#[derive(Clone, Copy, Debug, Default)]
struct Conn {
    /// The connection this slot belongs to; `None` when free.
    handle: Option<Handle>,
    phase: Phase,
    /// The last byte was a CR: the next must be LF.
    after_cr: bool,
    /// Bytes into the token being matched (method, version, field name, option).
    pos: u16,
    /// Names the token still matches (bits into METHODS, FIELDS or OPTIONS).
    cand: u8,
    /// Inside a token of a `Connection` value.
    in_token: bool,
    field: Field,
    /// `Content-Length` parse state (CL_*) and value.
    cl_state: u8,
    cl_value: u64,
    content_length: Option<u64>,
    head: bool,
    http10: bool,
    opt_close: bool,
    opt_keep_alive: bool,
    transfer_encoding: bool,
    hosts: u8,
    /// Bytes of the current request head, against max_header_bytes.
    head_bytes: u32,
    body_left: u64,
    /// The reply being written and how much of it is out.
    reply: Reply,
    sent: usize,
    peer_closed: bool,
    /// `close` was called: nothing more to do until `Closed`.
    shut: bool,
    /// The deadline armed, and whether a request has been answered yet.
    wait: Wait,
    served: bool,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Keeps the bits of `cand` whose name has `b` at `pos`.
fn narrow(cand: u8, names: impl Iterator<Item = &'static [u8]>, pos: u16, b: u8) -> u8 {
    let mut out = 0;
    for (i, name) in names.enumerate() {
        if cand & (1 << i) != 0 && name.get(pos as usize) == Some(&b) {
            out |= 1 << i;
        }
    }
    out
}

/// The name among `names` that the token matches whole.
fn matched(cand: u8, names: impl Iterator<Item = &'static [u8]>, pos: u16) -> Option<usize> {
    names.enumerate().position(|(i, name)| cand & (1 << i) != 0 && name.len() == pos as usize)
}

impl Conn {
    fn fresh(handle: Handle) -> Conn {
        Conn { handle: Some(handle), ..Conn::default() }
    }

    /// Forgets the finished request, ready for the next (or for discarding).
    fn next_request(&mut self, closing: bool) {
        *self = Conn {
            handle: self.handle,
            peer_closed: self.peer_closed,
            wait: self.wait,
            served: true,
            phase: if closing { Phase::Closed } else { Phase::LineStart },
            ..Conn::default()
        };
    }

    fn fail(&mut self, r: Reply) -> Option<Reply> {
        self.phase = Phase::Closed;
        Some(r)
    }

    /// Inside a request (not between two).
    fn mid_request(&self) -> bool {
        !matches!(self.phase, Phase::LineStart | Phase::Closed) || self.head_bytes > 0
    }

    /// One byte of a request line or header block.
    fn byte(&mut self, b: u8) -> Option<Reply> {
        if self.after_cr {
            self.after_cr = false;
            return if b == b'\n' { self.line_end() } else { self.fail(Reply::BadRequest) };
        }
        match self.phase {
            Phase::LineStart => match b {
                b'\r' => self.after_cr = true,
                b'\n' => {}
                _ if is_tchar(b) => {
                    self.phase = Phase::Method;
                    self.cand = 0b11;
                    self.method_byte(b);
                }
                _ => return self.fail(Reply::BadRequest),
            },
            Phase::Method => match b {
                b' ' => {
                    match matched(self.cand, METHODS.into_iter(), self.pos) {
                        Some(0) => {}
                        Some(_) => self.head = true,
                        None => return self.fail(Reply::MethodNotAllowed),
                    }
                    self.phase = Phase::Target;
                    self.pos = 0;
                }
                _ if is_tchar(b) => self.method_byte(b),
                _ => return self.fail(Reply::BadRequest),
            },
            Phase::Target => match b {
                b' ' if self.pos > 0 => {
                    self.phase = Phase::Version;
                    self.pos = 0;
                }
                0x21..=0x7e | 0x80..=0xff => self.pos = 1,
                _ => return self.fail(Reply::BadRequest),
            },
            Phase::Version => {
                // "HTTP/" DIGIT "." DIGIT, the name case-sensitive (§2.3).
                let ok = match self.pos {
                    0..=4 => b == b"HTTP/"[self.pos as usize],
                    5 if b.is_ascii_digit() && b != b'1' => return self.fail(Reply::VersionNotSupported),
                    5 => b == b'1',
                    6 => b == b'.',
                    _ => {
                        if !b.is_ascii_digit() {
                            return self.fail(Reply::BadRequest);
                        }
                        self.http10 = b == b'0';
                        self.phase = Phase::VersionEnd;
                        true
                    }
                };
                if !ok {
                    return self.fail(Reply::BadRequest);
                }
                self.pos += 1;
            }
            Phase::VersionEnd | Phase::HeaderStart | Phase::HeaderValue if b == b'\r' => self.after_cr = true,
            Phase::VersionEnd | Phase::HeaderStart | Phase::HeaderValue if b == b'\n' => return self.line_end(),
            Phase::VersionEnd => return self.fail(Reply::BadRequest),
            Phase::HeaderStart => {
                // Whitespace here is obs-fold (§5.2) or junk: rejected.
                if !is_tchar(b) {
                    return self.fail(Reply::BadRequest);
                }
                self.phase = Phase::HeaderName;
                self.pos = 0;
                self.cand = (1 << FIELDS.len()) - 1;
                self.name_byte(b);
            }
            Phase::HeaderName => match b {
                b':' => {
                    self.field =
                        matched(self.cand, FIELDS.iter().map(|f| f.0), self.pos).map_or(Field::Other, |i| FIELDS[i].1);
                    match self.field {
                        Field::TransferEncoding => self.transfer_encoding = true,
                        Field::Host => self.hosts = self.hosts.saturating_add(1),
                        _ => {}
                    }
                    self.phase = Phase::HeaderValue;
                    self.in_token = false;
                    self.cl_state = CL_EMPTY;
                    self.cl_value = 0;
                }
                _ if is_tchar(b) => self.name_byte(b),
                _ => return self.fail(Reply::BadRequest),
            },
            Phase::HeaderValue => return self.value_byte(b),
            // Bodies and discarding are handled a slice at a time by `parse`.
            Phase::Body | Phase::Closed => {}
        }
        None
    }

    fn method_byte(&mut self, b: u8) {
        self.cand = narrow(self.cand, METHODS.into_iter(), self.pos, b);
        self.pos = self.pos.saturating_add(1);
    }

    fn name_byte(&mut self, b: u8) {
        self.cand = narrow(self.cand, FIELDS.iter().map(|f| f.0), self.pos, b.to_ascii_lowercase());
        self.pos = self.pos.saturating_add(1);
    }

    fn value_byte(&mut self, b: u8) -> Option<Reply> {
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            return self.fail(Reply::BadRequest);
        }
        let ows = b == b' ' || b == b'\t';
        match self.field {
            Field::Connection => {
                if ows || b == b',' {
                    self.end_option();
                } else {
                    if !self.in_token {
                        self.in_token = true;
                        self.pos = 0;
                        self.cand = if is_tchar(b) { 0b11 } else { 0 };
                    }
                    self.cand = narrow(self.cand, OPTIONS.into_iter(), self.pos, b.to_ascii_lowercase());
                    self.pos = self.pos.saturating_add(1);
                }
            }
            Field::ContentLength => match (b, self.cl_state) {
                (b'0'..=b'9', CL_EMPTY | CL_DIGITS) => {
                    self.cl_state = CL_DIGITS;
                    let v = self.cl_value.checked_mul(10).and_then(|v| v.checked_add((b - b'0') as u64));
                    match v {
                        Some(v) => self.cl_value = v,
                        None => return self.fail(Reply::BadRequest),
                    }
                }
                (_, CL_EMPTY) if ows => {}
                (_, CL_DIGITS | CL_AFTER) if ows => self.cl_state = CL_AFTER,
                _ => return self.fail(Reply::BadRequest),
            },
            _ => {}
        }
        None
    }

    /// The end of a token in a `Connection` value.
    fn end_option(&mut self) {
        if self.in_token {
            match matched(self.cand, OPTIONS.into_iter(), self.pos) {
                Some(0) => self.opt_close = true,
                Some(_) => self.opt_keep_alive = true,
                None => {}
            }
            self.in_token = false;
        }
    }

    /// A CRLF (or bare LF) in a phase where a line may end.
    fn line_end(&mut self) -> Option<Reply> {
        match self.phase {
            Phase::LineStart => None,
            Phase::VersionEnd => {
                self.phase = Phase::HeaderStart;
                None
            }
            Phase::HeaderValue => {
                match self.field {
                    Field::Connection => self.end_option(),
                    Field::ContentLength => {
                        if self.cl_state == CL_EMPTY || self.content_length.is_some_and(|v| v != self.cl_value) {
                            return self.fail(Reply::BadRequest);
                        }
                        self.content_length = Some(self.cl_value);
                    }
                    _ => {}
                }
                self.phase = Phase::HeaderStart;
                None
            }
            Phase::HeaderStart => self.end_of_head(),
            _ => self.fail(Reply::BadRequest),
        }
    }

    /// The empty line after the header block: the request is complete but
    /// for its body.
    fn end_of_head(&mut self) -> Option<Reply> {
        if self.transfer_encoding {
            return self.fail(Reply::NotImplemented);
        }
        if self.hosts > 1 || (!self.http10 && self.hosts == 0) {
            return self.fail(Reply::BadRequest);
        }
        match self.content_length {
            Some(n) if n > 0 => {
                self.phase = Phase::Body;
                self.body_left = n;
                None
            }
            _ => Some(self.complete()),
        }
    }

    /// The request (and its body) is in: the 200 to send, and the parser
    /// reset for the next request.
    fn complete(&mut self) -> Reply {
        let persist = if self.opt_close {
            Persist::Close
        } else if self.http10 {
            if self.opt_keep_alive {
                Persist::KeepAlive10
            } else {
                Persist::Close
            }
        } else {
            Persist::KeepAlive
        };
        let r = if self.head { Reply::Head(persist) } else { Reply::Get(persist) };
        self.next_request(persist == Persist::Close);
        r
    }
}

/// Consumes `data` up to and including the byte that completes a request
/// or reveals an error, and returns how far it got and the reply due.
fn parse(c: &mut Conn, data: &[u8], max_head: usize, stats: &mut HttpStats) -> (usize, Reply) {
    let mut i = 0;
    while i < data.len() {
        match c.phase {
            Phase::Closed => {
                stats.bytes_discarded += (data.len() - i) as u64;
                return (data.len(), Reply::None);
            }
            Phase::Body => {
                let n = ((data.len() - i) as u64).min(c.body_left);
                i += n as usize;
                c.body_left -= n;
                stats.body_bytes_skipped += n;
                if c.body_left == 0 {
                    return (i, c.complete());
                }
            }
            _ => {
                let b = data[i];
                i += 1;
                c.head_bytes = c.head_bytes.saturating_add(1);
                if c.head_bytes as usize > max_head {
                    c.phase = Phase::Closed;
                    return (i, Reply::HeaderTooLarge);
                }
                if let Some(r) = c.byte(b) {
                    return (i, r);
                }
            }
        }
    }
    (i, Reply::None)
}

/// Every response, built once.
struct Responses {
    /// Full `200` responses to GET, by [`Persist`].
    ok: [Vec<u8>; 3],
    /// The header part of each, the response to HEAD.
    head_len: [usize; 3],
    bad_request: Vec<u8>,
    method_not_allowed: Vec<u8>,
    header_too_large: Vec<u8>,
    not_implemented: Vec<u8>,
    version_not_supported: Vec<u8>,
    request_timeout: Vec<u8>,
}

impl Responses {
    fn new(cfg: &HttpConfig) -> Responses {
        let server: String = cfg.server_name.chars().filter(|c| !c.is_control()).collect();
        let server = if server.is_empty() { String::new() } else { format!("Server: {server}\r\n") };
        let build = |status: &str, extra: &str, body: &[u8]| -> (Vec<u8>, usize) {
            let mut v = format!(
                "HTTP/1.1 {status}\r\n{server}Content-Type: text/plain\r\nContent-Length: {}\r\n{extra}\r\n",
                body.len()
            )
            .into_bytes();
            let head = v.len();
            v.extend_from_slice(body);
            (v, head)
        };
        let (keep, keep_head) = build("200 OK", "", &cfg.body);
        let (keep10, keep10_head) = build("200 OK", "Connection: keep-alive\r\n", &cfg.body);
        let (close, close_head) = build("200 OK", "Connection: close\r\n", &cfg.body);
        let error = |status: &str, extra: &str| {
            build(status, &format!("{extra}Connection: close\r\n"), format!("{status}\n").as_bytes()).0
        };
        Responses {
            ok: [keep, keep10, close],
            head_len: [keep_head, keep10_head, close_head],
            bad_request: error("400 Bad Request", ""),
            method_not_allowed: error("405 Method Not Allowed", "Allow: GET, HEAD\r\n"),
            header_too_large: error("431 Request Header Fields Too Large", ""),
            not_implemented: error("501 Not Implemented", ""),
            version_not_supported: error("505 HTTP Version Not Supported", ""),
            request_timeout: error("408 Request Timeout", ""),
        }
    }

    fn bytes(&self, r: Reply) -> &[u8] {
        match r {
            Reply::None => &[],
            Reply::Get(p) => &self.ok[p as usize],
            Reply::Head(p) => &self.ok[p as usize][..self.head_len[p as usize]],
            Reply::BadRequest => &self.bad_request,
            Reply::MethodNotAllowed => &self.method_not_allowed,
            Reply::HeaderTooLarge => &self.header_too_large,
            Reply::NotImplemented => &self.not_implemented,
            Reply::VersionNotSupported => &self.version_not_supported,
            Reply::RequestTimeout => &self.request_timeout,
        }
    }
}

/// The HTTP/1.1 responder of one shard.
pub struct Http {
    conns: Vec<Conn>,
    responses: Responses,
    max_header_bytes: usize,
    header_timeout: Option<Duration>,
    keepalive_timeout: Option<Duration>,
    pub stats: HttpStats,
}

impl Http {
    /// A responder for up to `connections` connections (the endpoint's
    /// connection capacity: handles index this table).
    pub fn new(connections: usize, cfg: HttpConfig) -> Http {
        Http {
            conns: vec![Conn::default(); connections],
            responses: Responses::new(&cfg),
            max_header_bytes: cfg.max_header_bytes,
            header_timeout: cfg.header_timeout,
            keepalive_timeout: cfg.keepalive_timeout,
            stats: HttpStats::default(),
        }
    }

    /// The bytes of the `200` answering a keep-alive HTTP/1.1 GET.
    pub fn response(&self) -> &[u8] {
        &self.responses.ok[Persist::KeepAlive as usize]
    }

    fn known(&mut self, h: Handle) -> Option<&mut Conn> {
        match self.conns.get_mut(h.index() as usize) {
            Some(c) if c.handle == Some(h) => Some(c),
            _ => {
                self.stats.stale_events += 1;
                None
            }
        }
    }

    /// Does what the connection allows, then arms the deadline for what it
    /// waits for now.
    fn pump(&mut self, ep: &mut Endpoint, h: Handle, now: Instant) {
        let Some(c) = self.conns.get(h.index() as usize) else { return };
        let before = (c.reply, c.sent);
        let answered = self.stats.requests_get + self.stats.requests_head;
        self.pump_io(ep, h);
        let Some(c) = self.conns.get_mut(h.index() as usize) else { return };
        if c.shut {
            return;
        }
        let (want, after) = if c.reply != Reply::None {
            (Wait::Send, self.keepalive_timeout)
        } else if c.mid_request() || !c.served {
            (Wait::Head, self.header_timeout)
        } else {
            (Wait::Idle, self.keepalive_timeout)
        };
        // The head deadline stays where it was set; the others are pushed
        // back by progress (bytes written; a request answered).
        let progress = match want {
            Wait::Send => (c.reply, c.sent) != before,
            Wait::Idle => self.stats.requests_get + self.stats.requests_head != answered,
            _ => false,
        };
        if want != c.wait || progress {
            c.wait = want;
            let _ = ep.set_deadline(h, after.map(|d| now + d));
        }
    }

    /// The connection's deadline passed (see the module comment).
    fn deadline(&mut self, ep: &mut Endpoint, h: Handle, now: Instant) {
        if self.known(h).is_none() {
            return;
        }
        let i = h.index() as usize;
        let Http { conns, stats, .. } = self;
        let c = &mut conns[i];
        if c.shut {
            return;
        }
        match c.wait {
            Wait::None => return,
            Wait::Send => {
                stats.send_timeouts += 1;
                stats.responses_lost += 1;
                stats.connections_aborted += 1;
                // abort raises no `Closed`: the slot is free now.
                *c = Conn::default();
                let _ = ep.abort(h);
                return;
            }
            Wait::Idle => stats.keepalive_timeouts += 1,
            Wait::Head => {
                stats.header_timeouts += 1;
                if c.mid_request() {
                    c.next_request(true);
                    c.reply = Reply::RequestTimeout;
                    return self.pump(ep, h, now);
                }
            }
        }
        discard(ep, h, stats);
        let _ = ep.close(h);
        conns[i].shut = true;
    }

    /// Writes what is owed, then reads and answers requests until the input
    /// runs out or a response waits for send space.
    fn pump_io(&mut self, ep: &mut Endpoint, h: Handle) {
        let Http { conns, responses, max_header_bytes, stats, .. } = self;
        let Some(c) = conns.get_mut(h.index() as usize) else { return };
        loop {
            if c.shut {
                return;
            }
            if c.reply != Reply::None {
                let bytes = responses.bytes(c.reply);
                match ep.write(h, bytes.get(c.sent..).unwrap_or_default()) {
                    Ok(n) => c.sent += n,
                    Err(_) => {
                        stats.write_errors += 1;
                        c.shut = true;
                        return;
                    }
                }
                if c.sent < bytes.len() {
                    stats.responses_blocked += 1;
                    return;
                }
                let closing = c.reply.closes();
                c.reply = Reply::None;
                c.sent = 0;
                if closing {
                    discard(ep, h, stats);
                    let _ = ep.close(h);
                    c.shut = true;
                    return;
                }
            }
            let mut reply = Reply::None;
            let n = ep
                .recv(h, |data| {
                    let (n, r) = parse(c, data, *max_header_bytes, stats);
                    reply = r;
                    n
                })
                .unwrap_or(0);
            if reply != Reply::None {
                count(stats, reply);
                c.reply = reply;
                continue;
            }
            if n == 0 {
                if c.peer_closed && ep.readable(h) == 0 {
                    if c.mid_request() {
                        stats.incomplete_at_peer_close += 1;
                    }
                    let _ = ep.close(h);
                    c.shut = true;
                }
                return;
            }
        }
    }
}

fn count(stats: &mut HttpStats, r: Reply) {
    match r {
        Reply::None => {}
        Reply::Get(p) | Reply::Head(p) => {
            if matches!(r, Reply::Get(_)) {
                stats.requests_get += 1;
            } else {
                stats.requests_head += 1;
            }
            if p == Persist::Close {
                stats.responses_close += 1;
            }
        }
        Reply::BadRequest => stats.bad_request += 1,
        Reply::MethodNotAllowed => stats.method_not_allowed += 1,
        Reply::HeaderTooLarge => stats.header_too_large += 1,
        Reply::NotImplemented => stats.transfer_encoding_refused += 1,
        Reply::VersionNotSupported => stats.version_not_supported += 1,
        // Counted where the deadline passes.
        Reply::RequestTimeout => {}
    }
}

/// Reads and drops everything buffered, so that `close` sends a FIN rather
/// than the reset it sends over unread data.
fn discard(ep: &mut Endpoint, h: Handle, stats: &mut HttpStats) {
    while let Ok(n @ 1..) = ep.recv(h, |d| d.len()) {
        stats.bytes_discarded += n as u64;
    }
}

impl App for Http {
    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, ev: Event) {
        match ev {
            Event::Accepted(h) => {
                let Some(c) = self.conns.get_mut(h.index() as usize) else {
                    // A table larger than ours: refuse rather than serve blind.
                    self.stats.stale_events += 1;
                    let _ = ep.abort(h);
                    return;
                };
                *c = Conn::fresh(h);
                self.stats.connections_accepted += 1;
                self.pump(ep, h, now);
            }
            Event::Readable(h) | Event::Writable(h) => {
                if self.known(h).is_some() {
                    self.pump(ep, h, now);
                }
            }
            Event::PeerClosed(h) => {
                if let Some(c) = self.known(h) {
                    c.peer_closed = true;
                    self.pump(ep, h, now);
                }
            }
            Event::Closed(h, reason) => {
                if let Some(c) = self.known(h) {
                    let lost = c.reply != Reply::None;
                    *c = Conn::default();
                    self.stats.responses_lost += lost as u64;
                    if reason == CloseReason::Normal {
                        self.stats.connections_closed += 1;
                    } else {
                        self.stats.connections_aborted += 1;
                    }
                }
            }
            Event::Deadline(h) => self.deadline(ep, h, now),
            // The responder makes no active opens.
            Event::Connected(_) => self.stats.stale_events += 1,
        }
    }
}

/// One reply of [`parse_pieces`]: the offset just past the byte that made
/// it due, its name, whether the connection closes after it, its bytes.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedReply {
    pub end: usize,
    pub reply: String,
    pub closes: bool,
    pub response: Vec<u8>,
}

/// The request parser fed as [`Http`] feeds it, for the fuzz target
/// `http_request`: `data` arrives in pieces of `piece` bytes (the last one
/// shorter), each handed to `parse` until it is consumed, as `pump` hands
/// it whatever the receive buffer holds. Stops after a reply that closes
/// the connection, as `pump` does. Panics if `parse` reports consuming
/// more than it was given, or stops short without a reply (the byte
/// accounting `pump` relies on).
#[doc(hidden)]
pub fn parse_pieces(data: &[u8], piece: usize, max_head: usize) -> Vec<ParsedReply> {
    let responses = Responses::new(&HttpConfig::default());
    let mut stats = HttpStats::default();
    let mut c = Conn::default();
    let mut out = Vec::new();
    let mut off = 0;
    for chunk_end in (0..data.len()).step_by(piece.max(1)).map(|s| (s + piece.max(1)).min(data.len())) {
        while off < chunk_end {
            let avail = chunk_end - off;
            let (n, r) = parse(&mut c, &data[off..chunk_end], max_head, &mut stats);
            assert!(n <= avail, "parse consumed {n} of {avail} bytes");
            off += n;
            if r == Reply::None {
                assert_eq!(off, chunk_end, "parse stopped short without a reply");
                break;
            }
            assert!(n > 0, "a reply without consuming a byte");
            out.push(ParsedReply {
                end: off,
                reply: format!("{r:?}"),
                closes: r.closes(),
                response: responses.bytes(r).to_vec(),
            });
            if r.closes() {
                return out;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testutil::*;
    use crate::link::memory::Faults;
    use crate::time::Duration;
    use proptest::prelude::*;

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: example\r\nUser-Agent: wrk\r\n\r\n";
    const HEAD_RESP_LEN: usize = RESP.len() - 13;
    const RESP: &[u8] =
        b"HTTP/1.1 200 OK\r\nServer: floodgate\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
    const RESP_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: floodgate\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!";
    const RESP_KEEP10: &[u8] = b"HTTP/1.1 200 OK\r\nServer: floodgate\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, World!";
    const RESP_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: floodgate\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\n400 Bad Request\n";

    fn http() -> Http {
        Http::new(CONNECTIONS, HttpConfig::default())
    }

    fn limit() -> Duration {
        Duration::from_secs(600)
    }

    /// One connection sending `req` at once; the client closes when the
    /// server does (or after `close_at` bytes). Returns what came back.
    fn exchange(p: &mut TestPair<Http>, port: u16, req: &[u8], close_at: Option<usize>) -> Vec<u8> {
        let h = connect(p, port, ClientConn { close_at, ..ClientConn::sending(req) });
        run_all(p, limit());
        conn(p, h).received.clone()
    }

    fn repeat(b: &[u8], n: usize) -> Vec<u8> {
        b.repeat(n)
    }

    #[test]
    fn single_get_gets_the_exact_response() {
        let mut p = pair(http(), Faults::default(), 1);
        assert_eq!(p.server.app.response(), RESP);
        let got = exchange(&mut p, 40000, GET, Some(RESP.len()));
        assert_eq!(got, RESP, "{}", String::from_utf8_lossy(&got));
        assert!(p.drive(limit(), |p| p.server.ep.connections() == 0));
        let s = p.server.app.stats;
        assert_eq!((s.requests_get, s.connections_accepted, s.connections_closed), (1, 1, 1));
        // The client closed first: the TIME-WAIT is the client's.
        assert_eq!((p.server.ep.time_wait(), p.client.ep.time_wait()), (0, 1));
    }

    #[test]
    fn keep_alive_serves_100_sequential_requests_on_one_connection() {
        let mut p = pair(http(), Faults::default(), 2);
        let script = (0..100).map(|i| (i * RESP.len(), GET.to_vec())).collect();
        let h =
            connect(&mut p, 40000, ClientConn { script, close_at: Some(100 * RESP.len()), ..ClientConn::default() });
        run_all(&mut p, limit());
        assert_eq!(conn(&p, h).received, repeat(RESP, 100));
        assert_eq!(p.server.app.stats.requests_get, 100);
        assert_eq!(p.server.app.stats.connections_accepted, 1);
    }

    #[test]
    fn pipelined_requests_in_one_write_are_answered_in_order() {
        let mut p = pair(http(), Faults::default(), 3);
        let mut req = repeat(GET, 9);
        req.extend_from_slice(b"HEAD /last HTTP/1.1\r\nHost: x\r\n\r\n");
        let got = exchange(&mut p, 40000, &req, Some(9 * RESP.len() + HEAD_RESP_LEN));
        let mut want = repeat(RESP, 9);
        want.extend_from_slice(&RESP[..HEAD_RESP_LEN]);
        assert_eq!(got, want);
        assert_eq!((p.server.app.stats.requests_get, p.server.app.stats.requests_head), (9, 1));
    }

    #[test]
    fn a_request_split_at_every_byte_across_two_segments_is_answered() {
        // Two requests, the second with a body, so the split also falls
        // inside a body and between pipelined requests.
        let mut req = b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n".to_vec();
        req.extend_from_slice(b"HEAD /b HTTP/1.0\r\ncontent-LENGTH: 2\r\nConnection: Keep-Alive\r\n\r\nxy");
        let want = [RESP, &RESP_KEEP10[..RESP_KEEP10.len() - 13]].concat();
        let mut p = pair(http(), Faults::default(), 4);
        for split in 1..req.len() {
            let port = 20000 + split as u16;
            let h = connect(&mut p, port, ClientConn { close_at: Some(want.len()), ..ClientConn::default() });
            assert!(p.drive(limit(), |p| conn(p, h).connected));
            let sent = p.server.ep.stats.segments_in;
            p.client.ep.write(h, &req[..split]).unwrap();
            p.step();
            assert!(p.server.ep.stats.segments_in > sent, "the first part went out alone");
            assert!(conn(&p, h).received.len() < want.len());
            p.client.ep.write(h, &req[split..]).unwrap();
            run_all(&mut p, limit());
            assert_eq!(conn(&p, h).received, want, "split at {split}");
        }
        let s = p.server.app.stats;
        assert_eq!((s.requests_get, s.requests_head), (req.len() as u64 - 1, req.len() as u64 - 1));
        assert_eq!(s.body_bytes_skipped, 2 * (req.len() as u64 - 1));
    }

    #[test]
    fn connection_close_is_answered_then_the_server_closes_first_and_holds_time_wait() {
        let mut p = pair(http(), Faults::default(), 5);
        let req = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive , CLOSE\r\n\r\n";
        let got = exchange(&mut p, 40000, req, None);
        assert_eq!(got, RESP_CLOSE);
        let c = conn(&p, p.client.app.order[0]);
        assert!(c.peer_closed);
        assert_eq!(c.closed, Some(CloseReason::Normal));
        assert_eq!((p.server.ep.time_wait(), p.client.ep.time_wait()), (1, 0));
        assert_eq!(p.server.app.stats.responses_close, 1);
    }

    #[test]
    fn http_1_0_closes_unless_it_asks_for_keep_alive() {
        let mut p = pair(http(), Faults::default(), 6);
        let got = exchange(&mut p, 40000, b"GET / HTTP/1.0\r\n\r\n", None);
        assert_eq!(got, RESP_CLOSE);
        assert_eq!(p.server.ep.time_wait(), 1);

        let req = repeat(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 2);
        let got = exchange(&mut p, 40001, &req, Some(2 * RESP_KEEP10.len()));
        assert_eq!(got, repeat(RESP_KEEP10, 2));
        // The client closed this one.
        assert_eq!(p.client.ep.time_wait(), 1);
    }

    /// Sends each request on its own connection and expects `want` then the
    /// server's FIN.
    fn expect_error(p: &mut TestPair<Http>, reqs: &[&[u8]], want: &[u8]) {
        for (i, req) in reqs.iter().enumerate() {
            let tw = p.server.ep.time_wait();
            let port = p.client.app.order.len() as u16 + 30000;
            let got = exchange(p, port, req, None);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want),
                "request {i}: {:?}",
                String::from_utf8_lossy(req)
            );
            assert!(conn(p, p.client.app.order[port as usize - 30000]).peer_closed);
            assert_eq!(p.server.ep.time_wait(), tw + 1, "the server closed first");
        }
    }

    #[test]
    fn malformed_requests_get_400_and_a_close() {
        let mut p = pair(http(), Faults::default(), 7);
        let reqs: &[&[u8]] = &[
            b"GARBAGE\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
            b"GET / http/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"\x00\x01\x02\xff",
            // The bad request's pipelined successor is never answered.
            b"GET / HTTP/1.1\r\n:\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ];
        expect_error(&mut p, reqs, RESP_400);
        assert_eq!(p.server.app.stats.bad_request, reqs.len() as u64);
        assert_eq!(p.server.app.stats.requests_get, 0);
    }

    #[test]
    fn other_methods_versions_and_transfer_codings_are_refused_with_a_close() {
        let mut p = pair(http(), Faults::default(), 8);
        let r405 = b"HTTP/1.1 405 Method Not Allowed\r\nServer: floodgate\r\nContent-Type: text/plain\r\nContent-Length: 23\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n405 Method Not Allowed\n";
        expect_error(
            &mut p,
            &[b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab", b"get / HTTP/1.1\r\n\r\n"],
            r405,
        );
        let r505 = b"HTTP/1.1 505 HTTP Version Not Supported\r\nServer: floodgate\r\nContent-Type: text/plain\r\nContent-Length: 31\r\nConnection: close\r\n\r\n505 HTTP Version Not Supported\n";
        expect_error(&mut p, &[b"GET / HTTP/2.0\r\n\r\n"], r505);
        let r501 = b"HTTP/1.1 501 Not Implemented\r\nServer: floodgate\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\n501 Not Implemented\n";
        expect_error(&mut p, &[b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"], r501);
        let s = p.server.app.stats;
        assert_eq!((s.method_not_allowed, s.version_not_supported, s.transfer_encoding_refused), (2, 1, 1));
    }

    #[test]
    fn oversized_headers_get_431_and_a_close() {
        let cfg = HttpConfig { max_header_bytes: 100, ..HttpConfig::default() };
        let mut p = pair(Http::new(CONNECTIONS, cfg), Faults::default(), 9);
        // Exactly 100 bytes of head is served, 101 is not.
        let fit = |n: usize| {
            let base = b"GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n".len();
            format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "a".repeat(n - base)).into_bytes()
        };
        let req = fit(100);
        assert_eq!(req.len(), 100);
        let got = exchange(&mut p, 40000, &req, Some(RESP.len()));
        assert_eq!(got, RESP);
        let r431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: floodgate\r\nContent-Type: text/plain\r\nContent-Length: 36\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large\n";
        let blank_lines = repeat(b"\r\n", 60);
        expect_error(&mut p, &[&fit(101), &blank_lines], r431);
        assert_eq!(p.server.app.stats.header_too_large, 2);

        // A client still sending when the 431 and the FIN go out gets them,
        // then a reset for the bytes the server will not read (the server
        // closes at once rather than lingering, see the module comment).
        let long = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n", "a".repeat(20_000)).into_bytes();
        let aborted = p.server.ep.stats.connections_aborted;
        let got = exchange(&mut p, 40001, &long, None);
        assert_eq!(got, r431);
        assert_eq!(conn(&p, p.client.app.order[3]).closed, Some(CloseReason::Reset));
        assert_eq!(p.server.ep.stats.connections_aborted, aborted + 1);
        assert_eq!(p.server.app.stats.header_too_large, 3);

        // The default limit is 8 KiB.
        let mut p = pair(http(), Faults::default(), 9);
        let long = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n", "a".repeat(9000)).into_bytes();
        expect_error(&mut p, &[&long], &r431[..]);
    }

    #[test]
    fn head_gets_the_headers_without_the_body() {
        let mut p = pair(http(), Faults::default(), 10);
        let req = [&b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"[..], GET].concat();
        let got = exchange(&mut p, 40000, &req, Some(HEAD_RESP_LEN + RESP.len()));
        assert_eq!(got, [&RESP[..HEAD_RESP_LEN], RESP].concat());
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n") && got[..HEAD_RESP_LEN].ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn a_request_body_is_skipped_not_parsed() {
        let mut p = pair(http(), Faults::default(), 11);
        // The body looks like a request; it must not be answered.
        let body = b"GET /evil HTTP/1.1\r\nHost: h\r\n\r\n";
        let req = [
            format!(
                "GET / HTTP/1.1\r\nHost: h\r\nContent-Length:  {} \r\nContent-Length: {}\r\n\r\n",
                body.len(),
                body.len()
            )
            .as_bytes(),
            body,
            GET,
        ]
        .concat();
        let got = exchange(&mut p, 40000, &req, Some(2 * RESP.len()));
        assert_eq!(got, repeat(RESP, 2));
        assert_eq!(p.server.app.stats.requests_get, 2);
        assert_eq!(p.server.app.stats.body_bytes_skipped, body.len() as u64);
    }

    #[test]
    fn a_peer_half_close_gets_every_pending_answer_then_a_close() {
        let mut p = pair(http(), Faults::default(), 12);
        let h = connect(&mut p, 40000, ClientConn { shutdown_when_sent: true, ..ClientConn::sending(&repeat(GET, 3)) });
        let h2 = connect(&mut p, 40001, ClientConn { shutdown_when_sent: true, ..ClientConn::sending(b"GET / HT") });
        run_all(&mut p, limit());
        assert_eq!(conn(&p, h).received, repeat(RESP, 3));
        assert!(conn(&p, h).peer_closed && conn(&p, h2).peer_closed);
        assert_eq!(conn(&p, h2).received, b"");
        assert_eq!(conn(&p, h).closed, Some(CloseReason::Normal));
        assert_eq!(p.server.app.stats.incomplete_at_peer_close, 1);
        assert!(p.drive(limit(), |p| p.server.ep.connections() == 0));
        assert_eq!(p.server.app.stats.connections_closed, 2);
    }

    #[test]
    fn responses_larger_than_the_send_buffer_wait_for_acks_and_arrive_whole() {
        let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let cfg = HttpConfig { body: body.clone(), ..HttpConfig::default() };
        let app = Http::new(CONNECTIONS, cfg);
        let resp = app.response().to_vec();
        assert!(resp.ends_with(&body));
        let mut p = pair(app, Faults::default(), 13);
        let got = exchange(&mut p, 40000, &repeat(GET, 20), Some(20 * resp.len()));
        assert!(got == repeat(&resp, 20), "{} bytes", got.len());
        assert!(p.server.app.stats.responses_blocked > 20);
    }

    #[test]
    fn a_client_pipelining_faster_than_it_reads_is_held_back_by_the_window() {
        // 2000 requests (far more than the 16 KiB receive buffer) whose 2 KB
        // responses fill the send buffer: the server stops reading, the
        // window closes, and the rest follows as responses drain. Requests
        // alternate GET and HEAD so any reordering shows.
        let cfg = HttpConfig { body: vec![b'z'; 2000], ..HttpConfig::default() };
        let app = Http::new(CONNECTIONS, cfg);
        let resp = app.response().to_vec();
        let head_len = resp.len() - 2000;
        let mut p = pair(app, Faults::default(), 14);
        let (mut req, mut want) = (Vec::new(), Vec::new());
        for i in 0..2000 {
            if i % 2 == 0 {
                req.extend_from_slice(GET);
                want.extend_from_slice(&resp);
            } else {
                req.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
                want.extend_from_slice(&resp[..head_len]);
            }
        }
        let got = exchange(&mut p, 40000, &req, Some(want.len()));
        assert!(got == want, "{} of {} bytes", got.len(), want.len());
        assert!(p.server.app.stats.responses_blocked > 0);
    }

    #[test]
    fn with_5_percent_loss_200_connections_of_5_requests_are_all_answered() {
        let faults = Faults { loss: 0.05, delay: Duration::from_micros(50), ..Faults::default() };
        let mut p = pair(http(), faults, 15);
        let mut hs = Vec::new();
        for i in 0..200u16 {
            let script = (0..5).map(|k| (k * RESP.len(), GET.to_vec())).collect();
            hs.push(connect(
                &mut p,
                10000 + i,
                ClientConn { script, close_at: Some(5 * RESP.len()), ..ClientConn::default() },
            ));
        }
        run_all(&mut p, Duration::from_secs(3600));
        for h in &hs {
            assert_eq!(conn(&p, *h).received, repeat(RESP, 5));
        }
        assert_eq!(p.server.app.stats.requests_get, 1000);
        assert!(p.client.link.stats().lost > 0 && p.server.link.stats().lost > 0);
        assert!(p.drive(Duration::from_secs(3600), |p| p.server.ep.connections() == 0));
    }

    #[test]
    fn the_server_name_cannot_inject_headers_and_can_be_left_out() {
        let app = Http::new(1, HttpConfig { server_name: "evil\r\nX: 1".into(), ..HttpConfig::default() });
        assert!(app.response().starts_with(b"HTTP/1.1 200 OK\r\nServer: evilX: 1\r\nContent-Type"));
        let app = Http::new(1, HttpConfig { server_name: String::new(), ..HttpConfig::default() });
        assert!(app.response().starts_with(b"HTTP/1.1 200 OK\r\nContent-Type"));
    }

    #[test]
    fn every_counter_has_a_name_and_help() {
        let mut n = 0;
        HttpStats::default().for_each(|name, help, _| {
            assert!(!help.is_empty() && !name.is_empty());
            n += 1;
        });
        assert_eq!(n, 21);
    }

    #[test]
    fn core_bug_close_after_shutdown_never_times_out_in_fin_wait_2() {
        // The lingering close of RFC 9112 §9.6 is `shutdown`, read until the
        // peer's FIN, then `close`. If the peer never sends its FIN, the
        // FIN-WAIT-2 timeout (TcpConfig::fin_wait2_timeout, "after a full
        // close") should reclaim the connection once `close` is called. It
        // does not: `shutdown` sets idle_at = NEVER, and `close` in
        // FIN-WAIT-2 only sets APP_CLOSED; the timer is armed only on the
        // FIN-WAIT-1 -> FIN-WAIT-2 transition. Keepalive does not run in
        // FIN-WAIT-2 either (`Tcb::reset_idle`), so the entry lives forever.
        let mut p = pair(crate::sim::NoApp, Faults::default(), 20);
        connect(&mut p, 40000, ClientConn { never_close: true, ..ClientConn::default() });
        assert!(
            p.drive(limit(), |p| p.server.ep.connections() == 1 && p.client.app.conns.values().all(|c| c.connected))
        );
        let mut h = None;
        p.server.ep.for_each_connection(|x, _, _| h = Some(x));
        let h = h.unwrap();
        p.server.ep.shutdown(h).unwrap();
        assert!(p.drive(limit(), |p| p.server.ep.state(h) == Some(crate::tcp::State::FinWait2)));
        p.server.ep.close(h).unwrap();
        p.step();
        let start = p.now;
        p.drive(Duration::from_secs(7200), |p| p.now > start + Duration::from_secs(3600));
        assert_eq!(p.server.ep.connections(), 0, "still {:?} after an hour", p.server.ep.state(h));
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn with_timeouts(header: u64, keepalive: u64) -> Http {
        let cfg = HttpConfig {
            header_timeout: Some(secs(header)),
            keepalive_timeout: Some(secs(keepalive)),
            ..HttpConfig::default()
        };
        Http::new(CONNECTIONS, cfg)
    }

    /// Runs the pair for `d` of virtual time.
    fn wait(p: &mut TestPair<Http>, d: Duration) {
        p.drive(d, |_| false);
    }

    /// A connected client that will only send what the test writes.
    fn quiet_client(p: &mut TestPair<Http>, port: u16) -> crate::table::Handle {
        let h = connect(p, port, ClientConn::default());
        assert!(p.drive(limit(), |p| conn(p, h).connected));
        p.step();
        h
    }

    /// Writes `bytes` one per `every` for at most `max`, until the server
    /// closes; returns when the server's FIN came, measured from the start.
    fn trickle(
        p: &mut TestPair<Http>,
        h: crate::table::Handle,
        bytes: &[u8],
        every: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let start = p.now;
        let mut next = start;
        let mut i = 0;
        while p.now - start < max {
            if conn(p, h).peer_closed {
                return Some(p.now - start);
            }
            if i < bytes.len() && p.now >= next {
                p.client.ep.write(h, &bytes[i..i + 1]).unwrap();
                i += 1;
                next += every;
            }
            wait(p, Duration::from_millis(50));
        }
        None
    }

    const RESP_408: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nServer: floodgate\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\n408 Request Timeout\n";

    #[test]
    fn slowloris_gets_408_at_the_header_timeout_however_steadily_it_trickles() {
        let mut p = pair(with_timeouts(5, 60), Faults::default(), 30);
        let h = quiet_client(&mut p, 40000);
        // One header byte every 2 s: progress, but the deadline is not pushed back.
        let took = trickle(&mut p, h, b"GET / HTTP/1.1\r\nHost: h\r\nX-a: b\r\n", secs(2), secs(60)).expect("closed");
        assert!(took >= secs(5) && took < secs(5) + Duration::from_millis(200), "closed after {took:?}");
        run_all(&mut p, limit());
        assert_eq!(conn(&p, h).received, RESP_408);
        assert_eq!(conn(&p, h).closed, Some(CloseReason::Normal), "408, then FIN");
        let s = p.server.app.stats;
        assert_eq!((s.header_timeouts, s.keepalive_timeouts, s.requests_get), (1, 0, 0));
        assert!(p.drive(limit(), |p| p.server.ep.connections() == 0));
        assert_eq!(p.server.app.stats.connections_closed, 1);
        assert_eq!(p.server.ep.stats.app_deadlines, 1);
    }

    #[test]
    fn a_connection_that_sends_nothing_gets_a_bare_fin_at_the_header_timeout() {
        let mut p = pair(with_timeouts(7, 60), Faults::default(), 31);
        let h = quiet_client(&mut p, 40000);
        let took = trickle(&mut p, h, b"", secs(1), secs(60)).expect("closed");
        assert!(took >= secs(7) && took < secs(7) + Duration::from_millis(200), "closed after {took:?}");
        run_all(&mut p, limit());
        assert_eq!(conn(&p, h).received, b"");
        assert_eq!(conn(&p, h).closed, Some(CloseReason::Normal));
        assert_eq!(p.server.app.stats.header_timeouts, 1);
    }

    #[test]
    fn keep_alive_idle_ends_in_a_fin_and_the_next_request_gets_its_own_header_time() {
        let mut p = pair(with_timeouts(5, 10), Faults::default(), 32);
        let h = quiet_client(&mut p, 40000);
        p.client.ep.write(h, GET).unwrap();
        // Idle 8 s (under the keep-alive 10 s), then a request trickling in
        // over 4 s (under the header 5 s, though it ends 12 s after the
        // first response): served.
        assert_eq!(trickle(&mut p, h, b"", secs(1), secs(8)), None);
        assert_eq!(conn(&p, h).received, RESP);
        let every = Duration::from_millis(4000 / GET.len() as u64);
        assert_eq!(trickle(&mut p, h, GET, every, secs(4)), None);
        assert!(p.drive(secs(1), |p| conn(p, h).received.len() == 2 * RESP.len()));
        // Then nothing: a FIN keepalive_timeout after the response.
        let took = trickle(&mut p, h, b"", secs(1), secs(60)).expect("closed");
        // (The response came up to one trickle step before it was seen.)
        assert!(took >= secs(10) - every && took < secs(10) + Duration::from_millis(200), "closed after {took:?}");
        run_all(&mut p, limit());
        assert_eq!(conn(&p, h).closed, Some(CloseReason::Normal));
        let s = p.server.app.stats;
        assert_eq!((s.requests_get, s.header_timeouts, s.keepalive_timeouts), (2, 0, 1));
    }

    #[test]
    fn a_response_the_client_never_reads_is_reset_after_the_keepalive_timeout() {
        let cfg = HttpConfig {
            body: vec![b'x'; 200_000],
            header_timeout: Some(secs(5)),
            keepalive_timeout: Some(secs(10)),
            ..HttpConfig::default()
        };
        let mut p = pair(Http::new(CONNECTIONS, cfg), Faults::default(), 33);
        let h = connect(&mut p, 40000, ClientConn { paused: true, ..ClientConn::sending(GET) });
        let start = p.now;
        assert!(p.drive(secs(120), |p| conn(p, h).done()));
        // Zero-window probes may each deliver a byte the client's buffer
        // still has room for: progress, which pushes the deadline back (as
        // nginx's send_timeout, a bound between two writes); the probes'
        // backoff soon spaces them more than 10 s apart.
        let took = p.now - start;
        assert!(took >= secs(10) && took < secs(60), "reset after {took:?}");
        assert_eq!(conn(&p, h).closed, Some(CloseReason::Reset));
        let s = p.server.app.stats;
        assert_eq!((s.send_timeouts, s.responses_lost, s.connections_aborted), (1, 1, 1));
        assert!(p.drive(limit(), |p| p.server.ep.connections() == 0));
    }

    #[test]
    fn wrk_style_traffic_never_meets_a_deadline() {
        // 50 connections of 20 back-to-back requests each, with 1 s between
        // requests: under both timeouts, nothing is cut.
        let mut p = pair(with_timeouts(2, 3), Faults::default(), 34);
        let hs: Vec<_> = (0..50u16).map(|i| quiet_client(&mut p, 41000 + i)).collect();
        for _ in 0..20 {
            for &h in &hs {
                let c = conn(&p, h);
                assert!(!c.peer_closed, "{h:?} closed: {:?} after {} bytes", c.closed, c.received.len());
                p.client.ep.write(h, GET).unwrap();
            }
            wait(&mut p, secs(1));
        }
        for &h in &hs {
            assert_eq!(conn(&p, h).received.len(), 20 * RESP.len());
            assert!(!conn(&p, h).peer_closed);
        }
        let s = p.server.app.stats;
        assert_eq!((s.header_timeouts, s.keepalive_timeouts, s.send_timeouts), (0, 0, 0));
    }

    /// Runs the parser over `input` cut at `cuts`, as the receive buffer
    /// would hand it over; returns the replies in order.
    fn replies(input: &[u8], cuts: &[usize], max: usize) -> Vec<Reply> {
        let mut c = Conn::default();
        let mut stats = HttpStats::default();
        let mut out = Vec::new();
        let mut bounds: Vec<usize> = cuts.iter().map(|&x| x.min(input.len())).collect();
        bounds.push(input.len());
        bounds.sort();
        let mut at = 0;
        for end in bounds {
            while at < end {
                let (n, r) = parse(&mut c, &input[at..end], max, &mut stats);
                assert!(n > 0 && n <= end - at, "progress");
                at += n;
                if r != Reply::None {
                    out.push(r);
                }
            }
        }
        out
    }

    #[test]
    fn the_parser_answers_a_request_stream_however_it_is_cut() {
        let input = [
            &b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"HEAD /x?y HTTP/1.1\nhost:h\ncontent-length:3\n\nabc",
            b"GET / HTTP/1.0\r\nConnection: x, keep-alive\r\n\r\n",
            b"GET / HTTP/1.5\r\nHost: h\r\nConnection: closed\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ]
        .concat();
        let want = vec![
            Reply::Get(Persist::KeepAlive),
            Reply::Head(Persist::KeepAlive),
            Reply::Get(Persist::KeepAlive10),
            Reply::Get(Persist::KeepAlive),
            Reply::Get(Persist::Close),
        ];
        assert_eq!(replies(&input, &[], 8192), want);
        for a in 0..input.len() {
            assert_eq!(replies(&input, &[a, a + 7], 8192), want, "cut at {a}");
        }
        // Byte by byte.
        let all: Vec<usize> = (0..input.len()).collect();
        assert_eq!(replies(&input, &all, 8192), want);
    }

    proptest! {
        #[test]
        fn the_parser_never_panics_and_cutting_changes_nothing(
            input in prop::collection::vec(prop_oneof![
                4 => any::<u8>(),
                4 => prop::sample::select(b"GET HEAD / HTTP/1.0 1.1 \r\n:Host Connection close keep-alive Content-Length 0123,".to_vec()),
            ], 0..300),
            cuts in prop::collection::vec(0usize..300, 0..6),
            max in 0usize..200,
        ) {
            prop_assert_eq!(replies(&input, &cuts, max), replies(&input, &[], max));
        }

        #[test]
        fn valid_requests_with_random_headers_are_all_answered(
            reqs in prop::collection::vec((any::<bool>(), prop::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,20}", 0..5), 0usize..40), 1..6),
            cuts in prop::collection::vec(0usize..2000, 0..6),
        ) {
            let mut input = Vec::new();
            let mut want = Vec::new();
            for (head, fields, body) in &reqs {
                input.extend_from_slice(if *head { b"HEAD" } else { b"GET" });
                input.extend_from_slice(b" /p HTTP/1.1\r\nHost: h\r\n");
                for f in fields {
                    let name = f.split(':').next().unwrap().to_ascii_lowercase();
                    if ["connection", "content-length", "transfer-encoding", "host"].contains(&name.as_str()) {
                        continue;
                    }
                    input.extend_from_slice(f.as_bytes());
                    input.extend_from_slice(b"\r\n");
                }
                input.extend_from_slice(format!("Content-Length: {body}\r\n\r\n").as_bytes());
                input.extend(std::iter::repeat_n(b'G', *body));
                want.push(if *head { Reply::Head(Persist::KeepAlive) } else { Reply::Get(Persist::KeepAlive) });
            }
            prop_assert_eq!(replies(&input, &cuts, 8192), want);
        }
    }
}

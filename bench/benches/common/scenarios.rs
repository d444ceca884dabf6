//! The engine scenarios, each a `run(iters) -> timed duration` so criterion
//! (`iter_custom`) and the instruction-count driver (`icount.rs`) measure
//! exactly the same code. Work outside the timed region (resetting the
//! table, building the next batch's frames) is excluded from the duration.

use std::hint::black_box;
use std::time::Duration as StdDuration;

use super::*;
use floodgate::tcp::{CookieMode, Endpoint, Event, Secrets};
use floodgate::time::{Duration, Instant};
use floodgate::wire::TcpOptions;

/// Distinct clients per handshake chunk (the half-open entries held at the
/// end of one).
pub const N: usize = 8192;

fn client_isn(i: u64) -> u32 {
    0x1000_0000u32.wrapping_add((i as u32).wrapping_mul(0x9e37))
}
fn client_ts(i: u64) -> u32 {
    100_000 + i as u32
}

pub fn syn_frames(opts: fn(u32) -> TcpOptions) -> Frames {
    let mut f = Frames::with_capacity(N);
    for i in 0..N as u64 {
        let s = ClientSeg {
            control: SYN,
            seq: client_isn(i),
            ack: 0,
            window: 64240,
            options: opts(client_ts(i)),
            payload: &[],
        };
        f.put(i as usize, i, &s);
    }
    f
}

/// An RST in the connection's window: ends a half-open or established
/// entry without a reply.
fn rst_frames() -> Frames {
    let mut f = Frames::with_capacity(N);
    for i in 0..N as u64 {
        let s = ClientSeg {
            control: RST,
            seq: client_isn(i).wrapping_add(1),
            ack: 0,
            window: 0,
            options: TcpOptions::NONE,
            payload: &[],
        };
        f.put(i as usize, i, &s);
    }
    f
}

/// Answers every SYN (untimed) and builds the ACKs a client returns for
/// the SYN-ACKs it got.
fn answer_syns(ep: &mut Endpoint, syns: &Frames) -> Frames {
    let mut rx = Rx::new();
    let mut cap = Capture::default();
    for i in 0..N {
        rx.deliver(ep, T0, syns.get(i), &mut cap);
        ep.flush(T0, &mut cap);
    }
    assert_eq!(cap.frames.len(), N, "one SYN-ACK per SYN");
    let mut acks = Frames::with_capacity(N);
    for (i, f) in cap.frames.iter().enumerate() {
        let (seq, ack, tsval, control) = server_reply(f);
        assert_eq!(control, SYN | ACK);
        assert_eq!(ack, client_isn(i as u64).wrapping_add(1));
        let s = ClientSeg {
            control: ACK,
            seq: client_isn(i as u64).wrapping_add(1),
            ack: seq.wrapping_add(1),
            window: 502,
            options: TcpOptions { timestamp: tsval.map(|v| (client_ts(i as u64) + 1, v)), ..TcpOptions::NONE },
            payload: &[],
        };
        acks.put(i, i as u64, &s);
    }
    acks
}

fn reset_all(ep: &mut Endpoint, rsts: &Frames, n: usize) {
    let mut rx = Rx::new();
    let mut sink = Sink::new();
    for i in 0..n {
        rx.deliver(ep, T0, rsts.get(i), &mut sink);
    }
    ep.flush(T0, &mut sink);
    drain_events(ep);
    assert_eq!(ep.connections(), 0, "RSTs clear the table");
    assert_eq!(sink.frames, 0, "an in-window RST gets no answer");
}

/// SYN in, SYN-ACK out: `on_frame` + `flush` per SYN, stateful or cookie.
pub struct SynSynack {
    ep: Endpoint,
    syns: Frames,
    rsts: Frames,
    sink: Sink,
    rx: Rx,
    cookie: bool,
    next: usize,
}

impl SynSynack {
    pub fn new(cookie: bool, opts: fn(u32) -> TcpOptions) -> SynSynack {
        let mode = if cookie { CookieMode::Always } else { CookieMode::Auto };
        SynSynack {
            ep: endpoint(mode, capacity()),
            syns: syn_frames(opts),
            rsts: rst_frames(),
            sink: Sink::new(),
            rx: Rx::new(),
            cookie,
            next: 0,
        }
    }

    pub fn run(&mut self, iters: u64) -> StdDuration {
        if self.cookie {
            // No state: the same N SYNs go round.
            let before = self.sink.frames;
            let start = std::time::Instant::now();
            for _ in 0..iters {
                self.rx.deliver(&mut self.ep, T0, self.syns.get(self.next), &mut self.sink);
                self.ep.flush(T0, &mut self.sink);
                self.next = if self.next + 1 == N { 0 } else { self.next + 1 };
            }
            let t = start.elapsed();
            assert_eq!(self.ep.connections(), 0);
            assert_eq!(self.sink.frames - before, iters, "one SYN-ACK per SYN (in place)");
            return t;
        }
        let mut total = StdDuration::ZERO;
        let mut left = iters as usize;
        while left > 0 {
            let n = left.min(N);
            let before = self.sink.frames;
            let start = std::time::Instant::now();
            for i in 0..n {
                self.rx.deliver(&mut self.ep, T0, self.syns.get(i), &mut self.sink);
                self.ep.flush(T0, &mut self.sink);
            }
            total += start.elapsed();
            assert_eq!(self.ep.half_open() as usize, n, "every SYN kept half-open state");
            assert_eq!(self.sink.frames - before, n as u64, "one SYN-ACK per SYN");
            reset_all(&mut self.ep, &self.rsts, n);
            left -= n;
        }
        black_box(self.sink.bytes);
        total
    }
}

/// The handshake's final ACK creating the connection, from a half-open
/// entry or from a cookie. `on_frame` + `flush` + draining `Accepted`.
pub struct FinalAck {
    ep: Endpoint,
    syns: Frames,
    acks: Frames,
    rsts: Frames,
    sink: Sink,
    rx: Rx,
    cookie: bool,
}

impl FinalAck {
    pub fn new(cookie: bool) -> FinalAck {
        let mode = if cookie { CookieMode::Always } else { CookieMode::Auto };
        let mut ep = endpoint(mode, capacity());
        let syns = syn_frames(linux_syn_options);
        let rsts = rst_frames();
        let acks = answer_syns(&mut ep, &syns);
        if !cookie {
            reset_all(&mut ep, &rsts, N);
        }
        FinalAck { ep, syns, acks, rsts, sink: Sink::new(), rx: Rx::new(), cookie }
    }

    pub fn run(&mut self, iters: u64) -> StdDuration {
        let mut total = StdDuration::ZERO;
        let mut left = iters as usize;
        while left > 0 {
            let n = left.min(N);
            if !self.cookie {
                // The half-open entries the ACKs complete (same ISNs: same clock).
                let mut setup = Sink::new();
                for i in 0..n {
                    self.rx.deliver(&mut self.ep, T0, self.syns.get(i), &mut setup);
                    self.ep.flush(T0, &mut setup);
                }
            }
            let accepted = self.ep.stats.connections_accepted;
            let start = std::time::Instant::now();
            for i in 0..n {
                self.rx.deliver(&mut self.ep, T0, self.acks.get(i), &mut self.sink);
                self.ep.flush(T0, &mut self.sink);
                drain_events(&mut self.ep);
            }
            total += start.elapsed();
            assert_eq!(self.ep.stats.connections_accepted - accepted, n as u64, "every ACK established");
            assert_eq!(self.ep.half_open(), 0);
            assert_eq!(self.ep.connections(), n);
            reset_all(&mut self.ep, &self.rsts, n);
            left -= n;
        }
        black_box(self.sink.bytes);
        total
    }
}

pub const HTTP_BATCH: usize = 10_000;
pub const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 198.18.0.1\r\nUser-Agent: floodgate-bench\r\nAccept: */*\r\n\r\n";
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!";

/// What an HTTP responder does: read the request, write the response, close.
struct App {
    buf: [u8; 1024],
    responses: u64,
}

impl App {
    #[inline]
    fn run(&mut self, ep: &mut Endpoint) {
        while let Some(e) = ep.poll_event() {
            if let Event::Readable(h) = e {
                let n = ep.read(h, &mut self.buf).unwrap_or(0);
                if self.buf[..n].ends_with(b"\r\n\r\n") {
                    let _ = ep.write(h, RESPONSE);
                    let _ = ep.close(h);
                    self.responses += 1;
                }
            }
        }
    }
}

/// The four client frames of each connection in a batch.
struct Batch {
    syn: Frames,
    ack: Frames,
    get: Frames,
    fin: Frames,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            syn: Frames::with_capacity(HTTP_BATCH),
            ack: Frames::with_capacity(HTTP_BATCH),
            get: Frames::with_capacity(HTTP_BATCH),
            fin: Frames::with_capacity(HTTP_BATCH),
        }
    }

    /// Client `first + j` in cell `j`, for `n` connections opened at `now`.
    fn build(&mut self, secrets: &Secrets, first: u64, n: usize, now: Instant) {
        for j in 0..n {
            let id = first + j as u64;
            let (iss, ts_offset) = secrets.isn(&tuple(id), now);
            let s_ts = (now.total_millis() as u32).wrapping_add(ts_offset);
            let c = (id as u32).wrapping_mul(0x9e37_79b9);
            let c_ts = 1_000 + id as u32;
            let ts = |k: u32| TcpOptions { timestamp: Some((c_ts + k, s_ts)), ..TcpOptions::NONE };
            let s_ack = iss.0.wrapping_add(1);
            let syn = ClientSeg {
                control: SYN,
                seq: c,
                ack: 0,
                window: 64240,
                options: linux_syn_options(c_ts),
                payload: &[],
            };
            self.syn.put(j, id, &syn);
            let c1 = c.wrapping_add(1);
            let ack = ClientSeg { control: ACK, seq: c1, ack: s_ack, window: 502, options: ts(1), payload: &[] };
            self.ack.put(j, id, &ack);
            let get =
                ClientSeg { control: PSH | ACK, seq: c1, ack: s_ack, window: 502, options: ts(2), payload: REQUEST };
            self.get.put(j, id, &get);
            let fin = ClientSeg {
                control: FIN | ACK,
                seq: c1.wrapping_add(REQUEST.len() as u32),
                ack: s_ack.wrapping_add(RESPONSE.len() as u32 + 1),
                window: 502,
                options: ts(3),
                payload: &[],
            };
            self.fin.put(j, id, &fin);
        }
    }
}

/// One whole HTTP/1.1 `Connection: close` exchange per iteration, in
/// batches of 10 000 connections with distinct tuples, then 2MSL expiry.
pub struct HttpConn {
    ep: Endpoint,
    secrets: Secrets,
    batch: Batch,
    app: App,
    sink: Sink,
    rx: Rx,
    now: Instant,
    next_client: u64,
}

impl HttpConn {
    pub fn new() -> HttpConn {
        HttpConn {
            ep: endpoint(CookieMode::Auto, capacity()),
            secrets: Secrets::from_bytes(KEY),
            batch: Batch::new(),
            app: App { buf: [0; 1024], responses: 0 },
            sink: Sink::new(),
            rx: Rx::new(),
            now: T0,
            next_client: 0,
        }
    }

    pub fn run(&mut self, iters: u64) -> StdDuration {
        let two_msl = self.ep.config().time_wait();
        let mut total = StdDuration::ZERO;
        let mut left = iters as usize;
        let (ep, batch, app, sink, rx) = (&mut self.ep, &mut self.batch, &mut self.app, &mut self.sink, &mut self.rx);
        while left > 0 {
            let n = left.min(HTTP_BATCH);
            let now = self.now;
            batch.build(&self.secrets, self.next_client, n, now);
            self.next_client += n as u64;
            let (frames, tw_in, tw_out, resp) =
                (sink.frames, ep.stats.time_wait_entered, ep.stats.time_wait_expired, app.responses);
            let later = now + two_msl + Duration::from_millis(1);

            let start = std::time::Instant::now();
            for j in 0..n {
                for f in [&batch.syn, &batch.ack, &batch.get, &batch.fin] {
                    rx.deliver(ep, now, f.get(j), sink);
                    app.run(ep);
                    ep.flush(now, sink);
                }
            }
            while ep.time_wait() > 0 {
                ep.on_timers(later, sink);
                app.run(ep);
            }
            total += start.elapsed();

            assert_eq!(app.responses - resp, n as u64, "every request answered");
            assert_eq!(sink.frames - frames, 3 * n as u64, "SYN-ACK, response+FIN, last ACK");
            assert_eq!(ep.stats.time_wait_entered - tw_in, n as u64, "every connection entered TIME-WAIT");
            assert_eq!(ep.stats.time_wait_expired - tw_out, n as u64, "and left it after 2MSL");
            assert_eq!(ep.connections(), 0);
            self.now = later;
            left -= n;
        }
        black_box(sink.bytes);
        total
    }
}

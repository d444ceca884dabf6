//! End to end over `link::Memory` with faults: a client endpoint opens
//! 10,000 connections to a server endpoint; each sends a random number of
//! bytes each way and the two sides close in a random order. Every byte
//! must arrive exactly once and in order, every connection must end
//! normally (CLOSED, or TIME-WAIT and then CLOSED), and after 2MSL no table
//! entry, timer or buffer may be left on either side. Each case runs over
//! IPv4 and over IPv6 (the family is a parameter of `run`).

use floodgate::app::App;
use floodgate::link::memory::Faults;
use floodgate::sim::{Family, Pair};
use floodgate::table::Handle;
use floodgate::tcp::{Capacity, CloseReason, Endpoint, Event, Secrets, TcpConfig};
use floodgate::time::{Duration, Instant};

const SERVER_PORT: u16 = 80;
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// The byte at offset `k` of direction `dir` of connection `i`.
fn pattern(i: u32, dir: u32, k: usize) -> u8 {
    ((k as u32).wrapping_mul(2_654_435_761) ^ i.wrapping_mul(97) ^ dir.wrapping_mul(0x5bd1_e995)).to_le_bytes()[1]
}

/// What one connection has to do.
#[derive(Clone, Copy)]
struct Plan {
    /// Bytes the client sends, bytes the server sends.
    up: usize,
    down: usize,
    client_closes_first: bool,
}

#[derive(Clone, Copy, Default)]
struct ConnState {
    /// The handle this state belongs to: slots are reused, so events are
    /// checked against it.
    handle: Option<Handle>,
    id: u32,
    live: bool,
    sent: usize,
    received: usize,
    peer_closed: bool,
    shut: bool,
}

/// Both sides run this application, each in its role.
struct Tester {
    client: bool,
    family: Family,
    plans: Vec<Plan>,
    conns: Vec<ConnState>,
    /// Client only: next connection to open, and how many are open.
    next: u32,
    open: u32,
    max_open: u32,
    done: u32,
    errors: Vec<String>,
}

impl Tester {
    fn new(client: bool, family: Family, plans: Vec<Plan>, capacity: usize, max_open: u32) -> Tester {
        Tester {
            client,
            family,
            plans,
            conns: vec![ConnState::default(); capacity],
            next: 0,
            open: 0,
            max_open,
            done: 0,
            errors: Vec::new(),
        }
    }

    fn dir_out(&self) -> u32 {
        if self.client {
            0
        } else {
            1
        }
    }

    fn to_send(&self, id: u32) -> usize {
        let p = self.plans[id as usize];
        if self.client {
            p.up
        } else {
            p.down
        }
    }

    fn to_receive(&self, id: u32) -> usize {
        let p = self.plans[id as usize];
        if self.client {
            p.down
        } else {
            p.up
        }
    }

    fn closes_first(&self, id: u32) -> bool {
        self.plans[id as usize].client_closes_first == self.client
    }

    fn open_more(&mut self, ep: &mut Endpoint, now: Instant) {
        while self.client && self.open < self.max_open && (self.next as usize) < self.plans.len() {
            let id = self.next;
            let local = self.family.client((1024 + id) as u16);
            match ep.connect(now, local, self.family.server(SERVER_PORT), SERVER_MAC) {
                Ok(h) => {
                    self.conns[h.index() as usize] =
                        ConnState { handle: Some(h), id, live: true, ..ConnState::default() };
                    self.open += 1;
                    self.next += 1;
                }
                Err(e) => {
                    self.errors.push(format!("connect {id}: {e}"));
                    self.next += 1;
                }
            }
        }
    }

    fn pump(&mut self, ep: &mut Endpoint, h: Handle) {
        let st = self.conns[h.index() as usize];
        let (id, dir) = (st.id, self.dir_out());
        // Read everything there is and check it.
        let mut received = st.received;
        let mut bad = None;
        while ep.readable(h) > 0 {
            let _ = ep.recv(h, |data| {
                for (k, &b) in data.iter().enumerate() {
                    if b != pattern(id, 1 - dir, received + k) && bad.is_none() {
                        bad = Some(received + k);
                    }
                }
                received += data.len();
                data.len()
            });
        }
        if let Some(at) = bad {
            self.errors.push(format!("conn {id} dir {}: wrong byte at {at}", 1 - dir));
        }
        if received > self.to_receive(id) {
            self.errors.push(format!("conn {id}: {received} bytes, expected {}", self.to_receive(id)));
        }
        // Write what fits.
        let total = self.to_send(id);
        let mut sent = st.sent;
        let mut chunk = [0u8; 4096];
        while sent < total {
            let n = (total - sent).min(chunk.len()).min(ep.writable(h));
            if n == 0 {
                break;
            }
            for (k, b) in chunk[..n].iter_mut().enumerate() {
                *b = pattern(id, dir, sent + k);
            }
            match ep.write(h, &chunk[..n]) {
                Ok(w) => sent += w,
                Err(_) => break,
            }
        }
        let c = &mut self.conns[h.index() as usize];
        c.received = received;
        c.sent = sent;
        let all_sent = sent == total;
        if all_sent && !c.shut && (self.plans[id as usize].client_closes_first == self.client || c.peer_closed) {
            c.shut = true;
            let first = self.closes_first(id);
            let r = if first { ep.shutdown(h) } else { ep.close(h) };
            if let Err(e) = r {
                self.errors.push(format!("conn {id}: close: {e}"));
            }
        }
    }
}

impl App for Tester {
    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, ev: Event) {
        let h = match ev {
            Event::Accepted(h) | Event::Connected(h) => h,
            Event::Readable(h) | Event::Writable(h) | Event::PeerClosed(h) | Event::Closed(h, _) => h,
            Event::Deadline(h) => h,
        };
        let known = self.conns[h.index() as usize].handle == Some(h);
        if !known && !matches!(ev, Event::Accepted(_)) {
            self.errors.push(format!("event for an unknown handle: {ev:?}"));
            return;
        }
        match ev {
            Event::Accepted(h) => {
                let t = ep.tuple(h).unwrap();
                if t.remote().ip() != self.family.client(0).ip() {
                    self.errors.push(format!("accepted from {} over {:?}", t.remote(), self.family));
                }
                let port = t.remote_port;
                self.conns[h.index() as usize] =
                    ConnState { handle: Some(h), id: (port - 1024) as u32, live: true, ..Default::default() };
                self.pump(ep, h);
            }
            Event::Connected(h) | Event::Readable(h) | Event::Writable(h) => {
                if self.conns[h.index() as usize].live {
                    self.pump(ep, h);
                }
            }
            // The tester sets no deadlines.
            Event::Deadline(_) => self.errors.push(format!("unexpected {ev:?}")),
            Event::PeerClosed(h) => {
                self.conns[h.index() as usize].peer_closed = true;
                self.pump(ep, h);
            }
            Event::Closed(h, reason) => {
                let st = std::mem::take(&mut self.conns[h.index() as usize]);
                let id = st.id;
                if reason != CloseReason::Normal {
                    self.errors.push(format!("conn {id} closed: {reason:?}"));
                }
                if st.received != self.to_receive(id) || st.sent != self.to_send(id) {
                    self.errors.push(format!(
                        "conn {id} ended with {}/{} received, {}/{} sent",
                        st.received,
                        self.to_receive(id),
                        st.sent,
                        self.to_send(id)
                    ));
                }
                self.done += 1;
                if self.client {
                    self.open -= 1;
                    self.open_more(ep, now);
                }
            }
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn run(family: Family, n: u32, faults: Faults, seed: u64) {
    let mut rng = Rng(seed);
    let plans: Vec<Plan> = (0..n)
        .map(|_| Plan {
            up: (rng.next() % 20_000) as usize,
            down: (rng.next() % 20_000) as usize,
            client_closes_first: rng.next().is_multiple_of(2),
        })
        .collect();
    // The default MSL: 2MSL (60 s) outlasts the peer's backed-off FIN retransmissions.
    // Half the table as the half-open budget (the most allowed): 1,000
    // handshakes at once under loss stay stateful. Past the default 1/8 the
    // server would answer with cookies, and a cookie cannot survive the loss
    // of both the third segment and the first data segment (the check reads
    // SEG.SEQ - 1, as Linux's does): that would test cookies, not loss.
    let cfg = TcpConfig { half_open_budget: 1024, ..TcpConfig::default() };
    let cap = Capacity {
        connections: 2048,
        time_wait: 16384,
        buffers: 4096,
        buffer_size: 8192,
        events: 16384,
        ..Capacity::default()
    };
    let now = Instant::from_secs(1);
    let client_ep = Endpoint::new(cfg, cap, CLIENT_MAC, Secrets::from_bytes([1; 32]), now);
    let mut server_ep = Endpoint::new(cfg, cap, SERVER_MAC, Secrets::from_bytes([2; 32]), now);
    server_ep.listen(None, SERVER_PORT, cfg).unwrap();
    let client = Tester::new(true, family, plans.clone(), cap.connections as usize, 1000);
    let server = Tester::new(false, family, plans, cap.connections as usize, 0);
    let mut pair = Pair::new(now, (client_ep, client), (server_ep, server), faults, seed);
    pair.client.app.open_more(&mut pair.client.ep, now);

    let finished = pair.drive(Duration::from_secs(4 * 3600), |p| p.client.app.done == n && p.server.app.done == n);
    let (c, s) = (&pair.client.app, &pair.server.app);
    if !c.errors.is_empty() || !s.errors.is_empty() {
        eprintln!("client {:?}\nserver {:?}", pair.client.ep.stats, pair.server.ep.stats);
    }
    assert!(
        c.errors.is_empty(),
        "{family:?} client errors ({}): {:?}",
        c.errors.len(),
        &c.errors[..c.errors.len().min(10)]
    );
    assert!(
        s.errors.is_empty(),
        "{family:?} server errors ({}): {:?}",
        s.errors.len(),
        &s.errors[..s.errors.len().min(10)]
    );
    assert!(finished, "{family:?}: client done {}/{n}, server done {}/{n}", c.done, s.done);

    // Every connection is gone after 2MSL; nothing leaks.
    pair.drive(Duration::from_secs(300), |_| false);
    for (side, ep) in [("client", &pair.client.ep), ("server", &pair.server.ep)] {
        let side = format!("{family:?} {side}");
        assert_eq!(ep.connections(), 0, "{side}: connections left");
        assert_eq!(ep.time_wait(), 0, "{side}: TIME-WAIT left");
        assert_eq!(ep.armed_timers(), 0, "{side}: timers left");
        assert_eq!(ep.buffers_free(), cap.buffers as usize, "{side}: buffers leaked");
        assert_eq!(ep.half_open(), 0, "{side}: half-open left");
        assert_eq!(ep.stats.events_overflow, 0, "{side}: events lost");
    }
    let tw = pair.client.ep.stats.time_wait_entered + pair.server.ep.stats.time_wait_entered;
    assert!(tw >= n as u64 * 9 / 10, "{family:?}: nearly every connection went through TIME-WAIT on one side: {tw}");
    eprintln!(
        "{n} connections over {family:?}, loss {:.0}%: client {:?}\nserver {:?}\npipe {:?} / {:?}",
        faults.loss * 100.0,
        pair.client.ep.stats,
        pair.server.ep.stats,
        pair.client.link.stats(),
        pair.server.link.stats()
    );
}

fn without_loss(family: Family) {
    run(family, 10_000, Faults { delay: Duration::from_micros(100), ..Faults::default() }, 0x1234_5678);
}

fn with_5_percent_loss_duplication_and_reordering(family: Family) {
    let faults = Faults {
        loss: 0.05,
        duplicate: 0.01,
        delay: Duration::from_micros(500),
        jitter: Duration::from_micros(300),
        ..Faults::default()
    };
    run(family, 10_000, faults, 0x9abc_def0);
}

#[test]
fn ten_thousand_connections_without_loss_v4() {
    without_loss(Family::V4);
}

#[test]
fn ten_thousand_connections_without_loss_v6() {
    without_loss(Family::V6);
}

#[test]
fn ten_thousand_connections_with_5_percent_loss_duplication_and_reordering_v4() {
    with_5_percent_loss_duplication_and_reordering(Family::V4);
}

#[test]
fn ten_thousand_connections_with_5_percent_loss_duplication_and_reordering_v6() {
    with_5_percent_loss_duplication_and_reordering(Family::V6);
}

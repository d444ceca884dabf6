//! The proxy in the simulator: one endpoint runs the proxy; a second, the
//! "far" endpoint, plays both the clients (active opens to the VIP) and the
//! backends (listeners on 198.18.2.10-13), each connection by its own
//! addresses, so one `Memory` pipe joins all three parties. The far side's
//! link drops frames to "blackholed" addresses: a backend that never answers.

use super::ppv2::{self, Decoded};
use super::*;
use crate::link::memory::{self, Faults, Memory, MemoryTx};
use crate::link::{Link, RxAction};
use crate::shard;
use crate::tcp::{Capacity, Secrets, TcpConfig};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

const PROXY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const FAR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const VIP: &str = "198.18.0.1:80";
const CLIENT_IP: &str = "198.18.0.2";

fn backend(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 2, 10 + i)), 8080)
}

fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The far end's link: drops frames to the blackholed IPv4 addresses.
struct FarLink {
    mem: Memory,
    blackhole: HashSet<[u8; 4]>,
    dropped: u64,
}

impl Link for FarLink {
    type Tx<'a> = MemoryTx<'a>;
    fn poll_rx<H>(&mut self, budget: usize, mut handler: H) -> usize
    where
        H: FnMut(&mut [u8], &mut Self::Tx<'_>) -> RxAction,
    {
        let (bh, dropped) = (&self.blackhole, &mut self.dropped);
        self.mem.poll_rx(budget, |f, tx| {
            if f.len() >= 34 && f[12..14] == [0x08, 0x00] && bh.contains(&f[30..34]) {
                *dropped += 1;
                return RxAction::Release;
            }
            handler(f, tx)
        })
    }
    fn tx(&mut self) -> Self::Tx<'_> {
        self.mem.tx()
    }
    fn flush(&mut self) {
        self.mem.flush()
    }
}

/// What one far connection (client or backend) does.
#[derive(Debug, Default, Clone)]
struct Plan {
    out: Vec<u8>,
    /// Half-close once `out` is sent.
    shutdown_when_sent: bool,
    /// Hold `out` back until the peer's FIN.
    send_after_fin: bool,
    /// Leave received bytes in TCP's buffer.
    paused: bool,
    /// Reset the connection once this many bytes have arrived.
    reset_at: Option<usize>,
    /// Hold `out` back until this many bytes have arrived.
    send_after_received: usize,
}

#[derive(Debug, Default)]
struct FarConn {
    backend: bool,
    plan: Option<Plan>,
    out_off: usize,
    received: Vec<u8>,
    ppv2: Option<Decoded>,
    /// A backend: the address it was reached at.
    local: Option<SocketAddr>,
    connected: bool,
    peer_closed: bool,
    shut: bool,
    closed: Option<CloseReason>,
}

impl FarConn {
    fn done(&self) -> bool {
        self.closed.is_some()
    }
}

/// Clients and backends on the far endpoint.
struct Far {
    conns: HashMap<Handle, FarConn>,
    clients: Vec<Handle>,
    backends: Vec<Handle>,
    expect_ppv2: bool,
    /// A backend's plan, from the client it serves (PROXY header) if known.
    respond: Box<dyn FnMut(Option<SocketAddr>) -> Plan>,
}

impl Far {
    fn pump(&mut self, ep: &mut Endpoint, h: Handle) {
        let Some(c) = self.conns.get_mut(&h) else { return };
        if c.closed.is_some() {
            return;
        }
        if c.backend && c.plan.is_none() {
            // Take the PROXY header alone off the stream, then plan.
            let client = if self.expect_ppv2 {
                let mut got = None;
                let _ = ep.recv(h, |d| match ppv2::decode(d) {
                    Ok((dec, n)) => {
                        got = Some(dec);
                        n
                    }
                    Err(ppv2::DecodeError::Incomplete) => 0,
                    Err(e) => panic!("bad PROXY header {e:?}: {d:?}"),
                });
                let Some(dec) = got else { return };
                c.ppv2 = Some(dec);
                match dec {
                    Decoded::Proxy { client, .. } => Some(client),
                    _ => None,
                }
            } else {
                None
            };
            c.plan = Some((self.respond)(client));
        }
        let paused = c.plan.as_ref().is_some_and(|p| p.paused);
        let waiting = c.plan.as_ref().is_some_and(|p| c.received.len() < p.send_after_received);
        if !paused {
            while let Ok(n) = ep.recv(h, |d| {
                c.received.extend_from_slice(d);
                d.len()
            }) {
                if n == 0 {
                    break;
                }
            }
        }
        let Some(plan) = c.plan.as_ref() else { return };
        if plan.reset_at.is_some_and(|n| c.received.len() >= n) {
            ep.abort(h).unwrap();
            c.closed = Some(CloseReason::Aborted);
            return;
        }
        let waiting = waiting && c.received.len() < plan.send_after_received;
        if c.connected && !c.shut && c.out_off < plan.out.len() && (!plan.send_after_fin || c.peer_closed) && !waiting {
            if let Ok(n) = ep.write(h, &plan.out[c.out_off..]) {
                c.out_off += n;
            }
        }
        if c.shut || !c.connected {
            return;
        }
        let all_sent = c.out_off == plan.out.len();
        if c.peer_closed && ep.readable(h) == 0 && all_sent {
            ep.close(h).unwrap();
            c.shut = true;
        } else if plan.shutdown_when_sent && all_sent {
            ep.shutdown(h).unwrap();
            c.shut = true;
        }
    }
}

impl App for Far {
    fn on_event(&mut self, ep: &mut Endpoint, _now: Instant, ev: Event) {
        match ev {
            Event::Accepted(h) => {
                let local = ep.tuple(h).map(|t| t.local());
                self.conns.insert(h, FarConn { backend: true, connected: true, local, ..FarConn::default() });
                self.backends.push(h);
                self.pump(ep, h);
            }
            Event::Connected(h) => {
                if let Some(c) = self.conns.get_mut(&h) {
                    c.connected = true;
                }
                self.pump(ep, h);
            }
            Event::Readable(h) | Event::Writable(h) => self.pump(ep, h),
            Event::PeerClosed(h) => {
                if let Some(c) = self.conns.get_mut(&h) {
                    c.peer_closed = true;
                }
                self.pump(ep, h);
            }
            Event::Closed(h, r) => {
                if let Some(c) = self.conns.get_mut(&h) {
                    c.closed = Some(r);
                }
            }
            Event::Deadline(_) => {}
        }
    }
}

struct Sim {
    now: Instant,
    pep: Endpoint,
    plink: Memory,
    proxy: Proxy,
    fep: Endpoint,
    flink: FarLink,
    far: Far,
    next_port: u16,
}

struct Setup {
    /// Backends in the pool (by number), those listening, those blackholed.
    pool: Vec<u8>,
    listening: Vec<u8>,
    blackholed: Vec<u8>,
    proxy_protocol: bool,
    faults: Faults,
    seed: u64,
    /// Source ports `40000..40000 + ports` on 198.18.1.1-2.
    ports: u16,
    idle: Option<Duration>,
    respond: Box<dyn FnMut(Option<SocketAddr>) -> Plan>,
    /// Each pool backend's weight (default 1 each), and the algorithm.
    weights: Vec<u32>,
    balance: Algorithm,
    eject: Option<Eject>,
    check: Option<check::Check>,
    probe: check::Probe,
    rss: Option<RssChoice>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            pool: vec![0, 1, 2, 3],
            listening: vec![0, 1, 2, 3],
            blackholed: vec![],
            proxy_protocol: true,
            faults: Faults::default(),
            seed: 1,
            ports: 1000,
            idle: Some(IDLE_TIMEOUT),
            respond: Box::new(|_| Plan::default()),
            weights: vec![],
            balance: Algorithm::RoundRobin,
            eject: None,
            check: None,
            probe: check::Probe::Connect,
            rss: None,
        }
    }
}

fn capacity() -> Capacity {
    Capacity {
        connections: 512,
        time_wait: 1024,
        buffers: 2048,
        buffer_size: 16384,
        events: 16384,
        ..Capacity::default()
    }
}

impl Sim {
    fn new(s: Setup) -> Sim {
        let now = Instant::from_secs(1000);
        // One 16 KiB chunk each way (no growth), so the tests can bound
        // what a pair holds by its windows.
        let cfg = TcpConfig {
            delayed_ack: Duration::from_millis(40),
            max_send_buffer: 16384,
            max_recv_buffer: 16384,
            ..TcpConfig::default()
        };
        let mut pep = Endpoint::new(cfg, capacity(), PROXY_MAC, Secrets::from_bytes([42; 32]), now);
        pep.listen(Some(VIP.parse::<SocketAddr>().unwrap().ip()), 80, cfg).unwrap();
        let mut fep = Endpoint::new(cfg, capacity(), FAR_MAC, Secrets::from_bytes([7; 32]), now);
        for &i in &s.listening {
            fep.listen(Some(backend(i).ip()), 8080, cfg).unwrap();
        }
        let sources =
            Sources::new(Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2), 40000, 40000 + s.ports - 1)
                .unwrap();
        let weight = |k: usize| s.weights.get(k).copied().unwrap_or(1);
        let backends: Vec<_> = s
            .pool
            .iter()
            .enumerate()
            .map(|(k, &i)| Backend { addr: backend(i), mac: FAR_MAC, weight: weight(k) })
            .collect();
        let maglev = matches!(s.balance, Algorithm::Maglev { .. }).then(|| {
            let b: Vec<_> = backends.iter().map(|b| (b.addr, b.weight)).collect();
            Arc::new(maglev::Table::build(&b, maglev::DEFAULT_SIZE, 0).unwrap())
        });
        let pool = Pool { backends, proxy_protocol: s.proxy_protocol, balance: s.balance, maglev };
        let proxy = Proxy::new(
            512,
            ProxyConfig {
                pools: vec![pool],
                listener_pools: vec![],
                sources,
                connect_timeout: CONNECT_TIMEOUT,
                idle_timeout: s.idle,
                eject: s.eject,
                check: s.check,
                probe: s.probe.clone(),
                rss: s.rss.clone(),
            },
        );
        let (a, b) = memory::pair(s.faults, s.seed);
        a.set_now(now);
        let blackhole = s
            .blackholed
            .iter()
            .map(|&i| match backend(i).ip() {
                IpAddr::V4(v) => v.octets(),
                _ => unreachable!(),
            })
            .collect();
        Sim {
            now,
            pep,
            plink: a,
            proxy,
            fep,
            flink: FarLink { mem: b, blackhole, dropped: 0 },
            far: Far {
                conns: HashMap::new(),
                clients: Vec::new(),
                backends: Vec::new(),
                expect_ppv2: s.proxy_protocol,
                respond: s.respond,
            },
            next_port: 30000,
        }
    }

    /// A client from 198.18.0.2 to the VIP running `plan`.
    fn client(&mut self, plan: Plan) -> Handle {
        let port = self.next_port;
        self.next_port += 1;
        let local: SocketAddr = format!("{CLIENT_IP}:{port}").parse().unwrap();
        let h = self.fep.connect(self.now, local, VIP.parse().unwrap(), PROXY_MAC).unwrap();
        self.far.conns.insert(h, FarConn { plan: Some(plan), ..FarConn::default() });
        self.far.clients.push(h);
        h
    }

    fn step(&mut self) {
        let now = self.now;
        self.plink.set_now(now);
        loop {
            let a = shard::step(&mut self.pep, &mut self.plink, &mut self.proxy, now, usize::MAX);
            let b = shard::step(&mut self.fep, &mut self.flink, &mut self.far, now, usize::MAX);
            self.pep.check_invariants().unwrap();
            if a + b == 0 {
                return;
            }
        }
    }

    fn next_event(&self) -> Option<Instant> {
        [
            self.plink.next_arrival(),
            self.flink.mem.next_arrival(),
            self.pep.next_deadline(),
            self.fep.next_deadline(),
            self.proxy.next_check_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Steps and jumps time until `done` holds or `limit` passes.
    fn drive(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.step();
            if done(self) {
                return true;
            }
            let next = match self.next_event() {
                Some(t) => t.max(self.now + Duration::from_micros(1)),
                None => return false,
            };
            if next > end {
                self.now = end;
                self.step();
                return done(self);
            }
            self.now = next;
        }
    }

    /// Steps and jumps time for `d`.
    fn run_for(&mut self, d: Duration) {
        self.drive(d, |_| false);
    }

    /// Connections each backend (0..4) accepted.
    fn per_backend(&self) -> Vec<usize> {
        (0..4).map(|i| self.far.conns.values().filter(|c| c.local == Some(backend(i))).count()).collect()
    }

    fn conn(&self, h: Handle) -> &FarConn {
        &self.far.conns[&h]
    }

    /// The backend connection serving client `c` (by the PROXY header's port).
    fn backend_of(&self, c: Handle) -> Option<Handle> {
        let port = self.fep.tuple(c).map(|t| t.local_port).or_else(|| {
            let i = self.far.clients.iter().position(|&x| x == c)?;
            Some(30000 + i as u16)
        })?;
        self.far
            .backends
            .iter()
            .copied()
            .find(|b| matches!(self.conn(*b).ppv2, Some(Decoded::Proxy { client, .. }) if client.port() == port))
    }

    /// Drives until every far connection has ended and nothing is left in
    /// the proxy: not in its endpoint's table, not in its pair table.
    #[track_caller]
    fn finish(&mut self, limit: Duration) {
        let ok = self.drive(limit, |s| {
            s.far.conns.values().all(FarConn::done) && s.pep.connections() == 0 && s.proxy.live_sides() == 0
        });
        if !ok {
            let stuck: Vec<_> = self
                .far
                .conns
                .iter()
                .filter(|(_, c)| !c.done())
                .take(4)
                .map(|(h, c)| (self.fep.state(*h), c.backend, c.received.len(), c.out_off, c.peer_closed, c.shut))
                .collect();
            for (h, c) in &self.far.conns {
                if !c.backend {
                    eprintln!(
                        "client {:?}: closed {:?} out {} sent {} received {} peer_closed {} shut {}",
                        h,
                        c.closed,
                        c.plan.as_ref().unwrap().out.len(),
                        c.out_off,
                        c.received.len(),
                        c.peer_closed,
                        c.shut
                    );
                }
            }
            let mut proxy = Vec::new();
            self.pep.for_each_connection(|_, t, tcb| proxy.push((t.local(), t.remote(), tcb.state)));
            panic!(
                "not finished: far {stuck:?}, proxy {:?}, proxy sides {}, stats {:?}",
                &proxy[..proxy.len().min(6)],
                self.proxy.live_sides(),
                self.proxy.stats
            );
        }
        assert_eq!(self.proxy.pairs_active(), 0);
    }
}

/// A backend that answers the client `port` with `payload(port, len(port))`.
fn answer(
    len: impl Fn(u16) -> usize + 'static,
    shutdown_when_sent: bool,
    send_after_fin: bool,
) -> Box<dyn FnMut(Option<SocketAddr>) -> Plan> {
    Box::new(move |client| {
        let port = client.expect("PROXY header").port();
        Plan { out: payload(port as u64 * 7, len(port)), shutdown_when_sent, send_after_fin, ..Plan::default() }
    })
}

fn random_len(seed: u64, max: usize) -> usize {
    let b = payload(seed, 4);
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize % (max + 1)
}

/// Checks every client's bytes reached its backend and back, exactly.
#[track_caller]
fn check_bytes(s: &Sim, back_len: impl Fn(u16) -> usize) -> (u64, u64) {
    let (mut up, mut down) = (0, 0);
    for &c in &s.far.clients {
        let cc = s.conn(c);
        let b = s.backend_of(c).expect("a backend saw this client's PROXY header");
        let port = match s.conn(b).ppv2 {
            Some(Decoded::Proxy { client, .. }) => client.port(),
            _ => unreachable!(),
        };
        let sent = &cc.plan.as_ref().unwrap().out;
        assert!(
            s.conn(b).received == *sent,
            "client {port}: backend got {} of {} bytes",
            s.conn(b).received.len(),
            sent.len()
        );
        let want = payload(port as u64 * 7, back_len(port));
        assert!(cc.received == want, "client {port}: got {} of {} bytes", cc.received.len(), want.len());
        up += sent.len() as u64;
        down += want.len() as u64;
    }
    (up, down)
}

#[test]
fn random_payloads_are_spliced_both_ways_with_the_client_address_in_the_proxy_header() {
    let back = |port: u16| random_len(port as u64, 150_000);
    let mut s = Sim::new(Setup { respond: answer(back, false, false), ..Setup::default() });
    let mut ports = Vec::new();
    for i in 0..20u64 {
        let out = payload(1000 + i, random_len(i, 150_000));
        ports.push(s.next_port);
        s.client(Plan { out, shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(600));
    let (up, down) = check_bytes(&s, back);
    for (i, &c) in s.far.clients.iter().enumerate() {
        let b = s.backend_of(c).unwrap();
        let want =
            Decoded::Proxy { client: format!("{CLIENT_IP}:{}", ports[i]).parse().unwrap(), dest: VIP.parse().unwrap() };
        assert_eq!(s.conn(b).ppv2, Some(want), "the client's real address and port");
        assert_eq!(s.conn(c).closed, Some(CloseReason::Normal));
        assert_eq!(s.conn(b).closed, Some(CloseReason::Normal));
    }
    // Round-robin: 20 clients over 4 backends, 5 each.
    assert_eq!(s.per_backend(), vec![5; 4]);
    let st = s.proxy.stats;
    assert_eq!((st.bytes_client_to_backend, st.bytes_backend_to_client), (up, down));
    assert_eq!((st.clients_accepted, st.backend_connected, st.pairs_opened, st.pairs_ended), (20, 20, 20, 20));
    assert_eq!(st.proxy_headers_sent, 20);
    assert_eq!((st.fins_to_backend, st.fins_to_client), (20, 20));
    assert_eq!(st.resets_to_client + st.resets_to_backend + st.write_errors + st.stale_events, 0, "{st:?}");
    assert_eq!(s.pep.time_wait(), 20, "the proxy closed first towards the backends and waits out 2MSL");
}

/// A shard serving queue `queue` of a NIC whose RSS table spreads the
/// hash over four queues, under Microsoft's key.
fn rss(queue: u32, queues: u32) -> RssChoice {
    use crate::link::rss::{RssConfig, Steering, HASH_TOP, MS_KEY};
    let indir = (0..128).map(|i| i % queues).collect();
    let cfg = RssConfig { key: MS_KEY.to_vec(), indir, hfunc: HASH_TOP, input_xfrm: 0 };
    RssChoice { steering: Arc::new(Steering::new(&cfg).unwrap()), queue }
}

/// The queues of the replies to the proxy's open backend connections.
fn reply_queues(s: &Sim, r: &RssChoice) -> Vec<u32> {
    let mut out = Vec::new();
    s.pep.for_each_connection(|_, t, _| {
        let t = t.as_v4().unwrap();
        if t.local_addr[2] == 1 {
            // A backend connection (from 198.18.1.x): the reply comes from the backend.
            out.push(r.steering.queue(t.remote_addr, t.local_addr, t.remote_port, t.local_port));
        }
    });
    out
}

#[test]
fn source_ports_are_chosen_so_that_replies_hash_to_this_shards_queue() {
    let r = rss(2, 4);
    let mut s = Sim::new(Setup { rss: Some(r.clone()), ..Setup::default() });
    for _ in 0..40 {
        s.client(Plan { out: b"x".to_vec(), ..Plan::default() });
    }
    assert!(s.drive(Duration::from_secs(10), |s| s.proxy.stats.pairs_opened == 40));
    let queues = reply_queues(&s, &r);
    assert_eq!(queues, vec![2; 40], "every reply hashes to this shard's queue");
    let st = s.proxy.stats;
    assert_eq!((st.source_ports_by_hash, st.source_ports_fallback, st.source_ports_exhausted), (40, 0, 0));
    // Without the NIC's RSS, the cursor's order: about a quarter would hash here.
    let mut plain = Sim::new(Setup::default());
    for _ in 0..40 {
        plain.client(Plan { out: b"x".to_vec(), ..Plan::default() });
    }
    assert!(plain.drive(Duration::from_secs(10), |s| s.proxy.stats.pairs_opened == 40));
    let here = reply_queues(&plain, &r).iter().filter(|&&q| q == 2).count();
    assert!(here < 40, "{here} of 40 by chance");
    assert_eq!(plain.proxy.stats.source_ports_by_hash, 0);
}

/// A queue the indirection table never names: no port hashes there, so
/// every open falls back to a free port (its replies are handed over).
#[test]
fn a_queue_no_hash_reaches_falls_back_to_any_free_port() {
    let r = rss(5, 4);
    let mut s = Sim::new(Setup { rss: Some(r), ..Setup::default() });
    for _ in 0..8 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(60));
    let st = s.proxy.stats;
    assert_eq!((st.pairs_opened, st.pairs_ended), (8, 8));
    assert_eq!((st.source_ports_by_hash, st.source_ports_fallback, st.source_ports_exhausted), (0, 8, 0));
}

#[test]
fn backends_are_taken_in_turn_and_no_header_unless_asked() {
    let mut s = Sim::new(Setup { proxy_protocol: false, ..Setup::default() });
    for _ in 0..8 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(60));
    assert_eq!(s.per_backend(), vec![2; 4]);
    for c in s.far.conns.values().filter(|c| c.backend) {
        assert_eq!(c.received, b"x", "no PROXY header in front");
    }
    let st = s.proxy.stats;
    assert_eq!((st.backend_connects, st.pairs_opened, st.pairs_ended, st.proxy_headers_sent), (8, 8, 8, 0));
}

#[test]
fn client_half_close_first_the_backend_still_answers_after_it() {
    // The backend sends only once the client's FIN has come through.
    let back = |_| 40_000;
    let mut s = Sim::new(Setup { respond: answer(back, false, true), ..Setup::default() });
    let c = s.client(Plan { out: payload(1, 30_000), shutdown_when_sent: true, ..Plan::default() });
    s.finish(Duration::from_secs(60));
    check_bytes(&s, back);
    let b = s.backend_of(c).unwrap();
    assert!(s.conn(b).peer_closed && s.conn(c).peer_closed);
    assert_eq!((s.conn(c).closed, s.conn(b).closed), (Some(CloseReason::Normal), Some(CloseReason::Normal)));
}

#[test]
fn backend_half_close_first_the_client_still_sends_after_it() {
    let back = |_| 25_000;
    let mut s = Sim::new(Setup { respond: answer(back, true, false), ..Setup::default() });
    // The client sends only once the backend's FIN has come through.
    let c = s.client(Plan { out: payload(2, 50_000), send_after_fin: true, ..Plan::default() });
    s.finish(Duration::from_secs(60));
    check_bytes(&s, back);
    assert_eq!(s.conn(c).closed, Some(CloseReason::Normal));
    let st = s.proxy.stats;
    assert_eq!((st.fins_to_client, st.fins_to_backend, st.resets_to_client), (1, 1, 0));
    assert_eq!(s.pep.time_wait(), 1, "the backend closed first: the proxy's client side waits out 2MSL");
}

#[test]
fn bytes_behind_a_fin_wait_for_a_slow_backend_after_both_fins() {
    // The backend closes its side first and then stops reading; the client
    // sends 40 kB (within the buffers on the way) and its FIN. The proxy's
    // client side reaches TIME-WAIT with bytes it could not pass on yet:
    // they are held, not dropped.
    let mut s = Sim::new(Setup {
        respond: Box::new(|_| Plan { out: b"bye".to_vec(), shutdown_when_sent: true, paused: true, ..Plan::default() }),
        ..Setup::default()
    });
    let data = payload(9, 40_000);
    let c = s.client(Plan { out: data.clone(), send_after_fin: true, ..Plan::default() });
    assert!(s.drive(Duration::from_secs(30), |s| s.conn(c).done()), "the client is done: all sent, both FINs");
    s.drive(Duration::from_secs(5), |_| false);
    let b = s.far.backends[0];
    assert!(s.conn(b).received.is_empty());
    let mut held = Vec::new();
    s.pep.for_each_connection(|_, _, t| held.push((t.state, t.rx.len())));
    assert!(held.iter().any(|&(st, n)| st == crate::tcp::State::TimeWait && n > 0), "{held:?}");
    let r = s.far.conns.get_mut(&b).unwrap();
    r.plan.as_mut().unwrap().paused = false;
    s.far.pump(&mut s.fep, b);
    s.finish(Duration::from_secs(60));
    assert!(s.conn(b).received == data, "{} of {} bytes", s.conn(b).received.len(), data.len());
    assert_eq!(s.conn(b).closed, Some(CloseReason::Normal));
}

#[test]
fn a_client_reset_resets_the_backend() {
    let mut s = Sim::new(Setup {
        respond: Box::new(|_| Plan { out: payload(3, 1000), ..Plan::default() }),
        ..Setup::default()
    });
    // The client resets once the backend's 1000 bytes are in.
    let c = s.client(Plan { out: b"hello".to_vec(), reset_at: Some(1000), ..Plan::default() });
    s.finish(Duration::from_secs(60));
    let b = s.far.backends[0];
    assert_eq!(s.conn(c).closed, Some(CloseReason::Aborted));
    assert_eq!(s.conn(b).closed, Some(CloseReason::Reset));
    assert_eq!(s.conn(b).received, b"hello");
    let st = s.proxy.stats;
    assert_eq!((st.resets_to_backend, st.resets_to_client, st.pairs_ended), (1, 0, 1));
}

#[test]
fn a_backend_reset_resets_the_client() {
    let mut s = Sim::new(Setup {
        respond: Box::new(|_| Plan { out: b"partial".to_vec(), reset_at: Some(10_000), ..Plan::default() }),
        ..Setup::default()
    });
    // The client sends once "partial" is in, so the backend's RST comes after it.
    let c = s.client(Plan { out: payload(4, 20_000), send_after_received: 7, ..Plan::default() });
    s.finish(Duration::from_secs(60));
    let b = s.far.backends[0];
    assert_eq!(s.conn(b).closed, Some(CloseReason::Aborted));
    assert_eq!(s.conn(c).closed, Some(CloseReason::Reset));
    assert_eq!(s.conn(c).received, b"partial", "what the backend sent before its RST got through");
    let st = s.proxy.stats;
    assert_eq!((st.resets_to_client, st.resets_to_backend), (1, 0));
}

/// Sends 400 kB one way into a reader that has stopped: the windows close
/// end to end and the sender stalls with little in between; then the
/// reader reads and everything arrives.
fn stalled_reader(client_stalls: bool) {
    let big = payload(5, 400_000);
    let back = if client_stalls { big.clone() } else { Vec::new() };
    let mut s = Sim::new(Setup {
        respond: Box::new(move |_| Plan {
            out: back.clone(),
            shutdown_when_sent: true,
            paused: !client_stalls,
            ..Plan::default()
        }),
        ..Setup::default()
    });
    let c = s.client(Plan {
        out: if client_stalls { Vec::new() } else { big.clone() },
        shutdown_when_sent: true,
        paused: client_stalls,
        ..Plan::default()
    });
    let start = s.now;
    s.drive(Duration::from_secs(30), |s| s.now > start + Duration::from_secs(20));
    let b = s.far.backends[0];
    let (writer, reader) = if client_stalls { (b, c) } else { (c, b) };
    let sent = s.conn(writer).out_off;
    // Held in between: the writer's send buffer, the proxy's two buffers,
    // the reader's receive buffer (16 kB each), plus the header.
    assert!(sent > 0 && sent <= 4 * 16384 + 64, "the writer got {sent} bytes out before its window closed");
    assert!(s.proxy.stats.send_blocked > 0);
    let moved = s.proxy.stats.bytes_client_to_backend + s.proxy.stats.bytes_backend_to_client;
    assert!(moved <= 2 * 16384, "the proxy took {moved} bytes: no more than the far side's buffer");
    // The reader reads again.
    let r = s.far.conns.get_mut(&reader).unwrap();
    r.plan.as_mut().unwrap().paused = false;
    s.far.pump(&mut s.fep, reader);
    s.finish(Duration::from_secs(600));
    assert!(s.conn(reader).received == big);
}

#[test]
fn a_backend_that_stops_reading_closes_the_clients_window() {
    stalled_reader(false);
}

#[test]
fn a_client_that_stops_reading_closes_the_backends_window() {
    stalled_reader(true);
}

#[test]
fn a_silent_backend_times_out_and_the_next_one_serves() {
    let mut s = Sim::new(Setup {
        pool: vec![0, 1],
        blackholed: vec![0],
        respond: Box::new(|_| Plan { out: b"from 1".to_vec(), ..Plan::default() }),
        ..Setup::default()
    });
    let start = s.now;
    let c = s.client(Plan { out: b"hi".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    assert!(s.drive(Duration::from_secs(60), |s| s.conn(c).received == b"from 1"));
    let waited = s.now - start;
    assert!(waited >= CONNECT_TIMEOUT && waited < CONNECT_TIMEOUT + Duration::from_secs(1), "{waited:?}");
    s.finish(Duration::from_secs(60));
    assert_eq!(s.far.backends.len(), 1);
    assert_eq!(s.fep.tuple(s.far.backends[0]).map(|t| t.local()), None, "gone");
    assert_eq!(s.conn(s.far.backends[0]).received, b"hi", "the client's bytes waited, then went to backend 1");
    assert!(s.flink.dropped > 0, "SYNs to backend 0 vanished");
    let st = s.proxy.stats;
    assert_eq!(
        (st.backend_connects, st.backend_connect_timeouts, st.backend_retries, st.backend_connected),
        (2, 1, 1, 1)
    );
    assert_eq!(st.clients_reset_no_backend, 0);
}

#[test]
fn refused_then_refused_again_the_client_gets_an_rst() {
    // Neither backend listens: each SYN gets an RST.
    let mut s = Sim::new(Setup { pool: vec![0, 1], listening: vec![], ..Setup::default() });
    let c = s.client(Plan { out: b"anyone?".to_vec(), ..Plan::default() });
    s.finish(Duration::from_secs(60));
    assert_eq!(s.conn(c).closed, Some(CloseReason::Reset));
    let st = s.proxy.stats;
    assert_eq!(
        (st.backend_connects, st.backend_refused, st.backend_retries, st.clients_reset_no_backend),
        (2, 2, 1, 1)
    );
    assert_eq!((st.pairs_opened, st.pairs_ended), (0, 0));
}

#[test]
fn refused_then_the_next_backend_serves() {
    let mut s = Sim::new(Setup {
        pool: vec![0, 1],
        listening: vec![1],
        respond: Box::new(|_| Plan { out: b"1 here".to_vec(), ..Plan::default() }),
        ..Setup::default()
    });
    let c = s.client(Plan { out: b"hi".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    s.finish(Duration::from_secs(60));
    assert_eq!(s.conn(c).received, b"1 here");
    let st = s.proxy.stats;
    assert_eq!(
        (st.backend_refused, st.backend_retries, st.backend_connected, st.clients_reset_no_backend),
        (1, 1, 1, 0)
    );
}

#[test]
fn an_idle_pair_is_reset_and_reclaimed() {
    let mut s = Sim::new(Setup { idle: Some(Duration::from_secs(5)), ..Setup::default() });
    let chatty = s.client(Plan { out: b"x".to_vec(), ..Plan::default() });
    let idle = s.client(Plan::default());
    assert!(s.drive(Duration::from_secs(1), |s| s.proxy.stats.pairs_opened == 2));
    let start = s.now;
    for _ in 0..4 {
        s.drive(Duration::from_secs(3), |_| false);
        s.fep.write(chatty, b"y").unwrap();
    }
    assert!(s.conn(idle).done() && !s.conn(chatty).done());
    assert_eq!(s.conn(idle).closed, Some(CloseReason::Reset));
    assert!(s.now - start > Duration::from_secs(5));
    s.finish(Duration::from_secs(60));
    assert_eq!(s.conn(chatty).closed, Some(CloseReason::Reset), "then it fell silent too");
    let st = s.proxy.stats;
    assert_eq!((st.idle_timeouts, st.pairs_opened, st.pairs_ended), (2, 2, 2));
    assert_eq!(s.far.conns.values().filter(|c| c.backend && c.closed == Some(CloseReason::Reset)).count(), 2);
}

#[test]
fn source_tuples_wait_out_time_wait_then_are_reused() {
    // One backend, 2 addresses x 2 ports: 4 tuples.
    let mut s = Sim::new(Setup { pool: vec![0], ports: 2, proxy_protocol: false, ..Setup::default() });
    let first: Vec<_> =
        (0..5).map(|_| s.client(Plan { out: b"a".to_vec(), shutdown_when_sent: true, ..Plan::default() })).collect();
    s.drive(Duration::from_secs(10), |s| s.far.conns.values().filter(|c| !c.backend).all(FarConn::done));
    let reset: Vec<_> = first.iter().filter(|&&c| s.conn(c).closed == Some(CloseReason::Reset)).collect();
    assert_eq!(reset.len(), 1, "the fifth finds every tuple in use");
    assert_eq!(s.proxy.stats.source_ports_exhausted, 1);
    assert!(s.proxy.stats.source_tuples_in_use >= 4);
    // The proxy closed first towards the backend: the 4 tuples are in its TIME-WAIT.
    assert!(s.drive(Duration::from_secs(10), |s| s.pep.connections() == 0));
    assert_eq!(s.pep.time_wait(), 4);
    let c = s.client(Plan { out: b"b".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    s.drive(Duration::from_secs(5), |s| s.conn(c).done());
    assert_eq!(s.conn(c).closed, Some(CloseReason::Reset), "no tuple until 2MSL is over");
    assert_eq!(s.proxy.stats.source_tuples_in_time_wait, 4);
    // After 2MSL the tuples are free again.
    let tw = TcpConfig::default().time_wait();
    s.drive(tw, |s| s.pep.time_wait() == 0);
    let c = s.client(Plan { out: b"c".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    s.finish(Duration::from_secs(30));
    assert_eq!(s.conn(c).closed, Some(CloseReason::Normal));
    assert_eq!(s.far.conns.values().filter(|c| c.backend && c.received == b"c").count(), 1);
}

/// Random schedules with loss, duplication and reordering on the pipe:
/// random sizes both ways, random close orders; every byte arrives in
/// order both ways, every connection ends, nothing stays in the proxy, and
/// the endpoint's invariants hold after every step.
#[test]
fn property_every_byte_both_ways_under_loss_and_nothing_left_behind() {
    for seed in 1..=16u64 {
        let faults = Faults {
            loss: 0.03,
            duplicate: 0.01,
            delay: Duration::from_micros(200),
            jitter: Duration::from_micros(300),
            ..Faults::default()
        };
        let back_len = move |port: u16| random_len(seed * 7919 + port as u64, 40_000);
        let backend_first = move |port: u16| (seed + port as u64).is_multiple_of(2);
        let mut s = Sim::new(Setup {
            faults,
            seed,
            respond: Box::new(move |client| {
                let port = client.unwrap().port();
                Plan {
                    out: payload(port as u64 * 7, back_len(port)),
                    shutdown_when_sent: backend_first(port),
                    ..Plan::default()
                }
            }),
            ..Setup::default()
        });
        for i in 0..16u64 {
            let port = s.next_port;
            let len = random_len(seed * 31 + i, 40_000);
            s.client(Plan {
                out: payload(seed * 100 + i, len),
                shutdown_when_sent: !backend_first(port),
                ..Plan::default()
            });
        }
        s.finish(Duration::from_secs(3600));
        check_bytes(&s, back_len);
        assert!(s.plink.stats().lost > 0 && s.flink.mem.stats().lost > 0, "seed {seed}: loss both ways");
        for c in s.far.conns.values() {
            assert_eq!(c.closed, Some(CloseReason::Normal), "seed {seed}");
        }
        let st = s.proxy.stats;
        assert_eq!(
            (st.pairs_opened, st.pairs_ended, st.resets_to_client + st.resets_to_backend),
            (16, 16, 0),
            "seed {seed}"
        );
    }
}

#[test]
fn weights_share_the_clients_and_weight_zero_takes_none() {
    // Smooth WRR over weights 2:1:1:0 (the fourth drained).
    let mut s = Sim::new(Setup { weights: vec![2, 1, 1, 0], balance: Algorithm::Wrr, ..Setup::default() });
    for _ in 0..8 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(60));
    assert_eq!(s.per_backend(), vec![4, 2, 2, 0]);
    assert_eq!(s.proxy.stats.pairs_ended, 8);
    // The per-backend figures the metrics export.
    let mut figures = vec![];
    s.proxy.for_each_backend(&mut |pool, addr, f| figures.push((pool, addr, f.connects, f.bytes_to, f.active, f.up)));
    let want: Vec<_> = [(4, true), (2, true), (2, true), (0, false)]
        .iter()
        .enumerate()
        .map(|(i, &(n, up))| (0, backend(i as u8), n, n, 0, up))
        .collect();
    assert_eq!(figures, want);
}

#[test]
fn a_refused_backend_is_retried_on_the_next_one_with_weight() {
    // Backend 1 refuses; the retry skips the drained backend 2 for backend 3.
    let mut s = Sim::new(Setup {
        listening: vec![0, 3],
        weights: vec![0, 1, 0, 1],
        balance: Algorithm::LeastConn,
        ..Setup::default()
    });
    for _ in 0..4 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(60));
    assert_eq!(s.per_backend(), vec![0, 0, 0, 4]);
    let st = s.proxy.stats;
    assert_eq!((st.clients_reset_no_backend, st.pairs_ended), (0, 4));
    assert!(st.backend_retries >= 1, "{st:?}");
}

#[test]
fn maglev_sends_a_client_to_the_same_backend_every_time() {
    let mut s = Sim::new(Setup { balance: Algorithm::Maglev { source_affinity: true }, ..Setup::default() });
    for _ in 0..8 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(60));
    // One client address, source affinity: one backend for all of them.
    let per = s.per_backend();
    assert_eq!(per.iter().filter(|&&n| n > 0).count(), 1, "{per:?}");
    assert_eq!(per.iter().sum::<usize>(), 8);
}

#[test]
fn a_failing_backend_is_ejected_then_readmitted_after_its_rest() {
    // Backend 1 refuses. With ejection after 2 failures for 5 s, it costs
    // two retries, then the clients go straight to the others.
    let eject = Eject { after: 2, time: Duration::from_secs(5), max_percent: 100 };
    let mut s = Sim::new(Setup { listening: vec![0, 2, 3], eject: Some(eject), ..Setup::default() });
    for _ in 0..12 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
        s.run_for(Duration::from_millis(50));
    }
    s.finish(Duration::from_secs(2));
    let st = s.proxy.stats;
    assert_eq!((st.backend_ejections, st.backend_retries, st.clients_reset_no_backend), (1, 2, 0), "{st:?}");
    let per = s.per_backend();
    assert_eq!((per[1], per.iter().sum::<usize>()), (0, 12), "{per:?}");
    // After its rest it is tried again (and, still refusing, ejected again
    // after 2 more failures, for twice as long).
    s.run_for(Duration::from_secs(6));
    for _ in 0..12 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
        s.run_for(Duration::from_millis(50));
    }
    s.finish(Duration::from_secs(2));
    let st = s.proxy.stats;
    assert_eq!((st.backend_readmissions, st.backend_ejections, st.backend_retries), (1, 2, 4), "{st:?}");
    let mut f1 = None;
    s.proxy.for_each_backend(&mut |_, addr, f| {
        if addr == backend(1) {
            f1 = Some(*f);
        }
    });
    let f1 = f1.unwrap();
    assert_eq!((f1.connects, f1.connect_failures, f1.ejections, f1.up), (4, 4, 2, false));
    assert_eq!(st.clients_reset_no_backend, 0);
}

#[test]
fn ejection_never_takes_out_more_than_its_share_of_the_pool() {
    // Backends 0 and 1 of 4 refuse; at 10 % of 4 only one may rest at a
    // time. The first client tries 0 (ejected) then 1 and is reset, as any
    // client whose two tries both fail; after that 1 stays in the rotation
    // and each of its clients is retried on 2: nobody else is turned away.
    let eject = Eject { after: 1, time: Duration::from_secs(60), max_percent: 10 };
    assert_eq!((eject.cap(4), eject.cap(1), eject.cap(20)), (1, 1, 2));
    let mut s = Sim::new(Setup { listening: vec![2, 3], eject: Some(eject), ..Setup::default() });
    for _ in 0..12 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
        s.run_for(Duration::from_millis(50));
    }
    s.finish(Duration::from_secs(2));
    let st = s.proxy.stats;
    assert_eq!((st.backend_ejections, st.clients_reset_no_backend, st.no_backend_available), (1, 1, 0), "{st:?}");
    assert!(st.backend_ejections_capped >= 1, "the second refusing backend was not ejected: {st:?}");
    let per = s.per_backend();
    assert_eq!((per[0], per[1], per.iter().sum::<usize>()), (0, 0, 11), "{per:?}");
}

#[test]
fn with_every_backend_ejected_clients_are_reset_at_once() {
    let eject = Eject { after: 1, time: Duration::from_secs(60), max_percent: 100 };
    let mut s = Sim::new(Setup { pool: vec![0, 1], listening: vec![], eject: Some(eject), ..Setup::default() });
    // The first client's two tries eject both backends.
    s.client(Plan { out: b"x".to_vec(), ..Plan::default() });
    s.finish(Duration::from_secs(2));
    for _ in 0..3 {
        s.client(Plan { out: b"x".to_vec(), ..Plan::default() });
    }
    s.finish(Duration::from_secs(2));
    let st = s.proxy.stats;
    assert_eq!((st.backend_ejections, st.no_backend_available, st.clients_reset_no_backend), (2, 3, 4), "{st:?}");
    assert_eq!(st.backend_connects, 2, "no connect is tried while every backend rests");
}

/// The operator drains a backend (`Order::Weight` 0, the admin interface):
/// its pair in flight goes on to the last byte, new clients go elsewhere;
/// undrained, it takes clients again; a backend added by a reload takes
/// its turn.
#[test]
fn a_drained_backend_keeps_its_pairs_and_takes_no_new_client() {
    let faults = Faults { delay: Duration::from_millis(5), ..Faults::default() };
    let mut s = Sim::new(Setup { pool: vec![0, 1], faults, ..Setup::default() });
    let big = s.client(Plan { out: payload(9, 300_000), shutdown_when_sent: true, ..Plan::default() });
    assert!(s.drive(Duration::from_secs(5), |s| s.backend_of(big).is_some()), "the first pair opens");
    let on = s.backend_of(big).map(|b| s.conn(b).local.unwrap()).expect("its backend");
    assert_eq!(on, backend(0), "round-robin starts with the first");
    assert!(s.conn(big).out_off < 300_000, "still under way when the drain comes");
    let drain = Order::Weight { pool: 0, backend: 0, weight: 0 };
    s.proxy.order(&mut s.pep, s.now, &drain);
    for _ in 0..4 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(60));
    assert_eq!(s.per_backend(), vec![1, 4, 0, 0], "after the drain, only backend 1");
    let b = s.backend_of(big).unwrap();
    assert_eq!(s.conn(b).received, payload(9, 300_000), "the drained backend's pair carried every byte");
    assert_eq!(s.conn(big).closed, Some(CloseReason::Normal));
    let mut figures = vec![];
    s.proxy.for_each_backend(&mut |_, _, f| figures.push((f.weight, f.up)));
    assert_eq!(figures, [(0, false), (1, true)]);
    // Every completed connect timed: one round trip of 10 ms each.
    let mut latency = vec![];
    s.proxy.for_each_backend(&mut |_, _, f| latency.push((f.connects, f.connect_latency)));
    for (connects, h) in latency {
        assert_eq!(h.count(), connects);
        assert_eq!(h.sum_us, connects * 10_000, "{h:?}");
    }
    // Undrained: its turn comes again.
    s.proxy.order(&mut s.pep, s.now, &Order::Weight { pool: 0, backend: 0, weight: 1 });
    for _ in 0..2 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(60));
    assert_eq!(s.per_backend(), vec![2, 5, 0, 0]);
    // A reload adds a backend: it takes its turn from the next client.
    let add = Order::AddBackend { pool: 0, backend: Backend { addr: backend(2), mac: FAR_MAC, weight: 1 } };
    s.proxy.order(&mut s.pep, s.now, &add);
    for _ in 0..3 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(60));
    assert_eq!(s.per_backend(), vec![3, 6, 1, 0]);
    // An order for a backend that does not exist changes nothing and is counted.
    s.proxy.order(&mut s.pep, s.now, &Order::Weight { pool: 0, backend: 7, weight: 1 });
    assert_eq!(s.proxy.stats.stale_events, 1);
}

/// Active checks (`check.rs`): a backend that refuses is out after `fall`
/// failed checks and takes no client meanwhile; listening again, it is
/// back after `rise` passed ones. A silent one times out the same way.
/// Check connections are reset, so none leaves TIME-WAIT behind.
#[test]
fn checks_take_a_refusing_or_silent_backend_out_and_bring_it_back() {
    let c = check::Check { interval: Duration::from_secs(1), timeout: Duration::from_millis(500), rise: 2, fall: 3 };
    let mut s = Sim::new(Setup {
        listening: vec![0, 1, 3],
        blackholed: vec![3],
        check: Some(c),
        proxy_protocol: false,
        ..Setup::default()
    });
    // The first checks go out at once, then one a second: down after the
    // third failure, before 3 s.
    s.run_for(Duration::from_millis(2600));
    let st = s.proxy.stats;
    assert_eq!(st.backends_marked_down, 2, "backends 2 (refusing) and 3 (silent): {st:?}");
    assert_eq!(st.health_checks, 12, "4 backends x 3 rounds");
    assert_eq!(st.health_check_failures, 6);
    let up = |s: &Sim| {
        let mut v = vec![];
        s.proxy.for_each_backend(&mut |_, _, f| v.push(f.up));
        v
    };
    assert_eq!(up(&s), [true, true, false, false]);
    assert_eq!(s.pep.time_wait(), 0, "check connections are reset, not closed into TIME-WAIT");
    for _ in 0..6 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.run_for(Duration::from_millis(300));
    let mut connects = vec![];
    s.proxy.for_each_backend(&mut |_, _, f| connects.push(f.connects));
    assert_eq!(connects, [3, 3, 0, 0], "clients only to the backends that pass");
    assert_eq!(s.proxy.stats.clients_reset_no_backend, 0);
    // Backend 2 listens again: back after two passes.
    let cfg = TcpConfig::default();
    s.fep.listen(Some(backend(2).ip()), 8080, cfg).unwrap();
    s.run_for(Duration::from_secs(2));
    assert_eq!(s.proxy.stats.backends_marked_up, 1);
    assert_eq!(up(&s), [true, true, true, false]);
    assert!(s.proxy.live_sides() <= 4, "only the checks under way hold state: {}", s.proxy.live_sides());
}

/// A drain with a maximum lifetime (`Order::Retire`): the drained
/// backend's long-lived pairs end gently within the window, spread over
/// it (a FIN to the backend, whose own FIN reaches the client after its
/// last byte); the other backend's pairs are untouched.
#[test]
fn a_drain_with_a_lifetime_ends_the_backends_pairs_gently_over_the_window() {
    let mut s = Sim::new(Setup { pool: vec![0, 1], ..Setup::default() });
    // Four clients that send a little and stay: two pairs on each backend.
    let clients: Vec<Handle> = (0..4).map(|_| s.client(Plan { out: b"hi".to_vec(), ..Plan::default() })).collect();
    s.run_for(Duration::from_millis(100));
    assert_eq!(s.proxy.pairs_active(), 4);
    let t0 = s.now;
    for o in [
        Order::Weight { pool: 0, backend: 0, weight: 0 },
        Order::Retire { pool: 0, backend: 0, within: Duration::from_secs(10) },
    ] {
        s.proxy.order(&mut s.pep, s.now, &o);
    }
    let ended = |s: &Sim| clients.iter().filter(|c| s.conn(**c).closed.is_some()).count();
    s.run_for(Duration::from_millis(4900));
    assert_eq!(ended(&s), 0, "none before its time");
    s.run_for(Duration::from_millis(200));
    assert_eq!(ended(&s), 1, "the first at 5 s");
    s.drive(Duration::from_secs(6), |s| s.now >= t0 + Duration::from_millis(10_100));
    assert_eq!(ended(&s), 2, "the second at 10 s");
    for c in &clients {
        let on0 = s.backend_of(*c).is_some_and(|b| s.conn(b).local == Some(backend(0)));
        let want = if on0 { Some(CloseReason::Normal) } else { None };
        assert_eq!(s.conn(*c).closed, want, "backend 0's pairs end normally, backend 1's go on");
    }
    assert_eq!(s.proxy.stats.retired, 2);
    assert_eq!(s.proxy.pairs_active(), 2);
    assert_eq!((s.proxy.stats.resets_to_client, s.proxy.stats.resets_to_backend), (0, 0));
}

/// HTTP checks: after a PROXY v2 `LOCAL` header (the pool sends headers)
/// the check asks `GET /health`; a 200 passes by default and fails where
/// 204 is expected.
#[test]
fn http_checks_judge_the_status_line_after_a_local_header() {
    let c = check::Check { interval: Duration::from_secs(1), timeout: Duration::from_millis(500), rise: 2, fall: 3 };
    for (expect, up) in [(None, true), (Some(204), false)] {
        let ok = |_| Plan {
            out: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            send_after_received: 1,
            ..Plan::default()
        };
        let mut s = Sim::new(Setup {
            pool: vec![0, 1],
            check: Some(c),
            probe: check::Probe::Http { path: "/health".into(), expect },
            respond: Box::new(ok),
            ..Setup::default()
        });
        s.run_for(Duration::from_millis(2600));
        let st = s.proxy.stats;
        assert_eq!(st.health_checks, 6, "{expect:?}: {st:?}");
        assert_eq!(st.health_check_failures, if up { 0 } else { 6 }, "{expect:?}: {st:?}");
        let mut ups = vec![];
        s.proxy.for_each_backend(&mut |_, _, f| ups.push(f.up));
        assert_eq!(ups, [up, up], "{expect:?}");
        assert_eq!(s.far.backends.len(), 6);
        for b in &s.far.backends {
            let conn = s.conn(*b);
            assert_eq!(conn.ppv2, Some(Decoded::Local), "a LOCAL header first");
            assert!(
                conn.received.starts_with(b"GET /health HTTP/1.1\r\nHost: 198.18.2.1"),
                "{:?}",
                String::from_utf8_lossy(&conn.received)
            );
        }
        assert_eq!(s.pep.time_wait(), 0, "checks are reset once judged");
    }
}

/// A reload's balance order: round-robin spreads one client address over
/// every backend; after the switch to Maglev with source affinity the same
/// address goes to one backend only, and the pairs made before stay.
#[test]
fn a_balance_order_changes_how_new_clients_are_placed() {
    let mut s = Sim::new(Setup::default());
    for _ in 0..8 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(60));
    assert_eq!(s.per_backend(), vec![2, 2, 2, 2], "round-robin");
    let b: Vec<_> = (0..4).map(|i| (backend(i), 1)).collect();
    let table = Arc::new(maglev::Table::build(&b, maglev::DEFAULT_SIZE, 0).unwrap());
    let algorithm = Algorithm::Maglev { source_affinity: true };
    let no_table = Order::Balance { pool: 0, algorithm, table: None };
    assert!(!s.proxy.apply(&mut s.pep, s.now, &no_table), "Maglev without a table is refused");
    assert!(s.proxy.apply(&mut s.pep, s.now, &Order::Balance { pool: 0, algorithm, table: Some(table) }));
    for _ in 0..8 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
    }
    s.finish(Duration::from_secs(60));
    let after: Vec<usize> = s.per_backend().iter().map(|n| n - 2).collect();
    assert_eq!(after.iter().filter(|&&n| n > 0).count(), 1, "one address, one backend: {after:?}");
    assert_eq!(s.proxy.stats.pairs_ended, 16);
}

/// A reload's health order: a refusing backend ejected under passive
/// ejection is readmitted at once when ejection is turned off.
#[test]
fn a_health_order_turning_ejection_off_readmits_the_ejected() {
    let eject = Eject { after: 1, time: Duration::from_secs(600), max_percent: 100 };
    let mut s = Sim::new(Setup { listening: vec![0, 2, 3], eject: Some(eject), ..Setup::default() });
    for _ in 0..6 {
        s.client(Plan { out: b"x".to_vec(), shutdown_when_sent: true, ..Plan::default() });
        s.run_for(Duration::from_millis(50));
    }
    s.finish(Duration::from_secs(2));
    let up = |s: &Sim| {
        let mut up = vec![];
        s.proxy.for_each_backend(&mut |_, _, f| up.push(f.up));
        up
    };
    assert_eq!(up(&s), [true, false, true, true], "backend 1 refused and was ejected");
    let order = Order::Health { eject: None, check: None, probe: check::Probe::Connect };
    assert!(s.proxy.apply(&mut s.pep, s.now, &order));
    assert_eq!(up(&s), [true, true, true, true], "no ejection any more: it takes clients again");
}

//! Test scaffolding for the applications: a server endpoint running an app
//! and a scripted client endpoint over `sim::Pair`.

use super::App;
use crate::link::memory::Faults;
use crate::sim::Pair;
use crate::table::Handle;
use crate::tcp::{Capacity, CloseReason, Endpoint, Event, Secrets, TcpConfig};
use crate::time::{Duration, Instant};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
pub const SERVER: &str = "198.18.0.1:80";
pub const CONNECTIONS: usize = 512;

pub fn capacity() -> Capacity {
    Capacity {
        connections: CONNECTIONS as u32,
        time_wait: 1024,
        buffers: 2048,
        buffer_size: 16384,
        events: 16384,
        ..Capacity::default()
    }
}

/// One chunk each way (16 KiB): the applications' backpressure tests fill
/// send and receive buffers with a few requests' worth of bytes.
pub fn tcp_config() -> TcpConfig {
    TcpConfig {
        delayed_ack: Duration::from_millis(40),
        max_send_buffer: 16384,
        max_recv_buffer: 16384,
        ..TcpConfig::default()
    }
}

/// What the scripted client does on one connection.
#[derive(Debug, Default)]
pub struct ClientConn {
    /// `(received, bytes)`: send `bytes` once `received` bytes have come back.
    pub script: VecDeque<(usize, Vec<u8>)>,
    pub out: Vec<u8>,
    pub out_off: usize,
    /// Half-close (FIN) once the script is sent.
    pub shutdown_when_sent: bool,
    /// Close once this many bytes have come back.
    pub close_at: Option<usize>,
    pub received: Vec<u8>,
    /// Leave received bytes unread (in TCP's buffer).
    pub paused: bool,
    /// Never close, even after the server's FIN (a vanished or lazy peer).
    pub never_close: bool,
    pub connected: bool,
    pub peer_closed: bool,
    /// We closed or shut down.
    pub shut: bool,
    pub closed: Option<CloseReason>,
}

impl ClientConn {
    /// Sends `bytes` as soon as connected.
    pub fn sending(bytes: &[u8]) -> ClientConn {
        ClientConn { script: VecDeque::from([(0, bytes.to_vec())]), ..ClientConn::default() }
    }
    pub fn done(&self) -> bool {
        self.closed.is_some()
    }
}

/// A client application running scripts, one per connection.
#[derive(Default)]
pub struct Client {
    pub conns: HashMap<Handle, ClientConn>,
    pub order: Vec<Handle>,
}

impl Client {
    /// Reads, sends what the script allows, and closes when it says so.
    pub fn pump(&mut self, ep: &mut Endpoint, h: Handle) {
        let Some(c) = self.conns.get_mut(&h) else { return };
        while !c.paused {
            let n = ep
                .recv(h, |d| {
                    c.received.extend_from_slice(d);
                    d.len()
                })
                .unwrap_or(0);
            if n == 0 {
                break;
            }
        }
        while c.script.front().is_some_and(|(at, _)| c.received.len() >= *at) {
            let (_, bytes) = c.script.pop_front().unwrap();
            c.out.extend_from_slice(&bytes);
        }
        if c.connected && !c.shut && c.out_off < c.out.len() {
            if let Ok(n) = ep.write(h, &c.out[c.out_off..]) {
                c.out_off += n;
            }
        }
        if c.shut || c.never_close {
            return;
        }
        if c.close_at.is_some_and(|n| c.received.len() >= n) || (c.peer_closed && ep.readable(h) == 0) {
            ep.close(h).unwrap();
            c.shut = true;
        } else if c.shutdown_when_sent && c.script.is_empty() && c.out_off == c.out.len() && c.connected {
            ep.shutdown(h).unwrap();
            c.shut = true;
        }
    }
}

impl App for Client {
    fn on_event(&mut self, ep: &mut Endpoint, _now: Instant, ev: Event) {
        match ev {
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
            Event::Accepted(_) => panic!("the client does not listen"),
            Event::Deadline(_) => {}
        }
    }
}

pub type TestPair<S> = Pair<Client, S>;

/// A server endpoint listening on port 80 running `app`, and a client.
pub fn pair<S: App>(app: S, faults: Faults, seed: u64) -> TestPair<S> {
    let now = Instant::from_secs(1000);
    let cfg = tcp_config();
    let mut server = Endpoint::new(cfg, capacity(), SERVER_MAC, Secrets::from_bytes([42; 32]), now);
    server.listen(None, 80, cfg).unwrap();
    let client = Endpoint::new(cfg, capacity(), CLIENT_MAC, Secrets::from_bytes([7; 32]), now);
    Pair::new(now, (client, Client::default()), (server, app), faults, seed)
}

/// Opens a client connection from `port` running `conn`.
pub fn connect<S: App>(p: &mut TestPair<S>, port: u16, conn: ClientConn) -> Handle {
    let local: SocketAddr = format!("198.18.0.2:{port}").parse().unwrap();
    let h = p.client.ep.connect(p.now, local, SERVER.parse().unwrap(), SERVER_MAC).unwrap();
    p.client.app.conns.insert(h, conn);
    p.client.app.order.push(h);
    h
}

/// Drives until every client connection has ended (or `limit` passes).
#[track_caller]
pub fn run_all<S: App>(p: &mut TestPair<S>, limit: Duration) {
    let ok = p.drive(limit, |p| p.client.app.conns.values().all(ClientConn::done));
    if !ok {
        let stuck: Vec<_> = p
            .client
            .app
            .conns
            .iter()
            .filter(|(_, c)| !c.done())
            .take(3)
            .map(|(h, c)| {
                (
                    p.client.ep.state(*h),
                    c.received.len(),
                    c.peer_closed,
                    c.shut,
                    c.script.len(),
                    String::from_utf8_lossy(&c.received[c.received.len().saturating_sub(200)..]).into_owned(),
                )
            })
            .collect();
        panic!(
            "connections did not finish: {} of {}; e.g. {stuck:#?}",
            p.client.app.conns.values().filter(|c| !c.done()).count(),
            p.client.app.conns.len()
        );
    }
}

/// The one connection's client side.
pub fn conn<S: App>(p: &TestPair<S>, h: Handle) -> &ClientConn {
    &p.client.app.conns[&h]
}

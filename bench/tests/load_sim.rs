//! The load generator's client app against an endpoint over link::Memory,
//! in virtual time: every mode completes its connections with no errors,
//! also under loss, and the percentiles come out.

use floodgate::app::App;
use floodgate::link::memory::Faults;
use floodgate::sim::Pair;
use floodgate::tcp::{Capacity, Endpoint, Event, Secrets, TcpConfig};
use floodgate::time::{Duration, Instant};
use floodgate_bench::load::{report, LoadApp, LoadConfig, Mode};

/// A minimal HTTP/echo server for the test: whole requests, fixed answer.
struct Server {
    echo: bool,
}

impl App for Server {
    fn on_event(&mut self, ep: &mut Endpoint, _: Instant, ev: Event) {
        match ev {
            Event::Readable(h) | Event::Writable(h) if self.echo => {
                let mut b = [0u8; 4096];
                loop {
                    let n = ep.readable(h).min(ep.writable(h)).min(b.len());
                    if n == 0 {
                        break;
                    }
                    let n = ep.read(h, &mut b[..n]).unwrap();
                    ep.write(h, &b[..n]).unwrap();
                }
            }
            Event::Readable(h) => {
                let mut b = [0u8; 4096];
                let n = ep.read(h, &mut b).unwrap();
                let req = &b[..n];
                let close = req.windows(17).any(|w| w == b"Connection: close");
                for _ in 0..req.windows(4).filter(|w| w == b"\r\n\r\n").count() {
                    let head: &[u8] = if close {
                        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\nHello, World!"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!"
                    };
                    ep.write(h, head).unwrap();
                }
                if close {
                    ep.close(h).unwrap();
                }
            }
            Event::PeerClosed(h) => {
                let _ = ep.close(h);
            }
            _ => {}
        }
    }
}

fn run(mode: Mode, count: u64, loss: f64) -> LoadApp {
    run_with(mode, count, loss, false, 4096)
}

/// With `open_first`, also checks that nothing was sent before every
/// connection of the concurrency opened.
fn run_with(mode: Mode, count: u64, loss: f64, open_first: bool, client_buffers: u32) -> LoadApp {
    let cfg = TcpConfig::default();
    let cap = Capacity { connections: 4096, time_wait: 65536, buffers: 4096, buffer_size: 8192, ..Capacity::default() };
    let now = Instant::from_secs(1);
    let client_cap = Capacity { buffers: client_buffers, ..cap };
    let client = Endpoint::new(cfg, client_cap, [2, 0, 0, 0, 0, 2], Secrets::from_bytes([1; 32]), now);
    let mut server = Endpoint::new(cfg, cap, [2, 0, 0, 0, 0, 1], Secrets::from_bytes([2; 32]), now);
    server.listen(None, 80, cfg).unwrap();
    let load = LoadConfig {
        mode,
        target: "198.18.0.1:80".parse().unwrap(),
        sources: (10..74).map(|i| format!("198.18.0.{i}").parse().unwrap()).collect(),
        ports: (1024, 65535),
        next_hop: [2, 0, 0, 0, 0, 1],
        rate: Some(20_000),
        concurrency: 500,
        count: Some(count),
        path: "/".into(),
        message_size: 1000,
        messages_per_conn: 5,
        open_first,
    };
    let app = LoadApp::new(load, cap.connections as usize);
    let faults = Faults { loss, delay: Duration::from_micros(50), ..Faults::default() };
    let mut pair = Pair::new(now, (client, app), (server, Server { echo: mode == Mode::Echo }), faults, 7);
    let end = now + Duration::from_secs(600);
    while pair.now < end && !pair.client.app.finished() {
        let now = pair.now;
        pair.client.app.tick(&mut pair.client.ep, now);
        pair.step();
        let t = pair.client.app.totals;
        if open_first && !pair.client.app.released() {
            assert_eq!((t.requests, t.echo_bytes), (0, 0), "sent before all opened: {t:?}");
        }
        if open_first && pair.client.app.released() {
            assert!(t.connects_ok >= 500.min(count), "released at {t:?}");
        }
        if mode == Mode::Rps
            && pair.client.app.totals.responses >= count * 20
            && pair.client.app.totals.connects_ok == count
        {
            pair.client.app.stop();
        }
        let next = pair.next_event().unwrap_or(now + Duration::from_millis(1));
        pair.now = next.min(now + Duration::from_millis(1)).max(now + Duration::from_micros(10));
    }
    pair.client.app
}

#[test]
fn cps_mode_completes_every_connection() {
    let app = run(Mode::Cps, 3000, 0.0);
    let t = app.totals;
    assert_eq!((t.connects_started, t.connects_ok, t.responses, t.closed_ok), (3000, 3000, 3000, 3000), "{t:?}");
    assert_eq!(t.connect_errors + t.resets + t.timeouts + t.bad_responses, 0, "{t:?}");
    assert_eq!(app.connect_us.len(), 3000);
    let s = report::summary(&app, "cps", 1.0);
    assert!(s.contains("p99.9"), "{s}");
    let j = report::json(&app, "cps", 1.0);
    assert!(j.contains("\"connects_ok\":3000"), "{j}");
}

#[test]
fn cps_mode_with_loss_still_completes() {
    let app = run(Mode::Cps, 1000, 0.05);
    let t = app.totals;
    assert_eq!((t.connects_ok, t.responses, t.closed_ok), (1000, 1000, 1000), "{t:?}");
}

#[test]
fn rps_mode_issues_requests_back_to_back() {
    let app = run(Mode::Rps, 100, 0.0);
    let t = app.totals;
    assert_eq!(t.connects_ok, 100);
    assert!(t.responses >= 2000, "{t:?}");
    assert_eq!(t.bad_responses + t.resets, 0, "{t:?}");
}

#[test]
fn echo_mode_checks_every_byte() {
    let app = run(Mode::Echo, 200, 0.02);
    let t = app.totals;
    assert_eq!(t.connects_ok, 200);
    assert_eq!(t.echo_bytes, 200 * 5 * 1000, "{t:?}");
    assert_eq!(t.echo_mismatches, 0);
    assert_eq!(t.responses, 200 * 5);
}

#[test]
fn open_first_sends_nothing_until_every_connection_is_open() {
    for mode in [Mode::Echo, Mode::Rps] {
        let app = run_with(mode, 500, 0.02, true, 4096);
        let t = app.totals;
        assert!(app.released(), "{mode:?}: {t:?}");
        assert_eq!(t.connects_ok, 500, "{mode:?}: {t:?}");
        assert_eq!(t.echo_mismatches + t.bad_responses + t.resets + t.timeouts, 0, "{mode:?}: {t:?}");
        if mode == Mode::Echo {
            assert_eq!(t.echo_bytes, 500 * 5 * 1000, "{t:?}");
        } else {
            assert!(t.responses >= 500 * 20, "{t:?}");
        }
    }
}

/// 500 connections sending their messages at once through 64 buffer chunks:
/// writes come back short or empty while `writable` shows room, and the
/// client waits for `Writable` instead of spinning on them.
#[test]
fn echo_mode_waits_out_a_dry_buffer_pool() {
    let app = run_with(Mode::Echo, 500, 0.0, true, 64);
    let t = app.totals;
    assert_eq!(t.connects_ok, 500, "{t:?}");
    assert_eq!(t.echo_bytes, 500 * 5 * 1000, "{t:?}");
    assert_eq!(t.echo_mismatches + t.resets + t.timeouts, 0, "{t:?}");
}

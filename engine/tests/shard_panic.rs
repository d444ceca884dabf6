//! A shard whose application panics on the data path: the runner catches the
//! panic, reports `Exited(index, Some(message))` to the control side, and the
//! other shards still stop in order on `Command::Stop`. Root: runs in the
//! testbed's server namespace (skips loudly otherwise, never under CI=true).

mod xdp_common;

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant as StdInstant};

use floodgate::app::App;
use floodgate::link::xdp::arms::Arms;
use floodgate::link::xdp::{Xdp, XdpConfig, XdpMode, XdpProgram};
use floodgate::shard::{AppStats, Command as ShardCommand, Report, ShardSpec};
use floodgate::tcp::{Capacity, Endpoint, Event, Secrets, TcpConfig};
use floodgate::time::Instant;
use xdp_common::*;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PORT: u16 = 80;

/// Panics on the first event it is handed (a connection accepted).
struct PanicOnEvent;

impl App for PanicOnEvent {
    fn on_event(&mut self, _ep: &mut Endpoint, _now: Instant, ev: Event) {
        panic!("the application failed on {ev:?}");
    }
}

impl AppStats for PanicOnEvent {
    fn name(&self) -> &'static str {
        "panic"
    }
    fn for_each_stat(&self, _f: &mut dyn FnMut(&'static str, &'static str, u64)) {}
}

/// The MAC of `dev` in this thread's namespace (sysfs shows the initial one).
fn mac_of(dev: &str) -> [u8; 6] {
    let (ok, out) = sh(Command::new("ip").args(["-o", "link", "show", "dev", dev]));
    assert!(ok, "ip link show {dev}: {out}");
    let text = out.split("link/ether ").nth(1).and_then(|r| r.split_whitespace().next()).expect("a MAC");
    let mut mac = [0u8; 6];
    for (b, h) in mac.iter_mut().zip(text.split(':')) {
        *b = u8::from_str_radix(h, 16).expect("hex MAC");
    }
    mac
}

/// Moves the calling thread into the named network namespace.
fn enter_netns(name: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{name}")).expect("open the netns");
    // SAFETY: setns on a namespace fd we own; affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({name}): {}", std::io::Error::last_os_error());
}

#[test]
fn a_panicking_shard_reports_and_the_others_stop() {
    if !require_root("shard_panic::a_panicking_shard_reports_and_the_others_stop") {
        return;
    }
    let _tb = Testbed::up();
    // Everything below runs in fgt-srv: the shard threads inherit it.
    std::thread::spawn(|| {
        enter_netns(SRV_NS);
        let mut program = XdpProgram::load().expect("load the XDP program");
        program.attach("fg-s0", XdpMode::Native).expect("attach native XDP on fg-s0");
        program.add_vip(IpAddr::V4(VIP), PORT).expect("own the VIP");
        let mac = mac_of("fg-s0");
        let (report_tx, report_rx) = crossbeam_channel::unbounded();
        let epoch = StdInstant::now();
        // One shard per RX queue: the client's SYN may land on either.
        let mut shards = Vec::new();
        for queue in 0..2 {
            let link = Xdp::bind(&program, "fg-s0", queue, &XdpConfig::default()).expect("bind");
            let spec = ShardSpec { index: queue as usize, cpu: None, epoch, busy_poll: Default::default() };
            let make = move |now: Instant| {
                let cap = Capacity { connections: 1024, time_wait: 1024, buffers: 1024, ..Capacity::default() };
                let mut ep = Endpoint::new(TcpConfig::default(), cap, mac, Secrets::random(), now);
                ep.listen(Some(IpAddr::V4(VIP)), PORT, TcpConfig::default()).expect("listen");
                (ep, PanicOnEvent)
            };
            shards.push(
                floodgate::shard::runner::spawn(spec, Arms::one(link), None, make, report_tx.clone()).expect("spawn"),
            );
        }

        // A client connects: the shard that gets it accepts, and its
        // application panics on the Accepted event.
        let (_, out) = sh(Command::new("ip").args([
            "netns",
            "exec",
            CLI_NS,
            "curl",
            "-s",
            "-m",
            "2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{VIP}:{PORT}/"),
        ]));
        let deadline = StdInstant::now() + Duration::from_secs(10);
        let panicked = loop {
            let left = deadline.saturating_duration_since(StdInstant::now());
            match report_rx.recv_timeout(left) {
                Ok(Report::Exited(i, Some(msg))) => break (i, msg),
                Ok(Report::Exited(i, None)) => panic!("shard {i} exited without a panic"),
                Ok(_) => continue,
                Err(_) => panic!("no shard reported a panic within 10 s (curl said {out:?})"),
            }
        };
        assert!(panicked.1.contains("the application failed on Accepted"), "{panicked:?}");

        // The control side's reaction: stop the others; each reports a
        // clean exit and its thread ends.
        let mut clean = Vec::new();
        for s in &shards {
            if s.index != panicked.0 {
                s.send(ShardCommand::Stop);
            }
        }
        while clean.len() < shards.len() - 1 {
            match report_rx.recv_timeout(Duration::from_secs(5)) {
                Ok(Report::Exited(i, None)) => clean.push(i),
                Ok(Report::Exited(i, Some(msg))) => panic!("shard {i} panicked too: {msg}"),
                Ok(_) => continue,
                Err(_) => panic!("the other shard did not stop within 5 s"),
            }
        }
        assert_eq!(clean, vec![1 - panicked.0]);
        for mut s in shards {
            s.join();
        }
        // The program detaches with the last reference to it.
        drop(program);
        let (_, link) = sh(Command::new("ip").args(["-d", "link", "show", "dev", "fg-s0"]));
        assert!(!link.contains("prog/xdp"), "the XDP program is still attached:\n{link}");
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

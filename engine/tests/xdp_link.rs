//! `link::Xdp` and the XDP program on real interfaces (root; skipped loudly
//! otherwise, never under CI=true).
//!
//! * `reflector_on_testbed`: brings up `deploy/testbed.sh`, runs the example
//!   reflector in `fgt-srv` on both queues of `fg-s0` (XDP mode auto, which is
//!   native on veth, then generic), and has Linux's TCP in `fgt-cli` connect()
//!   from 64 source addresses: each connect() completes only if a SYN-ACK with
//!   the right ack number and valid checksums came back through AF_XDP (the
//!   testbed turns checksum offload off on fg-c0, so the client kernel checks).
//!   A port the reflector does not own is refused by fgt-srv's kernel (the
//!   program passed it). Then the program must be gone and the testbed down.
//! * `attach_and_bind_errors`: in a private network namespace (a thread that
//!   unshared its own), a veth whose native XDP the kernel refuses, to check
//!   the fallback, the clear errors, and detach on drop.

mod xdp_common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use floodgate::link::xdp::{AttachedMode, Xdp, XdpConfig, XdpMode, XdpProgram, ZeroCopy};
use xdp_common::{repo, require_root, sh, Testbed, CLI_NS, SRV_NS};

const PORT: u16 = 7;

/// The reflector example next to this test binary (cargo test builds
/// examples); built on demand when only this test target was built.
fn reflector_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/..");
    let bin = profile_dir.join("examples/reflector");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target_dir = profile_dir.parent().expect("target dir");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "floodgate", "--example", "reflector", "--target-dir"])
            .arg(target_dir)
            .current_dir(repo());
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let (ok, out) = sh(&mut cmd);
        assert!(ok && bin.exists(), "cannot build the reflector example:\n{out}");
    }
    bin
}

/// The reflector process; SIGKILLed on drop if still running.
struct Reflector {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Reflector {
    fn start(mode: &str) -> Self {
        let mut child = Command::new("ip")
            .args(["netns", "exec", SRV_NS])
            .arg(reflector_bin())
            .args(["--iface", "fg-s0", "--vip", "198.18.0.1", "--port", &PORT.to_string()])
            .args(["--queues", "0,1", "--seconds", "60", "--xdp-mode", mode])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the reflector");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {l}"));
            }
        });
        Reflector { child, lines: rx, seen: Vec::new() }
    }

    /// Waits (bounded) for a line containing `what`.
    fn wait_for(&mut self, what: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("reflector never printed {what:?}; output so far:\n{}", self.seen.join("\n"));
    }

    /// SIGINT, then waits (bounded) for it to print its totals and exit 0.
    fn stop(&mut self) -> String {
        // SAFETY: signalling the child we spawned, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let total = self.wait_for("reflector: total", Duration::from_secs(10));
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait().expect("try_wait") {
                Some(st) => {
                    assert!(st.success(), "reflector exited with {st}:\n{}", self.seen.join("\n"));
                    break;
                }
                None if Instant::now() < end => std::thread::sleep(Duration::from_millis(50)),
                None => panic!("reflector did not exit after SIGINT"),
            }
        }
        total
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        xdp_common::kill_and_reap(&mut self.child);
    }
}

/// Python client in fgt-cli: one connect() per source address 198.18.0.10-73
/// to the owned port, one to a port nobody owns. Prints `connected N
/// refused M failed K`.
///
/// Each connection ends with an abortive close (SO_LINGER 0: an RST). The
/// reflector answers SYNs only, so a FIN would never be acknowledged: the
/// client kernel would keep the orphan and retransmit the FIN some 200 ms
/// later, into the *next* reflector run's start-up, where a frame to the
/// VIP before its sockets are bound is `redirect_no_xsk` (and the kernel's
/// RST to it costs an ARP exchange, `pass_not_ip`). Which run those stray
/// FINs hit is a matter of timing (IPv6 addresses on the testbed shifted it
/// enough to fail the generic-mode round); with RSTs every run sees only
/// its own frames.
const CLIENT: &str = r#"
import socket, struct, sys
port = int(sys.argv[1])
ok = failed = 0
for i in range(10, 74):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.settimeout(3.0)
    s.bind(("198.18.0.%d" % i, 0))
    try:
        s.connect(("198.18.0.1", port))
        ok += 1
    except OSError as e:
        failed += 1
        print("connect from .%d: %s" % (i, e), file=sys.stderr)
    s.close()
refused = 0
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(3.0)
try:
    s.connect(("198.18.0.1", port + 1))
except ConnectionRefusedError:
    refused = 1
except OSError as e:
    print("unowned port: %s" % e, file=sys.stderr)
print("connected %d refused %d failed %d" % (ok, refused, failed))
"#;

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

fn xdp_attached_in_fg_srv() -> bool {
    let (ok, out) = sh(Command::new("ip").args(["-n", SRV_NS, "-d", "link", "show", "dev", "fg-s0"]));
    assert!(ok, "{out}");
    out.contains("prog/xdp")
}

#[test]
fn reflector_on_testbed() {
    if !require_root("xdp_link::reflector_on_testbed") {
        return;
    }
    let _bin = reflector_bin(); // build or find it before the testbed goes up
    let tb = Testbed::up();
    for (mode, expect) in [("auto", "XDP native"), ("generic", "XDP generic")] {
        let mut r = Reflector::start(mode);
        let attach = r.wait_for("XDP", Duration::from_secs(20));
        assert!(attach.contains(expect), "mode {mode}: {attach}");
        r.wait_for("ready", Duration::from_secs(20));
        assert!(xdp_attached_in_fg_srv(), "the program is attached while the reflector runs");

        let (ok, out) =
            sh(Command::new("ip").args(["netns", "exec", CLI_NS, "python3", "-c", CLIENT]).arg(PORT.to_string()));
        let total = r.stop();
        let report = format!("mode {mode}\nclient: {out}\nreflector:\n{}", r.seen.join("\n"));
        eprintln!("{report}");
        assert!(ok, "client failed: {report}");
        assert!(out.contains("connected 64 refused 1 failed 0"), "{report}");
        assert!(field(&total, "synack_sent") >= 64, "{report}");
        assert_eq!(field(&total, "malformed"), 0, "{report}");
        let xdp = r.seen.iter().find(|l| l.starts_with("reflector: xdp:")).expect("xdp stats line");
        assert!(field(xdp, "redirect") >= 64, "{report}");
        assert_eq!(field(xdp, "redirect_no_xsk"), 0, "both queues had a socket: {report}");
        assert!(field(xdp, "pass_not_vip") >= 1, "the unowned port went to the kernel: {report}");
        for q in r.seen.iter().filter(|l| l.contains(" link: ")) {
            for drop in ["tx_ring_full", "no_free_frame", "tx_bad_len", "kernel_rx_dropped", "kernel_rx_ring_full"] {
                assert_eq!(field(q, drop), 0, "{drop}: {report}");
            }
        }
        assert!(!xdp_attached_in_fg_srv(), "the program is detached when the reflector exits");
    }
    drop(tb);
    let (_, ns) = sh(Command::new("ip").args(["netns", "list"]));
    assert!(!ns.contains(SRV_NS) && !ns.contains(CLI_NS), "testbed down leaves nothing: {ns}");
}

/// Runs `f` on a thread with a network namespace of its own (gone with the
/// thread); `ip` commands spawned from it act in that namespace.
fn in_private_netns<F: FnOnce() + Send + 'static>(f: F) {
    std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
        f();
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

fn ip(args: &[&str]) {
    let (ok, out) = sh(Command::new("ip").args(args));
    assert!(ok, "ip {args:?}: {out}");
}

fn xdp_on(dev: &str) -> String {
    let (_, out) = sh(Command::new("ip").args(["-d", "link", "show", "dev", dev]));
    out
}

#[test]
fn attach_and_bind_errors() {
    if !require_root("xdp_link::attach_and_bind_errors") {
        return;
    }
    in_private_netns(|| {
        // fgt-a has 1 RX queue, its peer 2 TX queues: veth refuses native XDP
        // on fgt-a (it needs rx queues >= the peer's tx queues).
        ip(&[
            "link",
            "add",
            "fgt-a",
            "numrxqueues",
            "1",
            "numtxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            "fgt-b",
            "numrxqueues",
            "2",
            "numtxqueues",
            "2",
        ]);
        ip(&["link", "set", "fgt-a", "up"]);
        ip(&["link", "set", "fgt-b", "up"]);

        let mut p = XdpProgram::load().expect("load");
        let e = p.attach("fgt-a", XdpMode::Native).unwrap_err();
        assert!(e.to_string().contains("fgt-a"), "{e}");
        assert_eq!(
            p.attach("nope0", XdpMode::Auto).unwrap_err().to_string(),
            "no interface named nope0 in this network namespace (see `ip link`)"
        );

        let mode = p.attach("fgt-a", XdpMode::Auto).expect("auto falls back to generic");
        assert_eq!(mode, AttachedMode::Generic);
        assert!(p.native_fallback_reason().is_some());
        assert!(xdp_on("fgt-a").contains("xdpgeneric"), "{}", xdp_on("fgt-a"));

        // A second program on the same interface: busy, with the way out.
        let mut p2 = XdpProgram::load().expect("load");
        let e = p2.attach("fgt-a", XdpMode::Generic).unwrap_err();
        assert!(e.to_string().contains("already has an XDP program"), "{e}");

        p.add_vip(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1)), 80).unwrap();
        let cfg = XdpConfig::default();
        let e = Xdp::bind(&p, "fgt-a", 1, &cfg).unwrap_err();
        assert_eq!(e.to_string(), "interface fgt-a has 1 RX queue; queue 1 needs 2");
        let e = Xdp::bind(&p, "fgt-b", 0, &cfg).unwrap_err();
        assert!(e.to_string().contains("attached to fgt-a, not fgt-b"), "{e}");
        let req = XdpConfig { zero_copy: ZeroCopy::Require, ..XdpConfig::default() };
        let e = Xdp::bind(&p, "fgt-a", 0, &req).unwrap_err();
        assert!(e.to_string().contains("zero-copy"), "{e}");
        let bad = XdpConfig { frame_size: 1000, ..XdpConfig::default() };
        assert!(Xdp::bind(&p, "fgt-a", 0, &bad).unwrap_err().to_string().contains("2048 or 4096"));

        let x = Xdp::bind(&p, "fgt-a", 0, &cfg).expect("copy-mode bind");
        assert_eq!(x.bind_mode(), floodgate::link::xdp::BindMode::Copy);
        // The fill ring starts with all frames but the TX side's share and a batch.
        assert_eq!(x.free_frames(), cfg.tx_ring as usize + cfg.batch);
        drop(x);

        drop(p);
        assert!(!xdp_on("fgt-a").contains("prog/xdp"), "dropping the program detaches it");
        // Native on fgt-b (2 RX queues, peer 1 TX queue) is accepted.
        let mode = p2.attach("fgt-b", XdpMode::Auto).expect("native on fgt-b");
        assert_eq!(mode, AttachedMode::Native);
        p2.detach();
        assert!(!xdp_on("fgt-b").contains("prog/xdp"));
    });
}

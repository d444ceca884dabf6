//! Scale-out across boxes: two `floodgate serve --app proxy` boxes behind a
//! router that spreads the VIP's flows over them by BGP + ECMP, on
//! deploy/testbed-multi.sh (namespaces `fgmt-*`: router with BIRD, ECMP
//! on the 4-tuple and flow pinning; box1 and box2 each with floodgate and
//! the shipped BIRD config deploy/bird/floodgate-box.conf; nginx backends
//! 198.18.4.20-23; clients 198.18.6.x behind the router).
//!
//! Root only: skipped loudly otherwise, never under CI=true. Holds the
//! testbed lock; every command and wait is bounded.
//!
//! * `vip_routes_over_netlink`: the flag route added, replaced and deleted
//!   in a table of a fresh namespace, read back with `ip route`; deleting
//!   one that is not there is no error; `ip route flush table T proto 210`
//!   (the unit's ExecStopPost) removes floodgate's and nothing else.
//! * `two_boxes_behind_bgp_ecmp`, one story:
//!   1. both boxes announce the VIP (the router's route has both next
//!      hops, `floodgate_vip_announced 1`) and both carry wrk's traffic;
//!   2. 48 client 4-tuples, each answered by the backend Maglev picks;
//!   3. SIGTERM to box1 under traffic: the router loses box1's next hop
//!      within 5 s (the time is printed); box1 gets no new SYN after that;
//!      its established connections go on to the end (flow pinning), wrk's
//!      new connections see 0 errors, box1 drains and exits 0; the same 48
//!      4-tuples, now all through box2, reach the same backends;
//!   4. box1 back: announced again; SIGKILL of box2's floodgate alone: its
//!      route stays (BIRD still announces it) until the unit's ExecStopPost
//!      command runs; then it is gone; only box2's connections broke;
//!   5. box2 back; then it dies silently (its packets dropped, floodgate and
//!      BIRD SIGKILLed): the router drops it by the BGP hold time (3 s);
//!      only box2's connections broke, new connections see 0 errors;
//!   6. box1's backends stop answering its checks: it withdraws (the router
//!      has no route left), and announces again when they answer.

mod xdp_common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use xdp_common::proc::{in_ns, Proc};
use xdp_common::{repo, require_root, sh, sh_within, TestbedLock};

const PFX: &str = "fgmt";
const RT: &str = "fgmt-rt";
const CLI: &str = "fgmt-cli";
const BE: &str = "fgmt-be";
const BOX: [&str; 2] = ["fgmt-box1", "fgmt-box2"];
const BOX_ADDR: [&str; 2] = ["198.18.4.11", "198.18.4.12"];
const VIP: &str = "198.18.5.1";
const TABLE: &str = "4210";
const BACKENDS: [&str; 4] = ["198.18.4.20", "198.18.4.21", "198.18.4.22", "198.18.4.23"];
/// BGP hold time of deploy/bird/*.conf.
const HOLD: Duration = Duration::from_secs(3);

fn ok(ns: &str, args: &[&str]) -> String {
    let (good, out) = sh(&mut in_ns(ns, args));
    assert!(good, "{ns}: {args:?}:\n{out}");
    out
}

/// deploy/testbed-multi.sh up on the tests' namespaces; down on drop.
struct MultiTestbed {
    _lock: TestbedLock,
}

fn multi_sh(arg: &str) -> (bool, String) {
    sh_within(
        Command::new(repo().join("deploy/testbed-multi.sh")).arg(arg).env("FG_MULTI_NS", PFX),
        Duration::from_secs(60),
    )
}

impl MultiTestbed {
    fn up() -> MultiTestbed {
        let lock = TestbedLock::take();
        let (good, out) = multi_sh("up");
        assert!(good, "testbed-multi.sh up failed:\n{out}");
        MultiTestbed { _lock: lock }
    }
}

impl Drop for MultiTestbed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", multi_sh("status").1);
            for b in ["rt", "box1", "box2"] {
                let log = std::fs::read_to_string(format!("/run/{PFX}/bird-{b}.log")).unwrap_or_default();
                eprintln!("BIRD {b}:\n{log}");
            }
        }
        let (good, out) = multi_sh("down");
        if !good {
            eprintln!("testbed-multi.sh down failed:\n{out}");
        }
    }
}

/// nginx in fgmt-be on the four backend addresses, each answering `beN`.
fn nginx(dir: &std::path::Path) -> Proc {
    let d = dir.display();
    let mut conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 1000000;\n  client_body_temp_path {d}/body;\n"
    );
    for (i, a) in BACKENDS.iter().enumerate() {
        conf += &format!("  server {{ listen {a}:80; location / {{ return 200 \"be{i}\\n\"; }} }}\n");
    }
    conf += "}\n";
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut p = Proc::spawn(
        BE,
        &["nginx", "-g", "daemon off;", "-c", path.to_str().unwrap(), "-p", dir.to_str().unwrap(), "-e", "stderr"],
    );
    let end = Instant::now() + Duration::from_secs(15);
    for a in BACKENDS {
        while !sh(&mut in_ns(BE, &["curl", "-sS", "-m", "1", &format!("http://{a}/")])).0 {
            assert!(Instant::now() < end, "nginx on {a} not up:\n{}", p.log());
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("nginx exited with {st}:\n{}", p.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    p
}

/// floodgate on box `i` (0 or 1), the same pool and Maglev seed on both,
/// announcing the VIP in table 4210; returned once it announces.
fn floodgate(i: usize) -> Proc {
    let backends: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:80")).collect();
    let list = backends.join(",");
    let args = [
        env!("CARGO_BIN_EXE_floodgate"),
        "serve",
        "--iface",
        "fg-m0",
        "--vip",
        VIP,
        "--port",
        "80",
        "--app",
        "proxy",
        "--backend",
        &list,
        "--balance",
        "maglev",
        "--source-addrs",
        BOX_ADDR[i],
        "--source-ports",
        "10000-29999",
        "--queues",
        "1",
        "--xdp-mode",
        "generic",
        "--metrics",
        "127.0.0.1:9100",
        "--connections",
        "16384",
        "--buffers",
        "4096",
        "--msl",
        "2",
        "--drain",
        "30s",
        "--announce-table",
        TABLE,
        "--announce-wait",
        "3s",
    ];
    let mut p = Proc::spawn(BOX[i], &args);
    p.wait_for("VIP announced", Duration::from_secs(30));
    p
}

/// The router's next hops for the VIP now.
fn next_hops() -> Vec<String> {
    let (_, out) = sh_within(&mut in_ns(RT, &["ip", "route", "show", &format!("{VIP}/32")]), Duration::from_secs(5));
    BOX_ADDR.iter().filter(|a| out.contains(&format!("via {a} "))).map(|a| a.to_string()).collect()
}

/// Bounded wait until the router's next hops are `want`; how long it took.
fn wait_next_hops(want: &[&str], within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let now = next_hops();
        if now == want {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < within, "router's next hops {now:?}, not {want:?}, after {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The client address and port of every connection the router pinned to
/// box `b` (0 or 1) so far: its nft set `pinned_boxN` (testbed-multi.sh).
/// (The router's ECMP hash of a connection cannot be predicted here: see
/// the script's header.)
fn pinned(b: usize) -> HashSet<(String, u16)> {
    let out = ok(RT, &["nft", "-n", "list", "set", "ip", "fgm_pin", &format!("pinned_box{}", b + 1)]);
    let Some(i) = out.find("elements = {") else { return HashSet::new() };
    let body = &out[i + 12..out[i..].find('}').map_or(out.len(), |j| i + j)];
    body.split(',')
        .filter_map(|e| {
            let f: Vec<&str> = e.split_whitespace().collect();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?))
        })
        .collect()
}

/// The box each of `t` was pinned to (each in exactly one set).
fn boxes_of(t: &[(String, u16)]) -> Vec<usize> {
    let sets = [pinned(0), pinned(1)];
    t.iter()
        .map(|x| match (sets[0].contains(x), sets[1].contains(x)) {
            (true, false) => 0,
            (false, true) => 1,
            other => panic!("{x:?} pinned to (box1, box2) = {other:?}"),
        })
        .collect()
}

fn metrics(i: usize) -> String {
    let (good, out) = sh_within(
        &mut in_ns(BOX[i], &["curl", "-sS", "-m", "3", "http://127.0.0.1:9100/metrics"]),
        Duration::from_secs(10),
    );
    assert!(good, "metrics of box{}:\n{out}", i + 1);
    out
}

fn metric(text: &str, name: &str) -> u64 {
    xdp_common::metric(text, name)
}

/// wrk from fgmt-cli: new connection per request (`Connection: close`) or
/// keep-alive; asserts 0 socket errors, 0 non-2xx; the request count.
fn wrk(conns: u32, secs: u32, close: bool) -> u64 {
    let (c, d) = (conns.to_string(), format!("{secs}s"));
    let mut args = vec!["timeout", "-k", "5", "60", "wrk", "-t1", "-c", &c, "-d", &d, "--timeout", "5s"];
    if close {
        args.extend_from_slice(&["-H", "Connection: close"]);
    }
    let url = format!("http://{VIP}/");
    args.push(&url);
    let (good, out) = sh(&mut in_ns(CLI, &args));
    eprintln!("wrk (close {close}):\n{out}");
    assert!(good, "wrk failed:\n{out}");
    assert!(!out.contains("Socket errors"), "socket errors:\n{out}");
    assert!(!out.contains("Non-2xx"), "non-2xx answers:\n{out}");
    let line = out.lines().find(|l| l.contains("requests in")).expect("wrk summary");
    line.split_whitespace().next().unwrap().parse().unwrap()
}

/// The clients' side in Python: `once` (one request per 4-tuple, then an
/// RST, so the tuple can be used again at once: prints `src port name`),
/// `hold SECS` (a keep-alive connection per 4-tuple, a request on each
/// every 100 ms for SECS; prints `connected` once all are, then per
/// connection `src port ok|broken requests last_ok_unix`).
const CLIENT: &str = r#"
import socket, struct, sys, time
VIP = (sys.argv[1], 80)
mode = sys.argv[2]
tuples = [(a, int(p)) for a, p in (t.split(':') for t in sys.argv[4].split(','))]
REQ = b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n"
def answer(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d: raise EOFError("closed")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    n = 0
    for l in head.split(b"\r\n")[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length": n = int(v)
    while len(body) < n:
        d = s.recv(4096)
        if not d: raise EOFError("closed")
        body += d
    if not head.startswith(b"HTTP/1.1 200"): raise ValueError(head[:40])
    return body.decode().strip()
def connect(src, port, timeout):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, port))
    s.settimeout(timeout)
    s.connect(VIP)
    return s
if mode == "once":
    for src, port in tuples:
        try:
            s = connect(src, port, 3)
            s.sendall(REQ)
            name = answer(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except Exception as e:
            name = "error:" + type(e).__name__
        print(src, port, name, flush=True)
else:
    end = time.time() + float(sys.argv[3])
    conns = [[src, port, connect(src, port, 3), 0, 0.0, "ok"] for src, port in tuples]
    for c in conns: c[2].settimeout(1.5)
    print("connected", flush=True)
    while time.time() < end:
        for c in conns:
            if c[5] != "ok": continue
            try:
                c[2].sendall(REQ)
                answer(c[2])
                c[3] += 1
                c[4] = time.time()
            except Exception:
                c[5] = "broken"
                c[2].close()
        time.sleep(0.1)
    for c in conns:
        if c[5] == "ok": c[2].close()
        print(c[0], c[1], c[5], c[3], "%.3f" % c[4], flush=True)
"#;

/// `n` client 4-tuples from 198.18.6.10-41, source ports from `port0`.
fn tuples(n: usize, port0: u16) -> Vec<(String, u16)> {
    (0..n).map(|i| (format!("198.18.6.{}", 10 + i % 32), port0 + i as u16)).collect()
}

fn joined(t: &[(String, u16)]) -> String {
    t.iter().map(|(a, p)| format!("{a}:{p}")).collect::<Vec<_>>().join(",")
}

/// One request per tuple; the backend's name for each.
fn names(t: &[(String, u16)]) -> Vec<String> {
    let out = ok(CLI, &["timeout", "60", "python3", "-c", CLIENT, VIP, "once", "0", &joined(t)]);
    let names: Vec<String> = out.lines().map(|l| l.split_whitespace().nth(2).unwrap_or("?").to_string()).collect();
    assert_eq!(names.len(), t.len(), "{out}");
    names
}

/// A `hold` client under way.
struct Hold {
    proc: Proc,
    tuples: Vec<(String, u16)>,
    /// The box each connection went to.
    boxes: Vec<usize>,
}

struct Held {
    ok: bool,
    requests: u64,
    last_ok: f64,
}

impl Hold {
    fn start(t: Vec<(String, u16)>, secs: u32) -> Hold {
        let s = secs.to_string();
        let mut proc = Proc::spawn(CLI, &["timeout", "90", "python3", "-c", CLIENT, VIP, "hold", &s, &joined(&t)]);
        proc.wait_for("connected", Duration::from_secs(15));
        // Pinned by the handshake's last ACK; give the first requests a moment.
        std::thread::sleep(Duration::from_millis(300));
        let boxes = boxes_of(&t);
        for b in 0..2 {
            assert!(boxes.contains(&b), "some of {} connections go to box{}: {boxes:?}", t.len(), b + 1);
        }
        Hold { proc, tuples: t, boxes }
    }

    /// Waits for the end; per connection (in tuple order) what happened.
    fn finish(mut self) -> (Vec<usize>, Vec<Held>) {
        let st = self.proc.wait_exit(Duration::from_secs(60));
        assert!(st.success(), "hold client: {st}:\n{}", self.proc.log());
        let log = self.proc.log();
        let mut by_tuple = BTreeMap::new();
        for l in log.lines().filter(|l| l.ends_with(|c: char| c.is_ascii_digit()) && l.contains(' ')) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 5 {
                let held = Held { ok: f[2] == "ok", requests: f[3].parse().unwrap(), last_ok: f[4].parse().unwrap() };
                by_tuple.insert((f[0].to_string(), f[1].parse::<u16>().unwrap()), held);
            }
        }
        let held: Vec<Held> = self
            .tuples
            .iter()
            .map(|t| by_tuple.remove(t).unwrap_or_else(|| panic!("no line for {t:?}:\n{log}")))
            .collect();
        (self.boxes.clone(), held)
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64()
}

fn steal() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<u64> =
        stat.lines().next().unwrap().split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    (cpu.get(7).copied().unwrap_or(0), cpu.iter().sum())
}

/// The `ExecStopPost=` commands of deploy/floodgate.service, as argv
/// (a leading `-`, failure ignored, dropped: the test looks at the table).
fn unit_stop_post() -> Vec<Vec<String>> {
    let unit = std::fs::read_to_string(repo().join("deploy/floodgate.service")).unwrap();
    let cmds: Vec<Vec<String>> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStopPost="))
        .map(|c| c.trim_start_matches('-').split_whitespace().map(str::to_string).collect())
        .collect();
    assert!(!cmds.is_empty(), "the unit has an ExecStopPost");
    cmds
}

/// Runs the unit's `ExecStopPost` commands in namespace `ns` (`None`: here).
fn run_stop_post(ns: Option<&str>) {
    for cmd in unit_stop_post() {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let (_, out) = match ns {
            Some(ns) => sh(&mut in_ns(ns, &args)),
            None => sh(Command::new(args[0]).args(&args[1..])),
        };
        eprintln!("ExecStopPost {args:?}: {}", out.trim());
    }
}

#[test]
fn vip_routes_over_netlink() {
    if !require_root("multibox_testbed::vip_routes_over_netlink") {
        return;
    }
    use floodgate::link::vip_route::VipRoutes;
    // A namespace of this thread's own (unshare affects the calling thread
    // only; the `ip` it starts inherits it), gone when the thread ends.
    std::thread::spawn(|| {
        // SAFETY: unshare of the calling thread's network namespace.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare: {}", std::io::Error::last_os_error());
        let show = |table: &str| {
            let (good, out) = sh(Command::new("ip").args(["route", "show", "table", table]));
            assert!(good || out.contains("does not exist"), "{out}");
            if good {
                out
            } else {
                String::new()
            }
        };
        let vip: std::net::IpAddr = VIP.parse().unwrap();
        let mut r = VipRoutes::new(4210).unwrap();
        r.delete(vip).expect("deleting a route that is not there is no error");
        r.add(vip).unwrap();
        assert_eq!(show(TABLE).trim(), format!("blackhole {VIP} proto 210"));
        r.add(vip).expect("added again: replaced");
        assert_eq!(show(TABLE).lines().count(), 1);
        let mut big = VipRoutes::new(100_000).unwrap();
        big.add(vip).unwrap();
        assert!(show("100000").contains(VIP), "a table above 255");
        // The unit's ExecStopPost removes floodgate's routes, not another's.
        let (good, out) = sh(Command::new("ip").args([
            "route",
            "add",
            "blackhole",
            "198.18.5.2/32",
            "table",
            TABLE,
            "proto",
            "static",
        ]));
        assert!(good, "{out}");
        run_stop_post(None);
        assert_eq!(show(TABLE).trim(), "blackhole 198.18.5.2 proto static", "the static one stays");
        r.delete(vip).expect("gone already: no error");
        big.delete(vip).unwrap();
        assert!(!show("100000").contains(VIP));
        let v6: std::net::IpAddr = "2001:db8::5".parse().unwrap();
        if std::path::Path::new("/proc/sys/net/ipv6").exists() && r.add(v6).is_ok() {
            let show6 = || sh(Command::new("ip").args(["-6", "route", "show", "table", TABLE])).1;
            let out = show6();
            assert!(out.contains("blackhole 2001:db8::5 ") && out.contains(" proto 210 "), "{out}");
            r.delete(v6).unwrap();
            assert!(!show6().contains("2001:db8::5"), "deleted");
            r.add(v6).unwrap();
            run_stop_post(None);
            assert!(!show6().contains("2001:db8::5"), "the unit's ExecStopPost flushes IPv6 too");
        }
    })
    .join()
    .expect("the namespace thread");
}

#[test]
fn two_boxes_behind_bgp_ecmp() {
    if !require_root("multibox_testbed::two_boxes_behind_bgp_ecmp") {
        return;
    }
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.to_string()))
        .unwrap_or_default();
    let steal0 = steal();
    let _tb = MultiTestbed::up();
    let dir = std::env::temp_dir().join(format!("fg-multibox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _nginx = nginx(&dir);
    let mut fg = [Some(floodgate(0)), Some(floodgate(1))];
    wait_next_hops(&BOX_ADDR, Duration::from_secs(10));

    // 1. Both boxes announce and carry traffic.
    for i in 0..2 {
        assert_eq!(metric(&metrics(i), "floodgate_vip_announced"), 1);
    }
    let requests = wrk(16, 3, true);
    let accepted: Vec<u64> = (0..2).map(|i| metric(&metrics(i), "floodgate_proxy_clients_accepted_total")).collect();
    eprintln!("both boxes: {requests} requests (new connection each); accepted per box {accepted:?}");
    assert!(accepted.iter().all(|&a| a > requests / 10), "ECMP spreads the flows over both boxes: {accepted:?}");

    // 2. 48 4-tuples and their backends.
    let probe = tuples(48, 41000);
    let before = names(&probe);
    let first_boxes = boxes_of(&probe);
    assert!(first_boxes.contains(&0) && first_boxes.contains(&1), "{first_boxes:?}");
    assert!(before.iter().all(|n| n.starts_with("be")), "{before:?}");
    assert!(before.iter().collect::<HashSet<_>>().len() >= 3, "Maglev spreads the tuples: {before:?}");

    // 3. Drain box1 under traffic.
    let hold = Hold::start(tuples(24, 42000), 12);
    let load = std::thread::spawn(|| wrk(8, 9, true));
    std::thread::sleep(Duration::from_secs(2));
    let syns_before = metric(&metrics(0), "floodgate_tcp_syns_received_total");
    fg[0].as_ref().unwrap().signal(libc::SIGTERM);
    let withdraw = wait_next_hops(&[BOX_ADDR[1]], Duration::from_secs(5));
    let t_withdrawn = unix_now();
    eprintln!("drain of box1: its next hop left the router's route {withdraw:?} after SIGTERM");
    // Box1 still accepts for --announce-wait (3 s): new flows no longer come.
    std::thread::sleep(Duration::from_millis(600));
    let m = metrics(0);
    let syns_a = metric(&m, "floodgate_tcp_syns_received_total");
    assert_eq!(metric(&m, "floodgate_vip_announced"), 0, "withdrawn, still accepting");
    assert_eq!(metric(&m, "floodgate_draining"), 0, "not draining before --announce-wait is over");
    std::thread::sleep(Duration::from_millis(2000));
    let syns_b = metric(&metrics(0), "floodgate_tcp_syns_received_total");
    assert!(syns_a > syns_before, "box1 took new flows until the withdrawal ({syns_before} -> {syns_a})");
    assert_eq!(syns_a, syns_b, "no SYN reaches box1 after the withdrawal");
    let during = load.join().expect("wrk across the drain");
    let (boxes, held) = hold.finish();
    for (i, h) in held.iter().enumerate() {
        assert!(h.ok, "connection {i} (box{}) broke across the drain", boxes[i] + 1);
    }
    let on_box1: Vec<&Held> = held.iter().zip(&boxes).filter(|(_, b)| **b == 0).map(|(h, _)| h).collect();
    assert!(
        on_box1.iter().all(|h| h.last_ok > t_withdrawn + 5.0),
        "box1's connections kept being served after the withdrawal"
    );
    let n1: u64 = on_box1.iter().map(|h| h.requests).sum();
    eprintln!(
        "drain: wrk {during} requests with 0 errors; {} held connections on box1 ({n1} requests), {} on box2, none broke",
        on_box1.len(),
        held.len() - on_box1.len()
    );
    let mut box1 = fg[0].take().unwrap();
    let st = box1.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "box1 drained and exited 0: {st}\n{}", box1.log());
    let log1 = box1.log();
    assert!(log1.contains("VIP withdrawn (draining)") && log1.contains("drained: no connection left"), "{log1}");
    // The same tuples, now all through box2: the same backends.
    let after = names(&probe);
    let box2 = pinned(1);
    assert!(probe.iter().all(|t| box2.contains(t)), "every tuple went through box2 this time");
    assert_eq!(before, after, "every box sends a 4-tuple to the same backend (Maglev)");
    let moved = first_boxes.iter().filter(|&&b| b == 0).count();
    eprintln!("Maglev: {moved} of 48 tuples moved from box1 to box2, all kept their backend");

    // 4. box1 back; box2's floodgate alone SIGKILLed.
    fg[0] = Some(floodgate(0));
    wait_next_hops(&BOX_ADDR, Duration::from_secs(10));
    let hold = Hold::start(tuples(24, 43000), 8);
    std::thread::sleep(Duration::from_secs(2));
    fg[1].take().unwrap().kill();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(next_hops(), BOX_ADDR, "floodgate killed, BIRD alive: its route stays until ExecStopPost");
    let t0 = Instant::now();
    run_stop_post(Some(BOX[1]));
    wait_next_hops(&[BOX_ADDR[0]], Duration::from_secs(5));
    let stop_post = t0.elapsed();
    let (boxes, held) = hold.finish();
    for (i, h) in held.iter().enumerate() {
        assert_eq!(h.ok, boxes[i] == 0, "connection {i} on box{}: broken only on the killed box", boxes[i] + 1);
    }
    let broken = held.iter().filter(|h| !h.ok).count();
    let after_kill = wrk(8, 2, true);
    eprintln!(
        "SIGKILL of box2's floodgate: route withdrawn {stop_post:?} after the unit's ExecStopPost; {broken} of {} \
         connections broke (all box2's); then wrk {after_kill} requests, 0 errors",
        held.len()
    );

    // 5. box2 back, then it dies silently: the router drops it by the hold time.
    fg[1] = Some(floodgate(1));
    wait_next_hops(&BOX_ADDR, Duration::from_secs(10));
    let hold = Hold::start(tuples(24, 44000), 10);
    std::thread::sleep(Duration::from_secs(2));
    ok(
        BOX[1],
        &[
            "nft",
            "add table inet fgm_dead; add chain inet fgm_dead out { type filter hook output priority 0; policy drop; }",
        ],
    );
    let t0 = Instant::now();
    fg[1].take().unwrap().kill();
    let bird_pid = std::fs::read_to_string(format!("/run/{PFX}/bird-box2.pid")).unwrap();
    // SAFETY: kill has no memory preconditions; the pid is box2's BIRD.
    unsafe { libc::kill(bird_pid.trim().parse::<i32>().unwrap(), libc::SIGKILL) };
    wait_next_hops(&[BOX_ADDR[0]], HOLD + Duration::from_secs(2));
    let by_hold = t0.elapsed();
    let (boxes, held) = hold.finish();
    for (i, h) in held.iter().enumerate() {
        assert_eq!(h.ok, boxes[i] == 0, "connection {i} on box{}: broken only on the dead box", boxes[i] + 1);
    }
    let broken = held.iter().filter(|h| !h.ok).count();
    let after_death = wrk(8, 2, true);

    // 6. Health: box1's backends stop answering its checks (its packets
    // dropped in fgmt-be); with no backend up it withdraws (the router
    // then has no route at all), and announces again once they answer.
    let t0 = Instant::now();
    ok(BE, &["nft", "add table inet fgm_sick; add chain inet fgm_sick in { type filter hook input priority 0; policy accept; ip saddr 198.18.4.11 drop; }"]);
    wait_next_hops(&[], Duration::from_secs(10));
    let sick = t0.elapsed();
    fg[0].as_mut().unwrap().wait_for("VIP withdrawn (no backend takes new clients)", Duration::from_secs(2));
    assert_eq!(metric(&metrics(0), "floodgate_vip_announced"), 0);
    let t0 = Instant::now();
    ok(BE, &["nft", "delete table inet fgm_sick"]);
    wait_next_hops(&[BOX_ADDR[0]], Duration::from_secs(10));
    let well = t0.elapsed();
    eprintln!(
        "every backend failing box1's checks: withdrawn after {sick:?}; answering again: announced after {well:?}"
    );
    let steal1 = steal();
    let steal_pct = 100.0 * (steal1.0 - steal0.0) as f64 / (steal1.1 - steal0.1).max(1) as f64;
    eprintln!(
        "box2 dead (silent): route withdrawn {by_hold:?} after the kill (hold time {HOLD:?}); {broken} of {} \
         connections broke (all box2's); then wrk {after_death} requests, 0 errors",
        held.len()
    );
    eprintln!("MULTIBOX drain_to_withdrawal={withdraw:?} stop_post_to_withdrawal={stop_post:?} silent_death_to_withdrawal={by_hold:?} no_backend_to_withdrawal={sick:?} client_errors_drain=0 ({model}, steal {steal_pct:.1} %)");
    let _ = std::fs::remove_dir_all(&dir);
}

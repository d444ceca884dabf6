//! `floodgate serve --app proxy` against real peers: clients (curl, wrk, a
//! Python socket client) in `fgt-cli`, floodgate in `fgt-srv` on `fg-s0`,
//! real backends in `fgt-be` (deploy/testbed.sh with FG_TESTBED_BACKENDS=1:
//! a macvlan of fg-c0 with 198.18.2.10-13, so the proxy is one-armed and
//! reaches the backends through fg-s0 as well). The proxy's source address
//! is the server's own 198.18.0.1 on ports 10000-29999, outside the
//! kernel's ephemeral range, so the kernel there answers ARP for it and the
//! XDP program steers the replies (the `sources` map). One shard
//! (`--queues 1`) in generic XDP mode (on veth every frame then arrives on
//! queue 0), but for the two-shard test below.
//!
//! Root only: skipped loudly otherwise, never under CI=true. Every test
//! holds the testbed lock and is bounded in count and time.
//!
//! * `http_through_nginx_backends_round_robin`: Debian's nginx on the four
//!   backend addresses, each answering with its own name; 8 curl requests
//!   go to be0..be3 twice each; wrk keep-alive and `Connection: close`
//!   through the proxy with 0 errors, the close run spread evenly.
//! * `echo_with_proxy_v2_carries_the_client_address`: a Python echo
//!   backend checks the PROXY v2 header of every connection; one connection
//!   from a chosen client address and port finds exactly them in the
//!   header; then 20,000 echo connections with random payloads and both
//!   close orders, every byte right, every header good.
//! * `echo_with_loss_on_both_legs`: 20,000 echo connections (PROXY v2 on)
//!   with 5 % random loss both ways on the client's leg (nftables in
//!   fgt-cli) and on the backends' leg (in fgt-be, their SYN-ACKs spared:
//!   see the test): every byte right, every header good, every pair
//!   ended, floodgate retransmitted.
//! * `ctl_drains_and_undrains_a_backend_under_traffic`: `floodgate ctl
//!   drain` while wrk keeps 16 keep-alive connections busy: wrk sees no
//!   error, new connections avoid the drained backend, the metrics show
//!   weight 0; `undrain` brings it back; an unknown backend and draining
//!   the last one are refused.
//! * `sighup_reloads_the_backends_under_traffic`: the backends come from
//!   `--config`; the file changes under wrk keep-alive traffic (one backend
//!   out, two in, one at weight 2) and SIGHUP applies it: wrk sees no
//!   error, curl finds the new set by weight, the removed one is listed as
//!   such; a broken file is refused and the running set stays; then, under
//!   wrk again, the file switches the pool from wrr to Maglev on the
//!   client's address: no error, and curl from one client lands on one
//!   backend.
//! * `a_pool_per_port_from_the_file`: `[[pool]]` gives port 8080 backends
//!   of its own (by weight), port 80 keeps the top-level list.
//! * `checks_take_a_dead_backend_out_and_bring_it_back`: with the default
//!   active checks, a backend whose kernel starts refusing (nftables in
//!   fgt-be) is out within interval x fall (3.5 s with the snapshot
//!   period), no client is sent to it, and it is back within rise x
//!   interval once it answers again; the times are printed.
//! * `http_checks_pass_on_the_expected_status_only`: `--health-check http`
//!   against nginx: its 200 passes (the GETs reach its log); expecting 204,
//!   all four backends go down and a client is reset at once.
//! * `unreachable_or_killed_backends_reset_or_end_the_client`: backends that
//!   refuse (no listener): each client is accepted, both backends tried,
//!   then reset; counted. A backend killed under open pairs: every client
//!   sees its connection end (FIN or RST), none hangs, and new clients are
//!   reset.
//! * `two_shards_hand_replies_to_their_owner`: two shards in native XDP
//!   mode, where veth puts each frame on the queue its sender picked, so
//!   about half the backends' replies reach the shard that did not open
//!   their connection and are handed over: curl, wrk keep-alive and
//!   `Connection: close` through nginx with 0 errors, 1,000 echo
//!   connections with every byte right; frames handed over and taken,
//!   none dropped for a full ring.
//! * `two_armed_front_end_reaches_the_backends_on_its_back_link`: the
//!   testbed's two-armed layout (FG_TESTBED_BACKENDS=2: the backends only
//!   behind fg-s1, a second veth pair from fgt-srv), two shards in native
//!   mode with `--backend-iface fg-s1` and the source address 198.18.2.1:
//!   curl reaches all four nginx backends, wrk keep-alive and `Connection:
//!   close` with 0 errors, the requests leave and the replies arrive on
//!   the back link (its program steers them, the front's none); 1,000 echo
//!   connections with PROXY v2, every byte right, every header naming the
//!   client and the back link's source.

mod xdp_common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use floodgate::shard::runner::SNAPSHOT_EVERY;
use xdp_common::proc::{in_ns, Proc};
use xdp_common::{metric, repo, require_root, scrape, sh, wait_metrics, Testbed, BE_NS, CLI_NS, METRICS, SRV_NS};

const VIP: &str = "198.18.0.1";
const BACKENDS: [&str; 4] = ["198.18.2.10", "198.18.2.11", "198.18.2.12", "198.18.2.13"];
/// The two-armed testbed's back link in fgt-srv, and its address (the
/// proxy's source there).
const BACK_IF: &str = "fg-s1";
const BACK_SOURCE: &str = "198.18.2.1";

/// `floodgate serve --app proxy` on fg-s0 towards `backends`, ready.
fn proxy(port: &str, backends: &[String], extra: &[&str]) -> Proc {
    proxy_on(port, backends, &["--queues", "1", "--xdp-mode", "generic"], 1, extra)
}

/// The same on the `shards` given by `queues` (`--queues N --xdp-mode M`).
fn proxy_on(port: &str, backends: &[String], queues: &[&str], shards: u64, extra: &[&str]) -> Proc {
    proxy_from(VIP, port, backends, queues, shards, extra)
}

/// The same from the source address `source`.
fn proxy_from(source: &str, port: &str, backends: &[String], queues: &[&str], shards: u64, extra: &[&str]) -> Proc {
    let list = backends.join(",");
    let mut args = vec![env!("CARGO_BIN_EXE_floodgate"), "serve", "--iface", "fg-s0", "--vip", VIP, "--port", port];
    if !backends.is_empty() {
        args.extend_from_slice(&["--backend", &list]);
    }
    args.extend_from_slice(&["--app", "proxy", "--source-addrs", source]);
    args.extend_from_slice(&["--source-ports", "10000-29999"]);
    args.extend_from_slice(queues);
    args.extend_from_slice(&["--metrics", METRICS, "--connections", "16384", "--buffers", "4096", "--msl", "2"]);
    args.extend_from_slice(extra);
    let mut p = Proc::spawn(SRV_NS, &args);
    p.wait_for("ready", Duration::from_secs(30));
    wait_metrics("the shards report", Duration::from_secs(30), |m| metric(m, "floodgate_listening") >= shards);
    p
}

/// A scratch directory for one test's backend files: removed when the
/// test passes, kept (and named) when it fails.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("backend files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("fg-proxy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// Debian's nginx in fgt-be on the four backend addresses, port 80, each
/// answering `beN` and logging the address it served to `access.log`.
fn nginx(dir: &std::path::Path) -> Proc {
    let d = dir.display();
    let mut conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  log_format addr $server_addr;\n  access_log {d}/access.log addr;\n  keepalive_requests 1000000;\n  \
         client_body_temp_path {d}/body;\n"
    );
    for (i, a) in BACKENDS.iter().enumerate() {
        conf += &format!("  server {{ listen {a}:80; location / {{ return 200 \"be{i}\\n\"; }} }}\n");
    }
    conf += "}\n";
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut p = Proc::spawn(
        BE_NS,
        &["nginx", "-g", "daemon off;", "-c", path.to_str().unwrap(), "-p", dir.to_str().unwrap(), "-e", "stderr"],
    );
    // Ready when every address answers (from inside fgt-be, not through the proxy).
    let end = Instant::now() + Duration::from_secs(15);
    for a in BACKENDS {
        loop {
            let (ok, out) = sh(&mut in_ns(BE_NS, &["curl", "-sS", "-m", "1", &format!("http://{a}/")]));
            if ok {
                break;
            }
            assert!(Instant::now() < end, "nginx on {a} not up:\n{out}\n{}", p.log());
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("nginx exited with {st}:\n{}", p.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    p
}

/// Requests each backend address served, from nginx's access log.
fn served(dir: &std::path::Path) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    for l in std::fs::read_to_string(dir.join("access.log")).unwrap_or_default().lines() {
        *m.entry(l.trim().to_string()).or_insert(0) += 1;
    }
    m
}

/// wrk in fgt-cli for `secs` with `conns` connections; returns the number
/// of requests after asserting 0 socket errors and 0 non-2xx.
fn wrk(conns: u32, secs: u32, close: bool) -> u64 {
    let (c, d) = (conns.to_string(), format!("{secs}s"));
    let mut args = vec!["timeout", "-k", "10", "60", "wrk", "-t1", "-c", &c, "-d", &d];
    if close {
        args.extend_from_slice(&["-H", "Connection: close"]);
    }
    let url = format!("http://{VIP}:80/");
    args.push(&url);
    let (ok, out) = sh(&mut in_ns(CLI_NS, &args));
    eprintln!("wrk (close {close}):\n{out}");
    assert!(ok, "wrk failed:\n{out}");
    assert!(!out.contains("Socket errors"), "socket errors:\n{out}");
    assert!(!out.contains("Non-2xx"), "non-2xx answers:\n{out}");
    let line = out.lines().find(|l| l.contains("requests in")).expect("wrk summary");
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn http_through_nginx_backends_round_robin() {
    if !require_root("proxy_testbed::http_through_nginx_backends_round_robin") {
        return;
    }
    let _tb = Testbed::up_with_backends();
    let dir = scratch("http");
    let _nginx = nginx(&dir);
    let backends: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:80")).collect();
    let _fg = proxy("80", &backends, &[]);

    // One connection per curl: the backends in turn, from the first.
    let mut names = Vec::new();
    for _ in 0..8 {
        let (ok, out) = sh(&mut in_ns(CLI_NS, &["curl", "-sS", "-m", "5", &format!("http://{VIP}/")]));
        assert!(ok, "curl through the proxy:\n{out}");
        names.push(out.trim().to_string());
    }
    let first: usize = names[0].trim_start_matches("be").parse().expect("a backend's name");
    for (i, n) in names.iter().enumerate() {
        assert_eq!(n, &format!("be{}", (first + i) % 4), "round-robin: {names:?}");
    }

    let before = served(&dir);
    let keepalive = wrk(16, 3, false);
    let after_ka = served(&dir);
    let close = wrk(16, 3, true);
    let after = served(&dir);
    let delta = |a: &HashMap<String, u64>, b: &HashMap<String, u64>, k: &str| {
        a.get(k).copied().unwrap_or(0) - b.get(k).copied().unwrap_or(0)
    };
    let ka: Vec<u64> = BACKENDS.iter().map(|k| delta(&after_ka, &before, k)).collect();
    let cl: Vec<u64> = BACKENDS.iter().map(|k| delta(&after, &after_ka, k)).collect();
    eprintln!("keep-alive: {keepalive} requests, per backend {ka:?}; close: {close} requests, per backend {cl:?}");
    assert!(ka.iter().all(|&n| n > 0), "16 keep-alive connections reach all four backends: {ka:?}");
    assert!(close >= 100, "Connection: close requests went through: {close}");
    // Each request has its own connection, handed out in turn; only the
    // connections cut at the end of the run (at most 16) are not served.
    let (lo, hi) = (cl.iter().min().unwrap(), cl.iter().max().unwrap());
    assert!(hi - lo <= 17, "Connection: close spread round-robin: {cl:?}");
    // nginx may also have served requests whose answers wrk did not wait for at the end.
    assert!(cl.iter().sum::<u64>() + ka.iter().sum::<u64>() >= keepalive + close, "nginx served every request");

    // Once the last snapshot is in, every pair opened has ended and every
    // client accepted got its backend.
    let m = wait_metrics("every pair ended", Duration::from_secs(10), |m| {
        let opened = metric(m, "floodgate_proxy_pairs_opened_total");
        opened > 0
            && opened == metric(m, "floodgate_proxy_pairs_ended_total")
            && opened == metric(m, "floodgate_proxy_clients_accepted_total")
    });
    assert_eq!(metric(&m, "floodgate_proxy_clients_reset_no_backend_total"), 0);
    assert_eq!(metric(&m, "floodgate_proxy_backend_refused_total"), 0);
    assert_eq!(metric(&m, "floodgate_proxy_backend_connect_timeouts_total"), 0);
    assert!(metric(&m, "floodgate_xdp_source_replies_total") > 0, "backend replies steered by the sources map");
}

/// `floodgate ctl` in fgt-srv (the admin interface is on the metrics
/// listener, 127.0.0.1 there); its output, after asserting success.
fn ctl(args: &[&str]) -> String {
    let mut a = vec![env!("CARGO_BIN_EXE_floodgate"), "ctl", "--metrics", METRICS];
    a.extend_from_slice(args);
    let (ok, out) = sh(&mut in_ns(SRV_NS, &a));
    assert!(ok, "floodgate ctl {args:?}:\n{out}");
    out
}

/// The names of `n` curl answers through the proxy, one connection each.
fn curl_names(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let (ok, out) = sh(&mut in_ns(CLI_NS, &["curl", "-sS", "-m", "5", &format!("http://{VIP}/")]));
            assert!(ok, "curl through the proxy:\n{out}");
            out.trim().to_string()
        })
        .collect()
}

#[test]
fn ctl_drains_and_undrains_a_backend_under_traffic() {
    if !require_root("proxy_testbed::ctl_drains_and_undrains_a_backend_under_traffic") {
        return;
    }
    let _tb = Testbed::up_with_backends();
    let dir = scratch("ctl");
    let _nginx = nginx(&dir);
    let backends: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:80")).collect();
    let _fg = proxy("80", &backends, &[]);
    let list = ctl(&["backends"]);
    assert_eq!(list.lines().count(), 5, "a header and four backends:\n{list}");

    // Keep-alive traffic runs across the drain: the connections on the
    // drained backend go on (wrk sees no error), new ones avoid it.
    let load = std::thread::spawn(|| wrk(16, 6, false));
    std::thread::sleep(Duration::from_secs(2));
    let out = ctl(&["drain", &backends[0]]);
    assert!(out.contains(&backends[0]) && out.contains("drained"), "{out}");
    let before = served(&dir);
    let names = curl_names(6);
    assert!(!names.contains(&"be0".to_string()), "a drained backend takes no new client: {names:?}");
    let requests = load.join().expect("wrk across the drain");
    let after = served(&dir);
    let be0 = after.get(BACKENDS[0]).copied().unwrap_or(0) - before.get(BACKENDS[0]).copied().unwrap_or(0);
    eprintln!("keep-alive across the drain: {requests} requests; be0 served {be0} of them after the drain");
    let m = wait_metrics("the drain in the metrics", Duration::from_secs(5), |m| {
        m.contains(&format!("floodgate_backend_weight{{shard=\"0\",pool=\"0\",backend=\"{}\"}} 0", backends[0]))
    });
    assert_eq!(metric(&m, "floodgate_proxy_clients_reset_no_backend_total"), 0);
    let list = ctl(&["backends"]);
    assert!(list.lines().any(|l| l.contains(&backends[0]) && l.contains("drained")), "{list}");

    // Undrained: it takes its turn again.
    let out = ctl(&["undrain", &backends[0]]);
    assert!(out.contains(" up "), "{out}");
    let names = curl_names(8);
    assert!(names.contains(&"be0".to_string()), "undrained, it serves again: {names:?}");

    // Refusals: an unknown backend; the last one taking clients.
    let mut a = vec![env!("CARGO_BIN_EXE_floodgate"), "ctl", "--metrics", METRICS, "drain", "198.18.2.99:80"];
    let (ok, out) = sh(&mut in_ns(SRV_NS, &a));
    assert!(!ok && out.contains("404"), "{out}");
    for b in &backends[1..] {
        ctl(&["drain", b]);
    }
    a[5] = backends[0].as_str();
    let (ok, out) = sh(&mut in_ns(SRV_NS, &a));
    assert!(!ok && out.contains("last backend"), "{out}");
    assert_eq!(curl_names(4), ["be0"; 4]);
}

#[test]
fn sighup_reloads_the_backends_under_traffic() {
    if !require_root("proxy_testbed::sighup_reloads_the_backends_under_traffic") {
        return;
    }
    let _tb = Testbed::up_with_backends();
    let dir = scratch("reload");
    let _nginx = nginx(&dir);
    let conf = dir.join("floodgate.toml");
    let write_with = |backends: &str, balance: &str| {
        std::fs::write(&conf, format!("balance = \"{balance}\"\nbackend = [{backends}]\n")).unwrap()
    };
    let write = |backends: &str| write_with(backends, "wrr");
    write("\"198.18.2.10:80\", \"198.18.2.11:80\"");
    let mut fg = proxy("80", &[], &["--config", conf.to_str().unwrap()]);
    let hup = |fg: &Proc| {
        // SAFETY: signalling our own child (ip netns exec execs floodgate).
        unsafe { libc::kill(fg.child.id() as i32, libc::SIGHUP) };
    };
    let mut names = curl_names(4);
    names.sort();
    assert_eq!(names, ["be0", "be0", "be1", "be1"]);

    // Keep-alive traffic across the reload: be0 leaves, be2 and be3 come.
    let load = std::thread::spawn(|| wrk(16, 6, false));
    std::thread::sleep(Duration::from_secs(2));
    write("\"198.18.2.11:80\", \"198.18.2.12:80\", \"198.18.2.13:80@2\"");
    hup(&fg);
    fg.wait_for("reloaded the backends", Duration::from_secs(10));
    let requests = load.join().expect("wrk across the reload");
    eprintln!("keep-alive across the reload: {requests} requests, 0 errors");
    let mut names = curl_names(8);
    names.sort();
    assert_eq!(names, ["be1", "be1", "be2", "be2", "be3", "be3", "be3", "be3"], "the new backends, by weight");
    let list = ctl(&["backends"]);
    assert!(list.lines().any(|l| l.contains("198.18.2.10:80") && l.contains("removed")), "{list}");

    // A file that does not check out is refused; the running backends stay.
    write("\"nope\"");
    hup(&fg);
    fg.wait_for("refused, the running configuration stays", Duration::from_secs(10));
    let mut names = curl_names(4);
    names.sort();
    assert_eq!(names.iter().filter(|n| *n == "be3").count(), 2, "{names:?}");

    // Under traffic again, the pool changes its algorithm: Maglev on the
    // client's address sends every request of the one client to one backend.
    let load = std::thread::spawn(|| wrk(16, 4, false));
    std::thread::sleep(Duration::from_secs(1));
    write_with("\"198.18.2.11:80\", \"198.18.2.12:80\", \"198.18.2.13:80@2\"", "maglev-source-ip");
    hup(&fg);
    fg.wait_for("reloaded the backends", Duration::from_secs(10));
    let requests = load.join().expect("wrk across the change of algorithm");
    eprintln!("keep-alive across the change of algorithm: {requests} requests, 0 errors");
    let names = curl_names(6);
    assert!(names.iter().all(|n| *n == names[0]), "one client address, one backend: {names:?}");
    let m = wait_metrics("every pair ended", Duration::from_secs(10), |m| {
        metric(m, "floodgate_proxy_pairs_opened_total") == metric(m, "floodgate_proxy_pairs_ended_total")
    });
    assert_eq!(metric(&m, "floodgate_proxy_clients_reset_no_backend_total"), 0);
    assert_eq!(metric(&m, "floodgate_proxy_resets_to_client_total"), 0, "no connection broken by the reload");
}

/// Two ports, two pools: `[[pool]]` gives port 8080 its own backends
/// (be2, be3 by weight 1:3), the top-level list (be0, be1) serves port 80;
/// the metrics name each backend under its pool. SIGHUP then reloads the
/// `[[pool]]` as it does the top-level list.
#[test]
fn a_pool_per_port_from_the_file() {
    if !require_root("proxy_testbed::a_pool_per_port_from_the_file") {
        return;
    }
    let _tb = Testbed::up_with_backends();
    let dir = scratch("pools");
    let _nginx = nginx(&dir);
    let conf = dir.join("floodgate.toml");
    let file = "balance = \"wrr\"\nbackend = [\"198.18.2.10:80\", \"198.18.2.11:80\"]\n\n[[pool]]\nport = 8080\n\
                backend = [\"198.18.2.12:80\", \"198.18.2.13:80@3\"]\n";
    std::fs::write(&conf, file).unwrap();
    let mut fg = proxy("80,8080", &[], &["--config", conf.to_str().unwrap()]);
    let mut names = curl_names(4);
    names.sort();
    assert_eq!(names, ["be0", "be0", "be1", "be1"], "port 80: the top-level backends");
    let mut names: Vec<String> = (0..8)
        .map(|_| {
            let (ok, out) = sh(&mut in_ns(CLI_NS, &["curl", "-sS", "-m", "5", &format!("http://{VIP}:8080/")]));
            assert!(ok, "curl to port 8080:\n{out}");
            out.trim().to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["be2", "be2", "be3", "be3", "be3", "be3", "be3", "be3"], "port 8080: its pool, by weight");
    let m = wait_metrics("the 12 pairs ended", Duration::from_secs(10), |m| {
        metric(m, "floodgate_proxy_pairs_ended_total") >= 12
            && metric(m, "floodgate_proxy_pairs_opened_total") == metric(m, "floodgate_proxy_pairs_ended_total")
    });
    assert!(
        m.lines()
            .any(|l| l
                .starts_with("floodgate_backend_connects_total{shard=\"0\",pool=\"1\",backend=\"198.18.2.13:80\"} 6")),
        "{m}"
    );
    assert_eq!(metric(&m, "floodgate_proxy_resets_to_client_total"), 0);
    // SIGHUP with port 8080's pool moved to be0 (be2 and be3 removed) and
    // balancing by least connections: port 8080 now reaches be0 only, port
    // 80 is as it was.
    let file = file.replace(
        "backend = [\"198.18.2.12:80\", \"198.18.2.13:80@3\"]",
        "backend = [\"198.18.2.10:80\"]\nbalance = \"least-conn\"",
    );
    assert!(file.contains("least-conn"), "{file}");
    std::fs::write(&conf, &file).unwrap();
    fg.signal(libc::SIGHUP);
    fg.wait_for("reloaded the backends", Duration::from_secs(10));
    assert!(!fg.log().contains("next start"), "nothing waits for a restart:\n{}", fg.log());
    let names: Vec<String> = (0..4)
        .map(|_| {
            let (ok, out) = sh(&mut in_ns(CLI_NS, &["curl", "-sS", "-m", "5", &format!("http://{VIP}:8080/")]));
            assert!(ok, "curl to port 8080 after the reload:\n{out}");
            out.trim().to_string()
        })
        .collect();
    assert_eq!(names, ["be0"; 4], "port 8080 after the reload");
    let mut names = curl_names(4);
    names.sort();
    assert_eq!(names, ["be0", "be0", "be1", "be1"], "port 80 after the reload");
}

/// The time until the metrics show `backend`'s floodgate_backend_up as
/// `want` (bounded).
fn until_up_is(backend: &str, want: u64, within: Duration) -> Duration {
    let t0 = Instant::now();
    let name = format!("floodgate_backend_up{{shard=\"0\",pool=\"0\",backend=\"{backend}\"}} {want}");
    wait_metrics(&format!("{backend} up = {want}"), within, |m| m.lines().any(|l| l == name));
    t0.elapsed()
}

#[test]
fn checks_take_a_dead_backend_out_and_bring_it_back() {
    if !require_root("proxy_testbed::checks_take_a_dead_backend_out_and_bring_it_back") {
        return;
    }
    let _tb = Testbed::up_with_backends();
    let dir = scratch("checks");
    let _nginx = nginx(&dir);
    let backends: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:80")).collect();
    // The default checks: every 1 s, out after 3 failures, back after 2 passes.
    let _fg = proxy("80", &backends, &[]);
    wait_metrics("checks pass", Duration::from_secs(5), |m| metric(m, "floodgate_backend_checks_total") >= 8);
    let _rules = Loss;
    // be2 dies: its kernel answers every connection with an RST.
    nft(
        BE_NS,
        &format!(
            "chain in {{ type filter hook input priority 0; ip daddr {} tcp dport 80 reject with tcp reset; }}",
            BACKENDS[2]
        ),
    );
    let out = until_up_is(&backends[2], 0, Duration::from_secs(10));
    let names = curl_names(6);
    assert!(!names.contains(&"be2".to_string()), "no client for a backend that is down: {names:?}");
    wrk(16, 2, true);
    let _ = sh(&mut in_ns(BE_NS, &["nft", "delete", "table", "inet", "fgtest"]));
    let back = until_up_is(&backends[2], 1, Duration::from_secs(10));
    eprintln!("checks (1 s, fall 3, rise 2): a dead backend out after {out:?}, back {back:?} after it revived");
    // Within interval x fall (and rise) of the change, plus a snapshot period and a scrape.
    assert!(out <= Duration::from_millis(3500), "out after {out:?}");
    assert!(back <= Duration::from_millis(2500), "back after {back:?}");
    let m = scrape().expect("metrics");
    assert_eq!(metric(&m, "floodgate_proxy_backends_marked_down_total"), 1);
    assert_eq!(metric(&m, "floodgate_proxy_backends_marked_up_total"), 1);
    assert_eq!(metric(&m, "floodgate_proxy_clients_reset_no_backend_total"), 0);
    assert_eq!(metric(&m, "floodgate_proxy_backend_refused_total"), 0, "no client was sent to the dead backend");
    assert!(curl_names(8).contains(&"be2".to_string()), "back in turn");
}

#[test]
fn http_checks_pass_on_the_expected_status_only() {
    if !require_root("proxy_testbed::http_checks_pass_on_the_expected_status_only") {
        return;
    }
    let _tb = Testbed::up_with_backends();
    let dir = scratch("httpchk");
    let _nginx = nginx(&dir);
    let backends: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:80")).collect();
    // nginx answers 200: the default (2xx or 3xx) passes.
    {
        let mut fg = proxy("80", &backends, &["--health-check", "http", "--check-path", "/health"]);
        let m = wait_metrics("8 checks", Duration::from_secs(5), |m| metric(m, "floodgate_backend_checks_total") >= 8);
        assert_eq!(metric(&m, "floodgate_backend_check_failures_total"), 0);
        assert_eq!(metric(&m, "floodgate_backend_up"), 4);
        assert_eq!(curl_names(4).len(), 4);
        let asked = served(&dir).values().sum::<u64>();
        assert!(asked >= 8 + 4, "nginx logged the checks' GETs and the 4 requests: {asked}");
        fg.kill();
    }
    // Expecting 204: every check fails, every backend goes down within
    // interval x fall, and a client is reset at once.
    let _fg = proxy("80", &backends, &["--health-check", "http", "--check-status", "204"]);
    let t0 = Instant::now();
    wait_metrics("all down", Duration::from_secs(6), |m| {
        metric(m, "floodgate_proxy_backends_marked_down_total") == 4 && metric(m, "floodgate_backend_up") == 0
    });
    eprintln!("http checks expecting 204 from nginx's 200: all four down after {:?}", t0.elapsed());
    let (ok, out) = sh(&mut in_ns(CLI_NS, &["curl", "-sS", "-m", "5", &format!("http://{VIP}/")]));
    assert!(!ok, "no backend: the client is reset: {out}");
    wait_metrics("the reset counted", Duration::from_secs(2), |m| {
        metric(m, "floodgate_proxy_no_backend_available_total") == 1
    });
}

/// The echo backend (peers/ppv2_echo.py) in fgt-be on `listen`.
fn echo_backend(listen: &str, log: &std::path::Path, header: bool) -> Proc {
    let script = repo().join("engine/tests/peers/ppv2_echo.py");
    let mut args = vec!["python3", script.to_str().unwrap(), "--listen", listen, "--log", log.to_str().unwrap()];
    if !header {
        args.push("--no-header");
    }
    let mut p = Proc::spawn(BE_NS, &args);
    p.wait_for("listening", Duration::from_secs(10));
    p
}

/// Python in fgt-cli: `code` with `sys.argv[1:] = args`; its stdout.
fn py_cli(code: &str, args: &[&str]) -> String {
    let mut a = vec!["timeout", "-k", "10", "60", "python3", "-c", code];
    a.extend_from_slice(args);
    let (ok, out) = sh(&mut in_ns(CLI_NS, &a));
    assert!(ok, "python client failed:\n{out}");
    out
}

const ONE_ECHO: &str = r#"
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.settimeout(10)
s.connect((sys.argv[2], int(sys.argv[3])))
msg = b"hello through the proxy" * 100
s.sendall(msg)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
assert got == msg, (len(got), len(msg))
print("port", s.getsockname()[1])
"#;

#[test]
fn echo_with_proxy_v2_carries_the_client_address() {
    if !require_root("proxy_testbed::echo_with_proxy_v2_carries_the_client_address") {
        return;
    }
    const N: u32 = 20_000;
    let _tb = Testbed::up_with_backends();
    let dir = scratch("ppv2");
    let log = dir.join("headers.log");
    let listen: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:7")).collect();
    let _be = echo_backend(&listen.join(","), &log, true);
    let _fg = proxy("7", &listen, &["--proxy-protocol", "v2"]);

    // One connection from a chosen address: its header names it exactly.
    let out = py_cli(ONE_ECHO, &["198.18.0.42", VIP, "7"]);
    let port: u16 = out.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("client port");
    let lines = std::fs::read_to_string(&log).unwrap();
    let rec: Vec<&str> = lines.lines().next().expect("a header recorded").split(' ').collect();
    let port = port.to_string();
    assert_eq!(rec[..5], ["ok", "198.18.0.42", port.as_str(), VIP, "7"], "PROXY v2 header: {rec:?}");
    assert_eq!(rec[5], VIP, "the backend's peer is the proxy's source address");
    let sport: u16 = rec[6].parse().unwrap();
    assert!((10000..=29999).contains(&sport), "from a source port of the proxy: {sport}");

    // Many connections, random payloads, both close orders.
    let script = repo().join("engine/tests/peers/echo_client.py");
    let (n, c) = (N.to_string(), "200".to_string());
    let args = ["timeout", "-k", "10", "120", "python3", script.to_str().unwrap(), "--server", VIP, "--port", "7"];
    let mut args = args.to_vec();
    args.extend_from_slice(&["--connections", &n, "--concurrency", &c, "--sources", "198.18.0.10-73"]);
    args.extend_from_slice(&["--timeout", "30", "--total-timeout", "100", "--seed", "12"]);
    let sockets = dir.join("client-sockets.txt");
    args.extend_from_slice(&["--record", sockets.to_str().unwrap()]);
    let t0 = Instant::now();
    let (ok, out) = sh(&mut in_ns(CLI_NS, &args));
    eprintln!("echo client through the proxy ({:?}): {out}", t0.elapsed());
    assert!(ok, "echo client failed:\n{out}");
    let line = out.lines().find(|l| l.starts_with("ok=")).expect("summary");
    assert!(line.contains(&format!("ok={N} failed=0")), "{line}");
    assert!(line.contains(&format!("client_first={}", N.div_ceil(2))), "{line}");

    // The backend's view: one good header per connection, each from one of
    // the client's addresses, to the VIP, through the proxy's source.
    let lines = std::fs::read_to_string(&log).unwrap();
    let recs: Vec<Vec<&str>> = lines.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(recs.len() as u32, N + 1, "one record per connection");
    let mut seen: Vec<(&str, &str)> = Vec::with_capacity(N as usize);
    for r in &recs[1..] {
        assert_eq!(r[0], "ok", "bad PROXY header: {r:?}");
        let last: u32 = r[1].strip_prefix("198.18.0.").and_then(|x| x.parse().ok()).unwrap_or(0);
        assert!((10..=73).contains(&last), "client address from the client's range: {r:?}");
        assert_eq!((r[3], r[4], r[5]), (VIP, "7", VIP), "{r:?}");
        seen.push((r[1], r[2]));
    }
    // Each connection's own address and port, compared as multisets: the
    // client's kernel may give a port again once a connection the server
    // closed is gone (no TIME-WAIT on that side), so a pair can repeat.
    let sockets = std::fs::read_to_string(&sockets).unwrap();
    let mut sent: Vec<(&str, &str)> = sockets.lines().filter_map(|l| l.split_once(' ')).collect();
    assert_eq!(sent.len() as u32, N, "the client recorded every connection");
    seen.sort_unstable();
    sent.sort_unstable();
    let repeats = sent.windows(2).filter(|w| w[0] == w[1]).count();
    eprintln!("client address and port pairs the client's kernel gave twice: {repeats}");
    let differ = seen.iter().zip(&sent).position(|(a, b)| a != b);
    assert!(
        differ.is_none(),
        "every connection's own client address and port: first difference {:?}",
        differ.map(|i| (seen[i], sent[i]))
    );

    let m = wait_metrics("every pair ended", Duration::from_secs(20), |m| {
        metric(m, "floodgate_proxy_pairs_ended_total") == u64::from(N) + 1
    });
    assert_eq!(metric(&m, "floodgate_proxy_proxy_headers_sent_total"), u64::from(N) + 1);
    assert_eq!(metric(&m, "floodgate_proxy_pairs_opened_total"), u64::from(N) + 1);
    assert_eq!(
        metric(&m, "floodgate_proxy_bytes_client_to_backend_total"),
        metric(&m, "floodgate_proxy_bytes_backend_to_client_total"),
        "echo: as many bytes back as forth"
    );
    assert_eq!(metric(&m, "floodgate_proxy_resets_to_client_total"), 0);
    assert_eq!(metric(&m, "floodgate_proxy_backend_refused_total"), 0);
}

/// An nftables table `fgtest` in `ns`.
fn nft(ns: &str, rules: &str) {
    let script = format!("table inet fgtest {{\n{rules}\n}}\n");
    let mut child = in_ns(ns, &["nft", "-f", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("nft");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "nft -f failed in {ns}: {}\n{script}", String::from_utf8_lossy(&out.stderr));
}

/// Removes the `fgtest` tables on drop (the namespaces go with the testbed
/// anyway; this keeps a failed run from leaving loss behind).
struct Loss;

impl Drop for Loss {
    fn drop(&mut self) {
        for ns in [CLI_NS, BE_NS] {
            let _ = sh(&mut in_ns(ns, &["nft", "delete", "table", "inet", "fgtest"]));
        }
    }
}

#[test]
fn echo_with_loss_on_both_legs() {
    if !require_root("proxy_testbed::echo_with_loss_on_both_legs") {
        return;
    }
    const N: u32 = 20_000;
    let _tb = Testbed::up_with_backends();
    let dir = scratch("loss");
    let log = dir.join("headers.log");
    let listen: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:7")).collect();
    let _be = echo_backend(&listen.join(","), &log, true);
    // A SYN and its retransmissions all lost within the connect timeout
    // would send the client to the next backend: long enough to be rare.
    let _fg = proxy("7", &listen, &["--proxy-protocol", "v2", "--backend-connect-timeout", "10"]);
    let loss = Loss;
    nft(
        CLI_NS,
        &format!(
            "chain in {{ type filter hook input priority 0; iifname \"fg-c0\" ip saddr {VIP} tcp sport 7 numgen random mod 100 < 5 drop; }}\n\
             chain out {{ type filter hook output priority 0; oifname \"fg-c0\" ip daddr {VIP} tcp dport 7 numgen random mod 100 < 5 drop; }}"
        ),
    );
    // The backends' SYN-ACKs are spared: a drop in OUTPUT is an error
    // (EPERM) to the sender, and Linux removes a request whose SYN-ACK
    // retransmission fails, so the backend would reset the connection when
    // floodgate's data arrives, which no loss on a real link causes.
    // (floodgate's SYN retransmission is still tested: SYNs are dropped.)
    nft(
        BE_NS,
        &format!(
            "chain in {{ type filter hook input priority 0; iifname \"fg-b0\" ip saddr {VIP} tcp dport 7 numgen random mod 100 < 5 drop; }}\n\
             chain out {{ type filter hook output priority 0; oifname \"fg-b0\" ip daddr {VIP} tcp sport 7 \
             tcp flags & (syn | ack) != syn | ack numgen random mod 100 < 5 drop; }}"
        ),
    );
    let script = repo().join("engine/tests/peers/echo_client.py");
    let n = N.to_string();
    let mut args =
        vec!["timeout", "-k", "10", "120", "python3", script.to_str().unwrap(), "--server", VIP, "--port", "7"];
    args.extend_from_slice(&["--connections", &n, "--concurrency", "200", "--sources", "198.18.0.10-73"]);
    args.extend_from_slice(&["--timeout", "60", "--total-timeout", "100", "--seed", "5"]);
    let t0 = Instant::now();
    let (ok, out) = sh(&mut in_ns(CLI_NS, &args));
    eprintln!("echo client through the proxy with loss ({:?}): {out}", t0.elapsed());
    if !ok {
        std::thread::sleep(SNAPSHOT_EVERY * 2);
        let m = scrape().unwrap_or_default();
        let counters: Vec<&str> = m.lines().filter(|l| l.starts_with("floodgate_") && !l.ends_with(" 0")).collect();
        panic!("echo client failed:\n{out}\nfloodgate's counters:\n{}", counters.join("\n"));
    }
    let line = out.lines().find(|l| l.starts_with("ok=")).expect("summary");
    assert!(line.contains(&format!("ok={N} failed=0")), "{line}");
    drop(loss);

    let m = wait_metrics("every pair ended", Duration::from_secs(60), |m| {
        metric(m, "floodgate_proxy_pairs_ended_total") == u64::from(N)
    });
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count() as u32, N, "one header per connection");
    assert!(lines.lines().all(|l| l.starts_with("ok ")), "every PROXY header good");
    let verdict = |v: &str| {
        m.lines()
            .find(|l| l.starts_with(&format!("floodgate_xdp_program_frames_total{{verdict=\"{v}\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    eprintln!(
        "server: xdp redirect_no_xsk {}, rsts sent {}, retransmits {}, backend retries {}, resets to client {}, to backend {}",
        verdict("redirect_no_xsk"),
        metric(&m, "floodgate_tcp_rsts_sent_total"),
        metric(&m, "floodgate_tcp_retransmits_total"),
        metric(&m, "floodgate_proxy_backend_retries_total"),
        metric(&m, "floodgate_proxy_resets_to_client_total"),
        metric(&m, "floodgate_proxy_resets_to_backend_total"),
    );
    assert!(metric(&m, "floodgate_tcp_retransmits_total") > 0, "5 % loss makes floodgate retransmit");
    assert_eq!(metric(&m, "floodgate_proxy_clients_reset_no_backend_total"), 0);
    assert_eq!(metric(&m, "floodgate_proxy_pairs_opened_total"), u64::from(N));
}

/// Connects `n` clients, each sends a line and reads: prints one word per
/// client: `reset`, `eof` or `data`.
const RESET_PROBE: &str = r#"
import socket, sys
for i in range(int(sys.argv[3])):
    s = socket.socket()
    s.settimeout(10)
    try:
        # The RST may come before connect() has looked at the handshake.
        s.connect((sys.argv[1], int(sys.argv[2])))
        s.sendall(b"x\n")
        d = s.recv(100)
        print("data" if d else "eof")
    except ConnectionResetError:
        print("reset")
    except socket.timeout:
        print("timeout")
    s.close()
"#;

/// Opens `n` connections, checks each echoes, waits for a line on stdin,
/// then reads each until it ends: one word per connection.
const HOLD_THEN_READ: &str = r#"
import socket, sys
socks = []
for i in range(int(sys.argv[3])):
    s = socket.socket()
    s.settimeout(10)
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.sendall(b"ping")
    assert s.recv(100) == b"ping"
    socks.append(s)
print("open", flush=True)
sys.stdin.readline()
for s in socks:
    try:
        d = s.recv(100)
        print("eof" if not d else "data", flush=True)
    except ConnectionResetError:
        print("reset", flush=True)
    except socket.timeout:
        print("timeout", flush=True)
"#;

#[test]
fn unreachable_or_killed_backends_reset_or_end_the_client() {
    if !require_root("proxy_testbed::unreachable_or_killed_backends_reset_or_end_the_client") {
        return;
    }
    let _tb = Testbed::up_with_backends();
    let dir = scratch("reset");

    // Nothing listens on port 9 in fgt-be: both backends answer RST. Each
    // client tries both; after 5 failures in a row (--eject-after's
    // default) each backend is ejected (the whole pool may be:
    // --eject-max-percent 100), and the 15 clients after that are reset at
    // once without a connect.
    {
        let refusing = vec![format!("{}:9", BACKENDS[2]), format!("{}:9", BACKENDS[3])];
        // Passive ejection alone here (active checks would race it).
        let mut fg = proxy("9", &refusing, &["--health-check", "off", "--eject-max-percent", "100"]);
        let out = py_cli(RESET_PROBE, &[VIP, "9", "20"]);
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words, vec!["reset"; 20], "every client reset:\n{out}");
        let m = wait_metrics("resets counted", Duration::from_secs(10), |m| {
            metric(m, "floodgate_proxy_clients_reset_no_backend_total") == 20
        });
        assert_eq!(metric(&m, "floodgate_proxy_backend_refused_total"), 10, "both backends tried by 5 clients");
        assert_eq!(metric(&m, "floodgate_proxy_backend_retries_total"), 5);
        assert_eq!(metric(&m, "floodgate_proxy_backend_ejections_total"), 2);
        assert_eq!(metric(&m, "floodgate_proxy_no_backend_available_total"), 15);
        assert_eq!(metric(&m, "floodgate_proxy_pairs_opened_total"), 0);
        assert_eq!(metric(&m, "floodgate_backend_up"), 0, "both out");
        assert_eq!(metric(&m, "floodgate_backend_connect_failures_total"), 10);
        fg.kill();
    }

    // A backend killed under open pairs.
    let log = dir.join("echo.log");
    let listen = format!("{}:7", BACKENDS[0]);
    let mut be = echo_backend(&listen, &log, false);
    let _fg = proxy("7", std::slice::from_ref(&listen), &["--backend-connect-timeout", "1"]);
    const HELD: u32 = 20;
    let mut hold =
        in_ns(CLI_NS, &["timeout", "-k", "10", "60", "python3", "-c", HOLD_THEN_READ, VIP, "7", &HELD.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the holding client");
    let mut out = BufReader::new(hold.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "open", "20 pairs echo");
    wait_metrics("pairs open", Duration::from_secs(10), |m| {
        metric(m, "floodgate_proxy_pairs_opened_total") == u64::from(HELD)
    });
    be.kill();
    use std::io::Write;
    hold.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let st = hold.wait().unwrap();
    assert!(st.success(), "holding client: {st}\n{rest}");
    let words: Vec<&str> = rest.split_whitespace().collect();
    assert_eq!(words.len() as u32, HELD, "{rest}");
    assert!(words.iter().all(|w| *w == "eof" || *w == "reset"), "every client's connection ended: {words:?}");
    // New clients: the one backend refuses the first try and the retry on
    // itself, until its fifth failure in a row ejects it (the third
    // client); the last two are reset at once.
    let out = py_cli(RESET_PROBE, &[VIP, "7", "5"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), vec!["reset"; 5], "{out}");
    // (The shards' snapshots come every SNAPSHOT_EVERY: wait for the last.)
    let m = wait_metrics("pairs ended and resets counted", Duration::from_secs(10), |m| {
        metric(m, "floodgate_proxy_pairs_ended_total") == u64::from(HELD)
            && metric(m, "floodgate_proxy_clients_reset_no_backend_total") == 5
    });
    assert_eq!(metric(&m, "floodgate_proxy_backend_refused_total"), 5);
    assert_eq!(metric(&m, "floodgate_proxy_backend_ejections_total"), 1);
    assert_eq!(metric(&m, "floodgate_proxy_no_backend_available_total"), 2);
}

/// `name{shard="i"}` for each of `shards` shards.
fn per_shard(m: &str, name: &str, shards: usize) -> Vec<u64> {
    (0..shards)
        .map(|i| {
            let key = format!("{name}{{shard=\"{i}\"}} ");
            m.lines().find_map(|l| l.strip_prefix(&key)?.trim().parse::<f64>().ok()).unwrap_or(0.0) as u64
        })
        .collect()
}

#[test]
fn two_shards_hand_replies_to_their_owner() {
    if !require_root("proxy_testbed::two_shards_hand_replies_to_their_owner") {
        return;
    }
    const N: u32 = 1000;
    let _tb = Testbed::up_with_backends();
    let dir = scratch("shards");
    let _nginx = nginx(&dir);
    let log = dir.join("headers.log");
    let echo: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:7")).collect();
    let _be = echo_backend(&echo.join(","), &log, false);
    let mut backends: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:80")).collect();
    let both = ["--queues", "2", "--xdp-mode", "native"];
    let fg = proxy_on("80", &backends, &both, 2, &[]);
    assert!(fg.log().contains("cannot be predicted"), "veth has no RSS to read:\n{}", fg.log());

    for _ in 0..8 {
        let (ok, out) = sh(&mut in_ns(CLI_NS, &["curl", "-sS", "-m", "5", &format!("http://{VIP}/")]));
        assert!(ok && out.trim().starts_with("be"), "curl through the proxy:\n{out}");
    }
    let keepalive = wrk(16, 3, false);
    let close = wrk(16, 3, true);
    eprintln!("two shards: {keepalive} keep-alive requests, {close} with Connection: close, 0 errors");
    assert!(close >= 100, "Connection: close requests went through: {close}");
    let m = wait_metrics("every pair ended", Duration::from_secs(10), |m| {
        let opened = metric(m, "floodgate_proxy_pairs_opened_total");
        opened > 0
            && opened == metric(m, "floodgate_proxy_pairs_ended_total")
            && opened == metric(m, "floodgate_proxy_clients_accepted_total")
    });
    let accepted = per_shard(&m, "floodgate_proxy_clients_accepted_total", 2);
    let (sent, taken) = (
        per_shard(&m, "floodgate_shard_handoff_sent_total", 2),
        per_shard(&m, "floodgate_shard_handoff_taken_total", 2),
    );
    let wakeups = per_shard(&m, "floodgate_shard_handoff_wakeups_total", 2);
    eprintln!("http: clients per shard {accepted:?}; handed over {sent:?}, taken {taken:?}, wakeups {wakeups:?}");
    assert!(accepted.iter().all(|&n| n > 0), "both shards served clients: {accepted:?}");
    assert!(sent.iter().sum::<u64>() > 0, "replies landed on the other shard and were handed over");
    assert_eq!(sent.iter().sum::<u64>(), taken.iter().sum::<u64>(), "every frame handed over was taken");
    assert_eq!(metric(&m, "floodgate_shard_handoff_ring_full_total"), 0);
    assert_eq!(metric(&m, "floodgate_proxy_clients_reset_no_backend_total"), 0);
    assert_eq!(metric(&m, "floodgate_proxy_backend_connect_timeouts_total"), 0);
    drop(fg);

    // Echo: random payloads, both close orders, every byte checked.
    backends = echo;
    let _fg = proxy_on("7", &backends, &both, 2, &[]);
    let script = repo().join("engine/tests/peers/echo_client.py");
    let (n, c) = (N.to_string(), "100".to_string());
    let args = ["timeout", "-k", "10", "120", "python3", script.to_str().unwrap(), "--server", VIP, "--port", "7"];
    let mut args = args.to_vec();
    args.extend_from_slice(&["--connections", &n, "--concurrency", &c, "--sources", "198.18.0.10-73"]);
    args.extend_from_slice(&["--timeout", "30", "--total-timeout", "100", "--seed", "21"]);
    let (ok, out) = sh(&mut in_ns(CLI_NS, &args));
    eprintln!("echo client through two shards: {out}");
    assert!(ok, "echo client failed:\n{out}");
    let line = out.lines().find(|l| l.starts_with("ok=")).expect("summary");
    assert!(line.contains(&format!("ok={N} failed=0")), "{line}");
    let m = wait_metrics("every echo pair ended", Duration::from_secs(20), |m| {
        metric(m, "floodgate_proxy_pairs_ended_total") == u64::from(N)
    });
    let (sent, taken) = (
        per_shard(&m, "floodgate_shard_handoff_sent_total", 2),
        per_shard(&m, "floodgate_shard_handoff_taken_total", 2),
    );
    eprintln!("echo: handed over {sent:?}, taken {taken:?}");
    assert!(sent.iter().sum::<u64>() > 0, "echo replies were handed over too");
    assert_eq!(metric(&m, "floodgate_shard_handoff_ring_full_total"), 0);
    assert_eq!(
        metric(&m, "floodgate_proxy_bytes_client_to_backend_total"),
        metric(&m, "floodgate_proxy_bytes_backend_to_client_total"),
        "echo: as many bytes back as forth"
    );
    assert_eq!(metric(&m, "floodgate_proxy_resets_to_client_total"), 0);
}

/// A sample of `name` with exactly `labels` (`shard="0",arm="back"`), 0 if absent.
fn sample(m: &str, name: &str, labels: &str) -> u64 {
    let key = if labels.is_empty() { format!("{name} ") } else { format!("{name}{{{labels}}} ") };
    m.lines().find_map(|l| l.strip_prefix(&key)?.trim().parse::<f64>().ok()).unwrap_or(0.0) as u64
}

#[test]
fn two_armed_front_end_reaches_the_backends_on_its_back_link() {
    if !require_root("proxy_testbed::two_armed_front_end_reaches_the_backends_on_its_back_link") {
        return;
    }
    const N: u32 = 1000;
    // The backends hang on fg-s1 only: nothing reaches them through fg-s0.
    let _tb = Testbed::up_two_armed();
    let dir = scratch("arms");
    let _nginx = nginx(&dir);
    let log = dir.join("headers.log");
    let echo: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:7")).collect();
    let _be = echo_backend(&echo.join(","), &log, true);
    let both = ["--queues", "2", "--xdp-mode", "native"];
    let arms = ["--backend-iface", BACK_IF, "--proxy-protocol", "v2"];
    let http: Vec<String> = BACKENDS.iter().map(|a| format!("{a}:80")).collect();
    // nginx does not read PROXY headers: HTTP goes without them.
    let fg = proxy_from(BACK_SOURCE, "80", &http, &both, 2, &arms[..2]);
    assert!(fg.log().contains("back link: XDP attached"), "{}", fg.log());

    let mut names = std::collections::HashSet::new();
    for _ in 0..8 {
        let (ok, out) = sh(&mut in_ns(CLI_NS, &["curl", "-sS", "-m", "5", &format!("http://{VIP}/")]));
        assert!(ok && out.trim().starts_with("be"), "curl through the two-armed proxy:\n{out}");
        names.insert(out.trim().to_string());
    }
    assert_eq!(names.len(), 4, "every backend answered: {names:?}");
    let keepalive = wrk(16, 3, false);
    let close = wrk(16, 3, true);
    eprintln!("two-armed: {keepalive} keep-alive requests, {close} with Connection: close, 0 errors");
    assert!(close >= 100, "Connection: close requests went through: {close}");
    let m = wait_metrics("every pair ended", Duration::from_secs(10), |m| {
        let opened = metric(m, "floodgate_proxy_pairs_opened_total");
        opened > 0 && opened == metric(m, "floodgate_proxy_pairs_ended_total")
    });
    let back_rx: Vec<u64> =
        (0..2).map(|i| sample(&m, "floodgate_link_rx_frames_total", &format!("shard=\"{i}\",arm=\"back\""))).collect();
    let back_tx: Vec<u64> =
        (0..2).map(|i| sample(&m, "floodgate_link_tx_frames_total", &format!("shard=\"{i}\",arm=\"back\""))).collect();
    eprintln!("back link: frames received per shard {back_rx:?}, sent {back_tx:?}");
    assert_eq!(metric(&m, "floodgate_link_tx_arm_copies_total"), 0, "every frame written into its own arm");
    assert!(back_tx.iter().sum::<u64>() >= keepalive + close, "the requests left on the back link: {back_tx:?}");
    assert!(back_rx.iter().sum::<u64>() > 0, "the backends' replies came in on it: {back_rx:?}");
    assert!(sample(&m, "floodgate_xdp_source_replies_total", "arm=\"back\"") > 0, "steered by the back program");
    assert_eq!(sample(&m, "floodgate_xdp_source_replies_total", ""), 0, "no backend reply on the front link");
    assert_eq!(metric(&m, "floodgate_proxy_clients_reset_no_backend_total"), 0);
    assert_eq!(metric(&m, "floodgate_proxy_backend_connect_timeouts_total"), 0);
    drop(fg);

    // Echo with PROXY v2: the client's address reaches the backend, the
    // backend sees the back link's source address; every byte checked.
    let _fg = proxy_from(BACK_SOURCE, "7", &echo, &both, 2, &arms);
    let script = repo().join("engine/tests/peers/echo_client.py");
    let (n, c) = (N.to_string(), "100".to_string());
    let args = ["timeout", "-k", "10", "120", "python3", script.to_str().unwrap(), "--server", VIP, "--port", "7"];
    let mut args = args.to_vec();
    args.extend_from_slice(&["--connections", &n, "--concurrency", &c, "--sources", "198.18.0.10-73"]);
    args.extend_from_slice(&["--timeout", "30", "--total-timeout", "100", "--seed", "33"]);
    let (ok, out) = sh(&mut in_ns(CLI_NS, &args));
    eprintln!("echo client through the two-armed proxy: {out}");
    assert!(ok, "echo client failed:\n{out}");
    let line = out.lines().find(|l| l.starts_with("ok=")).expect("summary");
    assert!(line.contains(&format!("ok={N} failed=0")), "{line}");
    let lines = std::fs::read_to_string(&log).unwrap();
    let recs: Vec<Vec<&str>> = lines.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(recs.len() as u32, N, "one PROXY header per connection");
    for r in &recs {
        assert_eq!(r[0], "ok", "bad PROXY header: {r:?}");
        assert!(r[1].starts_with("198.18.0."), "the client's own address: {r:?}");
        assert_eq!((r[3], r[4], r[5]), (VIP, "7", BACK_SOURCE), "to the VIP, from the back link's source: {r:?}");
    }
    let m = wait_metrics("every echo pair ended", Duration::from_secs(20), |m| {
        metric(m, "floodgate_proxy_pairs_ended_total") == u64::from(N)
    });
    assert_eq!(
        metric(&m, "floodgate_proxy_bytes_client_to_backend_total"),
        metric(&m, "floodgate_proxy_bytes_backend_to_client_total"),
        "echo: as many bytes back as forth"
    );
    assert_eq!(metric(&m, "floodgate_proxy_resets_to_client_total"), 0);
    assert_eq!(metric(&m, "floodgate_shard_handoff_ring_full_total"), 0);

    // The back link is watched as the front one: down, it is reported.
    let set = |state: &str| {
        let (ok, out) = sh(Command::new("ip").args(["-n", SRV_NS, "link", "set", BACK_IF, state]));
        assert!(ok, "{out}");
    };
    set("down");
    let m = wait_metrics("the back link reported down", Duration::from_secs(5), |m| {
        metric(m, "floodgate_link_up") == 0 && metric(m, "floodgate_up") == 0
    });
    assert!(m.contains("floodgate_link_up{state=\"down\"} 0"), "{m}");
    set("up");
    wait_metrics("the back link up again", Duration::from_secs(5), |m| metric(m, "floodgate_up") == 1);
    let log = _fg.log();
    assert!(log.contains("link fg-s1: down") && log.contains("up again"), "{log}");
}

#[test]
fn a_restarted_proxy_passes_the_backends_time_wait() {
    if !require_root("proxy_testbed::a_restarted_proxy_passes_the_backends_time_wait") {
        return;
    }
    // nginx closes first (`Connection: close`), so it holds TIME-WAIT for
    // every tuple the proxy used; a restarted proxy begins again at the
    // first source port. With keys and clock of the boot (cli::boot) its
    // SYNs carry a higher ISN and a newer timestamp, and Linux takes them
    // (RFC 6191) instead of answering with the old connection's ACK.
    const N: usize = 20;
    let _tb = Testbed::up_with_backends();
    let dir = scratch("restart");
    let _nginx = nginx(&dir);
    let one = [format!("{}:80", BACKENDS[0])];
    let run = || {
        let fg = proxy("80", &one, &["--health-check", "off"]);
        for _ in 0..N {
            let url = format!("http://{VIP}/");
            let (ok, out) = sh(&mut in_ns(CLI_NS, &["curl", "-sS", "-m", "5", "-H", "Connection: close", &url]));
            assert!(ok && out.trim() == "be0", "curl through the proxy:\n{out}");
        }
        let m = wait_metrics("every pair ended", Duration::from_secs(10), |m| {
            metric(m, "floodgate_proxy_pairs_ended_total") == N as u64
        });
        (fg, m)
    };
    let (mut first, _) = run();
    assert!(first.log().contains("keys for this boot"), "{}", first.log());
    first.stop();
    let (_, out) = sh(&mut in_ns(BE_NS, &["ss", "-Htan", "state", "time-wait"]));
    let held = out.lines().filter(|l| l.contains(&format!("{VIP}:1"))).count();
    // (A pair whose client's FIN overtook nginx's leaves the TIME-WAIT with
    // floodgate instead.)
    assert!(held >= N / 2, "nginx holds the first run's tuples in TIME-WAIT ({held}):\n{out}");
    let (second, m) = run();
    assert!(second.log().contains("read from"), "the second process found the keys:\n{}", second.log());
    eprintln!(
        "restart: {held} tuples in the backend's TIME-WAIT; SYNs resent after an ACK {}, connect timeouts {}",
        metric(&m, "floodgate_tcp_syns_resent_after_reset_total"),
        metric(&m, "floodgate_proxy_backend_connect_timeouts_total")
    );
    assert_eq!(metric(&m, "floodgate_tcp_syns_resent_after_reset_total"), 0, "every SYN taken at once");
    assert_eq!(metric(&m, "floodgate_proxy_backend_connect_timeouts_total"), 0);
    assert_eq!(metric(&m, "floodgate_proxy_backend_refused_total"), 0);
}

//! Shared by the root tests (the XDP program, the AF_XDP link, the server on
//! the testbed): the root gate, the testbed guard and hand-built frames.
#![allow(dead_code)]

pub mod proc;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// True when the test may run. Not root: prints a loud SKIPPED line and
/// returns false, except under CI=true, where skipping is a failure.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root, and CI=true forbids skipping root tests");
    }
    // Straight to fd 2: libtest captures eprintln! of passing tests.
    let msg = format!("\n*** SKIPPED: {test} needs root (XDP / AF_XDP / netns); run the tests as root ***\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
    false
}

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// Ethernet header with `vlans` tags (outer first) before `ethertype`.
pub fn eth(ethertype: u16, vlans: &[(u16, u16)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&SERVER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    for &(tpid, vid) in vlans {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// Internet checksum (RFC 1071) of `data` starting from `sum`.
pub fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        sum += (*b as u32) << 8;
    }
    sum
}

pub fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP header (with the usual SYN options when `flags` has SYN: MSS, SACK
/// permitted, timestamps, window scale: 40 bytes) and `payload`.
pub fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let opts: &[u8] = if flags & TCP_SYN != 0 { &LINUX_SYN_OPTIONS } else { &[] };
    tcp_with_options(sport, dport, seq, ack, flags, opts, payload)
}

/// The options of a Linux SYN: MSS 1460, SACK permitted, timestamps
/// (TSval 1), NOP, window scale 7.
pub const LINUX_SYN_OPTIONS: [u8; 20] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];

/// A TCP header with the option bytes `opts` (padded with EOL to a
/// multiple of 4), window 64240, and `payload`.
pub fn tcp_with_options(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut opts = opts.to_vec();
    opts.resize(opts.len().div_ceil(4) * 4, 0);
    let doff = (20 + opts.len()) / 4;
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.push((doff as u8) << 4);
    t.push(flags);
    t.extend_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
    t.extend_from_slice(&opts);
    t.extend_from_slice(payload);
    t
}

/// IPv4 header (no options) + `l4`, checksums filled in for TCP.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = csum_fold(csum_add(0, &ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut l4 = l4.to_vec();
    if proto == 6 {
        fill_tcp_checksum(&mut l4, &src.octets(), &dst.octets());
    }
    ip.extend_from_slice(&l4);
    ip
}

/// The TCP checksum of `seg` over the pseudo-header of `src` and `dst`
/// (either family: the sum is the same shape).
fn fill_tcp_checksum(seg: &mut [u8], src: &[u8], dst: &[u8]) {
    let s = csum_add(csum_add(0, src), dst) + 6 + seg.len() as u32;
    let c = csum_fold(csum_add(s, seg));
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

/// IPv6 header + `l4` (next header `next`), TCP checksum filled in.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, l4: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    ip.push(next);
    ip.push(64);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let mut l4 = l4.to_vec();
    if next == 6 {
        fill_tcp_checksum(&mut l4, &src.octets(), &dst.octets());
    }
    ip.extend_from_slice(&l4);
    ip
}

pub fn concat(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    let mut a = a;
    a.extend_from_slice(&b);
    a
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn sh(cmd: &mut Command) -> (bool, String) {
    sh_within(cmd, SH_LIMIT)
}

/// The longest any one command of the root tests may run: every load in
/// them is bounded far below it, so reaching it means a hang, and the
/// command is killed (it and everything it started) rather than left to
/// hold the testbed until CI's own time runs out.
pub const SH_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// `sh` with its own bound: at `within` the command and every process it
/// started (found through /proc, since `timeout` and daemons leave the
/// process group) get SIGTERM, 5 s later SIGKILL, and the result is a
/// failure whose output says so.
pub fn sh_within(cmd: &mut Command, within: std::time::Duration) -> (bool, String) {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::Instant;
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot run {cmd:?}: {e}")),
    };
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let t0 = Instant::now();
    let mut killed = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        if killed.is_none() && t0.elapsed() >= within {
            signal_tree(child.id() as i32, libc::SIGTERM);
            killed = Some(libc::SIGTERM);
        } else if killed == Some(libc::SIGTERM) && t0.elapsed() >= within + std::time::Duration::from_secs(5) {
            signal_tree(child.id() as i32, libc::SIGKILL);
            killed = Some(libc::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    // A process that left the group may still hold a pipe: the group is
    // gone, so take what the readers have, without waiting on it forever.
    let (out, err) = (join_within(out), join_within(err));
    let mut text = format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    if killed.is_some() {
        text.push_str(&format!("\n*** {cmd:?} killed: still running after {within:?} ***\n"));
        let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
    }
    (killed.is_none() && status.is_some_and(|s| s.success()), text)
}

/// Sends `sig` to `root` and all its descendants (children first listed
/// from /proc/*/stat, so none is missed by being re-parented meanwhile).
pub fn signal_tree(root: i32, sig: i32) {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<i32>().ok());
            if let Some(pp) = ppid {
                parent_of.push((pid, pp));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|&&(_, pp)| pp == p).map(|&(c, _)| c));
        i += 1;
    }
    for pid in tree.into_iter().rev() {
        // SAFETY: kill has no memory preconditions; a stale pid is ESRCH.
        unsafe { libc::kill(pid, sig) };
    }
}

/// SIGKILL to `child` and all it started, then a bounded wait for it to be
/// reaped: a process stuck in the kernel (state D) is reported and left,
/// not waited on forever.
pub fn kill_and_reap(child: &mut std::process::Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal_tree(child.id() as i32, libc::SIGKILL);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < end {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id();
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let state = status.lines().find(|l| l.starts_with("State:")).unwrap_or("State: ?");
    eprintln!("*** process {pid} not reaped 20 s after SIGKILL ({state}, in {wchan}); left behind ***");
}

fn join_within(h: std::thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !h.is_finished() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if h.is_finished() {
        h.join().unwrap_or_default()
    } else {
        b"(output cut: a process outside the command's group holds its pipe)".to_vec()
    }
}

/// The tests' own testbed namespaces (`deploy/testbed.sh` with
/// `FG_TESTBED_NS=fgt`): a demo left running by `deploy/run-testbed.sh` in
/// `fg-srv`/`fg-cli` is never touched by the tests, and the tests never
/// collide with it. The interfaces keep their names (`fg-s0`, `fg-c0`):
/// each lives inside its own namespace.
pub const TESTBED_NS: &str = "fgt";
pub const SRV_NS: &str = "fgt-srv";
pub const CLI_NS: &str = "fgt-cli";
/// The backend namespace (`FG_TESTBED_BACKENDS=1` or 2, see
/// deploy/testbed.sh): `fg-b0` with 198.18.2.10-13, a macvlan of fg-c0
/// (one-armed) or the peer of fg-s1 in the server's namespace (two-armed).
pub const BE_NS: &str = "fgt-be";

/// `deploy/testbed.sh ARG` on the tests' namespaces.
pub fn testbed_sh(arg: &str) -> (bool, String) {
    sh(Command::new(repo().join("deploy/testbed.sh")).arg(arg).env("FG_TESTBED_NS", TESTBED_NS))
}

/// Holds an exclusive lock on the testbed for the whole test, so two test
/// processes (or worktrees) never bring it up and down under each other.
pub struct TestbedLock {
    _file: std::fs::File,
}

impl TestbedLock {
    pub fn take() -> Self {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/floodgate-testbed.lock")
            .expect("open the testbed lock");
        // SAFETY: flock on an fd we own; blocks until the lock is ours.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        TestbedLock { _file: f }
    }
}

/// Brings the testbed up; takes it down on drop, even when the test panics.
/// A watchdog ends a test that holds it past [`TESTBED_LIMIT`].
pub struct Testbed {
    _lock: TestbedLock,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The longest any root test may hold the testbed. The longest test takes
/// a few minutes on a slow machine; past this it is stuck: the watchdog
/// lists what runs in the tests' namespaces, kills it (the test then fails
/// on what it was waiting for), and if the test still holds the testbed a
/// minute later ends the whole test process, so a hang costs minutes and
/// says where it was, never CI's whole time.
pub const TESTBED_LIMIT: std::time::Duration = std::time::Duration::from_secs(900);

impl Testbed {
    pub fn up() -> Self {
        Self::up_env(&[])
    }

    /// [`Testbed::up`] with the backend namespace [`BE_NS`] too.
    pub fn up_with_backends() -> Self {
        Self::up_env(&[("FG_TESTBED_BACKENDS", "1")])
    }

    /// [`Testbed::up`] with the backends behind a second veth pair from
    /// the server's namespace (fg-s1 198.18.2.1 - fg-b0 in [`BE_NS`]): a
    /// two-armed front end.
    pub fn up_two_armed() -> Self {
        Self::up_env(&[("FG_TESTBED_BACKENDS", "2")])
    }

    fn up_env(env: &[(&str, &str)]) -> Self {
        let lock = TestbedLock::take();
        let (ok, out) = sh(Command::new(repo().join("deploy/testbed.sh"))
            .arg("up")
            .env("FG_TESTBED_NS", TESTBED_NS)
            .envs(env.iter().copied()));
        assert!(ok, "testbed.sh up failed:\n{out}");
        let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let test = std::thread::current().name().unwrap_or("a root test").to_string();
        let h = held.clone();
        std::thread::spawn(move || watchdog(&test, &h));
        Testbed { _lock: lock, held }
    }
}

fn watchdog(test: &str, held: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    let t0 = std::time::Instant::now();
    let still = |limit: std::time::Duration| {
        while t0.elapsed() < limit {
            if !held.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        held.load(Ordering::Relaxed)
    };
    if !still(TESTBED_LIMIT) {
        return;
    }
    let ps = sh_within(
        Command::new("ps").args(["-eo", "pid,ppid,stat,wchan:24,etimes,args"]),
        std::time::Duration::from_secs(10),
    )
    .1;
    let mut msg = format!("\n*** WATCHDOG: {test} has held the testbed for {TESTBED_LIMIT:?}; killing what runs in its namespaces ***\n{ps}\n");
    for ns in [SRV_NS, CLI_NS, BE_NS] {
        let (_, pids) = sh_within(Command::new("ip").args(["netns", "pids", ns]), std::time::Duration::from_secs(10));
        msg.push_str(&format!("{ns}: {}\n", pids.split_whitespace().collect::<Vec<_>>().join(" ")));
        for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
    if still(TESTBED_LIMIT + std::time::Duration::from_secs(60)) {
        let msg = format!("\n*** WATCHDOG: {test} still holds the testbed; ending the test process ***\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
        std::process::exit(101);
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.held.store(false, std::sync::atomic::Ordering::Relaxed);
        let (ok, out) = testbed_sh("down");
        if !ok {
            eprintln!("testbed.sh down failed:\n{out}");
        }
    }
}

/// Where the tests' floodgate serves its metrics (inside `SRV_NS`).
pub const METRICS: &str = "127.0.0.1:9100";

/// The metrics text, scraped with curl inside fgt-srv.
pub fn scrape() -> Option<String> {
    let url = format!("http://{METRICS}/metrics");
    let (ok, out) = sh(Command::new("ip").args(["netns", "exec", SRV_NS, "curl", "-sS", "-m", "3", &url]));
    ok.then_some(out)
}

/// Sum over every sample (all shards, all labels) of the family `name`.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits (bounded) until `cond` holds on a fresh scrape; returns the scrape.
pub fn wait_metrics(what: &str, within: std::time::Duration, cond: impl Fn(&str) -> bool) -> String {
    let end = std::time::Instant::now() + within;
    let mut last = String::new();
    while std::time::Instant::now() < end {
        if let Some(m) = scrape() {
            if cond(&m) {
                return m;
            }
            last = m;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let interesting: Vec<&str> =
        last.lines().filter(|l| !l.starts_with('#') && !l.ends_with(" 0") && !l.contains("_info{")).collect();
    panic!("{what}: not within {within:?}; last scrape (non-zero):\n{}", interesting.join("\n"));
}

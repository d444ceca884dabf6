//! Measures what the shard tables really cost in memory.
//!
//! Fills a `ConnTable` with N established connections (control block of B
//! bytes), a `TimeWaitTable<V4Tuple>` with M entries and a
//! `TimeWaitTable<FourTuple>` (IPv6) with M6 entries, each to capacity, and
//! reports resident bytes per entry taken from the process's resident set
//! (`/proc/self/smaps_rollup`, falling back to `/proc/self/statm`) before and
//! after building each one: what the kernel actually committed, page
//! rounding, huge pages and allocator overhead included, not `size_of`.
//!
//! usage: footprint [--conns N] [--timewait M] [--timewait-v6 M6] [--cb-bytes B] [--two-msl-ms T]
//! (without --cb-bytes the table holds the engine's real control block)
//! defaults: 10 000 000 connections, 60 000 000 IPv4 and 20 000 000 IPv6
//! TIME-WAIT entries, T = 60 000.

use std::hint::black_box;
use std::time::Instant;

use floodgate::flow::FourTuple;
use floodgate::table::{ConnTable, TimeWaitTable, TwFullPolicy, TwKey, TwState};
use floodgate::wire::SeqNumber;
use floodgate_bench::{client_tuple, client_tuple_v6, client_v4};

const GIB: f64 = (1u64 << 30) as f64;
const BUDGET_BYTES: u64 = 24 << 30;

/// Resident bytes of this process now.
fn resident_bytes() -> u64 {
    if let Ok(s) = std::fs::read_to_string("/proc/self/smaps_rollup") {
        for line in s.lines() {
            if let Some(rest) = line.strip_prefix("Rss:") {
                let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().expect("Rss in kB");
                return kb * 1024;
            }
        }
    }
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).expect("resident field").parse().expect("pages");
    pages * 4096
}

/// A control block stand-in of exactly `N` bytes (8-aligned, as a real one).
#[repr(C, align(8))]
struct Cb<const N: usize>([u8; N]);

struct Args {
    conns: u64,
    timewait: u64,
    timewait_v6: u64,
    cb_bytes: usize,
    two_msl_ms: u32,
}

fn parse_args() -> Args {
    let mut a =
        Args { conns: 10_000_000, timewait: 60_000_000, timewait_v6: 20_000_000, cb_bytes: 0, two_msl_ms: 60_000 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> u64 {
            let v = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
            v.replace('_', "").parse().unwrap_or_else(|_| usage(&format!("bad number for {flag}: {v}")))
        };
        match flag.as_str() {
            "--conns" => a.conns = value(),
            "--timewait" => a.timewait = value(),
            "--timewait-v6" => a.timewait_v6 = value(),
            "--cb-bytes" => a.cb_bytes = value() as usize,
            "--two-msl-ms" => a.two_msl_ms = value() as u32,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if a.conns >= u32::MAX as u64 || a.timewait >= u32::MAX as u64 || a.timewait_v6 >= u32::MAX as u64 {
        usage("counts must be below 2^32 - 1");
    }
    a
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("footprint: {msg}");
    }
    eprintln!("usage: footprint [--conns N] [--timewait M] [--timewait-v6 M6] [--cb-bytes B] [--two-msl-ms T]");
    std::process::exit(if msg.is_empty() { 0 } else { 2 })
}

struct Measured {
    entries: u64,
    bytes: u64,
    reserved: usize,
}

fn conn_table<const N: usize>(n: u64) -> (Measured, Box<dyn std::any::Any>) {
    fill(n, |i| {
        let mut cb = Cb([0u8; N]);
        cb.0[0] = i as u8;
        cb
    })
}

/// The engine's own control block, as an established connection holds it.
fn conn_table_tcb(n: u64) -> (Measured, Box<dyn std::any::Any>) {
    let cfg = floodgate::tcp::TcpConfig::default();
    fill(n, |i| {
        let peer = floodgate::tcp::emit::L2 { src: [2, 0, 0, 0, 0, 1], dst: [2, 0, 0, 0, 0, 2], vlan: None };
        let mut tcb = floodgate::tcp::tcb::Tcb::new(&cfg, SeqNumber(i as u32), 0, &peer);
        tcb.state = floodgate::tcp::State::Established;
        tcb
    })
}

fn fill<V: 'static>(n: u64, make: impl Fn(u64) -> V) -> (Measured, Box<dyn std::any::Any>) {
    let before = resident_bytes();
    let start = Instant::now();
    let mut t: ConnTable<V> = ConnTable::with_capacity(n as u32);
    for i in 0..n {
        t.insert(client_tuple(i), make(i)).expect("room for every connection");
    }
    let after = resident_bytes();
    eprintln!("  conn table: {n} inserts in {:.1} s, {:?}", start.elapsed().as_secs_f64(), t.stats());
    black_box(&t);
    let m = Measured { entries: n, bytes: after.saturating_sub(before), reserved: t.memory_bytes() };
    (m, Box::new(t))
}

/// Monomorphises the control-block size: B rounded up to a size we compiled.
fn conn_table_dyn(n: u64, cb_bytes: usize) -> (usize, Measured, Box<dyn std::any::Any>) {
    if cb_bytes == 0 {
        let (m, t) = conn_table_tcb(n);
        return (std::mem::size_of::<floodgate::tcp::tcb::Tcb>(), m, t);
    }
    macro_rules! sizes {
        ($($s:literal)*) => {
            $( if cb_bytes <= $s { let (m, t) = conn_table::<$s>(n); return ($s, m, t); } )*
        };
    }
    sizes!(8 32 64 96 128 160 192 224 256 320 384 448 512 640 768 1024 1536 2048 4096);
    usage("--cb-bytes at most 4096")
}

/// A TIME-WAIT table of `m` entries keyed by `key(i)` (IPv4's compact
/// tuple or IPv6's `FourTuple`).
fn timewait_table<K: TwKey + 'static>(
    m: u64,
    two_msl_ms: u32,
    key: fn(u64) -> K,
) -> (Measured, Box<dyn std::any::Any>) {
    let before = resident_bytes();
    let start = Instant::now();
    let mut t = TimeWaitTable::new(m as u32, two_msl_ms, TwFullPolicy::RefuseNew);
    let st = TwState { snd_nxt: SeqNumber(1), rcv_nxt: SeqNumber(2), ts_recent: 3, rcv_wnd: 65535, flags: 1 };
    // One 2MSL's worth of closes, spread over it, as in steady state.
    for i in 0..m {
        t.insert(key(i), st, i * two_msl_ms as u64 / m).expect("room for every entry");
    }
    let after = resident_bytes();
    eprintln!("  time-wait table: {m} inserts in {:.1} s, {:?}", start.elapsed().as_secs_f64(), t.stats());
    black_box(&t);
    let r = Measured { entries: m, bytes: after.saturating_sub(before), reserved: t.memory_bytes() };
    (r, Box::new(t))
}

fn main() {
    let a = parse_args();
    let base = resident_bytes();
    let cb_desc = if a.cb_bytes == 0 { "the engine's Tcb".to_string() } else { format!("{} B", a.cb_bytes) };
    println!(
        "footprint: {} connections (control block: {cb_desc}), {} IPv4 and {} IPv6 TIME-WAIT entries",
        a.conns, a.timewait, a.timewait_v6
    );
    println!("process resident before: {:.1} MiB", base as f64 / (1 << 20) as f64);

    let (cb, conn, _conn_table) = conn_table_dyn(a.conns, a.cb_bytes);
    if a.cb_bytes == 0 {
        println!("(the engine's Tcb is {cb} B)");
    } else if cb != a.cb_bytes {
        println!("(control block rounded up to {cb} B)");
    }
    let (tw, _tw_table) = timewait_table(a.timewait, a.two_msl_ms, client_v4);
    let (tw6, _tw6_table) = timewait_table::<FourTuple>(a.timewait_v6, a.two_msl_ms, client_tuple_v6);

    let per = |m: &Measured| {
        if m.entries == 0 {
            0.0
        } else {
            m.bytes as f64 / m.entries as f64
        }
    };
    println!(
        "connection table: {:>8.1} B/entry resident ({:.2} GiB measured; {:.2} GiB reserved; {} B of it control block)",
        per(&conn),
        conn.bytes as f64 / GIB,
        conn.reserved as f64 / GIB,
        cb
    );
    for (name, m) in [("TIME-WAIT, IPv4:", &tw), ("TIME-WAIT, IPv6:", &tw6)] {
        println!(
            "{name} {:>8.1} B/entry resident ({:.2} GiB measured; {:.2} GiB reserved)",
            per(m),
            m.bytes as f64 / GIB,
            m.reserved as f64 / GIB
        );
    }
    let total = conn.bytes + tw.bytes + tw6.bytes;
    let process = resident_bytes();
    println!(
        "total tables: {:.2} GiB; process resident {:.2} GiB; {} the 24 GiB budget",
        total as f64 / GIB,
        process as f64 / GIB,
        if process <= BUDGET_BYTES { "fits in" } else { "DOES NOT fit in" }
    );
}

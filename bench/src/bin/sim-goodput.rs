//! One bulk transfer in the deterministic simulator (`floodgate::sim`):
//! goodput over a 100 Mbit/s bottleneck with a BDP-sized drop-tail queue,
//! at RTT 10 ms and 100 ms, with no loss, 0.1 % and 1 % Bernoulli loss and
//! 2 % bursty (Gilbert–Elliott) loss on the data direction, next to what
//! the response functions predict: CUBIC's (RFC 9438 §5.1, average window
//! 1.054·RTT^0.75/p^0.75 segments, or Reno-friendly 1.22/√p when larger)
//! and Reno's (Mathis et al. 1997, 1.22/√p). Deterministic: the same
//! arguments give the same table on any machine.
//!
//! `cargo run --release -p floodgate-bench --bin sim-goodput -- --bytes 100000000`

use clap::Parser;
use floodgate::link::memory::{Bottleneck, Faults, GilbertElliott, Verdict};
use floodgate::sim;
use floodgate::tcp::{Congestion, TcpConfig};
use floodgate::time::{Duration, Instant};
use floodgate::wire;
use std::cell::Cell;
use std::rc::Rc;

#[derive(Parser, Debug)]
#[command(about = "Goodput of one bulk transfer in the simulator, against the response functions")]
struct Args {
    /// Bytes to transfer in each run.
    #[arg(long, default_value_t = 100_000_000)]
    bytes: u64,
    /// Stop a run after this much virtual time (seconds); the table then
    /// shows the bytes that arrived and marks the row.
    #[arg(long, default_value_t = 3600)]
    max_secs: u64,
    /// Bottleneck rate, Mbit/s.
    #[arg(long, default_value_t = 100)]
    mbit: u64,
    /// Round-trip times to run, ms.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    rtt_ms: Vec<u64>,
    /// Round-trip times in µs instead (a LAN or the testbed's veth).
    #[arg(long, value_delimiter = ',')]
    rtt_us: Vec<u64>,
    /// Bernoulli loss rates (%) to run instead of the default settings
    /// (none, 0.1 %, 1 %, 2 % bursty).
    #[arg(long, value_delimiter = ',')]
    loss_pct: Vec<f64>,
    /// Lose ACKs too: the same loss on the return direction (the testbed's
    /// nftables and tc rules drop both ways).
    #[arg(long)]
    loss_acks: bool,
    /// Do not negotiate SACK (RFC 2018).
    #[arg(long)]
    no_sack: bool,
    /// Congestion control of the sender: cubic (RFC 9438) or newreno (RFC 5681).
    #[arg(long, default_value = "cubic")]
    congestion: String,
    /// Seed of the loss generators.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// One loss setting of the data direction.
#[derive(Clone, Copy)]
enum Loss {
    None,
    Bernoulli(f64),
    Bursty(f64),
}

impl Loss {
    fn rate(self) -> f64 {
        match self {
            Loss::None => 0.0,
            Loss::Bernoulli(p) | Loss::Bursty(p) => p,
        }
    }
    fn name(self) -> String {
        match self {
            Loss::None => "0".into(),
            Loss::Bernoulli(p) => format!("{}%", p * 100.0),
            Loss::Bursty(p) => format!("{}% GE", p * 100.0),
        }
    }
}

/// Mean burst length (frames) of the bursty setting.
const MEAN_BURST: f64 = 3.0;

struct Outcome {
    received: u64,
    took: Duration,
    finished: bool,
    retransmits: u64,
    /// Data segments on the wire that resent bytes already sent.
    resent: u64,
    rtos: u64,
    queue_dropped: u64,
    lost: u64,
    /// Segments the receiver could not keep out of order (more holes
    /// than it tracks).
    ooo_dropped: u64,
}

fn run(args: &Args, cfg: TcpConfig, rtt: Duration, loss: Loss) -> Outcome {
    let link =
        Faults { delay: rtt / 2, bottleneck: Some(Bottleneck::bdp(args.mbit * 1_000_000, rtt)), ..Faults::default() };
    let up = match loss {
        Loss::None => link,
        Loss::Bernoulli(p) => Faults { loss: p, ..link },
        Loss::Bursty(p) => Faults { burst: Some(GilbertElliott::bursty(p, MEAN_BURST)), ..link },
    };
    let down = if args.loss_acks { up } else { link };
    let mut p = sim::bulk(cfg, up, down, args.bytes, args.seed);
    // Counts retransmissions from the wire: a data segment ending at or
    // below the highest sequence number sent so far.
    let resent = Rc::new(Cell::new(0u64));
    let (count, mut high) = (resent.clone(), None::<u32>);
    p.client.link.set_filter(Some(Box::new(move |_, f| {
        if let Ok(wire::Frame::Tcp(t)) = wire::parse_tcp_frame(f, false) {
            let end = t.tcp.seq_number.0.wrapping_add(t.tcp.payload.len() as u32);
            if !t.tcp.payload.is_empty() {
                match high {
                    Some(h) if (end.wrapping_sub(h) as i32) <= 0 => count.set(count.get() + 1),
                    _ => high = Some(end),
                }
            }
        }
        Verdict::Pass
    })));
    let start = p.now;
    let total = args.bytes;
    let finished = p.drive(Duration::from_secs(args.max_secs), |p| p.server.app.stats.bytes_discarded >= total);
    let from = p.client.app.connected_at.unwrap_or(start);
    let st = p.client.link.stats();
    Outcome {
        received: p.server.app.stats.bytes_discarded,
        took: p.now.saturating_since(from.max(Instant::ZERO)),
        finished,
        retransmits: p.client.ep.stats.retransmits,
        resent: resent.get(),
        rtos: p.client.ep.stats.rto_expiries,
        queue_dropped: st.queue_dropped,
        lost: st.lost + st.burst_lost,
        ooo_dropped: p.server.ep.stats.drop_out_of_order,
    }
}

/// Mbit/s a window of `w` segments of `mss` bytes sustains over `rtt`.
fn rate_of(w: f64, mss: f64, rtt: f64) -> f64 {
    w * mss * 8.0 / rtt / 1e6
}

/// The connection settings the options choose (both ends use them). A
/// congestion-control option belongs here, next to `sack`.
fn config(args: &Args) -> TcpConfig {
    let congestion = match args.congestion.as_str() {
        "cubic" => Congestion::Cubic,
        "newreno" => Congestion::NewReno,
        other => {
            eprintln!("sim-goodput: --congestion {other}: cubic or newreno");
            std::process::exit(2)
        }
    };
    TcpConfig { sack: !args.no_sack, congestion, ..TcpConfig::default() }
}

fn main() {
    let args = Args::parse();
    let cfg = config(&args);
    let mss = (cfg.advertised_mss(false) - if cfg.timestamps { 12 } else { 0 }) as f64;
    let link = args.mbit as f64;
    println!(
        "sim-goodput: {} bytes over {} Mbit/s, BDP drop-tail queue, {}, SACK {}, cap {} s virtual, MSS {mss}",
        args.bytes,
        args.mbit,
        args.congestion,
        if args.no_sack { "off" } else { "on" },
        args.max_secs
    );
    println!(
        "{:>8} {:>8} {:>12} {:>7} {:>8} {:>8} {:>6} {:>6} {:>6} {:>7} {:>10} {:>10}",
        "RTT", "loss", "Mbit/s", "% link", "resent", "rexmits", "RTOs", "lost", "qdrop", "ooodrop", "CUBIC", "Reno"
    );
    let rtts: Vec<Duration> = match args.rtt_us.is_empty() {
        true => args.rtt_ms.iter().map(|&m| Duration::from_millis(m)).collect(),
        false => args.rtt_us.iter().map(|&u| Duration::from_micros(u)).collect(),
    };
    let losses: Vec<Loss> = match args.loss_pct.is_empty() {
        true => vec![Loss::None, Loss::Bernoulli(0.001), Loss::Bernoulli(0.01), Loss::Bursty(0.02)],
        false => {
            args.loss_pct.iter().map(|&p| if p == 0.0 { Loss::None } else { Loss::Bernoulli(p / 100.0) }).collect()
        }
    };
    for &rtt in &rtts {
        for &loss in &losses {
            let wall = std::time::Instant::now();
            let o = run(&args, cfg, rtt, loss);
            let goodput = o.received as f64 * 8.0 / o.took.as_secs_f64().max(1e-9) / 1e6;
            let (cubic, reno) = match loss.rate() {
                0.0 => ("-".to_string(), "-".to_string()),
                p => {
                    let r = rtt.as_secs_f64();
                    let reno_w = (1.5 / p).sqrt();
                    let cubic_w = (1.054 * r.powf(0.75) / p.powf(0.75)).max(reno_w);
                    let show = |w: f64| format!("{:.1}", rate_of(w, mss, r).min(link));
                    (show(cubic_w), show(reno_w))
                }
            };
            let mark = if o.finished { "" } else { "*" };
            println!(
                "{:>8} {:>8} {:>11.2}{mark:1} {:>7.1} {:>8} {:>8} {:>6} {:>6} {:>6} {:>7} {:>10} {:>10}",
                format!("{rtt:?}"),
                loss.name(),
                goodput,
                goodput / link * 100.0,
                o.resent,
                o.retransmits,
                o.rtos,
                o.lost,
                o.queue_dropped,
                o.ooo_dropped,
                cubic,
                reno
            );
            eprintln!("  ({} of {} bytes in {:?} virtual, {:?} wall)", o.received, args.bytes, o.took, wall.elapsed());
        }
    }
    println!("Mbit/s: payload bytes delivered in order / virtual time from the handshake; * = stopped at the cap.");
    println!("resent: data segments on the wire at or below the highest sequence sent; rexmits: the engine's");
    println!("`retransmits` counter; lost: data-direction frames the loss model dropped; qdrop: drop-tail drops;");
    println!("ooodrop: segments the receiver could not keep out of order (more holes than it tracks).");
    println!("CUBIC: RFC 9438 §5.1 (C = 0.4, β = 0.7), max with Reno-friendly; Reno: Mathis 1.22/√p; both × MSS/RTT, capped at the link.");
}

//! Runs one scenario a given number of times, for instruction counts that
//! the shared machine's load does not blur:
//!
//! ```text
//! B=$(ls -t target/release/deps/icount-* | grep -v '\.d$' | head -1)
//! for n in 100000 200000; do perf stat -x, -e instructions:u $B syn_cookie $n; done
//! ```
//! The difference of the two counts divided by the difference of the
//! iterations is the cost of one iteration, setup excluded. Scenarios:
//! `syn_stateful`, `syn_cookie`, `ack_half_open`, `ack_cookie`, `http_conn`
//! (as in `handshake.rs` / `http_conn.rs`, Linux SYN options), `ack_path`,
//! `data_in` (as in `ack_path.rs`),
//! `parse_syn`, `parse_syn_noverify`, `emit_synack`, `checksum_1500`.
//! Not a criterion bench (`harness = false`, prints one line).

mod common;

use std::hint::black_box;

use common::bulk::{AckPath, DataIn};
use common::scenarios::{self, FinalAck, HttpConn, SynSynack};
use common::*;
use floodgate::flow::Addr;
use floodgate::wire::{self, checksum, Control, MacAddr, SeqNumber, TcpOptions, TcpRepr};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let Some(name) = args.first() else {
        eprintln!("usage: icount SCENARIO ITERS");
        return;
    };
    let iters: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let t = match name.as_str() {
        "syn_stateful" => SynSynack::new(false, linux_syn_options).run(iters),
        "syn_cookie" => SynSynack::new(true, linux_syn_options).run(iters),
        "ack_half_open" => FinalAck::new(false).run(iters),
        "ack_cookie" => FinalAck::new(true).run(iters),
        "http_conn" => HttpConn::new().run(iters),
        "ack_path" => AckPath::new().run(iters),
        "data_in" => DataIn::new().run(iters),
        "parse_syn" | "parse_syn_noverify" => {
            let f = scenarios::syn_frames(linux_syn_options);
            let frame = f.get(0).to_vec();
            let verify = name == "parse_syn";
            let start = std::time::Instant::now();
            for _ in 0..iters {
                black_box(wire::parse_tcp_frame(black_box(&frame), verify).is_ok());
            }
            start.elapsed()
        }
        "emit_synack" => {
            let repr = TcpRepr {
                src_port: 80,
                dst_port: 40000,
                control: Control::SYN,
                seq_number: SeqNumber(0xdead_beef),
                ack_number: Some(SeqNumber(0x1234_5679)),
                window_len: 16384,
                urgent: 0,
                options: linux_syn_options(5000),
                payload: &[],
            };
            let mut buf = [0u8; 2048];
            let (src, dst) = (Addr::v4([198, 18, 0, 1]), Addr::v4([198, 18, 0, 2]));
            let start = std::time::Instant::now();
            for _ in 0..iters {
                black_box(
                    wire::emit_tcp_frame(
                        &mut buf,
                        MacAddr(SERVER_MAC),
                        MacAddr(CLIENT_MAC),
                        None,
                        src,
                        dst,
                        black_box(&repr),
                    )
                    .is_ok(),
                );
            }
            start.elapsed()
        }
        "checksum_1500" => {
            let seg: Vec<u8> = (0..1500u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            let start = std::time::Instant::now();
            for _ in 0..iters {
                black_box(checksum::data(black_box(&seg)));
            }
            start.elapsed()
        }
        other => {
            // Not an error: `cargo bench -p floodgate-bench -- FILTER` hands
            // criterion filters to every bench target, this one included.
            eprintln!("icount: no scenario {other:?}, nothing run");
            return;
        }
    };
    let _ = TcpOptions::NONE;
    println!("{name} {iters} iterations: {:.1} ns/iter (wall clock, timed part)", t.as_nanos() as f64 / iters as f64);
}

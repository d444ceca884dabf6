//! What `floodgate-load` prints: a progress line each second, then totals
//! and the connect-time and latency percentiles, as text and as JSON.

use super::{LoadApp, Totals};
use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// Percentiles reported, as (label, quantile).
pub const PERCENTILES: [(&str, f64); 5] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)];

/// One second's progress: rates since the previous line.
pub fn progress_line(elapsed_s: f64, now: &Totals, before: &Totals, dt_s: f64) -> String {
    let rate = |a: u64, b: u64| (a - b) as f64 / dt_s.max(1e-9);
    format!(
        "[{elapsed_s:6.1}s] conn/s {:>9.0}  resp/s {:>9.0}  in flight {:>6}  errors {} (connect {}, reset {}, timeout {}, bad {})",
        rate(now.connects_ok, before.connects_ok),
        rate(now.responses, before.responses),
        now.in_flight,
        now.connect_errors + now.resets + now.timeouts + now.bad_responses + now.echo_mismatches,
        now.connect_errors,
        now.resets,
        now.timeouts,
        now.bad_responses,
    )
}

fn percentiles(h: &Histogram<u64>) -> Vec<(&'static str, u64)> {
    PERCENTILES
        .iter()
        .map(|&(l, q)| {
            (
                l,
                if h.is_empty() {
                    0
                } else if q >= 1.0 {
                    h.max()
                } else {
                    h.value_at_quantile(q)
                },
            )
        })
        .collect()
}

/// The closing summary as text.
pub fn summary(app: &LoadApp, mode: &str, seconds: f64) -> String {
    let t = &app.totals;
    let mut s = String::new();
    let _ = writeln!(s, "mode {mode}, {seconds:.1} s");
    let _ = writeln!(
        s,
        "connections: {} started, {} established ({:.0}/s), {} closed cleanly; errors: connect {}, reset {}, timeout {}",
        t.connects_started,
        t.connects_ok,
        t.connects_ok as f64 / seconds.max(1e-9),
        t.closed_ok,
        t.connect_errors,
        t.resets,
        t.timeouts
    );
    let _ = writeln!(
        s,
        "responses: {} ({:.0}/s), bad {}, echo bytes {}, echo mismatches {}",
        t.responses,
        t.responses as f64 / seconds.max(1e-9),
        t.bad_responses,
        t.echo_bytes,
        t.echo_mismatches
    );
    for (name, h) in [("connect time", &app.connect_us), ("request latency", &app.latency_us)] {
        let p: Vec<String> = percentiles(h).iter().map(|(l, v)| format!("{l} {v} us")).collect();
        let _ = writeln!(s, "{name:>16}: {} (n={})", p.join(", "), h.len());
    }
    s
}

/// The closing summary as JSON.
pub fn json(app: &LoadApp, mode: &str, seconds: f64) -> String {
    let t = &app.totals;
    let hist = |h: &Histogram<u64>| {
        let fields: Vec<String> = percentiles(h).iter().map(|(l, v)| format!("\"{l}\":{v}")).collect();
        format!("{{\"count\":{},{}}}", h.len(), fields.join(","))
    };
    format!(
        concat!(
            "{{\"mode\":\"{}\",\"seconds\":{:.3},\"connects_started\":{},\"connects_ok\":{},",
            "\"connects_per_sec\":{:.1},\"responses\":{},\"responses_per_sec\":{:.1},",
            "\"connect_errors\":{},\"resets\":{},\"timeouts\":{},\"bad_responses\":{},",
            "\"closed_ok\":{},\"echo_bytes\":{},\"echo_mismatches\":{},",
            "\"connect_us\":{},\"latency_us\":{}}}"
        ),
        mode,
        seconds,
        t.connects_started,
        t.connects_ok,
        t.connects_ok as f64 / seconds.max(1e-9),
        t.responses,
        t.responses as f64 / seconds.max(1e-9),
        t.connect_errors,
        t.resets,
        t.timeouts,
        t.bad_responses,
        t.closed_ok,
        t.echo_bytes,
        t.echo_mismatches,
        hist(&app.connect_us),
        hist(&app.latency_us)
    )
}

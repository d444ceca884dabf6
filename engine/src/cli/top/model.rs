//! What `floodgate top` shows, computed from two scrapes of `/metrics` taken
//! some time apart: gauges from the second, rates as the counters' growth
//! over the time between them. A counter that went backwards, or an uptime
//! that did, means the engine restarted in between: that rate is shown as a
//! restart, never as a negative number.

use std::collections::HashMap;

use super::prom::{Sample, Scrape};

/// How a counter moved between the two scrapes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Diff {
    /// Grew by this much (per second, where the column is a rate).
    By(f64),
    /// Went backwards: the engine restarted.
    Restart,
    /// Absent from one of the scrapes.
    Unknown,
}

impl Diff {
    fn per_sec(self, secs: f64) -> Diff {
        match self {
            Diff::By(d) => Diff::By(d / secs),
            other => other,
        }
    }
}

impl std::ops::Add for Diff {
    type Output = Diff;
    /// A restart anywhere makes the sum a restart; an unknown part is left out.
    fn add(self, o: Diff) -> Diff {
        match (self, o) {
            (Diff::Restart, _) | (_, Diff::Restart) => Diff::Restart,
            (Diff::By(a), Diff::By(b)) => Diff::By(a + b),
            (Diff::By(a), Diff::Unknown) | (Diff::Unknown, Diff::By(a)) => Diff::By(a),
            (Diff::Unknown, Diff::Unknown) => Diff::Unknown,
        }
    }
}

/// One shard's line (or the totals): gauges now, rates per second.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardRow {
    pub shard: String,
    pub stalled: bool,
    /// Connections past the handshake.
    pub established: Option<f64>,
    pub half_open: Option<f64>,
    pub time_wait: Option<f64>,
    /// Connections accepted per second.
    pub accepts: Diff,
    pub segments_in: Diff,
    pub segments_out: Diff,
    pub rx_frames: Diff,
    pub tx_frames: Diff,
    /// Every drop counter of the shard, summed (see `is_drop`).
    pub drops: Diff,
}

/// What a backend takes now, over all shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendState {
    Up,
    Down,
    /// Weight 0: set aside by the operator.
    Drained,
    /// Up on `up` of `of` shards.
    Partial {
        up: u32,
        of: u32,
    },
}

/// A counter's total now and its growth over the interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Count {
    pub total: f64,
    pub new: Diff,
}

/// One proxy backend, summed over the shards.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendRow {
    pub pool: String,
    pub backend: String,
    pub state: BackendState,
    pub weight: Option<f64>,
    pub active: f64,
    /// Active opens per second.
    pub connects: Diff,
    pub connect_failures: Count,
    pub check_failures: Count,
    /// Bytes per second from clients to the backend, and back.
    pub bytes_to: Diff,
    pub bytes_from: Diff,
}

/// One listener (address:port), summed over the shards.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerRow {
    pub listener: String,
    pub active: f64,
    /// SYNs and established connections per second.
    pub syns: Diff,
    pub accepts: Diff,
    /// Payload bytes per second received and sent (acknowledged).
    pub bytes_in: Diff,
    pub bytes_out: Diff,
}

/// The whole view.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Seconds between the two scrapes.
    pub secs: f64,
    pub version: Option<String>,
    pub iface: Option<String>,
    pub app: Option<String>,
    pub xdp_mode: Option<String>,
    pub up: Option<bool>,
    /// The `state` label of `floodgate_link_up`.
    pub link: Option<String>,
    pub draining: Option<bool>,
    pub uptime_secs: Option<f64>,
    /// The uptime went backwards: every rate is a restart.
    pub restarted: bool,
    pub shards: Vec<ShardRow>,
    pub total: ShardRow,
    pub listeners: Vec<ListenerRow>,
    pub backends: Vec<BackendRow>,
}

/// The drop counters summed into a shard's drops: the TCP layer's
/// `drop_*` and `syns_dropped_*`, the parser's, the link's, and the
/// hand-off's full rings.
fn is_drop(name: &str) -> bool {
    const LINK_DROPS: [&str; 7] = [
        "no_free_frame",
        "tx_bad_len",
        "rx_multi_buffer",
        "rx_bad_descs",
        "kernel_rx_fill_empty",
        "kernel_rx_ring_full",
        "kernel_rx_dropped",
    ];
    let Some(n) = name.strip_prefix("floodgate_").and_then(|n| n.strip_suffix("_total")) else {
        return false;
    };
    n.starts_with("tcp_drop_")
        || n.starts_with("tcp_syns_dropped_")
        || n == "wire_drops"
        || n == "shard_handoff_ring_full"
        || n.strip_prefix("link_").is_some_and(|l| LINK_DROPS.contains(&l))
}

/// A sample's identity: metric name and labels.
type Key<'a> = (&'a str, &'a [(String, String)]);

/// The two scrapes, the earlier one indexed by name and labels.
struct Pair<'a> {
    prev: HashMap<Key<'a>, f64>,
    cur: &'a Scrape,
    restarted: bool,
}

impl<'a> Pair<'a> {
    /// How the counter `s` (of the later scrape) moved.
    fn diff(&self, s: &Sample) -> Diff {
        let Some(&p) = self.prev.get(&(s.name.as_str(), s.labels.as_slice())) else {
            return Diff::Unknown;
        };
        if !(p.is_finite() && s.value.is_finite()) {
            Diff::Unknown
        } else if self.restarted || s.value < p {
            Diff::Restart
        } else {
            Diff::By(s.value - p)
        }
    }

    /// The samples of `name` on `shard`.
    fn on_shard<'b>(&'b self, name: &'b str, shard: &'b str) -> impl Iterator<Item = &'b Sample> + 'b {
        self.cur.family(name).filter(move |s| s.label("shard") == Some(shard))
    }

    fn shard_diff(&self, name: &str, shard: &str) -> Diff {
        self.on_shard(name, shard).map(|s| self.diff(s)).fold(Diff::Unknown, |a, b| a + b)
    }
}

impl Model {
    /// The view from `prev` and `cur`, scraped `secs` apart.
    pub fn new(prev: &Scrape, cur: &Scrape, secs: f64) -> Model {
        let secs = secs.max(1e-3);
        let uptime = |s: &Scrape| s.get("floodgate_uptime_seconds", &[]);
        let restarted = matches!((uptime(prev), uptime(cur)), (Some(p), Some(c)) if c < p);
        let pair = Pair {
            prev: prev.samples.iter().map(|s| ((s.name.as_str(), s.labels.as_slice()), s.value)).collect(),
            cur,
            restarted,
        };
        let info = cur.family("floodgate_info").next();
        let info_label = |k: &str| info.and_then(|s| s.label(k)).map(str::to_string);
        let link = cur.family("floodgate_link_up").next();
        let shards = shard_rows(&pair, secs);
        let total = shards.iter().fold(blank_row("total"), |t, r| ShardRow {
            shard: t.shard,
            stalled: t.stalled || r.stalled,
            established: add_opt(t.established, r.established),
            half_open: add_opt(t.half_open, r.half_open),
            time_wait: add_opt(t.time_wait, r.time_wait),
            accepts: t.accepts + r.accepts,
            segments_in: t.segments_in + r.segments_in,
            segments_out: t.segments_out + r.segments_out,
            rx_frames: t.rx_frames + r.rx_frames,
            tx_frames: t.tx_frames + r.tx_frames,
            drops: t.drops + r.drops,
        });
        Model {
            secs,
            version: info_label("version"),
            iface: info_label("iface"),
            app: info_label("app"),
            xdp_mode: info_label("xdp_mode"),
            up: cur.get("floodgate_up", &[]).map(|v| v == 1.0),
            link: link.and_then(|s| s.label("state")).map(str::to_string),
            draining: cur.get("floodgate_draining", &[]).map(|v| v == 1.0),
            uptime_secs: uptime(cur),
            restarted,
            shards,
            total,
            listeners: listener_rows(&pair, secs),
            backends: backend_rows(&pair, secs),
        }
    }
}

fn add_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

fn blank_row(shard: &str) -> ShardRow {
    ShardRow {
        shard: shard.to_string(),
        stalled: false,
        established: None,
        half_open: None,
        time_wait: None,
        accepts: Diff::Unknown,
        segments_in: Diff::Unknown,
        segments_out: Diff::Unknown,
        rx_frames: Diff::Unknown,
        tx_frames: Diff::Unknown,
        drops: Diff::Unknown,
    }
}

/// The shards named by any per-shard gauge, in numeric order.
fn shard_rows(pair: &Pair<'_>, secs: f64) -> Vec<ShardRow> {
    let cur = pair.cur;
    let mut ids: Vec<&str> = ["floodgate_shard_stalled", "floodgate_connections_established"]
        .iter()
        .flat_map(|n| cur.family(n))
        .filter_map(|s| s.label("shard"))
        .collect();
    ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), *id));
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let gauge = |name: &str| cur.get(name, &[("shard", id)]);
            let rate = |name: &str| pair.shard_diff(name, id).per_sec(secs);
            let drops = cur
                .samples
                .iter()
                .filter(|s| is_drop(&s.name) && s.label("shard") == Some(id))
                .map(|s| pair.diff(s))
                .fold(Diff::Unknown, |a, b| a + b);
            ShardRow {
                shard: id.to_string(),
                stalled: gauge("floodgate_shard_stalled") == Some(1.0),
                established: gauge("floodgate_connections_established"),
                half_open: gauge("floodgate_connections_half_open"),
                time_wait: gauge("floodgate_connections_time_wait"),
                accepts: rate("floodgate_tcp_connections_accepted_total"),
                segments_in: rate("floodgate_tcp_segments_in_total"),
                segments_out: rate("floodgate_tcp_segments_out_total"),
                rx_frames: rate("floodgate_link_rx_frames_total"),
                tx_frames: rate("floodgate_link_tx_frames_total"),
                drops: drops.per_sec(secs),
            }
        })
        .collect()
}

/// The listeners, in the order first seen, each summed over shards.
fn listener_rows(pair: &Pair<'_>, secs: f64) -> Vec<ListenerRow> {
    let cur = pair.cur;
    let mut keys: Vec<&str> = Vec::new();
    for s in cur.family("floodgate_listener_connections_active") {
        if let Some(l) = s.label("listener") {
            if !keys.contains(&l) {
                keys.push(l);
            }
        }
    }
    keys.into_iter()
        .map(|listener| {
            let of = |name: &'static str| cur.family(name).filter(move |s| s.label("listener") == Some(listener));
            let rate = |name| of(name).map(|s| pair.diff(s)).fold(Diff::Unknown, |a, b| a + b).per_sec(secs);
            ListenerRow {
                listener: listener.to_string(),
                active: of("floodgate_listener_connections_active").map(|s| s.value).sum(),
                syns: rate("floodgate_listener_syns_received_total"),
                accepts: rate("floodgate_listener_connections_accepted_total"),
                bytes_in: rate("floodgate_listener_bytes_received_total"),
                bytes_out: rate("floodgate_listener_bytes_sent_total"),
            }
        })
        .collect()
}

/// The proxy's backends, in the order first seen, each summed over shards.
fn backend_rows(pair: &Pair<'_>, secs: f64) -> Vec<BackendRow> {
    let cur = pair.cur;
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for s in cur.family("floodgate_backend_up") {
        if let (Some(p), Some(b)) = (s.label("pool"), s.label("backend")) {
            if !keys.contains(&(p, b)) {
                keys.push((p, b));
            }
        }
    }
    keys.into_iter()
        .map(|(pool, backend)| {
            let of = |name: &'static str| {
                cur.family(name).filter(move |s| s.label("pool") == Some(pool) && s.label("backend") == Some(backend))
            };
            let sum_diff = |name| of(name).map(|s| pair.diff(s)).fold(Diff::Unknown, |a, b| a + b);
            let count = |name| Count { total: of(name).map(|s| s.value).sum(), new: sum_diff(name) };
            let weight = of("floodgate_backend_weight").map(|s| s.value).reduce(f64::max);
            let (up, shards) =
                of("floodgate_backend_up").fold((0, 0), |(u, n), s| (u + (s.value == 1.0) as u32, n + 1));
            let state = if weight == Some(0.0) {
                BackendState::Drained
            } else if up == shards {
                BackendState::Up
            } else if up == 0 {
                BackendState::Down
            } else {
                BackendState::Partial { up, of: shards }
            };
            BackendRow {
                pool: pool.to_string(),
                backend: backend.to_string(),
                state,
                weight,
                active: of("floodgate_backend_active").map(|s| s.value).sum(),
                connects: sum_diff("floodgate_backend_connects_total").per_sec(secs),
                connect_failures: count("floodgate_backend_connect_failures_total"),
                check_failures: count("floodgate_backend_check_failures_total"),
                bytes_to: sum_diff("floodgate_backend_bytes_to_total").per_sec(secs),
                bytes_from: sum_diff("floodgate_backend_bytes_from_total").per_sec(secs),
            }
        })
        .collect()
}

/// Two canned scrapes of a two-shard proxy, one second apart; also used by
/// the rendering tests.
#[cfg(test)]
pub(crate) mod fixture {
    /// One scrape: `k` scales the counters, `up1` is backend .11's health.
    pub fn scrape(uptime: f64, k: u64, up1: u8) -> String {
        let mut t = String::new();
        t += "# HELP floodgate_up 1 while every shard turns.\n# TYPE floodgate_up gauge\nfloodgate_up 1\n";
        t += "floodgate_link_up{state=\"up\"} 1\n";
        t += "floodgate_info{version=\"0.1.0\",iface=\"fg-s0\",app=\"proxy\",xdp_mode=\"native\"} 1\n";
        t += "floodgate_draining 0\n";
        t += &format!("floodgate_uptime_seconds {uptime:.3}\n");
        for sh in 0..2u64 {
            let n = sh + 1;
            t += &format!("floodgate_shard_stalled{{shard=\"{sh}\"}} 0\n");
            t += &format!("floodgate_connections_established{{shard=\"{sh}\"}} {}\n", 10 * n);
            t += &format!("floodgate_connections_half_open{{shard=\"{sh}\"}} {n}\n");
            t += &format!("floodgate_connections_time_wait{{shard=\"{sh}\"}} {}\n", 100 * n);
            t += &format!("floodgate_tcp_connections_accepted_total{{shard=\"{sh}\"}} {}\n", 50 * k * n);
            t += &format!("floodgate_tcp_segments_in_total{{shard=\"{sh}\"}} {}\n", 1000 * k * n);
            t += &format!("floodgate_tcp_segments_out_total{{shard=\"{sh}\"}} {}\n", 900 * k * n);
            t += &format!("floodgate_tcp_retransmits_total{{shard=\"{sh}\"}} {}\n", 7 * k);
            t += &format!("floodgate_tcp_drop_paws_total{{shard=\"{sh}\"}} {}\n", 2 * k);
            t += &format!("floodgate_tcp_syns_dropped_table_full_total{{shard=\"{sh}\"}} {}\n", k);
            t += &format!("floodgate_wire_drops_total{{shard=\"{sh}\",reason=\"bad_tcp_checksum\"}} {k}\n");
            t += &format!("floodgate_wire_drops_total{{shard=\"{sh}\",reason=\"truncated\"}} {k}\n");
            t += &format!("floodgate_link_rx_frames_total{{shard=\"{sh}\"}} {}\n", 1100 * k * n);
            t += &format!("floodgate_link_tx_frames_total{{shard=\"{sh}\"}} {}\n", 950 * k * n);
            t += &format!("floodgate_link_kernel_rx_ring_full_total{{shard=\"{sh}\"}} {k}\n");
            t += &format!("floodgate_link_tx_wakeups_total{{shard=\"{sh}\"}} {}\n", 500 * k);
            let l = format!("{{shard=\"{sh}\",listener=\"198.18.0.1:80\"}}");
            t += &format!("floodgate_listener_syns_received_total{l} {}\n", 60 * k * n);
            t += &format!("floodgate_listener_connections_accepted_total{l} {}\n", 50 * k * n);
            t += &format!("floodgate_listener_connections_active{l} {}\n", 10 * n);
            t += &format!("floodgate_listener_bytes_received_total{l} {}\n", 4000 * k * n);
            t += &format!("floodgate_listener_bytes_sent_total{l} {}\n", 90_000 * k * n);
            for (b, up, w) in [("198.18.2.10:80", 1, 1), ("198.18.2.11:80", up1, 1), ("198.18.2.12:80", 1, 0)] {
                let l = format!("{{shard=\"{sh}\",pool=\"0\",backend=\"{b}\"}}");
                t += &format!("floodgate_backend_up{l} {}\n", up & (w as u8));
                t += &format!("floodgate_backend_weight{l} {w}\n");
                t += &format!("floodgate_backend_active{l} {}\n", 3 * w);
                t += &format!("floodgate_backend_connects_total{l} {}\n", 20 * k * w);
                t += &format!("floodgate_backend_connect_failures_total{l} {}\n", k * (1 - up as u64));
                t += &format!("floodgate_backend_check_failures_total{l} {}\n", 2 * k * (1 - up as u64));
                t += &format!("floodgate_backend_bytes_to_total{l} {}\n", 1000 * k * w);
                t += &format!("floodgate_backend_bytes_from_total{l} {}\n", 250_000 * k * w);
            }
        }
        t += "floodgate_xdp_program_frames_total{verdict=\"redirect\"} 5\n";
        t
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::scrape;
    use super::*;

    fn model(a: &str, b: &str, secs: f64) -> Model {
        Model::new(&Scrape::parse(a).unwrap(), &Scrape::parse(b).unwrap(), secs)
    }

    #[test]
    fn which_counters_are_drops() {
        for n in [
            "floodgate_tcp_drop_paws_total",
            "floodgate_tcp_syns_dropped_source_limit_total",
            "floodgate_wire_drops_total",
            "floodgate_shard_handoff_ring_full_total",
            "floodgate_link_kernel_rx_ring_full_total",
            "floodgate_link_no_free_frame_total",
        ] {
            assert!(is_drop(n), "{n}");
        }
        for n in [
            "floodgate_tcp_retransmits_total",
            "floodgate_link_rx_frames_total",
            "floodgate_link_tx_wakeups_total",
            "floodgate_shard_handoff_sent_total",
            "floodgate_tcp_drop_paws",
            "floodgate_xdp_program_frames_total",
        ] {
            assert!(!is_drop(n), "{n}");
        }
    }

    #[test]
    fn rates_over_two_scrapes() {
        // Counters scaled by 1 then 3, two seconds apart: each rate is the growth over 2.
        let m = model(&scrape(10.0, 1, 1), &scrape(12.0, 3, 1), 2.0);
        assert_eq!(m.secs, 2.0);
        assert_eq!(m.version.as_deref(), Some("0.1.0"));
        assert_eq!(m.iface.as_deref(), Some("fg-s0"));
        assert_eq!(m.app.as_deref(), Some("proxy"));
        assert_eq!(
            (m.up, m.link.as_deref(), m.draining, m.uptime_secs),
            (Some(true), Some("up"), Some(false), Some(12.0))
        );
        assert!(!m.restarted);
        assert_eq!(m.shards.len(), 2);
        let s1 = &m.shards[1];
        assert_eq!(s1.shard, "1");
        assert_eq!((s1.established, s1.half_open, s1.time_wait), (Some(20.0), Some(2.0), Some(200.0)));
        assert_eq!(s1.accepts, Diff::By(100.0));
        assert_eq!(s1.segments_in, Diff::By(2000.0));
        assert_eq!(s1.segments_out, Diff::By(1800.0));
        assert_eq!(s1.rx_frames, Diff::By(2200.0));
        assert_eq!(s1.tx_frames, Diff::By(1900.0));
        // paws 2k + syns 1k + two wire reasons 1k each + ring full 1k = 6k, k from 1 to 3.
        assert_eq!(s1.drops, Diff::By(6.0));
        let t = &m.total;
        assert_eq!((t.shard.as_str(), t.established, t.time_wait), ("total", Some(30.0), Some(300.0)));
        assert_eq!((t.accepts, t.segments_in, t.drops), (Diff::By(150.0), Diff::By(3000.0), Diff::By(12.0)));

        assert_eq!(m.backends.len(), 3);
        let b = &m.backends[0];
        assert_eq!((b.pool.as_str(), b.backend.as_str(), b.state), ("0", "198.18.2.10:80", BackendState::Up));
        assert_eq!((b.weight, b.active), (Some(1.0), 6.0));
        assert_eq!(b.connects, Diff::By(40.0));
        assert_eq!(b.bytes_to, Diff::By(2000.0));
        assert_eq!(b.bytes_from, Diff::By(500_000.0));
        assert_eq!(b.connect_failures, Count { total: 0.0, new: Diff::By(0.0) });
        assert_eq!(m.backends[2].state, BackendState::Drained);
        assert_eq!(m.backends[2].active, 0.0);
    }

    #[test]
    fn a_down_backend_and_its_failures() {
        let m = model(&scrape(10.0, 1, 0), &scrape(11.0, 4, 0), 1.0);
        let b = &m.backends[1];
        assert_eq!(b.state, BackendState::Down);
        // Failures are counts: 4 per shard now, 3 more than before on each.
        assert_eq!(b.connect_failures, Count { total: 8.0, new: Diff::By(6.0) });
        assert_eq!(b.check_failures, Count { total: 16.0, new: Diff::By(12.0) });
        // Up on one shard of two.
        let mut mixed = scrape(11.0, 4, 1);
        mixed = mixed.replacen(
            "floodgate_backend_up{shard=\"0\",pool=\"0\",backend=\"198.18.2.11:80\"} 1",
            "floodgate_backend_up{shard=\"0\",pool=\"0\",backend=\"198.18.2.11:80\"} 0",
            1,
        );
        let m = model(&scrape(10.0, 1, 1), &mixed, 1.0);
        assert_eq!(m.backends[1].state, BackendState::Partial { up: 1, of: 2 });
    }

    #[test]
    fn a_counter_reset_is_a_restart_not_a_negative_rate() {
        // One counter went backwards (its shard's drops too): only those cells.
        let after = scrape(12.0, 3, 1).replace(
            "floodgate_tcp_segments_in_total{shard=\"0\"} 3000",
            "floodgate_tcp_segments_in_total{shard=\"0\"} 5",
        );
        let m = model(&scrape(10.0, 1, 1), &after, 2.0);
        assert_eq!(m.shards[0].segments_in, Diff::Restart);
        assert_eq!(m.shards[1].segments_in, Diff::By(2000.0));
        assert_eq!(m.total.segments_in, Diff::Restart);
        assert_eq!(m.total.segments_out, Diff::By(2700.0));
        // The engine restarted: its uptime went backwards, every rate is a restart,
        // even the counters that happen to be higher than before.
        let m = model(&scrape(100.0, 1, 1), &scrape(2.0, 3, 1), 2.0);
        assert!(m.restarted);
        assert_eq!(m.shards[0].accepts, Diff::Restart);
        assert_eq!(m.total.rx_frames, Diff::Restart);
        assert_eq!(m.backends[0].connects, Diff::Restart);
        // Gauges are still read.
        assert_eq!(m.total.established, Some(30.0));
    }

    #[test]
    fn missing_metrics_are_unknown() {
        // A counter that appears only in the second scrape, and an engine
        // without the proxy or the link counters.
        let before = "floodgate_up 1\nfloodgate_connections_established{shard=\"0\"} 4\n";
        let after = "floodgate_up 0\nfloodgate_connections_established{shard=\"0\"} 5\n\
                     floodgate_tcp_segments_in_total{shard=\"0\"} 9\n";
        let m = model(before, after, 1.0);
        assert_eq!(m.up, Some(false));
        assert_eq!((m.link.as_deref(), m.uptime_secs, m.version.as_deref()), (None, None, None));
        let s = &m.shards[0];
        assert_eq!((s.established, s.half_open), (Some(5.0), None));
        assert_eq!((s.segments_in, s.rx_frames, s.drops), (Diff::Unknown, Diff::Unknown, Diff::Unknown));
        assert!(m.backends.is_empty());
        let m = model("", "", 1.0);
        assert!(m.shards.is_empty() && m.up.is_none());
        assert_eq!(m.total.accepts, Diff::Unknown);
    }

    /// The names read here are the ones `metrics::render` writes.
    #[test]
    fn reads_what_the_engine_exports() {
        use crate::app::proxy::BackendStats;
        use crate::link::ifstate::LinkState;
        use crate::link::xdp::XdpLinkStats;
        use crate::metrics::{render, Info, View};
        use crate::shard::Snapshot;
        use crate::tcp::Stats;
        let backend = std::net::SocketAddr::from(([198, 18, 2, 10], 80));
        let snap = |shard: usize, k: u64| Snapshot {
            backends: vec![(
                0,
                backend,
                BackendStats { connects: 4 * k, up: true, weight: 3, active: 2, ..Default::default() },
            )],
            stats: Stats {
                segments_in: 100 * k,
                segments_out: 90 * k,
                connections_accepted: 10 * k,
                drop_paws: k,
                syns_dropped_table_full: k,
                ..Stats::default()
            },
            link: XdpLinkStats {
                rx_frames: 110 * k,
                tx_frames: 95 * k,
                kernel_rx_ring_full: k,
                ..XdpLinkStats::default()
            },
            connections: 5,
            half_open: 2,
            time_wait: 4,
            ..Snapshot::blank(shard)
        };
        let huge = crate::table::huge::HugePages {
            thp: "madvise".into(),
            page_bytes: 2 << 20,
            reserved_pages: 0,
            free_pages: 0,
        };
        let info = Info { iface: "fg-s0".into(), app: "proxy", attach_mode: "native", huge };
        let text = |k: u64, uptime_secs: f64| {
            let shards = [Some(snap(0, k)), Some(snap(1, 2 * k))];
            render(&View {
                xdp_back: None,
                info: &info,
                shards: &shards,
                xdp: None,
                draining: false,
                uptime_secs,
                stalled: &[false, true],
                link: LinkState::Up,
                announce: None,
            })
        };
        let m = model(&text(1, 5.0), &text(2, 6.0), 1.0);
        assert_eq!((m.up, m.link.as_deref(), m.uptime_secs), (Some(false), Some("up"), Some(6.0)));
        assert_eq!(
            (m.iface.as_deref(), m.app.as_deref(), m.xdp_mode.as_deref()),
            (Some("fg-s0"), Some("proxy"), Some("native"))
        );
        assert_eq!(m.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        let s1 = &m.shards[1];
        assert!(s1.stalled && !m.shards[0].stalled);
        assert_eq!((s1.established, s1.half_open, s1.time_wait), (Some(3.0), Some(2.0), Some(4.0)));
        assert_eq!((s1.accepts, s1.segments_in, s1.segments_out), (Diff::By(20.0), Diff::By(200.0), Diff::By(180.0)));
        assert_eq!((s1.rx_frames, s1.tx_frames, s1.drops), (Diff::By(220.0), Diff::By(190.0), Diff::By(6.0)));
        let b = &m.backends[0];
        assert_eq!(
            (b.backend.as_str(), b.state, b.weight, b.active),
            ("198.18.2.10:80", BackendState::Up, Some(3.0), 4.0)
        );
        assert_eq!(b.connects, Diff::By(12.0));
    }

    #[test]
    fn diffs_add_up() {
        assert_eq!(Diff::By(1.0) + Diff::By(2.0), Diff::By(3.0));
        assert_eq!(Diff::By(1.0) + Diff::Unknown, Diff::By(1.0));
        assert_eq!(Diff::Unknown + Diff::Restart, Diff::Restart);
        assert_eq!(Diff::Restart + Diff::By(1.0), Diff::Restart);
        assert_eq!(Diff::By(6.0).per_sec(2.0), Diff::By(3.0));
    }
}

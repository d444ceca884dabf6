//! The built-in applications as the shards run them: their counters for the
//! metrics, and a constructor per `--app`.

use crate::app::echo::Echo;
use crate::app::http::{Http, HttpConfig};
use crate::app::proxy::source::Sources;
use crate::app::proxy::{Backend, Pool, Proxy, ProxyConfig, RssChoice};
use crate::app::sink::Sink;
use crate::shard::AppStats;

impl AppStats for Http {
    fn name(&self) -> &'static str {
        "http"
    }
    fn for_each_stat(&self, f: &mut dyn FnMut(&'static str, &'static str, u64)) {
        self.stats.for_each(f)
    }
}

impl AppStats for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn for_each_stat(&self, f: &mut dyn FnMut(&'static str, &'static str, u64)) {
        self.stats.for_each(f)
    }
}

impl AppStats for Sink {
    fn name(&self) -> &'static str {
        "sink"
    }
    fn for_each_stat(&self, f: &mut dyn FnMut(&'static str, &'static str, u64)) {
        self.stats.for_each(f)
    }
}

impl AppStats for Proxy {
    fn name(&self) -> &'static str {
        "proxy"
    }
    fn for_each_backend(&self, f: &mut dyn FnMut(usize, std::net::SocketAddr, &crate::app::proxy::BackendStats)) {
        Proxy::for_each_backend(self, f)
    }
    fn for_each_stat(&self, f: &mut dyn FnMut(&'static str, &'static str, u64)) {
        self.stats.for_each(f)
    }
}

/// Shard `shard`'s proxy settings: the pools (the backends with their
/// next-hop MACs, `macs` in the order of `ProxySettings::all_backends`),
/// each listener's pool, and the shard's slice of the ports. `rss`: the
/// NIC's steering, when read at start (shard `shard` serves queue `shard`).
pub fn proxy_config(
    p: &super::config::ProxySettings,
    macs: &[[u8; 6]],
    shard: usize,
    rss: Option<&std::sync::Arc<crate::link::rss::Steering>>,
) -> ProxyConfig {
    let (lo, hi) = p.shard_ports[shard];
    let mut macs = macs.iter();
    let mut pool = |addrs: &[std::net::SocketAddr], weights: &[u32], balance, maglev| Pool {
        backends: addrs
            .iter()
            .zip(weights)
            .map(|(&addr, &weight)| Backend { addr, mac: macs.next().copied().unwrap_or_default(), weight })
            .collect(),
        proxy_protocol: p.proxy_protocol,
        balance,
        maglev,
    };
    let mut pools = vec![pool(&p.backends, &p.weights, p.balance, p.maglev.clone())];
    for x in &p.extra_pools {
        pools.push(pool(&x.backends, &x.weights, x.balance, x.maglev.clone()));
    }
    ProxyConfig {
        pools,
        listener_pools: p.listener_pools.clone(),
        sources: Sources::new(p.source_first, p.source_last, lo, hi).expect("checked by resolve"),
        connect_timeout: p.connect_timeout,
        idle_timeout: p.idle_timeout,
        eject: p.eject,
        check: p.check,
        probe: p.probe.clone(),
        rss: rss.map(|s| RssChoice { steering: s.clone(), queue: shard as u32 }),
    }
}

/// The HTTP responder's settings from the command line.
pub fn http_config(cfg: &super::config::Resolved) -> HttpConfig {
    HttpConfig {
        body: cfg.http_body.as_bytes().to_vec(),
        body_bytes: cfg.http_body_bytes,
        max_header_bytes: cfg.http_max_header_bytes,
        header_timeout: cfg.http_header_timeout,
        keepalive_timeout: cfg.http_keepalive_timeout,
        ..HttpConfig::default()
    }
}

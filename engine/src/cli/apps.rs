//! The built-in applications as the shards run them: their counters for the
//! metrics, and a constructor per `--app`.

use crate::app::echo::Echo;
use crate::app::http::{Http, HttpConfig};
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

/// The HTTP responder's settings from the command line.
pub fn http_config(cfg: &super::config::Resolved) -> HttpConfig {
    HttpConfig {
        body: cfg.http_body.as_bytes().to_vec(),
        max_header_bytes: cfg.http_max_header_bytes,
        header_timeout: cfg.http_header_timeout,
        keepalive_timeout: cfg.http_keepalive_timeout,
        ..HttpConfig::default()
    }
}

//! The interface applications see, and the built-in applications.
//!
//! An application reacts to [`Event`]s from the endpoint: a connection was
//! accepted or connected, bytes are readable, send space was freed, the peer
//! closed, the connection is gone. In its callback it calls the endpoint's
//! `read`/`recv`, `write`, `shutdown`, `close` and `abort`. The shard calls
//! the application after each received batch and after the timers, and
//! flushes afterwards, so what the application writes leaves with the ACK.
//!
//! Applications keep their per-connection state in arrays sized to the
//! connection table at start-up and indexed by `Handle::index()`, so no
//! event allocates; state that is the same on every idle connection can
//! be held only while a connection is busy ([`held::Held`], as `http` does). A slot is not reused before the application has
//! received its connection's `Closed`, so state indexed by slot is never
//! overwritten early; the handle's generation still tells a stale handle
//! apart from the slot's next connection.
//!
//! Built in: [`http::Http`] (an HTTP/1.1 responder for wrk), [`echo::Echo`]
//! and [`sink::Sink`] (echo and discard for tcpkali), and [`proxy::Proxy`]
//! (a terminating TCP proxy to backends, both sides on this endpoint).

use crate::tcp::{Endpoint, Event};
use crate::time::Instant;

pub mod echo;
pub mod held;
pub mod http;
pub mod proxy;
pub mod sink;
#[cfg(test)]
pub(crate) mod testutil;

/// An application on top of one shard's endpoint.
pub trait App {
    /// One event; the application may act on the connection at once.
    fn on_event(&mut self, ep: &mut Endpoint, now: Instant, ev: Event);

    /// Once a turn, before the timers: work of the application's own
    /// (the proxy's health checks). Must be cheap when there is none.
    fn tick(&mut self, _ep: &mut Endpoint, _now: Instant) {}

    /// When [`App::tick`] next has work (`None`: never), so that an idle
    /// shard wakes for it.
    fn next_tick(&self) -> Option<Instant> {
        None
    }

    /// An order from the operator (the admin interface), given to every
    /// shard between two turns. Applications without such settings ignore it.
    fn order(&mut self, _ep: &mut Endpoint, _now: Instant, _order: &Order) {}
}

/// What the operator may change while floodgate runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Order {
    /// Backend `backend` of pool `pool` takes new clients in proportion to
    /// `weight` from now on; 0 drains it (its connections go on).
    Weight { pool: usize, backend: usize, weight: u32 },
    /// A new backend, at the pool's next index (a reload).
    AddBackend { pool: usize, backend: proxy::Backend },
    /// The backend's connections end within `within`, spread evenly over
    /// it: each gets a FIN towards the backend (as if its client had
    /// half-closed), so the backend finishes and closes, and that FIN
    /// reaches the client after the last byte. Sent after a drain.
    Retire { pool: usize, backend: usize, within: crate::time::Duration },
    /// The pool's Maglev table, rebuilt for new weights or backends.
    Maglev { pool: usize, table: std::sync::Arc<proxy::maglev::Table> },
    /// The pool chooses backends another way from now on (a reload);
    /// `table` is the Maglev table when the new way is Maglev. Connections
    /// already made stay where they are.
    Balance { pool: usize, algorithm: proxy::balance::Algorithm, table: Option<std::sync::Arc<proxy::maglev::Table>> },
    /// New passive ejection and active health check settings for every
    /// pool (a reload). Turning either off readmits the backends it held out.
    Health { eject: Option<proxy::Eject>, check: Option<proxy::check::Check>, probe: proxy::check::Probe },
}

#[cfg(test)]
mod tests {
    use crate::shard::runner::MAX_APP_COUNTERS;

    /// A snapshot carries at most `MAX_APP_COUNTERS` application counters;
    /// one more would not reach the metrics (the proxy's last ones were cut
    /// off once it had 35).
    #[test]
    fn every_applications_counters_fit_a_snapshot() {
        let mut counts = Vec::new();
        let mut n = 0;
        super::echo::EchoStats::default().for_each(|_, _, _| n += 1);
        counts.push(("echo", std::mem::take(&mut n)));
        super::http::HttpStats::default().for_each(|_, _, _| n += 1);
        counts.push(("http", std::mem::take(&mut n)));
        super::sink::SinkStats::default().for_each(|_, _, _| n += 1);
        counts.push(("sink", std::mem::take(&mut n)));
        super::proxy::ProxyStats::default().for_each(|_, _, _| n += 1);
        counts.push(("proxy", n));
        for (app, n) in counts {
            assert!(n > 0 && n <= MAX_APP_COUNTERS, "{app}: {n} counters, a snapshot carries {MAX_APP_COUNTERS}");
        }
    }
}

//! The per-core shard: one thread owning one link (one NIC queue), its TCP
//! endpoint and its application. [`step`] is one turn of the run loop and is
//! shared by the real shard and by the in-memory simulator, so tests and
//! benchmarks run the very code production runs.

pub mod runner;

pub use runner::{AppStats, Command, Report, ShardHandle, ShardSpec, Snapshot};

use crate::app::App;
use crate::link::Link;
use crate::tcp::Endpoint;
use crate::time::Instant;

/// Frames taken from the link between two drains of the events.
pub const RX_BATCH: usize = 64;

/// Runs one turn at `now`: up to `budget` received frames through the
/// endpoint, in batches of [`RX_BATCH`] each followed by the application on
/// the events they raised (so a large budget cannot overflow the event
/// queue), the application's own tick, the timers (and the application
/// again), then the flush of
/// everything queued. Returns the number of frames received (0 means the
/// link was idle).
pub fn step<L: Link, A: App>(ep: &mut Endpoint, link: &mut L, app: &mut A, now: Instant, budget: usize) -> usize {
    let mut received = 0;
    loop {
        let n = link.poll_rx((budget - received).min(RX_BATCH), |frame, tx| ep.on_frame(now, frame, tx));
        received += n;
        drain_events(ep, app, now);
        if n < RX_BATCH || received >= budget {
            break;
        }
    }
    app.tick(ep, now);
    {
        let mut tx = link.tx();
        ep.on_timers(now, &mut tx);
        drain_events(ep, app, now);
        ep.flush(now, &mut tx);
        // Closing connections raise their last events at flush time; what
        // the application does about them goes out in this turn too.
        drain_events(ep, app, now);
        ep.flush(now, &mut tx);
    }
    link.flush();
    received
}

/// Hands every pending event to the application.
pub fn drain_events<A: App>(ep: &mut Endpoint, app: &mut A, now: Instant) {
    while let Some(ev) = ep.poll_event() {
        app.on_event(ep, now, ev);
    }
}

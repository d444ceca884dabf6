//! The per-core shard: one thread owning one link (one NIC queue), its TCP
//! endpoint and its application. [`step`] is one turn of the run loop and is
//! shared by the real shard and by the in-memory simulator, so tests and
//! benchmarks run the very code production runs.

pub mod handoff;
pub mod ring;
pub mod runner;

pub use runner::{AppStats, Command, Report, ShardHandle, ShardSpec, Snapshot};

use crate::app::App;
use crate::link::{Link, RxAction, TxSink};
use crate::tcp::Endpoint;
use crate::time::Instant;

/// Frames taken from the link between two drains of the events.
pub const RX_BATCH: usize = 64;

/// Runs one turn at `now`: up to `budget` received frames through the
/// endpoint, in batches of [`RX_BATCH`] (each looked at ahead first when the
/// tables are large: `Endpoint::prefetch`), each followed by the application on
/// the events they raised (so a large budget cannot overflow the event
/// queue), the application's own tick, the timers (and the application
/// again), then the flush of
/// everything queued. Returns the number of frames received (0 means the
/// link was idle).
pub fn step<L: Link, A: App>(ep: &mut Endpoint, link: &mut L, app: &mut A, now: Instant, budget: usize) -> usize {
    step_with(ep, link, app, now, budget, None)
}

/// [`step`] for a shard of a mesh ([`handoff`]): a received frame whose
/// connection another shard owns goes to that shard's ring instead of the
/// endpoint; after the link's frames, up to `budget` frames other shards
/// handed to this one go through the endpoint exactly as received ones
/// (an in-place reply is copied out to the TX side). Returns the frames
/// received plus those taken (0: nothing to do).
pub fn step_with<L: Link, A: App>(
    ep: &mut Endpoint,
    link: &mut L,
    app: &mut A,
    now: Instant,
    budget: usize,
    mut hand: Option<&mut handoff::Handoff>,
) -> usize {
    let mut received = 0;
    loop {
        let max = (budget - received).min(RX_BATCH);
        let mut handle = |ep: &mut Endpoint, frame: &mut [u8], tx: &mut L::Tx<'_>| {
            if hand.as_deref_mut().is_some_and(|h| h.divert(frame)) {
                return RxAction::Release;
            }
            ep.on_frame(now, frame, tx)
        };
        let n = if ep.looks_ahead() {
            link.poll_rx_looking(max, ep, |ep, frame, pass| ep.prefetch(frame, pass), handle)
        } else {
            link.poll_rx(max, |frame, tx| handle(ep, frame, tx))
        };
        received += n;
        drain_events(ep, app, now);
        if n < RX_BATCH || received >= budget {
            break;
        }
    }
    if let Some(h) = hand {
        h.notify();
        // In batches too, each followed by the application, as above.
        let mut taken = 0;
        loop {
            let max = (budget - taken).min(RX_BATCH);
            let mut tx = link.tx();
            let n = h.drain(max, |frame| {
                if let RxAction::Transmit(len) = ep.on_frame(now, frame, &mut tx) {
                    tx.send_copy(&frame[..len.min(frame.len())]);
                }
            });
            drop(tx);
            drain_events(ep, app, now);
            taken += n;
            if n < max || taken >= budget {
                break;
            }
        }
        received += taken;
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

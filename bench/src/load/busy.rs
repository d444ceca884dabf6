//! floodgate-load's `--busy-poll`: the same preferred busy polling as the
//! engine's shards (`floodgate::link::xdp::busy_poll`, the kernel's
//! `Documentation/networking/napi.rst`), so the client's core does its own
//! receive instead of trading it with a NAPI thread.
//!
//! The socket options are set at the bind (`XdpConfig::busy_poll`); after
//! each turn a queue thread calls [`Turn::end`], which decides the state
//! once frames have arrived (printed), sets the interface's
//! `napi_defer_hard_irqs`/`gro_flush_timeout` when the first socket turns
//! out to busy-poll (restored by [`restore`] at exit, and by the next
//! `floodgate serve` on this namespace after a crash), and yields the core
//! when nothing came and the socket does not busy-poll: with busy polling
//! active there is no NAPI thread to yield to.

use floodgate::link::napi_tuning::{self, NapiTuning, Places};
use floodgate::link::xdp::{BusyPollState, Xdp};
use floodgate::shard::runner::BUSY_POLL_NAPI;
use std::sync::Mutex;

/// The interface's NAPI settings while any queue busy-polls.
static TUNING: Mutex<Option<NapiTuning>> = Mutex::new(None);

/// One queue thread's busy-poll bookkeeping.
#[derive(Default)]
pub struct Turn {
    /// `sched_yield` calls (0 while busy polling).
    pub yields: u64,
}

impl Turn {
    /// After a turn that received `rx` frames.
    pub fn end(&mut self, link: &mut Xdp, rx: usize) {
        if let Some(state) = link.probe_busy_poll() {
            decided(link, state);
        }
        if rx == 0 && !link.busy_poll().is_active() {
            self.yields += 1;
            std::thread::yield_now();
        }
    }
}

/// Reports a state decided at the bind (Linux 6.13+ knows the NAPI ID then).
pub fn at_bind(link: &Xdp) {
    if matches!(link.busy_poll(), BusyPollState::Active(_) | BusyPollState::Unavailable) {
        decided(link, link.busy_poll());
    }
}

fn decided(link: &Xdp, state: BusyPollState) {
    let (iface, queue) = (link.ifname(), link.queue());
    match state {
        BusyPollState::Active(napi) => {
            eprintln!("queue {queue}: preferred busy polling active (NAPI ID {napi})");
            tune(iface);
        }
        BusyPollState::Unavailable => eprintln!(
            "queue {queue}: busy polling unavailable: the socket has no NAPI ID (the driver does not link \
             this RX queue to one; veth does not); going on without it"
        ),
        BusyPollState::Off | BusyPollState::Pending => {}
    }
}

fn tune(iface: &str) {
    let mut t = TUNING.lock().unwrap_or_else(|e| e.into_inner());
    if t.is_some() {
        return;
    }
    let places = Places::default();
    if !napi_tuning::supported(&places, iface) {
        eprintln!("{iface}: no napi_defer_hard_irqs: busy polling without deferred interrupts");
        return;
    }
    match NapiTuning::apply(iface, BUSY_POLL_NAPI, places) {
        Ok(tuning) => {
            let old = tuning.old();
            eprintln!(
                "{iface}: napi_defer_hard_irqs {} -> {}, gro_flush_timeout {} -> {} ns (restored at exit)",
                old.defer_hard_irqs,
                BUSY_POLL_NAPI.defer_hard_irqs,
                old.gro_flush_timeout,
                BUSY_POLL_NAPI.gro_flush_timeout
            );
            *t = Some(tuning);
        }
        Err(e) => eprintln!("{iface}: cannot set the NAPI settings for busy polling: {e}"),
    }
}

/// Puts back the interface's NAPI settings, if they were changed.
pub fn restore() {
    let mut t = TUNING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(mut tuning) = t.take() {
        if let Err(e) = tuning.restore() {
            eprintln!("{}: cannot restore the NAPI settings: {e}", tuning.iface());
        }
    }
}

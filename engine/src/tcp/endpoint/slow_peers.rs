//! Against slow and idle peers: the application's per-connection deadline
//! and the per-source-address connection limit. Kept apart from the
//! protocol proper in `endpoint.rs`, which calls in at four points (SYN,
//! cookie ACK, insert, reap).
//!
//! The deadline is one more timer of the connection (`Tcb::app_at`), filed
//! in the same timing wheel entry as its protocol timers, so arming,
//! pushing back and cancelling it are O(1) and nothing scans connections.
//! When it passes the application gets `Event::Deadline` and decides (an
//! HTTP server sends 408 or closes, an idle echo closes).
//!
//! The limit counts connections per source address in the shard's table
//! (`table::SourceTable`); it is per shard, so with RSS spreading a
//! source's connections over N shards a source may hold up to N times the
//! limit in the process.

use super::Endpoint;
use super::Error;
use crate::flow::FourTuple;
use crate::table::{Admit, Handle};
use crate::tcp::deadline::Deadline;
use crate::tcp::seg::Seg;
use crate::tcp::tcb::flag;
use crate::time::Instant;

impl Endpoint {
    /// Sets (or with `None` clears) the application's deadline for `h`: when
    /// `at` passes, `Event::Deadline(h)` is raised once. Setting it again
    /// replaces it; pushing it later costs no more than recording it.
    pub fn set_deadline(&mut self, h: Handle, at: Option<Instant>) -> Result<(), Error> {
        let tcb = self.live(h)?;
        tcb.app_at = at.map_or(Deadline::NEVER, |t| Deadline::at(t.total_millis()));
        self.schedule(h);
        Ok(())
    }

    /// The application's deadline for `h`, if one is set.
    pub fn deadline(&self, h: Handle) -> Option<Instant> {
        self.tcb(h)
            .map(|t| t.app_at)
            .filter(|d| !d.is_never())
            .map(|d| Instant::from_millis(d.ms(self.now.total_millis())))
    }

    /// Connections counted for the source address of `t` (0 with no limit).
    pub fn source_connections(&self, t: &FourTuple) -> u32 {
        self.sources.as_ref().map_or(0, |s| s.count(&t.remote_addr))
    }

    /// A SYN from a source that already holds the limit: dropped without an
    /// answer, as a full backlog would (the client retries with backoff).
    pub(super) fn source_refuses_syn(&mut self, li: u16, t: &FourTuple) -> bool {
        let (Some(limit), Some(s)) = (self.cfgs[li as usize].source_limit, &self.sources) else { return false };
        if s.at_limit(&t.remote_addr, limit) {
            self.stats.syns_dropped_source_limit += 1;
            return true;
        }
        false
    }

    /// A valid cookie ACK from a source that already holds the limit: the
    /// peer believes it is connected, so it is told otherwise with an RST
    /// (the caller's, seq = SEG.ACK) rather than left to time out.
    pub(super) fn source_refuses_cookie_ack(&mut self, now: Instant, li: u16, t: &FourTuple, seg: &Seg) -> bool {
        let (Some(limit), Some(s)) = (self.cfgs[li as usize].source_limit, &self.sources) else { return false };
        // The cheap test first; the cookie check only for sources at the limit.
        if s.at_limit(&t.remote_addr, limit) && self.valid_cookie_ack(now, t, seg) {
            self.stats.cookie_acks_refused_source_limit += 1;
            return true;
        }
        false
    }

    /// A passive connection entered the table: count it for its source.
    pub(super) fn source_count(&mut self, h: Handle, t: &FourTuple) {
        let li = match self.conns.get(h) {
            Some(tcb) => tcb.listener,
            None => return,
        };
        let (Some(limit), Some(s)) = (self.cfgs[li as usize].source_limit, self.sources.as_mut()) else { return };
        // At most `limit`: the SYN or cookie ACK was checked just before.
        match s.acquire(&t.remote_addr, limit.saturating_add(1)) {
            Admit::Counted => {
                if let Some(tcb) = self.conns.get_mut(h) {
                    tcb.set(flag::SRC_COUNTED);
                }
            }
            Admit::Full => self.stats.source_table_full += 1,
            Admit::OverLimit => {}
        }
    }

    /// A connection leaves the table: count it out of its source.
    pub(super) fn source_uncount(&mut self, h: Handle) {
        let Some(tcb) = self.conns.get_mut(h) else { return };
        if !tcb.has(flag::SRC_COUNTED) {
            return;
        }
        tcb.clear(flag::SRC_COUNTED);
        let Some(&t) = self.conns.key(h) else { return };
        if let Some(s) = self.sources.as_mut() {
            s.release(&t.remote_addr);
        }
    }
}

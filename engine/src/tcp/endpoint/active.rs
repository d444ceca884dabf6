//! What an application that chooses its own source ports (the proxy's
//! backend side) asks before an active open: whether a 4-tuple is free.
//!
//! A tuple is taken while a connection holds it, and while this endpoint
//! holds it in TIME-WAIT (RFC 9293 §3.6: the tuple must not be reused for
//! 2MSL, so that old duplicates die out). RFC 6191 lets the *passive* side
//! reopen a TIME-WAIT tuple on a SYN with a newer timestamp or sequence
//! number; for an active open it gives no such rule, so a tuple in our own
//! TIME-WAIT table is not reused until its entry expires. (When the peer
//! closed first, the TIME-WAIT entry is the peer's, and our new SYN, whose
//! ISN and timestamp grow with time for the same tuple (RFC 6528, the
//! per-tuple timestamp offset), is what RFC 6191 lets the peer accept.)

use super::Endpoint;
use crate::flow::FourTuple;

/// Why a 4-tuple cannot be used for an active open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TupleUse {
    /// A connection in the table holds it (or its slot has not been released yet).
    Connection,
    /// This endpoint's TIME-WAIT table holds it.
    TimeWait,
}

impl Endpoint {
    /// `None` when an active open from `t.local` to `t.remote` may use `t`.
    pub fn tuple_in_use(&self, t: &FourTuple) -> Option<TupleUse> {
        if self.conns.lookup(t).is_some() {
            return Some(TupleUse::Connection);
        }
        let tw = match t.as_v4() {
            Some(k) => self.tw4.lookup(&k).is_some(),
            None => self.tw6.lookup(t).is_some(),
        };
        tw.then_some(TupleUse::TimeWait)
    }
}

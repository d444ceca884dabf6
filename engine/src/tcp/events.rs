//! What the endpoint tells the application, through a bounded queue.

use crate::table::Handle;
use std::collections::VecDeque;

/// Why a connection ended, as the application hears it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// FIN both ways (the connection may linger in TIME-WAIT).
    Normal,
    /// The peer sent an RST.
    Reset,
    /// We reset it (data arrived after close, or close with unread data).
    Aborted,
    /// Retransmissions went unanswered.
    TimedOut,
    /// Keepalive probes went unanswered.
    KeepaliveTimeout,
    /// The peer never sent its FIN after we closed.
    FinWait2Timeout,
    /// An active open was refused (RST) or timed out.
    Refused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A passive open completed.
    Accepted(Handle),
    /// An active open completed.
    Connected(Handle),
    Readable(Handle),
    Writable(Handle),
    /// The peer sent FIN: everything it will send has arrived.
    PeerClosed(Handle),
    /// The deadline the application set ([`Endpoint::set_deadline`]) has
    /// passed; it is cleared, and the connection is otherwise untouched.
    ///
    /// [`Endpoint::set_deadline`]: super::Endpoint::set_deadline
    Deadline(Handle),
    /// The connection is gone; the handle is dead.
    Closed(Handle, CloseReason),
}

/// A queue allocated once; a push past capacity is refused and counted by the caller.
pub struct EventQueue {
    q: VecDeque<Event>,
    cap: usize,
}

impl EventQueue {
    pub fn new(cap: usize) -> EventQueue {
        EventQueue { q: VecDeque::with_capacity(cap), cap }
    }
    pub fn push(&mut self, e: Event) -> bool {
        if self.q.len() >= self.cap {
            return false;
        }
        self.q.push_back(e);
        true
    }
    pub fn pop(&mut self) -> Option<Event> {
        self.q.pop_front()
    }
    pub fn len(&self) -> usize {
        self.q.len()
    }
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

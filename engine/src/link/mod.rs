//! Frame I/O behind one small trait.
//!
//! A link hands received frames in batches to a handler together with a TX
//! sink, so the handler can answer while it still holds the received frame
//! (and, on the SYN fast path, rewrite that frame in place and send it back
//! with [`RxAction::Transmit`]). `Xdp` (AF_XDP over one NIC queue) is the real
//! link; `Memory` (in-process frame pipes with a fault injector) serves tests
//! and benchmarks.

pub mod ifstate;
pub mod napi_tuning;
pub mod rss;
pub mod vip_route;
pub mod xdp;

/// What to do with a received frame once its handler returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxAction {
    /// Give the frame back to the receive side (fill ring / pool).
    Release,
    /// The handler rewrote the frame in place; transmit its first `len` bytes.
    Transmit(usize),
}

/// Which look at a received batch (see [`Link::poll_rx_looking`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    First,
    Second,
}

/// Where frames to send are written.
pub trait TxSink {
    /// Writes one frame: `write` fills a frame-sized buffer and returns the
    /// frame's length (0 cancels). Returns false when no TX frame is free;
    /// the link counts that drop.
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool;

    /// [`send`](Self::send) of a frame whose Ethernet source address will
    /// be `src`: a link with two arms picks the arm by it before the frame
    /// is written, so nothing is copied ([`xdp::arms`]). Others ignore it.
    fn send_from<F: FnOnce(&mut [u8]) -> usize>(&mut self, src: &[u8; 6], write: F) -> bool {
        let _ = src;
        self.send(write)
    }

    /// Sends a copy of `frame` (a reply written into a received frame that
    /// the link cannot send in place). A frame longer than a TX buffer is
    /// not sent (the write is cancelled).
    fn send_copy(&mut self, frame: &[u8]) -> bool {
        let write = |buf: &mut [u8]| match buf.get_mut(..frame.len()) {
            Some(b) => {
                b.copy_from_slice(frame);
                frame.len()
            }
            None => 0,
        };
        match frame.get(6..12).and_then(|m| <[u8; 6]>::try_from(m).ok()) {
            Some(src) => self.send_from(&src, write),
            None => self.send(write),
        }
    }
}

pub mod memory;

pub use memory::Memory;

/// One queue's frame I/O.
pub trait Link {
    type Tx<'a>: TxSink
    where
        Self: 'a;

    /// Hands up to `budget` received frames to `handler`, one at a time, with a
    /// TX sink. Returns how many frames were received.
    fn poll_rx<H>(&mut self, budget: usize, handler: H) -> usize
    where
        H: FnMut(&mut [u8], &mut Self::Tx<'_>) -> RxAction;

    /// [`poll_rx`](Self::poll_rx), with a look at each batch before any of
    /// it is handled: `look(state, frame, Pass::First)` for every frame of
    /// the batch, then `look(state, frame, Pass::Second)` for every frame,
    /// then `handler(state, frame, tx)` for each. The looks start memory
    /// loads (the tables a frame will read) so that the misses of a whole
    /// burst overlap instead of queueing one after the other; they must not
    /// change anything, and see `state` shared where the handler has it to
    /// change. A link that cannot show a batch ahead hands frames straight
    /// to `handler`.
    fn poll_rx_looking<S, L, H>(&mut self, budget: usize, state: &mut S, look: L, mut handler: H) -> usize
    where
        L: FnMut(&S, &[u8], Pass),
        H: FnMut(&mut S, &mut [u8], &mut Self::Tx<'_>) -> RxAction,
    {
        let _ = look;
        self.poll_rx(budget, |frame, tx| handler(state, frame, tx))
    }

    /// A TX sink for sends not caused by a received frame (timers, apps).
    fn tx(&mut self) -> Self::Tx<'_>;

    /// Pushes queued frames to the device, reaps TX completions and refills
    /// the receive side. Called once per batch.
    fn flush(&mut self);
}

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

/// Where frames to send are written.
pub trait TxSink {
    /// Writes one frame: `write` fills a frame-sized buffer and returns the
    /// frame's length (0 cancels). Returns false when no TX frame is free;
    /// the link counts that drop.
    fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool;

    /// Sends a copy of `frame` (a reply written into a received frame that
    /// the link cannot send in place). A frame longer than a TX buffer is
    /// not sent (the write is cancelled).
    fn send_copy(&mut self, frame: &[u8]) -> bool {
        self.send(|buf| match buf.get_mut(..frame.len()) {
            Some(b) => {
                b.copy_from_slice(frame);
                frame.len()
            }
            None => 0,
        })
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

    /// A TX sink for sends not caused by a received frame (timers, apps).
    fn tx(&mut self) -> Self::Tx<'_>;

    /// Pushes queued frames to the device, reaps TX completions and refills
    /// the receive side. Called once per batch.
    fn flush(&mut self);
}

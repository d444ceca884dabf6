//! A two-armed shard: the front link (`--iface`, the clients) and the back
//! link (`--backend-iface`, the backends) of one shard, as on a bare-metal
//! front end with a front and a back NIC. One endpoint serves both: the
//! proxy's client side arrives on the front, its backend side on the back.
//!
//! Each arm is a whole [`Xdp`] (its own UMEM, its four rings, its queue of
//! its own interface); [`Arms`] is the one [`Link`] the shard drives.
//!
//! * Receive: each `poll_rx` takes frames from both arms, the one that went
//!   second last time first, so a busy arm cannot starve the other. A
//!   frame's handler gets a TX sink of the arm it came in on, which also
//!   holds the other arm.
//! * Transmit: a frame goes out on the arm whose MAC is its Ethernet source.
//!   The endpoint writes every frame from the MAC of its connection's arm
//!   (`tcp::flag::BACK_ARM`: active opens on a two-armed shard, and
//!   connections whose SYN came to the back MAC; a stateless reply answers
//!   from the MAC the frame came to), and says which before writing
//!   ([`crate::link::TxSink::send_from`]), so the frame is written straight into a frame
//!   of that arm's UMEM. A frame written through plain [`crate::link::TxSink::send`]
//!   is looked at after writing: if it is from the other arm's MAC it is
//!   copied there (`tx_arm_copies`; none today: the endpoint names every
//!   frame's source, and so does `send_copy`, which carries the in-place
//!   replies to frames another shard handed over, from the frame). An in-place reply (`RxAction::Transmit`) leaves on the arm its
//!   frame came in on; the endpoint answers it from the back MAC when
//!   the frame was addressed to it, else from the front's.
//! * The arms share nothing else: each flushes, refills and counts on its
//!   own (the back's counters carry `arm="back"`). Busy polling and the
//!   SYN cookies in XDP are the front's (the back socket is bound without
//!   busy polling); the back link carries only the backends' replies,
//!   which the back interface's own program steers by the `sources` map.
//!   The two interfaces must have different MACs (checked at start).
//!
//! One UMEM shared by both sockets (`XDP_SHARED_UMEM` across devices,
//! Linux 5.10+) would let a frame change arms without even the copy of the
//! fallback path; it is not used: each arm keeps the one-link invariants
//! of [`Xdp`] (the UMEM sized for its own rings).

use xsk_rs::Umem;

use super::{send_on, send_then, Pool, Xdp, XdpTx};
use crate::link::{Link, Pass, RxAction};

/// The other arm, as the sink of one arm holds it.
pub(crate) struct Arm<'a> {
    umem: &'a Umem,
    pool: &'a mut Pool,
    pub(super) mac: [u8; 6],
}

impl Arm<'_> {
    pub(super) fn reborrow(&mut self) -> Arm<'_> {
        Arm { umem: self.umem, pool: &mut *self.pool, mac: self.mac }
    }

    /// Writes a frame straight into this arm.
    pub(super) fn send<F: FnOnce(&mut [u8]) -> usize>(&mut self, write: F) -> bool {
        send_on(self.umem, self.pool, write)
    }
}

/// `send` on the arm of (`umem`, `pool`), unless the frame written turns
/// out to be from the other arm's MAC: then a copy goes out there.
pub(super) fn send_routed<F: FnOnce(&mut [u8]) -> usize>(
    umem: &Umem,
    pool: &mut Pool,
    other: &mut Arm<'_>,
    write: F,
) -> bool {
    send_then(umem, pool, write, |frame| {
        is_from(frame, &other.mac).then(|| {
            let mut fits = false;
            let sent = other.send(|buf| match buf.get_mut(..frame.len()) {
                Some(b) => {
                    b.copy_from_slice(frame);
                    fits = true;
                    frame.len()
                }
                None => 0,
            });
            if sent && fits {
                other.pool.stats.tx_arm_copies += 1;
            }
            // A frame longer than the other arm's frames is not sent.
            sent && fits
        })
    })
}

/// The frame's Ethernet source address is `mac`.
pub fn is_from(frame: &[u8], mac: &[u8; 6]) -> bool {
    frame.get(6..12) == Some(&mac[..])
}

/// A shard's links: the front one, and the back one of a two-armed shard.
pub struct Arms {
    pub front: Xdp,
    front_mac: [u8; 6],
    back: Option<(Xdp, [u8; 6])>,
    /// The back arm is polled first at the next `poll_rx`.
    back_first: bool,
}

impl Arms {
    /// A one-armed shard (the backends, if any, are reached through `front`).
    pub fn one(front: Xdp) -> Arms {
        Arms { front, front_mac: [0; 6], back: None, back_first: false }
    }

    /// A two-armed shard: frames from `back_mac` leave through `back`.
    pub fn two(front: Xdp, front_mac: [u8; 6], back: Xdp, back_mac: [u8; 6]) -> Arms {
        Arms { front, front_mac, back: Some((back, back_mac)), back_first: false }
    }

    pub fn back(&self) -> Option<&Xdp> {
        self.back.as_ref().map(|(x, _)| x)
    }

    pub fn back_mut(&mut self) -> Option<&mut Xdp> {
        self.back.as_mut().map(|(x, _)| x)
    }

    /// RX ring slots of both arms: the most frames one turn may find waiting.
    pub fn rx_ring(&self) -> usize {
        self.front.rx_ring() + self.back().map_or(0, Xdp::rx_ring)
    }

    /// Frames both arms have put on their TX rings so far.
    pub fn tx_frames(&self) -> u64 {
        self.front.pool.stats.tx_frames + self.back().map_or(0, |b| b.pool.stats.tx_frames)
    }

    /// Frames on both TX sides not yet completed.
    pub fn tx_outstanding(&self) -> u64 {
        self.front.tx_outstanding() + self.back().map_or(0, Xdp::tx_outstanding)
    }
}

/// The arms in this poll's order, the one that went second last time
/// first; each with its MAC.
fn order<'a>(
    back_first: &mut bool,
    front: &'a mut Xdp,
    front_mac: [u8; 6],
    back: &'a mut Xdp,
    back_mac: [u8; 6],
) -> (&'a mut Xdp, [u8; 6], &'a mut Xdp, [u8; 6]) {
    *back_first = !*back_first;
    if *back_first {
        (back, back_mac, front, front_mac)
    } else {
        (front, front_mac, back, back_mac)
    }
}

/// `this` polled with `other` (whose MAC is `other_mac`) for its sinks.
fn poll_arm<H>(this: &mut Xdp, other: &mut Xdp, other_mac: [u8; 6], budget: usize, handler: &mut H) -> usize
where
    H: FnMut(&mut [u8], &mut XdpTx<'_>) -> RxAction,
{
    let mut arm = Arm { umem: &other.umem, pool: &mut other.pool, mac: other_mac };
    this.poll_rx_with(budget, Some(&mut arm), handler)
}

fn poll_arm_looking<S, L, H>(
    this: &mut Xdp,
    other: &mut Xdp,
    other_mac: [u8; 6],
    budget: usize,
    state: &mut S,
    look: &mut L,
    handler: &mut H,
) -> usize
where
    L: FnMut(&S, &[u8], Pass),
    H: FnMut(&mut S, &mut [u8], &mut XdpTx<'_>) -> RxAction,
{
    let mut arm = Arm { umem: &other.umem, pool: &mut other.pool, mac: other_mac };
    this.poll_rx_looking_with(budget, Some(&mut arm), state, look, handler)
}

impl Link for Arms {
    type Tx<'a> = XdpTx<'a>;

    fn poll_rx<H>(&mut self, budget: usize, mut handler: H) -> usize
    where
        H: FnMut(&mut [u8], &mut Self::Tx<'_>) -> RxAction,
    {
        let Some((back, back_mac)) = self.back.as_mut() else {
            return self.front.poll_rx(budget, handler);
        };
        let (x, x_mac, y, y_mac) = order(&mut self.back_first, &mut self.front, self.front_mac, back, *back_mac);
        let n = poll_arm(x, y, y_mac, budget, &mut handler);
        n + poll_arm(y, x, x_mac, budget - n, &mut handler)
    }

    fn poll_rx_looking<S, L, H>(&mut self, budget: usize, state: &mut S, mut look: L, mut handler: H) -> usize
    where
        L: FnMut(&S, &[u8], Pass),
        H: FnMut(&mut S, &mut [u8], &mut Self::Tx<'_>) -> RxAction,
    {
        let Some((back, back_mac)) = self.back.as_mut() else {
            return self.front.poll_rx_looking(budget, state, look, handler);
        };
        let (l, h) = (&mut look, &mut handler);
        let (x, x_mac, y, y_mac) = order(&mut self.back_first, &mut self.front, self.front_mac, back, *back_mac);
        let n = poll_arm_looking(x, y, y_mac, budget, state, l, h);
        n + poll_arm_looking(y, x, x_mac, budget - n, state, l, h)
    }

    /// A sink on the front arm that sends a frame from the back's MAC on
    /// the back.
    fn tx(&mut self) -> Self::Tx<'_> {
        match self.back.as_mut() {
            None => self.front.tx(),
            Some((back, back_mac)) => XdpTx {
                umem: &self.front.umem,
                pool: &mut self.front.pool,
                other: Some(Arm { umem: &back.umem, pool: &mut back.pool, mac: *back_mac }),
            },
        }
    }

    fn flush(&mut self) {
        self.front.flush();
        if let Some((back, _)) = self.back.as_mut() {
            back.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_from;

    #[test]
    fn a_frame_is_routed_by_its_ethernet_source() {
        let back = [2, 0, 0, 0, 0, 0xb];
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xc]);
        frame[6..12].copy_from_slice(&back);
        assert!(is_from(&frame, &back));
        assert!(!is_from(&frame, &[2, 0, 0, 0, 0, 0xc]), "the destination is not the source");
        assert!(!is_from(&frame[..11], &back), "a runt frame is from nobody");
    }
}

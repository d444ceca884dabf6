//! The bridge between the state machine and the wire: a parsed TCP repr
//! becomes a [`Seg`], an [`Outgoing`] becomes a frame.

use super::seg::Seg;
use super::tcb::Outgoing;
use crate::flow::FourTuple;
use crate::wire::{self, Control, MacAddr, SeqNumber, TcpOptions, TcpRepr};

/// Largest payload one segment carries (a UMEM frame is 2048 bytes or more).
pub const MAX_PAYLOAD: usize = 2048;

/// Link-layer addressing of a reply: our MAC, the MAC the peer's frame came
/// from (so a front end behind a router answers through it), and the VLAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L2 {
    pub src: [u8; 6],
    pub dst: [u8; 6],
    pub vlan: Option<u16>,
}

pub fn seg_from_repr<'a>(r: &TcpRepr<'a>) -> Seg<'a> {
    Seg {
        control: r.control.bits() & 0x1f,
        seq: r.seq_number,
        ack: r.ack_number.unwrap_or(SeqNumber(0)),
        window: r.window_len,
        mss: r.options.mss,
        window_scale: r.options.window_scale,
        sack_permitted: r.options.sack_permitted,
        timestamp: r.options.timestamp,
        payload: r.payload,
    }
}

/// Writes `out` (from `t.local` to `t.remote`) into `buf`; returns the frame
/// length, 0 if it does not fit.
pub fn segment_frame(buf: &mut [u8], l2: &L2, t: &FourTuple, out: &Outgoing, payload: &[u8]) -> usize {
    let control = Control(out.control);
    let mut options = TcpOptions { timestamp: out.timestamp, ..TcpOptions::default() };
    if let Some(o) = out.syn_options {
        options.mss = Some(o.mss);
        options.window_scale = o.window_scale;
        options.sack_permitted = o.sack_permitted;
    }
    let repr = TcpRepr {
        src_port: t.local_port,
        dst_port: t.remote_port,
        control,
        seq_number: out.seq,
        ack_number: control.ack().then_some(out.ack),
        window_len: out.window,
        urgent: 0,
        options,
        payload,
    };
    wire::emit_tcp_frame(buf, MacAddr(l2.src), MacAddr(l2.dst), l2.vlan, t.local_addr, t.remote_addr, &repr)
        .unwrap_or(0)
}

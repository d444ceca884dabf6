//! The bridge between the state machine and the wire: a parsed TCP repr
//! becomes a [`Seg`], an [`Outgoing`] becomes a frame.

use super::seg::Seg;
use super::tcb::Outgoing;
use crate::flow::FourTuple;
use crate::wire::{self, Control, MacAddr, SeqNumber, TcpOptions, TcpRepr};

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
        // URG is not acted on; ECE and CWR are (RFC 3168 §6.1).
        control: r.control.bits() & !0x20,
        seq: r.seq_number,
        ack: r.ack_number.unwrap_or(SeqNumber(0)),
        window: r.window_len,
        mss: r.options.mss,
        window_scale: r.options.window_scale,
        sack_permitted: r.options.sack_permitted,
        timestamp: r.options.timestamp,
        sack: r.options.sack_blocks,
        payload: r.payload,
        ecn: 0,
    }
}

/// Writes `out` (from `t.local` to `t.remote`) into `buf`; returns the frame
/// length, 0 if it does not fit.
#[inline]
pub fn segment_frame(buf: &mut [u8], l2: &L2, t: &FourTuple, out: &Outgoing, payload: &[u8]) -> usize {
    let repr = header_repr(t, out, payload);
    let n = wire::emit_tcp_frame(buf, MacAddr(l2.src), MacAddr(l2.dst), l2.vlan, t.local_addr, t.remote_addr, &repr)
        .unwrap_or(0);
    mark_ect(buf, n, out)
}

/// ECT(0) into the IP header of a frame just written, when `out` asks.
#[inline(always)]
fn mark_ect(buf: &mut [u8], n: usize, out: &Outgoing) -> usize {
    if out.ect && n > 0 {
        wire::set_ecn(&mut buf[..n], wire::ecn::ECT0);
    }
    n
}

/// [`segment_frame`] with the `out.payload_len` payload bytes written
/// straight into the frame by `fill` (say, `Ring::peek` from the send
/// ring), so no staging buffer is zeroed or copied through.
#[inline]
pub fn segment_frame_with(
    buf: &mut [u8],
    l2: &L2,
    t: &FourTuple,
    out: &Outgoing,
    fill: impl FnOnce(&mut [u8]),
) -> usize {
    let repr = header_repr(t, out, &[]);
    let len = out.payload_len as usize;
    let n = wire::emit_tcp_frame_with(
        buf,
        MacAddr(l2.src),
        MacAddr(l2.dst),
        l2.vlan,
        t.local_addr,
        t.remote_addr,
        &repr,
        len,
        fill,
    )
    .unwrap_or(0);
    mark_ect(buf, n, out)
}

#[inline(always)]
fn header_repr<'a>(t: &FourTuple, out: &Outgoing, payload: &'a [u8]) -> TcpRepr<'a> {
    let control = Control(out.control);
    let mut options = TcpOptions { timestamp: out.timestamp, sack_blocks: out.sack, ..TcpOptions::default() };
    if let Some(o) = out.syn_options {
        options.mss = Some(o.mss);
        options.window_scale = o.window_scale;
        options.sack_permitted = o.sack_permitted;
    }
    TcpRepr {
        src_port: t.local_port,
        dst_port: t.remote_port,
        control,
        seq_number: out.seq,
        ack_number: control.ack().then_some(out.ack),
        window_len: out.window,
        urgent: 0,
        options,
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::tcb::{ctl, SynOptions};
    use crate::wire::SeqNumber;

    #[test]
    fn filled_payload_frames_equal_copied_ones() {
        let data: Vec<u8> = (0..1400u32).map(|i| (i * 7) as u8).collect();
        let v4 = FourTuple::new("198.18.0.1:80".parse().unwrap(), "198.18.0.2:40000".parse().unwrap());
        let v6 = FourTuple::new("[2001:db8::1]:80".parse().unwrap(), "[2001:db8::2]:40000".parse().unwrap());
        for (t, vlan) in [(v4, None), (v4, Some(7)), (v6, None)] {
            let l2 = L2 { src: [2, 0, 0, 0, 0, 1], dst: [2, 0, 0, 0, 0, 2], vlan };
            for len in [0usize, 1, 71, 1400] {
                let out = Outgoing {
                    control: ctl::ACK | ctl::PSH | ctl::FIN,
                    seq: SeqNumber(5),
                    ack: SeqNumber(9),
                    window: 512,
                    timestamp: Some((1, 2)),
                    syn_options: (len == 0).then_some(SynOptions {
                        mss: 1460,
                        window_scale: Some(7),
                        sack_permitted: true,
                    }),
                    sack: [None; crate::wire::MAX_SACK_BLOCKS],
                    payload_offset: 0,
                    payload_len: len as u32,
                    ect: len > 1,
                };
                let (mut a, mut b) = ([0xa5u8; 1600], [0xa5u8; 1600]);
                let na = segment_frame(&mut a, &l2, &t, &out, &data[..len]);
                let nb = segment_frame_with(&mut b, &l2, &t, &out, |p| p.copy_from_slice(&data[..len]));
                assert!(na > 0);
                assert_eq!(na, nb, "{t:?} {vlan:?} {len}");
                assert_eq!(a[..], b[..], "{t:?} {vlan:?} {len}");
            }
        }
    }
}

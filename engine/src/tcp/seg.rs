//! A received segment as the state machine sees it: the TCP header fields
//! and options it acts on, and the payload, borrowed from the frame.

use super::tcb::ctl;
use crate::wire::{SeqNumber, MAX_SACK_BLOCKS};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seg<'a> {
    /// Control bits, `ctl::*`.
    pub control: u8,
    pub seq: SeqNumber,
    /// Meaningful only with `ctl::ACK`.
    pub ack: SeqNumber,
    pub window: u16,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// TSval, TSecr.
    pub timestamp: Option<(u32, u32)>,
    /// SACK blocks (RFC 2018), as received: checked by the scoreboard.
    pub sack: [Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS],
    pub payload: &'a [u8],
    /// The IP header's ECN field (`wire::ecn`, RFC 3168 §5).
    pub ecn: u8,
}

impl Seg<'_> {
    pub fn syn(&self) -> bool {
        self.control & ctl::SYN != 0
    }
    pub fn fin(&self) -> bool {
        self.control & ctl::FIN != 0
    }
    pub fn rst(&self) -> bool {
        self.control & ctl::RST != 0
    }
    pub fn has_ack(&self) -> bool {
        self.control & ctl::ACK != 0
    }
    pub fn ece(&self) -> bool {
        self.control & ctl::ECE != 0
    }
    pub fn cwr(&self) -> bool {
        self.control & ctl::CWR != 0
    }
    /// SEG.LEN: payload plus one for SYN and one for FIN (RFC 9293 §3.4).
    pub fn len(&self) -> usize {
        self.payload.len() + self.syn() as usize + self.fin() as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

//! TCP segments: header (RFC 9293 §3.1), checksum over the pseudo-header
//! (RFC 9293 §3.1, RFC 8200 §8.1), and the options the engine speaks:
//! MSS (RFC 9293 §3.2), Window Scale and Timestamps (RFC 7323 §2.2, §3.2),
//! SACK-Permitted and SACK (RFC 2018 §2, §3).
//!
//! Option parsing follows RFC 9293 §3.1 ("Options"): EOL ends the list, NOP
//! is one byte, every other kind has a length byte and unknown kinds are
//! skipped by it (RFC 9293 §3.2, MUST-68). A length below 2, one running past
//! the header, or a wrong length for a known kind is `BadOption`. A Window
//! Scale shift above 14 is clamped to 14 (RFC 7323 §2.3).
//!
//! Options are emitted in the order and packing Linux uses, all 4-byte
//! aligned, so no trailing padding is ever needed: MSS; SACK-Permitted
//! and Timestamps together (or NOP NOP TS, or NOP NOP SACK-Permitted); NOP
//! WS; NOP NOP SACK blocks, as many as fit in the 40 bytes of option space.

use super::{checksum, read_u16, read_u32, write_u16, write_u32, Error, Result, SeqNumber};
use crate::flow::Addr;
use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const CHECKSUM_RANGE: Field = 16..18;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Largest header: data offset 15.
pub const MAX_HEADER_LEN: usize = 60;
/// Room for options.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;
/// Largest Window Scale shift (RFC 7323 §2.3).
pub const MAX_WINDOW_SHIFT: u8 = 14;
/// SACK blocks a segment can carry (RFC 2018 §3: at most 4).
pub const MAX_SACK_BLOCKS: usize = 4;
/// IP protocol number of TCP.
pub const PROTOCOL: u8 = 6;

mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WS: u8 = 3;
    pub const SACK_PERM: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TS: u8 = 8;
}

/// The control bits (RFC 9293 §3.1, RFC 3168 §6.1 for ECE and CWR).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Control(pub u8);

impl Control {
    pub const NONE: Control = Control(0);
    pub const FIN: Control = Control(0x01);
    pub const SYN: Control = Control(0x02);
    pub const RST: Control = Control(0x04);
    pub const PSH: Control = Control(0x08);
    pub const ACK: Control = Control(0x10);
    pub const URG: Control = Control(0x20);
    pub const ECE: Control = Control(0x40);
    pub const CWR: Control = Control(0x80);

    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Every bit of `other` is set in `self`.
    pub const fn contains(self, other: Control) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn intersects(self, other: Control) -> bool {
        self.0 & other.0 != 0
    }
    pub const fn union(self, other: Control) -> Control {
        Control(self.0 | other.0)
    }
    pub const fn without(self, other: Control) -> Control {
        Control(self.0 & !other.0)
    }
    pub const fn syn(self) -> bool {
        self.contains(Control::SYN)
    }
    pub const fn fin(self) -> bool {
        self.contains(Control::FIN)
    }
    pub const fn rst(self) -> bool {
        self.contains(Control::RST)
    }
    pub const fn ack(self) -> bool {
        self.contains(Control::ACK)
    }
    pub const fn psh(self) -> bool {
        self.contains(Control::PSH)
    }
}

impl BitOr for Control {
    type Output = Control;
    fn bitor(self, rhs: Control) -> Control {
        self.union(rhs)
    }
}
impl BitOrAssign for Control {
    fn bitor_assign(&mut self, rhs: Control) {
        *self = self.union(rhs)
    }
}
impl BitAnd for Control {
    type Output = Control;
    fn bitand(self, rhs: Control) -> Control {
        Control(self.0 & rhs.0)
    }
}

impl fmt::Debug for Control {
    /// `SYN|ACK`, or `NONE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        if self.0 == 0 {
            return f.write_str("NONE");
        }
        let mut first = true;
        for (i, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}
impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A read/write view of a TCP segment. The buffer is exactly the segment
/// (the IP payload): the checksum and the payload run to its end.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking the fixed header and the options the
    /// data offset announces fit.
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` if the fixed header does not fit, `BadDataOffset` if the
    /// data offset is below 5 or beyond the segment.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(Error::BadDataOffset);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(read_u32(self.buffer.as_ref(), field::SEQ_NUM))
    }
    /// The raw acknowledgment field (meaningful only with ACK set).
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(read_u32(self.buffer.as_ref(), field::ACK_NUM))
    }
    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[field::DATA_OFF] >> 4) as usize) * 4
    }
    pub fn control(&self) -> Control {
        Control(self.buffer.as_ref()[field::FLAGS])
    }
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }
    /// The raw option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// Whether the checksum over the pseudo-header and the whole segment
    /// verifies.
    pub fn verify_checksum(&self, src: &Addr, dst: &Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, PROTOCOL, b.len() as u32);
        checksum::combine(&[ph, checksum::data(b)]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        &b[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, v)
    }
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, v)
    }
    pub fn set_seq_number(&mut self, v: SeqNumber) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, v.0)
    }
    pub fn set_ack_number(&mut self, v: SeqNumber) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, v.0)
    }
    /// Sets the data offset (reserved bits cleared); `len` is in bytes.
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = ((len / 4) as u8) << 4;
    }
    pub fn set_control(&mut self, c: Control) {
        self.buffer.as_mut()[field::FLAGS] = c.0;
    }
    pub fn set_window_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE, v)
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    pub fn set_urgent_at(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, v)
    }
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
    /// Computes and writes the checksum over the pseudo-header and the
    /// whole buffer.
    pub fn fill_checksum(&mut self, src: &Addr, dst: &Addr) {
        self.buffer.as_mut()[field::CHECKSUM_RANGE].fill(0);
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, PROTOCOL, b.len() as u32);
        let c = checksum::finish(checksum::combine(&[ph, checksum::data(b)]));
        self.set_checksum(c);
    }
}

/// The options of one segment, parsed or to emit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum Segment Size (SYN only, by convention).
    pub mss: Option<u16>,
    /// Window Scale shift, clamped to 14 on parse (SYN only).
    pub window_scale: Option<u8>,
    /// SACK-Permitted (SYN only).
    pub sack_permitted: bool,
    /// SACK blocks `(left edge, right edge)`, filled from the front.
    pub sack_blocks: [Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS],
    /// Timestamps `(TSval, TSecr)`.
    pub timestamp: Option<(u32, u32)>,
}

impl TcpOptions {
    pub const NONE: TcpOptions = TcpOptions {
        mss: None,
        window_scale: None,
        sack_permitted: false,
        sack_blocks: [None; MAX_SACK_BLOCKS],
        timestamp: None,
    };

    /// Parses the option bytes of a header.
    ///
    /// The layouts nearly every segment carries are recognised whole first
    /// (none; NOP NOP TS; a Linux SYN's MSS, SACK-Permitted, TS, NOP WS; MSS
    /// alone), with the same result the general walk gives them.
    #[inline]
    pub fn parse(opts: &[u8]) -> Result<TcpOptions> {
        use kind::*;
        match *opts {
            [] => Ok(TcpOptions::NONE),
            [NOP, NOP, TS, 10, ..] if opts.len() == 12 => {
                Ok(TcpOptions { timestamp: Some((read_u32(opts, 4), read_u32(opts, 8))), ..TcpOptions::NONE })
            }
            [MSS, 4, m0, m1, SACK_PERM, 2, TS, 10, _, _, _, _, _, _, _, _, NOP, WS, 3, shift] => Ok(TcpOptions {
                mss: Some(u16::from_be_bytes([m0, m1])),
                window_scale: Some(shift.min(MAX_WINDOW_SHIFT)),
                sack_permitted: true,
                timestamp: Some((read_u32(opts, 8), read_u32(opts, 12))),
                ..TcpOptions::NONE
            }),
            [MSS, 4, m0, m1] => Ok(TcpOptions { mss: Some(u16::from_be_bytes([m0, m1])), ..TcpOptions::NONE }),
            _ => Self::parse_any(opts),
        }
    }

    /// The general option walk (RFC 9293 §3.1).
    pub(crate) fn parse_any(mut opts: &[u8]) -> Result<TcpOptions> {
        let mut o = TcpOptions::NONE;
        let mut sacks = 0;
        // Each iteration consumes at least one byte of at most 40.
        while let [kind, rest @ ..] = opts {
            match *kind {
                kind::EOL => break,
                kind::NOP => {
                    opts = rest;
                    continue;
                }
                _ => {}
            }
            let len = match rest.first() {
                Some(&l) => l as usize,
                None => return Err(Error::BadOption),
            };
            if len < 2 || len > opts.len() {
                return Err(Error::BadOption);
            }
            let data = &opts[2..len];
            match *kind {
                kind::MSS => match *data {
                    [a, b] => o.mss = Some(u16::from_be_bytes([a, b])),
                    _ => return Err(Error::BadOption),
                },
                kind::WS => match *data {
                    [shift] => o.window_scale = Some(shift.min(MAX_WINDOW_SHIFT)),
                    _ => return Err(Error::BadOption),
                },
                kind::SACK_PERM => match *data {
                    [] => o.sack_permitted = true,
                    _ => return Err(Error::BadOption),
                },
                kind::SACK => {
                    if data.is_empty() || !data.len().is_multiple_of(8) || data.len() > 8 * MAX_SACK_BLOCKS {
                        return Err(Error::BadOption);
                    }
                    for block in data.chunks_exact(8) {
                        if sacks < MAX_SACK_BLOCKS {
                            o.sack_blocks[sacks] = Some((SeqNumber(read_u32(block, 0)), SeqNumber(read_u32(block, 4))));
                            sacks += 1;
                        }
                    }
                }
                kind::TS => {
                    if data.len() != 8 {
                        return Err(Error::BadOption);
                    }
                    o.timestamp = Some((read_u32(data, 0), read_u32(data, 4)));
                }
                _ => {}
            }
            opts = &opts[len..];
        }
        Ok(o)
    }

    /// Number of SACK blocks set.
    pub fn sack_count(&self) -> usize {
        self.sack_blocks.iter().filter(|b| b.is_some()).count()
    }

    /// Length of everything but the SACK blocks.
    fn fixed_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        if self.timestamp.is_some() || self.sack_permitted {
            // SACK-Permitted + TS, NOP NOP TS, or NOP NOP SACK-Permitted.
            len += if self.timestamp.is_some() { 12 } else { 4 };
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        len
    }

    /// How many SACK blocks [`TcpOptions::emit`] writes: all that are set,
    /// as far as they fit in the option space (3 next to timestamps).
    pub fn emitted_sack_blocks(&self) -> usize {
        let room = MAX_OPTIONS_LEN - self.fixed_len();
        if room < 4 + 8 {
            return 0;
        }
        self.sack_count().min((room - 4) / 8)
    }

    /// Bytes the options take in the header (a multiple of 4, at most 40).
    #[inline]
    pub fn buffer_len(&self) -> usize {
        let fixed = self.fixed_len();
        if self.sack_blocks[0].is_none() && self.sack_count() == 0 {
            // No SACK blocks (every segment but those after a loss).
            return fixed;
        }
        let n = self.emitted_sack_blocks();
        fixed + if n > 0 { 4 + 8 * n } else { 0 }
    }

    /// Writes the options into `buf` (at least [`TcpOptions::buffer_len`]
    /// bytes) and returns how many bytes were written.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        use kind::*;
        // The layouts the engine sends all the time, written whole: a
        // SYN-ACK answering a Linux SYN, and TS alone (every segment of a
        // timestamped connection).
        let no_sack = self.sack_blocks.iter().all(Option::is_none);
        match (self.mss, self.sack_permitted, self.timestamp, self.window_scale) {
            (Some(mss), true, Some((val, ecr)), Some(ws)) if no_sack && buf.len() >= 20 => {
                let m = mss.to_be_bytes();
                let (v, e) = (val.to_be_bytes(), ecr.to_be_bytes());
                buf[..20].copy_from_slice(&[
                    MSS, 4, m[0], m[1], SACK_PERM, 2, TS, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3], NOP, WS,
                    3, ws,
                ]);
                return 20;
            }
            (None, false, Some((val, ecr)), None) if no_sack && buf.len() >= 12 => {
                let (v, e) = (val.to_be_bytes(), ecr.to_be_bytes());
                buf[..12].copy_from_slice(&[NOP, NOP, TS, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3]]);
                return 12;
            }
            (None, false, None, None) if no_sack => return 0,
            _ => {}
        }
        self.emit_any(buf)
    }

    /// The general writer behind [`TcpOptions::emit`].
    pub(crate) fn emit_any(&self, buf: &mut [u8]) -> usize {
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            put(&[kind::MSS, 4, m[0], m[1]]);
        }
        match (self.timestamp, self.sack_permitted) {
            (Some((tsval, tsecr)), sack_perm) => {
                if sack_perm {
                    put(&[kind::SACK_PERM, 2]);
                } else {
                    put(&[kind::NOP, kind::NOP]);
                }
                put(&[kind::TS, 10]);
                put(&tsval.to_be_bytes());
                put(&tsecr.to_be_bytes());
            }
            (None, true) => put(&[kind::NOP, kind::NOP, kind::SACK_PERM, 2]),
            (None, false) => {}
        }
        if let Some(shift) = self.window_scale {
            put(&[kind::NOP, kind::WS, 3, shift]);
        }
        let n = self.emitted_sack_blocks();
        if n > 0 {
            put(&[kind::NOP, kind::NOP, kind::SACK, (2 + 8 * n) as u8]);
            for (l, r) in self.sack_blocks.iter().flatten().take(n) {
                put(&l.0.to_be_bytes());
                put(&r.0.to_be_bytes());
            }
        }
        at
    }
}

/// A parsed TCP segment, or one to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// The control bits as on the wire. On emit the ACK bit is taken from
    /// `ack_number` instead.
    pub control: Control,
    pub seq_number: SeqNumber,
    /// Some exactly when the ACK bit is set.
    pub ack_number: Option<SeqNumber>,
    /// The window field as sent (unscaled).
    pub window_len: u16,
    /// Urgent pointer (meaningful only with URG).
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parses a segment whose IP source and destination are `src`, `dst`.
    /// With `verify_checksum` false the checksum is not looked at (the NIC
    /// checked it).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&'a T>,
        src: &Addr,
        dst: &Addr,
        verify_checksum: bool,
    ) -> Result<TcpRepr<'a>> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(Error::BadTcpChecksum);
        }
        let control = packet.control();
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            control,
            seq_number: packet.seq_number(),
            ack_number: if control.ack() { Some(packet.ack_number()) } else { None },
            window_len: packet.window_len(),
            urgent: packet.urgent_at(),
            options: TcpOptions::parse(packet.options())?,
            payload: packet.payload(),
        })
    }

    /// Header length with options, as emitted.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.buffer_len()
    }

    /// Bytes of the whole emitted segment.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space the segment occupies: payload, plus one each for SYN
    /// and FIN (RFC 9293 §3.4).
    pub fn segment_len(&self) -> usize {
        self.payload.len() + self.control.syn() as usize + self.control.fin() as usize
    }

    /// The same segment without payload, detached from the buffer it was
    /// parsed from (so that buffer can be rewritten in place).
    pub fn header_only(&self) -> TcpRepr<'static> {
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            control: self.control,
            seq_number: self.seq_number,
            ack_number: self.ack_number,
            window_len: self.window_len,
            urgent: self.urgent,
            options: self.options,
            payload: &[],
        }
    }

    /// Writes the segment (header, options, payload) and its checksum for
    /// IP source `src` and destination `dst`. The packet's buffer must hold
    /// at least [`TcpRepr::buffer_len`] bytes; only that many are written
    /// and covered by the checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>, src: &Addr, dst: &Addr) {
        let hl = self.header_len();
        let len = hl + self.payload.len();
        let b = &mut packet.buffer.as_mut()[..len];
        self.emit_unchecksummed(b, hl);
        let ph = checksum::pseudo_header(src, dst, PROTOCOL, len as u32);
        let c = checksum::finish(checksum::combine(&[ph, checksum::data(b)]));
        write_u16(b, field::CHECKSUM, c);
    }

    /// Writes header, options and payload into `b` (exactly
    /// [`TcpRepr::buffer_len`] bytes; `hl` is [`TcpRepr::header_len`]) with
    /// the checksum field zero, for a caller that sums the checksum itself.
    #[inline]
    pub fn emit_unchecksummed(&self, b: &mut [u8], hl: usize) {
        self.emit_header(&mut b[..hl]);
        if !self.payload.is_empty() {
            b[hl..].copy_from_slice(self.payload);
        }
    }

    /// Writes the header and options only, into `b` of exactly
    /// [`TcpRepr::header_len`] bytes, checksum field zero.
    #[inline]
    pub fn emit_header(&self, b: &mut [u8]) {
        let hl = b.len();
        let ack = self.ack_number.unwrap_or(SeqNumber(0));
        let control =
            if self.ack_number.is_some() { self.control | Control::ACK } else { self.control.without(Control::ACK) };
        // The fixed header as one array: no bounds check per field.
        let (p, s, a) = (self.src_port.to_be_bytes(), self.dst_port.to_be_bytes(), self.seq_number.0.to_be_bytes());
        let (k, w, u) = (ack.0.to_be_bytes(), self.window_len.to_be_bytes(), self.urgent.to_be_bytes());
        let header: [u8; HEADER_LEN] = [
            p[0],
            p[1],
            s[0],
            s[1],
            a[0],
            a[1],
            a[2],
            a[3],
            k[0],
            k[1],
            k[2],
            k[3],
            ((hl / 4) as u8) << 4,
            control.0,
            w[0],
            w[1],
            0,
            0,
            u[0],
            u[1],
        ];
        b[..HEADER_LEN].copy_from_slice(&header);
        self.options.emit(&mut b[HEADER_LEN..hl]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Addr = Addr::v4([198, 18, 0, 2]);
    const DST: Addr = Addr::v4([198, 18, 0, 1]);

    /// The TCP part of a Linux SYN: MSS 1460, SACK-Permitted, TS, NOP, WS 7.
    #[rustfmt::skip]
    const LINUX_SYN: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00,
        0xa0, 0x02, 0xfa, 0xf0, 0x79, 0x5b, 0x00, 0x00,
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x0f, 0x42, 0x40,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    fn linux_syn_repr() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            control: Control::SYN,
            seq_number: SeqNumber(0x12345678),
            ack_number: None,
            window_len: 64240,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamp: Some((1_000_000, 0)),
                ..TcpOptions::NONE
            },
            payload: &[],
        }
    }

    fn parse(b: &[u8]) -> Result<TcpRepr<'_>> {
        TcpRepr::parse(&TcpPacket::new_checked(b)?, &SRC, &DST, true)
    }

    /// Emits into a 0xa5-filled buffer, checks the length and parses back.
    #[track_caller]
    fn round_trip(repr: &TcpRepr) {
        let mut buf = [0xa5u8; 128];
        let len = repr.buffer_len();
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &SRC, &DST);
        assert_eq!(buf[len], 0xa5, "wrote past buffer_len");
        assert_eq!(parse(&buf[..len]).unwrap(), *repr);
    }

    #[test]
    fn linux_syn_parses() {
        let r = parse(&LINUX_SYN).unwrap();
        assert_eq!(r, linux_syn_repr());
        assert_eq!(r.segment_len(), 1);
        assert_eq!(format!("{:?}", r.control), "SYN");
    }

    #[test]
    fn linux_syn_emits_byte_for_byte() {
        let mut buf = [0xa5u8; 40];
        let r = linux_syn_repr();
        assert_eq!(r.buffer_len(), 40);
        r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &SRC, &DST);
        assert_eq!(buf, LINUX_SYN);
    }

    #[test]
    fn round_trips() {
        let syn = linux_syn_repr();
        round_trip(&syn);
        let syn_ack = TcpRepr { control: Control::SYN | Control::ACK, ack_number: Some(SeqNumber(7)), ..syn };
        round_trip(&syn_ack);
        let no_ts = TcpRepr { options: TcpOptions { timestamp: None, ..syn.options }, ..syn };
        assert_eq!(no_ts.header_len(), 32); // MSS, NOP NOP SACK-Perm, NOP WS
        round_trip(&no_ts);
        let only_ts = TcpRepr { options: TcpOptions { timestamp: Some((1, 2)), ..TcpOptions::NONE }, ..syn };
        assert_eq!(only_ts.header_len(), 32); // NOP NOP TS
        round_trip(&only_ts);
        let data = TcpRepr {
            control: Control::PSH | Control::ACK | Control::FIN,
            ack_number: Some(SeqNumber(u32::MAX)),
            window_len: 501,
            options: TcpOptions::NONE,
            payload: b"hello, world",
            ..syn
        };
        assert_eq!(data.segment_len(), 13);
        round_trip(&data);
        let odd_payload = TcpRepr { payload: b"odd", ..data };
        round_trip(&odd_payload);
    }

    #[test]
    fn sack_blocks_fit_the_option_space() {
        let blocks = [
            Some((SeqNumber(100), SeqNumber(200))),
            Some((SeqNumber(300), SeqNumber(400))),
            Some((SeqNumber(500), SeqNumber(600))),
            Some((SeqNumber(700), SeqNumber(800))),
        ];
        let ack = TcpRepr {
            control: Control::ACK,
            ack_number: Some(SeqNumber(50)),
            options: TcpOptions { sack_blocks: blocks, ..TcpOptions::NONE },
            ..linux_syn_repr()
        };
        assert_eq!(ack.header_len(), 20 + 4 + 32);
        round_trip(&ack);

        // With timestamps only three fit; the fourth is dropped, as Linux does.
        let with_ts = TcpRepr { options: TcpOptions { timestamp: Some((9, 8)), ..ack.options }, ..ack };
        assert_eq!(with_ts.header_len(), 20 + 12 + 4 + 24);
        let mut buf = [0xa5u8; 60];
        with_ts.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &SRC, &DST);
        assert_eq!(&buf[20..24], &[1, 1, 8, 10]);
        assert_eq!(&buf[32..36], &[1, 1, 5, 26]);
        let back = parse(&buf).unwrap();
        assert_eq!(back.options.sack_blocks[..3], blocks[..3]);
        assert_eq!(back.options.sack_blocks[3], None);
    }

    #[test]
    fn ack_bit_follows_ack_number_on_emit() {
        let r = TcpRepr { control: Control::SYN | Control::ACK, ..linux_syn_repr() };
        let mut buf = [0xa5u8; 40];
        r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &SRC, &DST);
        assert_eq!(TcpPacket::new_checked(&buf[..]).unwrap().control(), Control::SYN);
    }

    #[test]
    fn window_scale_is_clamped() {
        let mut b = LINUX_SYN;
        b[39] = 15;
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.fill_checksum(&SRC, &DST);
        assert_eq!(parse(&b).unwrap().options.window_scale, Some(14));
    }

    #[test]
    fn options_parse_edge_cases() {
        // Unknown option (kind 30, len 4) skipped; EOL ends the list.
        let o = TcpOptions::parse(&[30, 4, 0, 0, 2, 4, 0x05, 0xb4, 0, 3, 0]).unwrap();
        assert_eq!(o, TcpOptions { mss: Some(1460), ..TcpOptions::NONE });
        assert_eq!(TcpOptions::parse(&[1, 1, 1, 1]).unwrap(), TcpOptions::NONE);
        for bad in [
            &[2, 0, 0, 0][..],                      // length 0
            &[3, 1, 1, 1],                          // length 1
            &[1, 1, 2, 4, 5],                       // MSS running past the header
            &[1, 1, 1, 30],                         // no length byte
            &[2, 3, 5, 1],                          // MSS with length 3
            &[3, 4, 7, 1],                          // WS with length 4
            &[4, 3, 0, 1],                          // SACK-Permitted with length 3
            &[8, 8, 0, 0, 0, 0, 0, 0],              // TS with length 8
            &[5, 2, 1, 1],                          // SACK with no blocks
            &[5, 6, 0, 0, 0, 0, 1, 1],              // SACK with half a block
            &[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], // SACK 8n+1
        ] {
            assert_eq!(TcpOptions::parse(bad).unwrap_err(), Error::BadOption, "{bad:?}");
        }
    }

    #[test]
    fn malformed_segments() {
        assert_eq!(TcpPacket::new_checked(&LINUX_SYN[..19]).unwrap_err(), Error::Truncated);
        let mut b = LINUX_SYN;
        b[12] = 0x40; // data offset 4
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap_err(), Error::BadDataOffset);
        b[12] = 0xb0; // data offset 11: 44 bytes in a 40-byte segment
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap_err(), Error::BadDataOffset);

        let mut b = LINUX_SYN;
        b[4] ^= 1;
        assert_eq!(parse(&b).unwrap_err(), Error::BadTcpChecksum);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(TcpRepr::parse(&p, &SRC, &DST, false).is_ok());
        // The pseudo-header is covered too.
        let p = TcpPacket::new_checked(&LINUX_SYN[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, &SRC, &Addr::v4([198, 18, 0, 3]), true).unwrap_err(), Error::BadTcpChecksum);

        let mut b = LINUX_SYN;
        b[21] = 0; // MSS option length 0
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&SRC, &DST);
        assert_eq!(parse(&b).unwrap_err(), Error::BadOption);
        let mut b = LINUX_SYN;
        b[38] = 9; // WS length running past the header
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&SRC, &DST);
        assert_eq!(parse(&b).unwrap_err(), Error::BadOption);
    }

    #[test]
    fn ipv6_checksum_round_trip() {
        let s = Addr("2001:db8::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        let d = Addr("2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        let r = TcpRepr { payload: b"v6", ..linux_syn_repr() };
        let mut buf = [0xa5u8; 42];
        r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &s, &d);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&SRC, &DST));
        assert_eq!(TcpRepr::parse(&p, &s, &d, true).unwrap(), r);
    }

    #[test]
    fn control_debug() {
        assert_eq!(format!("{:?}", Control::SYN | Control::ACK), "SYN|ACK");
        assert_eq!(format!("{:?}", Control::NONE), "NONE");
        assert!((Control::FIN | Control::ACK).contains(Control::FIN));
        assert!(!Control::FIN.contains(Control::FIN | Control::ACK));
    }
}

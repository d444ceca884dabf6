//! Checks of the descriptors the kernel hands back on the RX and completion
//! rings, before any of them becomes a slice of the UMEM.
//!
//! The rings live in memory shared with the kernel (and, in zero-copy mode,
//! written by a driver); an address or a length that does not fit the UMEM
//! would make xsk-rs build a slice outside the mapping (undefined behaviour)
//! or index past the frame (a panic, which stops the shard and then the
//! process). The kernel's own rule for an aligned UMEM
//! (Documentation/networking/af_xdp.rst, "UMEM"; `xp_aligned_validate_desc`)
//! is that a descriptor stays inside one chunk: `addr + len` may not cross
//! the end of the frame that `addr` falls in. Anything else is dropped and
//! counted; the frame it named (if any) is lost to the link, which is the
//! price of not trusting it.
//!
//! An aligned UMEM does not fix where a packet starts inside its frame
//! (`bpf_xdp_adjust_head` moves it), so an address that is not at a frame's
//! usual data offset is fine as long as the bytes it names stay in the frame.

use std::fmt;

/// Why a descriptor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadDesc {
    /// The address is at or past the end of the UMEM.
    OutsideUmem,
    /// The length is more than a whole frame.
    TooLong,
    /// The bytes run past the end of the frame the address falls in.
    CrossesFrame,
}

impl fmt::Display for BadDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadDesc::OutsideUmem => "address outside the UMEM",
            BadDesc::TooLong => "length longer than a frame",
            BadDesc::CrossesFrame => "bytes crossing the end of their frame",
        })
    }
}

/// The UMEM's shape: `frames` frames of `frame_size` bytes (a power of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UmemShape {
    pub frame_size: u64,
    pub frames: u64,
}

impl UmemShape {
    pub fn new(frame_size: u32, frames: u32) -> UmemShape {
        debug_assert!(frame_size.is_power_of_two(), "an aligned UMEM has power-of-two frames");
        UmemShape { frame_size: frame_size as u64, frames: frames as u64 }
    }

    /// Bytes in the UMEM.
    pub fn bytes(&self) -> u64 {
        self.frame_size * self.frames
    }

    /// Checks a descriptor of `len` bytes at UMEM offset `addr` (a
    /// completion carries no length: pass 0).
    #[inline]
    pub fn check(&self, addr: u64, len: u64) -> Result<(), BadDesc> {
        if addr >= self.bytes() {
            return Err(BadDesc::OutsideUmem);
        }
        if len > self.frame_size {
            return Err(BadDesc::TooLong);
        }
        // `addr` is inside the UMEM and `len` at most a frame: no overflow.
        let offset = addr & (self.frame_size - 1);
        if offset + len > self.frame_size {
            return Err(BadDesc::CrossesFrame);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u32 = 2048;
    /// The offset at which the kernel puts a received packet (XDP_PACKET_HEADROOM).
    const HEADROOM: u64 = 256;

    fn umem() -> UmemShape {
        UmemShape::new(FRAME, 8)
    }

    #[test]
    fn every_frame_the_kernel_can_fill_is_accepted() {
        let u = umem();
        let f = FRAME as u64;
        for i in 0..u.frames {
            let base = i * f;
            // A packet where the kernel puts it, the longest that fits there.
            assert_eq!(u.check(base + HEADROOM, f - HEADROOM), Ok(()));
            // Moved to the start of the frame by bpf_xdp_adjust_head: a whole frame.
            assert_eq!(u.check(base, f), Ok(()));
            // A completion (no length) anywhere inside the frame.
            assert_eq!(u.check(base + f - 1, 0), Ok(()));
        }
    }

    #[test]
    fn addresses_outside_the_umem_are_refused() {
        let u = umem();
        assert_eq!(u.check(u.bytes(), 0), Err(BadDesc::OutsideUmem));
        assert_eq!(u.check(u.bytes() + HEADROOM, 64), Err(BadDesc::OutsideUmem));
        assert_eq!(u.check(u64::MAX, 64), Err(BadDesc::OutsideUmem), "no overflow on a wild address");
        // An unaligned-mode address (offset in the top 16 bits) is not ours.
        assert_eq!(u.check((HEADROOM << 48) | 4096, 64), Err(BadDesc::OutsideUmem));
    }

    #[test]
    fn lengths_beyond_a_frame_are_refused() {
        let u = umem();
        assert_eq!(u.check(0, FRAME as u64 + 1), Err(BadDesc::TooLong));
        assert_eq!(u.check(HEADROOM, u64::MAX), Err(BadDesc::TooLong), "no overflow on a wild length");
    }

    #[test]
    fn bytes_crossing_the_frame_end_are_refused() {
        let u = umem();
        let f = FRAME as u64;
        // Right at the usual data offset, one byte too long.
        assert_eq!(u.check(3 * f + HEADROOM, f - HEADROOM + 1), Err(BadDesc::CrossesFrame));
        // An address not at any frame's data offset, whose bytes spill into the next frame.
        assert_eq!(u.check(5 * f + 1000, 1100), Err(BadDesc::CrossesFrame));
        assert_eq!(u.check(5 * f + 1000, 1048), Ok(()), "the same address, ending exactly at the frame end");
        // The last frame: crossing its end would leave the UMEM.
        assert_eq!(u.check(u.bytes() - 10, 11), Err(BadDesc::CrossesFrame));
    }
}

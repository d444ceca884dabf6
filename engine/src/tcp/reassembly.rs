//! Out-of-order reassembly (RFC 9293 §3.10.7.4, "process the segment
//! text"; RFC 5681 §4.2 on ACKing at once while a hole exists).
//!
//! A segment that arrives beyond RCV.NXT but inside the window we advertised
//! is written straight into the connection's receive chunk at its place
//! (the byte with sequence number `s` always sits `s - seq(first held byte)`
//! after the ring's start: the advertised window never reaches past the
//! chunk), and its sequence range is remembered here. When the hole before
//! it fills, the range joins RCV.NXT and its bytes become readable without
//! a copy.
//!
//! The ranges of a chunk live in a table indexed by chunk, preallocated with
//! the pool: a connection needs a receive chunk to hold out-of-order bytes,
//! so it has ranges only while it holds one, and there is no allocation and
//! no separate limit to run out of. A chunk keeps at most [`RANGES`] disjoint
//! ranges; a segment that would make one more is dropped (counted) and comes
//! again. Ranges are kept sorted by sequence; they are also the blocks a
//! SACK option would report (RFC 2018).

use crate::wire::{SeqNumber, MAX_SACK_BLOCKS};

/// Disjoint out-of-order ranges one receive chunk can hold. More than a
/// SACK option names (4; 3 beside timestamps): a burst of losses (a full
/// ring in front of us drops every few frames) leaves more holes than that,
/// and a segment refused for want of a range costs the sender a
/// retransmission (Linux keeps any number in its out-of-order tree). The
/// SACK option reports the most recent range and the highest others.
/// 8 ranges: 66 bytes per receive chunk.
pub const RANGES: usize = 8;

/// The out-of-order ranges `[start, end)` of one chunk, sorted, disjoint and
/// not adjacent (touching ranges are merged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranges {
    start: [SeqNumber; RANGES],
    end: [SeqNumber; RANGES],
    n: u8,
    /// The range that took the latest segment: the first SACK block.
    recent: u8,
}

impl Ranges {
    pub const fn new() -> Ranges {
        Ranges { start: [SeqNumber(0); RANGES], end: [SeqNumber(0); RANGES], n: 0, recent: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// The ranges, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (SeqNumber, SeqNumber)> + '_ {
        (0..self.n as usize).map(|i| (self.start[i], self.end[i]))
    }

    /// Adds `[start, end)`, merging it with the ranges it overlaps or
    /// touches. False (and nothing changed) when that would make more than
    /// [`RANGES`] ranges.
    pub fn insert(&mut self, start: SeqNumber, end: SeqNumber) -> bool {
        if start >= end {
            return true;
        }
        let n = self.n as usize;
        // Ranges wholly before the new one, then the ones it overlaps or touches.
        let first = (0..n).find(|&i| self.end[i] >= start).unwrap_or(n);
        let mut last = first;
        let (mut s, mut e) = (start, end);
        while last < n && self.start[last] <= end {
            s = s.min(self.start[last]);
            e = e.max(self.end[last]);
            last += 1;
        }
        let merged = last - first;
        if merged == 0 && n == RANGES {
            return false;
        }
        // Replace ranges first..last by the one merged range.
        let new_n = n + 1 - merged;
        if merged == 0 {
            for i in (first..n).rev() {
                self.start[i + 1] = self.start[i];
                self.end[i + 1] = self.end[i];
            }
        } else {
            for i in last..n {
                self.start[i - merged + 1] = self.start[i];
                self.end[i - merged + 1] = self.end[i];
            }
        }
        self.start[first] = s;
        self.end[first] = e;
        self.n = new_n as u8;
        self.recent = first as u8;
        true
    }

    /// The SACK blocks to report (RFC 2018 §4): the range holding the most
    /// recent segment first, then the others, highest first, as many as
    /// the option holds. `None` past the last.
    pub fn sack_blocks(&self) -> [Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS] {
        let mut out = [None; MAX_SACK_BLOCKS];
        let n = self.n as usize;
        if n == 0 {
            return out;
        }
        let recent = (self.recent as usize).min(n - 1);
        out[0] = Some((self.start[recent], self.end[recent]));
        for (k, i) in (1..MAX_SACK_BLOCKS).zip((0..n).rev().filter(|&i| i != recent)) {
            out[k] = Some((self.start[i], self.end[i]));
        }
        out
    }

    /// RCV.NXT reached `rcv_nxt`: removes the ranges it reaches (and any
    /// now below it) and returns the new RCV.NXT, the end of the contiguous
    /// bytes.
    pub fn advance(&mut self, rcv_nxt: SeqNumber) -> SeqNumber {
        let mut next = rcv_nxt;
        let n = self.n as usize;
        let mut gone = 0;
        while gone < n && self.start[gone] <= next {
            next = next.max(self.end[gone]);
            gone += 1;
        }
        for i in gone..n {
            self.start[i - gone] = self.start[i];
            self.end[i - gone] = self.end[i];
        }
        self.n = (n - gone) as u8;
        self.recent = self.recent.saturating_sub(gone as u8);
        next
    }

    pub fn clear(&mut self) {
        self.n = 0;
    }
}

impl Default for Ranges {
    fn default() -> Self {
        Ranges::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &Ranges) -> Vec<(u32, u32)> {
        a.iter().map(|(s, e)| (s.0, e.0)).collect()
    }

    fn ins(a: &mut Ranges, s: u32, e: u32) -> bool {
        a.insert(SeqNumber(s), SeqNumber(e))
    }

    #[test]
    fn ranges_stay_sorted_and_merge_what_they_touch() {
        let mut a = Ranges::default();
        assert!(ins(&mut a, 300, 400));
        assert!(ins(&mut a, 100, 200));
        assert!(ins(&mut a, 500, 600));
        assert_eq!(r(&a), vec![(100, 200), (300, 400), (500, 600)]);
        assert!(ins(&mut a, 200, 300), "fills the gap between two: one range");
        assert_eq!(r(&a), vec![(100, 400), (500, 600)]);
        assert!(ins(&mut a, 350, 550), "overlaps both");
        assert_eq!(r(&a), vec![(100, 600)]);
        assert!(ins(&mut a, 150, 160), "inside: nothing new");
        assert_eq!(r(&a), vec![(100, 600)]);
    }

    #[test]
    fn a_range_past_the_last_is_refused_and_changes_nothing() {
        let mut a = Ranges::default();
        for k in 0..RANGES as u32 {
            assert!(ins(&mut a, 100 * (k + 1), 100 * (k + 1) + 10));
        }
        let before = a;
        assert!(!ins(&mut a, 10_000, 10_010));
        assert!(!ins(&mut a, 50, 60));
        assert_eq!(a, before);
        assert!(ins(&mut a, 110, 200), "joining existing ranges still works");
        assert_eq!(r(&a)[..2], [(100, 210), (300, 310)]);
        assert_eq!(a.len(), RANGES - 1);
    }

    #[test]
    fn sack_reports_the_recent_range_and_the_highest_others_of_many() {
        let mut a = Ranges::default();
        for k in [3u32, 1, 7, 5, 2, 6] {
            ins(&mut a, 100 * k, 100 * k + 10);
        }
        let b = |k: u32| Some((SeqNumber(100 * k), SeqNumber(100 * k + 10)));
        assert_eq!(a.len(), 6);
        assert_eq!(a.sack_blocks(), [b(6), b(7), b(5), b(3)]);
    }

    #[test]
    fn advance_takes_what_rcv_nxt_reaches() {
        let mut a = Ranges::default();
        ins(&mut a, 200, 300);
        ins(&mut a, 400, 500);
        assert_eq!(a.advance(SeqNumber(150)), SeqNumber(150), "hole still open");
        assert_eq!(a.advance(SeqNumber(200)), SeqNumber(300));
        assert_eq!(r(&a), vec![(400, 500)]);
        assert_eq!(a.advance(SeqNumber(450)), SeqNumber(500), "overlapping in-order data");
        assert!(a.is_empty());
    }

    #[test]
    fn sack_blocks_put_the_latest_segment_first() {
        let mut a = Ranges::default();
        assert_eq!(a.sack_blocks(), [None; MAX_SACK_BLOCKS]);
        ins(&mut a, 500, 600);
        ins(&mut a, 100, 200);
        ins(&mut a, 300, 400);
        let b = |s: u32, e: u32| Some((SeqNumber(s), SeqNumber(e)));
        assert_eq!(a.sack_blocks(), [b(300, 400), b(500, 600), b(100, 200), None]);
        ins(&mut a, 600, 650);
        assert_eq!(a.sack_blocks(), [b(500, 650), b(300, 400), b(100, 200), None]);
        a.advance(SeqNumber(100));
        assert_eq!(a.sack_blocks(), [b(500, 650), b(300, 400), None, None], "reported blocks follow RCV.NXT");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut a = Ranges::default();
        let top = u32::MAX - 50;
        assert!(ins(&mut a, top, top.wrapping_add(100)));
        assert!(ins(&mut a, 200, 300));
        assert_eq!(r(&a), vec![(top, top.wrapping_add(100)), (200, 300)]);
        assert_eq!(a.advance(SeqNumber(top - 10)), SeqNumber(top - 10));
        assert_eq!(a.advance(SeqNumber(top)), SeqNumber(top.wrapping_add(100)));
    }
}

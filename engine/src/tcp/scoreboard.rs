//! The sender's SACK scoreboard (RFC 2018 §3-§5, RFC 6675 §3-§4): which
//! bytes above SND.UNA the peer reported holding, and from it RFC 6675's
//! IsLost, SetPipe and NextSeg, so recovery resends the holes and nothing
//! the peer has.
//!
//! The scoreboard is a fixed, sorted array of disjoint ranges in the
//! connection's [`SendState`](super::sender::SendState): no allocation. When
//! a block would make one range more than it holds, the highest range is
//! forgotten (or the new block, if it is the highest): forgetting SACK
//! information only makes the sender resend bytes the peer already has, it
//! never makes it skip bytes the peer lacks (RFC 6675 §3: "the scoreboard
//! ... MAY be ... a subset"). Each time is counted (`scoreboard_full`).
//!
//! Incoming blocks are checked as Linux's `tcp_is_sackblock_valid` does:
//! a block must lie within SND.UNA..SND.MAX; a first block below the
//! cumulative ACK, or inside the second block, is a D-SACK (RFC 2883 §4)
//! and reports a duplicate, not data held above a hole.

use crate::wire::{SeqNumber, MAX_SACK_BLOCKS};

/// Disjoint SACKed ranges a connection remembers. Each SACK option names
/// at most 4, and the peer's receive ranges (at most 4 per chunk here, a
/// few more on Linux) move slowly, so 8 rarely fills.
pub const SB_RANGES: usize = 8;

/// RFC 6675 §2 DupThresh.
pub const DUP_THRESH: u32 = 3;

/// What the SACK blocks of one ACK said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackUpdate {
    /// Bytes newly SACKed by this ACK (RFC 6937's DeliveredData part).
    pub newly_sacked: u32,
    /// A D-SACK (RFC 2883): the first block reports a duplicate.
    pub dsack: Option<(SeqNumber, SeqNumber)>,
    /// Blocks ignored as invalid (outside SND.UNA..SND.MAX).
    pub invalid: u32,
    /// Blocks that did not fit the scoreboard (the highest was forgotten).
    pub full: u32,
    /// The valid blocks that added bytes, for RACK's delivery update.
    pub new_blocks: [Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS],
}

/// The SACKed ranges `[start, end)` above SND.UNA, sorted, disjoint, not
/// touching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scoreboard {
    start: [SeqNumber; SB_RANGES],
    end: [SeqNumber; SB_RANGES],
    n: u8,
}

impl Default for Scoreboard {
    fn default() -> Self {
        Scoreboard { start: [SeqNumber(0); SB_RANGES], end: [SeqNumber(0); SB_RANGES], n: 0 }
    }
}

impl Scoreboard {
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn len(&self) -> usize {
        self.n as usize
    }
    pub fn clear(&mut self) {
        self.n = 0;
    }
    /// The ranges, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (SeqNumber, SeqNumber)> + '_ {
        (0..self.n as usize).map(|i| (self.start[i], self.end[i]))
    }

    /// Takes the SACK blocks of an ACK whose cumulative ACK is `ack`
    /// (already SND.UNA), with `snd_max` the highest sequence sent.
    pub fn update(
        &mut self,
        blocks: &[Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS],
        ack: SeqNumber,
        snd_max: SeqNumber,
    ) -> SackUpdate {
        let mut u = SackUpdate::default();
        let mut k = 0;
        for (i, b) in blocks.iter().enumerate() {
            let Some((s, e)) = *b else { break };
            // RFC 2883 §4: a first block at or below the cumulative ACK, or
            // inside the second block, reports a duplicate segment.
            if i == 0 && s < e {
                let inside_second = matches!(blocks.get(1), Some(Some((s2, e2))) if s >= *s2 && e <= *e2);
                if s < ack || inside_second {
                    u.dsack = Some((s, e));
                    continue;
                }
            }
            // Valid: non-empty and within SND.UNA..SND.MAX (RFC 6675 §5,
            // Linux tcp_is_sackblock_valid).
            if !(s < e && ack <= s && e <= snd_max) {
                u.invalid += 1;
                continue;
            }
            match self.insert(s, e) {
                Inserted::Added(n) => {
                    u.newly_sacked += n;
                    if k < MAX_SACK_BLOCKS {
                        u.new_blocks[k] = Some((s, e));
                        k += 1;
                    }
                }
                Inserted::Known => {}
                Inserted::Full => u.full += 1,
            }
        }
        u
    }

    /// Adds `[s, e)`, merging what it touches.
    pub fn insert(&mut self, s: SeqNumber, e: SeqNumber) -> Inserted {
        if s >= e {
            return Inserted::Known;
        }
        let n = self.n as usize;
        let first = (0..n).find(|&i| self.end[i] >= s).unwrap_or(n);
        let mut last = first;
        let (mut ns, mut ne) = (s, e);
        let mut covered = 0usize;
        while last < n && self.start[last] <= e {
            ns = ns.min(self.start[last]);
            ne = ne.max(self.end[last]);
            covered += self.end[last] - self.start[last];
            last += 1;
        }
        let merged = last - first;
        if merged == 0 && n == SB_RANGES {
            // Full: keep the lowest ranges, they bound the holes recovery
            // works on first.
            if first == n {
                return Inserted::Full;
            }
            self.n -= 1;
            self.insert(s, e);
            return Inserted::Full;
        }
        let added = (ne - ns) - covered;
        if added == 0 {
            return Inserted::Known;
        }
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
        self.start[first] = ns;
        self.end[first] = ne;
        self.n = (n + 1 - merged) as u8;
        Inserted::Added(added as u32)
    }

    /// SND.UNA moved to `una`: drops what it covers.
    pub fn advance(&mut self, una: SeqNumber) {
        let n = self.n as usize;
        let mut gone = 0;
        while gone < n && self.end[gone] <= una {
            gone += 1;
        }
        for i in gone..n {
            self.start[i - gone] = self.start[i].max(una);
            self.end[i - gone] = self.end[i];
        }
        self.n = (n - gone) as u8;
        if self.n > 0 && self.start[0] < una {
            self.start[0] = una;
        }
    }

    /// Bytes SACKed in `[a, b)`.
    pub fn sacked_between(&self, a: SeqNumber, b: SeqNumber) -> usize {
        self.iter()
            .map(|(s, e)| {
                let (s, e) = (s.max(a), e.min(b));
                if s < e {
                    e - s
                } else {
                    0
                }
            })
            .sum()
    }

    /// Total bytes SACKed.
    pub fn sacked(&self) -> usize {
        self.iter().map(|(s, e)| e - s).sum()
    }

    /// The end of the highest SACKed range (RFC 6675's "highest octet
    /// covered by any received SACK", plus one).
    pub fn high(&self) -> Option<SeqNumber> {
        (self.n > 0).then(|| self.end[self.n as usize - 1])
    }

    /// The SACKed range holding `seq`, if any.
    pub fn range_at(&self, seq: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
        self.iter().find(|&(s, e)| s <= seq && seq < e)
    }

    /// The first SACKed range starting at or after `seq`.
    pub fn next_range(&self, seq: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
        self.iter().find(|&(s, _)| s >= seq)
    }

    /// RFC 6675 §4 IsLost, as a boundary: every un-SACKed byte below it
    /// is lost, because more than (DupThresh - 1) * SMSS bytes, or
    /// DupThresh discontiguous ranges, are SACKed above it. `una` when none is.
    pub fn lost_boundary(&self, una: SeqNumber, mss: u32) -> SeqNumber {
        let mut bytes = 0usize;
        for (k, i) in (0..self.n as usize).rev().enumerate() {
            bytes += self.end[i] - self.start[i];
            if bytes > ((DUP_THRESH - 1) * mss) as usize || k + 1 >= DUP_THRESH as usize {
                return self.start[i];
            }
        }
        una
    }
}

/// The outcome of [`Scoreboard::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// New bytes were SACKed.
    Added(u32),
    /// Nothing new.
    Known,
    /// No room: a range was forgotten.
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: u32) -> SeqNumber {
        SeqNumber(v)
    }
    fn blocks(b: &[(u32, u32)]) -> [Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS] {
        let mut out = [None; MAX_SACK_BLOCKS];
        for (i, &(s, e)) in b.iter().enumerate() {
            out[i] = Some((q(s), q(e)));
        }
        out
    }
    fn r(sb: &Scoreboard) -> Vec<(u32, u32)> {
        sb.iter().map(|(s, e)| (s.0, e.0)).collect()
    }

    #[test]
    fn blocks_merge_and_count_new_bytes_once() {
        let mut sb = Scoreboard::default();
        let u = sb.update(&blocks(&[(300, 400), (100, 200)]), q(0), q(1000));
        assert_eq!(u.newly_sacked, 200);
        assert_eq!(r(&sb), vec![(100, 200), (300, 400)]);
        let u = sb.update(&blocks(&[(150, 350)]), q(0), q(1000));
        assert_eq!(u.newly_sacked, 100, "only the gap 200..300 is new");
        assert_eq!(r(&sb), vec![(100, 400)]);
        let u = sb.update(&blocks(&[(100, 400)]), q(0), q(1000));
        assert_eq!(u.newly_sacked, 0);
    }

    #[test]
    fn invalid_blocks_are_ignored_and_counted() {
        let mut sb = Scoreboard::default();
        // Beyond SND.MAX, empty, reversed.
        let u = sb.update(&blocks(&[(900, 1100), (500, 500), (600, 550)]), q(100), q(1000));
        assert_eq!((u.invalid, u.newly_sacked), (3, 0));
        assert!(sb.is_empty());
    }

    #[test]
    fn dsack_is_recognised_below_the_ack_or_inside_the_second_block() {
        let mut sb = Scoreboard::default();
        let u = sb.update(&blocks(&[(100, 200), (500, 600)]), q(300), q(1000));
        assert_eq!(u.dsack, Some((q(100), q(200))), "RFC 2883: first block below the cumulative ACK");
        assert_eq!(r(&sb), vec![(500, 600)]);
        let u = sb.update(&blocks(&[(520, 540), (500, 700)]), q(300), q(1000));
        assert_eq!(u.dsack, Some((q(520), q(540))), "RFC 2883: first block inside the second");
        assert_eq!((u.newly_sacked, r(&sb)), (100, vec![(500, 700)]));
        let u = sb.update(&blocks(&[(800, 900), (500, 700)]), q(300), q(1000));
        assert_eq!(u.dsack, None);
    }

    #[test]
    fn a_full_scoreboard_forgets_the_highest_range() {
        let mut sb = Scoreboard::default();
        for k in 0..SB_RANGES as u32 {
            assert!(matches!(sb.insert(q(100 * k + 10), q(100 * k + 20)), Inserted::Added(10)));
        }
        assert_eq!(sb.insert(q(5000), q(5010)), Inserted::Full, "above all: the new block is dropped");
        assert_eq!(sb.high(), Some(q(100 * (SB_RANGES as u32 - 1) + 20)));
        assert_eq!(sb.insert(q(0), q(5)), Inserted::Full, "below all: the highest goes");
        assert_eq!(sb.len(), SB_RANGES);
        assert_eq!(sb.iter().next(), Some((q(0), q(5))));
        assert_eq!(sb.high(), Some(q(100 * (SB_RANGES as u32 - 2) + 20)));
    }

    #[test]
    fn advance_drops_and_trims_below_snd_una() {
        let mut sb = Scoreboard::default();
        sb.insert(q(100), q(200));
        sb.insert(q(300), q(400));
        sb.advance(q(350));
        assert_eq!(r(&sb), vec![(350, 400)]);
        sb.advance(q(400));
        assert!(sb.is_empty());
    }

    #[test]
    fn is_lost_needs_more_than_two_segments_or_three_ranges_above() {
        let mss = 100;
        let mut sb = Scoreboard::default();
        sb.insert(q(200), q(400));
        assert_eq!(sb.lost_boundary(q(0), mss), q(0), "2 * SMSS above: not lost yet");
        sb.insert(q(400), q(401));
        assert_eq!(sb.lost_boundary(q(0), mss), q(200), "more than (DupThresh - 1) * SMSS");
        let mut sb = Scoreboard::default();
        for k in 0..3 {
            sb.insert(q(200 + 100 * k), q(210 + 100 * k));
        }
        assert_eq!(sb.lost_boundary(q(0), mss), q(200), "DupThresh discontiguous ranges");
        assert_eq!(sb.sacked_between(q(0), q(305)), 15);
    }
}

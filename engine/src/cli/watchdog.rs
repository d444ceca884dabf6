//! Liveness of the shards and of the link, as the control thread sees it.
//!
//! Each shard bumps an atomic turn counter (its heartbeat) once per turn of
//! its run loop. A healthy shard turns at least every
//! [`runner::SNAPSHOT_EVERY`](crate::shard::runner::SNAPSHOT_EVERY) even when
//! idle: its sleep on the socket is bounded by the next snapshot, so an idle
//! shard is never mistaken for a stuck one. A shard whose counter has not moved
//! for [`STALL_AFTER`] is *stalled* (logged, `floodgate_shard_stalled` 1);
//! one that stays stalled for the stall timeout ends the process with status 1,
//! so systemd restarts it (a stuck thread cannot be repaired from outside).
//!
//! The interface (both, on a two-armed proxy: the worse of the two counts)
//! is watched the same way: gone (its ifindex no longer
//! exists, e.g. the veth was deleted), administratively down, or without
//! carrier, it is reported at once (`floodgate_link_up` 0) and, if it has not
//! come back within the stall timeout, the process exits with status 1. A
//! vanished interface cannot come back (the kernel unbinds the AF_XDP sockets
//! and drops the XDP program with it), but it is given the same timeout: one
//! rule for operators, and the metrics stay readable while it runs out.
//!
//! Time is passed in, so the rules are tested without threads or a kernel.

use std::time::{Duration, Instant};

use crate::link::ifstate::LinkState;

/// No turn for this long: the shard is reported stalled. Four times the
/// longest sleep of an idle shard.
pub const STALL_AFTER: Duration = Duration::from_secs(1);

/// Something the control thread should log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Shard `i` has not turned for `for_`.
    Stalled(usize, Duration),
    /// Shard `i` turns again after a stall of `for_`.
    Recovered(usize, Duration),
    /// The link is not usable any more.
    LinkLost(LinkState),
    /// The link is usable again after `for_`.
    LinkBack(Duration),
}

#[derive(Clone, Copy, Debug)]
struct Beat {
    turns: u64,
    /// When `turns` was last seen to change (or watching began).
    moved_at: Instant,
    stalled: bool,
    /// Exited shards are no longer watched.
    done: bool,
}

/// The control thread's view of every shard's heartbeat and of the link.
#[derive(Debug)]
pub struct Watchdog {
    /// `None`: report only, never exit.
    timeout: Option<Duration>,
    stall_after: Duration,
    beats: Vec<Beat>,
    last_look: Instant,
    link: LinkState,
    link_lost_at: Option<Instant>,
}

impl Watchdog {
    /// Watches `shards` shards from `now`; `timeout` is `--stall-timeout`
    /// (`None` for 0: report, never exit).
    pub fn new(shards: usize, timeout: Option<Duration>, now: Instant) -> Watchdog {
        let stall_after = timeout.map_or(STALL_AFTER, |t| t.min(STALL_AFTER));
        let beat = Beat { turns: 0, moved_at: now, stalled: false, done: false };
        Watchdog {
            timeout,
            stall_after,
            beats: vec![beat; shards],
            last_look: now,
            link: LinkState::Up,
            link_lost_at: None,
        }
    }

    /// Looks at every shard's turn counter (`turns[i]`) at `now`; calls
    /// `report` for each change.
    pub fn look(&mut self, now: Instant, turns: impl Iterator<Item = u64>, mut report: impl FnMut(Change)) {
        // If the control thread itself was held up (the process stopped, the
        // machine suspended, a slow scrape), the shards were not watched for
        // that long: start their clocks afresh rather than blame them.
        let unwatched = now.saturating_duration_since(self.last_look) >= self.stall_after;
        self.last_look = now;
        for (i, (b, t)) in self.beats.iter_mut().zip(turns).enumerate() {
            if b.done {
                continue;
            }
            if t != b.turns || unwatched {
                if b.stalled {
                    b.stalled = false;
                    report(Change::Recovered(i, now.saturating_duration_since(b.moved_at)));
                }
                b.turns = t;
                b.moved_at = now;
            } else if !b.stalled && now.saturating_duration_since(b.moved_at) >= self.stall_after {
                b.stalled = true;
                report(Change::Stalled(i, now.saturating_duration_since(b.moved_at)));
            }
        }
    }

    /// Records the link's state at `now`.
    pub fn link(&mut self, now: Instant, state: LinkState, mut report: impl FnMut(Change)) {
        match (state.usable(), self.link_lost_at) {
            (false, None) => {
                self.link_lost_at = Some(now);
                report(Change::LinkLost(state));
            }
            (false, Some(_)) if state != self.link => report(Change::LinkLost(state)),
            (true, Some(at)) => {
                self.link_lost_at = None;
                report(Change::LinkBack(now.saturating_duration_since(at)));
            }
            _ => {}
        }
        self.link = state;
    }

    /// Shard `i` ended; it is not watched any more.
    pub fn exited(&mut self, i: usize) {
        if let Some(b) = self.beats.get_mut(i) {
            b.done = true;
            b.stalled = false;
        }
    }

    pub fn stalled(&self, i: usize) -> bool {
        self.beats.get(i).is_some_and(|b| b.stalled)
    }

    pub fn link_state(&self) -> LinkState {
        self.link
    }

    /// Every shard turns and the link is usable.
    pub fn healthy(&self) -> bool {
        self.link_lost_at.is_none() && !self.beats.iter().any(|b| b.stalled)
    }

    /// Why the process must end now, if it must: a shard stalled, or the
    /// link lost, for the whole stall timeout.
    pub fn verdict(&self, now: Instant) -> Option<String> {
        let timeout = self.timeout?;
        for (i, b) in self.beats.iter().enumerate() {
            let idle = now.saturating_duration_since(b.moved_at);
            if b.stalled && idle >= timeout {
                return Some(format!("shard {i} has not turned for {idle:.1?} (stall timeout {timeout:?})"));
            }
        }
        if let Some(at) = self.link_lost_at {
            let lost = now.saturating_duration_since(at);
            if lost >= timeout {
                return Some(format!("the link is {} for {lost:.1?} (stall timeout {timeout:?})", self.link));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    struct Fixture {
        dog: Watchdog,
        now: Instant,
        turns: Vec<u64>,
        changes: Vec<Change>,
    }

    impl Fixture {
        fn new(shards: usize, timeout: Option<Duration>) -> Fixture {
            let now = Instant::now();
            Fixture { dog: Watchdog::new(shards, timeout, now), now, turns: vec![0; shards], changes: Vec::new() }
        }

        /// Lets `d` pass in control ticks; `moving` shards take a turn each tick.
        fn run(&mut self, d: Duration, moving: &[usize]) {
            let end = self.now + d;
            while self.now < end {
                self.now += TICK;
                for &i in moving {
                    self.turns[i] += 1;
                }
                let changes = &mut self.changes;
                self.dog.look(self.now, self.turns.iter().copied(), |c| changes.push(c));
            }
        }

        fn link(&mut self, s: LinkState) {
            let changes = &mut self.changes;
            self.dog.link(self.now, s, |c| changes.push(c));
        }
    }

    #[test]
    fn an_idle_shard_that_wakes_for_its_snapshots_is_never_stalled() {
        let mut f = Fixture::new(1, Some(Duration::from_secs(10)));
        // Idle: one turn per 250 ms snapshot wake-up, i.e. every few ticks.
        for _ in 0..400 {
            f.run(Duration::from_millis(200), &[]);
            f.turns[0] += 1;
        }
        assert!(f.changes.is_empty(), "{:?}", f.changes);
        assert!(f.dog.healthy());
        assert_eq!(f.dog.verdict(f.now), None);
    }

    #[test]
    fn a_stuck_shard_is_reported_then_ends_the_process_after_the_timeout() {
        let timeout = Duration::from_secs(3);
        let mut f = Fixture::new(2, Some(timeout));
        f.run(Duration::from_secs(1), &[0, 1]);
        f.run(STALL_AFTER - TICK, &[0]);
        assert!(f.changes.is_empty(), "not yet: {:?}", f.changes);
        f.run(TICK, &[0]);
        assert_eq!(f.changes, vec![Change::Stalled(1, STALL_AFTER)]);
        assert!(f.dog.stalled(1) && !f.dog.stalled(0) && !f.dog.healthy());
        f.run(timeout - STALL_AFTER - TICK, &[0]);
        assert_eq!(f.dog.verdict(f.now), None, "not before the timeout");
        f.run(TICK, &[0]);
        let why = f.dog.verdict(f.now).expect("the timeout is over");
        assert!(why.starts_with("shard 1 has not turned"), "{why}");
    }

    #[test]
    fn a_shard_that_turns_again_recovers() {
        let mut f = Fixture::new(1, Some(Duration::from_secs(10)));
        f.run(Duration::from_secs(2), &[]);
        f.run(TICK, &[0]);
        assert_eq!(f.changes, vec![Change::Stalled(0, STALL_AFTER), Change::Recovered(0, Duration::from_millis(2100))]);
        assert!(f.dog.healthy());
        f.run(Duration::from_secs(20), &[0]);
        assert_eq!(f.dog.verdict(f.now), None);
    }

    #[test]
    fn timeout_zero_reports_but_never_ends_the_process() {
        let mut f = Fixture::new(1, None);
        f.run(Duration::from_secs(60), &[]);
        f.link(LinkState::Gone);
        assert_eq!(f.changes, vec![Change::Stalled(0, STALL_AFTER), Change::LinkLost(LinkState::Gone)]);
        f.run(Duration::from_secs(60), &[]);
        assert_eq!(f.dog.verdict(f.now), None);
    }

    #[test]
    fn an_exited_shard_is_not_watched() {
        let mut f = Fixture::new(2, Some(Duration::from_secs(2)));
        f.dog.exited(1);
        f.run(Duration::from_secs(5), &[0]);
        assert!(f.changes.is_empty() && f.dog.healthy());
        assert_eq!(f.dog.verdict(f.now), None);
    }

    #[test]
    fn a_late_control_thread_does_not_blame_the_shards() {
        let mut f = Fixture::new(1, Some(Duration::from_secs(2)));
        f.run(Duration::from_secs(1), &[0]);
        // The whole process was stopped for a minute (SIGSTOP, suspend).
        f.now += Duration::from_secs(60);
        let changes = &mut f.changes;
        f.dog.look(f.now, f.turns.iter().copied(), |c| changes.push(c));
        assert!(f.changes.is_empty());
        assert_eq!(f.dog.verdict(f.now), None);
    }

    #[test]
    fn a_lost_link_is_reported_at_once_and_ends_the_process_after_the_timeout() {
        let timeout = Duration::from_secs(2);
        let mut f = Fixture::new(1, Some(timeout));
        f.link(LinkState::Up);
        f.run(Duration::from_secs(1), &[0]);
        let down = LinkState::Down { admin_up: true, carrier: false };
        f.link(down);
        assert_eq!(f.changes, vec![Change::LinkLost(down)]);
        assert!(!f.dog.healthy());
        f.run(Duration::from_secs(1), &[0]);
        f.link(LinkState::Gone);
        assert_eq!(f.changes.last(), Some(&Change::LinkLost(LinkState::Gone)), "a worse state is reported");
        f.run(timeout - Duration::from_secs(1) - TICK, &[0]);
        assert_eq!(f.dog.verdict(f.now), None, "the timeout runs from the first loss");
        f.run(TICK, &[0]);
        let why = f.dog.verdict(f.now).expect("lost for the whole timeout");
        assert!(why.contains("the link is gone"), "{why}");
    }

    #[test]
    fn a_link_that_comes_back_in_time_is_forgiven() {
        let mut f = Fixture::new(1, Some(Duration::from_secs(2)));
        f.link(LinkState::Down { admin_up: false, carrier: false });
        f.run(Duration::from_secs(1), &[0]);
        f.link(LinkState::Up);
        assert_eq!(f.changes.last(), Some(&Change::LinkBack(Duration::from_secs(1))));
        f.run(Duration::from_secs(5), &[0]);
        assert_eq!(f.dog.verdict(f.now), None);
        assert!(f.dog.healthy());
    }
}

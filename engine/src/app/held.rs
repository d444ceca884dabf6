//! Per-connection application state that is held only while a connection
//! is busy, as buffer chunks are.
//!
//! A front end's connections are mostly idle keep-alive ones. An
//! application whose state between two requests is always the same value
//! (the `http` parser waiting for a request line) need not keep a copy per
//! connection: each connection keeps an 8-byte entry (which handle owns it,
//! which state it holds), and takes a state from a pool when an event finds
//! it without one. After the event the application gives the state back if
//! it is the idle value again ([`Held::settle`]).
//!
//! Nothing allocates after `new`: the entries and the states sit on
//! zero-filled mappings sized for the connection table (a connection holds
//! at most one state, so the pool never runs out), committed only as
//! touched; freed states are reused last-in first-out, so the pages that
//! hold states are the few the busiest moment needed, not one per
//! connection.

use crate::table::{Handle, Mapped};

/// A connection's entry: the generation of the handle that owns it (0:
/// none; live handles have odd generations) and its state's index plus
/// one (0: it holds none).
#[derive(Clone, Copy, Default)]
struct Entry {
    generation: u32,
    state: u32,
}

pub struct Held<T> {
    entries: Mapped<Entry>,
    states: Mapped<T>,
    /// States given back, reused first.
    free: Vec<u32>,
}

impl<T: Copy + PartialEq> Held<T> {
    /// Room for `connections` connections (the endpoint's connection
    /// capacity: handles index the entries).
    pub fn new(connections: usize) -> Held<T> {
        Held {
            // SAFETY: an all-zero Entry is a valid value (no owner, no state).
            entries: unsafe { Mapped::zeroed(connections) },
            states: Mapped::with_capacity(connections),
            free: Vec::with_capacity(connections),
        }
    }

    /// Makes `h` the owner of its entry with state `init`, dropping what a
    /// previous owner left. `None` when `h` is beyond the table.
    pub fn open(&mut self, h: Handle, init: T) -> Option<&mut T> {
        let e = *self.entries.get(h.index() as usize)?;
        self.entries[h.index() as usize] = Entry { generation: h.generation(), state: e.state };
        let s = self.state_of(h, || init)?;
        *s = init;
        Some(s)
    }

    /// Whether `h` owns its entry (an event for anything else is stale).
    pub fn owns(&self, h: Handle) -> bool {
        self.entries.get(h.index() as usize).is_some_and(|e| e.generation == h.generation())
    }

    /// The state of `h`, taken from the pool and set to `idle()` if it
    /// holds none; `None` when `h` does not own its entry.
    #[inline]
    pub fn get(&mut self, h: Handle, idle: impl FnOnce() -> T) -> Option<&mut T> {
        if !self.owns(h) {
            return None;
        }
        self.state_of(h, idle)
    }

    fn state_of(&mut self, h: Handle, idle: impl FnOnce() -> T) -> Option<&mut T> {
        let i = h.index() as usize;
        let mut s = self.entries[i].state;
        if s == 0 {
            let slot = match self.free.pop() {
                Some(f) => {
                    self.states[f as usize] = idle();
                    f
                }
                None => {
                    let f = self.states.len() as u32;
                    // One state per connection at most: never full.
                    self.states.push(idle()).ok()?;
                    f
                }
            };
            s = slot + 1;
            self.entries[i].state = s;
        }
        self.states.get_mut(s as usize - 1)
    }

    /// Gives the state of `h` back when it equals `idle`.
    #[inline]
    pub fn settle(&mut self, h: Handle, idle: &T) {
        let Some(e) = self.entries.get(h.index() as usize).copied() else { return };
        if e.generation != h.generation() || e.state == 0 || self.states[e.state as usize - 1] != *idle {
            return;
        }
        self.entries[h.index() as usize].state = 0;
        self.free.push(e.state - 1); // at most one free index per state: within capacity
    }

    /// Forgets `h` and gives its state back (the connection is gone).
    pub fn close(&mut self, h: Handle) {
        let Some(e) = self.entries.get(h.index() as usize).copied() else { return };
        if e.generation != h.generation() {
            return;
        }
        if e.state != 0 {
            self.free.push(e.state - 1);
        }
        self.entries[h.index() as usize] = Entry::default();
    }

    /// States held by connections now.
    pub fn in_use(&self) -> usize {
        self.states.len() - self.free.len()
    }

    /// The most states ever held at once (what the pool's pages cover).
    pub fn high_water(&self) -> usize {
        self.states.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Addr, FourTuple};
    use crate::table::ConnTable;

    fn tuple(host: u8, port: u16) -> FourTuple {
        let (local, remote) = (Addr::v4([198, 18, 0, 1]), Addr::v4([198, 18, 1, host]));
        FourTuple { local_addr: local, remote_addr: remote, local_port: 80, remote_port: port }
    }

    fn handles(n: u32) -> (ConnTable<()>, Vec<Handle>) {
        let mut t = ConnTable::with_capacity_and_seed(n, 1);
        let hs = (0..n).map(|i| t.insert(tuple(1, 1024 + i as u16), ()).unwrap()).collect();
        (t, hs)
    }

    #[test]
    fn idle_connections_hold_no_state_and_busy_ones_share_few() {
        let (_, hs) = handles(1000);
        let mut held: Held<u64> = Held::new(1000);
        for &h in &hs {
            *held.open(h, 7).unwrap() = 7;
            held.settle(h, &0);
        }
        assert_eq!(held.in_use(), 1000, "fresh connections are busy until settled idle");
        for &h in &hs {
            *held.get(h, || 0).unwrap() = 0;
            held.settle(h, &0);
        }
        assert_eq!(held.in_use(), 0, "idle: nothing held");
        // Ten at a time busy: the pool never grows past what it had.
        for round in hs.chunks(10) {
            for &h in round {
                assert_eq!(*held.get(h, || 0).unwrap(), 0, "taken as the idle value");
                *held.get(h, || 0).unwrap() = 5;
            }
            assert_eq!(held.in_use(), 10);
            for &h in round {
                *held.get(h, || 0).unwrap() = 0;
                held.settle(h, &0);
            }
        }
        assert_eq!((held.in_use(), held.high_water()), (0, 1000));
    }

    #[test]
    fn a_stale_handle_is_refused_and_a_closed_entry_is_free() {
        let (mut t, hs) = handles(4);
        let mut held: Held<u8> = Held::new(4);
        held.open(hs[0], 1).unwrap();
        assert!(held.owns(hs[0]) && !held.owns(hs[1]));
        assert!(held.get(hs[1], || 0).is_none(), "never opened");
        held.close(hs[0]);
        assert!(!held.owns(hs[0]) && held.get(hs[0], || 0).is_none());
        assert_eq!(held.in_use(), 0);
        // The slot's next connection: the old handle stays refused.
        t.remove(hs[0]).unwrap();
        let again = t.insert(tuple(2, 9), ()).unwrap();
        assert_eq!(again.index(), hs[0].index());
        held.open(again, 3).unwrap();
        assert!(held.get(hs[0], || 0).is_none() && held.owns(again));
        held.settle(hs[0], &3);
        assert_eq!(held.in_use(), 1, "a stale handle settles nothing");
        held.close(hs[0]);
        assert!(held.owns(again), "nor closes anything");
    }

    #[test]
    fn a_handle_beyond_the_table_is_refused() {
        let (_, hs) = handles(8);
        let mut held: Held<u8> = Held::new(4);
        let beyond = hs.iter().copied().find(|h| h.index() >= 4).unwrap();
        assert!(held.open(beyond, 1).is_none() && held.get(beyond, || 0).is_none() && !held.owns(beyond));
        held.settle(beyond, &0);
        held.close(beyond);
    }
}

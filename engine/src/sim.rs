//! A pair of endpoints joined by `link::Memory`, driven in virtual time
//! (quinn's `Pair`, for TCP): tests and benchmarks connect, move bytes and
//! close with loss, duplication and reordering, deterministically.

use crate::app::App;
use crate::link::memory::{self, Faults};
use crate::link::Memory;
use crate::shard;
use crate::tcp::Endpoint;
use crate::time::{Duration, Instant};

/// One side: an endpoint, its end of the pipe, its application.
pub struct Peer<A: App> {
    pub ep: Endpoint,
    pub link: Memory,
    pub app: A,
}

pub struct Pair<C: App, S: App> {
    pub now: Instant,
    pub client: Peer<C>,
    pub server: Peer<S>,
}

impl<C: App, S: App> Pair<C, S> {
    pub fn new(now: Instant, client: (Endpoint, C), server: (Endpoint, S), faults: Faults, seed: u64) -> Self {
        let (a, b) = memory::pair(faults, seed);
        a.set_now(now);
        Pair {
            now,
            client: Peer { ep: client.0, link: a, app: client.1 },
            server: Peer { ep: server.0, link: b, app: server.1 },
        }
    }

    /// One turn of both sides at the current time; returns frames received.
    pub fn step(&mut self) -> usize {
        let now = self.now;
        self.client.link.set_now(now);
        let mut n = 0;
        loop {
            let c = shard::step(&mut self.client.ep, &mut self.client.link, &mut self.client.app, now, usize::MAX);
            let s = shard::step(&mut self.server.ep, &mut self.server.link, &mut self.server.app, now, usize::MAX);
            n += c + s;
            if c + s == 0 {
                return n;
            }
        }
    }

    /// The next instant anything can happen: a frame arrives or a timer is due.
    pub fn next_event(&self) -> Option<Instant> {
        [
            self.client.link.next_arrival(),
            self.server.link.next_arrival(),
            self.client.ep.next_deadline(),
            self.server.ep.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Steps and jumps time forward until `done` holds or `limit` passes.
    /// Returns whether `done` held.
    pub fn drive(&mut self, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.step();
            if done(self) {
                return true;
            }
            let next = match self.next_event() {
                Some(t) => t.max(self.now + Duration::from_micros(1)),
                None => return false,
            };
            if next > end {
                self.now = end;
                self.step();
                return done(self);
            }
            self.now = next;
        }
    }
}

/// An application that does nothing (a bare endpoint).
pub struct NoApp;

impl App for NoApp {
    fn on_event(&mut self, _: &mut Endpoint, _: Instant, _: crate::tcp::Event) {}
}

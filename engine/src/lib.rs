//! floodgate: a kernel-bypass TCP server engine over AF_XDP.
//!
//! Layers, bottom up: `wire` (zero-copy packet views), `tcp` (the sans-IO
//! connection state machine, RFC 9293), `table` and `timer` (the shard-local
//! connection table, TIME-WAIT table and timing wheel), `link` (frame I/O),
//! `shard` (the per-core run loop) and `app` (applications on top).

/// Runs test cases written as `fn name(f: Family)` over IPv4 and IPv6:
/// each `name` gets the tests `name::v4` and `name::v6` (one body, a
/// parameter), with `Family` the one in scope where it is used (the TCP
/// scenario harness's, or `sim::Family`).
#[cfg(test)]
macro_rules! both_families {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn v4() {
                super::$name(super::Family::V4)
            }
            #[test]
            fn v6() {
                super::$name(super::Family::V6)
            }
        }
    )+};
}

pub mod app;
pub mod cli;
mod counters;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod link;
pub mod metrics;
pub mod neigh;
pub mod shard;
pub mod sim;
pub mod table;
pub mod tcp;
pub mod time;
pub mod timer;
pub mod wire;

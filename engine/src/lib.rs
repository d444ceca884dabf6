//! floodgate: a kernel-bypass TCP server engine over AF_XDP.
//!
//! Layers, bottom up: `wire` (zero-copy packet views), `tcp` (the sans-IO
//! connection state machine, RFC 9293), `table` and `timer` (the shard-local
//! connection table, TIME-WAIT table and timing wheel), `link` (frame I/O),
//! `shard` (the per-core run loop) and `app` (applications on top).

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

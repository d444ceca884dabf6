//! The TCP protocol, sans-IO (RFC 9293), with SYN cookies (RFC 4987),
//! RFC 5961 defences, RFC 6298 retransmission, RFC 7323 options and PAWS,
//! RFC 6528 initial sequence numbers and RFC 6191 TIME-WAIT reuse.
//!
//! Nothing here reads a clock, a socket or a thread: every entry point takes
//! `now`, frames come in as bytes and go out through a `TxSink`.

pub mod buffer;
pub mod cc;
pub mod config;
pub mod deadline;
pub mod ecn;
pub mod emit;
pub mod endpoint;
pub mod events;
pub mod input;
pub mod prr;
pub mod rack;
pub mod ratelimit;
pub mod reassembly;
pub mod recovery;
pub mod scoreboard;
pub mod secret;
pub mod seg;
pub mod sender;
pub mod state;
pub mod stats;
pub mod tcb;
pub mod timers;
pub mod window;

pub use config::{Capacity, Congestion, CookieMode, Ecn, Keepalive, TcpConfig, TimeWaitRst};
pub use endpoint::{Endpoint, Error, Listener, ListenerCounts, TupleUse, LOOK_AHEAD_MIN};
pub use events::{CloseReason, Event};
pub use secret::Secrets;
pub use state::State;
pub use stats::Stats;

#[cfg(test)]
mod tests;

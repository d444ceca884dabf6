//! Zero-copy packet views and their `Repr`s.

mod seq;
pub use seq::SeqNumber;

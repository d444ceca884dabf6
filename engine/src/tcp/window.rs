//! How far a connection's buffers may grow, and receive-window autotuning.
//!
//! Buffers grow chunk by chunk from the shard's pool (`buffer.rs`) up to the
//! listener's `max_send_buffer` / `max_recv_buffer`. The send side simply
//! takes what the application writes, up to its maximum. The receive side
//! starts with one chunk's window and grows it as Linux's dynamic
//! right-sizing does (`tcp_rcv_space_adjust`, simplified): at most once per
//! round-trip time, when the application has read all there is, it
//! measures what it read since the last measurement (scaled to one RTT),
//! and when twice that exceeds the buffer allowed, the buffer grows to
//! twice it. An application that keeps up with a window-limited sender reads a
//! full window per RTT, so the window doubles each RTT, just ahead of the
//! sender's slow start, until the path (not the window) limits or the
//! maximum is reached; an application that reads slowly, or not at all,
//! keeps the small window, and so its peer cannot make it hold much.
//!
//! The offered window scale (RFC 7323 §2.3) covers the maximum
//! ([`TcpConfig::offered_window_scale`]). The right edge already advertised
//! never moves left (RFC 9293 §3.8.6.2.2, `Tcb::advertise`): when the pool
//! runs short ([`BufferPool::short`]), growth is refused (counted in
//! `buffer_growth_refused`) and connections offer at most one chunk's worth
//! beyond what they hold until chunks come back, but data within an edge
//! already offered is still taken while any chunk is free.

use super::buffer::BufferPool;
use super::config::TcpConfig;
use super::tcb::{flag, Tcb};
use crate::time::Instant;

/// What a measurement did to the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tune {
    Same,
    Grown,
    /// It would have grown, but the pool is short.
    Refused,
}

/// The most a receive buffer may hold on this listener: its maximum, no
/// less than one chunk, no more than the window field can say.
pub fn recv_max(pool: &BufferPool, cfg: &TcpConfig, rcv_wscale: u8) -> usize {
    let cs = pool.chunk_size() as usize;
    (cfg.max_recv_buffer as usize).max(cs).min(65535usize << rcv_wscale.min(14))
}

/// The most a send buffer may hold on this listener (no less than one chunk).
pub fn send_max(pool: &BufferPool, cfg: &TcpConfig) -> usize {
    (cfg.max_send_buffer as usize).max(pool.chunk_size() as usize)
}

impl Tcb {
    /// The receive buffer autotuning allows now: one chunk at first.
    pub fn rcv_buf_limit(&self, pool: &BufferPool, cfg: &TcpConfig) -> usize {
        (self.rcv_buf as usize).max(pool.chunk_size() as usize).min(recv_max(pool, cfg, self.rcv_wscale))
    }

    /// The bytes the send buffer may hold now: the maximum, or one chunk
    /// while the pool is short.
    pub fn send_buf_limit(&self, pool: &BufferPool, cfg: &TcpConfig) -> usize {
        if pool.short() {
            pool.chunk_size() as usize
        } else {
            send_max(pool, cfg)
        }
    }

    /// The sequence number of the first byte the application has not read.
    fn copied_seq(&self) -> crate::wire::SeqNumber {
        self.rcv_nxt - self.rx.len() - usize::from(self.has(flag::FIN_RECEIVED))
    }

    /// The application read: once per RTT, when it has read all there is,
    /// measure what it read and grow the receive buffer to twice that if
    /// that is more than the buffer (Linux's `tcp_rcv_space_adjust`). The reading is scaled to one RTT
    /// when the measurement ran longer, so a reader that drains a full
    /// buffer now and then does not pass for one that keeps up.
    pub fn rcv_space_adjust(&mut self, now: Instant, cfg: &TcpConfig, pool: &BufferPool) -> Tune {
        let now_ms = now.total_millis() as u32;
        let rtt_ms = match self.srtt_us / 1000 {
            // No estimate (no timestamps and nothing timed yet): measure
            // over the initial RTO, which overestimates the RTT and so
            // errs toward a larger window for a reader that keeps up.
            0 if self.srtt_us == 0 => cfg.rto_initial.as_millis().max(1) as u64,
            r => r.max(1) as u64,
        };
        let elapsed = now_ms.wrapping_sub(self.rcv_epoch_ms) as u64;
        // Measured when the application has caught up (read all there
        // is): a burst read in several calls counts whole, in one RTT.
        if elapsed < rtt_ms || !self.rx.is_empty() {
            return Tune::Same;
        }
        let copied_seq = self.copied_seq();
        let copied = copied_seq.diff(self.rcv_epoch_seq).max(0) as u64;
        self.rcv_epoch_seq = copied_seq;
        self.rcv_epoch_ms = now_ms;
        let per_rtt = copied * rtt_ms / elapsed;
        let cur = self.rcv_buf_limit(pool, cfg) as u64;
        let max = recv_max(pool, cfg, self.rcv_wscale) as u64;
        if cur >= max || 2 * per_rtt <= cur {
            return Tune::Same;
        }
        if pool.short() {
            return Tune::Refused;
        }
        let cs = pool.chunk_size() as u64;
        self.rcv_buf = (2 * per_rtt).div_ceil(cs).saturating_mul(cs).min(max) as u32;
        Tune::Grown
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::window_scale_for;
    use super::*;

    #[test]
    fn offered_window_scale_covers_the_receive_buffer() {
        assert_eq!(window_scale_for(65535), 0);
        assert_eq!(window_scale_for(65536), 1);
        assert_eq!(window_scale_for(4 << 20), 7);
        assert_eq!(window_scale_for(u32::MAX), 14);
        let cfg = TcpConfig::default();
        assert!(65535u64 << cfg.offered_window_scale() >= cfg.max_recv_buffer as u64);
        let big = TcpConfig { max_recv_buffer: 64 << 20, ..cfg };
        assert_eq!(big.offered_window_scale(), 11);
        assert!(65535u64 << big.offered_window_scale() >= big.max_recv_buffer as u64);
        assert_eq!(TcpConfig { window_scale: 0, ..big }.offered_window_scale(), 0, "scaling off stays off");
        assert_eq!(TcpConfig { window_scale: 9, ..cfg }.offered_window_scale(), 9, "a larger shift stays");
    }

    #[test]
    fn without_scaling_the_buffer_stops_at_the_window_field() {
        let pool = BufferPool::new(4, 16384);
        let cfg = TcpConfig::default();
        assert_eq!(recv_max(&pool, &cfg, 0), 65535);
        assert_eq!(recv_max(&pool, &cfg, 7), 4 << 20);
        assert_eq!(recv_max(&pool, &TcpConfig { max_recv_buffer: 1000, ..cfg }, 7), 16384, "at least a chunk");
    }
}

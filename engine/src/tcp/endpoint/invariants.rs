//! What must hold of an [`Endpoint`] between two entry points (after a
//! `flush`), checked by the fuzz target `endpoint` after every step and by
//! the property tests: sequence-space order (RFC 9293 §3.3.1: SND.UNA ≤
//! SND.NXT), table counts within their capacities, the half-open count
//! equal to the entries that hold it, every buffer chunk either free or
//! held by exactly one ring (chunks held = the sum of the rings' chains),
//! buffers within the listener's maximum and the out-of-order ranges
//! within the window advertised, every sender slot held by one connection,
//! the SACK scoreboard within SND.UNA..SND.MAX (RFC 6675 §3), ECN state
//! only on ECN connections (RFC 3168 §6.1), and a timer
//! armed for every connection with a deadline (else it would never end).

use super::Endpoint;
use crate::tcp::state::State;
use crate::tcp::tcb::flag;
use crate::tcp::window::{recv_max, send_max};

impl Endpoint {
    /// Checks the invariants; the first one broken is the error. Walks the
    /// whole table: for tests and fuzzing, not the data path.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let total_chunks = self.pool.chunks();
        let mut held_chunks = 0;
        let mut senders = 0;
        let mut half_open = vec![0u32; self.listeners.len()];
        let mut n = 0;
        for (h, t, tcb) in self.conns.iter() {
            n += 1;
            let at = |what: String| Err(format!("{t:?} in {}: {what}", tcb.state));
            if !(tcb.snd_una <= tcb.snd_nxt && tcb.snd_nxt <= tcb.snd_max) {
                return at(format!(
                    "snd_una {} snd_nxt {} snd_max {} out of order",
                    tcb.snd_una, tcb.snd_nxt, tcb.snd_max
                ));
            }
            // ECN's state (`ecn.rs`) only on a connection that uses ECN, and
            // none of it before the handshake is done.
            let ecn_state = flag::ECN_ECE | flag::ECN_CWR | flag::ECN_REDUCING;
            if tcb.flags & ecn_state != 0 && (!tcb.has(flag::ECN) || !tcb.state.is_synchronized()) {
                return at(format!("ECN state {:#x} without ECN negotiated", tcb.flags & ecn_state));
            }
            // In flight: the bytes sent from the send buffer, plus SYN and FIN.
            if tcb.flight() as usize > tcb.tx.len() + 2 {
                return at(format!("flight {} but {} bytes buffered", tcb.flight(), tcb.tx.len()));
            }
            let cfg = &self.cfgs[tcb.listener as usize];
            let (rx_max, tx_max) = (recv_max(&self.pool, cfg, tcb.rcv_wscale), send_max(&self.pool, cfg));
            if tcb.rx.len() > rx_max || tcb.tx.len() > tx_max {
                return at(format!("rx {} tx {} beyond the maximum {rx_max} / {tx_max}", tcb.rx.len(), tcb.tx.len()));
            }
            for (s, e) in tcb.rx.out_of_order(&self.pool).iter() {
                if s <= tcb.rcv_nxt || e > tcb.rcv_adv {
                    return at(format!(
                        "out-of-order range {s}..{e} outside rcv_nxt {}..rcv_adv {}",
                        tcb.rcv_nxt, tcb.rcv_adv
                    ));
                }
            }
            // TIME-WAIT is held in the table only for bytes still to be read.
            if matches!(tcb.state, State::Closed | State::Listen) || (tcb.state == State::TimeWait && tcb.rx.is_empty())
            {
                return at("left in the connection table".into());
            }
            for (name, ring) in [("rx", &tcb.rx), ("tx", &tcb.tx)] {
                match ring.check(&self.pool) {
                    Ok(n) => held_chunks += n,
                    Err(e) => return at(format!("{name} ring: {e}")),
                }
            }
            senders += (tcb.snd_slot != crate::tcp::buffer::NIL) as usize;
            // The SACK scoreboard holds only what is in flight (RFC 6675
            // §3: blocks outside SND.UNA..SND.MAX are never taken), sorted
            // and disjoint.
            if let Some(st) = tcb.sender(&self.pool) {
                let mut prev = tcb.snd_una;
                for (s, e) in st.sb.iter() {
                    if !(prev <= s && s < e && e <= tcb.snd_max) {
                        return at(format!(
                            "scoreboard range {s}..{e} outside or out of order (SND.UNA {} SND.MAX {})",
                            tcb.snd_una, tcb.snd_max
                        ));
                    }
                    prev = e;
                }
            }
            if tcb.has(flag::HALF_OPEN) {
                if tcb.state != State::SynReceived {
                    return at("holds a half-open slot".into());
                }
                match half_open.get_mut((tcb.listener as usize).wrapping_sub(1)) {
                    Some(c) => *c += 1,
                    None => return at(format!("half-open on listener {} that does not exist", tcb.listener)),
                }
            }
            if tcb.has_deadline() && !self.wheel.is_armed(h.index()) {
                return at(format!("deadline {} but no timer armed", tcb.next_deadline(self.now.total_millis())));
            }
        }
        if n > self.conns.capacity() {
            return Err(format!("{n} connections in a table of {}", self.conns.capacity()));
        }
        if self.tw4.len() > self.tw4.capacity() || self.tw6.len() > self.tw6.capacity() {
            return Err(format!("TIME-WAIT {} + {} beyond capacity", self.tw4.len(), self.tw6.len()));
        }
        if self.wheel.len() > n {
            return Err(format!("{} timers armed for {n} connections", self.wheel.len()));
        }
        if self.pool.available() + held_chunks != total_chunks {
            return Err(format!(
                "buffer chunks: {} free + {held_chunks} held != {total_chunks}",
                self.pool.available()
            ));
        }
        if self.pool.senders.in_use() != senders {
            return Err(format!(
                "sender slots: {} in use but {senders} connections hold one",
                self.pool.senders.in_use()
            ));
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if l.half_open != half_open[i] {
                return Err(format!(
                    "listener {}: half_open {} but {} entries hold it",
                    i + 1,
                    l.half_open,
                    half_open[i]
                ));
            }
            let budget = l.half_open_budget;
            if l.half_open > budget {
                return Err(format!("listener {}: {} half-open over the budget {budget}", i + 1, l.half_open));
            }
        }
        if self.half_open != half_open.iter().sum::<u32>() {
            return Err(format!("half_open {} but listeners hold {:?}", self.half_open, half_open));
        }
        Ok(())
    }
}

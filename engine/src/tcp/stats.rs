//! Per-shard counters: every limit and every drop has one, named so an
//! operator can read it in the metrics.

use crate::counters::counters;

counters! {
    /// What the TCP engine of one shard has seen and done.
    pub struct Stats {
        /// Segments received and parsed.
        segments_in,
        /// Segments sent.
        segments_out,
        /// SYNs received by listeners.
        syns_received,
        /// SYN-ACKs sent (first transmissions, stateful and cookie).
        synacks_sent,
        /// SYN-ACKs retransmitted from SYN-RECEIVED.
        synacks_retransmitted,
        /// Active opens whose SYN met a stray ACK (a TIME-WAIT of an earlier
        /// connection on the tuple, at the peer): RST, and the SYN again at once.
        syns_resent_after_reset,
        /// SYN-ACKs sent carrying a SYN cookie.
        cookies_sent,
        /// Final ACKs that carried a valid cookie and opened a connection.
        cookies_accepted,
        /// ACKs to a listener whose cookie failed validation.
        cookies_rejected,
        /// ACKs to a listener that sent no SYN cookie within the last 2 minutes
        /// (nor heard of one sent in XDP): answered by RST without a cookie check.
        cookie_acks_not_expected,
        /// Half-open entries given up for a valid cookie ACK on their tuple:
        /// the client's SYN came again, the XDP program answered it with a
        /// cookie, and the client completed that handshake instead.
        half_open_replaced_by_cookie,
        /// Valid cookie ACKs that found the connection table full: answered by RST.
        cookie_acks_table_full,
        /// SYNs dropped: half-open budget spent and cookies off.
        syns_dropped_half_open_budget,
        /// SYNs dropped: connection table full.
        syns_dropped_table_full,
        /// SYNs dropped: TIME-WAIT table full under the refuse-new policy.
        syns_dropped_time_wait_full,
        /// Half-open entries given up after the SYN-ACK retries.
        half_open_timeouts,
        /// Connections that reached ESTABLISHED (passive).
        connections_accepted,
        /// Connections that reached ESTABLISHED (active).
        connections_connected,
        /// Connections that ended normally (FIN both ways).
        connections_closed,
        /// Connections ended by an RST from the peer.
        connections_reset_by_peer,
        /// Connections we aborted with an RST (app abort, close with unread data).
        connections_aborted,
        /// Connections reset after the retransmission limit.
        connections_timed_out,
        /// Connections reset after unanswered keepalive probes.
        keepalive_timeouts,
        /// Keepalive probes sent.
        keepalive_probes_sent,
        /// FIN-WAIT-2 connections reclaimed after the timeout.
        fin_wait2_timeouts,
        /// Segments retransmitted after an RTO.
        retransmits,
        /// RTO expiries (not counting persist-timer expiries).
        rto_expiries,
        /// Of the RTO expiries, those of a connection backing off after an
        /// earlier RTO or still recovering from one. Each expiry is counted
        /// in the first of these five that applies.
        rto_repeated,
        /// Of the RTO expiries, those in SACK or NewReno recovery (a
        /// retransmission was lost).
        rto_in_recovery,
        /// Of the RTO expiries, those with a tail loss probe out and
        /// unanswered (RFC 8985 §7).
        rto_after_probe,
        /// Of the RTO expiries, those of connections without SACK, which
        /// send no tail loss probe.
        rto_without_sack,
        /// Of the RTO expiries, the rest: everything in flight lost and no
        /// probe possible (RFC 8985 §7.2's conditions not met).
        rto_other,
        /// Persist-timer expiries: zero-window probes sent (RFC 9293 §3.8.6.1).
        persist_probes,
        /// Challenge ACKs sent (RFC 5961).
        challenge_acks_sent,
        /// Challenge ACKs suppressed by the shard's randomised per-second budget.
        challenge_acks_suppressed,
        /// Challenge ACKs held back because the connection sent one (or an
        /// out-of-window ACK) less than 500 ms before.
        challenge_acks_rate_limited,
        /// ACKs answering out-of-window, PAWS-failed or unsent-data segments
        /// without data, held back by the same per-connection 500 ms interval.
        oow_acks_rate_limited,
        /// RSTs sent.
        rsts_sent,
        /// RSTs not sent because of the rate limit.
        rsts_suppressed,
        /// RSTs received and acted on.
        rsts_received,
        /// RSTs received and ignored (outside the window, or in TIME-WAIT under RFC 1337).
        rsts_ignored,
        /// Segments dropped as unacceptable (outside the receive window), answered by an ACK.
        drop_out_of_window,
        /// Of them, data wholly below RCV.NXT: the peer sent again what it
        /// had sent and we had (its timeout or probe was spurious, or our
        /// ACK was lost or late), answered with a D-SACK where SACK is on.
        drop_old_data,
        /// Segments dropped by the RFC 7323 PAWS test.
        drop_paws,
        /// Segments that acknowledged data never sent.
        drop_ack_unsent,
        /// Segments without ACK in a synchronized state.
        drop_no_ack,
        /// In-window segments beyond rcv_nxt not kept for reassembly (no
        /// buffer chunk, or more holes than a chunk tracks).
        drop_out_of_order,
        /// Segments beyond rcv_nxt kept for reassembly (not drops).
        out_of_order_queued,
        /// Connections whose peer's FIN came before bytes it had sent beyond
        /// it: those bytes, held out of order, were discarded (as Linux's
        /// `tcp_fin` purges its out-of-order queue).
        out_of_order_discarded_at_fin,
        /// Connections that queued bytes and found no free sender slot
        /// (congestion-control and SACK state): they send with NewReno
        /// and no scoreboard.
        sender_slots_exhausted,
        /// Loss recoveries started (RFC 6675 / RACK with SACK, RFC 6582
        /// NewReno without): each begins with a fast retransmission.
        fast_retransmits,
        /// Holes retransmitted during SACK recovery (RFC 6675 NextSeg).
        sack_retransmits,
        /// Segments RACK (RFC 8985) found lost by time.
        rack_lost_segments,
        /// Tail loss probes sent (RFC 8985 §7).
        tlp_probes,
        /// Tail loss probes that recovered a loss (the probe's ACK showed it).
        tlp_recoveries,
        /// Retransmission timeouts F-RTO (RFC 5682) found spurious; their
        /// window reduction was undone.
        spurious_rtos_undone,
        /// D-SACK blocks received (RFC 2883): the peer got a segment twice.
        dsacks_received,
        /// D-SACK blocks sent (RFC 2883 §4): a duplicate segment reported.
        dsacks_sent,
        /// D-SACK blocks not sent: more duplicates in one flush than the
        /// endpoint keeps blocks for, or every segment of the flush was
        /// too full to carry the longer SACK option.
        dsacks_not_sent,
        /// RSTs answering an unacceptable ACK in SYN-SENT or SYN-RECEIVED
        /// not sent: more in one flush than the endpoint keeps room for
        /// (the peer's next retransmission gets one).
        rsts_not_sent,
        /// SACK blocks ignored: outside SND.UNA..SND.MAX, or empty.
        sack_blocks_invalid,
        /// SACK blocks that did not fit a connection's scoreboard (the
        /// highest range was forgotten; it may be resent needlessly).
        sack_scoreboard_full,
        /// Transmission-log entries merged because the log was full (RACK
        /// then judges those bytes lost later, never earlier).
        rack_log_merged,
        /// RTT samples taken from the echoed timestamp because the oldest
        /// newly acknowledged byte's was more than twice it: the ACK came
        /// after the peer's earlier ACKs were lost (RFC 7323 §4.3).
        rtt_samples_bounded_by_echo,
        /// Connections that reached ESTABLISHED with ECN negotiated (RFC 3168 §6.1.1).
        ecn_negotiated,
        /// Data segments sent with ECT(0) in the IP header (new data of
        /// ECN connections: not retransmissions, probes or pure ACKs).
        ecn_ect_sent,
        /// Data segments received with CE (a router's congestion mark) on
        /// ECN connections: echoed with ECE until the peer's CWR.
        ecn_ce_received,
        /// ACKs received with ECE on ECN connections (every one while the
        /// peer echoes, so several per congestion event).
        ecn_ece_received,
        /// Congestion-window reductions made for ECE (at most one per
        /// window of data, none during loss recovery; RFC 3168 §6.1.2).
        ecn_cwnd_reductions,
        /// Data dropped for lack of a receive buffer chunk.
        drop_no_buffer,
        /// Receive buffers grown by autotuning (the application kept up
        /// with a window-limited sender).
        rcv_window_grown,
        /// Buffer growth refused because the shard's pool was short (below
        /// its low-water mark): receive autotuning, and writes held to one
        /// chunk's worth.
        buffer_growth_refused,
        /// Segments to a port nobody listens on.
        drop_no_listener,
        /// Segments with both SYN and FIN, or SYN with RST.
        drop_bad_flags,
        /// Stateless replies (RST, cookie SYN-ACK, TIME-WAIT ACK) not sent:
        /// no free TX frame.
        drop_tx_full,
        /// Connection segments held back because no TX frame was free: kept
        /// owed and sent at the next flush (not lost).
        tx_full_deferred,
        /// ICMP "fragmentation needed" / ICMPv6 "packet too big" errors
        /// about our segments received (RFC 1191, RFC 8201).
        icmp_too_big_received,
        /// Of those, ignored: no such connection, the quoted sequence
        /// number not in flight (RFC 5927 §4.1), or no lower MTU.
        icmp_too_big_ignored,
        /// Connections whose MSS was lowered by such an error.
        pmtu_mss_lowered,
        /// Connections inserted into TIME-WAIT.
        time_wait_entered,
        /// TIME-WAIT entries that ended after 2MSL.
        time_wait_expired,
        /// Bytes a connection received before reaching TIME-WAIT that the
        /// application had not read 2MSL later (after a `shutdown`):
        /// discarded so the entry can end.
        time_wait_unread_discarded,
        /// TIME-WAIT entries cut short because the table was full.
        time_wait_evicted,
        /// TIME-WAIT entries closed by an RST (policy `close`).
        time_wait_reset,
        /// TIME-WAIT entries reopened by a new SYN (RFC 6191).
        time_wait_reopened,
        /// Retransmitted FINs answered in TIME-WAIT (2MSL restarted).
        time_wait_fin_reacked,
        /// Application events lost because the event queue was full.
        events_overflow,
        /// Active opens refused: table full or tuple in use.
        connect_failed,
        /// Application deadlines that passed (`Event::Deadline`: header,
        /// idle and send timeouts; the application counts which).
        app_deadlines,
        /// SYNs dropped: their source address already holds the
        /// per-source connection limit (`TcpConfig::source_limit`).
        syns_dropped_source_limit,
        /// Cookie ACKs refused with an RST: their source address already
        /// holds the per-source connection limit.
        cookie_acks_refused_source_limit,
        /// Connections admitted without being counted per source, because
        /// the per-source table was full (too many distinct sources).
        source_table_full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_a_name_and_help() {
        let s = Stats { rsts_sent: 3, ..Stats::default() };
        let mut seen = 0;
        s.for_each(|name, help, v| {
            assert!(!help.is_empty(), "{name}");
            if name == "rsts_sent" {
                assert_eq!(v, 3);
            }
            seen += 1;
        });
        assert!(seen > 40);
        let mut t = Stats::default();
        t.merge(&s);
        t.merge(&s);
        assert_eq!(t.rsts_sent, 6);
    }
}

//! When the XDP program answers SYNs with the engine's cookies
//! (`bpf/syncookie.h`; RFC 4987 §3.6 and §3.7, the "hybrid approach").
//!
//! Stateful handshakes are the better ones: the SYN-ACK is retransmitted and
//! every option is kept. Cookies are for when the half-open state would run
//! out, and a shard sends them itself then (`CookieMode::Auto`). But a flood
//! large enough to spend the half-open budget also costs each shard a copy
//! into UMEM and an AF_XDP round trip per SYN; answered in XDP, a SYN costs
//! neither, and the shards keep their core for the connections that finish.
//!
//! [`CookieSwitch`] decides, from counters the control thread already reads:
//! - `flood`: on as soon as any shard has sent a cookie since the last look
//!   (its budget is spent); off once the SYNs answered in XDP have stayed
//!   below the flood rate for [`CALM`];
//! - `always`: on from the start; `off`: never.
//!
//! While it is on, a SYN to a tuple in TIME-WAIT no longer reaches the shard
//! (RFC 6191's check cannot run); the cookie ACK does, and reopens it
//! (`Endpoint::time_wait_segment`). Nor does a SYN for an open connection
//! (RFC 5961's challenge ACK): the cookie ACK that follows it is then out of
//! that connection's window, and dropped.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::config::{Resolved, XdpCookiesArg};
use crate::link::xdp::{CookieConfig, VipConfig, XdpProgram, VIP_XDP_COOKIES};
use crate::tcp::Secrets;

/// How long the SYN rate must stay below the flood rate before the shards
/// answer SYNs again.
pub const CALM: Duration = Duration::from_secs(5);
/// While cookies are answered in XDP, how often the shards are told so
/// (`Command::CookiesInFlight`): a shard checks cookie ACKs only within
/// `tcp::config::COOKIE_VALID` (2 min) of the last cookie it knows of.
pub const NOTICE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct CookieSwitch {
    mode: XdpCookiesArg,
    on: bool,
    /// SYNs per second answered in XDP that still count as a flood.
    flood_rate: f64,
    last: Option<(Instant, u64, u64)>,
    calm_since: Option<Instant>,
    /// When the shards were last told that cookies are in flight.
    told: Option<Instant>,
}

impl CookieSwitch {
    /// `flood_rate`: SYNs per second that would fill every shard's
    /// half-open budget within the first SYN-ACK timeout (1 s).
    pub fn new(mode: XdpCookiesArg, flood_rate: f64) -> Self {
        CookieSwitch { mode, on: mode == XdpCookiesArg::Always, flood_rate, last: None, calm_since: None, told: None }
    }

    /// Whether the shards must be told now that cookies are in flight: at
    /// once when it is on, then every [`NOTICE_EVERY`] while it stays on.
    pub fn notice_due(&mut self, now: Instant) -> bool {
        if !self.on || self.told.is_some_and(|t| now.saturating_duration_since(t) < NOTICE_EVERY) {
            return false;
        }
        self.told = Some(now);
        true
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Feeds the totals of cookies the shards have sent and of SYNs the XDP
    /// program has answered; returns the new state when it changes.
    pub fn update(&mut self, now: Instant, shard_cookies: u64, xdp_answered: u64) -> Option<bool> {
        // The first look only sets the baseline.
        let (then, cookies_then, answered_then) = self.last.replace((now, shard_cookies, xdp_answered))?;
        if self.mode != XdpCookiesArg::Flood {
            return None;
        }
        if !self.on {
            if shard_cookies > cookies_then {
                self.on = true;
                self.calm_since = None;
                return Some(true);
            }
            return None;
        }
        let secs = now.saturating_duration_since(then).as_secs_f64();
        let rate = if secs > 0.0 { xdp_answered.saturating_sub(answered_then) as f64 / secs } else { f64::MAX };
        if rate >= self.flood_rate {
            self.calm_since = None;
            return None;
        }
        let calm = *self.calm_since.get_or_insert(now);
        if now.saturating_duration_since(calm) >= CALM {
            self.on = false;
            self.calm_since = None;
            return Some(false);
        }
        None
    }
}

/// The switch, applied to the XDP program's `vips` map.
pub struct XdpCookies<'a> {
    program: &'a XdpProgram,
    switch: CookieSwitch,
    owned: Vec<(IpAddr, u16)>,
    /// The listener's SYN settings for IPv4 and IPv6 VIPs (their MSS differs).
    vip: [VipConfig; 2],
}

impl<'a> XdpCookies<'a> {
    /// Gives the program the engine's secrets and clock (whose zero is
    /// `epoch`) and every owned (VIP, port) its listener's SYN settings, with
    /// cookies in XDP on from the start under `always`.
    pub fn start(
        program: &'a XdpProgram,
        cfg: &Resolved,
        owned: Vec<(IpAddr, u16)>,
        secrets: &Secrets,
        epoch: Instant,
    ) -> Result<Self, String> {
        program.set_cookie_config(&CookieConfig::new(secrets, epoch.elapsed())).map_err(|e| e.to_string())?;
        let flood_rate = cfg.tcp.half_open_budget as f64 * cfg.queues as f64;
        let me = XdpCookies {
            program,
            switch: CookieSwitch::new(cfg.xdp_syn_cookies, flood_rate),
            owned,
            vip: [false, true].map(|v6| VipConfig::for_listener(&cfg.tcp, &cfg.cap, 0, v6)),
        };
        me.apply(me.switch.is_on())?;
        Ok(me)
    }

    /// One look at the counters: `shard_cookies` is the shards' total of
    /// cookies sent. True when the shards must be told now that cookies
    /// are in flight (they would refuse the cookie ACKs otherwise): when
    /// the switch turns on, and every [`NOTICE_EVERY`] while it is on
    /// (from the first look under `always`).
    pub fn tick(&mut self, shard_cookies: u64) -> bool {
        let now = Instant::now();
        if let Ok(xdp) = self.program.stats() {
            let change = self.switch.update(now, shard_cookies, xdp.syn_cookie_tx);
            match change {
                Some(true) => {
                    tracing::warn!("SYN flood: the half-open budget is spent; answering SYNs with cookies in XDP")
                }
                Some(false) => tracing::info!("SYN flood over: the shards answer SYNs again"),
                None => {}
            }
            if change.is_some() {
                if let Err(e) = self.apply(self.switch.is_on()) {
                    tracing::error!("cannot switch SYN cookies in XDP: {e}");
                }
            }
        }
        self.notice_due(now)
    }

    /// Whether the shards must be told (now) that cookies are in flight.
    pub fn notice_due(&mut self, now: Instant) -> bool {
        self.switch.notice_due(now)
    }

    /// For the drain (after which `tick` is no longer called): SYNs must
    /// reach the shards, which refuse them.
    pub fn stop(&mut self) {
        if let Err(e) = self.apply(false) {
            tracing::error!("cannot turn SYN cookies in XDP off: {e}");
        }
    }

    fn apply(&self, on: bool) -> Result<(), String> {
        for &(addr, port) in &self.owned {
            let base = self.vip[addr.is_ipv6() as usize];
            let flags = (base.flags & !VIP_XDP_COOKIES) | if on { VIP_XDP_COOKIES } else { 0 };
            let vip = VipConfig { flags, ..base };
            self.program.set_vip_config(addr, port, &vip).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn flood_turns_on_with_the_first_shard_cookie_and_off_after_calm() {
        let t0 = Instant::now();
        let mut s = CookieSwitch::new(XdpCookiesArg::Flood, 1000.0);
        assert!(!s.is_on());
        assert_eq!(s.update(t0, 0, 0), None, "the first look only sets the baseline");
        assert_eq!(s.update(ms(t0, 100), 0, 0), None, "no cookie: stays off");
        assert_eq!(s.update(ms(t0, 200), 3, 0), Some(true), "a shard's budget is spent");
        // XDP answers 500 SYNs per 100 ms = 5000/s: still a flood.
        let mut answered = 0;
        for i in 3..100 {
            answered += 500;
            assert_eq!(s.update(ms(t0, i * 100), 3, answered), None);
        }
        // The flood ends: 10 SYNs per 100 ms = 100/s, below the flood rate.
        for i in 100..149 {
            answered += 10;
            assert_eq!(s.update(ms(t0, i * 100), 3, answered), None, "{i}: calm for less than {CALM:?}");
        }
        answered += 10;
        assert_eq!(s.update(ms(t0, 150 * 100), 3, answered), Some(false), "calm for 5 s");
        assert!(!s.is_on());
        assert_eq!(s.update(ms(t0, 151 * 100), 3, answered), None);
        assert_eq!(s.update(ms(t0, 152 * 100), 4, answered), Some(true), "a new flood");
    }

    #[test]
    fn a_burst_within_the_calm_period_keeps_it_on() {
        let t0 = Instant::now();
        let mut s = CookieSwitch::new(XdpCookiesArg::Flood, 1000.0);
        s.update(t0, 0, 0);
        assert_eq!(s.update(ms(t0, 100), 1, 0), Some(true));
        assert_eq!(s.update(ms(t0, 200), 1, 0), None, "calm from here");
        assert_eq!(s.update(ms(t0, 4000), 1, 0), None, "calm for 3.8 s");
        assert_eq!(s.update(ms(t0, 4100), 1, 10_000), None, "100k/s again");
        assert_eq!(s.update(ms(t0, 4200), 1, 10_000), None, "calm from here");
        assert_eq!(s.update(ms(t0, 9100), 1, 10_000), None, "calm for 4.9 s");
        assert_eq!(s.update(ms(t0, 9200), 1, 10_000), Some(false));
    }

    #[test]
    fn shards_hear_of_cookies_in_xdp_at_once_and_every_second_while_on() {
        let t0 = Instant::now();
        let mut s = CookieSwitch::new(XdpCookiesArg::Flood, 1000.0);
        s.update(t0, 0, 0);
        assert!(!s.notice_due(t0), "off: nothing to tell");
        assert_eq!(s.update(ms(t0, 100), 1, 0), Some(true));
        assert!(s.notice_due(ms(t0, 100)), "at once when it turns on");
        assert!(!s.notice_due(ms(t0, 600)));
        assert!(s.notice_due(ms(t0, 1100)), "again a second later");
        let mut a = CookieSwitch::new(XdpCookiesArg::Always, 1000.0);
        assert!(a.notice_due(t0), "always: from the start");
        let mut o = CookieSwitch::new(XdpCookiesArg::Off, 1000.0);
        assert!(!o.notice_due(t0));
    }

    #[test]
    fn always_and_off_never_change() {
        let t0 = Instant::now();
        for (mode, on) in [(XdpCookiesArg::Always, true), (XdpCookiesArg::Off, false)] {
            let mut s = CookieSwitch::new(mode, 1000.0);
            assert_eq!(s.is_on(), on);
            for i in 0..100 {
                assert_eq!(s.update(ms(t0, i * 100), i * 7, if i < 50 { i * 1000 } else { 0 }), None);
            }
            assert_eq!(s.is_on(), on);
        }
    }
}

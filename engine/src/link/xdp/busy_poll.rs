//! Preferred busy polling of an AF_XDP socket (Linux 5.11+): the shard's own
//! `recvfrom`/`sendto` runs the queue's NAPI poll, in the shard's context,
//! instead of an interrupt, softirq or NAPI thread doing it on its behalf.
//!
//! Follows the kernel's Documentation/networking/napi.rst ("Busy polling",
//! "Preferred busy polling") and the AF_XDP busy-poll series (Björn Töpel,
//! v5.11: `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`):
//! * per socket: `SO_PREFER_BUSY_POLL` = 1, `SO_BUSY_POLL` = µs (any non-zero
//!   value arms `sk_can_busy_loop`; a non-blocking call polls once whatever
//!   it is), `SO_BUSY_POLL_BUDGET` = frames per NAPI poll;
//! * per interface (`napi_defer_hard_irqs`, `gro_flush_timeout`:
//!   [`crate::link::napi_tuning`]): after a busy poll the NAPI stays owned
//!   by the application, its interrupt masked, and only a watchdog timer of
//!   `gro_flush_timeout` hands it back to the interrupt path if the
//!   application stops polling (it went to sleep);
//! * the application then drives receive with `recvfrom(MSG_DONTWAIT)` (a
//!   blocking one is refused by AF_XDP) or `sendto`, which busy-polls too.
//!
//! A socket busy-polls only with a NAPI ID recorded on it: `sk_busy_loop`
//! does nothing without one (`napi_id < MIN_NAPI_ID`), and then neither
//! does `xsk_no_wakeup`, so the kicks keep waking the driver. Where the ID
//! comes from depends on the kernel:
//! * Linux 5.11 to 6.12: from the receiving queue's `xdp_rxq_info` at the
//!   first frame (`sk_mark_napi_id_once_xdp` in `xsk_rcv_check`), copy mode
//!   included, if the driver registered the rxq with its NAPI's ID;
//! * Linux 6.13 and later: "net: napi: Add napi_config" (86e25f40aa1e) moved
//!   the ID's assignment to `napi_enable`, after the drivers register their
//!   rxqs, so that copy read 0; "xsk: Bring back busy polling support"
//!   (5ef44b3cb43b) resolves the ID in `xsk_bind` instead, from the NAPI the
//!   driver linked to the queue with `netif_queue_set_napi` (`rxq->napi`),
//!   for zero-copy sockets only in 6.13, for copy mode too since
//!   b95ed5517354 (6.15, 6.14 stable). A driver that never links its queues
//!   gives no socket an ID: veth does not (drivers/net/veth.c has no
//!   `netif_queue_set_napi`, and no zero-copy either), with GRO on or off,
//!   so no AF_XDP socket on veth can busy-poll on these kernels.
//!
//! So the link reads `SO_INCOMING_NAPI_ID` right after the bind, where a
//! 6.13+ kernel has decided ([`probe_at_bind`]), and on older kernels again
//! once frames have arrived ([`probe`]), and reports
//! [`BusyPollState::Unavailable`] when it is still 0: the socket options
//! are cleared and the shard runs as with `--busy-poll off`.

use std::fmt;
use std::os::fd::RawFd;
use std::str::FromStr;

/// `--busy-poll off|auto|on`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BusyPollMode {
    /// Today's path: NAPI runs in softirq or its thread, the shard kicks
    /// the rings only when they ask (`XDP_USE_NEED_WAKEUP`).
    #[default]
    Off,
    /// Busy-poll where the queue has a NAPI ID; where it has none, say so
    /// (log, metric) and keep today's path.
    Auto,
    /// As `Auto`, but a queue without a NAPI ID is logged as an error.
    On,
}

impl FromStr for BusyPollMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(BusyPollMode::Off),
            "auto" => Ok(BusyPollMode::Auto),
            "on" => Ok(BusyPollMode::On),
            _ => Err(format!("unknown busy-poll mode {s:?}: expected off, auto or on")),
        }
    }
}

/// Busy-poll settings of one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyPollConfig {
    pub mode: BusyPollMode,
    /// `SO_BUSY_POLL`: how long a blocking call may spin. Our calls never
    /// block (one NAPI poll each); it must only be non-zero.
    pub usec: u32,
    /// `SO_BUSY_POLL_BUDGET`: frames per busy NAPI poll (the RX batch).
    pub budget: u16,
}

impl Default for BusyPollConfig {
    fn default() -> Self {
        BusyPollConfig { mode: BusyPollMode::Off, usec: 20, budget: 64 }
    }
}

/// Where a socket's busy polling stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusyPollState {
    /// Not asked for (`--busy-poll off`).
    Off,
    /// Socket options set; no frame has arrived yet to tell whether the
    /// queue has a NAPI ID. The shard keeps today's path meanwhile.
    Pending,
    /// The socket carries this NAPI ID: the shard busy-polls it.
    Active(u32),
    /// Frames arrived but the socket has no NAPI ID (the driver registers
    /// its RX queue without one), or the kernel refused the options: the
    /// socket options are cleared and the shard keeps today's path.
    Unavailable,
}

impl BusyPollState {
    /// Label value for the metrics and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            BusyPollState::Off => "off",
            BusyPollState::Pending => "pending",
            BusyPollState::Active(_) => "active",
            BusyPollState::Unavailable => "unavailable",
        }
    }

    pub fn is_active(self) -> bool {
        matches!(self, BusyPollState::Active(_))
    }
}

impl fmt::Display for BusyPollState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusyPollState::Active(id) => write!(f, "active (NAPI {id})"),
            s => f.write_str(s.as_str()),
        }
    }
}

fn setsockopt_int(fd: RawFd, opt: libc::c_int, v: libc::c_int) -> std::io::Result<()> {
    // SAFETY: `v` is a valid c_int for the kernel to read.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets the three socket options (`SO_BUSY_POLL` above
/// `net.core.busy_poll`'s default needs CAP_NET_ADMIN; the engine is root).
pub fn enable(fd: RawFd, cfg: &BusyPollConfig) -> Result<(), String> {
    let usec = cfg.usec.max(1).min(i32::MAX as u32) as libc::c_int;
    for (name, opt, v) in [
        ("SO_PREFER_BUSY_POLL", libc::SO_PREFER_BUSY_POLL, 1),
        ("SO_BUSY_POLL", libc::SO_BUSY_POLL, usec),
        ("SO_BUSY_POLL_BUDGET", libc::SO_BUSY_POLL_BUDGET, cfg.budget.max(1) as libc::c_int),
    ] {
        setsockopt_int(fd, opt, v).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// Clears them again: with `SO_BUSY_POLL` 0 the socket's calls never
/// busy-poll (`sk_can_busy_loop`) and its kicks wake the driver as before.
pub fn disable(fd: RawFd) {
    let _ = setsockopt_int(fd, libc::SO_BUSY_POLL, 0);
    let _ = setsockopt_int(fd, libc::SO_PREFER_BUSY_POLL, 0);
}

/// The NAPI ID the kernel recorded on the socket (`SO_INCOMING_NAPI_ID`),
/// 0 when none: then `sk_busy_loop` has nothing to poll.
pub fn napi_id(fd: RawFd) -> u32 {
    let mut v: libc::c_uint = 0;
    let mut len = std::mem::size_of::<libc::c_uint>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for the kernel to write.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_INCOMING_NAPI_ID,
            (&mut v as *mut libc::c_uint).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        v
    } else {
        0
    }
}

/// The state right after the bind: on Linux 6.13+ `xsk_bind` has set the
/// NAPI ID or never will; before, the first frame may still bring it.
pub fn probe_at_bind(napi_id: u32, kernel: Option<(u32, u32)>) -> BusyPollState {
    match (napi_id, kernel) {
        (id, _) if id != 0 => BusyPollState::Active(id),
        (_, Some(v)) if v >= (6, 13) => BusyPollState::Unavailable,
        _ => BusyPollState::Pending,
    }
}

/// The running kernel's (major, minor), from `uname`.
pub fn kernel_version() -> Option<(u32, u32)> {
    // SAFETY: a zeroed utsname is a valid value to pass.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is valid for the kernel to write.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let release: String = u.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8 as char).collect();
    parse_release(&release)
}

fn parse_release(r: &str) -> Option<(u32, u32)> {
    let mut it = r.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The state after `rx_frames` frames: a NAPI ID makes it active; frames
/// without one make it unavailable; no frames yet leave it pending.
pub fn probe(rx_frames: u64, napi_id: u32) -> BusyPollState {
    match (rx_frames, napi_id) {
        (_, id) if id != 0 => BusyPollState::Active(id),
        (0, _) => BusyPollState::Pending,
        _ => BusyPollState::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_reject_the_rest() {
        assert_eq!("off".parse(), Ok(BusyPollMode::Off));
        assert_eq!("auto".parse(), Ok(BusyPollMode::Auto));
        assert_eq!("on".parse(), Ok(BusyPollMode::On));
        assert!("yes".parse::<BusyPollMode>().is_err());
    }

    #[test]
    fn a_6_13_kernel_decides_at_the_bind() {
        assert_eq!(probe_at_bind(8193, Some((6, 18))), BusyPollState::Active(8193));
        assert_eq!(probe_at_bind(0, Some((6, 18))), BusyPollState::Unavailable);
        assert_eq!(probe_at_bind(0, Some((6, 13))), BusyPollState::Unavailable);
        assert_eq!(probe_at_bind(0, Some((6, 12))), BusyPollState::Pending);
        assert_eq!(probe_at_bind(0, None), BusyPollState::Pending);
        assert_eq!(parse_release("6.18.44-fc-v1045"), Some((6, 18)));
        assert_eq!(parse_release("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_release("x"), None);
        assert!(kernel_version().is_some());
    }

    #[test]
    fn probe_waits_for_frames_then_decides_on_the_napi_id() {
        assert_eq!(probe(0, 0), BusyPollState::Pending);
        assert_eq!(probe(5, 0), BusyPollState::Unavailable);
        assert_eq!(probe(5, 8193), BusyPollState::Active(8193));
        assert_eq!(probe(0, 8193), BusyPollState::Active(8193));
        assert_eq!(BusyPollState::Active(8193).to_string(), "active (NAPI 8193)");
        assert!(!BusyPollState::Unavailable.is_active());
    }

    #[test]
    fn socket_options_round_trip_on_a_plain_socket() {
        // The options are generic SOL_SOCKET ones: a UDP socket takes them
        // the same way an XSK does (unprivileged, SO_BUSY_POLL up to the
        // sysctl; root may set more).
        // SAFETY: plain socket(2); closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        assert!(fd >= 0);
        let cfg = BusyPollConfig { mode: BusyPollMode::On, usec: 0, budget: 16 };
        let r = enable(fd, &cfg);
        // SAFETY: reads into a c_int we own.
        let get = |opt| unsafe {
            let mut v: libc::c_int = -1;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&mut v as *mut libc::c_int).cast(), &mut len);
            v
        };
        if r.is_ok() {
            assert_eq!(get(libc::SO_PREFER_BUSY_POLL), 1);
            assert_eq!(get(libc::SO_BUSY_POLL), 1, "0 µs is raised to 1 so busy polling is armed");
            // (SO_BUSY_POLL_BUDGET cannot be read back: getsockopt does not
            // know it; setsockopt accepted it.)
            disable(fd);
            assert_eq!(get(libc::SO_BUSY_POLL), 0);
            assert_eq!(get(libc::SO_PREFER_BUSY_POLL), 0);
        } else {
            // Not root: the kernel wants CAP_NET_ADMIN for these.
            // SAFETY: geteuid has no preconditions.
            assert_ne!(unsafe { libc::geteuid() }, 0, "root was refused: {r:?}");
        }
        assert_eq!(napi_id(fd), 0, "nothing received: no NAPI ID");
        // SAFETY: our fd.
        unsafe { libc::close(fd) };
    }
}

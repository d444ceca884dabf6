//! The VIP's flag route for BGP: a host route (`blackhole VIP/32`, or
//! `/128`) in a kernel routing table of its own, written and removed over
//! rtnetlink (rtnetlink(7): `RTM_NEWROUTE` / `RTM_DELROUTE`, acknowledged).
//! BIRD's kernel protocol learns the table's routes and its BGP session
//! exports them (deploy/bird/floodgate-box.conf); no `ip rule` looks the
//! table up, so the route never forwards a packet: it only says "announce
//! this VIP". The routes carry their own protocol number
//! ([`RTPROT_FLOODGATE`]), so `ip route flush table T proto 210` (the
//! systemd unit's `ExecStopPost`) removes floodgate's routes and nothing
//! else. Used by the control thread only, never on the data path.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The `rtm_protocol` of floodgate's routes (`ip route ... proto 210`):
/// a number no routing daemon is known by (rtnetlink.h; iproute2's
/// rt_protos names 99 `openr`, 186-192 the IGPs); BIRD shows it as
/// `Kernel.source: 210`.
pub const RTPROT_FLOODGATE: u8 = 210;

const NLMSG_ERROR: u16 = 2;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RTA_DST: u16 = 1;
const RTA_TABLE: u16 = 15;
const RTN_BLACKHOLE: u8 = 6;
const RT_SCOPE_UNIVERSE: u8 = 0;
/// nlmsghdr (16 bytes) + rtmsg (12 bytes).
const HEADERS: usize = 16 + 12;

/// Adds (`RTM_NEWROUTE`, create or replace) or deletes (`RTM_DELROUTE`)
/// the flag route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Delete,
}

/// The rtnetlink request for `op` on `blackhole vip/len table table proto 210`.
pub fn request(op: Op, vip: IpAddr, table: u32, seq: u32) -> Vec<u8> {
    let (family, dst): (u8, Vec<u8>) = match vip {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    let (kind, flags) = match op {
        Op::Add => (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE),
        Op::Delete => (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK),
    };
    let mut m = Vec::with_capacity(HEADERS + 20 + 8);
    m.extend_from_slice(&[0; 4]); // nlmsg_len, below
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
                                              // rtmsg: family, dst_len, src_len, tos, table (the compat byte: the
                                              // table itself below 256, else RT_TABLE_UNSPEC and RTA_TABLE alone,
                                              // as iproute2 does), protocol, scope, type, flags.
    let compat = if table < 256 { table as u8 } else { 0 };
    let kind = if op == Op::Add { RTN_BLACKHOLE } else { 0 };
    m.extend_from_slice(&[family, (dst.len() * 8) as u8, 0, 0, compat, RTPROT_FLOODGATE, RT_SCOPE_UNIVERSE, kind]);
    m.extend_from_slice(&0u32.to_ne_bytes());
    attr(&mut m, RTA_DST, &dst);
    attr(&mut m, RTA_TABLE, &table.to_ne_bytes());
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m
}

/// Appends one rtattr (length, type, payload padded to 4 bytes).
fn attr(m: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    m.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(payload);
    m.resize(m.len().div_ceil(4) * 4, 0);
}

/// The kernel's answer to request `seq`: `Ok` for an acknowledgement, the
/// errno otherwise; `None` when `buf` holds no answer to it.
pub fn parse_ack(buf: &[u8], seq: u32) -> Option<Result<(), i32>> {
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().ok()?);
        let s = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().ok()?);
        if len < 16 || off + len > buf.len() {
            return None;
        }
        if kind == NLMSG_ERROR && s == seq && len >= 20 {
            let err = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().ok()?);
            return Some(if err == 0 { Ok(()) } else { Err(-err) });
        }
        off += len.div_ceil(4) * 4;
    }
    None
}

/// A NETLINK_ROUTE socket for the flag routes.
#[derive(Debug)]
pub struct VipRoutes {
    fd: OwnedFd,
    table: u32,
    seq: u32,
}

impl VipRoutes {
    /// Routes in kernel table `table` (1..=2^32-1, not main/local/default).
    pub fn new(table: u32) -> io::Result<VipRoutes> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh socket we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // A reply that never comes must not hang the control thread.
        let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
        // SAFETY: setsockopt with a timeval of the right size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Ok(VipRoutes { fd, table, seq: 0 })
    }

    pub fn table(&self) -> u32 {
        self.table
    }

    /// Puts the flag route of `vip` in the table (replacing one there).
    pub fn add(&mut self, vip: IpAddr) -> io::Result<()> {
        self.call(Op::Add, vip)
    }

    /// Removes the flag route of `vip`; one that is not there is no error.
    pub fn delete(&mut self, vip: IpAddr) -> io::Result<()> {
        match self.call(Op::Delete, vip) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }

    fn call(&mut self, op: Op, vip: IpAddr) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let msg = request(op, vip, self.table, seq);
        // SAFETY: a zeroed sockaddr_nl addresses the kernel (pid 0).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: msg and kernel outlive the call; lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &kernel as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 4096];
        // Answers to earlier requests that timed out may come first: skip them.
        for _ in 0..16 {
            // SAFETY: recv into our buffer of its own length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            match parse_ack(&buf[..n as usize], seq) {
                Some(Ok(())) => return Ok(()),
                Some(Err(errno)) => return Err(io::Error::from_raw_os_error(errno)),
                None => continue,
            }
        }
        Err(io::Error::other("no answer from the kernel to the route request"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The bytes `ip route replace blackhole 198.18.5.1/32 table 4210
    /// proto 210` sends (strace), less iproute2's sequence number.
    #[test]
    fn add_is_the_request_iproute2_sends() {
        let m = request(Op::Add, IpAddr::V4(Ipv4Addr::new(198, 18, 5, 1)), 4210, 7);
        let mut want = Vec::new();
        want.extend_from_slice(&44u32.to_ne_bytes());
        want.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        want.extend_from_slice(&0x505u16.to_ne_bytes()); // REQUEST | ACK | REPLACE | CREATE
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[2, 32, 0, 0, 0, 210, 0, 6, 0, 0, 0, 0]);
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(&[198, 18, 5, 1]);
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&15u16.to_ne_bytes());
        want.extend_from_slice(&4210u32.to_ne_bytes());
        assert_eq!(m, want);
        assert_eq!(m.len(), HEADERS + 16);
    }

    #[test]
    fn delete_names_the_route_by_prefix_table_and_protocol() {
        let m = request(Op::Delete, IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), 100, 1);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_DELROUTE);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), NLM_F_REQUEST | NLM_F_ACK);
        // family, /128, table 100 in the compat byte too, proto 210, any type
        assert_eq!(&m[16..24], &[libc::AF_INET6 as u8, 128, 0, 0, 100, 210, 0, 0]);
        assert_eq!(u16::from_ne_bytes([m[28], m[29]]), 20, "RTA_DST: header + 16 bytes");
        assert_eq!(u16::from_ne_bytes([m[30], m[31]]), RTA_DST);
        assert_eq!(m[32..48], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(m.len(), HEADERS + 20 + 8);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
    }

    fn answer(seq: u32, err: i32) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&36u32.to_ne_bytes());
        a.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        a.extend_from_slice(&0u16.to_ne_bytes());
        a.extend_from_slice(&seq.to_ne_bytes());
        a.extend_from_slice(&0u32.to_ne_bytes());
        a.extend_from_slice(&err.to_ne_bytes());
        a.extend_from_slice(&[0; 16]); // the request's header, echoed
        a
    }

    #[test]
    fn acks_and_errors_are_read_for_their_own_request() {
        assert_eq!(parse_ack(&answer(3, 0), 3), Some(Ok(())));
        assert_eq!(parse_ack(&answer(3, -libc::ESRCH), 3), Some(Err(libc::ESRCH)));
        assert_eq!(parse_ack(&answer(2, 0), 3), None, "an older request's answer");
        let mut two = answer(2, -libc::EEXIST);
        two.extend_from_slice(&answer(3, 0));
        assert_eq!(parse_ack(&two, 3), Some(Ok(())), "found behind an older one");
        assert_eq!(parse_ack(&answer(3, 0)[..18], 3), None, "truncated");
    }
}

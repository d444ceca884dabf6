//! Next-hop resolution for active opens: the MAC address of a neighbour,
//! read from the kernel's neighbour table (ARP for IPv4, NDP for IPv6).
//!
//! The engine does not run ARP or NDP itself: the XDP program passes those
//! frames to the kernel, which keeps the table current. A passive connection
//! needs none of this (replies go to the MAC the SYN came from); an active
//! open (the load generator, the load balancer's backend side) asks here for
//! the MAC of the next hop, after [`probe`] has made the kernel resolve it.
//!
//! Everything reads the network namespace of the *calling thread*
//! (`/proc/thread-self/net/arp`, `ip` run as a child of this thread), so a
//! thread that `setns`-ed into a namespace sees that namespace's table.
//! Not for the per-packet path: every call is a file read or a process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

/// A MAC address as the engine passes it around.
pub type Mac = [u8; 6];

/// The MAC address the kernel's neighbour table holds for `addr` on
/// `ifname`, if the entry is complete (reachable, stale, delay, probe or
/// permanent). `None` when there is no entry or it is incomplete or failed.
pub fn resolve(ifname: &str, addr: IpAddr) -> Option<Mac> {
    match addr {
        IpAddr::V4(a) => {
            let table = std::fs::read_to_string("/proc/thread-self/net/arp")
                .or_else(|_| std::fs::read_to_string("/proc/net/arp"))
                .ok()?;
            parse_proc_arp(&table, ifname, a)
        }
        IpAddr::V6(_) => {
            let out = Command::new("ip")
                .args(["-j", "neigh", "show", "dev", ifname, "to"])
                .arg(addr.to_string())
                .output()
                .ok()?;
            if !out.status.success() {
                return None;
            }
            parse_ip_json(&String::from_utf8_lossy(&out.stdout), addr)
        }
    }
}

/// Makes the kernel resolve `addr` on `ifname`: sends one empty UDP datagram
/// to its discard port (9) from a socket bound to the interface, which
/// starts ARP/NDP if the table has no usable entry. The datagram itself is
/// harmless (the neighbour answers ICMP port unreachable, or drops it).
pub fn probe(ifname: &str, addr: IpAddr) -> std::io::Result<()> {
    let local: SocketAddr = match addr {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local)?;
    bind_to_device(&sock, ifname)?;
    sock.send_to(&[], (addr, 9))?;
    Ok(())
}

/// [`resolve`], probing first if needed and polling the table every 10 ms
/// until `timeout`. `None` if the neighbour did not answer in time.
pub fn resolve_wait(ifname: &str, addr: IpAddr, timeout: Duration) -> Option<Mac> {
    if let Some(m) = resolve(ifname, addr) {
        return Some(m);
    }
    let end = Instant::now() + timeout;
    let mut last_probe: Option<Instant> = None;
    loop {
        // Re-probe every second: a failed entry needs a new datagram to retry.
        if last_probe.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            let _ = probe(ifname, addr);
            last_probe = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
        if let Some(m) = resolve(ifname, addr) {
            return Some(m);
        }
        if Instant::now() >= end {
            return None;
        }
    }
}

fn bind_to_device(sock: &UdpSocket, ifname: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let name = ifname.as_bytes();
    // SAFETY: setsockopt reads `name.len()` bytes from `name`.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// One line of `/proc/net/arp`:
/// `IP address  HW type  Flags  HW address  Mask  Device`; flag 0x2 (ATF_COM)
/// marks a complete entry.
fn parse_proc_arp(table: &str, ifname: &str, addr: Ipv4Addr) -> Option<Mac> {
    const ATF_COM: u32 = 0x2;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[5] != ifname || f[0].parse::<Ipv4Addr>().ok() != Some(addr) {
            continue;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & ATF_COM == 0 {
            return None;
        }
        return parse_mac(f[3]).filter(|m| *m != [0; 6]);
    }
    None
}

/// `ip -j neigh` output: `[{"dst":"fe80::1","dev":"eth0","lladdr":"02:..","state":["REACHABLE"]}]`.
fn parse_ip_json(json: &str, addr: IpAddr) -> Option<Mac> {
    // Objects are flat; split on '}' and look at each.
    for obj in json.split('}') {
        let Some(dst) = json_str(obj, "dst") else { continue };
        if dst.parse::<IpAddr>().ok() != Some(addr) {
            continue;
        }
        if obj.contains("\"FAILED\"") || obj.contains("\"INCOMPLETE\"") {
            return None;
        }
        return json_str(obj, "lladdr").and_then(parse_mac);
    }
    None
}

fn json_str<'a>(obj: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = obj.find(&pat)? + pat.len();
    let len = obj[start..].find('"')?;
    Some(&obj[start..start + len])
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(mac)
}

/// The MAC address of `ifname` in the calling thread's namespace
/// (`SIOCGIFHWADDR`), falling back to `/sys/class/net/IF/address`.
pub fn interface_mac(ifname: &str) -> Option<Mac> {
    ioctl_hwaddr(ifname).or_else(|| {
        std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).ok().and_then(|s| parse_mac(&s))
    })
}

fn ioctl_hwaddr(ifname: &str) -> Option<Mac> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: a zeroed ifreq is valid; the name is copied in NUL-terminated;
    // the socket is closed below.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, &b) in req.ifr_name.iter_mut().zip(bytes) {
            *d = b as libc::c_char;
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let rc = libc::ioctl(fd, libc::SIOCGIFHWADDR as _, &mut req as *mut libc::ifreq);
        libc::close(fd);
        if rc < 0 {
            return None;
        }
        let sa = req.ifr_ifru.ifru_hwaddr.sa_data;
        let mut mac = [0u8; 6];
        for (m, &b) in mac.iter_mut().zip(sa.iter()) {
            *m = b as u8;
        }
        Some(mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARP: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
198.18.0.2       0x1         0x2         aa:bb:cc:00:11:22     *        fg-s0
198.18.0.3       0x1         0x0         00:00:00:00:00:00     *        fg-s0
10.0.0.1         0x1         0x2         02:00:00:00:00:01     *        eth0
";

    #[test]
    fn proc_arp_complete_entries_only() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(parse_proc_arp(ARP, "fg-s0", a("198.18.0.2")), Some([0xaa, 0xbb, 0xcc, 0, 0x11, 0x22]));
        assert_eq!(parse_proc_arp(ARP, "fg-s0", a("198.18.0.3")), None, "incomplete");
        assert_eq!(parse_proc_arp(ARP, "fg-s0", a("10.0.0.1")), None, "other device");
        assert_eq!(parse_proc_arp(ARP, "eth0", a("10.0.0.1")), Some([2, 0, 0, 0, 0, 1]));
    }

    #[test]
    fn ip_json_neigh() {
        let j = r#"[{"dst":"fd00::1","dev":"fg-s0","lladdr":"02:00:00:00:00:09","state":["REACHABLE"]},{"dst":"fd00::2","dev":"fg-s0","state":["FAILED"]}]"#;
        assert_eq!(parse_ip_json(j, "fd00::1".parse().unwrap()), Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(parse_ip_json(j, "fd00::2".parse().unwrap()), None);
        assert_eq!(parse_ip_json(j, "fd00::3".parse().unwrap()), None);
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(parse_mac("02:00:00:00:00:0a\n"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:00"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:00"), None);
    }

    #[test]
    fn loopback_has_a_mac() {
        assert_eq!(interface_mac("lo"), Some([0; 6]));
        assert_eq!(interface_mac("no-such-if0"), None);
    }
}

//! Whether the served interface still exists, is up and has carrier, read
//! by the control thread (never on the data path) with two ioctls on a
//! datagram socket: the name of the ifindex the engine bound to
//! (`SIOCGIFNAME`, so a rename is followed and a re-created interface of the
//! same name, which has a new ifindex, counts as gone), then its flags
//! (`SIOCGIFFLAGS`: `IFF_UP` is the administrative state, `IFF_RUNNING` the
//! operational one, i.e. carrier; see netdevice(7)).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The interface as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// Exists, but down (`admin_up` false: `ip link set down`) or without
    /// carrier (a cable out, a veth whose peer is down).
    Down {
        admin_up: bool,
        carrier: bool,
    },
    /// The ifindex no longer exists (the interface was deleted or moved to
    /// another namespace): the kernel has unbound its AF_XDP sockets.
    Gone,
}

impl LinkState {
    /// Frames can flow.
    pub fn usable(&self) -> bool {
        *self == LinkState::Up
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkState::Up => "up",
            LinkState::Down { admin_up: false, .. } => "down",
            LinkState::Down { carrier: false, .. } => "up without carrier",
            LinkState::Down { .. } => "down",
            LinkState::Gone => "gone",
        })
    }
}

/// Reads one interface's state; holds its socket for the ioctls.
#[derive(Debug)]
pub struct IfWatch {
    fd: OwnedFd,
    ifindex: u32,
}

impl IfWatch {
    pub fn new(ifindex: u32) -> io::Result<IfWatch> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd owned by nobody else.
        Ok(IfWatch { fd: unsafe { OwnedFd::from_raw_fd(fd) }, ifindex })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The state now. An error other than "no such device" leaves the
    /// state unknown, reported as up (an ioctl hiccup must not end the
    /// process).
    pub fn state(&self) -> LinkState {
        // SAFETY: a zeroed ifreq is valid; the kernel writes the name
        // (NUL-terminated, IFNAMSIZ at most) and then reads it back.
        unsafe {
            let mut req: libc::ifreq = std::mem::zeroed();
            req.ifr_ifru.ifru_ifindex = self.ifindex as libc::c_int;
            if libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFNAME as _, &mut req as *mut libc::ifreq) < 0 {
                return match io::Error::last_os_error().raw_os_error() {
                    Some(libc::ENODEV) | Some(libc::ENXIO) => LinkState::Gone,
                    _ => LinkState::Up,
                };
            }
            if libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req as *mut libc::ifreq) < 0 {
                return match io::Error::last_os_error().raw_os_error() {
                    Some(libc::ENODEV) | Some(libc::ENXIO) => LinkState::Gone,
                    _ => LinkState::Up,
                };
            }
            let flags = req.ifr_ifru.ifru_flags as libc::c_int;
            let admin_up = flags & libc::IFF_UP != 0;
            let carrier = flags & libc::IFF_RUNNING != 0;
            if admin_up && carrier {
                LinkState::Up
            } else {
                LinkState::Down { admin_up, carrier }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_up_and_a_missing_ifindex_is_gone() {
        // Index 1 is the loopback of every network namespace, and is up
        // wherever tests run (the tests of this crate talk over it).
        let lo = IfWatch::new(1).unwrap();
        assert_eq!(lo.state(), LinkState::Up);
        // Interface indexes are allocated upwards from 1; this one is not.
        let none = IfWatch::new(i32::MAX as u32 - 7).unwrap();
        assert_eq!(none.state(), LinkState::Gone);
    }

    #[test]
    fn states_read_as_an_operator_says_them() {
        assert_eq!(LinkState::Down { admin_up: false, carrier: false }.to_string(), "down");
        assert_eq!(LinkState::Down { admin_up: true, carrier: false }.to_string(), "up without carrier");
        assert!(!LinkState::Gone.usable() && LinkState::Up.usable());
    }
}

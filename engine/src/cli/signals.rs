//! SIGINT/SIGTERM as readable bytes on a pipe (the self-pipe trick), so the
//! control thread waits for signals in the same mio poll as its sockets.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

static PIPE_WR: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe: one write(2) to a non-blocking pipe; errno kept.
    // SAFETY: errno location is thread-local and valid; write on our pipe.
    unsafe {
        let saved = *libc::__errno_location();
        let fd = PIPE_WR.load(Ordering::Relaxed);
        if fd >= 0 {
            let b = sig as u8;
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
        *libc::__errno_location() = saved;
    }
}

/// The read end of the signal pipe.
pub struct Signals {
    rd: OwnedFd,
    _wr: OwnedFd,
}

impl Signals {
    /// Routes `signals` to the pipe. One `Signals` per process.
    pub fn install(signals: &[libc::c_int]) -> io::Result<Signals> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two fds into `fds`.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fds owned by nobody else.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        PIPE_WR.store(wr.as_raw_fd(), Ordering::Relaxed);
        for &sig in signals {
            // SAFETY: a zeroed sigaction with our handler and an empty mask.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(Signals { rd, _wr: wr })
    }

    pub fn fd(&self) -> RawFd {
        self.rd.as_raw_fd()
    }

    /// The signals received since the last call.
    pub fn take(&self) -> Vec<libc::c_int> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading into our buffer from our non-blocking pipe.
            let n = unsafe { libc::read(self.rd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return out;
            }
            out.extend(buf[..n as usize].iter().map(|&b| b as libc::c_int));
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        PIPE_WR.store(-1, Ordering::Relaxed);
    }
}

/// The name of a signal, for logs.
pub fn name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

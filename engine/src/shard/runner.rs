//! The shard thread: one core, one AF_XDP socket (one NIC queue; two on a
//! two-armed proxy, the same queue of the front and the back interface:
//! [`crate::link::xdp::arms`]), one endpoint, one application, and the run
//! loop around [`super::step`].
//!
//! ```text
//!   loop {
//!       now = clock                        (once per turn)
//!       step(endpoint, link, app, now)     (RX up to a ring, frames handed over by
//!                                           other shards, app, timers, flush TX, refill)
//!       control commands (try_recv)        Drain | Stop | CookiesInFlight | App
//!       every 250 ms: a Snapshot to the control thread (try_send: never blocks)
//!       nothing received?      sched_yield (a NAPI thread may share the core;
//!                            not with preferred busy polling active)
//!       idle for BUSY_POLL?  sleep on mio: the XSK fd (RX ring non-empty) or the
//!                            waker (a command, or a frame another shard handed
//!                            over: [`super::handoff`]), until the next deadline
//!   }
//! ```
//!
//! With preferred busy polling active on the socket (`--busy-poll`,
//! [`crate::link::xdp::busy_poll`]), the turn's flush is the turn's one
//! system call and it runs the queue's NAPI poll itself, so there is no
//! kernel thread to yield to: the shard spins on its flushes for
//! [`BUSY_POLL`] after the last frame, then sleeps on mio exactly as
//! without (the interface's `gro_flush_timeout` hands the NAPI back to
//! interrupts meanwhile). While the socket's state is pending, each turn
//! asks the link once whether frames have shown it a NAPI ID.
//!
//! Each turn takes up to a whole RX ring of frames before it flushes, not
//! one 64-frame batch: a frame left on the RX ring is one the kernel may
//! have to drop when the ring fills (`kernel_rx_ring_full`), while a byte
//! taken into a connection's buffer is flow-controlled. Under load the turn
//! then moves what has arrived into the connections' buffers first, and the
//! flush sends what the TX ring takes; what it cannot take waits in those
//! buffers, the application stops reading when it cannot write, and the
//! peers' windows close instead of the RX ring overflowing. (Ten thousand
//! echo connections on the testbed overflowed the ring at 64 frames a turn:
//! each turn's flush could send far more than 64 frames, ACK-clocked.)
//!
//! The control thread talks to a shard only through crossbeam channels (and
//! wakes it with a `mio::Waker`); nothing on the data path takes a lock.
//! Each turn also stores the turn count in an atomic the control thread
//! reads as the shard's heartbeat (one relaxed store per turn, not per
//! frame); the sleep is bounded by the next snapshot, so an idle shard
//! still beats at least every [`SNAPSHOT_EVERY`].
//! An error the socket signals on poll (`EPOLLERR`) is read with `SO_ERROR`,
//! logged and counted. (A deleted interface is not one: the kernel sets
//! ENETDOWN on the socket but its poll does not report it; the control
//! thread's link watch catches that.)
//! A panic inside the shard is caught and reported, so the control thread
//! can stop the others and exit in order (detaching the XDP program).

use std::io;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::app::App;
use crate::link::napi_tuning::NapiValues;
use crate::link::xdp::arms::Arms;
use crate::link::xdp::{BindMode, BusyPollMode, BusyPollState, XdpLinkStats};
use crate::tcp::{Endpoint, Listener, ListenerCounts, Stats};
use crate::time::Instant;
use crate::wire;

use super::handoff::{Handoff, HandoffStats};
use super::step_with;

const XSK: Token = Token(0);
const WAKE: Token = Token(1);
/// The back link's socket (a two-armed shard).
const XSK_BACK: Token = Token(2);

/// How long a shard keeps busy-polling after its last received frame
/// before it sleeps on the socket.
pub const BUSY_POLL: Duration = Duration::from_micros(200);
/// The interface's settings while busy polling: two empty polls in a row
/// before the interrupt is re-armed, and a watchdog of the spin time
/// ([`BUSY_POLL`]), after which a socket whose thread went to sleep gets
/// its frames through the interrupt path again.
pub const BUSY_POLL_NAPI: NapiValues =
    NapiValues { defer_hard_irqs: 2, gro_flush_timeout: BUSY_POLL.as_nanos() as u64 };
/// Longest sleep (also the snapshot period).
pub const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);
/// Most application counters a snapshot carries (every application's must
/// fit: `app::tests::every_applications_counters_fit_a_snapshot`).
pub const MAX_APP_COUNTERS: usize = 64;

/// Orders from the control thread.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Stop accepting; let the connections in the table finish.
    Drain,
    /// Abort every remaining connection (RST) and end the thread.
    Stop,
    /// The XDP program answers SYNs with cookies now: expect cookie ACKs
    /// (`Endpoint::note_cookies_in_flight`). Sent when that starts and
    /// every second while it goes on.
    CookiesInFlight,
    /// For the application: the operator changed a setting (admin interface).
    App(crate::app::Order),
}

/// What a shard tells the control thread.
#[derive(Debug)]
pub enum Report {
    Snapshot(Box<Snapshot>),
    /// Draining and no connection left in the table.
    Drained(usize),
    /// The thread ended; `Some(message)` if it panicked.
    Exited(usize, Option<String>),
}

/// Counters an application exports, for the metrics: name, help, value.
pub trait AppStats {
    /// The application's name, for metric names (`http`, `echo`, `sink`).
    fn name(&self) -> &'static str;
    fn for_each_stat(&self, f: &mut dyn FnMut(&'static str, &'static str, u64));
    /// Per-backend figures (the proxy): pool index, address, figures.
    fn for_each_backend(&self, _f: &mut dyn FnMut(usize, std::net::SocketAddr, &BackendStats)) {}
}

use crate::app::proxy::BackendStats;

/// One application counter.
#[derive(Clone, Copy, Debug, Default)]
pub struct AppCounter {
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
}

/// A shard's state at one instant: a plain copy, sent to the control thread.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Per backend (the proxy): pool, address, figures.
    pub backends: Vec<(usize, std::net::SocketAddr, BackendStats)>,
    /// Per listener: "address:port" (`*:port` for any address), figures.
    pub listeners: Vec<(String, ListenerCounts)>,
    pub shard: usize,
    pub queue: u32,
    pub cpu: Option<usize>,
    pub bind_mode: BindMode,
    pub stats: Stats,
    pub wire_errors: [u64; wire::Error::ALL.len()],
    pub not_tcp: u64,
    pub link: XdpLinkStats,
    /// The back link's counters (a two-armed shard, `--backend-iface`).
    pub back_link: Option<XdpLinkStats>,
    /// Connections in the table (every state but TIME-WAIT).
    pub connections: usize,
    pub half_open: u32,
    pub time_wait: usize,
    pub connection_capacity: usize,
    pub time_wait_capacity: usize,
    pub buffers_free: usize,
    pub listening: bool,
    pub app_name: &'static str,
    pub app: [AppCounter; MAX_APP_COUNTERS],
    pub app_len: usize,
    /// Run-loop turns, and sleeps on the socket.
    pub turns: u64,
    pub sleeps: u64,
    /// `sched_yield` calls of the spinning shard (0 while busy polling).
    pub yields: u64,
    /// Microseconds (wall time) of the turns that moved frames (received,
    /// handed over or sent): the shard's work, without its spinning and
    /// sleeping.
    pub work_us: u64,
    /// Preferred busy polling of the socket.
    pub busy_poll: BusyPollState,
    /// Frames passed between shards (zero without a mesh).
    pub handoff: HandoffStats,
}

/// A listener's label: `198.18.0.1:80`, `[2001:db8::1]:80`, `*:80`.
fn listener_name(l: &Listener) -> String {
    match l.addr.map(|a| a.to_ip()) {
        Some(a) => std::net::SocketAddr::new(a, l.port).to_string(),
        None => format!("*:{}", l.port),
    }
}

impl Snapshot {
    /// Every system call the shard made on its data path: the link's kicks
    /// and busy polls, its sleeps (epoll_wait) and its yields.
    pub fn syscalls(&self) -> u64 {
        self.link.tx_wakeups + self.link.fill_wakeups + self.link.busy_polls + self.sleeps + self.yields
    }
}

impl Snapshot {
    pub fn app_counters(&self) -> &[AppCounter] {
        &self.app[..self.app_len]
    }

    /// Shard `shard` with nothing counted yet (tests build on it).
    #[cfg(test)]
    pub(crate) fn blank(shard: usize) -> Snapshot {
        Snapshot {
            backends: Vec::new(),
            listeners: Vec::new(),
            shard,
            queue: shard as u32,
            cpu: None,
            bind_mode: BindMode::Copy,
            stats: Stats::default(),
            wire_errors: [0; wire::Error::ALL.len()],
            not_tcp: 0,
            link: XdpLinkStats::default(),
            back_link: None,
            connections: 0,
            half_open: 0,
            time_wait: 0,
            connection_capacity: 0,
            time_wait_capacity: 0,
            buffers_free: 0,
            listening: false,
            app_name: "proxy",
            app: [AppCounter::default(); MAX_APP_COUNTERS],
            app_len: 0,
            turns: 0,
            sleeps: 0,
            yields: 0,
            work_us: 0,
            busy_poll: BusyPollState::Off,
            handoff: HandoffStats::default(),
        }
    }
}

/// The control thread's end of one shard.
pub struct ShardHandle {
    pub index: usize,
    commands: Sender<Command>,
    waker: Arc<Waker>,
    heartbeat: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ShardHandle {
    /// Sends a command and wakes the shard if it sleeps.
    pub fn send(&self, c: Command) {
        let _ = self.commands.send(c);
        let _ = self.waker.wake();
    }

    /// The shard's turns so far: it moves at least every [`SNAPSHOT_EVERY`]
    /// while the shard is alive, busy or idle.
    pub fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Ordering::Relaxed)
    }

    /// Waits for the thread to end.
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where and how a shard runs.
#[derive(Clone, Debug)]
pub struct ShardSpec {
    pub index: usize,
    /// Pin the thread to this CPU (`None`: leave it to the scheduler).
    pub cpu: Option<usize>,
    /// The shared zero of every shard's clock (`floodgate serve`: the boot,
    /// `cli::boot::clock_zero`).
    pub epoch: std::time::Instant,
    /// What `--busy-poll` asked for (the link knows what it got).
    pub busy_poll: BusyPollMode,
}

/// Starts a shard thread over `link`. `make` runs on the new thread, after
/// pinning, so the endpoint's and the application's preallocated tables
/// are first touched on the shard's own core (and NUMA node). `handoff`:
/// the shard's ends of the mesh, when frames may land on the wrong shard
/// (the proxy on several queues).
pub fn spawn<A, F>(
    spec: ShardSpec,
    link: Arms,
    handoff: Option<Handoff>,
    make: F,
    reports: Sender<Report>,
) -> io::Result<ShardHandle>
where
    A: App + AppStats,
    F: FnOnce(Instant) -> (Endpoint, A) + Send + 'static,
{
    let poll = Poll::new()?;
    let fd: RawFd = link.front.raw_fd();
    poll.registry().register(&mut SourceFd(&fd), XSK, Interest::READABLE)?;
    if let Some(back) = link.back() {
        poll.registry().register(&mut SourceFd(&back.raw_fd()), XSK_BACK, Interest::READABLE)?;
    }
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    if let Some(h) = &handoff {
        h.own_bell().set_waker(waker.clone());
    }
    let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
    let heartbeat = Arc::new(AtomicU64::new(0));
    let beat = heartbeat.clone();
    let index = spec.index;
    let thread = std::thread::Builder::new().name(format!("fg-shard-{index}")).spawn(move || {
        let reports2 = reports.clone();
        let result = catch_unwind(AssertUnwindSafe(move || {
            if let Some(cpu) = spec.cpu {
                if let Err(e) = pin_to_cpu(cpu) {
                    tracing::warn!(shard = index, cpu, "cannot pin the shard thread: {e}");
                }
            }
            let now = clock(spec.epoch);
            let (ep, app) = make(now);
            let mut s = Shard {
                spec,
                link,
                handoff,
                ep,
                app,
                poll,
                commands: cmd_rx,
                reports,
                turns: 0,
                sleeps: 0,
                yields: 0,
                work_us: 0,
                beat,
            };
            s.run();
        }));
        let panic = result.err().map(|e| {
            e.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into())
        });
        let _ = reports2.send(Report::Exited(index, panic));
    })?;
    Ok(ShardHandle { index, commands: cmd_tx, waker, heartbeat, thread: Some(thread) })
}

/// `now` on the engine's clock: microseconds since the shared epoch.
pub fn clock(epoch: std::time::Instant) -> Instant {
    Instant::from_micros(epoch.elapsed().as_micros() as u64)
}

struct Shard<A> {
    spec: ShardSpec,
    link: Arms,
    handoff: Option<Handoff>,
    ep: Endpoint,
    app: A,
    poll: Poll,
    commands: Receiver<Command>,
    reports: Sender<Report>,
    turns: u64,
    sleeps: u64,
    yields: u64,
    work_us: u64,
    beat: Arc<AtomicU64>,
}

impl<A: App + AppStats> Shard<A> {
    fn run(&mut self) {
        if self.spec.busy_poll != BusyPollMode::Off && self.link.front.busy_poll() != BusyPollState::Pending {
            // Decided at the bind (zero-copy on Linux 6.13+, or refused).
            self.report_busy_poll(self.link.front.busy_poll());
        }
        let mut events = Events::with_capacity(4);
        let mut last_rx = clock(self.spec.epoch);
        let mut next_snapshot = last_rx;
        let mut draining = false;
        let mut drained_reported = false;
        loop {
            let now = clock(self.spec.epoch);
            let budget = self.link.rx_ring();
            let sent = self.link.tx_frames();
            let rx = step_with(&mut self.ep, &mut self.link, &mut self.app, now, budget, self.handoff.as_mut());
            if rx > 0 || self.link.tx_frames() != sent {
                // One more clock read, in turns that did something only.
                self.work_us += (clock(self.spec.epoch) - now).as_micros() as u64;
            }
            self.turns += 1;
            self.beat.store(self.turns, Ordering::Relaxed);
            if rx > 0 {
                last_rx = now;
            }
            if let Some(state) = self.link.front.probe_busy_poll() {
                self.report_busy_poll(state);
                // The control thread sets the interface up for it (or not).
                self.send_snapshot();
            }
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Drain) => {
                        if !draining {
                            tracing::debug!(shard = self.spec.index, "draining");
                        }
                        self.ep.stop_listening();
                        draining = true;
                    }
                    Ok(Command::CookiesInFlight) => self.ep.note_cookies_in_flight(now),
                    Ok(Command::App(order)) => self.app.order(&mut self.ep, now, &order),
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return self.stop(now),
                    Err(TryRecvError::Empty) => break,
                }
            }
            if draining && !drained_reported && self.ep.connections() == 0 {
                drained_reported = true;
                let _ = self.reports.try_send(Report::Drained(self.spec.index));
            }
            if now >= next_snapshot {
                self.send_snapshot();
                next_snapshot = now + SNAPSHOT_EVERY;
            }
            if now - last_rx < BUSY_POLL {
                if rx == 0 && !self.link.front.busy_poll().is_active() {
                    // Nothing came: let whatever shares this core run first.
                    // With threaded NAPI that is the kernel thread doing our
                    // own receive (XDP, the AF_XDP copy); spinning past it
                    // only delays the frames we wait for. (Busy polling, the
                    // flush just ran that receive itself.)
                    self.yields += 1;
                    std::thread::yield_now();
                }
                continue;
            }
            // Idle: sleep until a frame arrives, a command comes, a timer
            // is due or the next snapshot.
            let mut wake_at = next_snapshot;
            for d in [self.ep.next_deadline(), self.app.next_tick()].into_iter().flatten() {
                wake_at = wake_at.min(d);
            }
            let mut timeout = wake_at - clock(self.spec.epoch);
            if self.link.tx_outstanding() > 0 {
                // Completions are not signalled on the fd: come back soon.
                timeout = timeout.min(Duration::from_millis(1));
            }
            if timeout.is_zero() {
                continue;
            }
            // The flag up, then the rings' last look: a frame handed over
            // after this wakes us (`handoff::Doorbell`).
            if self.handoff.as_ref().is_some_and(|h| !h.may_sleep()) {
                continue;
            }
            self.sleeps += 1;
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!(shard = self.spec.index, "poll: {e}");
                }
            }
            if let Some(h) = &self.handoff {
                h.awake();
            }
            // A frame or a command: busy-poll again. A timeout: one turn
            // for the timers, then back to sleep.
            if !events.is_empty() {
                last_rx = clock(self.spec.epoch);
            }
            if events.iter().any(|e| e.token() == XSK && e.is_error()) {
                if let Some(e) = self.link.front.take_socket_error() {
                    tracing::error!(shard = self.spec.index, iface = self.link.front.ifname(), "AF_XDP socket: {e}");
                }
            }
            if events.iter().any(|e| e.token() == XSK_BACK && e.is_error()) {
                if let Some(back) = self.link.back_mut() {
                    if let Some(e) = back.take_socket_error() {
                        tracing::error!(shard = self.spec.index, iface = back.ifname(), "AF_XDP socket: {e}");
                    }
                }
            }
        }
    }

    fn report_busy_poll(&self, state: BusyPollState) {
        let (index, iface, queue) = (self.spec.index, self.link.front.ifname(), self.link.front.queue());
        match state {
            BusyPollState::Active(napi) => {
                tracing::info!(shard = index, iface, queue, napi, "preferred busy polling active")
            }
            BusyPollState::Unavailable if self.spec.busy_poll == BusyPollMode::On => tracing::error!(
                shard = index,
                iface,
                queue,
                "busy polling asked for (--busy-poll on) but the socket has no NAPI ID: the driver does not \
                 link this RX queue to its NAPI (veth never does; Linux 6.13 only for zero-copy); serving \
                 without busy polling"
            ),
            BusyPollState::Unavailable => tracing::warn!(
                shard = index,
                iface,
                queue,
                "busy polling unavailable: the socket has no NAPI ID (the driver does not link this RX queue \
                 to its NAPI; veth never does); serving without it"
            ),
            BusyPollState::Off | BusyPollState::Pending => {}
        }
    }

    /// Aborts what is left, pushes the RSTs out, sends the last snapshot.
    fn stop(&mut self, now: Instant) {
        let mut handles = Vec::with_capacity(self.ep.connections());
        self.ep.for_each_connection(|h, _, _| handles.push(h));
        let aborted = handles.len();
        for h in handles {
            let _ = self.ep.abort(h);
        }
        step_with(&mut self.ep, &mut self.link, &mut self.app, now, 0, None);
        let end = std::time::Instant::now() + Duration::from_millis(200);
        while self.link.tx_outstanding() > 0 && std::time::Instant::now() < end {
            crate::link::Link::flush(&mut self.link);
            std::thread::sleep(Duration::from_micros(200));
        }
        if aborted > 0 {
            tracing::info!(shard = self.spec.index, aborted, "aborted the connections left after the drain");
        }
        self.send_snapshot();
    }

    fn send_snapshot(&mut self) {
        let mut app = [AppCounter::default(); MAX_APP_COUNTERS];
        let mut app_len = 0;
        self.app.for_each_stat(&mut |name, help, value| {
            if app_len < MAX_APP_COUNTERS {
                app[app_len] = AppCounter { name, help, value };
                app_len += 1;
            }
        });
        // Empty (no allocation) but for the proxy; once per snapshot, off
        // the packet path.
        let mut backends = Vec::new();
        self.app.for_each_backend(&mut |pool, addr, st| backends.push((pool, addr, *st)));
        let listeners = self.ep.listeners().iter().map(|l| (listener_name(l), l.counts)).collect();
        let s = Snapshot {
            backends,
            listeners,
            shard: self.spec.index,
            queue: self.link.front.queue(),
            cpu: self.spec.cpu,
            bind_mode: self.link.front.bind_mode(),
            stats: self.ep.stats,
            wire_errors: self.ep.wire_errors,
            not_tcp: self.ep.not_tcp,
            link: self.link.front.stats(),
            back_link: self.link.back().map(|b| b.stats()),
            connections: self.ep.connections(),
            half_open: self.ep.half_open(),
            time_wait: self.ep.time_wait(),
            connection_capacity: self.ep.connection_capacity(),
            time_wait_capacity: self.ep.time_wait_capacity(),
            buffers_free: self.ep.buffers_free(),
            listening: self.ep.is_listening(),
            app_name: self.app.name(),
            app,
            app_len,
            turns: self.turns,
            work_us: self.work_us,
            sleeps: self.sleeps,
            yields: self.yields,
            busy_poll: self.link.front.busy_poll(),
            handoff: self.handoff.as_ref().map(|h| h.stats).unwrap_or_default(),
        };
        // Never block the data path on a slow control thread.
        let _ = self.reports.try_send(Report::Snapshot(Box::new(s)));
    }
}

/// Pins the calling thread to `cpu` (sched_setaffinity on the thread).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays in bounds (checked).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("CPU {cpu} out of range")));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity writes into the set we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..8 * std::mem::size_of::<libc::cpu_set_t>()).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

//! A process started in one of the testbed's namespaces, with its output
//! kept for the assertions and for the log of a failing test; stopped
//! (SIGTERM, then SIGKILL after 3 s) when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `ip netns exec NS ARGS...`.
pub fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

pub struct Proc {
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `args` in `ns` with `RUST_LOG=info`; stdout and stderr kept.
    pub fn spawn(ns: &str, args: &[&str]) -> Proc {
        let mut child = in_ns(ns, args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let l = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    l.lock().unwrap().push(line);
                }
            });
        }
        Proc { child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Bounded wait until a line of its output contains `what`.
    pub fn wait_for(&mut self, what: &str, within: Duration) {
        let end = Instant::now() + within;
        while !self.log().contains(what) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("exited with {st} before {what:?}:\n{}", self.log());
            }
            assert!(Instant::now() < end, "no {what:?} within {within:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child (ip netns exec execs the command).
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Bounded wait for the exit; its status.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let end = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(Instant::now() < end, "still running after {within:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the process ends without a word (its sockets close as the
    /// kernel closes them).
    pub fn kill(&mut self) {
        super::kill_and_reap(&mut self.child);
    }

    /// SIGTERM, then SIGKILL after 3 s (nginx's master ends its workers).
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        // FG_TEST_LOGS=1 prints the log of a passing test's processes too.
        if std::thread::panicking() || std::env::var_os("FG_TEST_LOGS").is_some() {
            eprintln!("process log:\n{}", self.log());
        }
    }
}

//! The root tests' own harness (tests/xdp_common): a command that hangs is
//! killed with everything it started, and reported, within its bound.

mod xdp_common;

use std::process::Command;
use std::time::{Duration, Instant};

use xdp_common::{kill_and_reap, sh_within};

#[test]
fn a_hanging_command_and_its_children_are_killed_at_the_bound() {
    let marker = format!("floodgate-harness-{}", std::process::id());
    let t0 = Instant::now();
    // The inner shell leaves the process group (setsid), as `timeout` does,
    // and ignores SIGTERM: only the tree walk and SIGKILL end it.
    let script = format!("echo started; setsid sh -c 'trap \"\" TERM; sleep 600; echo {marker}' & trap '' TERM; sleep 600");
    let (ok, out) = sh_within(Command::new("sh").args(["-c", &script]), Duration::from_secs(1));
    let took = t0.elapsed();
    assert!(!ok, "{out}");
    assert!(out.starts_with("started"), "the output so far is kept: {out}");
    assert!(out.contains("killed: still running after 1s"), "{out}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    std::thread::sleep(Duration::from_millis(200));
    let (_, ps) = sh_within(Command::new("ps").args(["-eo", "args"]), Duration::from_secs(10));
    let detached: Vec<&str> = ps.lines().filter(|l| l.contains(&marker) && l.starts_with("sh -c")).collect();
    assert!(detached.is_empty(), "the detached child was killed too: {detached:?}");
}

#[test]
fn a_command_within_its_bound_reports_its_status_and_output() {
    let (ok, out) = sh_within(Command::new("sh").args(["-c", "echo out; echo err >&2"]), Duration::from_secs(10));
    assert!(ok);
    assert_eq!(out, "out\nerr\n");
    let (ok, _) = sh_within(Command::new("sh").args(["-c", "exit 3"]), Duration::from_secs(10));
    assert!(!ok);
    let (ok, out) = sh_within(&mut Command::new("/nonexistent/floodgate-harness"), Duration::from_secs(10));
    assert!(!ok && out.contains("cannot run"), "{out}");
}

#[test]
fn kill_and_reap_ends_a_child_that_ignores_sigterm() {
    let mut child = Command::new("sh").args(["-c", "trap '' TERM; sleep 600"]).spawn().unwrap();
    let t0 = Instant::now();
    kill_and_reap(&mut child);
    assert!(child.try_wait().unwrap().is_some(), "reaped");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

//! The root tests' own harness (tests/xdp_common, deploy/testbed.sh): a
//! command that hangs is killed with everything it started, and reported,
//! within its bound; the testbed comes up IPv4-only where IPv6 is off.

mod xdp_common;

use std::process::Command;
use std::time::{Duration, Instant};

use xdp_common::{kill_and_reap, repo, require_root, sh, sh_within, TestbedLock};

#[test]
fn a_hanging_command_and_its_children_are_killed_at_the_bound() {
    let marker = format!("floodgate-harness-{}", std::process::id());
    let t0 = Instant::now();
    // The inner shell leaves the process group (setsid), as `timeout` does,
    // and ignores SIGTERM: only the tree walk and SIGKILL end it.
    let script =
        format!("echo started; setsid sh -c 'trap \"\" TERM; sleep 600; echo {marker}' & trap '' TERM; sleep 600");
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

/// deploy/testbed.sh on namespaces whose new interfaces get no IPv6 (as on
/// a kernel booted with ipv6.disable=1): it says so and brings the IPv4
/// testbed up rather than failing.
#[test]
fn the_testbed_comes_up_ipv4_only_where_ipv6_is_off() {
    if !require_root("harness::the_testbed_comes_up_ipv4_only_where_ipv6_is_off") {
        return;
    }
    let _lock = TestbedLock::take();
    let testbed = |arg: &str| sh(Command::new(repo().join("deploy/testbed.sh")).arg(arg).env("FG_TESTBED_NS", "fgq"));
    struct Down<F: Fn(&str) -> (bool, String)>(F);
    impl<F: Fn(&str) -> (bool, String)> Drop for Down<F> {
        fn drop(&mut self) {
            let _ = (self.0)("down");
        }
    }
    let _down = Down(testbed);
    for ns in ["fgq-srv", "fgq-cli"] {
        let _ = sh(Command::new("ip").args(["netns", "add", ns]));
        let (ok, out) = sh(Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-w"])
            .args(["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]));
        assert!(ok, "{out}");
    }
    let (ok, out) = testbed("up");
    assert!(ok, "testbed.sh up without IPv6:\n{out}");
    assert!(out.contains("IPv4 only"), "it says so:\n{out}");
    let (_, addrs) = sh(Command::new("ip").args(["-n", "fgq-cli", "addr", "show", "dev", "fg-c0"]));
    assert!(addrs.contains("198.18.0.2/24") && addrs.contains("198.18.0.73/24"), "{addrs}");
    assert!(!addrs.contains("2001:db8"), "{addrs}");
    assert!(addrs.contains("LOWER_UP"), "the pair is up: {addrs}");
    let (_, srv) = sh(Command::new("ip").args(["-n", "fgq-srv", "addr", "show", "dev", "fg-s0"]));
    assert!(srv.contains("198.18.0.1/24") && !srv.contains("2001:db8"), "{srv}");
}

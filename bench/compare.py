#!/usr/bin/env python3
"""floodgate against the Linux kernel stack, side by side on the testbed.

Runs the same loads, alternating A/B for several rounds, against floodgate
(HTTP on 198.18.0.1:80, one shard pinned to one core) and against nginx from
Debian (one worker pinned to the same core, same response body, port 8080 of
the same address, which the XDP program passes to the kernel), with the same
clients in the fgb-cli namespace (the benchmark's own testbed, FG_TESTBED_NS=fgb,
so a demo left running by deploy/run-testbed.sh in fg-srv/fg-cli is untouched):

  - CPS: wrk with `Connection: close`, and floodgate-load cps
  - keep-alive RPS: wrk, and floodgate-load rps with 64 and with 256
    connections
  - SYN-ACKs per second under floodgate-load synflood: floodgate (by
    default: its XDP program answers with the engine's cookies once the flood
    spends a shard's half-open budget; and with --xdp-syn-cookies off, every
    SYN answered by the shard), the kernel (SYN cookies always on), and two
    stateless reflectors as the ceiling: XDP_TX in the XDP program, and
    AF_XDP in place on floodgate's link
  - server CPU time per connection: the server process's, from
    /proc/PID/stat, and the whole server core's (process, softirq and the
    kernel threads that receive for it), from /proc/stat

Where the receive work runs (--rx-mode). A veth pair runs the receiving
side's work on the *sending* core: the peer's XDP program (inside veth's
NAPI poll) and, without XDP, the whole kernel TCP receive path (netif_rx
softirq). Left so (`sender`), each server gets its receive work done on the
client's core, and pays for the client's. `own` (the default) puts every
receiver's work on its own core, as a NIC whose queue interrupt is affined
to the serving core would: RPS steers the kernel stack's receive to the
receiver's core (softirq there), and veth's NAPI, where XDP and AF_XDP
receive run, becomes a kernel thread (threaded NAPI) pinned to that core.
`busy-poll` is `own` plus a third server in the same rounds: floodgate with
`--busy-poll on` (preferred busy polling of its AF_XDP socket); the report
adds its row, which mode its shard got (`floodgate_shard_info{busy_poll}`:
on veth, whose queues are not linked to their NAPI, `unavailable` on Linux 6.13+)
and each floodgate's system calls per received frame.

Beside the figures: the CPU model (lscpu), the steal time of the run (from
/proc/stat: other guests on the host) and the load average (other work on
this machine).

--family 6 runs the same over IPv6: 2001:db8::1 instead of 198.18.0.1 (both
servers, every client; floodgate-load's sources follow the target), the
results written as compare-v6.*; the XDP_TX reflector answers IPv6 SYNs
too (reflector.bpf.c). --family 4,6 runs both in the same rounds: each
server listens on both addresses, every load runs over IPv4 and then over
IPv6 against the same server process, and the report (compare-v46.*) puts
the IPv6 rows under the IPv4 ones with a table of IPv6 against IPv4 per
server; the reflector ceilings are then measured over IPv4.

Prints a table of medians and ratios and writes it as Markdown, plus a PNG
plot (gnuplot), into the results folder. Every load is bounded in time.
Needs root; the script brings its testbed up (and down again) itself.
"""

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTBED_NS = "fgb"
SRV, CLI = f"{TESTBED_NS}-srv", f"{TESTBED_NS}-cli"
VIP = "198.18.0.1"
# VIP as a URL host or socket address (brackets for IPv6); --family sets both.
HOST = VIP
BODY = "Hello, World!"
SERVER_CPU = 0
CLIENT_CPU = 1


def sh(cmd, check=True, capture=True, timeout=None):
    r = subprocess.run(cmd, shell=True, text=True, capture_output=capture, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stdout}\n{r.stderr}")
    return r.stdout if capture else ""


def ns(name, cmd):
    return f"ip netns exec {name} {cmd}"


def cpu_ticks(pid):
    """utime + stime of a process and its threads, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def core_ticks(cpu):
    """Busy (non-idle, non-iowait) ticks of one core, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f[0] == f"cpu{cpu}":
            v = [int(x) for x in f[1:9]]
            return sum(v) - v[3] - v[4]
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


def wait_gone(name, timeout=30):
    """Waits (bounded) until no process is named `name`: the XDP program of
    a stopping server or reflector is detached only when it has exited."""
    deadline = time.time() + timeout
    while time.time() < deadline and subprocess.run(f"pgrep -x {name}", shell=True,
                                                    capture_output=True).returncode == 0:
        time.sleep(0.2)


def ticks_per_sec():
    return os.sysconf(os.sysconf_names["SC_CLK_TCK"])


class Server:
    """A server process in fg-srv whose CPU time we can read."""

    def __init__(self, name, cmd, port, pid_of=None, label=None):
        self.name, self.cmd, self.port, self.pid_of = name, cmd, port, pid_of
        self.label = label or name
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(ns(SRV, self.cmd), shell=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=os.setsid)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.proc.stderr.read()}")
            r = subprocess.run(ns(CLI, f"curl -s -m 1 http://{HOST}:{self.port}/"), shell=True,
                               capture_output=True, text=True)
            if r.stdout == BODY:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer on port {self.port}")

    def pid(self):
        return self.pid_of() if self.pid_of else self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # The wrapper shell exits first; wait for the server itself (floodgate
        # drains, then detaches its XDP program).
        wait_gone(self.name)


def nginx_conf(tmp, both=False):
    conf = tmp / "nginx.conf"
    (tmp / "body").write_text(BODY)
    conf.write_text(f"""
worker_processes 1;
worker_cpu_affinity {1 << SERVER_CPU:b};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 65536; multi_accept on; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen {HOST}:8080 reuseport backlog=65535;{f'''
        listen [{V6_VIP}]:8080 reuseport backlog=65535;''' if both else ""}
        location / {{ default_type text/plain; return 200 "{BODY}"; }}
    }}
}}
""")
    return conf


def nginx_worker_pid(tmp):
    master = int((tmp / "nginx.pid").read_text().strip())
    kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(kids[0])


def run_wrk(port, seconds, conns, close):
    header = "-H 'Connection: close'" if close else ""
    out = sh(ns(CLI, f"taskset -c {CLIENT_CPU} wrk -t1 -c{conns} -d{seconds}s {header} http://{HOST}:{port}/"),
             timeout=seconds + 30)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = sum(int(x) for x in errors.groups()) if errors else 0
    return {"rate": rps, "errors": errs + (int(non2xx.group(1)) if non2xx else 0)}


def cpu_totals():
    """(steal, all) ticks summed over the CPUs, from /proc/stat."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()
    v = [int(x) for x in f[1:9]]
    return v[7], sum(v)


def fg_counters():
    """floodgate's own counters that show where its kernel crossings go."""
    out = sh(ns(SRV, "curl -s -m 2 http://127.0.0.1:9100/metrics"), check=False)
    got = {"busy_poll": sorted(set(re.findall(r'^floodgate_shard_info\{[^}]*busy_poll="(\w+)"', out, re.M)))}
    for key in ["link_rx_frames", "link_tx_wakeups", "link_fill_wakeups", "link_busy_polls", "shard_sleeps",
                "shard_yields", "shard_syscalls", "shard_turns"]:
        got[key] = sum(int(float(m)) for m in re.findall(
            rf"^floodgate_{key}_total(?:{{[^}}]*}})? (\S+)$", out, re.M))
    return got


def run_load(mode, port, seconds, extra=""):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        sh(ns(CLI, f"{ROOT}/target/release/floodgate-load {mode} --iface fg-c0 --target {HOST}:{port} "
                   f"--cpus {CLIENT_CPU} --duration {seconds} --json {f.name} {extra}"), timeout=seconds + 60)
        j = json.loads(Path(f.name).read_text())
    if mode == "synflood":
        return {"rate": j["synacks_per_sec"], "errors": 0}
    rate = j["connects_per_sec"] if mode == "cps" else j["responses_per_sec"]
    return {"rate": rate, "errors": j["connect_errors"] + j["resets"] + j["timeouts"] + j["bad_responses"],
            "p99_us": j["latency_us"]["p99"]}


REFLECTORS = ["xdp-tx", "af-xdp"]
LOADS = ["cps-wrk", "cps", "rps-wrk", "rps", "rps-256", "synflood"]
RX_MODES = {
    "own": "Receive work on the receiver's core (`--rx-mode own`): RPS steers the kernel stack's receive to "
           "its own core; veth's NAPI, where XDP and AF_XDP receive run, is threaded and pinned there.",
    "sender": "Receive work on the sender's core (`--rx-mode sender`, veth's default): each server's receive "
              "runs on the client core, and the client's receive on the server core.",
    "busy-poll": "Receive work on the receiver's core as in `own` (`--rx-mode busy-poll`), with a third server in "
                 "the same rounds: floodgate with `--busy-poll on`.",
}
OWN_CORE = ("own", "busy-poll")


def run_reflector(mode, seconds, rx_mode):
    """SYN-ACKs per second a stateless reflector answers under synflood."""
    refl = subprocess.Popen(ns(SRV, f"taskset -c {SERVER_CPU} {ROOT}/target/release/examples/reflector "
                                    f"--iface fg-s0 --vip {VIP} --port 80 --mode {mode} --seconds {seconds + 15}"),
                            shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=os.setsid)
    time.sleep(2)
    try:
        pin_napi(rx_mode)
        queue = 0  # AF_XDP replies leave on the reflector's TX queue 0
        if mode == "xdp-tx":
            # XDP_TX hands the reply to the peer's RX queue numbered after the
            # CPU running fg-s0's NAPI: the server core when it is pinned there
            # (own), else the sending core.
            queue = SERVER_CPU if rx_mode in OWN_CORE else CLIENT_CPU
        return run_load("synflood", 80, seconds, f"--queues {queue}")["rate"]
    finally:
        os.killpg(refl.pid, signal.SIGTERM)
        refl.wait()
        wait_gone("reflector")


def synflood_queues(server, rx_mode):
    """floodgate-load's queues for a synflood. Replies sent by XDP_TX land on
    the client's RX queue numbered after the CPU running fg-s0's NAPI, which
    in `sender` mode is the client core; floodgate sends them so under a
    flood (cookies in XDP), so the generator then listens on that queue too."""
    if server.port != 80 or rx_mode in OWN_CORE:
        return ""
    return f"--queues 0,{CLIENT_CPU} --cpus {CLIENT_CPU}"


def time_wait_counters():
    """floodgate's TIME-WAIT entered/evicted totals, from its metrics."""
    out = sh(ns(SRV, "curl -s -m 2 http://127.0.0.1:9100/metrics"), check=False)
    got = {}
    for key in ["entered", "evicted"]:
        got[key] = sum(int(float(m)) for m in re.findall(
            rf"^floodgate_tcp_time_wait_{key}_total(?:{{[^}}]*}})? (\S+)$", out, re.M))
    return got


def set_rx_mode(mode):
    """`own`: each side's receive work on its own core (see the module doc).
    The testbed is fresh, so `sender`, veth's default, needs nothing."""
    if mode not in OWN_CORE:
        return
    for side, dev, cpu in [(SRV, "fg-s0", SERVER_CPU), (CLI, "fg-c0", CLIENT_CPU)]:
        mask = format(1 << cpu, "x")
        sh(ns(side, f"sh -c 'for q in /sys/class/net/{dev}/queues/rx-*; do echo {mask} > $q/rps_cpus; done'"))
    # The client's veth keeps its NAPI (GRO on), so its threads live across
    # runs; the server's veth has NAPI only while an XDP program is attached
    # (floodgate, the reflectors), and pin_napi() threads it then.
    sh(ns(CLI, "ethtool -K fg-c0 gro on"))
    sh(ns(CLI, "sh -c 'echo 1 > /sys/class/net/fg-c0/threaded'"))


def pin_napi(mode):
    """`own`: thread the server veth's NAPI if it has one, and pin every NAPI
    thread of each veth to its side's core."""
    if mode not in OWN_CORE:
        return
    # Fails when fg-s0 has no NAPI (nginx): its receive is RPS's softirq then.
    sh(ns(SRV, "sh -c 'echo 1 > /sys/class/net/fg-s0/threaded' 2>/dev/null"), check=False)
    for dev, cpu in [("fg-s0", SERVER_CPU), ("fg-c0", CLIENT_CPU)]:
        for pid in sh(f"pgrep '^napi/{dev}-'", check=False).split():
            sh(f"taskset -pc {cpu} {pid}", check=False)


def measure(server, fn, rx_mode):
    """Runs a load; the server's CPU seconds and its core's busy seconds."""
    pin_napi(rx_mode)
    pid = server.pid()
    t0, c0 = cpu_ticks(pid), core_ticks(SERVER_CPU)
    r = fn()
    r["cpu_s"] = (cpu_ticks(pid) - t0) / ticks_per_sec()
    r["core_s"] = (core_ticks(SERVER_CPU) - c0) / ticks_per_sec()
    return r


V6_VIP = "2001:db8::1"
V6_SUFFIX = " (IPv6)"


def use_family(family):
    """Points the loads (and nginx's listen line) at the family's address."""
    global VIP, HOST
    VIP, HOST = (V6_VIP, f"[{V6_VIP}]") if family == 6 else ("198.18.0.1", "198.18.0.1")


def over_both(loads):
    """--family 4,6: each load over IPv4, then the same over IPv6."""
    def over(fn, family):
        def run(server):
            use_family(family)
            try:
                return fn(server)
            finally:
                use_family(4)
        return run
    return [(name + suffix, over(fn, fam), per_conn)
            for name, fn, per_conn in loads for fam, suffix in [(4, ""), (6, V6_SUFFIX)]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--family", choices=["4", "6", "4,6"], default="4",
                    help="6: everything over IPv6 (2001:db8::1), results as compare-v6.*; 4,6: both in the same "
                         "rounds, results as compare-v46.*")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--report-only", metavar="JSON", help="re-render the report from a compare.json; run nothing")
    ap.add_argument("--rx-mode", choices=["own", "sender", "busy-poll"], default="own",
                    help="where receive work runs: on the receiver's core (own) or veth's default, the sender's; "
                         "busy-poll: own, plus floodgate with --busy-poll on as a third server")
    ap.add_argument("--loads", default=",".join(LOADS),
                    help=f"comma-separated subset of {','.join(LOADS)}; the SYN-ACK ceilings (reflectors) run "
                         "only with synflood")
    a = ap.parse_args()
    a.family = {"4": 4, "6": 6, "4,6": 46}[a.family]
    use_family(6 if a.family == 6 else 4)
    if a.report_only:
        j = json.loads(Path(a.report_only).read_text())
        a.rx_mode, a.rounds, a.seconds = j["rx_mode"], j.get("rounds", a.rounds), j.get("seconds", a.seconds)
        a.family = j.get("family", 4)
        return write_report(a, j["results"], j["reflector"], j["time_wait"], j.get("shard_syns", []),
                            j.get("machine", {}), j.get("counters", {}))
    wanted = a.loads.split(",")
    if any(w not in LOADS for w in wanted):
        sys.exit(f"compare: --loads takes {','.join(LOADS)}")
    if os.geteuid() != 0:
        sys.exit("compare: needs root (network namespaces, XDP)")
    sh(f"{ROOT}/deploy/install-deps.sh", capture=False)
    for tool in ["nginx", "wrk", "gnuplot"]:
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sh(f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {'gnuplot-nox' if tool == 'gnuplot' else tool}",
               capture=False)
    if not a.skip_build:
        sh(f"cd {ROOT} && cargo build --release -p floodgate -p floodgate-bench --bins --examples", capture=False)
    # The root tests and this script share the testbed: one at a time.
    lock = open("/tmp/floodgate-testbed.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    # A fresh testbed: NAPI threading and the like must not leak from a run
    # in the other mode (a veth's `threaded` outlives its NAPI instances).
    sh(f"FG_TESTBED_NS={TESTBED_NS} {ROOT}/deploy/testbed.sh down", capture=False)
    sh(f"FG_TESTBED_NS={TESTBED_NS} {ROOT}/deploy/testbed.sh up", capture=False)
    # All client traffic on queue 0, so one server shard sees all of it (XPS).
    # The kernel picks a TX queue by flow hash; XPS sends everything on queue 0
    # on both sides, so the one-queue server and the one-queue generator see
    # every frame of their flows (floodgate's AF_XDP TX is on queue 0 already).
    for side, dev in [(CLI, "fg-c0"), (SRV, "fg-s0")]:
        sh(ns(side, f"sh -c 'echo 3 > /sys/class/net/{dev}/queues/tx-0/xps_cpus; "
                    f"echo 0 > /sys/class/net/{dev}/queues/tx-1/xps_cpus'"), check=False)
    # The kernel's replies must carry whole checksums for the AF_XDP client
    # (veth hands partial ones through); the client side is set so already.
    sh(ns(SRV, "ethtool -K fg-s0 tx off"), check=False)
    set_rx_mode(a.rx_mode)
    sh(ns(SRV, "sysctl -q -w net.ipv4.tcp_syncookies=2 net.core.somaxconn=65535 "
               "net.ipv4.tcp_max_syn_backlog=65535"), check=False)

    tmp = Path(tempfile.mkdtemp(prefix="fg-compare-"))
    vips = f"--vip {VIP}" + (f" --vip {V6_VIP}" if a.family == 46 else "")
    fg_cmd = (f"taskset -c {SERVER_CPU} {ROOT}/target/release/floodgate serve --iface fg-s0 "
              f"{vips} --port 80 --app http --queues 1 --http-body '{BODY}' "
              f"--connections 1048576 --time-wait-capacity 16777216 "
              f"--time-wait-capacity-v6 {65536 if a.family == 4 else 16777216} --metrics 127.0.0.1:9100 --drain 1s")
    fg = Server("floodgate", fg_cmd, 80, pid_of=lambda: int(sh("pgrep -n -x floodgate").split()[0]))
    fg_bp = Server("floodgate", fg_cmd + " --busy-poll on", 80,
                   pid_of=lambda: int(sh("pgrep -n -x floodgate").split()[0]), label="floodgate busy-poll")
    # The same engine with every SYN answered by its shard, never in XDP.
    fg_shard_syns = Server("floodgate", fg_cmd + " --xdp-syn-cookies off", 80,
                           pid_of=lambda: int(sh("pgrep -n -x floodgate").split()[0]))
    ngx = Server("nginx", f"nginx -c {nginx_conf(tmp, a.family == 46)}", 8080, pid_of=lambda: nginx_worker_pid(tmp))

    loads = [
        ("CPS, wrk Connection: close", lambda s: run_wrk(s.port, a.seconds, 64, True), True),
        ("CPS, floodgate-load cps", lambda s: run_load("cps", s.port, a.seconds, "--concurrency 256"), True),
        ("keep-alive RPS, wrk", lambda s: run_wrk(s.port, a.seconds, 64, False), False),
        ("keep-alive RPS, floodgate-load rps", lambda s: run_load("rps", s.port, a.seconds, "--concurrency 64"), False),
        # At 64 connections floodgate's core idles (its client's core is
        # the busy one); more requests in flight fill each turn's batch.
        ("keep-alive RPS, floodgate-load rps 256 connections",
         lambda s: run_load("rps", s.port, a.seconds, "--concurrency 256"), False),
        ("SYN-ACK/s, floodgate-load synflood",
         lambda s: run_load("synflood", s.port, a.seconds, synflood_queues(s, a.rx_mode)), True),
    ]
    loads = [ld for ld, key in zip(loads, LOADS) if key in wanted]
    if a.family == 46:
        loads = over_both(loads)
    servers = [fg, ngx] + ([fg_bp] if a.rx_mode == "busy-poll" else [])
    results = {name: {s.label: [] for s in servers} for name, _, _ in loads}
    time_wait = {}
    counters = {}
    steal0, total0 = cpu_totals()
    machine = {"load_before": os.getloadavg()}
    try:
        for rnd in range(a.rounds):
            k = rnd % len(servers)
            for server in servers[k:] + servers[:k]:
                server.start()
                try:
                    for name, fn, per_conn in loads:
                        r = measure(server, lambda: fn(server), a.rx_mode)
                        r["per_conn"] = per_conn
                        results[name][server.label].append(r)
                        print(f"round {rnd + 1} {server.label:19} {name:38} {r['rate']:>12.0f}/s  "
                              f"cpu {r['cpu_s']:.2f}s  errors {r['errors']}", flush=True)
                finally:
                    if server.name == "floodgate":
                        c = fg_counters()
                        acc = counters.setdefault(server.label, {})
                        for key, v in c.items():
                            acc[key] = sorted(set(acc.get(key, []) + v)) if key == "busy_poll" else acc.get(key, 0) + v
                    if server is fg:
                        tw = time_wait_counters()
                        for k2, v in tw.items():
                            time_wait[k2] = time_wait.get(k2, 0) + v
                    server.stop()
        # The ceilings, stateless SYN-ACK reflectors on the same veth: XDP_TX
        # in the XDP program itself, and AF_XDP in place (floodgate's link).
        ceiling = {mode: [] for mode in REFLECTORS}
        shard_syns = []
        for rnd in range(a.rounds if "synflood" in wanted else 0):
            for mode in REFLECTORS:
                rate = run_reflector(mode, a.seconds, a.rx_mode)
                print(f"round {rnd + 1} reflector {mode:7} SYN-ACK/s {rate:.0f}", flush=True)
                if rate > 0:  # 0: the reflector did not come up, not a measurement
                    ceiling[mode].append(rate)
            fg_shard_syns.start()
            try:
                r = measure(fg_shard_syns, lambda: run_load("synflood", 80, a.seconds), a.rx_mode)
            finally:
                fg_shard_syns.stop()
            print(f"round {rnd + 1} floodgate, SYNs to the shard, SYN-ACK/s {r['rate']:.0f}", flush=True)
            shard_syns.append(r)
    finally:
        fg.stop()
        fg_bp.stop()
        fg_shard_syns.stop()
        ngx.stop()
    steal1, total1 = cpu_totals()
    machine["steal_pct"] = 100 * (steal1 - steal0) / max(total1 - total0, 1)
    machine["load_after"] = os.getloadavg()

    write_report(a, results, ceiling, time_wait, shard_syns, machine, counters)


def family_name(family):
    return {4: "IPv4", 6: "IPv6", 46: "IPv4 and IPv6"}[family]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def write_report(a, results, ceiling, time_wait, shard_syns, machine, counters):
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    cpu = (sh("lscpu | grep -m1 'Model name' || true").split(":")[-1].strip()
           or sh("grep -m1 'model name' /proc/cpuinfo || true").split(":")[-1].strip() or "unknown CPU")
    lines = [
        f"# floodgate vs the Linux kernel (nginx), {family_name(a.family)}, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), kernel {os.uname().release}; testbed veth pair; "
        f"server on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}; {a.rounds} rounds of {a.seconds} s, "
        "A/B alternating; medians. floodgate: one shard, native XDP, copy-mode AF_XDP (veth has no "
        "zero-copy); nginx: one worker, SYN cookies always on; TX checksum offload off on both veths. "
        "Process µs/conn: the server process's CPU time over the connections (or requests, or SYN-ACKs) "
        f"served; core µs/conn: all busy time of CPU {SERVER_CPU} (process, softirq, kernel threads) over the same.",
        "",
        RX_MODES[a.rx_mode],
        "",
        f"Steal during the run: {machine.get('steal_pct', float('nan')):.1f} % of all CPU time; load average "
        f"(1/5/15 min) before {'/'.join(f'{x:.2f}' for x in machine.get('load_before', []))}, after "
        f"{'/'.join(f'{x:.2f}' for x in machine.get('load_after', []))} (other work on the machine).",
        "",
        "| load | floodgate | nginx (kernel) | ratio | core busy fg / nginx | core µs/conn fg / nginx "
        "| core ratio | process µs/conn fg / nginx | errors fg / nginx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = []
    best = {}
    for name, r in results.items():
        f, n = r["floodgate"], r["nginx"]
        if not f or not n:
            continue
        fr, nr = med([x["rate"] for x in f]), med([x["rate"] for x in n])

        def per_conn(xs, key):
            return med([x[key] / max(x["rate"] * a.seconds, 1) * 1e6 for x in xs])

        def busy(xs):
            return med([100 * x["core_s"] / a.seconds for x in xs])

        ratio = fr / nr if nr else float("inf")
        fc, nc = per_conn(f, "core_s"), per_conn(n, "core_s")
        rows.append((name, fr, nr))
        lines.append(f"| {name} | {fr:,.0f}/s | {nr:,.0f}/s | {ratio:.2f}x | {busy(f):.0f} % / {busy(n):.0f} % | "
                     f"{fc:.2f} / {nc:.2f} | {nc / fc if fc else 0:.2f}x | {per_conn(f, 'cpu_s'):.2f} / "
                     f"{per_conn(n, 'cpu_s'):.2f} | {sum(x['errors'] for x in f)} / {sum(x['errors'] for x in n)} |")
        group = name.split(",")[0] + (V6_SUFFIX if name.endswith(V6_SUFFIX) else "")
        for server, rate, core in [("floodgate", fr, fc), ("nginx", nr, nc)]:
            if rate > best.get((group, server), (0, 0, ""))[0]:
                best[(group, server)] = (rate, core, name.split(", ", 1)[1].removesuffix(V6_SUFFIX))
    # A server whose core is not busy is waiting on its client: compare each
    # server with the client that drove it hardest.
    lines += ["", "Each server with the client that drove it hardest:", ""]
    for group in ["CPS", "keep-alive RPS"] + (["CPS" + V6_SUFFIX, "keep-alive RPS" + V6_SUFFIX] if a.family == 46 else []):
        (fr, fc, fl), (nr, nc, nl) = best.get((group, "floodgate"), (0, 0, "")), best.get((group, "nginx"), (0, 0, ""))
        if fr and nr:
            lines.append(f"- {group}: floodgate {fr:,.0f}/s ({fl}) against nginx {nr:,.0f}/s ({nl}): {fr / nr:.2f}x; "
                         f"core µs per connection or request {fc:.2f} against {nc:.2f}: {nc / fc if fc else 0:.2f}x.")
    if a.family == 46:
        lines += ["", "IPv6 against IPv4, same rounds, same server process (medians):", "",
                  "| load | floodgate IPv6 / IPv4 | nginx IPv6 / IPv4 | ratio fg/nginx IPv4 | IPv6 |",
                  "|---|---:|---:|---:|---:|"]
        for name, r in results.items():
            r6 = results.get(name + V6_SUFFIX)
            if name.endswith(V6_SUFFIX) or not r6 or not all(r[k] and r6[k] for k in ("floodgate", "nginx")):
                continue
            f4, n4, f6, n6 = (med([x["rate"] for x in xs]) for xs in (r["floodgate"], r["nginx"], r6["floodgate"],
                                                                      r6["nginx"]))
            lines.append(f"| {name} | {f6:,.0f} / {f4:,.0f} ({f6 / f4 if f4 else 0:.2f}x) | {n6:,.0f} / {n4:,.0f} "
                         f"({n6 / n4 if n4 else 0:.2f}x) | {f4 / n4 if n4 else 0:.2f}x | {f6 / n6 if n6 else 0:.2f}x |")
    if "floodgate busy-poll" in next(iter(results.values()), {}):
        lines += ["", "floodgate with `--busy-poll on`, same rounds:", "",
                  "| load | floodgate busy-poll | vs floodgate own | vs nginx | core µs/conn busy-poll / own / nginx "
                  "| errors |", "|---|---:|---:|---:|---:|---:|"]
        for name, r in results.items():
            b, f, n = r["floodgate busy-poll"], r["floodgate"], r["nginx"]
            if not b:
                continue

            def pc(xs):
                return med([x["core_s"] / max(x["rate"] * a.seconds, 1) * 1e6 for x in xs])
            br, fr, nr = (med([x["rate"] for x in xs]) for xs in (b, f, n))
            lines.append(f"| {name} | {br:,.0f}/s | {br / fr if fr else 0:.2f}x | {br / nr if nr else 0:.2f}x | "
                         f"{pc(b):.2f} / {pc(f):.2f} / {pc(n):.2f} | {sum(x['errors'] for x in b)} |")
    if counters:
        lines += ["", "floodgate's system calls (all loads of a server run, summed over its shards):", ""]
        for label, c in counters.items():
            rx = max(c.get("link_rx_frames", 0), 1)
            lines.append(f"- {label}: busy_poll {','.join(c.get('busy_poll', [])) or '?'}; "
                         f"{c.get('shard_syscalls', 0) / rx:.3f} syscalls per received frame "
                         f"(TX kicks {c.get('link_tx_wakeups', 0) / rx:.3f}, fill kicks "
                         f"{c.get('link_fill_wakeups', 0) / rx:.3f}, busy polls {c.get('link_busy_polls', 0) / rx:.3f}, "
                         f"yields {c.get('shard_yields', 0) / rx:.3f}, sleeps {c.get('shard_sleeps', 0) / rx:.3f}; "
                         f"{c.get('link_rx_frames', 0) / max(c.get('shard_turns', 0), 1):.2f} frames per turn).")
    stem = {4: "compare", 6: "compare-v6", 46: "compare-v46"}[a.family]
    if "SYN-ACK/s, floodgate-load synflood" not in results:
        md = "\n".join(lines + [""])
        (out / f"{stem}.md").write_text(md + "\n")
        (out / f"{stem}.json").write_text(json.dumps({"rx_mode": a.rx_mode, "rounds": a.rounds, "seconds": a.seconds,
                                                      "family": a.family, "results": results, "reflector": ceiling,
                                                      "time_wait": time_wait, "shard_syns": shard_syns,
                                                      "machine": machine, "counters": counters}, indent=1))
        print(md)
        return
    syn = med([x["rate"] for x in results["SYN-ACK/s, floodgate-load synflood"]["floodgate"]])
    shard = med([x["rate"] for x in shard_syns])
    lines.append("")
    lines.append("floodgate under synflood: by default (`--xdp-syn-cookies flood`) the XDP program answers SYNs with "
                 "the engine's cookies once a shard's half-open budget is spent; with `--xdp-syn-cookies off` every "
                 "SYN reaches the shard.")
    lines.append("")
    for mode, label in [("xdp-tx", "XDP_TX reflector (the ceiling)"), ("af-xdp", "AF_XDP in-place reflector")]:
        cm = med(ceiling.get(mode, []))
        pct = (lambda v: f"{100 * v / cm:.0f}%") if cm else (lambda v: "n/a")
        lines.append(f"- {label}: {cm:,.0f} SYN-ACK/s; floodgate answers {pct(syn)} of it by default"
                     + (f", {pct(shard)} with every SYN answered by its shard ({shard:,.0f}/s, core µs/SYN "
                        f"{med([x['core_s'] / max(x['rate'] * a.seconds, 1) * 1e6 for x in shard_syns]):.2f})"
                        if shard_syns else "") + ".")
    lines.append(f"- floodgate's TIME-WAIT (2MSL = 60 s, table of 16 M per run): {time_wait.get('entered', 0):,} "
                 f"entered, {time_wait.get('evicted', 0):,} cut short by a full table.")
    lines.append("")
    md = "\n".join(lines)
    (out / f"{stem}.md").write_text(md + "\n")
    (out / f"{stem}.json").write_text(json.dumps({"rx_mode": a.rx_mode, "rounds": a.rounds, "seconds": a.seconds,
                                                  "family": a.family,
                                                  "results": results, "reflector": ceiling, "time_wait": time_wait,
                                                  "shard_syns": shard_syns, "machine": machine,
                                                  "counters": counters}, indent=1))
    print(md)
    dat = out / f"{stem}.dat"
    dat.write_text("".join(f"\"{n}\" {f:.0f} {k:.0f}\n" for n, f, k in rows))
    if shutil.which("gnuplot"):
        script = f"""
set terminal pngcairo size 1100,650 noenhanced
set output '{out / f"{stem}.png"}'
set title 'floodgate vs nginx on the Linux kernel, {family_name(a.family)} (medians)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'per second (log)'
set xtics rotate by 15 right scale 0 font ',9'
set key top right
plot '{dat}' using 2:xtic(1) title 'floodgate', '' using 3 title 'nginx (kernel)'
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=False)


if __name__ == "__main__":
    main()

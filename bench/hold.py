#!/usr/bin/env python3
"""Millions of held connections, end to end, on the testbed (issue #14).

For each N in --held (default 1 k, 100 k, 1 M, 4 M) the script starts
floodgate (HTTP, one shard pinned to CPU 0, the same flags for every N), and
runs `floodgate-load hold` from the client namespace on CPU 1: N keep-alive
connections are opened (each answers one request as it opens; that is the
ramp) and kept with a request every --interval seconds each; while they are
held, for --seconds, --rps-conns of them at a time issue --burst requests
back to back (keep-alive RPS) and --cps-conns `Connection: close`
connections run (CPS, the server holds their TIME-WAIT; from 256 addresses
of their own, 198.18.3.0-255, so each N gets fresh tuples); then every held
connection gets one more request (verify). The server is stopped after
each N, so every N starts from the same empty server.

Per N it reports: keep-alive RPS and CPS during the hold (medians of the
per-second figures of the measured phase, and their ratio to the first N),
the held connections' own request rate, the server's resident memory per
held connection (VmRSS after the ramp minus VmRSS of the same server just
started, divided by N; so it counts every table entry, timer and page the
held connections touched), the client's likewise, the errors, the
verify count, and the steal time of that run (from /proc/stat; a run with
more than 5 % steal is run again, at most twice).

--time-wait M adds one more run: first a server-closed churn (floodgate-load
`cps` from 256 other source addresses, 198.18.1.0-255, which need no
addresses in the client namespace since floodgate-load answers for them
itself) until the server holds M TIME-WAIT entries (2MSL = 120 s,
--msl 60s, so they outlive the run), then the hold of the first N >= 1 M
of the series beside them.

Writes hold.md (the table and an ASCII plot), hold.json and hold.svg (rate
against N) into --results. Needs root; brings its own testbed (namespaces
fgh-srv / fgh-cli) up and down, and holds the testbed lock
(/tmp/floodgate-testbed.lock) for the whole run. Every load is bounded:
floodgate-load's own --duration, --ramp-timeout, --verify-timeout, and a
`timeout` around it.
"""

import argparse
import fcntl
import json
import math
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTBED_NS = "fgh"
SRV, CLI = f"{TESTBED_NS}-srv", f"{TESTBED_NS}-cli"
VIP = "198.18.0.1"
BODY = "Hello, World!"
SERVER_CPU = 0
CLIENT_CPU = 1
CHURN_SOURCES = "198.18.1.0-198.18.1.255"
# The measured Connection: close connections come from addresses of their
# own, so that every N gets fresh tuples (held connections take up to 98 %
# of the ports of the testbed's 64 client addresses at 4 M).
CLOSE_SOURCES = "198.18.3.0-198.18.3.255"


def sh(cmd, check=True, timeout=None):
    r = subprocess.run(cmd, shell=True, text=True, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def ns(name, cmd):
    return f"ip netns exec {name} {cmd}"


def cpu_stat():
    """Per-CPU and total tick vectors from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f and f[0].startswith("cpu"):
            out[f[0]] = [int(x) for x in f[1:9]]
    return out


def stat_delta(a, b):
    """Steal % of all time, and busy % of each of the two cores, between two cpu_stat()s."""
    d = {k: [y - x for x, y in zip(a[k], b[k])] for k in a}
    tot = d["cpu"]
    steal = 100 * tot[7] / max(sum(tot), 1)
    busy = {}
    for c in (SERVER_CPU, CLIENT_CPU):
        v = d.get(f"cpu{c}", [0] * 8)
        busy[c] = 100 * (sum(v) - v[3] - v[4] - v[7]) / max(sum(v), 1)
    return steal, busy


def proc_ticks(ours):
    """CPU ticks (with reaped children) of every process but `ours` and the
    kernel threads that work for the testbed, by pid."""
    got = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) in ours:
            continue
        try:
            st = (d / "stat").read_text()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        if comm.startswith(("napi/fg-", "ksoftirqd")):
            continue
        f = st.rsplit(")", 1)[1].split()
        got[int(d.name)] = sum(int(x) for x in f[11:15])
    return got


def other_cpu_pct(before, after, seconds):
    """Other processes' CPU over the run, in % of the machine's CPUs: other
    engineers' builds and tests on this shared machine."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items() if t >= before.get(pid, 0))
    return 100 * ticks / os.sysconf(os.sysconf_names["SC_CLK_TCK"]) / max(seconds, 1e-9) / os.cpu_count()


def metrics():
    return sh(ns(SRV, "curl -s -m 3 http://127.0.0.1:9100/metrics"), check=False)


def metric(text, name):
    return sum(int(float(m)) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def server_cmd(a):
    return (f"taskset -c {SERVER_CPU} {ROOT}/target/release/floodgate serve --iface fg-s0 --vip {VIP} --port 80 "
            f"--app http --queues 1 --http-body '{BODY}' --connections {a.server_connections} --buffers {a.server_buffers} "
            f"--time-wait-capacity {a.server_time_wait} --time-wait-capacity-v6 65536 --msl 60s "
            f"--http-keepalive-timeout {a.keepalive_timeout}s --metrics 127.0.0.1:9100 --drain 1s")


class Server:
    def __init__(self, cmd):
        self.cmd = cmd
        self.proc = None
        self.log = tempfile.TemporaryFile(mode="w+")

    def start(self):
        # ip netns exec and taskset exec: the Popen pid is floodgate's.
        self.proc = subprocess.Popen(shlex.split(ns(SRV, self.cmd)), stdout=subprocess.DEVNULL, stderr=self.log,
                                     text=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"floodgate exited at start: {self.log.read()[-3000:]}")
            r = subprocess.run(ns(CLI, f"curl -s -m 1 http://{VIP}/"), shell=True, capture_output=True, text=True)
            if r.stdout == BODY:
                return
            time.sleep(0.3)
        raise RuntimeError("floodgate did not answer in 60 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def testbed_up():
    sh(f"FG_TESTBED_NS={TESTBED_NS} {ROOT}/deploy/testbed.sh down")
    sh(f"FG_TESTBED_NS={TESTBED_NS} {ROOT}/deploy/testbed.sh up")
    # As bench/compare.py: everything on queue 0 (one shard, one client
    # queue), whole checksums from the kernel, each side's receive on its
    # own core (RPS for the kernel, threaded NAPI pinned for XDP).
    for side, dev in [(CLI, "fg-c0"), (SRV, "fg-s0")]:
        sh(ns(side, f"sh -c 'echo 3 > /sys/class/net/{dev}/queues/tx-0/xps_cpus; "
                    f"echo 0 > /sys/class/net/{dev}/queues/tx-1/xps_cpus'"), check=False)
    sh(ns(SRV, "ethtool -K fg-s0 tx off"), check=False)
    for side, dev, cpu in [(SRV, "fg-s0", SERVER_CPU), (CLI, "fg-c0", CLIENT_CPU)]:
        mask = format(1 << cpu, "x")
        sh(ns(side, f"sh -c 'for q in /sys/class/net/{dev}/queues/rx-*; do echo {mask} > $q/rps_cpus; done'"))
    sh(ns(CLI, "ethtool -K fg-c0 gro on"))
    sh(ns(CLI, "sh -c 'echo 1 > /sys/class/net/fg-c0/threaded'"))


def pin_napi():
    sh(ns(SRV, "sh -c 'echo 1 > /sys/class/net/fg-s0/threaded' 2>/dev/null"), check=False)
    for dev, cpu in [("fg-s0", SERVER_CPU), ("fg-c0", CLIENT_CPU)]:
        for pid in sh(f"pgrep '^napi/{dev}-'", check=False).split():
            sh(f"taskset -pc {cpu} {pid}", check=False)


def load_bin():
    return f"{ROOT}/target/release/floodgate-load"


def churn(a, want):
    """Server-closed connections until the server holds `want` TIME-WAIT entries (bounded)."""
    t0 = time.time()
    out = sh(ns(CLI, f"timeout -k 10 {a.churn_seconds + 30} {load_bin()} cps --iface fg-c0 --target {VIP}:80 "
                     f"--sources {CHURN_SOURCES} --queues 0 --cpus {CLIENT_CPU} --concurrency 256 "
                     f"--count {want} --duration {a.churn_seconds}"), check=False)
    tw = metric(metrics(), "floodgate_connections_time_wait")
    last = [l for l in out.splitlines() if l.startswith("connections:")]
    print(f"  churn: {time.time() - t0:.0f} s, server TIME-WAIT {tw:,}; {last[0] if last else out[-500:]}",
          flush=True)
    return tw


def hold_run(a, n, time_wait=0):
    server = Server(server_cmd(a))
    server.start()
    pin_napi()
    try:
        tw_before = churn(a, time_wait) if time_wait else 0
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            bound = a.ramp_timeout + a.seconds + a.verify_timeout + 60
            cmd = (f"timeout -k 10 {bound} {load_bin()} hold --iface fg-c0 --target {VIP}:80 --queues 0 "
                   f"--cpus {CLIENT_CPU} --held {n} --interval {a.interval} --duration {a.seconds} "
                   f"--rps-conns {a.rps_conns} --burst {a.burst} --cps-conns {a.cps_conns} "
                   f"--close-sources {CLOSE_SOURCES} "
                   f"--ramp-timeout {a.ramp_timeout} --verify-timeout {a.verify_timeout} "
                   f"--server-pid {server.proc.pid} --json {f.name}")
            ours = {os.getpid(), server.proc.pid}
            s0, o0, t0 = cpu_stat(), proc_ticks(ours), time.time()
            p = subprocess.Popen(ns(CLI, cmd), shell=True, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            ours.add(p.pid)
            # The client's pid, once ip netns exec has exec'd it.
            time.sleep(0.5)
            ours.update(int(x) for x in sh(f"pgrep -f {f.name}", check=False).split())
            o0 = {k: v for k, v in o0.items() if k not in ours}
            out, err = p.communicate()
            s1, o1 = cpu_stat(), proc_ticks(ours)
            other = other_cpu_pct(o0, o1, time.time() - t0)
            if a.verbose:
                print(out, err, flush=True)
            text = Path(f.name).read_text()
            if not text:
                raise RuntimeError(f"floodgate-load hold failed ({p.returncode}):\n{out[-3000:]}\n{err}")
            r = json.loads(text)
        m = metrics()
        steal, busy = stat_delta(s0, s1)
        hold = [s for s in r["samples"] if s["phase"] == "hold"]
        # The first second of the hold starts the bursts; medians of whole seconds after it.
        hold = hold[1:] or hold
        r.update({
            "n": n,
            "steal_pct": steal,
            "other_cpu_pct": other,
            "busy_server_pct": busy[SERVER_CPU],
            "busy_client_pct": busy[CLIENT_CPU],
            "rps_median": statistics.median([s["rps"] for s in hold]) if hold else 0.0,
            "cps_median": statistics.median([s["cps"] for s in hold]) if hold else 0.0,
            "pings_median": statistics.median([s["pings"] for s in hold]) if hold else 0.0,
            "time_wait_before": tw_before,
            "time_wait_end": metric(m, "floodgate_connections_time_wait"),
            "time_wait_evicted": metric(m, "floodgate_tcp_time_wait_evicted_total"),
            "server_established_end": metric(m, "floodgate_connections_established"),
            "keepalive_timeouts": metric(m, "floodgate_http_keepalive_timeouts_total"),
            "header_timeouts": metric(m, "floodgate_http_header_timeouts_total"),
            "events_overflow": metric(m, "floodgate_tcp_events_overflow_total"),
            "drop_no_buffer": metric(m, "floodgate_tcp_drop_no_buffer_total"),
            "kernel_rx_ring_full": metric(m, "floodgate_link_kernel_rx_ring_full_total"),
            "rto_expiries": metric(m, "floodgate_tcp_rto_expiries_total"),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "stdout_tail": out[-1500:],
        })
        return r
    finally:
        server.stop()


def smaps(pid):
    """Resident bytes of each mapping of a process: {(start, size): rss}."""
    got, key = {}, None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        f = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            key = (lo, hi - lo)
        elif f and f[0] == "Rss:" and key:
            got[key] = int(f[1]) * 1024
    return got


def attribute(a, n):
    """Where the server's resident memory per held connection goes: every
    mapping's growth while N connections open (no other load)."""
    server = Server(server_cmd(a))
    server.start()
    pin_napi()
    try:
        before = smaps(server.proc.pid)
        bound = a.ramp_timeout + 60
        sh(ns(CLI, f"timeout -k 10 {bound} {load_bin()} hold --iface fg-c0 --target {VIP}:80 --queues 0 "
                   f"--cpus {CLIENT_CPU} --held {n} --duration 1 --rps-conns 0 --cps-conns 0 "
                   f"--ramp-timeout {a.ramp_timeout} --server-pid {server.proc.pid}"), timeout=bound + 20)
        after = smaps(server.proc.pid)
        m = metrics()
        held = metric(m, "floodgate_connections_established")
    finally:
        server.stop()
    print(f"server mappings resident before ({a.server_connections:,} connections of capacity):")
    for (lo, size), rss in sorted(before.items(), key=lambda kv: -kv[1]):
        if rss > 8 << 20:
            print(f"  mapping of {size:>14,} B at {lo:#x}: {rss:>13,} B resident "
                  f"({size / a.server_connections:.1f} B of mapping per connection of capacity)")
    rows = sorted(((after[k] - before.get(k, 0), k) for k in after), reverse=True)
    total = sum(d for d, _ in rows)
    print(f"server RSS growth with {held:,} connections held: {total:,} B, {total / max(held, 1):.1f} B each")
    for d, (lo, size) in rows:
        if d > 1 << 20:
            print(f"  mapping of {size:>14,} B at {lo:#x}: +{d:>13,} B resident, {d / max(held, 1):6.1f} B per held")


def fmt_n(n):
    for div, suf in [(1_000_000, " M"), (1_000, " k")]:
        if n >= div and n % (div // 10) == 0:
            v = n / div
            return f"{v:g}{suf}"
    return f"{n:,}"


def table(runs):
    base = runs[0]
    rows = ["| N held | TIME-WAIT held | ramp | keep-alive RPS | vs first | CPS | vs first | held conns' req/s "
            "| server B/held (delta) | server RSS / N | client B/held | errors | verified | server / client core busy | steal | other processes |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        rows.append(
            f"| {fmt_n(r['n'])} | {r['time_wait_end']:,} | {r['ramp_seconds']:.1f} s | {r['rps_median']:,.0f}/s "
            f"| {100 * r['rps_median'] / max(base['rps_median'], 1):.0f} % | {r['cps_median']:,.0f}/s "
            f"| {100 * r['cps_median'] / max(base['cps_median'], 1):.0f} % | {r['pings_median']:,.0f}/s "
            f"| {r['server_bytes_per_held']:.0f} | {r['server_rss_held'] / max(r['held_at_start'], 1):.0f} "
            f"| {r['client_bytes_per_held']:.0f} | {r['errors']} "
            f"| {r['verified']:,} of {r['held_at_end']:,} | {r['busy_server_pct']:.0f} / {r['busy_client_pct']:.0f} % "
            f"| {r['steal_pct']:.1f} % | {r['other_cpu_pct']:.1f} % |")
    return "\n".join(rows)


def ascii_plot(runs, width=50):
    top = max(max(r["rps_median"], r["cps_median"]) for r in runs) or 1
    lines = []
    for r in runs:
        label = fmt_n(r["n"]) + (" +TW" if r.get("time_wait_before") else "")
        for key, ch in [("rps_median", "#"), ("cps_median", "=")]:
            bar = ch * max(1, round(width * r[key] / top))
            lines.append(f"{label:>9} {'RPS' if ch == '#' else 'CPS'} |{bar} {r[key]:,.0f}/s")
    return "\n".join(lines)


def svg_plot(runs, path):
    """Rate against N (log scale), keep-alive RPS and CPS: a dependency-free SVG."""
    pts = [r for r in runs if not r.get("time_wait_before")]
    if not pts:
        return
    w, h, ml, mb, mt, mr = 640, 360, 70, 50, 30, 20
    xs = [math.log10(r["n"]) for r in pts]
    x0, x1 = min(xs) - 0.2, max(xs) + 0.2
    top = max(max(r["rps_median"], r["cps_median"]) for r in pts) * 1.1 or 1

    def px(x):
        return ml + (x - x0) / (x1 - x0) * (w - ml - mr)

    def py(y):
        return h - mb - y / top * (h - mb - mt)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           f'font-size="12"><rect width="{w}" height="{h}" fill="white"/>',
           f'<line x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}" stroke="black"/>',
           f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{h - mb}" stroke="black"/>',
           f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">connections held (log scale)</text>',
           f'<text x="{ml}" y="{mt - 10}">requests or connections per second, one shard</text>']
    for k in range(6):
        y = top * k / 5
        out.append(f'<text x="{ml - 6}" y="{py(y) + 4}" text-anchor="end">{y / 1000:.0f}k</text>')
        out.append(f'<line x1="{ml}" y1="{py(y)}" x2="{w - mr}" y2="{py(y)}" stroke="#ddd"/>')
    for r, x in zip(pts, xs):
        out.append(f'<text x="{px(x)}" y="{h - mb + 16}" text-anchor="middle">{fmt_n(r["n"])}</text>')
    for key, color, name in [("rps_median", "#1f77b4", "keep-alive RPS"), ("cps_median", "#d62728", "CPS")]:
        p = " ".join(f"{px(x):.1f},{py(r[key]):.1f}" for r, x in zip(pts, xs))
        out.append(f'<polyline points="{p}" fill="none" stroke="{color}" stroke-width="2"/>')
        for r, x in zip(pts, xs):
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(r[key]):.1f}" r="3" fill="{color}"/>')
        out.append(f'<text x="{px(xs[-1]) - 4:.1f}" y="{py(pts[-1][key]) - 8:.1f}" fill="{color}" '
                   f'text-anchor="end">{name}</text>')
        # Runs beside a mass of TIME-WAIT entries: hollow markers at their N.
        for r in (r for r in runs if r.get("time_wait_before")):
            x = px(math.log10(r["n"]))
            out.append(f'<circle cx="{x:.1f}" cy="{py(r[key]):.1f}" r="5" fill="none" stroke="{color}"/>')
    if any(r.get("time_wait_before") for r in runs):
        out.append(f'<text x="{ml + 10}" y="{h - mb - 10}">hollow: the same beside '
                   f'{max(r["time_wait_before"] for r in runs) / 1e6:.0f} M TIME-WAIT entries</text>')
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--held", default="1000,100000,1000000,4000000", help="comma-separated N")
    ap.add_argument("--seconds", type=int, default=20, help="measured phase per N")
    ap.add_argument("--interval", type=float, default=60.0, help="seconds between requests on a held connection")
    ap.add_argument("--keepalive-timeout", type=int, default=120, help="the server's --http-keepalive-timeout, s")
    ap.add_argument("--rps-conns", type=int, default=64)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--cps-conns", type=int, default=256)
    ap.add_argument("--ramp-timeout", type=int, default=240)
    ap.add_argument("--verify-timeout", type=int, default=120)
    ap.add_argument("--time-wait", type=int, default=0, help="also a run with this many TIME-WAIT entries held")
    ap.add_argument("--churn-seconds", type=int, default=120, help="bound on the TIME-WAIT churn")
    ap.add_argument("--server-connections", type=int, default=0,
                    help="the server's --connections [default: the largest N + 1/8 + 64 k]")
    ap.add_argument("--server-time-wait", type=int, default=0,
                    help="--time-wait-capacity [default: --time-wait + 6 M, at least 4 M]")
    ap.add_argument("--server-buffers", type=int, default=65536,
                    help="the server's --buffers (16 KiB chunks, resident only once used)")
    ap.add_argument("--max-steal", type=float, default=5.0)
    ap.add_argument("--max-other", type=float, default=5.0,
                    help="discard a run in which other processes took more than this %% of the CPUs")
    ap.add_argument("--attempts", type=int, default=3, help="runs of one N at most (steal, other processes)")
    ap.add_argument("--pause", type=float, default=30.0, help="seconds to wait before running a discarded N again")
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--attribute", type=int, metavar="N",
                    help="instead of the series: hold N (no other load) and print which of the server's mappings "
                         "grew by how much")
    a = ap.parse_args()
    ns_list = [int(x) for x in a.held.split(",")]
    if os.geteuid() != 0:
        sys.exit("hold: needs root (network namespaces, XDP)")
    if not a.server_connections:
        a.server_connections = max(ns_list) + max(ns_list) // 8 + 65536
    if not a.server_time_wait:
        a.server_time_wait = max(a.time_wait + 6_000_000, 4_000_000)
    if not a.skip_build:
        sh(f"cd {ROOT} && cargo build --release -p floodgate -p floodgate-bench --bins")
    results = Path(a.results)
    results.mkdir(parents=True, exist_ok=True)
    lock = open("/tmp/floodgate-testbed.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    Path("/tmp/fg-quiet").touch()
    model = next((l.split(":", 1)[1].strip() for l in sh("lscpu").splitlines() if l.startswith("Model name")), "?")
    runs = []
    try:
        testbed_up()
        if a.attribute:
            attribute(a, a.attribute)
            return
        series = [(n, 0) for n in ns_list]
        if a.time_wait:
            series.append((next((n for n in ns_list if n >= 1_000_000), ns_list[-1]), a.time_wait))
        for n, tw in series:
            for attempt in range(a.attempts):
                print(f"N = {n:,}{f', {tw:,} TIME-WAIT first' if tw else ''} (attempt {attempt + 1})", flush=True)
                r = hold_run(a, n, tw)
                print(f"  held {r['held_at_start']:,} in {r['ramp_seconds']:.1f} s; rps {r['rps_median']:,.0f}/s, "
                      f"cps {r['cps_median']:,.0f}/s, held conns' req/s {r['pings_median']:,.0f}; server "
                      f"{r['server_bytes_per_held']:.0f} B/held, client {r['client_bytes_per_held']:.0f} B/held; "
                      f"errors {r['errors']}; verified {r['verified']:,}; TIME-WAIT {r['time_wait_end']:,}; "
                      f"steal {r['steal_pct']:.1f} %, other processes {r['other_cpu_pct']:.1f} %, busy server {r['busy_server_pct']:.0f} % client "
                      f"{r['busy_client_pct']:.0f} %", flush=True)
                if r["steal_pct"] <= a.max_steal and r["other_cpu_pct"] <= a.max_other:
                    break
                print(f"  steal {r['steal_pct']:.1f} %, other processes {r['other_cpu_pct']:.1f} % "
                      f"(limits {a.max_steal}, {a.max_other}): discarded, run again", flush=True)
                time.sleep(a.pause)
            runs.append(r)
    finally:
        Path("/tmp/fg-quiet").unlink(missing_ok=True)
        sh(f"FG_TESTBED_NS={TESTBED_NS} {ROOT}/deploy/testbed.sh down", check=False)
        lock.close()
    if not runs:
        return
    head = (f"`bench/hold.py --held {a.held}{f' --time-wait {a.time_wait}' if a.time_wait else ''}`, "
            f"{runs[0]['date']}, {model} ({os.cpu_count()} CPUs), {a.seconds} s measured per N, a request on "
            f"each held connection every {a.interval:g} s, {a.rps_conns} connections in bursts of {a.burst}, "
            f"{a.cps_conns} `Connection: close` at a time; server one shard on CPU {SERVER_CPU}, "
            f"client on CPU {CLIENT_CPU}.")
    md = f"{head}\n\n{table(runs)}\n\n```\n{ascii_plot(runs)}\n```\n"
    (results / "hold.md").write_text(md)
    (results / "hold.json").write_text(json.dumps({"args": vars(a), "model": model, "runs": runs}, indent=1))
    svg_plot(runs, results / "hold.svg")
    print("\n" + md)


if __name__ == "__main__":
    main()

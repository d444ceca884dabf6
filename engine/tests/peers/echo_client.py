#!/usr/bin/env python3
"""Echo client for the testbed: many connections from many source addresses,
random payloads, every byte checked, both ways of ending a connection.

Runs in fg-cli (Linux's own TCP stack) against floodgate's `echo` app:

  echo_client.py --server 198.18.0.1 --port 7 --connections 20000 \
      --concurrency 500 --sources 198.18.0.10-73 --timeout 60 --seed 1

or over IPv6 with --server 2001:db8::1 --sources 2001:db8::10-73.

Connection i sends a random payload (1 byte to 32 KiB) and reads it back
while it is still sending (the server's windows and buffers push back).
Even i: the client closes first (close() once every byte has come back; the
echo app answers the FIN with its own). Odd i: the client sends, half-closes
at once (shutdown(SHUT_WR)) and reads until the server closes (EOF); the
connection ends with the server's FIN. Standard library only; bounded in
connections, concurrency and time. Prints one line:

  ok=N failed=M bytes=B elapsed=S client_first=C server_last=D

and the first few failures on stderr. Exit status 0 iff failed == 0.
With --record FILE, also writes each connection's local address and port
("ADDR PORT", one line per connection that connected, in the order they
connected), so a test can compare them with what a backend saw.
"""

import argparse
import errno
import random
import selectors
import socket
import sys
import time


def parse_sources(spec):
    """198.18.0.10-73, or 2001:db8::10-73 (the last group's digits written
    as decimals, as deploy/testbed.sh adds them: ::10 to ::73)."""
    sep = ":" if ":" in spec else "."
    base, _, rng = spec.rpartition(sep)
    lo, _, hi = rng.partition("-")
    hi = hi or lo
    return ["%s%s%d" % (base, sep, i) for i in range(int(lo), int(hi) + 1)]


class Conn:
    __slots__ = ("i", "sock", "payload", "sent", "got", "deadline", "mode", "phase", "wr_shut")

    def __init__(self, i, sock, payload, deadline, mode):
        self.i = i
        self.sock = sock
        self.payload = payload
        self.sent = 0
        self.got = bytearray()
        self.deadline = deadline
        self.mode = mode  # "client" closes first, or "server" closes last
        self.phase = "connect"
        self.wr_shut = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="198.18.0.1")
    ap.add_argument("--port", type=int, default=7)
    ap.add_argument("--connections", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--sources", default="198.18.0.10-73")
    ap.add_argument("--timeout", type=float, default=60.0, help="per connection, seconds")
    ap.add_argument("--total-timeout", type=float, default=600.0)
    ap.add_argument("--max-payload", type=int, default=32768)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--record", help="write each connected socket's 'ADDR PORT' here")
    a = ap.parse_args()

    sources = parse_sources(a.sources)
    family = socket.AF_INET6 if ":" in a.server else socket.AF_INET
    rnd = random.Random(a.seed)
    sel = selectors.DefaultSelector()
    started = time.monotonic()
    end_all = started + a.total_timeout
    next_i = 0
    live = {}
    ok = failed = total_bytes = client_first = server_last = 0
    failures = []
    locals_seen = []

    def fail(c, why):
        nonlocal failed
        failed += 1
        if len(failures) < 10:
            try:
                local = "%s:%d" % c.sock.getsockname()
            except OSError:
                local = "?"
            failures.append("conn %d from %s (%s close, %d/%d sent, %d back): %s"
                            % (c.i, local, c.mode, c.sent, len(c.payload), len(c.got), why))
        finish(c)

    def finish(c):
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        live.pop(c.i, None)

    def start(i):
        # Mostly small payloads, some larger than a buffer chunk.
        n = rnd.randint(1, 2048) if rnd.random() < 0.8 else rnd.randint(2049, a.max_payload)
        payload = rnd.randbytes(n)
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((sources[i % len(sources)], 0))
        c = Conn(i, s, payload, time.monotonic() + a.timeout, "client" if i % 2 == 0 else "server")
        rc = s.connect_ex((a.server, a.port))
        if rc not in (0, errno.EINPROGRESS):
            fail(c, "connect: %s" % errno.errorcode.get(rc, rc))
            return
        live[i] = c
        sel.register(s, selectors.EVENT_WRITE, c)

    while (next_i < a.connections or live) and time.monotonic() < end_all:
        while next_i < a.connections and len(live) < a.concurrency:
            start(next_i)
            next_i += 1
        for key, ev in sel.select(timeout=0.2):
            c = key.data
            s = c.sock
            if c.phase == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, "connect: %s" % errno.errorcode.get(err, err))
                    continue
                c.phase = "data"
                if a.record:
                    locals_seen.append("%s %d" % s.getsockname()[:2])
                sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
                ev = selectors.EVENT_WRITE
            if ev & selectors.EVENT_WRITE and c.sent < len(c.payload):
                try:
                    c.sent += s.send(c.payload[c.sent:c.sent + 65536])
                except BlockingIOError:
                    pass
                except OSError as e:
                    fail(c, "send: %s" % e)
                    continue
            if c.sent == len(c.payload) and not c.wr_shut:
                c.wr_shut = True
                if c.mode == "server":
                    s.shutdown(socket.SHUT_WR)
                sel.modify(s, selectors.EVENT_READ, c)
            if ev & selectors.EVENT_READ:
                eof = False
                try:
                    while True:
                        d = s.recv(65536)
                        if not d:
                            eof = True
                            break
                        c.got += d
                        if len(d) < 65536:
                            break
                except BlockingIOError:
                    pass
                except OSError as e:
                    fail(c, "recv: %s" % e)
                    continue
                if len(c.got) > len(c.payload) or c.got != c.payload[:len(c.got)]:
                    fail(c, "bytes differ")
                    continue
                complete = len(c.got) == len(c.payload)
                if c.mode == "client" and complete and c.sent == len(c.payload):
                    ok += 1
                    client_first += 1
                    total_bytes += len(c.payload)
                    finish(c)
                    continue
                if eof:
                    if c.mode == "server" and complete:
                        ok += 1
                        server_last += 1
                        total_bytes += len(c.payload)
                        finish(c)
                    else:
                        fail(c, "EOF before every byte came back")
                    continue
        now = time.monotonic()
        for c in [c for c in live.values() if now > c.deadline]:
            fail(c, "timed out in phase %s" % c.phase)

    for c in list(live.values()):
        fail(c, "total time over")
    not_started = a.connections - next_i
    failed += not_started
    elapsed = time.monotonic() - started
    print("ok=%d failed=%d bytes=%d elapsed=%.1f client_first=%d server_last=%d"
          % (ok, failed, total_bytes, elapsed, client_first, server_last))
    for f in failures:
        print(f, file=sys.stderr)
    if a.record:
        with open(a.record, "w") as out:
            out.write("".join(line + "\n" for line in locals_seen))
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Echo backend for the proxy tests: checks the PROXY protocol v2 header
(haproxy's proxy-protocol.txt, section 2.2) every connection must start
with, records the client address it carries, then echoes every byte after
it until the peer's FIN, and closes (FIN) once all is echoed.

Runs in the testbed's backend namespace (fgt-be):

  ppv2_echo.py --listen 198.18.2.10:7,198.18.2.11:7 --log /tmp/x.log

One line per connection is appended to --log (flushed at once):

  ok SRC_IP SRC_PORT DST_IP DST_PORT PEER_IP PEER_PORT
  bad REASON PEER_IP PEER_PORT

SRC/DST: the header's client and the address it connected to (the VIP);
PEER: the TCP peer (the proxy's source address and port). A bad header
resets the connection. `--no-header` echoes plain bytes (no PROXY header
expected). Standard library only; a single thread with selectors.
"""

import argparse
import ipaddress
import selectors
import signal
import socket
import struct
import sys

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
# Stop reading from a connection whose echo is this far behind.
MAX_PENDING = 1 << 20


class Conn:
    __slots__ = ("sock", "peer", "hdr", "head", "out", "eof", "reading")

    def __init__(self, sock, peer, hdr):
        self.sock = sock
        self.peer = peer
        self.hdr = hdr  # still expecting the PROXY header
        self.head = bytearray()
        self.out = bytearray()
        self.eof = False
        self.reading = True


def parse_header(buf):
    """(consumed, record) once the header is complete, (0, None) when more
    bytes are needed; raises ValueError on a malformed header."""
    if len(buf) < 16:
        if not SIG.startswith(bytes(buf[: len(SIG)])):
            raise ValueError("signature")
        return 0, None
    if bytes(buf[:12]) != SIG:
        raise ValueError("signature")
    ver_cmd, fam, length = buf[12], buf[13], struct.unpack("!H", buf[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise ValueError("version %#x" % ver_cmd)
    if len(buf) < 16 + length:
        return 0, None
    body = bytes(buf[16 : 16 + length])
    if ver_cmd & 0xF == 0:  # LOCAL: no addresses to report
        return 16 + length, "local"
    if ver_cmd & 0xF != 1:
        raise ValueError("command %#x" % ver_cmd)
    if fam == 0x11:  # TCP over IPv4
        if length < 12:
            raise ValueError("short TCP4 block")
        src, dst = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        sport, dport = struct.unpack("!HH", body[8:12])
    elif fam == 0x21:  # TCP over IPv6
        if length < 36:
            raise ValueError("short TCP6 block")
        src, dst = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        sport, dport = struct.unpack("!HH", body[32:36])
    else:
        raise ValueError("family %#x" % fam)
    return 16 + length, "%s %d %s %d" % (src, sport, dst, dport)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="ADDR:PORT[,ADDR:PORT...]")
    ap.add_argument("--log", required=True)
    ap.add_argument("--no-header", action="store_true")
    args = ap.parse_args()

    log = open(args.log, "a", buffering=1)
    sel = selectors.DefaultSelector()
    for spec in args.listen.split(","):
        host, _, port = spec.rpartition(":")
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, int(port)))
        ls.listen(4096)
        ls.setblocking(False)
        sel.register(ls, selectors.EVENT_READ, None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening", flush=True)

    def update(c):
        ev = (selectors.EVENT_READ if c.reading else 0) | (selectors.EVENT_WRITE if c.out else 0)
        if ev:
            sel.modify(c.sock, ev, c)

    def finish(c, reset=False):
        sel.unregister(c.sock)
        if reset:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()

    while True:
        for key, mask in sel.select(timeout=1.0):
            c = key.data
            if c is None:
                try:
                    s, peer = key.fileobj.accept()
                except BlockingIOError:
                    continue
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(s, selectors.EVENT_READ, Conn(s, peer, not args.no_header))
                continue
            if mask & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError:
                    finish(c)
                    continue
                if data == b"":
                    c.eof, c.reading = True, False
                elif data:
                    if c.hdr:
                        c.head += data
                        try:
                            used, rec = parse_header(c.head)
                        except ValueError as e:
                            log.write("bad %s %s %d\n" % (e, c.peer[0], c.peer[1]))
                            finish(c, reset=True)
                            continue
                        if rec is not None:
                            log.write("ok %s %s %d\n" % (rec, c.peer[0], c.peer[1]))
                            c.hdr = False
                            c.out += c.head[used:]
                            c.head = bytearray()
                    else:
                        c.out += data
                    if len(c.out) >= MAX_PENDING:
                        c.reading = False
            if c.out:
                try:
                    n = c.sock.send(c.out)
                    del c.out[:n]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    finish(c)
                    continue
                if not c.eof and len(c.out) < MAX_PENDING:
                    c.reading = True
            if c.eof and not c.out:
                if c.hdr:
                    log.write("bad eof-before-header %s %d\n" % (c.peer[0], c.peer[1]))
                finish(c)
                continue
            update(c)


if __name__ == "__main__":
    main()

"""Small traffic helpers the lab runs inside its namespaces (``ip netns exec NS python -m
fabricscope.lab.udpgen ...``): a UDP flow sender, a UDP sink, a gratuitous ARP.

Standard library only, so it starts fast in every namespace.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path


def send(dst: str, dport: int, sport: int, count: int, size: int, interval: float) -> int:
    """Send ``count`` datagrams of ``size`` bytes from ``sport`` to ``dst:dport``."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", sport))
    payload = bytearray(size)
    sent = 0
    next_t = time.monotonic()
    for i in range(count):
        struct.pack_into("!I", payload, 0, i)
        try:
            s.sendto(payload, (dst, dport))
            sent += 1
        except OSError:  # an ICMP error from an earlier datagram; keep going
            pass
        if interval > 0:
            next_t += interval
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    s.close()
    return sent


def sink(port: int, pidfile: str | None, daemon: bool, address: str = "0.0.0.0") -> None:
    """Receive and discard UDP datagrams on ``port`` (so senders get no ICMP errors)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, port))
    if daemon:
        if os.fork():
            os._exit(0)
        os.setsid()
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    if pidfile:
        tmp = Path(pidfile + ".tmp")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(pidfile)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        s.recv(65535)


def garp(iface: str, ip: str, mac: str) -> None:
    """Broadcast a gratuitous ARP request (sender = target = ``ip``) on ``iface``."""
    hw = bytes.fromhex(mac.replace(":", ""))
    addr = socket.inet_aton(ip)
    frame = (b"\xff" * 6 + hw + b"\x08\x06"
             + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + addr + b"\x00" * 6 + addr)
    frame += b"\x00" * (60 - len(frame))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for _ in range(3):
        s.send(frame)
        time.sleep(0.05)
    s.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fabricscope.lab.udpgen")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("send")
    a.add_argument("--dst", required=True)
    a.add_argument("--dport", type=int, required=True)
    a.add_argument("--sport", type=int, required=True)
    a.add_argument("--count", type=int, default=100)
    a.add_argument("--size", type=int, default=200)
    a.add_argument("--interval", type=float, default=0.001)
    b = sub.add_parser("sink")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--address", default="0.0.0.0")
    b.add_argument("--pidfile")
    b.add_argument("--daemon", action="store_true")
    c = sub.add_parser("garp")
    c.add_argument("--iface", required=True)
    c.add_argument("--ip", required=True)
    c.add_argument("--mac", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "send":
        n = send(args.dst, args.dport, args.sport, args.count, args.size, args.interval)
        print(n)
    elif args.cmd == "sink":
        sink(args.port, args.pidfile, args.daemon, args.address)
    else:
        garp(args.iface, args.ip, args.mac)
    return 0


if __name__ == "__main__":
    sys.exit(main())

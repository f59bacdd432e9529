"""Send the sFlow datagrams of a capture (a sim's ``sflow.pcap``) to a live collector.

The UDP payloads go out in capture order from one socket, paced by the capture's
timestamps (``speed`` times faster), at a fixed number of datagrams per second, or as
fast as the socket takes them. Frames that are not Ethernet/IPv4-or-IPv6/UDP are skipped
and counted.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fabricscope.errors import InputError, UsageError


@dataclass
class ReplayStats:
    sent: int = 0
    bytes: int = 0
    skipped: int = 0
    retries: int = 0
    seconds: float = 0.0
    capture_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        rate = self.sent / self.seconds if self.seconds > 0 else 0.0
        return {"sent": self.sent, "bytes": self.bytes, "skipped": self.skipped,
                "retries": self.retries, "seconds": round(self.seconds, 3),
                "capture_seconds": round(self.capture_seconds, 3),
                "datagrams_per_second": round(rate, 1)}


def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` -> (host, port)."""
    t = text.strip()
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port_s = rest.lstrip(":")
    else:
        host, _, port_s = t.rpartition(":")
    try:
        port = int(port_s)
    except ValueError:
        raise UsageError(f"--to: expected HOST:PORT, got {text!r}") from None
    if not host or not 0 < port < 65536:
        raise UsageError(f"--to: expected HOST:PORT, got {text!r}")
    return host, port


def _payloads(buf: np.ndarray, off: np.ndarray, cap: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end of the UDP payload of each Ethernet frame, and which frames are
    UDP at all (vectorised)."""
    n = off.shape[0]
    ok = cap >= 42

    def at(pos: np.ndarray) -> np.ndarray:
        out: np.ndarray = buf[np.minimum(pos, buf.shape[0] - 1)].astype(np.int64)
        return out

    et = (at(off + 12) << 8) | at(off + 13)
    vlan = et == 0x8100
    l3 = off + 14 + np.where(vlan, 4, 0)
    et = np.where(vlan, (at(off + 16) << 8) | at(off + 17), et)
    v4 = et == 0x0800
    v6 = et == 0x86DD
    ihl = (at(l3) & 0x0F) * 4
    proto = np.where(v4, at(l3 + 9), at(l3 + 6))
    l4 = np.where(v4, l3 + ihl, l3 + 40)
    ok &= (v4 | v6) & (proto == 17) & (l4 + 8 <= off + cap)
    udp_len = (at(l4 + 4) << 8) | at(l4 + 5)
    start = l4 + 8
    end = np.minimum(off + cap, l4 + np.maximum(udp_len, 8))
    ok &= end >= start
    del n
    return start, end, ok


def replay(source: str | Path, host: str, port: int, *, rate: float | None = None,
           speed: float | None = None, limit: int | None = None,
           progress: Callable[[ReplayStats], None] | None = None) -> ReplayStats:
    """Send the UDP payloads of ``source`` (a pcap/pcapng file, or a sim output directory)
    to ``host:port``. ``speed``: pace by capture time, that many times faster; ``rate``:
    datagrams per second; neither: as fast as possible."""
    from fabricscope.capture import open_capture

    if rate is not None and speed is not None:
        raise UsageError("give --rate or --realtime/--speed, not both")
    if rate is not None and rate <= 0:
        raise UsageError("--rate must be positive")
    if speed is not None and speed <= 0:
        raise UsageError("--speed must be positive")
    path = Path(source)
    if path.is_dir():
        path = path / "sflow.pcap"
    if not path.exists():
        raise InputError("no such file", path=str(path))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise UsageError(f"--to: cannot resolve {host!r}: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    st = ReplayStats()
    t0 = time.perf_counter()
    first_ts: int | None = None
    last_ts = 0
    try:
        with open_capture(path) as cap:
            for batch in cap:
                start, end, ok = _payloads(batch.buf, batch.offset, batch.caplen)
                st.skipped += int((~ok).sum())
                mv = memoryview(batch.buf.data)
                ts = batch.ts_ns
                for i in np.nonzero(ok)[0]:
                    if limit is not None and st.sent >= limit:
                        break
                    t = int(ts[i])
                    if first_ts is None:
                        first_ts = t
                    last_ts = t
                    if speed is not None:
                        due = (t - first_ts) / 1e9 / speed
                        wait = due - (time.perf_counter() - t0)
                        if wait > 0:
                            time.sleep(wait)
                    elif rate is not None:
                        wait = st.sent / rate - (time.perf_counter() - t0)
                        if wait > 0:
                            time.sleep(wait)
                    data = mv[int(start[i]): int(end[i])]
                    while True:
                        try:
                            sock.sendto(data, addr)
                            break
                        except OSError as exc:
                            if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
                                raise UsageError(f"--to: cannot send to {host}:{port}: "
                                                 f"{exc.strerror}") from None
                            st.retries += 1
                            time.sleep(0.0005)
                    st.sent += 1
                    st.bytes += len(data)
                    if progress is not None and st.sent % 4096 == 0:
                        st.seconds = time.perf_counter() - t0
                        progress(st)
                if limit is not None and st.sent >= limit:
                    break
    finally:
        sock.close()
    st.seconds = time.perf_counter() - t0
    st.capture_seconds = (last_ts - first_ts) / 1e9 if first_ts is not None else 0.0
    return st

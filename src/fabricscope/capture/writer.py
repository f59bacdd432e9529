"""Write pcap (draft-ietf-opsawg-pcap) and pcapng (draft-ietf-opsawg-pcapng) files.

:class:`PcapWriter` writes the classic format: a 24-byte file header, then per frame a
16-byte record header and the captured bytes,

```
    +---------------------------------------------------------------+
  0 |                      Timestamp (Seconds)                      |
  4 |            Timestamp (Microseconds or nanoseconds)            |
  8 |                    Captured Packet Length                     |
 12 |                    Original Packet Length                     |
 16 /                          Packet Data                          /
    +---------------------------------------------------------------+
```

with :meth:`PcapWriter.write_batch` packing millions of frames per second from NumPy
columns (a numba loop, no Python object per frame): the simulator and the benchmarks use it.

:class:`PcapngWriter` writes a Section Header Block, one Interface Description Block per
interface (each with its own link type, ``if_tsresol`` and ``if_tsoffset``) and Enhanced
Packet Blocks (or Simple Packet Blocks), in either byte order; it exists for tests:

```
    +---------------------------------------------------------------+
  0 |                          Block Type                           |
  4 |                      Block Total Length                       |
  8 /                Block Body (padded to 32 bits)                 /
    |                      Block Total Length                       |
    +---------------------------------------------------------------+
```

A path ending in ``.gz`` is written gzip-compressed. Both writers are context managers.
"""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

import numpy as np
from numba import njit
from numpy.typing import ArrayLike

from fabricscope.capture.frames import I64, U8
from fabricscope.capture.pcap import MAGICS, MAX_RECORD, NS_PER_S

BATCH_SLICE: Final = 1 << 16
"""write_batch packs this many frames at a time (bounds its scratch memory)."""

ByteOrder = Literal["little", "big"]


def _open(path: str | Path, compresslevel: int) -> io.BufferedIOBase:
    if str(path).endswith(".gz"):
        return gzip.open(path, "wb", compresslevel=compresslevel)
    return open(path, "wb")


def _split_ts(ts_ns: int, nanosecond: bool) -> tuple[int, int]:
    sec, frac = divmod(int(ts_ns), NS_PER_S)
    return sec & 0xFFFFFFFF, frac if nanosecond else frac // 1000


@njit(cache=True)
def _wr32(out: U8, i: int, v: int, big: bool) -> None:
    if big:
        out[i] = (v >> 24) & 0xFF
        out[i + 1] = (v >> 16) & 0xFF
        out[i + 2] = (v >> 8) & 0xFF
        out[i + 3] = v & 0xFF
    else:
        out[i] = v & 0xFF
        out[i + 1] = (v >> 8) & 0xFF
        out[i + 2] = (v >> 16) & 0xFF
        out[i + 3] = (v >> 24) & 0xFF


@njit(cache=True)
def _pack_records(buf: U8, offset: I64, caplen: I64, wirelen: I64, ts_ns: I64,
                  snaplen: int, nanosecond: bool, big: bool, out: U8) -> int:
    """Record headers and data of every frame into ``out``; returns the bytes written."""
    pos = 0
    for i in range(offset.shape[0]):
        n = min(caplen[i], snaplen)
        t = ts_ns[i]
        sec = t // NS_PER_S
        frac = t - sec * NS_PER_S
        if not nanosecond:
            frac //= 1000
        _wr32(out, pos, sec & 0xFFFFFFFF, big)
        _wr32(out, pos + 4, frac, big)
        _wr32(out, pos + 8, n, big)
        _wr32(out, pos + 12, wirelen[i] & 0xFFFFFFFF, big)
        o = offset[i]
        src = buf[o : o + n]
        dst = out[pos + 16 : pos + 16 + n]
        for j in range(n):  # an element loop over views: far faster in numba than
            dst[j] = src[j]  # slice assignment (which guards against overlap) for short frames
        pos += 16 + n
    return pos


class PcapWriter:
    """A classic pcap file: ``PcapWriter(path, linktype=1, nanosecond=False, snaplen=65535)``.

    Frames longer than ``snaplen`` are cut to it (the original length is kept).
    """

    def __init__(self, path: str | Path, linktype: int = 1, nanosecond: bool = False,
                 snaplen: int = 65535, *, byteorder: ByteOrder = "little",
                 compresslevel: int = 6) -> None:
        if not 0 < snaplen <= MAX_RECORD:
            raise ValueError(f"snaplen must be in 1..{MAX_RECORD}, not {snaplen}")
        self.path = str(path)
        self.linktype = linktype
        self.nanosecond = nanosecond
        self.snaplen = snaplen
        self.big = byteorder == "big"
        self.frames = 0
        magic = next(m for m, (big, nsec) in MAGICS.items()
                     if big == self.big and nsec == nanosecond)
        self._order = ">" if self.big else "<"
        self._f = _open(path, compresslevel)
        self._f.write(magic + struct.pack(self._order + "HHIIII", 2, 4, 0, 0, snaplen,
                                          linktype & 0xFFFFFFFF))

    def write(self, frame: bytes, ts_ns: int, wirelen: int | None = None) -> None:
        """One frame, timestamped ``ts_ns`` nanoseconds since the epoch."""
        data = bytes(frame[: self.snaplen])
        sec, frac = _split_ts(ts_ns, self.nanosecond)
        orig = len(frame) if wirelen is None else wirelen
        self._f.write(struct.pack(self._order + "IIII", sec, frac, len(data),
                                  orig & 0xFFFFFFFF) + data)
        self.frames += 1

    def write_batch(self, buf: ArrayLike, offset: ArrayLike, caplen: ArrayLike,
                    wirelen: ArrayLike | None, ts_ns: ArrayLike) -> None:
        """Many frames at once: frame i is ``buf[offset[i] : offset[i] + caplen[i]]``.

        ``wirelen`` None means the frames were captured whole (wirelen = caplen).
        """
        data = np.ascontiguousarray(buf, np.uint8).reshape(-1)
        off = np.ascontiguousarray(offset, np.int64)
        cap = np.ascontiguousarray(caplen, np.int64)
        ts = np.ascontiguousarray(ts_ns, np.int64)
        wire = cap if wirelen is None else np.ascontiguousarray(wirelen, np.int64)
        n = off.shape[0]
        if not (cap.shape[0] == wire.shape[0] == ts.shape[0] == n):
            raise ValueError("offset, caplen, wirelen and ts_ns must have the same length")
        if n and (off.min() < 0 or cap.min() < 0 or int((off + cap).max()) > data.shape[0]):
            raise ValueError("a frame lies outside buf")
        for start in range(0, n, BATCH_SLICE):
            sl = slice(start, start + BATCH_SLICE)
            c = np.minimum(cap[sl], self.snaplen)
            out = np.empty(int(c.sum()) + 16 * c.shape[0], np.uint8)
            used = _pack_records(data, off[sl], cap[sl], wire[sl], ts[sl], self.snaplen,
                                 self.nanosecond, self.big, out)
            self._f.write(out[:used].data)
        self.frames += n

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def units_from_ns(ts_ns: int, tsresol: int, tsoffset: int = 0) -> int:
    """A timestamp in nanoseconds as a count of ``if_tsresol`` units (floor)."""
    t = int(ts_ns) - tsoffset * NS_PER_S
    k = tsresol & 0x7F
    if tsresol & 0x80:
        return (t << k) // NS_PER_S
    return t * int(10**k) // NS_PER_S


class PcapngWriter:
    """A pcapng file with one section: add interfaces, then write packets on them.

    ``add_interface(linktype, tsresol=6, ...)`` returns the interface id; ``tsresol`` is the
    raw ``if_tsresol`` byte (6 -> microseconds, 9 -> nanoseconds, 0x80 | 20 -> 2^-20 s).
    """

    def __init__(self, path: str | Path, *, byteorder: ByteOrder = "little",
                 compresslevel: int = 6) -> None:
        self.path = str(path)
        self._order = ">" if byteorder == "big" else "<"
        self._f = _open(path, compresslevel)
        self._ifaces: list[tuple[int, int, int]] = []  # (tsresol, tsoffset, snaplen)
        self.frames = 0
        self.new_section()

    def _u32(self, v: int) -> bytes:
        return struct.pack(self._order + "I", v & 0xFFFFFFFF)

    def write_block(self, block_type: int, body: bytes) -> None:
        """Any block: the body is padded to 32 bits and framed by its lengths."""
        body = _pad4(body)
        total = self._u32(len(body) + 12)
        self._f.write(self._u32(block_type) + total + body + total)

    def new_section(self, options: bytes = b"") -> None:
        """A Section Header Block (version 1.0, section length unspecified)."""
        self._ifaces = []
        body = struct.pack(self._order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options
        self.write_block(0x0A0D0D0A, body)

    def option(self, code: int, value: bytes) -> bytes:
        """One option (code, length, value padded to 32 bits) for a block body."""
        return struct.pack(self._order + "HH", code, len(value)) + _pad4(value)

    def add_interface(self, linktype: int = 1, *, tsresol: int = 6, snaplen: int = 0,
                      tsoffset: int = 0, name: str | None = None) -> int:
        opts = b""
        if name is not None:
            opts += self.option(2, name.encode())
        opts += self.option(9, bytes([tsresol]))
        if tsoffset:
            opts += self.option(14, struct.pack(self._order + "q", tsoffset))
        opts += self.option(0, b"")
        body = struct.pack(self._order + "HHI", linktype, 0, snaplen) + opts
        self.write_block(1, body)
        self._ifaces.append((tsresol, tsoffset, snaplen))
        return len(self._ifaces) - 1

    def write(self, frame: bytes, ts_ns: int, iface: int = 0, wirelen: int | None = None,
              options: bytes = b"") -> None:
        """An Enhanced Packet Block on interface ``iface``."""
        tsresol, tsoffset, _snap = self._ifaces[iface]
        units = units_from_ns(ts_ns, tsresol, tsoffset) & 0xFFFFFFFFFFFFFFFF
        orig = len(frame) if wirelen is None else wirelen
        body = struct.pack(self._order + "IIIII", iface, units >> 32, units & 0xFFFFFFFF,
                           len(frame), orig) + _pad4(bytes(frame)) + options
        self.write_block(6, body)
        self.frames += 1

    def write_simple(self, frame: bytes, wirelen: int | None = None) -> None:
        """A Simple Packet Block (first interface, no timestamp)."""
        orig = len(frame) if wirelen is None else wirelen
        self.write_block(3, self._u32(orig) + bytes(frame))
        self.frames += 1

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> PcapngWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


__all__ = ["PcapWriter", "PcapngWriter", "units_from_ns"]

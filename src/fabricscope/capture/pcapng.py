"""pcapng files (draft-ietf-opsawg-pcapng, "PCAP Now Generic (pcapng) Capture File Format").

A pcapng file is a sequence of blocks, each with this general structure (section 3.1),
in the byte order of the section it belongs to:

```
                        1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
  0 |                          Block Type                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
  4 |                      Block Total Length                       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
  8 /                          Block Body                           /
    /              variable length, padded to 32 bits               /
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                      Block Total Length                       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
```

Blocks read here:

- Section Header Block (type 0x0A0D0D0A, section 4.1): body = Byte-Order Magic
  0x1A2B3C4D (u32), Major Version (u16, must be 1), Minor Version (u16), Section Length
  (i64), options (skipped). Each SHB starts a new section, which may switch byte order
  and forgets the interfaces of the previous one.
- Interface Description Block (type 1, section 4.2): LinkType (u16), Reserved (u16),
  SnapLen (u32), options; ``if_tsresol`` (code 9: 1 byte, most significant bit 0 ->
  10^-n seconds, 1 -> 2^-n seconds; default 10^-6) and ``if_tsoffset`` (code 14: i64
  seconds added to every timestamp) are used. Interfaces are numbered 0, 1, ... in the
  order of their IDBs within the section.
- Enhanced Packet Block (type 6, section 4.3):

```
    +---------------------------------------------------------------+
  0 |                    Block Type = 0x00000006                    |
    +---------------------------------------------------------------+
  4 |                      Block Total Length                       |
    +---------------------------------------------------------------+
  8 |                         Interface ID                          |
    +---------------------------------------------------------------+
 12 |                        Timestamp (High)                       |
    +---------------------------------------------------------------+
 16 |                        Timestamp (Low)                        |
    +---------------------------------------------------------------+
 20 |                    Captured Packet Length                     |
    +---------------------------------------------------------------+
 24 |                    Original Packet Length                     |
    +---------------------------------------------------------------+
 28 /                          Packet Data                          /
    /              variable length, padded to 32 bits               /
    +---------------------------------------------------------------+
    /                      Options (variable)                       /
    +---------------------------------------------------------------+
    |                      Block Total Length                       |
    +---------------------------------------------------------------+
```

- Simple Packet Block (type 3, section 4.4): Original Packet Length (u32) then the data;
  it belongs to the first interface, carries no timestamp (ts 0) and its captured length
  is min(original length, body length, the interface's SnapLen when non-zero).
- the obsolete Packet Block (type 2, appendix A): like the EPB with a 16-bit Interface ID
  followed by a 16-bit drops count.

Every other block (Name Resolution, Interface Statistics, Decryption Secrets, custom...)
is skipped by its length. Packet blocks are walked by :func:`walk_blocks` (numba); the
rare SHB and IDB are handed back to Python, which parses them and resumes the walk.

Bad input ends the read with an :class:`~fabricscope.errors.InputError` naming the offset
of the bad block, after every good frame before it: a Block Total Length below 12, not a
multiple of 4, above 256 MiB, running past the end of the file, or with a trailing copy
that differs from the leading one; a packet block naming an interface the section does
not have, or claiming more captured bytes than its body holds.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Final

import numpy as np
from numba import njit

from fabricscope.capture import linktypes
from fabricscope.capture.frames import I8, I32, I64, U8
from fabricscope.capture.pcap import (
    MAX_RECORD,
    NS_PER_S,
    ST_END,
    ST_ERROR,
    ST_FULL,
    ST_NEED,
    ST_PYTHON,
    rd16,
    rd32,
)

if TYPE_CHECKING:
    from fabricscope.capture.reader import BatchArrays, Stream

MAGIC: Final = b"\x0a\x0d\x0d\x0a"
BT_SHB: Final = 0x0A0D0D0A
BT_IDB: Final = 1
BT_PB: Final = 2
BT_SPB: Final = 3
BT_EPB: Final = 6
BOM_BE: Final = b"\x1a\x2b\x3c\x4d"
BOM_LE: Final = b"\x4d\x3c\x2b\x1a"

OPT_ENDOFOPT: Final = 0
OPT_IF_TSRESOL: Final = 9
OPT_IF_TSOFFSET: Final = 14

SHB_MIN: Final = 28
IDB_MIN: Final = 20
EPB_MIN: Final = 32
SPB_MIN: Final = 16

E_TRUNC_BLOCK_HEADER: Final = 1
E_BLOCK_SHORT: Final = 2
E_BLOCK_ALIGN: Final = 3
E_TOO_BIG: Final = 4
E_TRUNC_BLOCK: Final = 5
E_TRAILER: Final = 6
E_TYPE_SHORT: Final = 7
E_CAPLEN: Final = 8
E_BAD_IFACE: Final = 9
E_NO_IFACE: Final = 10

TS_DECIMAL: Final = 0
TS_BINARY: Final = 1

BLOCK_NAMES: Final[dict[int, str]] = {
    BT_SHB: "section header block",
    BT_IDB: "interface description block",
    BT_PB: "packet block",
    BT_SPB: "simple packet block",
    4: "name resolution block",
    5: "interface statistics block",
    BT_EPB: "enhanced packet block",
    10: "decryption secrets block",
}


def block_name(btype: int) -> str:
    return BLOCK_NAMES.get(btype, f"block type 0x{btype:08x}")


@njit(cache=True)
def ts_to_ns(ts: int, mode: int, a: int, b: int) -> int:
    """Timestamp units of an interface to nanoseconds (parameters from :func:`resolution`)."""
    if mode == TS_DECIMAL:
        if b == 1:
            return ts * a
        return ts // b
    k = a
    sec = ts >> k
    frac = ts & ((1 << k) - 1)
    if k > 33:
        frac >>= k - 33
        k = 33
    return sec * NS_PER_S + ((frac * NS_PER_S) >> k)


@njit(cache=True)
def walk_blocks(buf: U8, pos: int, end: int, base: int, eof: bool, big: bool, n: int,
                offset: I64, caplen: I64, wirelen: I64, ts_ns: I64, file_offset: I64,
                linktype: I32, iface: I32, ts_prec: I8,
                if_count: int, if_link: I32, if_snap: I64, if_mode: I64, if_a: I64,
                if_b: I64, if_off: I64, if_prec: I8,
                ) -> tuple[int, int, int, int, int, int, int]:
    """Fill columns from index ``n`` with the packet blocks in ``buf[pos:end]``.

    Stops with ST_PYTHON at a section header or interface description block, which
    Python parses (``if_*`` are the section's interface tables, ``if_count`` long).
    """
    # one copy of the loop per byte order, the order a constant in each
    if big:
        return _walk_blocks(buf, pos, end, base, eof, True, n, offset, caplen, wirelen, ts_ns,
                            file_offset, linktype, iface, ts_prec, if_count, if_link, if_snap,
                            if_mode, if_a, if_b, if_off, if_prec)
    return _walk_blocks(buf, pos, end, base, eof, False, n, offset, caplen, wirelen, ts_ns,
                        file_offset, linktype, iface, ts_prec, if_count, if_link, if_snap,
                        if_mode, if_a, if_b, if_off, if_prec)


@njit(cache=True)
def _walk_blocks(buf: U8, pos: int, end: int, base: int, eof: bool, big: bool, n: int,
                 offset: I64, caplen: I64, wirelen: I64, ts_ns: I64, file_offset: I64,
                 linktype: I32, iface: I32, ts_prec: I8,
                 if_count: int, if_link: I32, if_snap: I64, if_mode: I64, if_a: I64,
                 if_b: I64, if_off: I64, if_prec: I8,
                 ) -> tuple[int, int, int, int, int, int, int]:
    cap = offset.shape[0]
    while n < cap:
        left = end - pos
        if left < 8:
            if not eof:
                return n, pos, ST_NEED, 8, 0, 0, 0
            if left == 0:
                return n, pos, ST_END, 0, 0, 0, 0
            return n, pos, ST_ERROR, E_TRUNC_BLOCK_HEADER, left, 0, 0
        btype = rd32(buf, pos, big)
        if btype == BT_SHB:
            return n, pos, ST_PYTHON, 0, 0, 0, 0
        blen = rd32(buf, pos + 4, big)
        if blen < 12:
            return n, pos, ST_ERROR, E_BLOCK_SHORT, blen, btype, 0
        if blen & 3:
            return n, pos, ST_ERROR, E_BLOCK_ALIGN, blen, btype, 0
        if blen > MAX_RECORD:
            return n, pos, ST_ERROR, E_TOO_BIG, blen, btype, 0
        if left < blen:
            if not eof:
                return n, pos, ST_NEED, blen, 0, 0, 0
            return n, pos, ST_ERROR, E_TRUNC_BLOCK, blen, left, btype
        trail = rd32(buf, pos + blen - 4, big)
        if trail != blen:
            return n, pos, ST_ERROR, E_TRAILER, blen, trail, btype
        if btype in (BT_EPB, BT_PB):
            if blen < 32:
                return n, pos, ST_ERROR, E_TYPE_SHORT, blen, btype, 32
            if btype == BT_EPB:
                ifid = rd32(buf, pos + 8, big)
            else:
                ifid = rd16(buf, pos + 8, big)
            if ifid >= if_count:
                return n, pos, ST_ERROR, E_BAD_IFACE, ifid, if_count, btype
            incl = rd32(buf, pos + 20, big)
            if incl > blen - 32:
                return n, pos, ST_ERROR, E_CAPLEN, incl, blen - 32, btype
            ts = (rd32(buf, pos + 12, big) << 32) | rd32(buf, pos + 16, big)
            offset[n] = pos + 28
            caplen[n] = incl
            wirelen[n] = rd32(buf, pos + 24, big)
            ts_ns[n] = ts_to_ns(ts, if_mode[ifid], if_a[ifid], if_b[ifid]) + if_off[ifid]
            file_offset[n] = base + pos
            linktype[n] = if_link[ifid]
            iface[n] = ifid
            ts_prec[n] = if_prec[ifid]
            n += 1
        elif btype == BT_SPB:
            if blen < 16:
                return n, pos, ST_ERROR, E_TYPE_SHORT, blen, btype, 16
            if if_count == 0:
                return n, pos, ST_ERROR, E_NO_IFACE, 0, 0, btype
            orig = rd32(buf, pos + 8, big)
            incl = min(orig, blen - 16)
            snap = if_snap[0]
            if snap > 0 and incl > snap:
                incl = snap
            offset[n] = pos + 12
            caplen[n] = incl
            wirelen[n] = orig
            ts_ns[n] = 0
            file_offset[n] = base + pos
            linktype[n] = if_link[0]
            iface[n] = 0
            ts_prec[n] = if_prec[0]
            n += 1
        elif btype == BT_IDB:
            return n, pos, ST_PYTHON, 0, 0, 0, 0
        pos += blen
    return n, pos, ST_FULL, 0, 0, 0, 0


def resolution(tsresol: int) -> tuple[int, int, int, int]:
    """(mode, a, b, digits) for :func:`ts_to_ns` from an ``if_tsresol`` byte.

    Decimal 10^-k: ns = ts * 10^(9-k) when k <= 9, else ts // 10^(k-9). Binary 2^-k:
    a = k (capped at 62, beyond which no 64-bit count reaches a second). ``digits`` is the
    number of fractional second digits the resolution really gives (at most 9, since
    timestamps are nanoseconds): 10^-6 -> 6, 2^-20 -> 6, 2^-30 -> 9.
    """
    k = tsresol & 0x7F
    if tsresol & 0x80:
        digits = min(9, round(k * math.log10(2)))
        return TS_BINARY, min(k, 62), 0, digits
    digits = min(9, k)
    if k <= 9:
        return TS_DECIMAL, 10 ** (9 - k), 1, digits
    if k - 9 <= 18:
        return TS_DECIMAL, 1, 10 ** (k - 9), digits
    return TS_DECIMAL, 0, 1, digits  # finer than 10^-27 s: every 64-bit count is < 1 ns


def _wrap64(value: int) -> int:
    return ((value + (1 << 63)) % (1 << 64)) - (1 << 63)


class _Interfaces:
    """The interface tables of the current section, grown by doubling."""

    def __init__(self) -> None:
        self.count = 0
        self.link = np.zeros(4, np.int32)
        self.snap = np.zeros(4, np.int64)
        self.mode = np.zeros(4, np.int64)
        self.a = np.zeros(4, np.int64)
        self.b = np.ones(4, np.int64)
        self.off = np.zeros(4, np.int64)
        self.prec = np.zeros(4, np.int8)

    def add(self, link: int, snaplen: int, tsresol: int, tsoffset: int) -> None:
        i = self.count
        if i == self.link.shape[0]:
            for name in ("link", "snap", "mode", "a", "b", "off", "prec"):
                old = getattr(self, name)
                new = np.zeros(2 * i, old.dtype)
                new[:i] = old
                setattr(self, name, new)
        mode, a, b, digits = resolution(tsresol)
        self.link[i] = link
        self.snap[i] = snaplen
        self.mode[i] = mode
        self.a[i] = a
        self.b[i] = b
        self.off[i] = _wrap64(tsoffset * 1_000_000_000)
        self.prec[i] = digits
        self.count = i + 1


class PcapngParser:
    """Walks the blocks of a pcapng stream (starting at its first SHB)."""

    format = "pcapng"
    per_frame_link = True

    def __init__(self, path: str) -> None:
        self.path = path
        self.big = False
        self.sections = 0
        self.interfaces = _Interfaces()
        self.section_linktypes: list[list[int]] = []
        """Per section seen so far, the link type of each interface."""

    def walk(self, stream: Stream, arr: BatchArrays, n: int) -> tuple[int, int, int, int, int, int]:
        ifs = self.interfaces
        n, pos, status, code, a, b, c = walk_blocks(
            stream.buf, stream.pos, stream.end, stream.base, stream.eof, self.big, n,
            arr.offset, arr.caplen, arr.wirelen, arr.ts_ns, arr.file_offset,
            arr.linktype, arr.iface, arr.ts_prec,
            ifs.count, ifs.link, ifs.snap, ifs.mode, ifs.a, ifs.b, ifs.off, ifs.prec)
        stream.pos = int(pos)
        return int(n), int(status), int(code), int(a), int(b), int(c)

    def columns(self, arr: BatchArrays, n: int) -> tuple[I32, I32, I8]:
        """The link type, interface and precision columns of a batch (filled per frame)."""
        return arr.linktype[:n], arr.iface[:n], arr.ts_prec[:n]

    def python_block(self, stream: Stream) -> int | str:
        """Parse the SHB or IDB at the stream position.

        Returns 0 when done (position moved past the block), the number of bytes the block
        needs when the buffer does not hold it yet, or the error message.
        """
        pos = stream.pos
        left = stream.available()
        if stream.peek(4) == MAGIC:
            return self._section(stream, pos, left)
        return self._interface(stream, pos)

    def _section(self, stream: Stream, pos: int, left: int) -> int | str:
        if left < 12:
            if not stream.eof:
                return 12
            return f"truncated section header block: 12 bytes needed, {left} left"
        head = stream.peek(12)
        bom = head[8:12]
        if bom == BOM_BE:
            big = True
        elif bom == BOM_LE:
            big = False
        else:
            return f"bad byte-order magic 0x{bom.hex()} in section header block"
        order = ">" if big else "<"
        (blen,) = struct.unpack_from(order + "I", head, 4)
        if blen < SHB_MIN:
            return (f"bad block length {blen}: a section header block has at "
                    f"least {SHB_MIN} bytes")
        if blen & 3:
            return (f"bad block length {blen}: not a multiple of 4 "
                    "(section header block)")
        if blen > MAX_RECORD:
            return (f"lying block length: section header block says {blen} bytes, "
                    f"more than the {MAX_RECORD >> 20} MiB limit")
        if left < blen:
            if not stream.eof:
                return int(blen)
            return (f"truncated block: section header block says {blen} bytes, "
                    f"{left} left")
        block = stream.peek(SHB_MIN)  # options are skipped, not parsed
        (trail,) = struct.unpack_from(order + "I", stream.buf[pos + blen - 4 : pos + blen].tobytes())
        if trail != blen:
            return (f"block trailing length {trail} differs from leading length "
                    f"{blen} (section header block)")
        major, minor = struct.unpack_from(order + "HH", block, 12)
        if major != 1:
            return f"unsupported pcapng version {major}.{minor} (only 1.x)"
        self.big = big
        self.sections += 1
        self.interfaces = _Interfaces()
        self.section_linktypes.append([])
        stream.skip(int(blen))
        return 0

    def _interface(self, stream: Stream, pos: int) -> int | str:
        # The walker has checked the block's lengths and that it is wholly in the buffer.
        order = ">" if self.big else "<"
        (blen,) = struct.unpack_from(order + "I", stream.peek(8), 4)
        if blen < IDB_MIN:
            return (f"interface description block too short: {blen} bytes "
                    f"(at least {IDB_MIN})")
        block = stream.peek(blen)
        link, _reserved, snaplen = struct.unpack_from(order + "HHI", block, 8)
        tsresol = 6
        tsoffset = 0
        p = 16
        stop = blen - 4
        while p + 4 <= stop:
            code, olen = struct.unpack_from(order + "HH", block, p)
            if code == OPT_ENDOFOPT:
                break
            if p + 4 + olen > stop:
                return (f"interface description block option {code} says {olen} "
                        f"bytes, {stop - p - 4} left in the block")
            if code == OPT_IF_TSRESOL and olen >= 1:
                tsresol = block[p + 4]
            elif code == OPT_IF_TSOFFSET and olen >= 8:
                (tsoffset,) = struct.unpack_from(order + "q", block, p + 4)
            p += 4 + ((olen + 3) & ~3)
        norm = linktypes.normalize(link)
        self.interfaces.add(norm, snaplen, tsresol, tsoffset)
        self.section_linktypes[-1].append(norm)
        stream.skip(blen)
        return 0

    def error(self, code: int, a: int, b: int, c: int) -> str:
        """The message for a walker error (the caller adds path and offset)."""
        if code == E_TRUNC_BLOCK_HEADER:
            msg = f"truncated block header: 8 bytes needed, {a} left"
        elif code == E_BLOCK_SHORT:
            msg = f"bad block length {a}: less than 12 ({block_name(b)})"
        elif code == E_BLOCK_ALIGN:
            msg = f"bad block length {a}: not a multiple of 4 ({block_name(b)})"
        elif code == E_TOO_BIG:
            msg = (f"lying block length: {block_name(b)} says {a} bytes, more than the "
                   f"{MAX_RECORD >> 20} MiB limit")
        elif code == E_TRUNC_BLOCK:
            msg = f"truncated block: {block_name(c)} says {a} bytes, {b} left"
        elif code == E_TRAILER:
            msg = (f"block trailing length {b} differs from leading length {a} "
                   f"({block_name(c)})")
        elif code == E_TYPE_SHORT:
            msg = f"{block_name(b)} too short: {a} bytes (at least {c})"
        elif code == E_CAPLEN:
            msg = f"{block_name(c)} says {a} captured bytes, its body holds {b}"
        elif code == E_BAD_IFACE:
            msg = f"{block_name(c)} names interface {a}, the section has {b}"
        else:
            msg = f"{block_name(c)} before any interface description block"
        return msg


__all__ = ["MAGIC", "PcapngParser", "resolution", "ts_to_ns", "walk_blocks"]

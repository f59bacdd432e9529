"""Classic pcap files (draft-ietf-opsawg-pcap, "PCAP Capture File Format").

File header (24 bytes), in the byte order of the writer, told by the magic number:
0xA1B2C3D4 for microsecond timestamps, 0xA1B23C4D for nanosecond timestamps (read the
other way round, the file is in the other byte order):

```
                        1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
  0 |                          Magic Number                         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
  4 |          Major Version        |         Minor Version         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
  8 |                           Reserved1                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 12 |                           Reserved2                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 16 |                            SnapLen                            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 20 | FCS |f|0 0 0 0 0 0 0 0 0 0 0 0|         LinkType              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
```

then packet records, each a 16-byte header and the captured bytes (not padded):

```
                        1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
  0 |                      Timestamp (Seconds)                      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
  4 |            Timestamp (Microseconds or nanoseconds)            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
  8 |                    Captured Packet Length                     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 12 |                    Original Packet Length                     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 16 /                                                               /
    /                          Packet Data                          /
    /                  variable length, not padded                  /
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
```

The records of a chunk are walked by :func:`walk_records`, a numba function that fills
the batch columns (no Python object per packet). A captured length above the file's
SnapLen is tolerated (the record is the file's truth); above :data:`MAX_RECORD` (256 MiB)
it is a lying length, and a record running past the end of the file is a truncated tail:
both end the read with an :class:`~fabricscope.errors.InputError` naming the offset of the
record header, after every good frame before it has been handed out.

This module also holds the small protocol shared by the record walkers (status codes,
byte-order aware integer reads) used by :mod:`fabricscope.capture.pcapng`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from numba import njit

from fabricscope.capture import linktypes
from fabricscope.capture.frames import I8, I32, I64, U8
from fabricscope.errors import InputError

if TYPE_CHECKING:
    from fabricscope.capture.reader import BatchArrays, Stream

MAX_RECORD: Final = 256 << 20
"""A record or block claiming more bytes than this is a lying length (an error)."""

FILE_HEADER_LEN: Final = 24
RECORD_HEADER_LEN: Final = 16

MAGIC_USEC_LE: Final = b"\xd4\xc3\xb2\xa1"
MAGIC_USEC_BE: Final = b"\xa1\xb2\xc3\xd4"
MAGIC_NSEC_LE: Final = b"\x4d\x3c\xb2\xa1"
MAGIC_NSEC_BE: Final = b"\xa1\xb2\x3c\x4d"
MAGICS: Final[dict[bytes, tuple[bool, bool]]] = {
    # magic as bytes on disk -> (big endian, nanosecond)
    MAGIC_USEC_LE: (False, False),
    MAGIC_USEC_BE: (True, False),
    MAGIC_NSEC_LE: (False, True),
    MAGIC_NSEC_BE: (True, True),
}

# Walker protocol: every walker returns (n, pos, status, code, a, b, c).
ST_FULL: Final = 0
"""The batch columns are full; hand the batch out and call again."""
ST_NEED: Final = 1
"""The record at pos is incomplete in the buffer; ``code`` is how many bytes from pos it needs."""
ST_END: Final = 2
"""Clean end of the file at a record boundary."""
ST_PYTHON: Final = 3
"""The block at pos is for Python to parse (pcapng section and interface blocks)."""
ST_ERROR: Final = 4
"""Bad input at pos: ``code`` says what, ``a``/``b``/``c`` are the numbers for the message."""

E_TRUNC_HEADER: Final = 1
E_TOO_BIG: Final = 2
E_TRUNC_RECORD: Final = 3

NS_PER_S: Final = 1_000_000_000


@njit(cache=True)
def rd16(buf: U8, i: int, big: bool) -> int:
    """Unsigned 16-bit integer at ``buf[i]`` (caller has checked the bounds).

    Indexing with unsigned integers spares numba's negative-index wraparound on each byte
    (two to three times faster walks).
    """
    j = np.uint64(i)
    b0 = np.int64(buf[j])
    b1 = np.int64(buf[j + np.uint64(1)])
    if big:
        return int((b0 << 8) | b1)
    return int(b0 | (b1 << 8))


@njit(cache=True)
def rd32(buf: U8, i: int, big: bool) -> int:
    """Unsigned 32-bit integer at ``buf[i]`` (caller has checked the bounds)."""
    j = np.uint64(i)
    b0 = np.int64(buf[j])
    b1 = np.int64(buf[j + np.uint64(1)])
    b2 = np.int64(buf[j + np.uint64(2)])
    b3 = np.int64(buf[j + np.uint64(3)])
    if big:
        return int((b0 << 24) | (b1 << 16) | (b2 << 8) | b3)
    return int(b0 | (b1 << 8) | (b2 << 16) | (b3 << 24))


@njit(cache=True)
def walk_records(buf: U8, pos: int, end: int, base: int, eof: bool, big: bool, frac_ns: int,
                 n: int, offset: I64, caplen: I64, wirelen: I64, ts_ns: I64,
                 file_offset: I64) -> tuple[int, int, int, int, int, int, int]:
    """Fill columns from index ``n`` with the records in ``buf[pos:end]``.

    ``base`` is the file offset of ``buf[0]``; ``eof`` says no bytes follow ``end``;
    ``frac_ns`` is 1000 for microsecond files, 1 for nanosecond files. Returns
    ``(n, pos, status, code, a, b, c)`` (see the ST_* constants).
    """
    # one copy of the loop per byte order, the order a constant in each (~1.5x faster)
    if big:
        return _walk_records(buf, pos, end, base, eof, True, frac_ns, n, offset, caplen,
                             wirelen, ts_ns, file_offset)
    return _walk_records(buf, pos, end, base, eof, False, frac_ns, n, offset, caplen,
                         wirelen, ts_ns, file_offset)


@njit(cache=True)
def _walk_records(buf: U8, pos: int, end: int, base: int, eof: bool, big: bool, frac_ns: int,
                  n: int, offset: I64, caplen: I64, wirelen: I64, ts_ns: I64,
                  file_offset: I64) -> tuple[int, int, int, int, int, int, int]:
    cap = offset.shape[0]
    while n < cap:
        left = end - pos
        if left < 16:
            if not eof:
                return n, pos, ST_NEED, 16, 0, 0, 0
            if left == 0:
                return n, pos, ST_END, 0, 0, 0, 0
            return n, pos, ST_ERROR, E_TRUNC_HEADER, left, 0, 0
        incl = rd32(buf, pos + 8, big)
        if incl > MAX_RECORD:
            return n, pos, ST_ERROR, E_TOO_BIG, incl, 0, 0
        if left - 16 < incl:
            if not eof:
                return n, pos, ST_NEED, 16 + incl, 0, 0, 0
            return n, pos, ST_ERROR, E_TRUNC_RECORD, incl, left - 16, 0
        sec = rd32(buf, pos, big)
        frac = rd32(buf, pos + 4, big)
        offset[n] = pos + 16
        caplen[n] = incl
        wirelen[n] = rd32(buf, pos + 12, big)
        ts_ns[n] = sec * NS_PER_S + frac * frac_ns
        file_offset[n] = base + pos
        n += 1
        pos += 16 + incl
    return n, pos, ST_FULL, 0, 0, 0, 0


@dataclass(slots=True)
class PcapHeader:
    """The fields of a classic pcap file header that matter for reading."""

    big_endian: bool
    nanosecond: bool
    version: tuple[int, int]
    snaplen: int
    linktype: int
    """Normalized LINKTYPE_* value (low 16 bits; DLT_RAW aliases mapped to RAW)."""
    fcs_bits: int
    """The upper 4 bits of the LinkType field (FCS length and its flag)."""

    @classmethod
    def parse(cls, data: bytes) -> PcapHeader:
        """Parse the 24-byte header; the magic must be one of :data:`MAGICS`."""
        big, nsec = MAGICS[data[:4]]
        major, minor, _r1, _r2, snaplen, link = struct.unpack(
            ">HHIIII" if big else "<HHIIII", data[4:24])
        return cls(big, nsec, (major, minor), snaplen, linktypes.normalize(link),
                   link >> 28)


class PcapParser:
    """Walks the records of a classic pcap stream (the header already consumed)."""

    format = "pcap"
    per_frame_link = False

    def __init__(self, path: str, header: PcapHeader) -> None:
        self.path = path
        self.header = header
        self._frac_ns = 1 if header.nanosecond else 1000
        self._prec = 9 if header.nanosecond else 6

    @classmethod
    def open(cls, stream: Stream, path: str) -> PcapParser:
        """Read the file header from ``stream`` (which starts with a pcap magic)."""
        stream.ensure(FILE_HEADER_LEN)
        have = stream.available()
        if have < FILE_HEADER_LEN:
            raise InputError(
                f"truncated pcap file header: {FILE_HEADER_LEN} bytes needed, {have} in the file",
                path=path, offset=stream.file_pos())
        header = PcapHeader.parse(stream.peek(FILE_HEADER_LEN))
        stream.skip(FILE_HEADER_LEN)
        return cls(path, header)

    def walk(self, stream: Stream, arr: BatchArrays, n: int) -> tuple[int, int, int, int, int, int]:
        n, pos, status, code, a, b, c = walk_records(
            stream.buf, stream.pos, stream.end, stream.base, stream.eof,
            self.header.big_endian, self._frac_ns, n,
            arr.offset, arr.caplen, arr.wirelen, arr.ts_ns, arr.file_offset)
        stream.pos = int(pos)
        return int(n), int(status), int(code), int(a), int(b), int(c)

    def python_block(self, stream: Stream) -> int | str:
        raise AssertionError("classic pcap has no blocks for Python")  # pragma: no cover

    def columns(self, arr: BatchArrays, n: int) -> tuple[I32, I32, I8]:
        """The link type, interface and precision columns of a batch: the same for the whole
        file, but fresh writable arrays for every batch (a few microseconds), like a
        pcapng file's: the compiled packet walk is specialised on its arguments' types,
        read-only included, and one type for every caller (pcap, pcapng and the sFlow
        decoder's sampled headers) means one compilation of the walk, not two."""
        return (np.full(n, self.header.linktype, np.int32), np.zeros(n, np.int32),
                np.full(n, self._prec, np.int8))

    def error(self, code: int, a: int, b: int, c: int) -> str:
        """The message for a walker error (the caller adds path and offset)."""
        if code == E_TRUNC_HEADER:
            msg = f"truncated record header: {RECORD_HEADER_LEN} bytes needed, {a} left"
        elif code == E_TOO_BIG:
            msg = (f"lying record length: header says {a} bytes, more than the "
                   f"{MAX_RECORD >> 20} MiB limit")
        else:
            msg = f"truncated record: header says {a} bytes, {b} left"
        return msg


__all__ = [
    "MAGICS",
    "MAX_RECORD",
    "PcapHeader",
    "PcapParser",
    "rd16",
    "rd32",
    "walk_records",
]

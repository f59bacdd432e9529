"""FrameBatch: a run of captured frames as NumPy columns over one byte buffer.

The readers (:mod:`fabricscope.capture.pcap`, :mod:`fabricscope.capture.pcapng`) hand the
decoder batches, never one Python object per packet. Frame ``i`` is
``buf[offset[i] : offset[i] + caplen[i]]``; ``buf`` is a chunk of the capture file as read
(draft-ietf-opsawg-pcap section 5 records, draft-ietf-opsawg-pcapng section 4.3 Enhanced
Packet Blocks), so the packet bytes are never copied one by one:

```
   buf:  ... | record header | packet data ........ | record header | packet data ... |
                             ^ offset[i]            ^ offset[i] + caplen[i]
             ^ file_offset[i] - (file offset of buf[0])
```

A batch's ``buf`` is never written to after the batch is handed out, so a consumer may
keep it as long as it likes (it keeps that chunk of the file alive, nothing more).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
I8 = NDArray[np.int8]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]


@dataclass(slots=True)
class FrameBatch:
    """Frames as columns; every column has one entry per frame."""

    buf: U8
    """uint8: the bytes the frames live in (a chunk of the file; frames are slices of it)."""
    offset: I64
    """int64[n]: start of frame i in buf."""
    caplen: I64
    """int64[n]: captured bytes of frame i."""
    wirelen: I64
    """int64[n]: original length on the wire."""
    ts_ns: I64
    """int64[n]: timestamp, nanoseconds since the epoch (UTC)."""
    linktype: I32
    """int32[n]: LINKTYPE_* value of the frame's interface."""
    iface: I32
    """int32[n]: pcapng interface id (0 for classic pcap)."""
    ts_prec: I8
    """int8[n]: fractional second digits the capture really has (6 usec, 9 nsec)."""
    file_offset: I64
    """int64[n]: byte offset in the (uncompressed) file of frame i's record header/block."""

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    def frame(self, i: int) -> bytes:
        """The bytes of frame ``i`` (a copy; for tests and debugging, not hot paths)."""
        start = int(self.offset[i])
        return self.buf[start : start + int(self.caplen[i])].tobytes()

    @classmethod
    def empty(cls) -> FrameBatch:
        """A batch of zero frames."""
        return cls(
            buf=np.zeros(0, np.uint8),
            offset=np.zeros(0, np.int64),
            caplen=np.zeros(0, np.int64),
            wirelen=np.zeros(0, np.int64),
            ts_ns=np.zeros(0, np.int64),
            linktype=np.zeros(0, np.int32),
            iface=np.zeros(0, np.int32),
            ts_prec=np.zeros(0, np.int8),
            file_offset=np.zeros(0, np.int64),
        )

    def compact(self) -> FrameBatch:
        """The same frames in a fresh buffer holding only their bytes, back to back."""
        return concat_batches([self])


@njit(cache=True)
def _gather(src: U8, offset: I64, caplen: I64, dst: U8, dst_offset: I64, start: int) -> int:
    pos = start
    for i in range(offset.shape[0]):
        o = offset[i]
        n = caplen[i]
        dst_offset[i] = pos
        a = src[o : o + n]
        b = dst[pos : pos + n]
        for j in range(n):  # faster in numba than slice assignment for short frames
            b[j] = a[j]
        pos += n
    return pos


def concat_batches(batches: Sequence[FrameBatch]) -> FrameBatch:
    """One batch holding every frame of ``batches`` in order, in a new compact buffer."""
    if not batches:
        return FrameBatch.empty()
    total = int(sum(int(b.caplen.sum()) for b in batches))
    buf = np.empty(total, np.uint8)
    offsets = []
    pos = 0
    for b in batches:
        off = np.empty(len(b), np.int64)
        pos = int(_gather(b.buf, b.offset, b.caplen, buf, off, pos))
        offsets.append(off)
    return FrameBatch(
        buf=buf,
        offset=np.concatenate(offsets),
        caplen=np.concatenate([b.caplen for b in batches]),
        wirelen=np.concatenate([b.wirelen for b in batches]),
        ts_ns=np.concatenate([b.ts_ns for b in batches]),
        linktype=np.concatenate([b.linktype for b in batches]),
        iface=np.concatenate([b.iface for b in batches]),
        ts_prec=np.concatenate([b.ts_prec for b in batches]),
        file_offset=np.concatenate([b.file_offset for b in batches]),
    )


__all__ = ["FrameBatch", "concat_batches"]

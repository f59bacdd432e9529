"""Packet decoding: frames -> Arrow record batches (wire headers, tunnel layers, inner headers).

Public API::

    from fabricscope.decode import PacketDecoder, DecodeConfig
    dec = PacketDecoder(DecodeConfig().decode_as("udp:9999=vxlan"))
    batch = dec.decode(frames)          # frames: capture.frames.FrameBatch -> pa.RecordBatch
    dec.events                          # {"truncated_ipv4": 3, ...} since creation

The work is done by the numba walk in ``walk.py``; one module per layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fabricscope.decode.events import NEVENTS_MAX, counts_by_name
from fabricscope.decode.slots import (
    H_DPORT,
    H_IPVER,
    H_PROTO,
    H_SRC_HI,
    H_SRC_LO,
    M_KIND,
    M_PAYLOAD,
    M_PAYLOAD_END,
    NSLOTS,
    WIRE,
    reset_rows,
)
from fabricscope.decode.tables import DecodeConfig

if TYPE_CHECKING:
    import pyarrow as pa

    from fabricscope.capture.frames import FrameBatch

__all__ = ["DecodeConfig", "PacketDecoder", "new_matrix"]


CHUNK = 128  # records decoded at a time by ``PacketDecoder.decode`` (a multiple of 8):
# its slot matrix (170 KB) stays in the level-2 cache between the walk and the packers


_RESET = np.array(reset_rows(sflow=False), np.int64)  # the walk's chunk rows to reset

#: the slot rows ``PacketDecoder.datagram_bounds`` returns, in this order: where decoding
#: stopped (a UDP datagram's payload start and end) and the wire source address
BOUND_ROWS = (M_PAYLOAD, M_PAYLOAD_END, WIRE + H_IPVER, WIRE + H_SRC_HI, WIRE + H_SRC_LO,
              WIRE + H_PROTO, WIRE + H_DPORT)
"""What ``PacketDecoder.datagram_bounds`` gives of each frame: payload start and end, the
wire source address (IP version, high and low halves), then IP protocol and destination
port (which frames are sFlow datagrams)."""
BOUNDS_CHUNK = 1024  # frames walked at a time by datagram_bounds (a 1.2 MB matrix)


def padded_width(n: int) -> int:
    """Row length for ``n`` records: rounded up to 16 int64, plus 8 (an odd multiple of 64
    bytes). A row length that is a multiple of 4 KiB (batches of 512, 1024... records) puts
    every slot of a record in the same cache set, so the walk's per-record writes, one row
    apart, evict each other: 2-3x slower."""
    return (max(n, 1) + 15) // 16 * 16 + 8


def new_matrix(n: int) -> np.ndarray:
    """A slot matrix for ``n`` records, every slot absent (-1): a view of ``n`` columns of
    a padded matrix (rows stay contiguous; see :func:`padded_width`)."""
    return np.full((NSLOTS, padded_width(n)), -1, dtype=np.int64)[:, :n]


class PacketDecoder:
    """Decodes capture batches; keeps event counters across batches."""

    def __init__(self, config: DecodeConfig | None = None) -> None:
        self.config = config or DecodeConfig()
        self.tables = self.config.tables()
        self.params = self.config.params()
        self.event_counts = np.zeros(NEVENTS_MAX, dtype=np.int64)
        self.frames = 0
        self._chunk: np.ndarray | None = None
        self._bounds: np.ndarray | None = None  # datagram_bounds' reused matrix

    def decode_matrix(self, frames: FrameBatch, *, count: bool = True) -> np.ndarray:
        """The slot matrix of ``frames`` (a fresh one). ``count=False``: a second look at
        frames already counted (by ``decode``): events and frames are not counted again."""
        from fabricscope.decode.walk import walk_batch

        n = len(frames)
        full = np.full((NSLOTS, padded_width(n)), -1, dtype=np.int64)
        m = full[:, :n]
        ev = self.event_counts if count else np.zeros(NEVENTS_MAX, dtype=np.int64)
        if n:
            # the whole (C-contiguous) matrix: the walk fills the first n columns; every
            # caller passes the same array layout, so the walk compiles once
            walk_batch(frames.buf, frames.offset, frames.caplen, frames.wirelen, frames.ts_ns,
                       frames.linktype, frames.iface, frames.ts_prec, frames.file_offset,
                       full, self.tables, self.params, ev)
        m[M_KIND, :n] = 0  # KIND_PACKET
        if count:
            self.frames += n
        return m

    def datagram_bounds(self, frames: FrameBatch, idx: np.ndarray,
                        events: np.ndarray | None = None) -> np.ndarray:
        """For the frames ``idx``: the rows ``BOUND_ROWS`` of their slot-matrix columns
        (``(len(BOUND_ROWS), len(idx))`` int64), what the sFlow decoder needs of a
        datagram's outer headers. The same values as
        ``decode_matrix(frames)[BOUND_ROWS][:, idx]``, but only those frames are walked,
        ``BOUNDS_CHUNK`` at a time through one reused matrix: no full matrix of the batch
        (19 MB for 16,384 frames, filled and walked for every frame). Events are counted
        into ``events`` if given (else not: the frames' records counted them)."""
        from fabricscope.decode.walk import walk_batch

        idx = np.asarray(idx, dtype=np.int64)
        n = idx.shape[0]
        out = np.empty((len(BOUND_ROWS), n), np.int64)
        if n == 0:
            return out
        if self._bounds is None:
            self._bounds = np.full((NSLOTS, padded_width(BOUNDS_CHUNK)), -1, np.int64)
        m = self._bounds
        ev = np.zeros(NEVENTS_MAX, dtype=np.int64) if events is None else events
        off, cap, wire, ts = (frames.offset[idx], frames.caplen[idx], frames.wirelen[idx],
                              frames.ts_ns[idx])
        lt, ifc, prec, foff = (frames.linktype[idx], frames.iface[idx], frames.ts_prec[idx],
                               frames.file_offset[idx])
        rows = list(BOUND_ROWS)
        for a in range(0, n, BOUNDS_CHUNK):
            b = min(n, a + BOUNDS_CHUNK)
            m[_RESET] = -1  # the rows the packet walk may have written (slots.reset_rows)
            walk_batch(frames.buf, off[a:b], cap[a:b], wire[a:b], ts[a:b], lt[a:b],
                       ifc[a:b], prec[a:b], foff[a:b], m, self.tables, self.params, ev)
            out[:, a:b] = m[rows, :b - a]
        return out

    def decode(self, frames: FrameBatch) -> pa.RecordBatch:
        """The record batch of ``frames`` (the same as ``packet_batch`` over
        ``decode_matrix``): one compiled call walks ``CHUNK`` frames at a time into one
        small reused slot matrix that stays in the CPU caches and packs each chunk at once
        into the batch's typed columns (``decode/fused.py``): the full int64 matrix (1.2
        KB a record) is never written out."""
        from fabricscope.decode.fused import walk_and_pack
        from fabricscope.records.arrow import PacketColumns

        n = len(frames)
        out = PacketColumns(n)
        if self._chunk is None:  # all -1 once; then only the rows in _RESET each chunk
            self._chunk = np.full((NSLOTS, padded_width(CHUNK)), -1, dtype=np.int64)
        if n:
            out.nlayers = walk_and_pack(
                frames.buf, frames.offset, frames.caplen, frames.wirelen, frames.ts_ns,
                frames.linktype, frames.iface, frames.ts_prec, frames.file_offset,
                self._chunk, CHUNK, self.tables, self.params, self.event_counts,
                _RESET, *out.fused_args(sflow=False))
        self.frames += n
        return out.finish(frames.buf)

    @property
    def events(self) -> dict[str, int]:
        return counts_by_name(self.event_counts)

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
from fabricscope.decode.slots import M_KIND, NSLOTS
from fabricscope.decode.tables import DecodeConfig

if TYPE_CHECKING:
    import pyarrow as pa

    from fabricscope.capture.frames import FrameBatch

__all__ = ["DecodeConfig", "PacketDecoder", "new_matrix"]


def new_matrix(n: int) -> np.ndarray:
    """A slot matrix for ``n`` records, every slot absent (-1)."""
    return np.full((NSLOTS, n), -1, dtype=np.int64)


class PacketDecoder:
    """Decodes capture batches; keeps event counters across batches."""

    def __init__(self, config: DecodeConfig | None = None) -> None:
        self.config = config or DecodeConfig()
        self.tables = self.config.tables()
        self.params = self.config.params()
        self.event_counts = np.zeros(NEVENTS_MAX, dtype=np.int64)
        self.frames = 0

    def decode_matrix(self, frames: FrameBatch) -> np.ndarray:
        from fabricscope.decode.walk import walk_batch

        n = len(frames)
        m = new_matrix(n)
        if n:
            walk_batch(frames.buf, frames.offset, frames.caplen, frames.wirelen, frames.ts_ns,
                       frames.linktype, frames.iface, frames.ts_prec, frames.file_offset,
                       m, self.tables, self.params, self.event_counts)
        m[M_KIND, :n] = 0  # KIND_PACKET
        self.frames += n
        return m

    def decode(self, frames: FrameBatch) -> pa.RecordBatch:
        from fabricscope.records.arrow import packet_batch

        m = self.decode_matrix(frames)
        return packet_batch(m, len(frames), frames.buf)

    @property
    def events(self) -> dict[str, int]:
        return counts_by_name(self.event_counts)

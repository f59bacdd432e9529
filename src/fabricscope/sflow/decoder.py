"""``SflowDecoder``: batches of sFlow datagrams -> (records, counters) Arrow batches.

Two entry points over the same numba walk (``sflow/datagram.py``):

* :meth:`SflowDecoder.decode_datagrams`: frames of a capture that are sFlow datagrams (the
  pipeline has already decoded their Ethernet/IP/UDP headers; ``M_PAYLOAD`` and
  ``M_PAYLOAD_END`` of the packet matrix bound each UDP payload);
* :meth:`SflowDecoder.decode_payloads`: raw UDP payloads back to back in one buffer (the
  live collector).

Each call walks the datagrams twice: a counting pass (sample headers only) sizes the
matrices from bytes that are really there, then the filling pass. Large calls are cut
into chunks of about ``max_batch_records`` records so memory stays bounded whatever the
input; the chunks' batches are concatenated.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from fabricscope.decode.events import NEVENTS_MAX, counts_by_name
from fabricscope.decode.slots import (
    H_IPVER,
    H_SRC_HI,
    H_SRC_LO,
    M_PAYLOAD,
    M_PAYLOAD_END,
    NSLOTS,
    WIRE,
)
from fabricscope.decode.tables import DecodeConfig
from fabricscope.records.arrow import empty_packet_batch, packet_batch
from fabricscope.sflow import events as _events  # noqa: F401  (registers the event names)
from fabricscope.sflow.accounting import Accounting
from fabricscope.sflow.batch import counter_batch, empty_counter_batch
from fabricscope.sflow.datagram import walk_datagrams
from fabricscope.sflow.layout import D_COUNTERS, D_FLOWS, NCSLOTS, ND, NQ

if TYPE_CHECKING:
    from fabricscope.capture.frames import FrameBatch

_DUMMY = np.zeros((1, 1), np.int64)


def padded_width(n: int) -> int:
    """Matrix width for ``n`` columns: an odd multiple of 8 int64 (64 bytes), so that the
    rows of a slot matrix never alias in the CPU caches (a multiple of 4 KiB would)."""
    w = (max(n, 1) + 15) // 16 * 16
    return w + 8


def new_slot_matrix(rows: int, n: int) -> np.ndarray:
    """A (rows, padded_width(n)) int64 matrix of -1."""
    return np.full((rows, padded_width(n)), -1, dtype=np.int64)


class SflowDecoder:
    """Decodes sFlow v5 datagrams; keeps event counters and the accounting across calls."""

    def __init__(self, config: DecodeConfig | None = None, *,
                 accounting: Accounting | None = None,
                 max_batch_records: int = 32768) -> None:
        self.config = config or DecodeConfig()
        self.tables = self.config.tables()
        self.params = self.config.params()
        self.event_counts = np.zeros(NEVENTS_MAX, dtype=np.int64)
        self.accounting = accounting if accounting is not None else Accounting()
        self.max_batch_records = max(int(max_batch_records), 1)
        self.datagrams = 0
        """Datagrams decoded so far (also the running datagram index)."""
        self.records = 0
        self.counter_rows = 0

    @property
    def events(self) -> dict[str, int]:
        """Decode events by name (sFlow and packet events inside sampled headers)."""
        return counts_by_name(self.event_counts)

    # -- entry points ------------------------------------------------------------------
    def decode_datagrams(self, frames: FrameBatch, m: np.ndarray, idx: np.ndarray
                         ) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        """Decode the frames ``idx`` of ``frames`` as sFlow datagrams (their UDP payload
        bounds are in the packet matrix ``m``)."""
        idx = np.asarray(idx, dtype=np.int64)
        start = m[M_PAYLOAD, idx]
        end = m[M_PAYLOAD_END, idx]
        ok = (start >= 0) & (end >= start)
        offset = np.where(ok, start, 0)
        length = np.where(ok, end - start, 0)
        truncated = (frames.caplen[idx] < frames.wirelen[idx]).astype(np.int64)
        return self._decode(
            frames.buf, offset, length, truncated, frames.ts_ns[idx].astype(np.int64),
            frames.ts_prec[idx].astype(np.int64), frames.file_offset[idx].astype(np.int64),
            m[WIRE + H_IPVER, idx], m[WIRE + H_SRC_HI, idx], m[WIRE + H_SRC_LO, idx])

    def decode_payloads(self, buf: np.ndarray, offset: np.ndarray, length: np.ndarray,
                        ts_ns: np.ndarray, peer_hi: np.ndarray | None = None,
                        peer_lo: np.ndarray | None = None,
                        peer_ver: np.ndarray | None = None, *,
                        truncated: np.ndarray | None = None, ts_prec: int = 6
                        ) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        """Decode UDP payloads ``buf[offset[k] : offset[k] + length[k]]`` received at
        ``ts_ns[k]`` from ``peer`` (IPv4-mapped hi/lo halves, version 4/6; used to name
        the senders of datagrams that end before their agent address)."""
        offset = np.asarray(offset, dtype=np.int64)
        n = offset.shape[0]
        trunc = (np.zeros(n, np.int64) if truncated is None
                 else np.asarray(truncated, dtype=np.int64))
        file_offset = np.arange(self.datagrams, self.datagrams + n, dtype=np.int64)
        return self._decode(
            buf, offset, np.asarray(length, dtype=np.int64), trunc,
            np.asarray(ts_ns, dtype=np.int64), np.full(n, ts_prec, np.int64), file_offset,
            None if peer_ver is None else np.asarray(peer_ver, dtype=np.int64),
            None if peer_hi is None else np.asarray(peer_hi, dtype=np.int64),
            None if peer_lo is None else np.asarray(peer_lo, dtype=np.int64))

    # -- the work ----------------------------------------------------------------------
    def _decode(self, buf: np.ndarray, offset: np.ndarray, length: np.ndarray,
                truncated: np.ndarray, ts_ns: np.ndarray, ts_prec: np.ndarray,
                file_offset: np.ndarray, peer_ver: np.ndarray | None,
                peer_hi: np.ndarray | None, peer_lo: np.ndarray | None
                ) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        nd = int(offset.shape[0])
        if nd == 0:
            return empty_packet_batch(), empty_counter_batch()
        if buf.dtype != np.uint8:
            buf = buf.view(np.uint8)
        dg = np.full((ND, nd), -1, dtype=np.int64)
        walk_datagrams(buf, offset, length, truncated, ts_ns, ts_prec, file_offset, 0,
                       _DUMMY, _DUMMY, _DUMMY, dg, self.tables, self.params,
                       self.event_counts, False)
        # chunk boundaries: at most ~max_batch_records records (a single datagram's
        # records are never split; their number is bounded by its bytes)
        per = dg[D_FLOWS] + dg[D_COUNTERS]
        bounds = [0]
        if int(per.sum()) > self.max_batch_records:
            cum = np.cumsum(per)
            while True:
                lo = bounds[-1]
                base = int(cum[lo - 1]) if lo > 0 else 0
                hi = int(np.searchsorted(cum, base + self.max_batch_records, side="right"))
                hi = max(hi, lo + 1)
                if hi >= nd:
                    break
                bounds.append(hi)
        bounds.append(nd)
        recs: list[pa.RecordBatch] = []
        cnts: list[pa.RecordBatch] = []
        for a, b in itertools.pairwise(bounds):
            peers = None
            if peer_ver is not None and peer_hi is not None and peer_lo is not None:
                peers = (peer_ver[a:b], peer_hi[a:b], peer_lo[a:b])
            r, c = self._chunk(buf, offset[a:b], length[a:b], truncated[a:b], ts_ns[a:b],
                               ts_prec[a:b], file_offset[a:b],
                               int(dg[D_FLOWS, a:b].sum()), int(dg[D_COUNTERS, a:b].sum()),
                               peers)
            recs.append(r)
            cnts.append(c)
        self.accounting.events = self.events
        rec = recs[0] if len(recs) == 1 else pa.concat_batches(recs)
        cnt = cnts[0] if len(cnts) == 1 else pa.concat_batches(cnts)
        return rec, cnt

    def _chunk(self, buf: np.ndarray, offset: np.ndarray, length: np.ndarray,
               truncated: np.ndarray, ts_ns: np.ndarray, ts_prec: np.ndarray,
               file_offset: np.ndarray, nrec: int, ncnt: int,
               peers: tuple[np.ndarray, np.ndarray, np.ndarray] | None
               ) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        nd = int(offset.shape[0])
        m = new_slot_matrix(NSLOTS, nrec)
        cm = new_slot_matrix(NCSLOTS, ncnt)
        sq = np.full((NQ, nrec + ncnt), -1, dtype=np.int64)
        dg = np.full((ND, nd), -1, dtype=np.int64)
        i, j, q = walk_datagrams(buf, offset, length, truncated, ts_ns, ts_prec,
                                 file_offset, self.datagrams, m, cm, sq, dg, self.tables,
                                 self.params, self.event_counts, True)
        if i != nrec or j != ncnt or q != nrec + ncnt:  # pragma: no cover - a bug
            raise RuntimeError("sFlow walk: counting and filling passes disagree")
        self.accounting.update(dg, nd, sq, q, peers=peers)
        self.datagrams += nd
        self.records += i
        self.counter_rows += j
        return packet_batch(m, i, buf), counter_batch(cm, j, buf)

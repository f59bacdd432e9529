"""``SflowDecoder``: batches of sFlow datagrams -> (records, counters) Arrow batches.

Two entry points over the same numba walk (``sflow/datagram.py``):

* :meth:`SflowDecoder.decode_bounded` (and ``decode_datagrams``, from a packet matrix):
  frames of a capture that are sFlow datagrams (the pipeline has walked their
  Ethernet/IP/UDP headers; ``PacketDecoder.datagram_bounds`` gives each UDP payload's
  bounds and sender);
* :meth:`SflowDecoder.decode_payloads`: raw UDP payloads back to back in one buffer (the
  live collector).

Each datagram is walked twice: a counting pass (sample headers only) checks that its rows
fit, from bytes that are really there, then the filling pass. Flow and discard samples
are walked a few datagrams at a time into a small slot matrix and packed straight into
the batch's typed columns (``sflow/fused.py``); counter samples go to a counters matrix.
Large calls are cut into batches of about ``max_batch_records`` records so memory stays
bounded whatever the input; the batches are concatenated.
"""

from __future__ import annotations

import contextlib
import mmap
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from fabricscope.decode.events import NEVENTS_MAX, counts_by_name
from fabricscope.decode.slots import NSLOTS, reset_rows
from fabricscope.decode.tables import DecodeConfig
from fabricscope.records.arrow import PacketColumns, empty_packet_batch
from fabricscope.sflow import events as _events  # noqa: F401  (registers the event names)
from fabricscope.sflow.accounting import Accounting
from fabricscope.sflow.batch import counter_batch, empty_counter_batch
from fabricscope.sflow.datagram import NT_SCRATCH
from fabricscope.sflow.fused import walk_and_pack_datagrams
from fabricscope.sflow.layout import NCSLOTS, ND, NQ

if TYPE_CHECKING:
    from fabricscope.capture.frames import FrameBatch

def padded_width(n: int) -> int:
    """Matrix width for ``n`` columns: an odd multiple of 8 int64 (64 bytes), so that the
    rows of a slot matrix never alias in the CPU caches (a multiple of 4 KiB would)."""
    w = (max(n, 1) + 15) // 16 * 16
    return w + 8


_HUGE = 2 << 20
#: records walked at a time into the small slot matrix (more when one datagram can hold more)
CHUNK = 256
_RESET = np.array(reset_rows(sflow=True), np.int64)  # the chunk rows to reset (slots.py)


class MatrixPool:
    """One reusable int64 matrix (rows x padded width) for the decoder's slot matrices.

    Allocating a fresh matrix for every batch costs a page fault per 4 KiB; this one is
    allocated once (anonymous memory, advised for transparent huge pages so that the
    per-record column writes, one row apart, do not miss the TLB) and only the columns a
    batch uses are reset to -1.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.width = 0
        self._mm: mmap.mmap | None = None
        self.m = np.zeros((rows, 0), np.int64)

    def get(self, cols: int) -> np.ndarray:
        """The matrix with at least ``cols`` columns, its first ``cols`` columns -1."""
        if cols > self.width:
            self._alloc(max(cols, self.width * 2))
        self.m[:, :cols] = -1
        return self.m

    def _alloc(self, cols: int) -> None:
        w = padded_width(cols)
        nbytes = self.rows * w * 8
        mm = mmap.mmap(-1, nbytes + _HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        with contextlib.suppress(AttributeError, OSError):
            mm.madvise(mmap.MADV_HUGEPAGE)  # type: ignore[attr-defined]
        raw = np.frombuffer(mm, dtype=np.uint8)
        skip = (-raw.ctypes.data) % _HUGE
        self.m = raw[skip:skip + nbytes].view(np.int64).reshape(self.rows, w)
        self._mm = mm
        self.width = w

    def owns(self, address: int) -> bool:
        """Whether ``address`` lies in the matrix (tests check no batch points into it)."""
        base = self.m.ctypes.data
        return base <= address < base + self.m.nbytes


class SflowDecoder:
    """Decodes sFlow v5 datagrams; keeps event counters and the accounting across calls."""

    def __init__(self, config: DecodeConfig | None = None, *,
                 accounting: Accounting | None = None,
                 max_batch_records: int = 65536) -> None:
        self.config = config or DecodeConfig()
        self.tables = self.config.tables()
        self.params = self.config.params()
        self.event_counts = np.zeros(NEVENTS_MAX, dtype=np.int64)
        self.accounting = accounting if accounting is not None else Accounting()
        self.max_batch_records = max(int(max_batch_records), 1)
        self.datagrams = 0
        """Datagrams decoded so far (also the running datagram index)."""
        self._cpool = MatrixPool(NCSLOTS)
        self._chunk: np.ndarray | None = None  # the walk's small slot matrix
        self._t = np.empty(NT_SCRATCH, np.int64)  # the sFlow walk's scratch vector
        self._lt = np.empty(0, np.int32)
        self._ifc = np.empty(0, np.int32)
        self._prec = np.empty(0, np.int8)
        # learnt from the previous call: datagram bytes per record and per counter row
        self._bytes_per_record = 200
        self._bytes_per_counter = 2000
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
        from fabricscope.decode import BOUND_ROWS

        idx = np.asarray(idx, dtype=np.int64)
        return self.decode_bounded(frames, idx, m[list(BOUND_ROWS)][:, idx])

    def decode_bounded(self, frames: FrameBatch, idx: np.ndarray, bounds: np.ndarray
                       ) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        """Decode the frames ``idx`` of ``frames`` as sFlow datagrams; ``bounds``: their
        payload bounds and wire source address (``PacketDecoder.datagram_bounds``)."""
        idx = np.asarray(idx, dtype=np.int64)
        start, end, ver, hi, lo = bounds[:5]
        ok = (start >= 0) & (end >= start)
        offset = np.where(ok, start, 0)
        length = np.where(ok, end - start, 0)
        truncated = (frames.caplen[idx] < frames.wirelen[idx]).astype(np.int64)
        return self._decode(
            frames.buf, offset, length, truncated, frames.ts_ns[idx].astype(np.int64),
            frames.ts_prec[idx].astype(np.int64), frames.file_offset[idx].astype(np.int64),
            np.ascontiguousarray(ver), np.ascontiguousarray(hi), np.ascontiguousarray(lo))

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
        # Matrix sizes: learnt bytes per record / per counter row (+ 1/8 and a margin),
        # at least the most the largest datagram can yield (a sample takes >= 44 bytes),
        # at most max_batch_records (more records: another chunk, then concatenated).
        floor = int(length.max()) // 44 + 1
        used = int(length.sum())
        est_r = used * 9 // (8 * self._bytes_per_record) + 64
        est_c = used * 9 // (8 * self._bytes_per_counter) + 16
        recs: list[pa.RecordBatch] = []
        cnts: list[pa.RecordBatch] = []
        peers = None
        if peer_ver is not None and peer_hi is not None and peer_lo is not None:
            peers = (peer_ver, peer_hi, peer_lo)
        k = 0
        chunk = max(CHUNK, floor)
        if self._chunk is None or self._chunk.shape[1] < chunk:
            # all -1 once; then only the rows in _RESET before each chunk
            self._chunk = np.full((NSLOTS, padded_width(chunk)), -1, np.int64)
            # the header walk's link types, interfaces and precisions, typed as a
            # capture batch's (sflow/fused.py's walk_headers); as wide as the matrix
            w = self._chunk.shape[1]
            self._lt = np.empty(w, np.int32)
            self._ifc = np.empty(w, np.int32)
            self._prec = np.empty(w, np.int8)
        while k < nd:
            cap_r = max(min(est_r, self.max_batch_records), floor)
            cap_c = max(min(est_c, self.max_batch_records), floor)
            out = PacketColumns(cap_r)
            cm = self._cpool.get(cap_c)
            # written by the walk for every sample it reaches (filling all of it with -1
            # first cost ~10 ns a sample)
            sq = np.empty((NQ, cap_r + cap_c), dtype=np.int64)
            k2, i, j, q, nl = walk_and_pack_datagrams(
                buf, offset, length, truncated, ts_ns, ts_prec, file_offset,
                self.datagrams, k, self._chunk, chunk, cap_r, cm, cap_c, sq, dg,
                self.tables, self.params, self.event_counts, self._t,
                self._lt[:chunk], self._ifc[:chunk], self._prec[:chunk], _RESET,
                *out.fused_args(sflow=True))
            self.accounting.update(dg, nd, sq, q, k0=k, k1=k2, peers=peers)
            self.records += i
            self.counter_rows += j
            out.n = i
            out.nlayers = nl
            recs.append(out.finish(buf))
            cnts.append(counter_batch(cm, j, buf, self.event_counts))  # copies: cm can be reused
            est_r = max(est_r - i, 64)
            est_c = max(est_c - j, 16)
            k = k2
        nrec = sum(r.num_rows for r in recs)
        ncnt = sum(c.num_rows for c in cnts)
        self._bytes_per_record = max(44, min(1 << 16, used // max(nrec, 1)))
        self._bytes_per_counter = max(44, min(1 << 16, used // max(ncnt, 1)))
        self.datagrams += nd
        self.accounting.events = self.events
        rec = recs[0] if len(recs) == 1 else pa.concat_batches(recs)
        cnt = cnts[0] if len(cnts) == 1 else pa.concat_batches(cnts)
        return rec, cnt

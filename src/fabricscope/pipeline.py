"""Capture file -> record batches: the decode pipeline shared by ``decode`` and ``ingest``.

Reads a capture in bounded batches (capture/), decodes every frame (decode/), hands
frames that are sFlow datagrams (UDP 6343, or all UDP with ``sflow=True``) to the sFlow
decoder (sflow/) so they become one record per sample, and yields Arrow batches. Counts
everything: frames, records, decode events by name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from fabricscope.decode import PacketDecoder
from fabricscope.decode.tables import DecodeConfig
from fabricscope.errors import InputError

if TYPE_CHECKING:
    from fabricscope.capture.frames import FrameBatch

SFLOW_PORT = 6343
SFLOW_SLICE = 2048
"""Datagrams decoded per call of the sFlow decoder (a step of the pipeline): about
14,000 samples of the usual 7 a datagram, a column block of about 5 MB. A reader's batch
(8 MB of datagrams, about 5,400 of them) is decoded in such slices: the blocks stay small
enough for the C library to reuse them from its heap instead of mapping fresh memory and
faulting it in for every batch (measured in docs/sflow.md)."""


def _values(arr: pa.Array, dtype: type) -> np.ndarray:
    """The values of a primitive Arrow array as NumPy, 0 where null (read from its
    buffers: pyarrow.compute with a Python scalar imports pandas, 0.3 s and 40 MB)."""
    n, off = len(arr), arr.offset
    validity, data = arr.buffers()[:2]
    if data is None:
        return np.zeros(n, dtype)
    vals: np.ndarray = np.frombuffer(data, dtype=dtype, count=off + n)[off:]
    if arr.null_count == 0 or validity is None:
        return vals
    valid = np.unpackbits(np.frombuffer(validity, np.uint8), count=off + n,
                          bitorder="little")[off:].astype(bool)
    return np.where(valid, vals, 0)


@dataclass
class DecodeSummary:
    path: str
    frames: int = 0
    records: int = 0
    sflow_datagrams: int = 0
    counter_records: int = 0
    bytes: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    events: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None  # the file ended badly after the records above

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path, "frames": self.frames, "records": self.records,
            "sflow_datagrams": self.sflow_datagrams, "counter_records": self.counter_records,
            "bytes": self.bytes, "first_ts_ns": self.first_ts_ns,
            "last_ts_ns": self.last_ts_ns, "events": dict(self.events),
            "seconds": round(self.seconds, 6), "error": self.error,
        }


@dataclass
class Decoded:
    """One step of the pipeline: packet/sample records, and counter records (sFlow)."""

    records: pa.RecordBatch
    counters: pa.RecordBatch | None = None


class FileDecoder:
    """Decode one capture file batch by batch. ``summary`` fills in as batches go by."""

    def __init__(self, path: str | Path, config: DecodeConfig | None = None, *,
                 sflow: bool = False, batch_frames: int = 16384,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.path = str(path)
        self.config = config or DecodeConfig()
        self.force_sflow = sflow
        self.batch_frames = batch_frames
        self.progress = progress
        self.packets = PacketDecoder(self.config)
        self.summary = DecodeSummary(path=self.path)
        self._sflow: Any = None
        self.bounds_first = True
        """Adaptive: when the previous batch held only sFlow datagrams, the next one is
        walked for its datagram bounds first, and decoded as packets only if some frame
        is not a datagram (see ``_all_sflow``). False: always packets first."""
        self._expect_sflow = False

    def _sflow_decoder(self) -> Any:
        if self._sflow is None:
            try:
                from fabricscope.sflow import SflowDecoder  # type: ignore[attr-defined]
            except ImportError:
                return None
            self._sflow = SflowDecoder(self.config)
        return self._sflow

    def _is_sflow(self, bounds: np.ndarray) -> np.ndarray:
        sfl: np.ndarray = bounds[5] == 17  # UDP (BOUND_ROWS: protocol, then dport)
        if not self.force_sflow:
            sfl &= bounds[6] == SFLOW_PORT
        return sfl

    def _all_sflow(self, frames: FrameBatch) -> Iterator[Decoded] | None:
        """A batch expected to hold only sFlow datagrams (a capture of an sFlow feed):
        one walk of its frames gives their datagram bounds, and, if every frame is a
        datagram, they are decoded from those; otherwise None, and nothing is counted
        (the batch then goes the packets-first way). Saves the packet records of frames
        that are all dropped for their samples: one walk and the packing of a batch."""
        n = len(frames)
        ev = np.zeros_like(self.packets.event_counts)
        everything = np.arange(n, dtype=np.int64)
        bounds = self.packets.datagram_bounds(frames, everything, events=ev)
        if not bool(self._is_sflow(bounds).all()):
            self._expect_sflow = False
            return None
        sdec = self._sflow_decoder()
        if sdec is None:
            return None
        self.packets.event_counts += ev  # the frames' own events, as decode() counts them
        self.packets.frames += n
        return self._sflow_steps(sdec, frames, everything, bounds)

    @staticmethod
    def _sflow_steps(sdec: Any, frames: FrameBatch, idx: np.ndarray, bounds: np.ndarray
                     ) -> Iterator[Decoded]:
        """The datagrams ``idx`` of ``frames`` decoded ``SFLOW_SLICE`` at a time, one
        slice after the consumer is done with the one before (its blocks are free)."""
        for a in range(0, len(idx), SFLOW_SLICE):
            b = a + SFLOW_SLICE
            samples, counters = sdec.decode_bounded(frames, idx[a:b], bounds[:, a:b])
            yield Decoded(samples, counters)

    def sflow_accounting(self) -> dict[str, Any] | None:
        """The sFlow accounting (sequence gaps, agent drops...) of what was decoded."""
        if self._sflow is None:
            return None
        acc: dict[str, Any] = self._sflow.accounting.to_dict()
        return acc

    def __iter__(self) -> Iterator[Decoded]:
        from fabricscope.capture.reader import open_capture

        t0 = time.perf_counter()
        s = self.summary
        try:
            with open_capture(self.path, batch_frames=self.batch_frames) as cap:
                for frames in cap:
                    n = len(frames)
                    s.frames += n
                    s.bytes += int(frames.caplen.sum())
                    if n:
                        lo, hi = int(frames.ts_ns.min()), int(frames.ts_ns.max())
                        s.first_ts_ns = lo if s.first_ts_ns is None else min(s.first_ts_ns, lo)
                        s.last_ts_ns = hi if s.last_ts_ns is None else max(s.last_ts_ns, hi)
                    if self._expect_sflow and n:
                        done = self._all_sflow(frames)
                        if done is not None:
                            s.sflow_datagrams += n
                            for step in done:
                                s.records += step.records.num_rows
                                s.counter_records += step.counters.num_rows \
                                    if step.counters is not None else 0
                                yield step
                            if self.progress is not None:
                                self.progress(s.frames, s.bytes)
                            continue
                    # the fast path: records straight from the decoder (no slot matrix)
                    out = self.packets.decode(frames)
                    sfl = _values(out.column("proto"), np.uint8) == 17
                    if not self.force_sflow:
                        sfl &= _values(out.column("dport"), np.uint16) == SFLOW_PORT
                    sdec = self._sflow_decoder() if sfl.any() else None
                    self._expect_sflow = self.bounds_first and n > 0 and \
                        sdec is not None and bool(sfl.all())
                    if sdec is None:
                        s.records += out.num_rows
                        yield Decoded(out)
                    else:
                        if not sfl.all():
                            out = out.filter(pa.array(~sfl))
                            s.records += out.num_rows
                            yield Decoded(out)
                        # the datagrams' payload bounds and senders: their frames
                        # walked again, a chunk at a time (no full slot matrix)
                        idx = np.nonzero(sfl)[0]
                        bounds = self.packets.datagram_bounds(frames, idx)
                        s.sflow_datagrams += len(idx)
                        for step in self._sflow_steps(sdec, frames, idx, bounds):
                            s.records += step.records.num_rows
                            s.counter_records += step.counters.num_rows \
                                if step.counters is not None else 0
                            yield step
                    if self.progress is not None:
                        self.progress(s.frames, s.bytes)
        except InputError as exc:
            s.error = str(exc)
            raise
        finally:
            s.seconds = time.perf_counter() - t0
            s.events = self.packets.events
            if self._sflow is not None:
                for k, v in self._sflow.events.items():
                    s.events[k] = s.events.get(k, 0) + v

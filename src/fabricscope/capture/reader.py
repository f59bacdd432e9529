"""Open a capture file, whatever its format, and stream it as FrameBatch columns.

Formats are told by their magic number, never by the file name:

- classic pcap (draft-ietf-opsawg-pcap): 0xA1B2C3D4 (microseconds) or 0xA1B23C4D
  (nanoseconds), in either byte order -> :mod:`fabricscope.capture.pcap`;
- pcapng (draft-ietf-opsawg-pcapng): a Section Header Block, 0x0A0D0D0A ->
  :mod:`fabricscope.capture.pcapng`;
- either of them gzip-compressed (1F 8B, RFC 1952), decompressed on the fly.

Every record/block starts with a header that gives its length (pcap: a 16-byte record
header, captured length at offset 8; pcapng: block type then Block Total Length):

```
   pcap record                              pcapng block
   +--------------------------------+       +--------------------------------+
 0 | ts seconds                     |     0 | block type                     |
 4 | ts fraction (usec or nsec)     |     4 | block total length (L)         |
 8 | captured length (C)            |     8 / body (L - 12 bytes)          /
12 | original length                |       +--------------------------------+
16 / C bytes of packet data         / L - 4 | block total length (L)         |
   +--------------------------------+       +--------------------------------+
```

Memory stays bounded whatever the file size: the file is read into buffers of
``chunk_bytes`` (filled 1 MiB at a time, so the walker finds the bytes still in the CPU
cache); batches handed out keep their buffer alive and it is never written again where
they can see it. A record cut by the end of a chunk is carried into the next one, and a
record bigger than a chunk grows the buffer for that record only, by doubling, so a lying
length costs at most twice the bytes the file really has (and any length above 256 MiB is
an error without reading further). A buffer or batch columns the consumer no longer
refers to are reused (checked with their reference counts), which spares the page faults
of fresh memory.

The per-record work runs in numba walkers; Python runs once per batch (and once per
pcapng section or interface block).
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

import numpy as np

from fabricscope.capture import pcapng
from fabricscope.capture.frames import I8, I32, I64, U8, FrameBatch, concat_batches
from fabricscope.capture.pcap import (
    MAGICS,
    ST_END,
    ST_ERROR,
    ST_FULL,
    ST_NEED,
    ST_PYTHON,
    PcapParser,
)
from fabricscope.capture.pcapng import PcapngParser
from fabricscope.errors import InputError, UsageError

GZIP_MAGIC: Final = b"\x1f\x8b"
MIN_CHUNK: Final = 64
READ_STEP: Final = 1 << 20
"""Bytes read at a time into a chunk buffer (about what stays in the CPU cache)."""


class Stream:
    """A window on the (decompressed) byte stream: ``buf[pos:end]`` is unread data.

    ``base`` is the stream offset of ``buf[0]``. A buffer holds ``chunk`` bytes; it is
    filled ``READ_STEP`` bytes at a time (so the walker reads bytes that are still in the
    CPU cache), and bytes below ``end`` are never written again: batches handed out see
    ``buf[:end]`` as it was. When the buffer is full, :meth:`refill` moves to another one.
    """

    def __init__(self, src: io.BufferedIOBase, chunk_bytes: int, *,
                 gzip_stream: bool = False) -> None:
        self._src = src
        self._gzip = gzip_stream
        self.chunk = chunk_bytes
        self.step = min(chunk_bytes, READ_STEP)
        self._spare: U8 | None = None  # the chunk before the current one, for reuse
        self.buf: U8 = np.zeros(0, np.uint8)
        self.pos = 0
        self.end = 0
        self.base = 0
        self.eof = False
        self.error: str | None = None
        """Why the stream ended early (a corrupt or truncated gzip stream, an I/O error)."""

    def available(self) -> int:
        return self.end - self.pos

    def file_pos(self) -> int:
        return self.base + self.pos

    def peek(self, n: int) -> bytes:
        return self.buf[self.pos : self.pos + n].tobytes()

    def skip(self, n: int) -> None:
        self.pos += n

    def ensure(self, need: int) -> None:
        """Buffer at least ``need`` bytes from pos, unless the stream ends first."""
        while self.available() < need and not self.eof:
            self.refill(need)

    def must_move(self, need: int) -> bool:
        """Whether buffering ``need`` bytes from pos takes another buffer (frames found in
        this one must be handed out first)."""
        return bool(self.pos + need > self.buf.shape[0])

    def refill(self, need: int) -> None:
        """Read on towards ``need`` bytes from pos (at least one byte, or reach the end).

        In place when the current buffer has room for them; else into another buffer that
        starts with the unread tail: a chunk, or up to twice the tail when one record is
        bigger than a chunk (so a lying length costs at most twice the bytes the file
        really has). That buffer is new, or the chunk before the current one when nothing
        outside the reader refers to it any more (no batch handed out from it is alive):
        reusing it spares the page faults of fresh memory.
        """
        if self.eof:
            return
        if not self.must_move(need):
            want = min(self.buf.shape[0] - self.end, max(self.step, self.pos + need - self.end))
            got = self._read_into(self.buf[self.end : self.end + want])
            self.end += got
            if got < want:
                self.eof = True
            return
        tail = self.end - self.pos
        size = max(self.chunk, min(need, 2 * tail))
        if (self._spare is not None and self._spare.shape[0] == size
                and sys.getrefcount(self._spare) <= _HELD_ONCE):
            new = self._spare
        else:
            new = np.empty(size, np.uint8)
        self._spare = None
        new[:tail] = self.buf[self.pos : self.end]
        want = min(size - tail, max(self.step, need - tail))
        got = self._read_into(new[tail : tail + want])
        self.base += self.pos
        if self.buf.shape[0] == self.chunk:
            self._spare = self.buf
        self.buf = new
        self.pos = 0
        self.end = tail + got
        if got < want:
            self.eof = True

    def _read_into(self, dest: U8) -> int:
        view = memoryview(dest.data)
        size = len(view)
        got = 0
        src = self._src
        try:
            while got < size:
                if self._gzip:
                    # one decompression step at a time, so that data decompressed before
                    # a corrupt or truncated part is never lost with the exception
                    n = src.readinto1(view[got:])
                else:  # a large readinto bypasses the BufferedReader's own buffer
                    n = src.readinto(view[got:])
                if not n:
                    break
                got += n
        except (OSError, EOFError, zlib.error) as exc:
            self.error = _describe(exc)
            self.eof = True
        return got


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "compressed stream is truncated (no gzip end marker)"
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"corrupt gzip stream ({exc})"
    return f"read error ({exc})"


class _Probe:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = np.empty(1, np.uint8)


_PROBE: Final = _Probe()
_HELD_ONCE: Final = sys.getrefcount(_PROBE.value)
"""What sys.getrefcount(getattr(holder, name)) says of an object only ``holder`` refers to
(calibrated here rather than assumed: the count includes the call's own references)."""


class BatchArrays:
    """Columns a walker fills for one batch.

    A batch handed out is never written again: its columns are reused for a later batch
    only once nothing outside the reader refers to them (see :meth:`reusable`).
    """

    __slots__ = ("caplen", "file_offset", "iface", "linktype", "offset", "ts_ns", "ts_prec",
                 "wirelen")
    _COLUMNS: Final = __slots__

    def __init__(self, size: int, per_frame_link: bool = True) -> None:
        self.offset: I64 = np.empty(size, np.int64)
        self.caplen: I64 = np.empty(size, np.int64)
        self.wirelen: I64 = np.empty(size, np.int64)
        self.ts_ns: I64 = np.empty(size, np.int64)
        self.file_offset: I64 = np.empty(size, np.int64)
        small = size if per_frame_link else 0  # pcap: shared constant columns instead
        self.linktype: I32 = np.empty(small, np.int32)
        self.iface: I32 = np.empty(small, np.int32)
        self.ts_prec: I8 = np.empty(small, np.int8)

    def reusable(self) -> bool:
        """True when no batch (nor any view of one) still refers to these columns."""
        return all(sys.getrefcount(getattr(self, name)) <= _HELD_ONCE
                   for name in self._COLUMNS)


@dataclass(slots=True)
class CaptureStats:
    """Counters of a capture read so far."""

    frames: int = 0
    bytes: int = 0
    """Captured bytes of the frames handed out (sum of caplen)."""
    batches: int = 0
    file_bytes: int = 0
    """Bytes of the (uncompressed) file walked so far."""
    error: InputError | None = field(default=None)
    """The InputError that ended the read, if the file ended badly."""


class Capture:
    """An open capture file: a context manager and an iterator of :class:`FrameBatch`.

    Iterating yields every good frame; if the file ends badly, the batch holding the frames
    before the problem comes first, then the iteration raises :class:`InputError` (also kept
    in ``stats.error``). A capture is read once.
    """

    path: str
    format: str
    """``"pcap"`` or ``"pcapng"`` (``"pcap"`` for an empty file)."""
    compressed: bool
    stats: CaptureStats

    def __init__(self, path: str | Path, *, batch_frames: int = 8192,
                 chunk_bytes: int = 8 << 20) -> None:
        if batch_frames < 1:
            raise UsageError(f"batch_frames must be at least 1, not {batch_frames}")
        if chunk_bytes < MIN_CHUNK:
            raise UsageError(f"chunk_bytes must be at least {MIN_CHUNK}, not {chunk_bytes}")
        self.path = str(path)
        self.stats = CaptureStats()
        self._batch_frames = batch_frames
        try:
            raw = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise InputError(f"cannot open capture: {exc.strerror}", path=self.path) from None
        self._raw = raw
        self._gz: gzip.GzipFile | None = None
        try:
            # peek, not seek: pipes and process substitution work too
            self.compressed = raw.peek(2)[:2] == GZIP_MAGIC
            if self.compressed:
                self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
                src: io.BufferedIOBase = self._gz
            else:
                src = raw
            self._stream = Stream(src, chunk_bytes, gzip_stream=self.compressed)
            self._parser = self._detect()
        except BaseException:
            self.close()
            raise
        self._gen: Iterator[FrameBatch] = self._batches() if self._parser is not None else iter(())

    def _detect(self) -> PcapParser | PcapngParser | None:
        s = self._stream
        s.ensure(4)
        have = s.available()
        if have == 0:
            if s.error is not None:
                raise InputError(s.error, path=self.path, offset=0)
            self.format = "pcap"
            return None
        magic = s.peek(4)
        if magic in MAGICS:
            self.format = "pcap"
            return PcapParser.open(s, self.path)
        if magic == pcapng.MAGIC:
            self.format = "pcapng"
            return PcapngParser(self.path)
        if have < 4:
            raise InputError(f"file too short for a capture header ({have} bytes)",
                             path=self.path, offset=0)
        raise InputError(f"unknown capture format: magic 0x{magic.hex()} "
                         "(not pcap, pcapng or gzip)", path=self.path, offset=0)

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[FrameBatch]:
        return self

    def __next__(self) -> FrameBatch:
        return next(self._gen)

    def close(self) -> None:
        """Close the file; iteration stops."""
        gen = getattr(self, "_gen", None)
        if gen is not None and hasattr(gen, "close"):
            gen.close()
        self._gen = iter(())
        if getattr(self, "_gz", None) is not None:
            self._gz.close()  # type: ignore[union-attr]
        self._raw.close()

    def _emit(self, arr: BatchArrays, n: int) -> FrameBatch:
        assert self._parser is not None
        linktype, iface, ts_prec = self._parser.columns(arr, n)
        s = self._stream
        batch = FrameBatch(
            buf=s.buf[: s.end], offset=arr.offset[:n], caplen=arr.caplen[:n],
            wirelen=arr.wirelen[:n], ts_ns=arr.ts_ns[:n], linktype=linktype,
            iface=iface, ts_prec=ts_prec, file_offset=arr.file_offset[:n])
        st = self.stats
        st.frames += n
        st.bytes += int(batch.caplen.sum())
        st.batches += 1
        return batch

    def _fail(self, message: str) -> InputError:
        """The error for bad input at the stream position (kept in ``stats.error``); says
        also why the stream ended early, if it did (a truncated gzip stream)."""
        s = self._stream
        if s.error is not None:
            message = f"{message}; {s.error}"
        err = InputError(message, path=self.path, offset=s.file_pos())
        self.stats.error = err
        return err

    def _batches(self) -> Iterator[FrameBatch]:
        parser = self._parser
        assert parser is not None
        s = self._stream
        size = self._batch_frames
        retired: list[BatchArrays] = []

        def fresh() -> BatchArrays:
            # the columns of an earlier batch, if nothing refers to them any more
            for i, old in enumerate(retired):
                if old.reusable():
                    return retired.pop(i)
            return BatchArrays(size, parser.per_frame_link)

        def retire(done: BatchArrays) -> BatchArrays:
            retired.append(done)
            del retired[:-2]  # keep a couple: the consumer usually holds the last batch
            return fresh()

        arr = fresh()
        n = 0
        while True:
            n, status, code, a, b, c = parser.walk(s, arr, n)
            self.stats.file_bytes = s.file_pos()
            if status == ST_FULL:
                yield self._emit(arr, n)
                arr, n = retire(arr), 0
            elif status in (ST_NEED, ST_PYTHON):
                if status == ST_PYTHON:
                    res = parser.python_block(s)
                    if isinstance(res, str):
                        if n:
                            yield self._emit(arr, n)
                        raise self._fail(res)
                    need = res
                else:
                    need = code
                if need:
                    if n and s.must_move(need):  # hand out the frames of this buffer first
                        yield self._emit(arr, n)
                        arr, n = retire(arr), 0
                    s.refill(need)
            elif status == ST_END:
                if n:
                    yield self._emit(arr, n)
                if s.error is not None:
                    self.stats.error = InputError(s.error, path=self.path, offset=s.file_pos())
                    raise self.stats.error
                return
            else:
                assert status == ST_ERROR
                if n:
                    yield self._emit(arr, n)
                raise self._fail(parser.error(code, a, b, c))


def open_capture(path: str | Path, *, batch_frames: int = 8192,
                 chunk_bytes: int = 8 << 20) -> Capture:
    """Open a pcap or pcapng file (gzip or not) for reading as batches of frames.

    Raises :class:`InputError` at once when the file cannot be opened or does not start like
    a capture file; later problems surface while iterating, after the good frames.
    """
    return Capture(path, batch_frames=batch_frames, chunk_bytes=chunk_bytes)


def read_all(path: str | Path, **kwargs: int) -> FrameBatch:
    """Every frame of a capture in one batch with a compact buffer (tests, small files).

    Raises :class:`InputError` if the file ends badly (the good frames are then lost: use
    :func:`open_capture` to keep them).
    """
    with open_capture(path, **kwargs) as cap:
        return concat_batches(list(cap))


__all__ = ["Capture", "CaptureStats", "open_capture", "read_all"]

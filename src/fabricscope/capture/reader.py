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

Memory stays bounded whatever the file size: the file is read ``chunk_bytes`` at a time
into a fresh buffer (batches handed out keep theirs); a record cut by the end of a chunk is
carried into the next one, and a record bigger than a chunk grows the read for that record
only, by doubling, so a lying length costs at most twice the bytes the file really has
(and any length above 256 MiB is an error without reading further).

The per-record work runs in numba walkers; Python runs once per batch (and once per
pcapng section or interface block).
"""

from __future__ import annotations

import gzip
import io
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


class Stream:
    """A window on the (decompressed) byte stream: ``buf[pos:end]`` is unread data.

    ``base`` is the stream offset of ``buf[0]``. :meth:`refill` always moves to a new
    buffer, so a buffer that frames were handed out from is never written again.
    """

    def __init__(self, src: io.RawIOBase | io.BufferedIOBase, chunk_bytes: int) -> None:
        self._src = src
        self.chunk = chunk_bytes
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

    def refill(self, need: int) -> None:
        """Read on into a new buffer that keeps the unread tail: a chunk, or up to twice the
        tail when one record is bigger than a chunk."""
        if self.eof:
            return
        tail = self.end - self.pos
        want = max(self.chunk, min(need, 2 * tail))
        new = np.empty(want, np.uint8)
        new[:tail] = self.buf[self.pos : self.end]
        got = self._read_into(new[tail:])
        self.base += self.pos
        self.buf = new
        self.pos = 0
        self.end = tail + got
        if got < want - tail:
            self.eof = True

    def _read_into(self, dest: U8) -> int:
        view = memoryview(dest.data)
        size = len(view)
        got = 0
        src = self._src
        try:
            while got < size:
                if isinstance(src, io.BufferedIOBase):
                    # gzip: one decompression step at a time, so that data decompressed
                    # before a corrupt or truncated part is never lost with the exception
                    n = src.readinto1(view[got:])
                else:
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


class BatchArrays:
    """Columns a walker fills for one batch (allocated per batch: batches handed out are
    never written again)."""

    __slots__ = ("caplen", "file_offset", "iface", "linktype", "offset", "ts_ns", "ts_prec",
                 "wirelen")

    def __init__(self, size: int) -> None:
        self.offset: I64 = np.empty(size, np.int64)
        self.caplen: I64 = np.empty(size, np.int64)
        self.wirelen: I64 = np.empty(size, np.int64)
        self.ts_ns: I64 = np.empty(size, np.int64)
        self.file_offset: I64 = np.empty(size, np.int64)
        self.linktype: I32 = np.empty(size, np.int32)
        self.iface: I32 = np.empty(size, np.int32)
        self.ts_prec: I8 = np.empty(size, np.int8)


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
            raw = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise InputError(f"cannot open capture: {exc.strerror}", path=self.path) from None
        self._raw = raw
        self._gz: gzip.GzipFile | None = None
        try:
            head = raw.read(2) or b""
            raw.seek(0)
            self.compressed = head == GZIP_MAGIC
            if self.compressed:
                self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
                src: io.RawIOBase | io.BufferedIOBase = self._gz
            else:
                src = raw
            self._stream = Stream(src, chunk_bytes)
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
        self._parser.finish(arr, n)
        s = self._stream
        batch = FrameBatch(
            buf=s.buf[: s.end], offset=arr.offset[:n], caplen=arr.caplen[:n],
            wirelen=arr.wirelen[:n], ts_ns=arr.ts_ns[:n], linktype=arr.linktype[:n],
            iface=arr.iface[:n], ts_prec=arr.ts_prec[:n], file_offset=arr.file_offset[:n])
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
        arr = BatchArrays(size)
        n = 0
        while True:
            n, status, code, a, b, c = parser.walk(s, arr, n)
            self.stats.file_bytes = s.file_pos()
            if status == ST_FULL:
                yield self._emit(arr, n)
                arr, n = BatchArrays(size), 0
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
                    if n:  # the frames live in the current buffer: hand them out first
                        yield self._emit(arr, n)
                        arr, n = BatchArrays(size), 0
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

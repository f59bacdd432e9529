"""The embedded store's commit log: which Parquet files make up the store, atomically.

A batch writes several files (records, counters and their 1-minute aggregates, one per
hour/day partition it touches). They only become visible together, when the writer
commits them: one small JSON entry ``_log/<seq>.json`` written to a temporary name, synced
and renamed (the rename is the commit point). Readers list ``_log/``, start from the
newest checkpoint (``<seq>.checkpoint.json``, the whole file list at that sequence number)
and apply the entries after it: they always see whole batches, never a file that is half
written or a batch that is half committed. Compaction and retention are entries too
(files added and removed in one step).

Every ``CHECKPOINT_EVERY`` entries the writer writes a checkpoint and deletes the entries
it covers (and the checkpoints before the previous one). A reader that loses a race with
that deletion simply lists again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fabricscope.store.errors import DiskFull, StoreCorrupt, StoreError

LOG_DIR = "_log"
CHECKPOINT_EVERY = 64
KEEP_BATCH_IDS = 10_000
"""Batch ids remembered for deduplication (ClickHouse keeps a window too)."""

_ENTRY = re.compile(r"^(\d{16})\.json$")
_CHECKPOINT = re.compile(r"^(\d{16})\.checkpoint\.json$")


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the store root, '/'-separated
    ds: str  # dataset: records, counters, records_1m, counters_1m
    part: str  # partition: dt=YYYY-MM-DD/hr=HH or dt=YYYY-MM-DD
    rows: int
    bytes: int
    min_ts: int
    max_ts: int
    batch: str | None = None  # the batch that wrote it (None after compaction)
    added: int = 0  # wall-clock ns when its rows arrived in the store (retention)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FileEntry:
        return cls(path=str(d["path"]), ds=str(d["ds"]), part=str(d["part"]),
                   rows=int(d["rows"]), bytes=int(d["bytes"]), min_ts=int(d["min_ts"]),
                   max_ts=int(d["max_ts"]), batch=d.get("batch"),
                   added=int(d.get("added", d["max_ts"])))


@dataclass
class Snapshot:
    """The store at one sequence number."""

    seq: int = 0
    files: dict[str, FileEntry] = field(default_factory=dict)
    batches: OrderedDict[str, int] = field(default_factory=OrderedDict)
    ingested: dict[str, dict[str, Any]] = field(default_factory=dict)

    def copy(self) -> Snapshot:
        return Snapshot(self.seq, dict(self.files), OrderedDict(self.batches),
                        dict(self.ingested))

    def apply(self, entry: dict[str, Any]) -> None:
        for p in entry.get("remove", ()):
            self.files.pop(p, None)
        for d in entry.get("add", ()):
            fe = FileEntry.from_json(d)
            self.files[fe.path] = fe
        b = entry.get("batch")
        if b is not None:
            self.batches[str(b)] = int(entry["seq"])
            while len(self.batches) > KEEP_BATCH_IDS:
                self.batches.popitem(last=False)
        for k, v in (entry.get("ingested") or {}).items():
            self.ingested[str(k)] = v
        self.seq = int(entry["seq"])

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "files": [f.to_json() for f in self.files.values()],
                "batches": list(self.batches.items()), "ingested": self.ingested}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Snapshot:
        s = cls(seq=int(d["seq"]))
        for f in d.get("files", ()):
            fe = FileEntry.from_json(f)
            s.files[fe.path] = fe
        for b, q in d.get("batches", ()):
            s.batches[str(b)] = int(q)
        s.ingested = dict(d.get("ingested") or {})
        return s

    def of(self, ds: str, lo: int | None = None, hi: int | None = None) -> list[FileEntry]:
        """Files of dataset ``ds`` that may hold rows with ``lo <= ts < hi``."""
        out = []
        for f in self.files.values():
            if f.ds != ds:
                continue
            if lo is not None and f.max_ts < lo:
                continue
            if hi is not None and f.min_ts >= hi:
                continue
            out.append(f)
        out.sort(key=lambda f: f.path)
        return out


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and a rename."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if exc.errno == errno.ENOSPC:
            raise DiskFull(f"{path}: no space left on device") from None
        raise
    fsync_dir(path.parent)


def write_file_atomic(final: Path, write: Callable[[Path], object]) -> int:
    """Have ``write(path)`` write a data file, under a temporary name next to ``final``,
    then fsync it and rename it to ``final`` (nothing is left behind if it fails);
    returns its size."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(".tmp-" + final.name)
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return final.stat().st_size


class Catalog:
    """Reads (any process) and writes (the one writer) the commit log under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / LOG_DIR
        self._cache: Snapshot | None = None
        self.current: Snapshot | None = None  # the writer's own view
        self._since_checkpoint = 0
        self._commit_lock = threading.Lock()

    # --- reading ----------------------------------------------------------------------------

    def _load(self, name: str) -> dict[str, Any]:
        path = self.log / name
        with open(path, "rb") as fh:
            raw = fh.read()
        try:
            d = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreCorrupt(f"store {self.root}: damaged log file {path}: {exc}") from None
        if not isinstance(d, dict) or "seq" not in d:
            raise StoreCorrupt(f"store {self.root}: damaged log file {path}: no seq")
        return d

    def snapshot(self) -> Snapshot:
        """The newest committed state (a reader's view; cached between calls)."""
        if self.current is not None:
            return self.current
        last_exc: Exception | None = None
        for _attempt in range(50):
            try:
                snap = self._read_snapshot()
            except FileNotFoundError as exc:  # lost a race with a checkpoint: list again
                last_exc = exc
                time.sleep(0.01)
                continue
            self._cache = snap
            return snap
        raise StoreError(f"store {self.root}: cannot read a consistent file list ({last_exc})")

    def _read_snapshot(self) -> Snapshot:
        try:
            names = os.listdir(self.log)
        except FileNotFoundError:
            raise StoreCorrupt(f"store {self.root}: {LOG_DIR}/ is missing") from None
        entries: dict[int, str] = {}
        checkpoints: dict[int, str] = {}
        for n in names:
            m = _ENTRY.match(n)
            if m:
                entries[int(m.group(1))] = n
                continue
            m = _CHECKPOINT.match(n)
            if m:
                checkpoints[int(m.group(1))] = n
        top = max([*entries, *checkpoints, 0])
        cache = self._cache
        if cache is not None and cache.seq == top:
            return cache
        if cache is not None and cache.seq < top and all(
                s in entries for s in range(cache.seq + 1, top + 1)):
            snap = cache.copy()
        else:
            base = max((s for s in checkpoints if s <= top), default=0)
            snap = Snapshot.from_json(self._load(checkpoints[base])) if base else Snapshot()
            if snap.seq != base:
                raise StoreCorrupt(f"store {self.root}: checkpoint {base} says seq {snap.seq}")
        for s in range(snap.seq + 1, top + 1):
            if s not in entries:
                raise FileNotFoundError(f"log entry {s}")
            snap.apply(self._load(entries[s]))
        return snap

    # --- writing (the writer holds the lock) ---------------------------------------------------

    def open_writer(self) -> Snapshot:
        self.log.mkdir(parents=True, exist_ok=True)
        self.current = None
        self._cache = None
        snap = self.snapshot()
        self.current = snap
        return snap

    def commit(self, entry: dict[str, Any]) -> Snapshot:
        """Write entry ``seq + 1`` (the commit point) and apply it to the writer's view.

        The writer's threads (the appending one and the staging tier's sealer) take
        turns here; ``current`` is replaced, never changed in place, so a snapshot one of
        them is reading stays as it was."""
        with self._commit_lock:
            assert self.current is not None, "not the writer"
            seq = self.current.seq + 1
            entry = {"seq": seq, "time": time.time(), **entry}
            data = json.dumps(entry, separators=(",", ":")).encode()
            write_atomic(self.log / f"{seq:016d}.json", data)
            snap = self.current.copy()
            snap.apply(entry)
            self.current = snap
            self._since_checkpoint += 1
            if self._since_checkpoint >= CHECKPOINT_EVERY:
                self.checkpoint()
            return snap

    def checkpoint(self) -> None:
        assert self.current is not None
        snap = self.current
        if snap.seq == 0:
            return
        data = json.dumps(snap.to_json(), separators=(",", ":")).encode()
        try:
            write_atomic(self.log / f"{snap.seq:016d}.checkpoint.json", data)
        except (DiskFull, OSError):
            return  # the log entries still hold everything
        self._since_checkpoint = 0
        self._prune_log(snap.seq)

    def _prune_log(self, upto: int) -> None:
        cps = []
        for n in os.listdir(self.log):
            m = _ENTRY.match(n)
            if m and int(m.group(1)) <= upto:
                _unlink(self.log / n)
                continue
            m = _CHECKPOINT.match(n)
            if m:
                cps.append(int(m.group(1)))
        for s in sorted(cps)[:-2]:  # keep the newest two checkpoints
            _unlink(self.log / f"{s:016d}.checkpoint.json")

    def clean_temp(self) -> None:
        for n in os.listdir(self.log):
            if n.startswith(".tmp-"):
                _unlink(self.log / n)


def _unlink(p: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        p.unlink()


def walk_files(root: Path, datasets: Iterable[str]) -> Iterator[Path]:
    """Every file under the dataset directories (for the orphan sweep)."""
    for ds in datasets:
        base = root / ds
        if not base.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                yield Path(dirpath) / f

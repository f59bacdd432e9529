"""The embedded store's staging tier: record batches committed as they come, sealed later.

An append used to sort each batch for traces, aggregate it per minute and encode it as
Parquet before committing it: about 2 us of CPU a record, six times what the decoder
spends on it, so ``ingest`` waited on the store 90% of the time. Now an append writes the
batch's records as one Arrow IPC file per hour partition (uncompressed, about 0.2 us a
record, no sort) and commits them through the same log, so they are durable and queryable at once;
a *sealer* thread of the writer then does the old work in the background, turning staged
files into the sorted Parquet files and ``records_1m`` aggregates, and replaces them in
one commit (as ClickHouse merges the parts it has inserted). Readers memory-map the
staged files (uncompressed: a query reads the pages of the columns it uses, nothing is
decoded) and hand them to DuckDB as Arrow tables, unioned with the Parquet files; in
``records_1m`` each staged record is a partial aggregate of its own
(``records.ddl.rollup_rows``). (DuckDB reads IPC files only
through its ``arrow`` extension, which nothing may download; ``pyarrow.dataset`` would
import pandas into every one-shot query, 0.4 s; LZ4 would quarter the bytes but cost
2.5 times the CPU of writing them and a decompression of every column at each query.)

The tier is bounded: when more than ``STAGE_MAX_ROWS`` records wait, an append waits for
the sealer (back pressure), so a sustained load above the sealing rate slows the writer
down to that rate instead of growing the tier (and the queries' scan of it) without end.

```
<root>/records/dt=YYYY-MM-DD/hr=HH/<seq>-<n>.arrow       staged (an Arrow IPC file)
<root>/records/dt=YYYY-MM-DD/hr=HH/<seq>-s<job>-<n>.parquet    sealed from staged files
```
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence, Set
from pathlib import Path
from typing import Any

import pyarrow as pa

from fabricscope.store.catalog import FileEntry, Snapshot, write_file_atomic

STAGED_SUFFIX = ".arrow"
STAGE_MAX_ROWS = 4_000_000
"""Records that may wait in the staging tier before appends wait for the sealer: a
query scans at most this many unsorted records besides the Parquet files. With 4,000,000
staged on the development VM: one flow's records over an hour 0.51-0.57 s (0.04-0.11 s
once sealed), top talkers per minute 1.32-1.36 s (0.27-0.29 s)."""
SEAL_ROWS = 1 << 20
"""The sealer takes staged files, oldest first, until it has this many records (one
ingest batch): sealed files are as large as the ones an append used to write."""
SEAL_BACKLOG_ROWS = STAGE_MAX_ROWS // 2
"""The sealer starts while appends keep coming once this many records wait; below it, it
leaves the CPUs to the decoder and seals when the appends pause (``QUIET_S``) or the
oldest staged record has waited ``SEAL_AFTER_S``. (Sealing at once, on the second core,
slowed decoding down: sealing uses both cores, Parquet encoding runs on the pool.)"""
SEAL_AFTER_S = 20.0
"""Staged records are sealed once the oldest has waited this long (a collector's small
batches), however busy the writer is."""
QUIET_S = 1.0
"""The sealer also starts when no append came for this long."""


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 8 << 30


def _seal_threads() -> int:
    env = os.environ.get("FABRICSCOPE_SEAL_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    by_memory = _memory_bytes() // (2 << 30)
    return max(1, min(8, (os.cpu_count() or 1) // 2, by_memory))


SEAL_THREADS = _seal_threads()
"""Sealer threads of a writer, each sealing one job at a time: half the processors (a job
keeps about 1.4 of them busy: its own thread, and its Parquet encoding on the store's
pool), at least 1, at most 8 and at most one per 2 GiB of memory (a job holds about
500 MB while it runs, and the tier and the decoder need room too);
``FABRICSCOPE_SEAL_THREADS`` sets it. One on the two-core development VM, where a second
one would take the decoder's core. More were not measured (no such machine here); at
about 2 µs of CPU a sealed record, sealing 5 M records/s takes 10 cores, so the cap
lets a 16-core writer use them (docs/storage.md, tenth session)."""
IDLE_WAIT_S = 0.5


class StagedFileError(ValueError):
    """A staged file is damaged (the message names it)."""


def is_staged(f: FileEntry) -> bool:
    return f.path.endswith(STAGED_SUFFIX)


def staged_rows(snap: Snapshot) -> int:
    return sum(f.rows for f in snap.files.values() if is_staged(f))


def write_staged(table: pa.Table, final: Path) -> int:
    """Write ``table`` as an Arrow IPC file at ``final`` atomically (temporary name,
    fsync, rename); uncompressed, so that readers can map it."""
    import pyarrow.ipc as ipc

    def write(path: Path) -> None:
        with ipc.new_file(str(path), table.schema) as w:
            w.write_table(table, max_chunksize=1 << 17)

    return write_file_atomic(final, write)


def read_staged(paths: Sequence[Path]) -> pa.Table:
    """The records of staged files, in order, as one table over their memory maps (no
    copy; columns a file lacks, because they were all null in its batch, are null).
    Staged files are never changed once renamed into place, only removed (a mapping
    outlives the removal), so the maps cannot be truncated under a reader."""
    import pyarrow.ipc as ipc

    tables = []
    for p in paths:
        try:
            with pa.memory_map(str(p)) as src:
                tables.append(ipc.open_file(src).read_all())
        except pa.ArrowInvalid as exc:
            raise StagedFileError(f"{p}: not an Arrow IPC file: {exc}") from None
    try:
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # a string column kept plain in one batch (too many distinct values for a
        # dictionary) and dictionary-encoded in another: plain strings everywhere
        return pa.concat_tables([_plain_strings(t) for t in tables],
                                promote_options="default")


def _plain_strings(t: pa.Table) -> pa.Table:
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
            for c in t.columns]
    return pa.Table.from_arrays(cols, names=t.column_names)


def pick(snap: Snapshot, *, force: bool, now_ns: int, quiet: bool = True,
         taken: Set[str] = frozenset()) -> list[FileEntry]:
    """The next seal job: staged files oldest first until ``SEAL_ROWS`` records, leaving
    out the files of jobs in progress (``taken``). Unless ``force``, nothing while the
    oldest is younger than ``SEAL_AFTER_S`` and either appends keep coming (not
    ``quiet``) with fewer than ``SEAL_BACKLOG_ROWS`` staged, or fewer than ``SEAL_ROWS``
    are staged."""
    staged = sorted((f for f in snap.files.values() if is_staged(f) and f.path not in taken),
                    key=lambda f: (f.added, f.path))
    if not staged:
        return []
    total = sum(f.rows for f in staged)
    old = staged[0].added <= now_ns - SEAL_AFTER_S * 1e9
    if not (force or old or total >= SEAL_BACKLOG_ROWS or (quiet and total >= SEAL_ROWS)):
        return []
    job: list[FileEntry] = []
    rows = 0
    for f in staged:
        job.append(f)
        rows += f.rows
        if rows >= SEAL_ROWS:
            break
    return job


class Sealer:
    """The writer's background threads that seal staged files (``seal_job`` does one
    job: it is the store's); ``SEAL_THREADS`` of them. A job claims its files, so jobs
    on different threads never share one. :meth:`drain` (the end of an ``ingest``)
    seals on the caller's thread too, one job more beside them: one job's sort and
    aggregation run on its own thread and its Parquet encoding on the store's pool,
    which kept 1.4 of two cores busy (docs/storage.md has the figures). An append held
    back by :meth:`throttle` only waits (its decoder keeps a core busy). A failed job
    (a full disk) is kept in ``error`` and retried after ``pause_s``; appends that wait
    on the tier raise it."""

    def __init__(self, snapshot: Callable[[], Snapshot],
                 seal_job: Callable[[list[FileEntry]], None], *, pause_s: float,
                 threads: int | None = None) -> None:
        self._snapshot = snapshot
        self._seal_job = seal_job
        self._pause_s = pause_s
        self._cond = threading.Condition()
        self._taken: set[str] = set()  # the staged files of the jobs in progress
        self._stop = False
        self.error: BaseException | None = None
        self.sealed_rows = 0  # (where the jobs' CPU goes: the store's StepCosts)
        self._last_append = time.monotonic()
        self._appending = 0
        self._pressed = 0  # appends waiting in throttle, or drains: seal whatever there is
        self._threads = [
            threading.Thread(target=self._run, daemon=True,
                             name="store-sealer" + (f"-{k + 1}" if k else ""))
            for k in range(threads or SEAL_THREADS)]
        for t in self._threads:
            t.start()

    def appending(self, start: bool) -> None:
        """An append starts (``start``) or ends: the sealer waits for a pause in them
        (see ``pick``)."""
        with self._cond:
            self._appending += 1 if start else -1
            self._last_append = time.monotonic()
            self._cond.notify_all()

    def _one(self, *, force: bool) -> bool:
        """Seal one job if there is one that no other thread has taken; -> whether there
        was."""
        with self._cond:
            quiet = not self._appending and time.monotonic() - self._last_append >= QUIET_S
            job = pick(self._snapshot(), force=force, now_ns=time.time_ns(), quiet=quiet,
                       taken=self._taken)
            if not job:
                return False
            paths = {f.path for f in job}
            self._taken |= paths
        try:
            self._seal_job(job)
        finally:
            with self._cond:
                self._taken -= paths
                self._cond.notify_all()
        with self._cond:
            self.sealed_rows += sum(f.rows for f in job)
            self.error = None
            self._cond.notify_all()
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stop:
                    return
            try:
                if self._one(force=self._pressed > 0):
                    continue
                wait = IDLE_WAIT_S
            except BaseException as exc:  # kept for the appends; the data is staged
                with self._cond:
                    self.error = exc
                    self._cond.notify_all()
                wait = self._pause_s
            with self._cond:
                if not self._stop:
                    self._cond.wait(wait)

    def _wait_for_others(self) -> bool:
        """Wait until a job of another thread ends; -> False if there is none."""
        with self._cond:
            if not self._taken:
                return False
            self._cond.wait(IDLE_WAIT_S)
            return True

    def drain(self, progress: Callable[[int], Any] | None = None) -> int:
        """Seal everything staged now, on the caller's thread and the sealer's; ->
        records sealed meanwhile (by both). A job of the caller's that fails raises
        here."""
        with self._cond:
            self._pressed += 1
            start = self.sealed_rows
            self._cond.notify_all()
        try:
            while True:
                before = self.sealed_rows
                if not self._one(force=True) and not self._wait_for_others():
                    return self.sealed_rows - start
                if progress is not None and self.sealed_rows != before:
                    progress(self.sealed_rows - start)
        finally:
            with self._cond:
                self._pressed -= 1

    def throttle(self, limit: int) -> None:
        """Wait while more than ``limit`` records are staged (back pressure); raise the
        sealer's error if it cannot seal. (It does not seal beside the sealer: its
        decoder keeps the other core busy; measured in docs/storage.md.)"""
        with self._cond:
            self._pressed += 1
            try:
                while staged_rows(self._snapshot()) > limit:
                    if self.error is not None:
                        raise self.error
                    if self._stop or not any(t.is_alive() for t in self._threads):
                        return
                    self._cond.notify_all()
                    self._cond.wait(IDLE_WAIT_S)
            finally:
                self._pressed -= 1

    def stop(self) -> None:
        """Stop the thread (a job in progress finishes and commits first)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()

"""The embedded store: a directory of time-partitioned Parquet files, queried with DuckDB.

```
<root>/store.json                      format, schema version, retention
<root>/writer.lock                     flock'ed by the one writer (holds its pid)
<root>/_log/<seq>.json                 commit log (see catalog.py); the commit point
<root>/_log/<seq>.checkpoint.json      the whole file list every 64 commits
<root>/records/dt=YYYY-MM-DD/hr=HH/<seq>-<n>.arrow   staged records (see staging.py)
<root>/records/dt=YYYY-MM-DD/hr=HH/<seq>-s<job>-<n>.parquet sealed: sorted for traces
<root>/counters/dt=YYYY-MM-DD/hr=HH/...
<root>/records_1m/dt=YYYY-MM-DD/...    per-minute aggregates, partitioned by day
<root>/counters_1m/dt=YYYY-MM-DD/...
```

One writer (a collector, ``ingest``) and any number of readers at once: the writer takes
``writer.lock`` (non-blocking: a second writer fails at once, naming the first one's pid),
writes each file under a temporary name, syncs it, renames it into its partition, and
then commits the batch with one log entry. Readers open an in-memory DuckDB and query the
files of the newest committed snapshot. A crash loses at most the batch being written;
the next writer removes its leftovers (files no entry names).

Records are committed to a staging tier first (Arrow IPC files, no sort) and sealed into
sorted Parquet files and per-minute aggregates by a background thread of the writer
(``staging.py``); counters, a few per cent of the rows, go straight to Parquet.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fabricscope.records.ddl import (
    ROLLUPS,
    TABLES,
    duckdb_columns,
    duckdb_create_table,
    quote_ident,
    rollup_rows,
    rollup_select,
)
from fabricscope.records.parquet import NO_DICTIONARY as PARQUET_NO_DICTIONARY
from fabricscope.records.parquet import _leaves as parquet_leaves
from fabricscope.records.parquet import stats_paths
from fabricscope.records.schema import SCHEMA_VERSION
from fabricscope.store.base import DEFAULT_RETENTION, DEFAULT_RETENTION_1M, Store, Window
from fabricscope.store.catalog import (
    LOG_DIR,
    Catalog,
    FileEntry,
    Snapshot,
    fsync_dir,
    walk_files,
    write_atomic,
    write_file_atomic,
)
from fabricscope.store.conform import conform_input
from fabricscope.store.costs import StepCosts
from fabricscope.store.errors import (
    DiskFull,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreVersionError,
)
from fabricscope.store.staging import (
    SEAL_THREADS,
    STAGE_MAX_ROWS,
    Sealer,
    StagedFileError,
    is_staged,
    read_staged,
    staged_rows,
    write_staged,
)

FORMAT = "fabricscope-store"
STORE_JSON = "store.json"
LOCK_FILE = "writer.lock"
DATASETS: tuple[str, ...] = ("records", "counters", "records_1m", "counters_1m")
HOURLY = frozenset({"records", "counters"})
HOUR_NS = 3_600 * 10**9
DAY_NS = 86_400 * 10**9

SMALL_FILE_ROWS = 2_000_000
"""Files with fewer rows are merged by compaction (bigger ones are left alone)."""
COMPACT_MIN_FILES = 8
"""The writer merges this many small files of one size tier in a partition."""
CLOSED_AFTER_NS = 10 * 60 * 10**9
"""A partition this far behind the newest record is closed: its small files are merged."""
CLOSED_MERGE_ROWS = 500_000
DELETE_GRACE_S = 30.0
"""Files replaced by compaction or dropped by retention stay this long for readers that
listed them just before (a reader that still misses one retries with a new listing)."""
RETENTION_EVERY_S = 600.0
MAINTENANCE_PAUSE_S = 60.0
ROW_GROUP = 131_072
WRITE_THREADS = 2 * SEAL_THREADS
"""The store's pool that encodes Parquet and writes staged files: two files per seal job
(its records and their aggregate), for each sealer thread (2 on the development VM)."""
_SQL_START = re.compile(r"^\s*(\(|select\b|with\b|from\b|values\b|describe\b|summarize\b"
                        r"|show\b|explain\b|pivot\b|unpivot\b|table\b)", re.IGNORECASE)


_VIEW_NAMES = itertools.count()


class _Vanished(StoreError):
    """A file of the snapshot being read was removed (sealed or compacted) meanwhile."""


def _now_ns() -> int:
    return time.time_ns()


def _parts(table: pa.Table, ds: str) -> list[tuple[str, pa.Table, int, int]]:
    """Split ``table`` by partition: [(partition path, rows, min ts, max ts)]."""
    if table.num_rows == 0:
        return []
    ts = np.asarray(table.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False),
                    dtype=np.int64)
    step = HOUR_NS if ds in HOURLY else DAY_NS
    key = ts // step
    out = []
    groups: list[tuple[int, np.ndarray | slice | None]]
    if key.min() == key.max():
        groups = [(int(key[0]), None)]
    elif bool(np.all(key[1:] >= key[:-1])):  # partitions already contiguous: slices
        cut = np.flatnonzero(np.diff(key)) + 1
        bounds = [0, *cut.tolist(), len(key)]
        groups = [(int(key[a]), slice(a, b)) for a, b in itertools.pairwise(bounds)]
    else:
        order = np.argsort(key, kind="stable")
        sk = key[order]
        cut = np.flatnonzero(np.diff(sk)) + 1
        bounds = [0, *cut.tolist(), len(sk)]
        groups = [(int(sk[a]), order[a:b]) for a, b in itertools.pairwise(bounds)]
    for k, idx in groups:
        if idx is None:
            sub, t = table, ts
        elif isinstance(idx, slice):
            sub, t = table.slice(idx.start, idx.stop - idx.start), ts[idx]
        else:
            sub, t = table.take(pa.array(idx)), ts[idx]
        d = datetime.fromtimestamp(k * step / 1e9, UTC)
        part = f"dt={d:%Y-%m-%d}/hr={d:%H}" if ds in HOURLY else f"dt={d:%Y-%m-%d}"
        out.append((part, sub, int(t.min()), int(t.max())))
    return out


def _day_of(t: pa.Table) -> np.ndarray:
    ts = np.asarray(t.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False),
                    dtype=np.int64)
    return ts // DAY_NS


def _tier(rows: int) -> int:
    """Size tier of a file: files of one tier have rows within a factor of 8."""
    return max(0, int(rows).bit_length() - 1) // 3


def _part_end_ns(f: FileEntry) -> int:
    """End of the partition a file belongs to (exclusive)."""
    step = HOUR_NS if f.ds in HOURLY else DAY_NS
    return (f.min_ts // step + 1) * step


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _is_enospc(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(exc).lower()
    return "no space left" in text or "enospc" in text


class EmbeddedStore(Store):
    dialect = "duckdb"
    backend = "embedded"

    def __init__(self, root: Path, *, write: bool = False,
                 retention: timedelta | None = None,
                 retention_1m: timedelta | None = None, staging: bool = True) -> None:
        """``staging=False``: appends sort, aggregate and encode Parquet before they
        commit, as before the staging tier (the benchmark compares both)."""
        super().__init__(str(root), write=write)
        self.root = Path(root)
        self.catalog = Catalog(self.root)
        self._lock_fd: int | None = None
        self._trash: list[tuple[float, Path]] = []
        self._last_retention = 0.0
        self._views_seq = -1
        self._con: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._maintenance_paused_until = 0.0
        self.maintenance_error: str | None = None
        self._meta: dict[str, Any] = {}
        self.staging = staging and write
        self._sealer: Sealer | None = None
        self._seal_ids = itertools.count()
        self.costs = StepCosts()  # CPU and page faults per writing step (costs.py)
        self._staged_views: dict[tuple[str, ...], str] = {}
        self._state_lock = threading.Lock()  # the trash list, the lazy connection and pool
        try:
            if write:
                self._open_writer(retention, retention_1m)
            else:
                self._open_reader()
        except BaseException:
            self._release()
            raise
        if write:  # staged files left by an earlier writer are sealed even without staging
            self._sealer = Sealer(self.catalog.snapshot, self._seal_job,
                                  pause_s=MAINTENANCE_PAUSE_S)

    # --- opening ----------------------------------------------------------------------------

    def _read_meta(self) -> dict[str, Any] | None:
        p = self.root / STORE_JSON
        try:
            raw = p.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise StoreCorrupt(f"store {self.root}: {STORE_JSON} is a directory") from None
        try:
            meta = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise StoreCorrupt(f"store {self.root}: {STORE_JSON} is damaged "
                               "(not JSON): not a fabricscope store?") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise StoreCorrupt(f"store {self.root}: {STORE_JSON} is not a fabricscope "
                               "store description")
        v = meta.get("schema_version")
        if not isinstance(v, int) or v < 0:
            raise StoreCorrupt(f"store {self.root}: {STORE_JSON}: bad schema_version {v!r}")
        if v > SCHEMA_VERSION:
            raise StoreVersionError(
                f"store {self.root} has schema version {v}; this fabricscope knows up to "
                f"{SCHEMA_VERSION}: upgrade fabricscope")
        return meta

    def _write_meta(self, meta: dict[str, Any]) -> None:
        write_atomic(self.root / STORE_JSON, json.dumps(meta, indent=2).encode() + b"\n")
        self._meta = meta

    def _check_root(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            hint = ""
            try:
                with open(self.root, "rb") as fh:
                    head = fh.read(16)
                if head[8:12] == b"DUCK":
                    hint = " (a DuckDB database file; the store is a directory)"
            except OSError:
                pass
            raise StoreCorrupt(f"store {self.root}: not a directory{hint}")

    def _open_reader(self) -> None:
        self._check_root()
        if not self.root.is_dir():
            raise StoreError(f"no store at {self.root}: nothing was ingested there yet "
                             "(fabricscope ingest / collect create it)")
        meta = self._read_meta()
        if meta is None:
            if any(self.root.iterdir()):
                raise StoreCorrupt(f"store {self.root}: no {STORE_JSON}; "
                                   "not a fabricscope store")
            raise StoreError(f"no store at {self.root}: the directory is empty")
        if meta["schema_version"] < SCHEMA_VERSION:
            meta = self._migrate_as_reader()
        self._meta = meta

    def _migrate_as_reader(self) -> dict[str, Any]:
        """An old store and no writer: take the lock just long enough to migrate."""
        try:
            self._take_writer_lock()
        except StoreLocked:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the writer migrates when it opens
                meta = self._read_meta()
                if meta is not None and meta["schema_version"] >= SCHEMA_VERSION:
                    return meta
                time.sleep(0.1)
            raise StoreVersionError(
                f"store {self.root} has an old schema version and its writer did not "
                "upgrade it; stop that writer (an older fabricscope?) and retry") from None
        try:
            meta = self._read_meta()
            assert meta is not None
            self.catalog.open_writer()
            self._migrate(meta)
            return self._meta
        finally:
            self.catalog.current = None
            self._release()

    def _take_writer_lock(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            try:
                pid = os.read(fd, 64).decode(errors="replace").split()[0]
            except (OSError, IndexError):
                pid = "?"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                raise StoreLocked(f"store {self.root} is being written by pid {pid}; "
                                  "only one writer at a time") from None
            raise StoreError(f"store {self.root}: cannot lock {path}: {exc}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {os.uname().nodename}\n".encode())
        self._lock_fd = fd

    def _release(self) -> None:
        if self._lock_fd is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _open_writer(self, retention: timedelta | None,
                     retention_1m: timedelta | None) -> None:
        self._check_root()
        if self.root.is_dir() and not (self.root / STORE_JSON).exists():
            extra = [p.name for p in self.root.iterdir() if p.name != LOCK_FILE]
            if extra:
                raise StoreCorrupt(f"store {self.root}: the directory is not empty and has "
                                   f"no {STORE_JSON}: not a fabricscope store")
        try:
            self._take_writer_lock()
        except PermissionError as exc:
            raise StoreError(f"store {self.root}: {exc.strerror}") from None
        meta = self._read_meta()
        if meta is None:
            meta = {"format": FORMAT, "schema_version": SCHEMA_VERSION,
                    "created": datetime.now(UTC).isoformat(), "retention": {}}
            (self.root / LOG_DIR).mkdir(exist_ok=True)
            self._write_meta(meta)
        self._meta = meta
        self.catalog.open_writer()
        if meta["schema_version"] < SCHEMA_VERSION:
            self._migrate(meta)
        ret = dict(self._meta.get("retention") or {})
        changed = False
        if retention is not None:
            ret["raw_s"] = int(retention.total_seconds())
            changed = True
        if retention_1m is not None:
            ret["agg_s"] = int(retention_1m.total_seconds())
            changed = True
        if changed:
            self._write_meta({**self._meta, "retention": ret})
        self.catalog.clean_temp()
        self._sweep_orphans()
        self._maybe_retention()

    def _migrate(self, meta: dict[str, Any]) -> None:
        from fabricscope.store.migrations import MIGRATIONS

        v = int(meta["schema_version"])
        for step in MIGRATIONS[v:SCHEMA_VERSION]:
            step.embedded(self)
            v = step.from_version + 1
            self._write_meta({**self._meta, "schema_version": v})

    def _sweep_orphans(self) -> None:
        """Remove files no committed entry names: leftovers of a crashed batch."""
        snap = self.catalog.snapshot()
        known = {self.root / p for p in snap.files}
        for p in walk_files(self.root, DATASETS):
            if p not in known:
                with contextlib.suppress(OSError):
                    p.unlink()
        self._remove_empty_dirs()

    def _remove_empty_dirs(self) -> None:
        for ds in DATASETS:
            base = self.root / ds
            if not base.is_dir():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(base), reverse=True):
                if Path(dirpath) == base:
                    continue
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    # --- settings ---------------------------------------------------------------------------

    @property
    def retention(self) -> timedelta:
        s = (self._meta.get("retention") or {}).get("raw_s")
        return timedelta(seconds=s) if s is not None else DEFAULT_RETENTION

    @property
    def retention_1m(self) -> timedelta:
        s = (self._meta.get("retention") or {}).get("agg_s")
        return timedelta(seconds=s) if s is not None else DEFAULT_RETENTION_1M

    @property
    def schema_version(self) -> int:
        return int(self._meta.get("schema_version", SCHEMA_VERSION))

    # --- DuckDB -----------------------------------------------------------------------------

    def _duck(self) -> Any:
        with self._state_lock:  # (the sealer's thread may be first)
            return self._duck_locked()

    def _duck_locked(self) -> Any:
        if self._con is None:
            import duckdb

            con = duckdb.connect(":memory:")
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")  # never on our stdout
            for ds, cols in TABLES.items():
                con.execute(duckdb_create_table(f"_empty_{ds}", cols, temp=True))
            self._con = con
        return self._con

    def _source(self, ds: str, files: Sequence[FileEntry],
                staged_records: Sequence[FileEntry] = ()) -> str:
        """The SQL source of dataset ``ds`` over ``files`` (Parquet, or staged IPC files
        for ``records``); for ``records_1m``, ``staged_records`` are the staged record
        files of the window, each record a partial aggregate of its own
        (``rollup_rows``: a scan, where a ``GROUP BY`` over the 18 key columns of 4
        million staged records took 4.6-5.3 s)."""
        parts = [f"SELECT * FROM _empty_{ds}"]
        parquet = [f for f in files if not is_staged(f)]
        if parquet:
            paths = ", ".join(_quote(str(self.root / f.path)) for f in parquet)
            parts.append(f"SELECT * FROM read_parquet([{paths}], union_by_name = true, "
                         "hive_partitioning = false)")
        staged = [f for f in files if is_staged(f)]
        if staged:
            parts.append(f"SELECT * FROM {self._staged_view(staged)}")
        if ds == "records_1m" and staged_records:
            cols = ", ".join(f"CAST({quote_ident(n)} AS {t}) AS {quote_ident(n)}"
                             for n, t in duckdb_columns(TABLES[ds]))
            rows = rollup_rows(ds, self._staged_view(staged_records), "duckdb")
            parts.append(f"SELECT {cols} FROM ({rows}) AS _s")
        return "(" + " UNION ALL BY NAME ".join(parts) + ")"

    def _staged_view(self, files: Sequence[FileEntry]) -> str:
        """A DuckDB name for the staged record files ``files`` (their memory-mapped
        table, registered on the connection until a snapshot no longer has them: see
        ``_forget_staged``)."""
        key = tuple(f.path for f in files)
        name = self._staged_views.get(key)
        if name is not None:
            return name
        con = self._duck()
        name = f"_staged_{next(_VIEW_NAMES)}"
        try:
            table = read_staged([self.root / p for p in key])
        except FileNotFoundError as exc:  # sealed and removed since the listing
            raise _Vanished(str(exc)) from None
        except (OSError, StagedFileError) as exc:
            raise StoreCorrupt(f"store {self.root}: damaged staged file {_first(exc)}"
                               ) from None
        con.register(name, table)
        self._staged_views[key] = name
        return name

    def _forget_staged(self, snap: Snapshot) -> None:
        """Unregister the staged tables of files the snapshot no longer has (sealed): a
        mapping keeps a removed file's disk space until it is dropped."""
        for key in [k for k in self._staged_views if any(p not in snap.files for p in k)]:
            with contextlib.suppress(Exception):
                self._duck().unregister(self._staged_views.pop(key))

    def _sources(self, snap: Snapshot, ds: str, lo: int | None = None,
                 hi: int | None = None) -> str:
        self._forget_staged(snap)
        if ds != "records_1m":
            return self._source(ds, snap.of(ds, lo, hi))
        staged = [f for f in snap.of("records", lo, hi) if is_staged(f)]
        return self._source(ds, snap.of(ds, lo, hi), staged)

    def _run(self, build: Any, params: Sequence[Any]) -> pa.Table:
        """Run ``build(snapshot) -> sql`` on a fresh snapshot; a file that vanished under
        the query (compaction, retention) means a newer snapshot exists: list again."""
        with self._lock:
            return self._run_locked(build, params)

    def _run_locked(self, build: Any, params: Sequence[Any]) -> pa.Table:
        import duckdb

        con = self._duck()
        last: Exception | None = None
        for attempt in range(5):
            snap = self.catalog.snapshot()
            try:
                sql = build(snap)
            except _Vanished as exc:  # a staged file sealed since the listing: list again
                last = exc
                time.sleep(0.02 * (attempt + 1))
                continue
            try:
                return con.sql(sql, params=list(params)).to_arrow_table()
            except duckdb.IOException as exc:
                last = exc
                if _is_enospc(exc):
                    raise DiskFull(f"store {self.root}: no space left: {_first(exc)}") from None
                if self.catalog.current is not None or not any(
                        not (self.root / f).exists() for f in snap.files):
                    break  # not a file that compaction or retention removed
                time.sleep(0.02 * (attempt + 1))
            except duckdb.InvalidInputException as exc:
                raise StoreCorrupt(f"store {self.root}: {_first(exc)}") from None
            except duckdb.Error as exc:
                raise StoreError(f"store {self.root}: query failed: {_first(exc)}") from None
        raise StoreError(f"store {self.root}: cannot read: {_first(last)}")

    def _read(self, sql: str, params: Sequence[Any], windows: dict[str, Window]) -> pa.Table:
        self._check_open()

        def build(snap: Snapshot) -> str:
            subs = {ds: self._sources(snap, ds, lo, hi) for ds, (lo, hi) in
                    windows.items()}
            return sql.format(**subs)

        return self._run(build, params)

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        self._check_open()
        import duckdb

        try:
            stmts = duckdb.extract_statements(query)
        except duckdb.Error as exc:
            raise StoreError(f"query: {_first(exc)}") from None
        if len(stmts) != 1 or stmts[0].type != duckdb.StatementType.SELECT \
                or not _SQL_START.match(query):
            raise StoreError("query: only one read-only SELECT statement is allowed")

        def build(snap: Snapshot) -> str:
            if self._views_seq != snap.seq:
                con = self._duck()
                for ds in DATASETS:
                    con.execute(f"CREATE OR REPLACE TEMP VIEW {ds} AS "
                                f"{self._sources(snap, ds)}")
                self._views_seq = snap.seq
            return query

        return self._run(build, params or [])

    # --- writing ----------------------------------------------------------------------------

    def _write_file(self, table: pa.Table, final: Path) -> int:
        """Write ``table`` to ``final`` atomically (temporary name, fsync, rename)."""
        return write_file_atomic(final, lambda path: write_parquet(table, path))

    def _rollup(self, name: str, source: pa.Table, pair: np.ndarray | None = None
                ) -> pa.Table:
        """The aggregate ``name`` of a batch, in trace order within each partition.
        ``pair``: for records in (hour, trace) order (see ``trace_sort``), each row's
        (inner_src, inner_dst) rank: the groups then need no sort of their own."""
        from fabricscope.store.rollup import records_rollup, sort_for_trace

        if name == "records_1m" and pair is not None:
            # groups come out in (hour, inner_src, inner_dst, minute) order; a day file
            # wants (inner_src, inner_dst, minute): order them by (day, pair)
            day = _day_of(source)
            key = (day - day.min()) * (int(pair.max()) + 1) + pair
            fast = records_rollup(source, sort_key=key)
            if fast is not None:
                return fast
        elif name == "records_1m":
            fast = records_rollup(source)
            if fast is not None:
                return sort_for_trace(fast)
        con = self._duck().cursor()  # its own connection: the sealer's thread may call
        try:
            con.register("_batch", source)
            t = con.sql(rollup_select(name, "_batch", "duckdb")).to_arrow_table()
        finally:
            con.close()
        return sort_for_trace(conform_input(t, TABLES[name]))

    def _write(self, records: pa.Table, counters: pa.Table | None, batch_id: str) -> bool:
        snap = self.catalog.current
        assert snap is not None
        if batch_id in snap.batches:
            return False
        out = _Files(self, snap.seq + 1, "")
        try:
            try:
                if self.staging:  # sorted, aggregated and encoded later by the sealer
                    rec = _drop_null_columns(records)
                    if rec.num_rows:
                        out.put("records", rec, staged=True)
                        self.costs.count("staged", rec.num_rows)
                else:
                    self._put_records(out, records)
                if counters is not None and counters.num_rows:
                    out.put("counters", counters)
                    for name, (src, _key, _m) in ROLLUPS.items():
                        if src == "counters":
                            with self.costs.step("counters"):
                                agg = self._rollup(name, counters)
                            out.put(name, agg)
            finally:
                out.wait()
            adds = out.entries(batch_id, _now_ns())
            self.catalog.commit({"op": "append", "batch": batch_id, "add": adds})
        except BaseException as exc:
            out.discard()
            raise self._write_error(exc, f"batch {batch_id} not committed, the data "
                                         "before it is intact") from None
        self._after_commit()
        return True

    def _put_records(self, out: _Files, records: pa.Table) -> None:
        """Records ordered by hour, then inner flow, then time: each hour's file is a
        slice, in trace order (a trace reads one row group); the aggregates are computed
        from the ordered rows, so their groups come out ordered."""
        from fabricscope.store.rollup import trace_sort

        costs = self.costs
        rec = _drop_null_columns(records)
        with costs.step("sort"):
            order, pair = trace_sort(rec, HOUR_NS)
        if order is not None:  # (staged files map as many chunks: no copy into one first)
            with costs.step("gather"):
                rec = rec.take(pa.array(order))
                pair = None if pair is None else pair[order]
        elif pair is None and rec.num_rows:
            pair = np.zeros(rec.num_rows, np.int64)
        out.put("records", rec)
        for name, (src, _key, _m) in ROLLUPS.items():
            if src == "records" and rec.num_rows:
                with costs.step("aggregate"):
                    agg = self._rollup(name, rec, pair)
                out.put(name, agg)
        costs.count("sealed", rec.num_rows)

    def _write_error(self, exc: BaseException, what: str) -> BaseException:
        """The one-line store error for a failed write (``what``: what was lost)."""
        if isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno ==
                                         errno.ENOSPC) or _is_enospc(exc):
            return DiskFull(f"store {self.root}: no space left on device; {what}")
        if isinstance(exc, OSError):
            return StoreError(f"store {self.root}: cannot write: {exc.strerror or exc}; "
                              f"{what}")
        return exc

    # --- the staging tier -----------------------------------------------------------------

    def _seal_job(self, files: list[FileEntry]) -> None:
        """Replace staged record files by sorted Parquet files and their aggregates, in
        one commit (the sealer's thread; readers that listed the staged files keep
        reading them for ``DELETE_GRACE_S``)."""
        snap = self.catalog.current
        assert snap is not None
        out = _Files(self, snap.seq + 1, f"s{next(self._seal_ids)}-")  # (jobs may overlap)
        try:
            try:
                with self.costs.step("read"):
                    staged = read_staged([self.root / f.path for f in files])
                self._put_records(out, staged)
            finally:
                out.wait()
            # sealed files arrived when their staged files did (retention goes by it)
            added: dict[str, int] = {}
            for f in files:
                for key in (f.part, f.part.split("/")[0]):  # hour, and day (aggregates)
                    added[key] = max(added.get(key, 0), f.added)
            adds = out.entries(None, added)
            self.catalog.commit({"op": "seal", "add": adds,
                                 "remove": [f.path for f in files]})
        except BaseException as exc:
            out.discard()
            raise self._write_error(exc, "the staged records are intact") from None
        self._drop([f.path for f in files])

    def seal(self, progress: Any = None) -> int:
        """Seal every staged record now (on this thread); -> records sealed.
        ``progress(records_so_far)`` is called after each job."""
        self._need_write()
        if self._sealer is None:
            return 0
        n = self._sealer.drain(progress)
        self._empty_trash()
        return n

    def staged_rows(self) -> int:
        return staged_rows(self.catalog.snapshot())

    def append(self, records: pa.RecordBatch | pa.Table,
               counters: pa.RecordBatch | pa.Table | None = None, *,
               batch_id: str | None = None) -> None:
        sealer = self._sealer
        if sealer is not None:
            sealer.appending(True)
        try:
            super().append(records, counters, batch_id=batch_id)
        finally:
            if sealer is not None:
                sealer.appending(False)
        if self._sealer is not None and self.staging:  # back pressure, outside the lock
            try:
                self._sealer.throttle(STAGE_MAX_ROWS)
            except BaseException as exc:
                raise self._write_error(exc, "the batches before are committed (staged)"
                                        ) from None

    def _pool(self) -> ThreadPoolExecutor:
        with self._state_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=WRITE_THREADS,
                                                    thread_name_prefix="store-write")
            return self._executor

    def _after_commit(self) -> None:
        """Housekeeping after a commit. The batch is committed whatever happens here: a
        failure (a full disk while compacting) is kept in ``maintenance_error`` and the
        housekeeping pauses for a minute, it does not fail the append."""
        if time.monotonic() < self._maintenance_paused_until:
            return
        try:
            self._empty_trash()
            self._maybe_retention()
            self._maybe_compact()
        except StoreError as exc:
            self.maintenance_error = str(exc)
            self._maintenance_paused_until = time.monotonic() + MAINTENANCE_PAUSE_S

    def _empty_trash(self, *, all_now: bool = False) -> None:
        now = time.monotonic()
        with self._state_lock:
            due_now = [p for due, p in self._trash if all_now or due <= now]
            self._trash = [(due, p) for due, p in self._trash
                           if not (all_now or due <= now)]
        for p in due_now:
            with contextlib.suppress(OSError):
                p.unlink()
        if all_now:
            self._remove_empty_dirs()

    def _drop(self, paths: Sequence[str]) -> None:
        due = time.monotonic() + DELETE_GRACE_S
        with self._state_lock:
            self._trash.extend((due, self.root / p) for p in paths)

    # --- bookkeeping ------------------------------------------------------------------------

    def ingested(self, file_key: str) -> bool:
        return file_key in self.catalog.snapshot().ingested

    def ingested_summary(self, file_key: str) -> dict[str, Any] | None:
        return self.catalog.snapshot().ingested.get(file_key)

    def mark_ingested(self, file_key: str, summary: dict[str, Any]) -> None:
        self._need_write()
        rec = {**summary, "ingested_at": datetime.now(UTC).isoformat()}
        self._commit({"op": "ingested", "ingested": {file_key: rec}})

    def _commit(self, entry: dict[str, Any]) -> Snapshot:
        try:
            return self.catalog.commit(entry)
        except DiskFull:
            raise DiskFull(f"store {self.root}: no space left on device") from None
        except OSError as exc:
            raise StoreError(f"store {self.root}: cannot commit: {exc.strerror or exc}"
                             ) from None

    def _oldest_raw_ns(self) -> int | None:
        files = self.catalog.snapshot().of("records")
        return min((f.min_ts for f in files), default=None)

    def info(self) -> dict[str, Any]:
        self._check_open()
        snap = self.catalog.snapshot()
        ds_info: dict[str, Any] = {}
        for ds in DATASETS:
            files = snap.of(ds)
            ds_info[ds] = {
                "rows": sum(f.rows for f in files),
                "bytes": sum(f.bytes for f in files),
                "files": len(files),
                "partitions": len({f.part for f in files}),
                "first_ns": min((f.min_ts for f in files), default=None),
                "last_ns": max((f.max_ts for f in files), default=None),
            }
        pid = None
        try:
            txt = (self.root / LOCK_FILE).read_text().split()
            pid = int(txt[0]) if txt and self._writer_alive() else None
        except (OSError, ValueError):
            pid = None
        rec = ds_info["records"]
        return {
            "location": str(self.root), "backend": self.backend,
            "schema_version": self.schema_version,
            "rows": rec["rows"], "counter_rows": ds_info["counters"]["rows"],
            "bytes": sum(d["bytes"] for d in ds_info.values()),
            "first_ns": rec["first_ns"], "last_ns": rec["last_ns"],
            "partitions": sum(d["partitions"] for d in ds_info.values()),
            "datasets": ds_info, "commit": snap.seq,
            "ingested_files": len(snap.ingested),
            "retention_s": int(self.retention.total_seconds()),
            "retention_1m_s": int(self.retention_1m.total_seconds()),
            "writer_pid": pid,
            "staged_rows": staged_rows(snap),
        }

    def _writer_alive(self) -> bool:
        if self._lock_fd is not None:
            return True
        path = self.root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    # --- retention and compaction -------------------------------------------------------------

    def _maybe_retention(self) -> None:
        if time.monotonic() - self._last_retention >= RETENTION_EVERY_S:
            self._apply_retention(None)

    def apply_retention(self, now: datetime | None = None) -> dict[str, int]:
        """Drop the partitions whose records are older than the retention (raw records
        and counters: ``retention``; aggregates: ``retention_1m``) and that arrived in
        the store longer ago than that: an old capture that was just ingested is kept for
        the retention period from its ingest, live data for the retention period.
        Staged records are sealed first (their aggregates outlive them); the writer's
        own periodic pass skips the partitions that still have staged files instead."""
        self._need_write()
        self.seal()
        return self._apply_retention(now)

    def _apply_retention(self, now: datetime | None) -> dict[str, int]:
        self._last_retention = time.monotonic()
        snap = self.catalog.snapshot()
        now_ns = (int(now.timestamp() * 1e9) if now is not None else _now_ns())
        cut = {ds: now_ns - int((self.retention if ds in HOURLY else self.retention_1m)
                                .total_seconds() * 1e9) for ds in DATASETS}
        parts: dict[tuple[str, str], list[FileEntry]] = {}
        for f in snap.files.values():
            parts.setdefault((f.ds, f.part), []).append(f)
        gone = [f for (ds, _p), files in parts.items()
                if _part_end_ns(files[0]) <= cut[ds] and max(f.added for f in files) <= cut[ds]
                and not any(is_staged(f) for f in files)  # aggregated first, then dropped
                for f in files]
        if not gone:
            return {}
        self._commit({"op": "retention", "remove": [f.path for f in gone]})
        self._drop([f.path for f in gone])
        out: dict[str, int] = {}
        for f in gone:
            out[f.ds] = out.get(f.ds, 0) + f.rows
        return out

    def _maybe_compact(self) -> None:
        """Tiered compaction, so that each record is rewritten a few times at most:
        ``COMPACT_MIN_FILES`` small files of one size tier (a factor of 8 in rows) in a
        partition become one file of the next tier; when a partition has closed (its end
        is ``CLOSED_AFTER`` behind the newest record) its files below
        ``CLOSED_MERGE_ROWS`` rows are merged into one."""
        snap = self.catalog.snapshot()
        newest = max((f.max_ts for f in snap.files.values()), default=None)
        groups: dict[tuple[str, str, int], list[FileEntry]] = {}
        parts: dict[tuple[str, str], list[FileEntry]] = {}
        for f in snap.files.values():
            if f.rows < SMALL_FILE_ROWS and not is_staged(f):
                groups.setdefault((f.ds, f.part, _tier(f.rows)), []).append(f)
                parts.setdefault((f.ds, f.part), []).append(f)
        done: set[tuple[str, str]] = set()
        for (ds, part, _t), files in sorted(groups.items()):
            if len(files) >= COMPACT_MIN_FILES and (ds, part) not in done:
                self._merge(ds, part, sorted(files, key=lambda f: f.path))
                done.add((ds, part))
        if newest is None:
            return
        for (ds, part), files in sorted(parts.items()):
            small = [f for f in files if f.rows < CLOSED_MERGE_ROWS]
            if (ds, part) in done or len(small) < 2:
                continue
            if _part_end_ns(files[0]) + CLOSED_AFTER_NS <= newest:
                self._merge(ds, part, sorted(small, key=lambda f: f.path))

    def compact(self) -> dict[str, int]:
        """Seal the staged records, then merge the small files of every partition
        (bigger files stay as they are)."""
        self._need_write()
        self.seal()
        snap = self.catalog.snapshot()
        parts: dict[tuple[str, str], list[FileEntry]] = {}
        for f in snap.files.values():
            if f.rows < SMALL_FILE_ROWS and not is_staged(f):
                parts.setdefault((f.ds, f.part), []).append(f)
        out: dict[str, int] = {}
        for (ds, part), files in sorted(parts.items()):
            if len(files) >= 2:
                self._merge(ds, part, sorted(files, key=lambda f: f.path))
                out[ds] = out.get(ds, 0) + len(files)
        self._empty_trash()
        return out

    def _merged_table(self, ds: str, files: list[FileEntry]) -> pa.Table:
        """The rows of ``files`` as one table (aggregates combined), canonical columns."""
        import pyarrow.parquet as pq

        from fabricscope.store.rollup import records_rollup, sort_for_trace, trace_sort

        parts = [conform_input(pq.read_table(self.root / f.path), TABLES[ds]) for f in files]
        t = pa.concat_tables(parts)
        if ds == "records":  # (all-null columns are not written: not sorted either)
            return sort_for_trace(_drop_null_columns(t))
        if ds == "records_1m":  # rows visited in trace order: groups come out in it
            fast = records_rollup(t, merge=True, seq=trace_sort(t)[0])
            if fast is not None:
                return fast
        if ds in ROLLUPS:
            con = self._duck()
            con.register("_merge", t)
            try:
                out = con.sql(rollup_select(ds, "_merge", "duckdb", merge=True)
                              ).to_arrow_table()
            finally:
                con.unregister("_merge")
            return sort_for_trace(conform_input(out, TABLES[ds]))
        return t

    def _merge(self, ds: str, part: str, files: list[FileEntry]) -> None:
        """Replace ``files`` (one partition) by one file, in one commit. Readers that
        listed the old files keep reading them for ``DELETE_GRACE_S``."""
        import duckdb

        snap = self.catalog.current
        assert snap is not None
        rel = f"{ds}/{part}/{snap.seq + 1:016d}-c.parquet"
        final = self.root / rel
        try:
            with self.costs.step("compact"):
                t = self._merged_table(ds, files)
                size = self._write_file(_drop_null_columns(t), final)
            fe = FileEntry(rel, ds, part, t.num_rows, size, min(f.min_ts for f in files),
                           max(f.max_ts for f in files), None, max(f.added for f in files))
            self._commit({"op": "compact", "add": [fe.to_json()],
                          "remove": [f.path for f in files]})
        except (duckdb.Error, OSError, StoreError, pa.ArrowException) as exc:
            now = self.catalog.current
            if now is None or rel not in now.files:
                with contextlib.suppress(OSError):
                    final.unlink()
            if _is_enospc(exc):
                raise DiskFull(f"store {self.root}: no space left while compacting {ds}/"
                               f"{part}; nothing lost") from None
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"store {self.root}: compaction of {ds}/{part} failed: "
                             f"{_first(exc)}") from None
        self._drop([f.path for f in files])

    # --- closing ----------------------------------------------------------------------------

    def _close(self) -> None:
        if self._sealer is not None:  # a job in progress commits first; the rest waits
            self._sealer.stop()
            self._sealer = None
        if self.writable and self.catalog.current is not None:
            with contextlib.suppress(OSError):
                self._empty_trash()
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()
            self._con = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._release()


class _Files:
    """The files one commit adds, written on the store's pool (Parquet encoding and LZ4
    release the GIL): named ``<dataset>/<partition>/<seq>-<tag><n>``."""

    def __init__(self, store: EmbeddedStore, seq: int, tag: str) -> None:
        self.store = store
        self.prefix = f"{seq:016d}-{tag}"
        self.n = 0
        self.written: list[Path] = []
        self.pending: list[Future[int]] = []
        self.adds: list[tuple[str, str, str, int, int, int]] = []

    def put(self, ds: str, table: pa.Table, *, staged: bool = False) -> None:
        """Write the partitions of ``table`` (staged: as an Arrow IPC file)."""
        st = self.store
        for part, sub, lo, hi in _parts(table, ds):
            ext = "arrow" if staged else "parquet"
            rel = f"{ds}/{part}/{self.prefix}{self.n}.{ext}"
            self.n += 1
            final = st.root / rel
            self.written.append(final)
            if staged:
                fut = st._pool().submit(st.costs.timed("stage_write", write_staged), sub,
                                        final)
            else:
                step = "encode_records" if ds == "records" else \
                    "encode_1m" if ds == "records_1m" else "counters"
                fut = st._pool().submit(st.costs.timed(step, st._write_file),
                                        _drop_null_columns(sub), final)
            self.pending.append(fut)
            self.adds.append((rel, ds, part, sub.num_rows, lo, hi))

    def wait(self) -> None:
        wait(self.pending)

    def entries(self, batch: str | None, added: int | dict[str, int]
                ) -> list[dict[str, Any]]:
        """The log entries of the files written (``added``: when their rows arrived,
        one time or per partition)."""
        sizes = [f.result() for f in self.pending]  # raises the first write error
        for d in {p.parent for p in self.written}:
            fsync_dir(d)
        top = added if isinstance(added, int) else max(added.values(), default=0)
        return [FileEntry(rel, ds, part, rows, size, lo, hi, batch,
                          top if isinstance(added, int) else added.get(part, top)).to_json()
                for (rel, ds, part, rows, lo, hi), size in zip(self.adds, sizes, strict=True)]

    def discard(self) -> None:
        for p in self.written:
            with contextlib.suppress(OSError):
                p.unlink()


def _drop_null_columns(t: pa.Table) -> pa.Table:
    """Columns with no value are not written: the views read them as null (an absent
    column costs nothing; 40 all-null columns cost a fifth of the encoding time)."""
    keep = [k for k, c in enumerate(t.columns) if c.null_count != len(c) or t.num_rows == 0
            or t.column_names[k] == "ts"]
    return t if len(keep) == t.num_columns else t.select(keep)


NO_DICTIONARY = frozenset({*PARQUET_NO_DICTIONARY, "first_ts", "last_ts", "inner_src",
                           "inner_dst", "vni"})
"""Columns written without a dictionary: nearly-unique values (timestamps, hashed source
ports), the addresses files are sorted by (their runs compress as well without one), and
VNIs (in flow order, runs again).
Measured on bench/store_ingest.py's batches: a third less encoding CPU than dictionaries
everywhere, and files about 20% smaller."""


def write_parquet(table: pa.Table, path: Path) -> None:
    """One Parquet file (zstd, 128 Ki-row groups, statistics on the columns queries
    filter on, dictionaries only where values repeat); the hook tests replace to
    simulate a full disk."""
    import pyarrow.parquet as pq

    paths = [p for f in table.schema for p in parquet_leaves(f)]
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP,
                   write_statistics=stats_paths(paths),
                   use_dictionary=[p for p in paths if p not in NO_DICTIONARY])


def _first(exc: BaseException | None) -> str:
    return str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else \
        type(exc).__name__

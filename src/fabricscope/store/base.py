"""The store API, shared by the embedded store and ClickHouse.

A backend provides a handful of primitives (run a read-only query whose ``{records}``,
``{counters}``, ``{records_1m}``, ``{counters_1m}`` placeholders it replaces by its own
sources for a time window; write one batch of the four datasets; bookkeeping). Everything
users call (:meth:`Store.select`, :meth:`Store.aggregate`, :meth:`Store.counters`,
:meth:`Store.append`, ...) is written once here, in SQL that both DuckDB and ClickHouse
accept, so the two backends answer the same way (tests/test_store_backends.py runs one
suite on both).
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal

import pyarrow as pa

from fabricscope.errors import UsageError
from fabricscope.records.ddl import (
    RECORDS_1M_KEY,
    STORED_COUNTER_COLUMNS,
    STORED_PACKET_COLUMNS,
    Dialect,
    quote_ident,
    rollup_select,
)
from fabricscope.store.conform import SCHEMAS, conform_input, conform_output, empty_table
from fabricscope.store.counters import STATE_COLUMNS, CounterState
from fabricscope.store.errors import StoreError
from fabricscope.store.filters import FILTER_COLUMNS, RecordFilter, compile_filter, window_ns

Resolution = Literal["raw", "1m", "auto"]
Window = tuple[int | None, int | None]  # [since, until) in ns, None = open

DEFAULT_RETENTION = timedelta(days=7)
DEFAULT_RETENTION_1M = timedelta(days=90)
AUTO_1M_ABOVE = timedelta(hours=6)
"""``resolution="auto"`` reads the 1-minute aggregates for windows longer than this (or
reaching before the oldest raw record)."""

PACKET_NAMES = tuple(c.name for c in STORED_PACKET_COLUMNS)
AGG_MEASURES = ("samples", "est_packets", "est_bytes", "first_seen", "last_seen")
TIME_BUCKETS = ("minute", "hour")

RATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("in_bps", "d_in_octets * 8000.0"),
    ("out_bps", "d_out_octets * 8000.0"),
    ("in_pps", "d_in_pkts * 1000.0"),
    ("out_pps", "d_out_pkts * 1000.0"),
    ("in_errors_ps", "d_in_errors * 1000.0"),
    ("out_errors_ps", "d_out_errors * 1000.0"),
    ("in_discards_ps", "d_in_discards * 1000.0"),
    ("out_discards_ps", "d_out_discards * 1000.0"),
    ("fcs_errors_ps", "d_fcs_errors * 1000.0"),
)
"""Per-poll rates: ``expr / interval_ms`` (null when the interval or the delta is)."""


def new_batch_id() -> str:
    return uuid.uuid4().hex


def file_key(path: str) -> str:
    """Content key of a capture file: SHA-256 of its size, first and last MiB."""
    import os

    mib = 1 << 20
    size = os.path.getsize(path)
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(mib))
        if size > mib:
            fh.seek(max(mib, size - mib))
            h.update(fh.read(mib))
    return h.hexdigest()[:32]


class Store(ABC):
    """A fabricscope store (embedded or ClickHouse). Use :func:`fabricscope.store.open_store`.

    Datasets (the same view names on both backends, usable in :meth:`sql`): ``records``
    (packet and sFlow sample records), ``counters`` (interface counter polls with the
    deltas since the previous poll), ``records_1m`` and ``counters_1m`` (per-minute
    aggregates, kept longer).
    """

    dialect: Dialect
    backend: str

    def __init__(self, location: str, *, write: bool) -> None:
        self.location = location
        self.writable = write
        self._counter_state: CounterState | None = None
        self._closed = False
        # one Store may be shared by threads (the API's worker threads): calls on it take
        # turns (a query already uses every core; connections are not thread-safe)
        self._lock = threading.RLock()

    # --- backend primitives -----------------------------------------------------------------

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any], windows: dict[str, Window]) -> pa.Table:
        """Run a read-only query; ``{name}`` placeholders of ``windows`` become the
        backend's source for that dataset restricted (at least) to the window."""

    @abstractmethod
    def _write(self, records: pa.Table, counters: pa.Table | None, batch_id: str) -> bool:
        """Commit one batch (conformed tables); False if ``batch_id`` was already there."""

    @abstractmethod
    def sql(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        """A read-only query over the views ``records``, ``counters``, ``records_1m``,
        ``counters_1m``; ``?`` placeholders take ``params`` (IPs as 16-byte bytes, times
        as aware datetimes)."""

    @abstractmethod
    def ingested(self, file_key: str) -> bool: ...

    @abstractmethod
    def ingested_summary(self, file_key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def mark_ingested(self, file_key: str, summary: dict[str, Any]) -> None: ...

    @abstractmethod
    def info(self) -> dict[str, Any]: ...

    @abstractmethod
    def apply_retention(self, now: datetime | None = None) -> dict[str, int]:
        """Drop whole partitions older than the retention (raw records and counters) and
        the 1-minute retention (aggregates); returns rows dropped per dataset."""

    @abstractmethod
    def compact(self) -> dict[str, int]:
        """Merge small files/parts; returns files merged per dataset."""

    def staged_rows(self) -> int:
        """Records appended but not sealed yet (see :meth:`seal`); always 0 on
        ClickHouse."""
        return 0

    def seal(self, progress: Any = None) -> int:
        """Make every appended record final now; -> records sealed. The embedded store
        commits records to a staging tier first and seals them (sorted Parquet files and
        their 1-minute aggregates) in the background; ``compact``, retention and closing
        an ``ingest`` seal them too. ClickHouse's inserts are final: nothing to do.
        ``progress(records_so_far)`` is called as it goes."""
        self._need_write()
        return 0

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _oldest_raw_ns(self) -> int | None: ...

    # --- writing ----------------------------------------------------------------------------

    def _need_write(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.location} is closed")
        if not self.writable:
            raise StoreError(f"store {self.location} was opened read-only "
                             "(open_store(..., write=True) to append)")

    def append(self, records: pa.RecordBatch | pa.Table,
               counters: pa.RecordBatch | pa.Table | None = None, *,
               batch_id: str | None = None) -> None:
        """Append one batch: packet/sample ``records`` and sFlow ``counters``. All of it is
        committed, or none of it (a crash loses at most this batch). A ``batch_id`` already
        committed is skipped, so a retry never duplicates."""
        with self._lock:
            self._append(records, counters, batch_id)

    def _append(self, records: pa.RecordBatch | pa.Table,
                counters: pa.RecordBatch | pa.Table | None, batch_id: str | None) -> None:
        self._need_write()
        bid = batch_id or new_batch_id()
        rec = conform_input(records, STORED_PACKET_COLUMNS)
        cnt = None
        state = None
        if counters is not None and counters.num_rows:
            cnt = conform_input(counters, STORED_COUNTER_COLUMNS)
            cnt, state = self._counters_state().derive(cnt)
        if self._write(rec, cnt, bid) and state is not None:
            self._counters_state().table = state

    def _counters_state(self) -> CounterState:
        if self._counter_state is None:
            st = CounterState()
            polls = self._recent_polls()
            if polls.num_rows:
                st.load(polls)
            self._counter_state = st
        return self._counter_state

    def _recent_polls(self) -> pa.Table:
        """Counter polls of the last day before the newest one (the writer's state)."""
        newest = self._read("SELECT max(ts) AS m, count(*) AS n FROM {counters}", [],
                            {"counters": (None, None)})
        if not newest.num_rows or not newest.column("n")[0].as_py():
            return empty_table(pa.schema([]))
        top = newest.column("m").cast(pa.int64())[0].as_py()
        lo = int(top) - 86_400 * 10**9
        cols = ", ".join(quote_ident(c) for c in STATE_COLUMNS)
        since = datetime.fromtimestamp(lo / 1e9, UTC)
        t = self._read(f"SELECT {cols} FROM {{counters}} WHERE ts >= ?", [since],
                       {"counters": (lo, None)})
        return conform_output(t)

    # --- reading ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.location} is closed")

    def select(self, flt: RecordFilter | None = None, columns: list[str] | None = None,
               limit: int | None = None) -> pa.Table:
        """Records matching ``flt`` (all stored columns, or ``columns``), in time order."""
        self._check_open()
        cols = list(columns) if columns is not None else list(PACKET_NAMES)
        bad = [c for c in cols if c not in PACKET_NAMES]
        if bad:
            raise UsageError(f"unknown record column(s): {', '.join(bad)}")
        if not cols:
            raise UsageError("select needs at least one column")
        where, params = compile_filter(flt)
        sql = (f"SELECT {', '.join(quote_ident(c) for c in cols)} FROM {{records}} "
               f"WHERE {where} ORDER BY ts")
        if limit is not None:
            if limit < 0:
                raise UsageError("limit must be >= 0")
            sql += f" LIMIT {int(limit)}"
        t = self._read(sql, params, {"records": window_ns(flt)})
        if t.num_rows == 0:
            return empty_table(SCHEMAS["records"]).select(cols)
        return conform_output(t).select(cols)

    def aggregate(self, flt: RecordFilter | None = None, by: Sequence[str] = (), *,
                  resolution: Resolution = "auto") -> pa.Table:
        """``samples``, ``est_packets`` (sum of sampling rates, 1 for full captures),
        ``est_bytes`` (sum of frame_len * sampling rate), ``first_seen``, ``last_seen`` per
        group of ``by`` columns (``minute``/``hour`` are time buckets), largest first.

        ``resolution``: ``raw`` records, ``1m`` aggregates (kept longer; the window then
        starts at the minute holding ``since``), or ``auto``: 1m when the window is longer
        than 6 h or starts before the oldest raw record, and every column is there."""
        self._check_open()
        by = list(by)
        for c in by:
            if c not in PACKET_NAMES and c not in TIME_BUCKETS:
                raise UsageError(f"aggregate: unknown column {c!r}")
        res = self._resolution(flt, by, resolution)
        minute = res == "1m"
        ds = "records_1m" if minute else "records"
        where, params = compile_filter(flt, minute=minute)
        sel = []
        for c in by:
            if c in TIME_BUCKETS:
                sel.append(f"{self._bucket(c)} AS {c}")
            else:
                sel.append(quote_ident(c))
        if minute:
            meas = ["sum(samples)", "sum(est_packets)", "sum(est_bytes)", "min(first_ts)",
                    "max(last_ts)"]
        else:
            meas = ["count(*)", "sum(CAST(coalesce(sampling_rate, 1) AS {u}))",
                    "sum(CAST(coalesce(frame_len, 0) AS {u}) * coalesce(sampling_rate, 1))",
                    "min(ts)", "max(ts)"]
        u = "UBIGINT" if self.dialect == "duckdb" else "UInt64"
        for name, expr in zip(AGG_MEASURES, meas, strict=True):
            e = expr.format(u=u)
            if name in ("samples", "est_packets", "est_bytes"):
                e = f"CAST({e} AS {u})"
            sel.append(f"{e} AS {name}")
        sql = f"SELECT {', '.join(sel)} FROM {{{ds}}} WHERE {where}"
        if by:
            sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(by)))
            sql += " ORDER BY est_bytes DESC, " + ", ".join(
                str(i + 1) for i in range(len(by)))
        lo, hi = window_ns(flt)
        if minute and lo is not None:
            lo -= lo % 60_000_000_000
        t = self._read(sql, params, {ds: (lo, hi)})
        if not by and t.num_rows == 1 and t.column("samples")[0].as_py() in (None, 0):
            t = t.slice(0, 0)
        out = conform_output(t, extra={"samples": pa.uint64(), "est_packets": pa.uint64(),
                                       "est_bytes": pa.uint64(),
                                       "first_seen": pa.timestamp("ns", tz="UTC"),
                                       "last_seen": pa.timestamp("ns", tz="UTC"),
                                       "minute": pa.timestamp("ns", tz="UTC"),
                                       "hour": pa.timestamp("ns", tz="UTC")})
        return out

    def _bucket(self, unit: str) -> str:
        if self.dialect == "duckdb":
            return f"CAST(date_trunc('{unit}', ts) AS TIMESTAMPTZ_NS)"
        fn = "toStartOfMinute" if unit == "minute" else "toStartOfHour"
        return f"toDateTime64({fn}(ts), 9, 'UTC')"

    def _resolution(self, flt: RecordFilter | None, by: Sequence[str],
                    resolution: Resolution) -> Literal["raw", "1m"]:
        if resolution not in ("raw", "1m", "auto"):
            raise UsageError(f"resolution must be raw, 1m or auto, not {resolution!r}")
        ok_1m = all(c in RECORDS_1M_KEY or c in TIME_BUCKETS for c in by)
        if resolution == "1m":
            if not ok_1m:
                bad = [c for c in by if c not in RECORDS_1M_KEY and c not in TIME_BUCKETS]
                raise UsageError(f"the 1-minute aggregates have no column {', '.join(bad)}")
            return "1m"
        if resolution == "raw" or not ok_1m:
            return "raw"
        assert all(c in RECORDS_1M_KEY for c in FILTER_COLUMNS)
        lo, hi = window_ns(flt)
        if lo is None:
            return "1m"
        top = hi if hi is not None else int(datetime.now(UTC).timestamp() * 1e9)
        if top - lo > AUTO_1M_ABOVE.total_seconds() * 1e9:
            return "1m"
        oldest = self._oldest_raw_ns()
        if oldest is not None and lo < oldest - 60_000_000_000:
            return "1m"
        return "raw"

    def counters(self, agent: str | None = None, ifindex: int | None = None,
                 since: datetime | None = None, until: datetime | None = None, *,
                 resolution: Literal["raw", "1m"] = "raw") -> pa.Table:
        """Interface counters with rates, per poll (``raw``) or per minute (``1m``):
        ``ts, agent, ifindex, port_name, speed, interval_s, in_bps, out_bps, in_pps,
        out_pps, in_errors_ps, out_errors_ps, in_discards_ps, out_discards_ps,
        fcs_errors_ps, in_util, out_util`` (utilisation 0..1 of ``speed``) and
        ``wrapped``/``reset`` (raw) or ``polls``/``wraps``/``resets`` (1m). Rates are null
        for the first poll of an interface and after a reset."""
        self._check_open()
        from fabricscope.store.filters import aware, ip_param

        if resolution not in ("raw", "1m"):
            raise UsageError(f"resolution must be raw or 1m, not {resolution!r}")
        ds = "counters" if resolution == "raw" else "counters_1m"
        conds: list[str] = []
        params: list[Any] = []
        if agent is not None:
            conds.append("agent = ?")
            params.append(ip_param(agent, "agent"))
        if ifindex is not None:
            if isinstance(ifindex, bool) or not isinstance(ifindex, int) or ifindex < 0:
                raise UsageError(f"ifindex: must be a non-negative integer, not {ifindex!r}")
            conds.append("ifindex = ?")
            params.append(ifindex)
        lo = hi = None
        if since is not None:
            s = aware(since, "since")
            if resolution == "1m":
                s = s.replace(second=0, microsecond=0)
            conds.append("ts >= ?")
            params.append(s)
            lo = int(s.timestamp()) * 10**9 + s.microsecond * 1000
        if until is not None:
            u = aware(until, "until")
            conds.append("ts < ?")
            params.append(u)
            hi = int(u.timestamp()) * 10**9 + u.microsecond * 1000
        sel = ["ts", "agent", "ifindex", "port_name", "speed",
               "CAST(interval_ms AS DOUBLE) / 1000.0 AS interval_s"]
        for name, expr in RATE_COLUMNS:
            sel.append(f"CASE WHEN interval_ms > 0 THEN {expr} / interval_ms END AS {name}")
        for d, o in (("in", "d_in_octets"), ("out", "d_out_octets")):
            sel.append(f"CASE WHEN interval_ms > 0 AND speed > 0 THEN {o} * 8000.0 / "
                       f"interval_ms / speed END AS {d}_util")
        if resolution == "raw":
            sel += ["wrapped", "reset"]
        else:
            sel += ["polls", "wraps", "resets"]
        if self.dialect == "clickhouse":
            sel = [s.replace("AS DOUBLE", "AS Nullable(Float64)") for s in sel]
        where = " AND ".join(conds) if conds else "TRUE"
        source = f"(SELECT * FROM {{{ds}}} WHERE {where})"
        if resolution == "1m":  # rows of one minute may be split: merge them
            source = f"({rollup_select('counters_1m', source, self.dialect, merge=True)})"
        sql = f"SELECT {', '.join(sel)} FROM {source} AS _c ORDER BY agent, ifindex, ts"
        t = self._read(sql, params, {ds: (lo, hi)})
        floats = {name: pa.float64() for name, _ in RATE_COLUMNS}
        floats.update(interval_s=pa.float64(), in_util=pa.float64(), out_util=pa.float64())
        if resolution == "1m":
            floats.update(polls=pa.uint64(), wraps=pa.uint64(), resets=pa.uint64())
        return conform_output(t, extra=floats)

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "write" if self.writable else "read"
        return f"<{type(self).__name__} {self.location} ({mode})>"

"""The ClickHouse store: the same datasets as MergeTree tables, for more than one machine.

``--db clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DB`` talks to a server through
clickhouse-connect (HTTP); ``chdb://PATH`` runs the ClickHouse engine in-process (chDB),
which is how the same test suite as the embedded store runs on ClickHouse's SQL and DDL.
Both go through a thin :class:`Executor`.

Layout (records/ddl.py ``clickhouse_create_tables``): ``records`` ordered by
``(inner_src, inner_dst, ts)`` for trace, with a projection ordered by
``(agent, in_if, out_if, ts)`` for impact; ``counters`` by ``(agent, ifindex, ts)``; both
partitioned by day with a TTL of the raw retention. ``records_1m`` / ``counters_1m`` are
AggregatingMergeTree tables fed by materialized views, with the longer TTL. Every insert
carries the batch id as ``insert_deduplication_token`` (tables keep a deduplication
window, and the views deduplicate too), so a retried batch is never counted twice, and
several collectors can insert into one server at once.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from fabricscope.errors import UsageError
from fabricscope.records.ddl import (
    ClickHouseOptions,
    clickhouse_create_tables,
    quote_ident,
)
from fabricscope.records.schema import SCHEMA_VERSION
from fabricscope.store.base import DEFAULT_RETENTION, DEFAULT_RETENTION_1M, Store, Window
from fabricscope.store.errors import StoreCorrupt, StoreError, StoreVersionError
from fabricscope.store.location import Location

DAY_NS = 86_400 * 10**9
TABLE_NAMES = ("records", "counters", "records_1m", "counters_1m")


class Executor(Protocol):
    """What the ClickHouse store needs from a connection."""

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None: ...

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None) -> pa.Table: ...

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None: ...

    def use(self, database: str) -> None:
        """Make ``database`` the default for unqualified table names."""

    def close(self) -> None: ...


class ClientExecutor:
    """A ClickHouse server through clickhouse-connect (production)."""

    def __init__(self, loc: Location) -> None:
        try:
            import clickhouse_connect
        except ImportError:
            raise StoreError("the ClickHouse store needs clickhouse-connect: "
                             "pip install 'fabricscope[clickhouse]'") from None
        try:
            self.client = clickhouse_connect.get_client(
                host=loc.host, port=loc.port, username=loc.user or "default",
                password=loc.password or "", secure=loc.secure,
                settings={"allow_nullable_key": 1})
        except Exception as exc:  # connection refused, auth, TLS
            raise StoreError(f"cannot connect to {loc}: {_first(exc)}") from None

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.client.command(sql, parameters=params or None)

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None) -> pa.Table:
        return self.client.query_arrow(sql, parameters=params or None,
                                       settings=settings or None)

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        db, _, name = table.partition(".")
        self.client.insert_arrow(name.strip('"'), data, database=db.strip('"'),
                                 settings=settings)

    def use(self, database: str) -> None:
        self.client.database = database

    def close(self) -> None:
        self.client.close()


_CHDB_LOCK = threading.Lock()


class ChdbExecutor:
    """The ClickHouse engine in-process (chDB): tests, and single-machine experiments.
    chDB allows one session (one data path) per process at a time."""

    def __init__(self, path: Path) -> None:
        try:
            from chdb import session
        except ImportError:
            raise StoreError("chdb:// needs the chdb package (pip install chdb)") from None
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        make: Any = session.Session
        try:
            self.sess: Any = make(str(path))
        except Exception as exc:
            raise StoreError(f"chdb://{path}: {_first(exc)}") from None

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        with _CHDB_LOCK:
            self.sess.query(sql, "CSV", params=params or None)

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None) -> pa.Table:
        with _CHDB_LOCK:
            t = self.sess.query(sql, "ArrowTable", params=params or None)
        if not isinstance(t, pa.Table):
            raise StoreError(f"chdb: unexpected result {type(t).__name__}")
        return t

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        import pyarrow.ipc as ipc

        cols = ", ".join(quote_ident(c) for c in data.column_names)
        sets = ", ".join(f"{k} = {_setting(v)}" for k, v in settings.items())
        with tempfile.NamedTemporaryFile(dir=self.path, prefix=".insert-", suffix=".arrow",
                                         delete=False) as fh:
            tmp = fh.name
        try:
            with ipc.new_stream(tmp, data.schema) as w:
                w.write_table(data)
            sql = (f"INSERT INTO {table} ({cols}) SETTINGS {sets} SELECT {cols} FROM "
                   f"file({_literal(tmp)}, 'ArrowStream')")
            with _CHDB_LOCK:
                self.sess.query(sql, "CSV")
        finally:
            os.unlink(tmp)

    def use(self, database: str) -> None:
        self.command(f"USE {quote_ident(database)}")

    def close(self) -> None:
        with _CHDB_LOCK:
            self.sess.close()


def _setting(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    return _literal(str(v))


def _literal(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- ? placeholders -> typed ClickHouse parameters ----------------------------------------------

_TOKEN = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|--[^\n]*|"
                    r"/\*.*?\*/|\?", re.S)


def bind(sql: str, params: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """Replace each ``?`` (outside literals and comments) by ``{pN:Type}``; the values go in
    the returned dict. Types from the Python values: int, float, str, bool, aware datetime,
    16-byte bytes (an IPv6/IPv4-mapped address), None (NULL)."""
    out: list[str] = []
    values: dict[str, Any] = {}
    pos = 0
    k = 0
    for m in _TOKEN.finditer(sql):
        if m.group(0) != "?":
            continue
        out.append(sql[pos:m.start()])
        pos = m.end()
        if k >= len(params):
            raise UsageError(f"query has more ? placeholders than the {len(params)} "
                             "parameters given")
        v = params[k]
        name = f"p{k}"
        k += 1
        if v is None:
            out.append("NULL")
            continue
        typ, val = _typed(v)
        out.append(f"{{{name}:{typ}}}")
        values[name] = val
    out.append(sql[pos:])
    if k != len(params):
        raise UsageError(f"query has {k} ? placeholders but {len(params)} parameters")
    return "".join(out), values


def _typed(v: Any) -> tuple[str, Any]:
    if isinstance(v, bool):
        return "Bool", "true" if v else "false"
    if isinstance(v, int):
        return ("Int64" if -(1 << 63) <= v < (1 << 63) else "UInt64"), str(v)
    if isinstance(v, float):
        return "Float64", repr(v)
    if isinstance(v, str):
        return "String", v
    if isinstance(v, bytes | bytearray) and len(v) == 16:
        b = bytes(v)
        if b[:12] == b"\x00" * 10 + b"\xff\xff":  # IPv4-mapped, written the usual way
            return "IPv6", "::ffff:" + ".".join(str(x) for x in b[12:])
        return "IPv6", str(ipaddress.IPv6Address(b))
    if isinstance(v, datetime):
        if v.tzinfo is None:
            raise UsageError("query parameter: datetime needs a time zone")
        u = v.astimezone(UTC)
        return "DateTime64(9, 'UTC')", u.strftime("%Y-%m-%d %H:%M:%S.") + f"{u.microsecond:06d}"
    raise UsageError(f"query parameter of unsupported type {type(v).__name__}")


# --- the store ------------------------------------------------------------------------------

class ClickHouseStore(Store):
    dialect = "clickhouse"
    backend = "clickhouse"

    def __init__(self, loc: Location, *, write: bool = False,
                 retention: timedelta | None = None,
                 retention_1m: timedelta | None = None,
                 executor: Executor | None = None) -> None:
        super().__init__(str(loc), write=write)
        self.loc = loc
        self.db = quote_ident(loc.database)
        if executor is not None:
            self.ex = executor
        elif loc.kind == "chdb":
            assert loc.path is not None
            self.ex = ChdbExecutor(loc.path)
        else:
            self.ex = ClientExecutor(loc)
        try:
            self._open(write, retention, retention_1m)
        except BaseException:
            self.ex.close()
            raise

    # --- schema -----------------------------------------------------------------------------

    def _exists(self) -> bool:
        t = self._q("SELECT count() AS n FROM system.tables WHERE database = {db:String} "
                    "AND name = 'records'", {"db": self.loc.database})
        return bool(t.column("n")[0].as_py())

    def _open(self, write: bool, retention: timedelta | None,
              retention_1m: timedelta | None) -> None:
        exists = self._exists()
        if not exists:
            if not write:
                raise StoreError(f"no store at {self.loc}: no fabricscope tables there yet "
                                 "(fabricscope ingest / collect create them)")
            raw = retention or DEFAULT_RETENTION
            agg = retention_1m or DEFAULT_RETENTION_1M
            opts = ClickHouseOptions(database=self.loc.database,
                                     raw_ttl_days=_days(raw), agg_ttl_days=_days(agg))
            for stmt in clickhouse_create_tables(opts):
                self._cmd(stmt)
            self._set_meta("schema_version", str(SCHEMA_VERSION))
            self._set_meta("retention_raw_s", str(int(raw.total_seconds())))
            self._set_meta("retention_agg_s", str(int(agg.total_seconds())))
        self.ex.use(self.loc.database)
        v = self.schema_version
        if v > SCHEMA_VERSION:
            raise StoreVersionError(f"store {self.loc} has schema version {v}; this "
                                    f"fabricscope knows up to {SCHEMA_VERSION}: upgrade")
        if v < SCHEMA_VERSION:
            from fabricscope.store.migrations import MIGRATIONS

            for step in MIGRATIONS[v:SCHEMA_VERSION]:
                step.clickhouse(self)
                self._set_meta("schema_version", str(step.from_version + 1))
        if exists and write:
            for key, val, tables in (("retention_raw_s", retention, ("records", "counters")),
                                     ("retention_agg_s", retention_1m,
                                      ("records_1m", "counters_1m"))):
                if val is not None and self._meta(key) != str(int(val.total_seconds())):
                    for t in tables:
                        self._cmd(f"ALTER TABLE {self.db}.{t} MODIFY TTL toDateTime(ts) + "
                                  f"INTERVAL {_days(val)} DAY DELETE")
                    self._set_meta(key, str(int(val.total_seconds())))

    def _meta(self, key: str) -> str | None:
        t = self._q(f"SELECT argMax(value, updated) AS v, count() AS n FROM {self.db}.meta "
                    "WHERE key = {k:String}", {"k": key})
        if not t.num_rows or not t.column("n")[0].as_py():
            return None
        return str(t.column("v")[0].as_py())

    def _set_meta(self, key: str, value: str) -> None:
        self._cmd(f"INSERT INTO {self.db}.meta VALUES ({{k:String}}, {{v:String}}, now64(9))",
                  {"k": key, "v": value})

    @property
    def schema_version(self) -> int:
        v = self._meta("schema_version")
        if v is None:
            raise StoreCorrupt(f"store {self.loc}: tables without a schema version "
                               "(meta table): not created by fabricscope?")
        try:
            return int(v)
        except ValueError:
            raise StoreCorrupt(f"store {self.loc}: bad schema version {v!r}") from None

    @property
    def retention(self) -> timedelta:
        v = self._meta("retention_raw_s")
        return timedelta(seconds=int(v)) if v else DEFAULT_RETENTION

    @property
    def retention_1m(self) -> timedelta:
        v = self._meta("retention_agg_s")
        return timedelta(seconds=int(v)) if v else DEFAULT_RETENTION_1M

    # --- execution --------------------------------------------------------------------------

    def _cmd(self, sql: str, params: dict[str, Any] | None = None) -> None:
        try:
            with self._lock:
                self.ex.command(sql, params)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"store {self.loc}: {_first(exc)}") from None

    def _q(self, sql: str, params: dict[str, Any] | None = None,
           settings: dict[str, Any] | None = None) -> pa.Table:
        try:
            with self._lock:
                return self.ex.query_arrow(sql, params, settings)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"store {self.loc}: query failed: {_first(exc)}") from None

    def _read(self, sql: str, params: Sequence[Any], windows: dict[str, Window]) -> pa.Table:
        self._check_open()
        subs = {ds: f"{self.db}.{ds}" for ds in windows}
        text, values = bind(sql.format(**subs), params)
        return self._q(text, values)

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        self._check_open()
        q = query.strip().rstrip(";").strip()
        if ";" in _strip_literals(q) or not re.match(r"^\(*\s*(select|with)\b", q, re.I):
            raise StoreError("query: only one read-only SELECT statement is allowed")
        text, values = bind(q, params or [])
        settings = {"readonly": 2} if isinstance(self.ex, ClientExecutor) else None
        return self._q(text, values, settings)

    # --- writing ----------------------------------------------------------------------------

    def _insert(self, table: str, data: pa.Table, token: str) -> None:
        # optimize_on_insert=0: the aggregates' materialized view already groups each
        # block by the full key, so merging equal keys again while inserting (the
        # default for AggregatingMergeTree) only sorted the block a second time: 40% of
        # a records insert on chDB (3.5-3.7 -> 2.2 s for 300,000 synthetic records)
        settings = {"insert_deduplicate": 1, "insert_deduplication_token": token,
                    "deduplicate_blocks_in_dependent_materialized_views": 1,
                    "optimize_on_insert": 0}
        from fabricscope.store.conform import undictionary

        try:
            self.ex.insert_arrow(f"{self.db}.{table}", undictionary(data), settings)
        except Exception as exc:
            msg = _first(exc)
            raise StoreError(f"store {self.loc}: insert into {table} failed: {msg}") from None

    def _write(self, records: pa.Table, counters: pa.Table | None, batch_id: str) -> bool:
        if records.num_rows:
            self._insert("records", records, f"{batch_id}:records")
        if counters is not None and counters.num_rows:
            self._insert("counters", counters, f"{batch_id}:counters")
        return True

    # --- bookkeeping ------------------------------------------------------------------------

    def ingested(self, file_key: str) -> bool:
        return self.ingested_summary(file_key) is not None

    def ingested_summary(self, file_key: str) -> dict[str, Any] | None:
        t = self._q(f"SELECT argMax(summary, updated) AS s, count() AS n FROM "
                    f"{self.db}.ingested WHERE file_key = {{k:String}}", {"k": file_key})
        if not t.num_rows or not t.column("n")[0].as_py():
            return None
        try:
            d = json.loads(t.column("s")[0].as_py())
        except (TypeError, json.JSONDecodeError):
            return {}
        return d if isinstance(d, dict) else {}

    def mark_ingested(self, file_key: str, summary: dict[str, Any]) -> None:
        self._need_write()
        rec = {**summary, "ingested_at": datetime.now(UTC).isoformat()}
        self._cmd(f"INSERT INTO {self.db}.ingested VALUES ({{k:String}}, {{s:String}}, "
                  "now64(9))", {"k": file_key, "s": json.dumps(rec, default=str)})

    def _oldest_raw_ns(self) -> int | None:
        t = self._q(f"SELECT toUnixTimestamp64Nano(min(ts)) AS m, count() AS n "
                    f"FROM {self.db}.records")
        if not t.column("n")[0].as_py():
            return None
        return int(t.column("m")[0].as_py())

    def info(self) -> dict[str, Any]:
        self._check_open()
        parts = self._q("SELECT table, sum(rows) AS rows, sum(bytes_on_disk) AS bytes, "
                        "count() AS parts, uniqExact(partition) AS partitions "
                        "FROM system.parts WHERE database = {db:String} AND active "
                        "GROUP BY table", {"db": self.loc.database}).to_pylist()
        by = {r["table"]: r for r in parts}
        ds: dict[str, Any] = {}
        for name in TABLE_NAMES:
            span = self._q(f"SELECT toUnixTimestamp64Nano(min(ts)) AS lo, "
                           f"toUnixTimestamp64Nano(max(ts)) AS hi, count() AS n "
                           f"FROM {self.db}.{name}").to_pylist()[0]
            r = by.get(name, {})
            ds[name] = {"rows": int(span["n"]), "bytes": int(r.get("bytes") or 0),
                        "files": int(r.get("parts") or 0),
                        "partitions": int(r.get("partitions") or 0),
                        "first_ns": span["lo"] if span["n"] else None,
                        "last_ns": span["hi"] if span["n"] else None}
        n_ing = self._q(f"SELECT uniqExact(file_key) AS n FROM {self.db}.ingested"
                        ).column("n")[0].as_py()
        return {
            "location": str(self.loc), "backend": self.backend,
            "schema_version": self.schema_version,
            "rows": ds["records"]["rows"], "counter_rows": ds["counters"]["rows"],
            "bytes": sum(d["bytes"] for d in ds.values()),
            "first_ns": ds["records"]["first_ns"], "last_ns": ds["records"]["last_ns"],
            "partitions": sum(d["partitions"] for d in ds.values()),
            "datasets": ds, "ingested_files": int(n_ing),
            "retention_s": int(self.retention.total_seconds()),
            "retention_1m_s": int(self.retention_1m.total_seconds()),
            "writer_pid": None,
            "staged_rows": 0,  # inserts are final (the server merges parts on its own)
        }

    def apply_retention(self, now: datetime | None = None) -> dict[str, int]:
        """Drop whole day partitions that ended before ``now - retention`` (the TTLs do
        the same on their own, at merges)."""
        self._need_write()
        ref = int((now or datetime.now(UTC)).timestamp() * 1e9)
        out: dict[str, int] = {}
        for name in TABLE_NAMES:
            keep = self.retention if name in ("records", "counters") else self.retention_1m
            cut = ref - int(keep.total_seconds() * 1e9)
            parts = self._q(f"SELECT _partition_id AS p, count() AS n FROM {self.db}.{name} "
                            "GROUP BY p").to_pylist()
            for r in parts:
                pid = str(r["p"])
                try:
                    day = datetime.strptime(pid, "%Y%m%d").replace(tzinfo=UTC)
                except ValueError:
                    continue
                end = int(day.timestamp()) * 10**9 + DAY_NS
                if end <= cut:
                    self._cmd(f"ALTER TABLE {self.db}.{name} DROP PARTITION ID "
                              f"{{p:String}}", {"p": pid})
                    out[name] = out.get(name, 0) + int(r["n"])
        return out

    def compact(self) -> dict[str, int]:
        self._need_write()
        for name in TABLE_NAMES:
            self._cmd(f"OPTIMIZE TABLE {self.db}.{name}")
        return {}

    def _close(self) -> None:
        self.ex.close()


def _days(d: timedelta) -> int:
    return max(1, round(d.total_seconds() / 86400))


def _strip_literals(q: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.|'')*'", "''", q)


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__

"""DDL from the column table: DuckDB types and ClickHouse ``CREATE TABLE`` statements.

Everything here is generated from :mod:`fabricscope.records.schema` (``PACKET_COLUMNS``,
``COUNTER_COLUMNS``) plus the store's derived tables, which are declared below with the
same :class:`~fabricscope.records.schema.Column` type:

* ``STORED_COUNTER_COLUMNS``: the counter columns followed by what the writer derives
  between two polls of one interface (``interval_ms``, ``d_*`` deltas, ``wrapped``,
  ``reset``), so rates are a division away;
* ``RECORDS_1M_COLUMNS``: the per-minute aggregate of packet records (samples, estimated
  packets and bytes per flow key per observation point);
* ``COUNTERS_1M_COLUMNS``: the per-minute sums of the counter deltas per interface.

Logical type -> DuckDB / ClickHouse:

| logical | DuckDB | ClickHouse |
| --- | --- | --- |
| ts | TIMESTAMPTZ_NS | DateTime64(9, 'UTC') |
| u8..u64, i64 | UTINYINT..UBIGINT, BIGINT | UInt8..UInt64, Int64 |
| ip | BLOB (16 bytes, IPv4-mapped) | IPv6 (16 bytes, IPv4-mapped) |
| mac | UBIGINT | UInt64 |
| bool | BOOLEAN | Bool |
| str | VARCHAR | LowCardinality(String) |
| bin | BLOB | String |
| tunnels | STRUCT(...)[] | Array(Tuple(...)) |

Columns are nullable (absent = null) except the ``ts`` of every table and the measures
of the aggregates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fabricscope.records.schema import (
    COUNTER_BY_NAME,
    COUNTER_COLUMNS,
    PACKET_BY_NAME,
    PACKET_COLUMNS,
    TUNNEL_FIELDS,
    Column,
    LogicalType,
)

Dialect = Literal["duckdb", "clickhouse"]

# --- the store's tables --------------------------------------------------------------------

STORED_PACKET_COLUMNS: tuple[Column, ...] = tuple(c for c in PACKET_COLUMNS if c.stored)


def _d(name: str, t: LogicalType, doc: str) -> Column:
    return Column(name, t, "derived", doc)


COUNTER_DELTA_NAMES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # derived delta column, doc, the counter columns it sums
    ("d_in_octets", "octets received since the previous poll", ("in_octets",)),
    ("d_out_octets", "octets sent since the previous poll", ("out_octets",)),
    ("d_in_pkts", "packets received (unicast + multicast + broadcast)",
     ("in_ucast", "in_mcast", "in_bcast")),
    ("d_out_pkts", "packets sent (unicast + multicast + broadcast)",
     ("out_ucast", "out_mcast", "out_bcast")),
    ("d_in_errors", "input errors since the previous poll", ("in_errors",)),
    ("d_out_errors", "output errors since the previous poll", ("out_errors",)),
    ("d_in_discards", "input discards since the previous poll", ("in_discards",)),
    ("d_out_discards", "output discards since the previous poll", ("out_discards",)),
    ("d_fcs_errors", "FCS errors since the previous poll", ("fcs_errors",)),
)

COUNTER_DERIVED_COLUMNS: tuple[Column, ...] = (
    _d("interval_ms", "u64",
       "ms since the previous poll of this interface (agent uptime when it has it, "
       "else receive time); null on the first poll and after a reset"),
    *(_d(name, "u64", doc + "; null on the first poll and after a reset")
      for name, doc, _ in COUNTER_DELTA_NAMES),
    _d("wrapped", "u8", "counters that wrapped since the previous poll: bit0 a 32-bit "
                        "counter, bit1 a 64-bit counter"),
    _d("reset", "bool", "the agent restarted or the counters were cleared since the "
                        "previous poll (uptime or a counter went down): deltas are null"),
)

STORED_COUNTER_COLUMNS: tuple[Column, ...] = (
    *(c for c in COUNTER_COLUMNS if c.stored), *COUNTER_DERIVED_COLUMNS)

RECORDS_1M_KEY: tuple[str, ...] = (
    "kind", "agent", "in_if", "out_if", "src", "dst", "proto", "sport", "dport", "ttl",
    "encap", "vni", "inner_src", "inner_dst", "inner_proto", "inner_sport", "inner_dport",
)


@dataclass(frozen=True)
class Measure:
    """A column of an aggregate: ``expr`` over the raw rows (dialect-neutral SQL; ``{r}``
    stands for the source's qualifier, ``{u64}`` for the unsigned 64-bit type), summed or
    min/max per group; partial aggregates are combined with ``merge`` over the column."""

    column: Column
    expr: str
    func: Literal["sum", "min", "max"]
    nullable: bool = False  # null when no row of the group has a value

    @property
    def merge(self) -> str:
        return self.func


RECORDS_1M_MEASURES: tuple[Measure, ...] = (
    Measure(_d("samples", "u64", "records (samples) in the minute"), "1", "sum"),
    Measure(_d("est_packets", "u64", "estimated packets: sum of sampling_rate (1 for "
                                     "full captures)"),
            "CAST(coalesce({r}sampling_rate, 1) AS {u64})", "sum"),
    Measure(_d("est_bytes", "u64", "estimated bytes: sum of frame_len * sampling_rate"),
            "CAST(coalesce({r}frame_len, 0) AS {u64}) * coalesce({r}sampling_rate, 1)", "sum"),
    Measure(_d("first_ts", "ts", "first record in the minute"), "{r}ts", "min"),
    Measure(_d("last_ts", "ts", "last record in the minute"), "{r}ts", "max"),
)

COUNTERS_1M_KEY: tuple[str, ...] = ("agent", "ifindex")

COUNTERS_1M_MEASURES: tuple[Measure, ...] = (
    Measure(_d("polls", "u64", "counter polls in the minute"), "1", "sum"),
    Measure(_d("port_name", "str", "port name"), "{r}port_name", "max", True),
    Measure(_d("speed", "u64", "interface speed, bits/s"), "{r}speed", "max", True),
    Measure(_d("interval_ms", "u64", "ms covered by the polls' deltas"), "{r}interval_ms",
            "sum", True),
    *(Measure(_d(name, "u64", doc), "{r}" + name, "sum", True)
      for name, doc, _ in COUNTER_DELTA_NAMES),
    Measure(_d("wraps", "u64", "polls that saw a counter wrap"),
            "CASE WHEN {r}wrapped > 0 THEN 1 ELSE 0 END", "sum"),
    Measure(_d("resets", "u64", "polls that saw a reset"),
            "CASE WHEN {r}reset THEN 1 ELSE 0 END", "sum"),
)

_MINUTE = Column("ts", "ts", "meta", "start of the minute, UTC", key=True)

RECORDS_1M_COLUMNS: tuple[Column, ...] = (
    _MINUTE, *(PACKET_BY_NAME[n] for n in RECORDS_1M_KEY),
    *(m.column for m in RECORDS_1M_MEASURES))

COUNTERS_1M_COLUMNS: tuple[Column, ...] = (
    _MINUTE, *(COUNTER_BY_NAME[n] for n in COUNTERS_1M_KEY),
    *(m.column for m in COUNTERS_1M_MEASURES))

TABLES: dict[str, tuple[Column, ...]] = {
    "records": STORED_PACKET_COLUMNS,
    "counters": STORED_COUNTER_COLUMNS,
    "records_1m": RECORDS_1M_COLUMNS,
    "counters_1m": COUNTERS_1M_COLUMNS,
}
"""The four datasets (view names on both backends) and their columns."""

ROLLUPS: dict[str, tuple[str, tuple[str, ...], tuple[Measure, ...]]] = {
    "records_1m": ("records", RECORDS_1M_KEY, RECORDS_1M_MEASURES),
    "counters_1m": ("counters", COUNTERS_1M_KEY, COUNTERS_1M_MEASURES),
}
"""Aggregate dataset -> (source dataset, group key besides the minute, measures)."""


# --- types ---------------------------------------------------------------------------------

_DUCK: dict[str, str] = {
    "ts": "TIMESTAMPTZ_NS", "u8": "UTINYINT", "u16": "USMALLINT", "u32": "UINTEGER",
    "u64": "UBIGINT", "i64": "BIGINT", "ip": "BLOB", "mac": "UBIGINT", "bool": "BOOLEAN",
    "str": "VARCHAR", "bin": "BLOB",
}

_CH: dict[str, str] = {
    "ts": "DateTime64(9, 'UTC')", "u8": "UInt8", "u16": "UInt16", "u32": "UInt32",
    "u64": "UInt64", "i64": "Int64", "ip": "IPv6", "mac": "UInt64", "bool": "Bool",
    "str": "String", "bin": "String",
}


def quote_ident(name: str) -> str:
    """A double-quoted identifier (both dialects accept it)."""
    return '"' + name.replace('"', '""') + '"'


def duckdb_type(t: LogicalType) -> str:
    if t == "tunnels":
        fields = ", ".join(f"{quote_ident(n)} {_DUCK[ft]}" for n, ft, _ in TUNNEL_FIELDS)
        return f"STRUCT({fields})[]"
    return _DUCK[t]


def clickhouse_type(t: LogicalType, *, nullable: bool = True) -> str:
    if t == "tunnels":
        fields = ", ".join(f"{n} {clickhouse_type(ft)}" for n, ft, _ in TUNNEL_FIELDS)
        return f"Array(Tuple({fields}))"
    base = _CH[t]
    if nullable:
        base = f"Nullable({base})"
    if t == "str":
        base = f"LowCardinality({base})"
    return base


def sql_type(t: LogicalType, dialect: Dialect) -> str:
    return duckdb_type(t) if dialect == "duckdb" else clickhouse_type(t)


def u64(dialect: Dialect) -> str:
    return "UBIGINT" if dialect == "duckdb" else "UInt64"


def duckdb_create_table(name: str, columns: Sequence[Column], *, temp: bool = False,
                        if_not_exists: bool = False) -> str:
    cols = ",\n  ".join(f"{quote_ident(c.name)} {duckdb_type(c.type)}" for c in columns)
    kw = "CREATE TEMP TABLE" if temp else "CREATE TABLE"
    if if_not_exists:
        kw += " IF NOT EXISTS"
    return f"{kw} {quote_ident(name)} (\n  {cols}\n)"


def duckdb_columns(columns: Sequence[Column]) -> list[tuple[str, str]]:
    return [(c.name, duckdb_type(c.type)) for c in columns]


# --- roll-ups (the 1-minute aggregates) ------------------------------------------------------

def minute_expr(dialect: Dialect, col: str = "ts") -> str:
    if dialect == "duckdb":
        return f"CAST(date_trunc('minute', {col}) AS TIMESTAMPTZ_NS)"
    return f"toDateTime64(toStartOfMinute({col}), 9, 'UTC')"


def rollup_select(name: str, source: str, dialect: Dialect, *, merge: bool = False) -> str:
    """The SELECT that builds aggregate ``name`` from ``source`` (a table, view or
    parenthesised sub-query): raw rows of its source dataset, or (``merge=True``) rows of
    the aggregate itself, which is how partial aggregates are combined.

    Column references are qualified (``_r.ts``) because ClickHouse lets a SELECT alias
    (the minute, named ``ts``) shadow the source column of the same name."""
    _src, key, measures = ROLLUPS[name]
    r = "_r."
    ts = f"{r}ts" if merge else minute_expr(dialect, f"{r}ts")
    sel = [f"{ts} AS ts", *(f"{r}{quote_ident(k)} AS {quote_ident(k)}" for k in key)]
    for m in measures:
        col = quote_ident(m.column.name)
        if merge:
            expr = f"{m.merge}({r}{col})"
        else:
            expr = f"{m.func}({m.expr.format(u64=u64(dialect), r=r)})"
        if dialect == "duckdb" and m.func == "sum":  # DuckDB sums integers to HUGEINT
            expr = f"CAST({expr} AS UBIGINT)"
        sel.append(f"{expr} AS {col}")
    group = ", ".join(str(i + 1) for i in range(len(key) + 1))
    return f"SELECT {', '.join(sel)} FROM {source} AS _r GROUP BY {group}"


def rollup_rows(name: str, source: str, dialect: Dialect) -> str:
    """Rows of aggregate ``name`` for the raw rows of ``source``, one per raw row, not
    grouped: each its own partial aggregate (a group of one). Queries combine the rows
    of an aggregate anyway (``sum(samples)``...), so these answer as the grouped rows
    do, and cost a scan instead of a ``GROUP BY`` over every key column: what the
    embedded store reads for records still in its staging tier."""
    _src, key, measures = ROLLUPS[name]
    r = "_r."
    sel = [f"{minute_expr(dialect, f'{r}ts')} AS ts",
           *(f"{r}{quote_ident(k)} AS {quote_ident(k)}" for k in key)]
    for m in measures:
        expr = m.expr.format(u64=u64(dialect), r=r)
        if m.func == "sum":
            expr = f"CAST({expr} AS {u64(dialect)})"
        sel.append(f"{expr} AS {quote_ident(m.column.name)}")
    return f"SELECT {', '.join(sel)} FROM {source} AS _r"


# --- ClickHouse -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ClickHouseOptions:
    """How the ClickHouse tables are laid out."""

    database: str = "fabricscope"
    raw_ttl_days: int | None = 7
    agg_ttl_days: int | None = 90
    dedup_window: int = 10000


def _ch_column(c: Column, *, measure: Measure | None = None) -> str:
    name = quote_ident(c.name)
    if c.name == "ts":
        return f"{name} {clickhouse_type('ts', nullable=False)}"
    if measure is not None:
        inner = clickhouse_type(c.type, nullable=measure.nullable)
        return f"{name} SimpleAggregateFunction({measure.func}, {inner})"
    return f"{name} {clickhouse_type(c.type)}"


def _ttl(days: int | None) -> str:
    return f"\nTTL toDateTime(ts) + INTERVAL {int(days)} DAY DELETE" if days else ""


IMPACT_PROJECTION_COLUMNS: tuple[str, ...] = (
    "ts", "kind", "agent", "in_if", "out_if", "src", "dst", "proto", "sport", "dport",
    "ttl", "frame_len", "sampling_rate", "encap", "vni", "inner_src", "inner_dst",
    "inner_proto", "inner_sport", "inner_dport",
)


def clickhouse_create_tables(opts: ClickHouseOptions, *,
                             packet_columns: Sequence[Column] = STORED_PACKET_COLUMNS,
                             counter_columns: Sequence[Column] = STORED_COUNTER_COLUMNS,
                             ) -> list[str]:
    """Every statement that creates the ClickHouse schema, in order (idempotent:
    ``IF NOT EXISTS``): the database, ``records`` and ``counters`` (MergeTree), the
    aggregates ``records_1m`` / ``counters_1m`` (AggregatingMergeTree) fed by
    materialized views, and the bookkeeping tables ``meta`` and ``ingested``."""
    db = quote_ident(opts.database)
    dedup = f"non_replicated_deduplication_window = {int(opts.dedup_window)}"
    out = [f"CREATE DATABASE IF NOT EXISTS {db}"]

    rec_cols = ",\n  ".join(_ch_column(c) for c in packet_columns)
    proj_cols = ", ".join(quote_ident(c) for c in IMPACT_PROJECTION_COLUMNS
                          if any(p.name == c for p in packet_columns))
    # trace: one inner flow in a time window -> ORDER BY inner addresses then time;
    # impact: one device/port in a time window -> a projection ordered by agent, port, time.
    out.append(
        f"CREATE TABLE IF NOT EXISTS {db}.records (\n  {rec_cols},\n"
        f"  PROJECTION by_port (SELECT {proj_cols} ORDER BY agent, in_if, out_if, ts)\n)"
        "\nENGINE = MergeTree"
        "\nPARTITION BY toYYYYMMDD(ts)"
        "\nORDER BY (inner_src, inner_dst, ts)"
        f"{_ttl(opts.raw_ttl_days)}"
        f"\nSETTINGS allow_nullable_key = 1, ttl_only_drop_parts = 1, {dedup}")

    cnt_cols = ",\n  ".join(_ch_column(c) for c in counter_columns)
    out.append(
        f"CREATE TABLE IF NOT EXISTS {db}.counters (\n  {cnt_cols}\n)"
        "\nENGINE = MergeTree"
        "\nPARTITION BY toYYYYMMDD(ts)"
        "\nORDER BY (agent, ifindex, ts)"
        f"{_ttl(opts.raw_ttl_days)}"
        f"\nSETTINGS allow_nullable_key = 1, ttl_only_drop_parts = 1, {dedup}")

    for name in ("records_1m", "counters_1m"):
        out.extend(clickhouse_rollup_tables(opts, name))

    out.append(
        f"CREATE TABLE IF NOT EXISTS {db}.meta (key String, value String, "
        "updated DateTime64(9, 'UTC'))\nENGINE = ReplacingMergeTree(updated) ORDER BY key")
    out.append(
        f"CREATE TABLE IF NOT EXISTS {db}.ingested (file_key String, summary String, "
        "updated DateTime64(9, 'UTC'))\nENGINE = ReplacingMergeTree(updated) "
        "ORDER BY file_key")
    return out


def clickhouse_rollup_tables(opts: ClickHouseOptions, name: str) -> list[str]:
    """The aggregate table ``name`` and the materialized view that feeds it."""
    db = quote_ident(opts.database)
    src, key, measures = ROLLUPS[name]
    by_name = {m.column.name: m for m in measures}
    cols = ",\n  ".join(_ch_column(c, measure=by_name.get(c.name))
                        for c in TABLES[name])
    order = ", ".join(["ts", *key]) if name == "counters_1m" else ", ".join(
        ["inner_src", "inner_dst", "ts", *(k for k in key if k not in ("inner_src",
                                                                        "inner_dst"))])
    dedup = f"non_replicated_deduplication_window = {int(opts.dedup_window)}"
    table = (
        f"CREATE TABLE IF NOT EXISTS {db}.{name} (\n  {cols}\n)"
        "\nENGINE = AggregatingMergeTree"
        "\nPARTITION BY toYYYYMMDD(ts)"
        f"\nORDER BY ({order})"
        f"{_ttl(opts.agg_ttl_days)}"
        f"\nSETTINGS allow_nullable_key = 1, ttl_only_drop_parts = 1, {dedup}")
    view = (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{name}_mv TO {db}.{name} AS\n"
            + rollup_select(name, f"{db}.{src}", "clickhouse"))
    return [table, view]


__all__ = [
    "COUNTERS_1M_COLUMNS", "COUNTER_DERIVED_COLUMNS", "RECORDS_1M_COLUMNS",
    "RECORDS_1M_KEY", "ROLLUPS", "STORED_COUNTER_COLUMNS", "STORED_PACKET_COLUMNS",
    "TABLES", "ClickHouseOptions", "Dialect", "Measure", "clickhouse_create_tables",
    "clickhouse_type", "duckdb_create_table", "duckdb_type", "minute_expr",
    "quote_ident", "rollup_select",
]

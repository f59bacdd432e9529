"""One column table -> Arrow schema, DuckDB DDL and ClickHouse DDL, all in agreement."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from fabricscope.records.arrow import PACKET_STORED_SCHEMA, schema_of
from fabricscope.records.ddl import (
    COUNTER_DERIVED_COLUMNS,
    RECORDS_1M_KEY,
    STORED_COUNTER_COLUMNS,
    STORED_PACKET_COLUMNS,
    TABLES,
    ClickHouseOptions,
    clickhouse_create_tables,
    clickhouse_type,
    duckdb_create_table,
    duckdb_type,
    rollup_select,
)
from fabricscope.records.schema import COUNTER_COLUMNS, PACKET_COLUMNS
from fabricscope.store.conform import SCHEMAS
from fabricscope.store.filters import FILTER_COLUMNS


def test_stored_columns_follow_the_schema_table() -> None:
    assert [c.name for c in STORED_PACKET_COLUMNS] == [c.name for c in PACKET_COLUMNS
                                                      if c.stored]
    assert PACKET_STORED_SCHEMA.names == [c.name for c in STORED_PACKET_COLUMNS]
    raw = [c.name for c in COUNTER_COLUMNS if c.stored]
    assert [c.name for c in STORED_COUNTER_COLUMNS][:len(raw)] == raw
    assert STORED_COUNTER_COLUMNS[len(raw):] == COUNTER_DERIVED_COLUMNS
    for name, cols in TABLES.items():
        assert SCHEMAS[name] == schema_of(cols)
    # every filter column is in the 1-minute aggregate, so any filter works on both
    assert set(FILTER_COLUMNS) <= set(RECORDS_1M_KEY)


@pytest.mark.parametrize("name", list(TABLES))
def test_duckdb_ddl_matches_arrow(name: str) -> None:
    con = duckdb.connect()
    con.execute(duckdb_create_table(name, TABLES[name]))
    described = {r[0]: r[1] for r in con.execute(f'DESCRIBE "{name}"').fetchall()}
    assert list(described) == [c.name for c in TABLES[name]]
    for c in TABLES[name]:
        assert described[c.name].replace('"', "") == duckdb_type(c.type).replace('"', ""), c.name
    # an Arrow table in the canonical schema goes in and comes back with the same values
    empty = SCHEMAS[name].empty_table()
    con.register("t", empty)
    con.execute(f'INSERT INTO "{name}" SELECT * FROM t')


def test_type_mapping() -> None:
    assert duckdb_type("ip") == "BLOB" and clickhouse_type("ip") == "Nullable(IPv6)"
    assert duckdb_type("ts") == "TIMESTAMPTZ_NS"
    assert clickhouse_type("ts", nullable=False) == "DateTime64(9, 'UTC')"
    assert clickhouse_type("str") == "LowCardinality(Nullable(String))"
    assert clickhouse_type("mac") == "Nullable(UInt64)"
    assert clickhouse_type("tunnels").startswith("Array(Tuple(type LowCardinality")
    assert duckdb_type("tunnels").endswith("[]")


def test_clickhouse_ddl_shape() -> None:
    stmts = clickhouse_create_tables(ClickHouseOptions(database="fs", raw_ttl_days=3,
                                                       agg_ttl_days=30))
    text = "\n".join(stmts)
    rec = next(s for s in stmts if "fs\".records (" in s)
    assert "ORDER BY (inner_src, inner_dst, ts)" in rec
    assert "PROJECTION by_port" in rec and "ORDER BY agent, in_if, out_if, ts" in rec
    assert "PARTITION BY toYYYYMMDD(ts)" in rec
    assert "INTERVAL 3 DAY" in rec
    assert "non_replicated_deduplication_window" in rec
    for c in STORED_PACKET_COLUMNS:
        assert f'"{c.name}" ' in rec
    assert "AggregatingMergeTree" in text and "INTERVAL 30 DAY" in text
    assert text.count("CREATE MATERIALIZED VIEW") == 2


def test_clickhouse_ddl_runs_on_chdb(tmp_path: Path) -> None:
    chdb = pytest.importorskip("chdb")
    from chdb import session

    s = session.Session(str(tmp_path / "ch"))
    try:
        for stmt in clickhouse_create_tables(ClickHouseOptions(database="fs")):
            s.query(stmt)
        for name, cols in TABLES.items():
            out = s.query(f"SELECT name, type FROM system.columns WHERE database = 'fs' "
                          f"AND table = '{name}' ORDER BY position", "ArrowTable")
            assert out.column("name").to_pylist() == [c.name for c in cols], name
    finally:
        s.close()
    del chdb


@pytest.mark.parametrize("name", ["records_1m", "counters_1m"])
def test_rollup_select_is_valid_duckdb(name: str) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    src = "records" if name == "records_1m" else "counters"
    con.execute(duckdb_create_table(src, TABLES[src]))
    con.execute(duckdb_create_table(name, TABLES[name]))
    t = con.sql(rollup_select(name, src, "duckdb")).to_arrow_table()
    assert t.column_names == [c.name for c in TABLES[name]]
    m = con.sql(rollup_select(name, name, "duckdb", merge=True)).to_arrow_table()
    assert m.column_names == t.column_names
    assert isinstance(m, pa.Table)


def test_ungrouped_rollup_rows_combine_to_the_grouped_aggregate() -> None:
    """``rollup_rows`` (one partial aggregate per raw row, the staged records' share of
    records_1m) combined per key gives what ``rollup_select`` groups."""
    from fabricscope.records.ddl import ROLLUPS, rollup_rows, rollup_select
    from fabricscope.store.synthetic import synthetic_records

    t = synthetic_records(3000, start_ns=1_795_600_800 * 10**9, span_ns=600 * 10**9,
                          flows=15, seed=3)
    con = duckdb.connect()
    con.register("_t", t)
    _src, key, measures = ROLLUPS["records_1m"]
    keys = ", ".join(["ts", *key])
    sums = ", ".join(f"{m.func}({m.column.name}) AS {m.column.name}" for m in measures)
    rows = con.sql(rollup_rows("records_1m", "_t", "duckdb"))
    assert len(rows.fetchall()) == 3000  # not grouped
    combined = con.sql(f"SELECT {keys}, {sums} FROM ({rollup_rows('records_1m', '_t', 'duckdb')}) "
                       f"GROUP BY ALL ORDER BY ALL").fetchall()
    grouped = con.sql(f"SELECT * FROM ({rollup_select('records_1m', '_t', 'duckdb')}) "
                      "ORDER BY ALL").fetchall()
    assert combined == grouped and len(grouped) < 3000

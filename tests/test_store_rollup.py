"""The NumPy per-minute aggregate agrees with the SQL one (records/ddl.py rollup_select)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabricscope.records.ddl import RECORDS_1M_COLUMNS, rollup_select
from fabricscope.store import synthetic as syn
from fabricscope.store.conform import conform_input
from fabricscope.store.rollup import records_rollup

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def sql_rollup(t: pa.Table) -> pa.Table:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("b", t)
    return conform_input(con.sql(rollup_select("records_1m", "b", "duckdb")).to_arrow_table(),
                         RECORDS_1M_COLUMNS)


def canon(t: pa.Table) -> list[dict[str, object]]:
    rows = t.to_pylist()
    return sorted(rows, key=lambda r: repr(sorted(r.items(), key=lambda kv: kv[0])))


def test_matches_sql_on_synthetic_traffic() -> None:
    t = syn.synthetic_records(30_000, start_ns=int(T0.timestamp()) * 10**9,
                              span_ns=600 * 10**9, flows=200, seed=5)
    fast = records_rollup(t)
    assert fast is not None
    assert fast.schema == sql_rollup(t).schema
    assert canon(fast) == canon(sql_rollup(t))
    assert sum(fast.column("samples").to_pylist()) == 30_000


def test_nulls_ipv6_strings_and_chunks() -> None:
    base = {"ts": T0, "frame_len": 100, "sampling_rate": 10, "inner_src": "10.0.0.1"}
    rows = [
        base,
        {**base, "ts": T0 + timedelta(seconds=30)},  # same minute, same key
        {**base, "sampling_rate": None},  # same key: sampling rate is a measure
        {**base, "inner_src": None},  # null vs value
        {**base, "inner_src": "::ffff:10.0.0.1"},  # the same address written as IPv6
        {**base, "inner_src": "2001:db8::1", "kind": "flow", "encap": "geneve"},
        {**base, "kind": "discard", "frame_len": None},
        {**base, "ts": T0 + timedelta(seconds=61)},  # next minute
        {**base, "in_if": 0},  # 0 is not null
        {**base, "in_if": None},
    ]
    a = syn.records(rows[:5])
    b = syn.records(rows[5:])
    t = pa.concat_tables([a, b])  # two chunks, each with its own dictionaries
    fast = records_rollup(t)
    assert fast is not None
    assert canon(fast) == canon(sql_rollup(t))
    first = [r for r in fast.to_pylist() if r["in_if"] is None and r["kind"] is None
             and r["ts"] == T0 and r["inner_src"] == syn._ipb("10.0.0.1")]
    assert first and first[0]["samples"] == 5 and first[0]["est_packets"] == 41


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 180), st.sampled_from([None, 1, 2]),
                          st.sampled_from([None, "10.0.0.1", "10.0.0.2", "fd00::1"]),
                          st.sampled_from([None, 1, 100, 1024]),
                          st.sampled_from([None, "flow", "packet"])),
                min_size=1, max_size=40))
def test_property_matches_sql(rows: list[tuple[int, int | None, str | None, int | None,
                                               str | None]]) -> None:
    t = syn.records([{"ts": T0 + timedelta(seconds=s), "in_if": i, "agent": a,
                      "sampling_rate": r, "kind": k, "frame_len": 64}
                     for s, i, a, r, k in rows])
    fast = records_rollup(t)
    assert fast is not None
    assert canon(fast) == canon(sql_rollup(t))


def test_merge_combines_partial_aggregates() -> None:
    t = syn.synthetic_records(20_000, start_ns=int(T0.timestamp()) * 10**9,
                              span_ns=300 * 10**9, flows=50, seed=2)
    whole = records_rollup(t)
    parts = [records_rollup(t.slice(k, 5000)) for k in range(0, 20_000, 5000)]
    assert whole is not None and all(p is not None for p in parts)
    merged = records_rollup(pa.concat_tables(parts), merge=True)  # type: ignore[arg-type]
    assert merged is not None
    assert canon(merged) == canon(whole)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("p", pa.concat_tables(parts))  # type: ignore[arg-type]
    via_sql = conform_input(con.sql(rollup_select("records_1m", "p", "duckdb", merge=True))
                            .to_arrow_table(), RECORDS_1M_COLUMNS)
    assert canon(via_sql) == canon(whole)


def test_empty() -> None:
    assert records_rollup(syn.records([])).num_rows == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("n", [1, 2])
def test_tiny(n: int) -> None:
    t = syn.records([{"ts": T0, "frame_len": 1}] * n)
    fast = records_rollup(t)
    assert fast is not None and fast.column("samples").to_pylist() == [n]


def test_trace_sort_is_the_lexsort_order() -> None:
    """trace_sort (hash-numbered pairs, counting sort) gives exactly the stable order by
    (hour, inner_src, inner_dst, ts), nulls first, on unsorted input with ties."""
    import numpy as np

    from fabricscope.store.rollup import _i64, _ip_sort_words, trace_sort

    t = syn.synthetic_records(20_000, start_ns=int(T0.timestamp()) * 10**9,
                              span_ns=3 * 3600 * 10**9, flows=300, seed=3)
    rng = np.random.default_rng(0)
    t = t.take(pa.array(rng.permutation(t.num_rows)))
    mask = pa.array(rng.random(t.num_rows) < 0.1)
    col = t.column("inner_src").combine_chunks()
    t = t.set_column(t.schema.get_field_index("inner_src"), "inner_src",
                     pa.compute.if_else(mask, pa.nulls(len(col), col.type), col))
    ts = _i64(t.column("ts")) // 10**9 * 10**9  # ties in ts
    t = t.set_column(0, "ts", pa.array(ts, pa.timestamp("ns", tz="UTC")))
    hour = 3600 * 10**9
    order, rank = trace_sort(t, hour)
    keys = [ts]
    for name in ("inner_dst", "inner_src"):
        null, hi, lo = _ip_sort_words(t.column(name))
        keys.extend([lo, hi, null])
    ref = np.lexsort((*keys, ts // hour))
    assert order is not None and np.array_equal(order, ref)
    assert rank is not None
    srt = rank[order]
    assert np.all(np.diff(srt[ts[order] // hour == ts[order][0] // hour]) >= 0)

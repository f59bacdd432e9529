"""records/parquet.py: the Parquet sink writes exactly the batches it was given."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fabricscope.records.parquet import NO_DICTIONARY, ParquetSink, writer_options

SCHEMA = pa.schema([
    ("ts", pa.int64()), ("vni", pa.int32()), ("encap", pa.string()),
    ("tunnels", pa.list_(pa.struct([("type", pa.string()), ("sport", pa.uint16())]))),
])


def _batch(lo: int, n: int) -> pa.RecordBatch:
    return pa.record_batch([
        pa.array(range(lo, lo + n), pa.int64()),
        pa.array([(i % 7) if i % 5 else None for i in range(lo, lo + n)], pa.int32()),
        pa.array(["vxlan" if i % 2 else "geneve" for i in range(lo, lo + n)]),
        pa.array([[{"type": "vxlan", "sport": i % 65536}] for i in range(lo, lo + n)],
                 SCHEMA.field("tunnels").type),
    ], schema=SCHEMA)


def test_round_trip_keeps_rows_order_and_nulls(tmp_path: Path) -> None:
    path = tmp_path / "out.parquet"
    sink = ParquetSink(str(path), SCHEMA, row_group=1000)
    batches = [_batch(0, 700), _batch(700, 0), _batch(700, 900), _batch(1600, 1234)]
    for b in batches:
        assert sink.write(b) == b.num_rows
    sink.close()
    got = pq.read_table(path)
    assert got.schema.equals(SCHEMA)
    assert got.equals(pa.Table.from_batches(batches, SCHEMA))
    meta = pq.ParquetFile(path).metadata
    # gathered into groups of at least 1000 rows (the last one holds what is left)
    sizes = [meta.row_group(k).num_rows for k in range(meta.num_row_groups)]
    assert sizes == [1600, 1234]


def test_dictionary_only_where_values_repeat() -> None:
    opts = writer_options(SCHEMA)
    assert "ts" in NO_DICTIONARY and "ts" not in opts["use_dictionary"]
    assert "tunnels.list.element.sport" not in opts["use_dictionary"]
    assert {"vni", "encap", "tunnels.list.element.type"} <= set(opts["use_dictionary"])


def test_a_writer_error_reaches_the_caller(tmp_path: Path) -> None:
    sink = ParquetSink(str(tmp_path / "out.parquet"), SCHEMA, row_group=10)
    wrong = pa.record_batch([pa.array([1, 2], pa.int64())], names=["other"])
    with pytest.raises((pa.ArrowInvalid, ValueError, TypeError)):
        sink.write(wrong)
        sink.close()


def test_statistics_only_on_the_columns_queries_filter_on(tmp_path: Path) -> None:
    from fabricscope.records.parquet import STATS_COLUMNS
    from fabricscope.store.filters import FILTER_COLUMNS

    # every column a record filter can name keeps statistics (row-group pruning)
    assert set(FILTER_COLUMNS) <= STATS_COLUMNS and "ts" in STATS_COLUMNS
    path = tmp_path / "out.parquet"
    sink = ParquetSink(str(path), SCHEMA, row_group=1000)
    sink.write(_batch(0, 1500))
    sink.close()
    rg = pq.ParquetFile(path).metadata.row_group(0)
    by_path = {rg.column(k).path_in_schema: rg.column(k) for k in range(rg.num_columns)}
    ts = by_path["ts"]
    assert ts.is_stats_set and ts.statistics.min == 0 and ts.statistics.max == 1499
    assert by_path["vni"].is_stats_set and by_path["encap"].is_stats_set
    assert not by_path["tunnels.list.element.sport"].is_stats_set
    assert not by_path["tunnels.list.element.type"].is_stats_set

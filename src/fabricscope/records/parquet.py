"""Writing record batches to a Parquet file fast: ``ParquetSink``.

What it does differently from a plain ``pyarrow.parquet.ParquetWriter`` loop (measured
on ``bench/decode.py``'s mixed capture, see docs/decoding.md):

* **row groups of at least ``ROW_GROUP`` records** (smaller batches are gathered until
  then): every column chunk costs a fixed amount (pages, statistics, a compressor
  context, metadata) for each of the ~110 leaf columns;
* **dictionary encoding only where values repeat**: timestamps, file offsets and source
  ports (VXLAN/GENEVE senders hash the flow into the outer source port) are nearly all
  distinct, so a dictionary is hashing work and a larger file; every other column keeps it;
* **min/max statistics only on the columns queries filter on** (``STATS_COLUMNS``: time,
  addresses, ports, VNI, agent, interfaces): a reader (DuckDB, the store's views) skips
  row groups by them; statistics on the other ~80 leaf columns (TTLs, flags, the tunnel
  list) were a fifth of the writer's CPU time and no query uses them.

Measured (whole process, ``fabricscope decode -f parquet`` on 1,000,000 mixed frames):
about 15% less CPU time and a 20% smaller file than the plain loop. Writing on a
background thread while the next batch is decoded was tried: 10-20% less wall time, the
same CPU time, but 17 MB more peak memory (the row group in flight), which took the
5,000,000-frame run over the decoder's 300 MB budget; so the sink writes in the caller's
thread.

The file's content (schema, values, row order) is what the batches held.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

#: records per row group (one decoder batch: a larger group saved little time and
#: cost 40 MB of peak memory per doubling, measured on bench/decode.py's capture)
ROW_GROUP = 16384

#: columns (and nested leaves) whose values are nearly all distinct: no dictionary
NO_DICTIONARY = frozenset({
    "ts", "file_offset", "sport", "inner_sport", "seq", "sample_seq", "uptime_ms",
    "tunnels.list.element.sport",
})


#: columns that keep min/max statistics in Parquet files: the time columns and every
#: column a record filter can name (``store/filters.py``'s ``FILTER_COLUMNS``, checked by
#: a test), so row-group pruning works for every query; the rest go without
STATS_COLUMNS = frozenset({
    "ts", "first_ts", "last_ts", "inner_src", "inner_dst", "src", "dst", "inner_sport",
    "inner_dport", "inner_proto", "sport", "dport", "proto", "vni", "encap", "agent",
    "in_if", "out_if", "ifindex", "kind",
})


def _leaves(field: pa.Field, prefix: str = "") -> list[str]:
    """Parquet column paths of an Arrow field (``tunnels.list.element.vni``...)."""
    name = prefix + field.name
    t = field.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _leaves(pa.field("element", t.value_type), name + ".list.")
    if pa.types.is_struct(t):
        return [p for k in range(t.num_fields) for p in _leaves(t.field(k), name + ".")]
    return [name]


def writer_options(schema: pa.Schema) -> dict[str, Any]:
    """ParquetWriter keyword arguments for a record schema."""
    paths = [p for f in schema for p in _leaves(f)]
    return {"compression": "zstd",
            "use_dictionary": [p for p in paths if p not in NO_DICTIONARY],
            "write_statistics": stats_paths(paths)}


def stats_paths(paths: list[str]) -> list[str]:
    """The Parquet column paths (of ``paths``) that keep statistics."""
    return [p for p in paths if p in STATS_COLUMNS]


class ParquetSink:
    """Record batches -> one Parquet file, in row groups of at least ``row_group``
    records. ``close()`` must be called (it writes what is left and the footer)."""

    def __init__(self, path: str, schema: pa.Schema, *, row_group: int = ROW_GROUP) -> None:
        import pyarrow.parquet as pq

        self.schema = schema
        self.row_group = row_group
        self._writer = pq.ParquetWriter(path, schema, **writer_options(schema))
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, self.schema)
        self._pending = []
        self._rows = 0
        self._writer.write_table(table)

    def write(self, batch: pa.RecordBatch) -> int:
        if batch.num_rows:
            self._pending.append(batch)
            self._rows += batch.num_rows
            if self._rows >= self.row_group:
                self._flush()
        return int(batch.num_rows)

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self._writer.close()

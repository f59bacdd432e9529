"""Arrow tables in and out of the stores, in the canonical types of records/arrow.py.

In: a decoder batch (any column order, extra columns such as ``file_offset``) becomes the
stored columns, in order, with missing ones null. Out: whatever a backend returns (DuckDB:
BLOB for IPs, plain strings; ClickHouse: IPv6 as fixed_size_binary, ...) is cast back to
the canonical types: IPs ``fixed_size_binary(16)``, strings ``dictionary<int16, string>``,
``ts`` ``timestamp[ns, UTC]``, ``tunnels`` list<struct>.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from fabricscope.records.arrow import STR_TYPE, arrow_type, schema_of
from fabricscope.records.ddl import TABLES
from fabricscope.records.schema import Column

SCHEMAS: dict[str, pa.Schema] = {name: schema_of(cols) for name, cols in TABLES.items()}
"""Canonical Arrow schema of each dataset."""

_KNOWN: dict[str, pa.DataType] = {}
for _cols in TABLES.values():
    for _c in _cols:
        _KNOWN.setdefault(_c.name, arrow_type(_c.type))


def as_table(data: pa.RecordBatch | pa.Table) -> pa.Table:
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return data
    raise TypeError(f"expected a pyarrow RecordBatch or Table, not {type(data).__name__}")


def _cast(col: pa.ChunkedArray | pa.Array, t: pa.DataType) -> pa.ChunkedArray | pa.Array:
    if col.type == t:
        return col
    if t == STR_TYPE:
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        if col.null_count == len(col):
            return pa.nulls(len(col), STR_TYPE) if isinstance(col, pa.Array) else \
                pa.chunked_array([pa.nulls(len(col), STR_TYPE)])
        try:
            return col.cast(t)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            enc = pc.dictionary_encode(col)
            try:
                return enc.cast(t)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return col  # more than 32767 distinct values: keep plain strings
    if pa.types.is_timestamp(t) and pa.types.is_timestamp(col.type):
        return col.cast(t)
    return col.cast(t)


def conform_input(data: pa.RecordBatch | pa.Table, columns: Sequence[Column]) -> pa.Table:
    """Select and order the stored ``columns`` (missing ones null), canonical types."""
    t = as_table(data)
    n = t.num_rows
    arrays: list[pa.ChunkedArray | pa.Array] = []
    names = set(t.column_names)
    schema = schema_of(columns)
    for f in schema:
        if f.name in names:
            arrays.append(_cast(t.column(f.name), f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def conform_output(t: pa.Table, extra: dict[str, pa.DataType] | None = None,
                   keep: Iterable[str] = ()) -> pa.Table:
    """Cast the columns of a query result whose names the schema knows to their
    canonical types; other columns (rates, counts) as they come, or per ``extra``."""
    kept = set(keep)
    arrays = []
    fields = []
    for name, col in zip(t.column_names, t.columns, strict=True):
        target = (extra or {}).get(name) or (_KNOWN.get(name) if name not in kept else None)
        if target is not None and col.type != target:
            with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                col = _cast(col, target)
        arrays.append(col)
        fields.append(pa.field(name, col.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table with no row (``Schema.empty_table()`` builds its arrays from Python lists,
    which makes pyarrow import pandas: 0.4 s of a one-shot query's time)."""
    return pa.Table.from_batches([], schema=schema)


def empty(name: str, columns: Sequence[str] | None = None) -> pa.Table:
    schema = SCHEMAS[name]
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    return empty_table(schema)


def undictionary_type(t: pa.DataType) -> pa.DataType:
    """The type with every dictionary (also inside lists and structs) replaced by its
    value type."""
    if pa.types.is_dictionary(t):
        return t.value_type
    if pa.types.is_list(t):
        return pa.list_(pa.field(t.value_field.name, undictionary_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, undictionary_type(f.type)) for f in t])
    return t


def undictionary(t: pa.Table) -> pa.Table:
    """Plain strings instead of dictionaries (ClickHouse refuses dictionaries with
    duplicate values, which decoders may produce)."""
    schema = pa.schema([pa.field(f.name, undictionary_type(f.type)) for f in t.schema])
    return t if schema == t.schema else t.cast(schema)

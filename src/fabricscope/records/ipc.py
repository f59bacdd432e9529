"""Writing record batches to an Arrow IPC file: ``ArrowSink`` (``decode -f arrow``).

The Arrow IPC file format (also called Feather v2) stores the batches' columns as they
are in memory, each buffer compressed on its own (LZ4 frames by default). It is what a
notebook or another tool opens fastest: ``pyarrow.ipc.open_file`` (or
``pyarrow.feather.read_table``), ``pandas.read_feather``, ``polars.read_ipc``, and
DuckDB through pyarrow. Writing costs a fraction of Parquet's encoding (measured on
bench/decode.py's mixed capture, 1,000,000 records in memory, one core: Parquet with
our settings about 1.0 s, this sink with LZ4 0.23 s, uncompressed 0.11 s), at about
twice Parquet's size (47 against 21 bytes per record with LZ4; zstd: 25 bytes, 0.41 s).
Parquet stays the format for keeping (the store) and for row-group statistics; this one
is for handing a decoded capture to the next tool.

Dictionaries. An IPC *file* holds one dictionary per column for all its batches, and
accepts only additions to it (deltas), never a replacement. The decoders' enumerations
(``kind``, ``encap``, ``error``, the tunnel type) use one fixed vocabulary per column,
so they pass as they are; a column whose dictionary grows from batch to batch (sFlow
port names in counter rows) is re-coded onto one vocabulary that only grows, which the
writer then sends as deltas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from fabricscope.records.background import Background

#: compressions an IPC file may use (pyarrow's names); None: uncompressed
COMPRESSIONS = ("lz4", "zstd", None)


class _Vocabulary:
    """One column's dictionary across batches: values only ever appended."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.index: dict[Any, int] = {}
        self.array: pa.Array | None = None

    def recode(self, col: pa.DictionaryArray) -> pa.DictionaryArray:
        d = col.dictionary
        if self.array is None:  # the first batch's dictionary is adopted as it is
            self.values = d.to_pylist()
            for k, v in enumerate(self.values):
                self.index.setdefault(v, k)
            self.array = d
            return col
        if d.equals(self.array):
            return col  # the common case: the same (fixed) vocabulary as before
        codes = np.empty(len(d), np.int64)
        grew = False
        for k, v in enumerate(d.to_pylist()):  # a dictionary: a few values, not a row each
            at = self.index.get(v)
            if at is None:
                at = self.index[v] = len(self.values)
                self.values.append(v)
                grew = True
            codes[k] = at
        if grew:  # the old dictionary plus new values at its end: written as a delta
            self.array = pa.array(self.values, d.type)
        idx = col.indices
        if len(d):
            # nulls keep their slot (filled with 0 first: the mapping must not read them)
            raw = idx.fill_null(0).to_numpy(zero_copy_only=False)
            idx = pa.array(codes[raw].astype(idx.type.to_pandas_dtype()),
                           mask=idx.is_null().to_numpy(zero_copy_only=False)
                           if idx.null_count else None)
        return pa.DictionaryArray.from_arrays(idx, self.array)


class ArrowSink:
    """Record batches -> one Arrow IPC file. ``close()`` must be called (it writes the
    footer); the file's content (schema, values, row order) is what the batches held.

    ``background=True``: batches are compressed and written on a thread of their own
    while the caller decodes the next one (pyarrow releases the GIL while it writes). At
    most one batch waits for it (one decoder batch is about 4 MB): on two cores
    ``decode -f arrow`` of bench/decode.py's 5,000,000 frames took about a quarter less
    wall time, for the same CPU time and peak memory. A write error is raised by the
    next ``write`` or by ``close`` (``records/background.py``)."""

    def __init__(self, path: str, schema: pa.Schema, *, compression: str | None = "lz4",
                 background: bool = False) -> None:
        import pyarrow.ipc as ipc

        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}")
        self.schema = schema
        self._vocab = {k: _Vocabulary() for k, f in enumerate(schema)
                       if pa.types.is_dictionary(f.type)}
        # in the background the sink's thread compresses (pyarrow's pool would hand
        # each buffer to another thread: 0.6 s more CPU time on 5,000,000 frames)
        opts = ipc.IpcWriteOptions(compression=compression, emit_dictionary_deltas=True,
                                   use_threads=not background)
        # the file is ours to close: a writer whose close() failed (a full disk while
        # writing the footer) would otherwise keep it open until garbage-collected
        self._file = pa.OSFile(path, "wb")
        try:
            self._writer = ipc.new_file(self._file, schema, options=opts)
        except BaseException:
            self._file.close()
            raise
        self._bg = Background(self._writer.write_batch, name="arrow-sink") if background \
            else None

    def write(self, batch: pa.RecordBatch) -> int:
        if self._bg is not None:
            self._bg.raise_error()
        if not batch.num_rows:
            return 0
        if self._vocab:
            cols = list(batch.columns)
            for k, v in self._vocab.items():
                cols[k] = v.recode(cols[k])
            batch = pa.RecordBatch.from_arrays(cols, schema=self.schema)
        if self._bg is not None:
            self._bg.put(batch)
        else:
            self._writer.write_batch(batch)
        return int(batch.num_rows)

    def close(self) -> None:
        try:
            if self._bg is not None:
                self._bg.close()
        finally:
            try:
                self._writer.close()
            finally:
                self._file.close()

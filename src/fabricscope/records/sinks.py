"""The file sinks by format name, for the commands that write decoded batches to files
(``decode -f parquet|arrow``, ``collect --out FILE.parquet|.arrow``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa


def open_sink(fmt: str, path: str, schema: pa.Schema) -> Any:
    """A ``ParquetSink`` (``fmt`` "parquet": ``records/parquet.py``'s settings, in the
    caller's thread) or an ``ArrowSink`` ("arrow": written on a thread of its own while
    the caller decodes on)."""
    if fmt == "arrow":
        from fabricscope.records.ipc import ArrowSink

        return ArrowSink(path, schema, background=True)
    if fmt == "parquet":
        from fabricscope.records.parquet import ParquetSink

        return ParquetSink(path, schema)
    raise ValueError(f"no file sink for format {fmt!r}")


def close_sinks(*sinks: Any) -> None:
    """Close every sink given (None: skipped), even when an earlier one fails; the first
    failure is raised."""
    first: BaseException | None = None
    for s in sinks:
        if s is None:
            continue
        try:
            s.close()
        except BaseException as exc:
            first = first or exc
    if first is not None:
        raise first

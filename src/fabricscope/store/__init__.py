"""Storage: the embedded store (default) and ClickHouse, behind one API.

```python
from fabricscope.store import open_store, RecordFilter

with open_store(write=True) as st:          # the default embedded store
    st.append(records_batch, counters_batch, batch_id="file-key:0")
with open_store() as st:                    # any number of readers, while it is written
    t = st.select(RecordFilter(since=t0, until=t1, inner_src="10.1.0.5",
                               inner_dst="10.2.0.9", either_direction=True))
```

``open_store(location)``: ``None`` -> ``$FABRICSCOPE_DB`` or the user data directory; a
path -> the embedded store (a directory of Parquet partitions queried with DuckDB);
``clickhouse://HOST:PORT/DB`` -> ClickHouse; ``chdb://PATH`` -> ClickHouse in-process.
See docs/storage.md.
"""

from __future__ import annotations

import os
from datetime import timedelta

from fabricscope.store.base import Store, file_key, new_batch_id
from fabricscope.store.errors import (
    DiskFull,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreVersionError,
)
from fabricscope.store.filters import RecordFilter
from fabricscope.store.location import Location, default_root, parse_location


def open_store(location: str | os.PathLike[str] | None = None, *, write: bool = False,
               retention: timedelta | None = None,
               retention_1m: timedelta | None = None) -> Store:
    """Open (with ``write=True``: create if needed, and become its writer) a store.

    ``retention`` / ``retention_1m`` (writers only) set how long raw records/counters and
    the 1-minute aggregates are kept (defaults 7 and 90 days); they are remembered by the
    store. Raises :class:`StoreError` subclasses with one-line messages: no store there,
    :class:`StoreLocked` (another writer), :class:`StoreCorrupt`, :class:`StoreVersionError`.
    """
    loc = parse_location(location)
    if loc.kind == "embedded":
        from fabricscope.store.embedded import EmbeddedStore

        assert loc.path is not None
        return EmbeddedStore(loc.path, write=write, retention=retention,
                             retention_1m=retention_1m)
    from fabricscope.store.clickhouse import ClickHouseStore

    return ClickHouseStore(loc, write=write, retention=retention, retention_1m=retention_1m)


__all__ = [
    "DiskFull", "Location", "RecordFilter", "Store", "StoreCorrupt", "StoreError",
    "StoreLocked", "StoreVersionError", "default_root", "file_key", "new_batch_id",
    "open_store", "parse_location",
]

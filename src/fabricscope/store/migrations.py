"""Schema migrations: one step per version, each over both stores, run on open.

``MIGRATIONS[v]`` upgrades a store from version ``v`` to ``v + 1``; a store at version
``v`` runs ``MIGRATIONS[v:SCHEMA_VERSION]`` in order, and its recorded version moves one
step at a time (``store.json`` / the ``meta`` table), so a crash between steps resumes
where it stopped. Every step is idempotent (a half-done step done again is harmless).

Version 0 is the pre-release layout, kept as the test fixture of the framework: the
records column ``frame_len`` was called ``wire_len``, and counters had no ``fcs_errors``.
:func:`create_store_at` builds a store at any earlier version from data in the current
schema, which is how tests/test_store_migrations.py checks every upgrade path.

To change the schema: bump ``SCHEMA_VERSION`` in records/schema.py, append a
:class:`Migration` here, and teach :func:`_downgrade_embedded` /
:func:`_create_clickhouse_at` to build the version before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fabricscope.records.ddl import (
    STORED_COUNTER_COLUMNS,
    STORED_PACKET_COLUMNS,
    ClickHouseOptions,
    clickhouse_create_tables,
    clickhouse_rollup_tables,
    clickhouse_type,
    quote_ident,
)
from fabricscope.records.schema import SCHEMA_VERSION, Column

if TYPE_CHECKING:
    from fabricscope.store.clickhouse import ClickHouseStore
    from fabricscope.store.embedded import EmbeddedStore


@dataclass(frozen=True)
class Migration:
    from_version: int
    describe: str
    embedded: Callable[[EmbeddedStore], None]
    clickhouse: Callable[[ClickHouseStore], None]


# --- 0 -> 1 -----------------------------------------------------------------------------------

V0_RENAMED = {"frame_len": "wire_len"}  # current name -> version-0 name (records)
V0_MISSING_COUNTERS = ("fcs_errors",)


def _embedded_0_1(store: EmbeddedStore) -> None:
    """Rewrite record files that still have ``wire_len`` (one commit for all of them);
    counter files without ``fcs_errors`` read as null through the views, unchanged."""
    import pyarrow.parquet as pq

    from fabricscope.store.catalog import FileEntry

    snap = store.catalog.current
    assert snap is not None
    old = {v: k for k, v in V0_RENAMED.items()}
    adds: list[dict[str, Any]] = []
    removes: list[str] = []
    seq = snap.seq + 1
    for k, f in enumerate(sorted(snap.files.values(), key=lambda f: f.path)):
        if f.ds != "records" or f.path.endswith(".arrow"):  # (staged: newer than v1)
            continue
        path = store.root / f.path
        names = pq.ParquetFile(path).schema_arrow.names
        if not any(n in old for n in names):
            continue
        t = pq.read_table(path)
        t = t.rename_columns([old.get(n, n) for n in t.column_names])
        rel = f"{f.ds}/{f.part}/{seq:016d}-m{k}.parquet"
        size = store._write_file(t, store.root / rel)
        adds.append(FileEntry(rel, f.ds, f.part, t.num_rows, size, f.min_ts, f.max_ts,
                              f.batch, f.added).to_json())
        removes.append(f.path)
    if adds:
        store._commit({"op": "migrate", "to_version": 1, "add": adds, "remove": removes})
        store._drop(removes)


def _clickhouse_0_1(store: ClickHouseStore) -> None:
    db = store.db
    store._cmd(f"DROP VIEW IF EXISTS {db}.records_1m_mv")
    cols = store._q("SELECT name FROM system.columns WHERE database = {d:String} AND "
                    "table = 'records'", {"d": store.loc.database}).column("name").to_pylist()
    for new, old in V0_RENAMED.items():
        if old in cols and new not in cols:
            store._cmd(f"ALTER TABLE {db}.records RENAME COLUMN {quote_ident(old)} TO "
                       f"{quote_ident(new)}")
    names = [c.name for c in STORED_COUNTER_COLUMNS]
    for name in V0_MISSING_COUNTERS:
        c = next(c for c in STORED_COUNTER_COLUMNS if c.name == name)
        after = names[names.index(name) - 1]
        store._cmd(f"ALTER TABLE {db}.counters ADD COLUMN IF NOT EXISTS {quote_ident(name)} "
                   f"{clickhouse_type(c.type)} AFTER {quote_ident(after)}")
    opts = ClickHouseOptions(database=store.loc.database)
    for stmt in clickhouse_rollup_tables(opts, "records_1m"):
        store._cmd(stmt)  # IF NOT EXISTS: recreates only the view


MIGRATIONS: list[Migration] = [
    Migration(0, "records.wire_len renamed frame_len; counters gain fcs_errors",
              _embedded_0_1, _clickhouse_0_1),
]
assert len(MIGRATIONS) == SCHEMA_VERSION
assert all(m.from_version == i for i, m in enumerate(MIGRATIONS))


# --- stores at earlier versions (the fixtures the migration tests start from) ----------------

def _v0_packet_columns() -> list[Column]:
    from dataclasses import replace

    return [replace(c, name=V0_RENAMED.get(c.name, c.name)) for c in STORED_PACKET_COLUMNS]


def _v0_counter_columns() -> list[Column]:
    return [c for c in STORED_COUNTER_COLUMNS if c.name not in V0_MISSING_COUNTERS]


def _to_v0_records(t: pa.Table) -> pa.Table:
    return t.rename_columns([V0_RENAMED.get(n, n) for n in t.column_names])


def _to_v0_counters(t: pa.Table) -> pa.Table:
    return t.drop_columns([c for c in V0_MISSING_COUNTERS if c in t.column_names])


def create_store_at(version: int, location: str, records: pa.Table,
                    counters: pa.Table | None = None) -> None:
    """Create a store at schema ``version`` (< SCHEMA_VERSION) holding ``records`` and
    ``counters`` (given in the current schema), as that version would have written it."""
    from fabricscope.store.location import parse_location

    if not 0 <= version < SCHEMA_VERSION:
        raise ValueError(f"no earlier schema version {version}")
    loc = parse_location(location)
    if loc.kind == "embedded":
        assert loc.path is not None
        _create_embedded_at(version, loc.path, records, counters)
    else:
        _create_clickhouse_at(version, location, records, counters)


def _create_embedded_at(version: int, root: Path, records: pa.Table,
                        counters: pa.Table | None) -> None:
    """Write with the current code, then rewrite the files as ``version`` had them."""
    import json

    import pyarrow.parquet as pq

    from fabricscope.store.catalog import write_atomic
    from fabricscope.store.embedded import STORE_JSON, EmbeddedStore, write_parquet

    st = EmbeddedStore(root, write=True, staging=False)  # (no staging tier then)
    try:
        st.append(records, counters)
        files = list(st.catalog.snapshot().files.values())
    finally:
        st.close()
    assert version == 0
    for f in files:
        path = root / f.path
        t = pq.read_table(path)
        if f.ds == "records":
            t = _to_v0_records(t)
        elif f.ds == "counters":
            t = _to_v0_counters(t)
        else:
            continue
        tmp = path.with_name(".tmp-" + path.name)
        write_parquet(t, tmp)
        tmp.replace(path)
    meta = json.loads((root / STORE_JSON).read_text())
    meta["schema_version"] = version
    write_atomic(root / STORE_JSON, json.dumps(meta).encode())


def _create_clickhouse_at(version: int, location: str, records: pa.Table,
                          counters: pa.Table | None) -> None:
    from fabricscope.store.clickhouse import ChdbExecutor, ClientExecutor, Executor
    from fabricscope.store.conform import conform_input
    from fabricscope.store.counters import CounterState
    from fabricscope.store.location import parse_location

    assert version == 0
    loc = parse_location(location)
    ex: Executor = ChdbExecutor(loc.path) if loc.kind == "chdb" and loc.path else \
        ClientExecutor(loc)
    try:
        opts = ClickHouseOptions(database=loc.database)
        for stmt in clickhouse_create_tables(opts, packet_columns=_v0_packet_columns(),
                                             counter_columns=_v0_counter_columns()):
            for new, old in V0_RENAMED.items():
                stmt = stmt.replace(f"_r.{quote_ident(new)}", f"_r.{quote_ident(old)}")
                stmt = stmt.replace(f"_r.{new}", f"_r.{old}")
            ex.command(stmt)
        db = quote_ident(loc.database)
        settings: dict[str, Any] = {"insert_deduplicate": 1}
        rec = _to_v0_records(conform_input(records, STORED_PACKET_COLUMNS))
        ex.insert_arrow(f"{db}.records", rec, {**settings,
                                                "insert_deduplication_token": "v0r"})
        if counters is not None and counters.num_rows:
            cnt, _state = CounterState().derive(conform_input(counters,
                                                              STORED_COUNTER_COLUMNS))
            ex.insert_arrow(f"{db}.counters", _to_v0_counters(cnt),
                            {**settings, "insert_deduplication_token": "v0c"})
        ex.command(f"INSERT INTO {db}.meta VALUES ('schema_version', {{v:String}}, now64(9))",
                   {"v": str(version)})
    finally:
        ex.close()

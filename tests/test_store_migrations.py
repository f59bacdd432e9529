"""Schema migrations: a store created at every earlier version upgrades on open, on both
backends, with its data intact and readable through the current schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fabricscope.records.schema import SCHEMA_VERSION
from fabricscope.store import open_store
from fabricscope.store import synthetic as syn
from fabricscope.store.migrations import MIGRATIONS, V0_RENAMED, create_store_at

T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
T0_NS = int(T0.timestamp()) * 10**9
EARLIER = list(range(SCHEMA_VERSION))


def data() -> tuple[object, object]:
    recs = syn.synthetic_records(500, start_ns=T0_NS, span_ns=1800 * 10**9, flows=20)
    polls = syn.counters([{"ts": T0 + timedelta(seconds=30 * k), "agent": "10.0.0.1",
                           "ifindex": 3, "uptime_ms": 1000 + 30_000 * k,
                           "in_octets": 1_000_000 * k, "fcs_errors": k} for k in range(4)])
    return recs, polls


def location(kind: str, tmp: Path) -> str:
    return str(tmp / "store") if kind == "embedded" else f"chdb://{tmp / 'chdb'}"


def test_every_version_has_one_step() -> None:
    assert [m.from_version for m in MIGRATIONS] == EARLIER
    assert all(m.describe for m in MIGRATIONS)


@pytest.mark.parametrize("kind", ["embedded", "chdb"])
@pytest.mark.parametrize("version", EARLIER)
def test_upgrade_from_every_earlier_version(tmp_path: Path, kind: str, version: int) -> None:
    if kind == "chdb":
        pytest.importorskip("chdb")
    loc = location(kind, tmp_path)
    recs, polls = data()
    create_store_at(version, loc, recs, polls)  # type: ignore[arg-type]
    if kind == "embedded":  # the fixture really is the old layout
        meta = json.loads((tmp_path / "store" / "store.json").read_text())
        assert meta["schema_version"] == version
        f = next((tmp_path / "store" / "records").rglob("*.parquet"))
        if version == 0:
            assert V0_RENAMED["frame_len"] in pq.ParquetFile(f).schema_arrow.names
    with open_store(loc, write=True) as st:
        assert st.info()["schema_version"] == SCHEMA_VERSION
        got = st.select(columns=["ts", "frame_len", "inner_src"])
        assert got.num_rows == 500
        assert got.column("frame_len").null_count == 0
        assert sorted(got.column("frame_len").to_pylist()) == sorted(
            recs.column("frame_len").to_pylist())  # type: ignore[attr-defined]
        rows = st.counters().to_pylist()
        assert len(rows) == 4
        assert rows[1]["in_bps"] == pytest.approx(1_000_000 * 8 / 30)
        est = st.aggregate(None, [], resolution="1m").to_pylist()[0]
        assert est["samples"] == 500
        # new data goes in with the current schema next to the migrated data
        st.append(recs, batch_id="after")  # type: ignore[arg-type]
        assert st.select(columns=["frame_len"]).column("frame_len").null_count == 0
        assert st.select(columns=["ts"]).num_rows == 1000
    with open_store(loc) as st:  # and reopening does not migrate again
        assert st.info()["schema_version"] == SCHEMA_VERSION
        assert st.sql("SELECT count(*) AS n FROM records WHERE frame_len IS NOT NULL"
                      ).column("n")[0].as_py() == 1000


def test_reader_migrates_an_idle_old_store(tmp_path: Path) -> None:
    loc = location("embedded", tmp_path)
    recs, polls = data()
    create_store_at(0, loc, recs, polls)  # type: ignore[arg-type]
    with open_store(loc) as st:  # no writer around: the reader upgrades it
        assert st.info()["schema_version"] == SCHEMA_VERSION
        assert st.select(columns=["frame_len"]).column("frame_len").null_count == 0
        assert st.counters().column("ts").null_count == 0


def test_migration_is_resumable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between the data rewrite and the version bump: the step runs again."""
    from fabricscope.store import embedded as emb

    loc = location("embedded", tmp_path)
    recs, polls = data()
    create_store_at(0, loc, recs, polls)  # type: ignore[arg-type]
    real = emb.EmbeddedStore._write_meta
    calls = {"n": 0}

    def crash(self: emb.EmbeddedStore, meta: dict[str, object]) -> None:
        if meta.get("schema_version") == 1 and calls["n"] == 0:
            calls["n"] += 1
            raise KeyboardInterrupt  # dies right after the rewrite was committed
        real(self, meta)

    monkeypatch.setattr(emb.EmbeddedStore, "_write_meta", crash)
    with pytest.raises(KeyboardInterrupt):
        open_store(loc, write=True)
    monkeypatch.setattr(emb.EmbeddedStore, "_write_meta", real)
    with open_store(loc, write=True) as st:
        assert st.info()["schema_version"] == SCHEMA_VERSION
        assert st.select(columns=["frame_len"]).column("frame_len").null_count == 0

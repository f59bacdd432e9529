"""The embedded store's own guarantees: layout, one writer, bad files, full disks."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from fabricscope.records.schema import SCHEMA_VERSION
from fabricscope.store import (
    DiskFull,
    RecordFilter,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreVersionError,
    default_root,
    open_store,
    parse_location,
)
from fabricscope.store import catalog as catalog_mod
from fabricscope.store import embedded as emb
from fabricscope.store import synthetic as syn

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9
ROOT = Path(__file__).resolve().parent.parent


def batch(n: int = 100, *, start: int = T0_NS, span: int = 600 * 10**9, seed: int = 0
          ) -> pa.Table:
    return syn.synthetic_records(n, start_ns=start, span_ns=span, flows=20, seed=seed)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emb, "DELETE_GRACE_S", 0.0)
    root = tmp_path / "s"
    with open_store(root, write=True) as st:
        st.append(batch(span=2 * 3600 * 10**9), syn.counters([{
            "ts": T0, "agent": "10.0.0.1", "ifindex": 1, "in_octets": 5}]))
        staged = files_under(root)
        assert st.seal() == 100
    # an append stages its records (one Arrow IPC file per hour); sealing replaces them
    # by sorted Parquet files and their per-minute aggregates
    for hr in (10, 11):
        assert any(n.startswith(f"records/dt=2026-11-25/hr={hr}/") and n.endswith(".arrow")
                   for n in staged)
    assert not any(n.startswith("records_1m/") for n in staged)
    names = files_under(root)
    assert not any(n.endswith(".arrow") for n in names)
    assert "store.json" in names and "writer.lock" in names
    assert any(n.startswith("records/dt=2026-11-25/hr=10/") for n in names)
    assert any(n.startswith("records/dt=2026-11-25/hr=11/") for n in names)
    assert any(n.startswith("counters/dt=2026-11-25/hr=10/") for n in names)
    assert any(n.startswith("records_1m/dt=2026-11-25/") for n in names)
    assert any(n.startswith("counters_1m/dt=2026-11-25/") for n in names)
    assert any(n.startswith("_log/") for n in names)
    assert not any(".tmp-" in n for n in names)
    meta = json.loads((root / "store.json").read_text())
    assert meta["format"] == "fabricscope-store"
    assert meta["schema_version"] == SCHEMA_VERSION


def test_location_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FABRICSCOPE_DB", raising=False)
    assert parse_location(None).path == default_root()
    assert str(default_root()).endswith(os.path.join("fabricscope", "store"))
    monkeypatch.setenv("FABRICSCOPE_DB", str(tmp_path / "env"))
    assert parse_location(None).path == tmp_path / "env"
    assert parse_location(str(tmp_path / "x")).path == tmp_path / "x"
    assert parse_location(f"file://{tmp_path}/y").path == tmp_path / "y"
    ch = parse_location("clickhouse://bob:s%40cret@ch.example:9000/flows")
    assert (ch.kind, ch.host, ch.port, ch.database, ch.user, ch.password) == (
        "clickhouse", "ch.example", 9000, "flows", "bob", "s@cret")
    assert "s@cret" not in str(ch)
    assert parse_location("clickhouses://h/db").port == 8443
    assert parse_location("chdb:///tmp/x").kind == "chdb"
    with pytest.raises(Exception, match="unknown scheme"):
        parse_location("postgres://h/db")
    with pytest.raises(Exception, match="database name"):
        parse_location("clickhouse://h/a;drop")
    # the environment variable is the default for open_store too
    with open_store(write=True) as st:
        assert st.location == str(tmp_path / "env")


def _hold_writer(root: Path) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""
        import sys, time
        from fabricscope.store import open_store
        st = open_store({str(root)!r}, write=True)
        print("ready", flush=True)
        sys.stdin.read()
        st.close()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    return p


def test_second_writer_fails_fast(tmp_path: Path) -> None:
    root = tmp_path / "s"
    p = _hold_writer(root)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreLocked, match=f"being written by pid {p.pid}"):
            open_store(root, write=True)
        assert time.monotonic() - t0 < 1.0
        with open_store(root) as reader:  # readers are welcome
            assert reader.select().num_rows == 0
            assert reader.info()["writer_pid"] == p.pid
    finally:
        assert p.stdin is not None
        p.stdin.close()
        p.wait(10)
    with open_store(root, write=True) as st:  # the lock went with the process
        st.append(batch())


def test_reader_on_missing_or_foreign_locations(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        open_store(tmp_path / "nothing")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hello")
    with pytest.raises(StoreCorrupt, match="not a fabricscope store"):
        open_store(foreign)
    with pytest.raises(StoreCorrupt, match="not a fabricscope store"):
        open_store(foreign, write=True)
    assert not (foreign / "_log").exists()
    duck = tmp_path / "x.duckdb"
    import duckdb

    duckdb.connect(str(duck)).close()
    with pytest.raises(StoreCorrupt, match="DuckDB database file"):
        open_store(duck)
    plain = tmp_path / "plain"
    plain.write_bytes(b"\x00" * 10)
    with pytest.raises(StoreCorrupt, match="not a directory"):
        open_store(plain, write=True)


@pytest.mark.parametrize(("content", "msg"), [
    (b"{not json", "damaged"),
    (b'{"format": "something-else", "schema_version": 1}', "not a fabricscope"),
    (b'{"format": "fabricscope-store", "schema_version": "x"}', "bad schema_version"),
    (b"\xff\xfe\x00", "damaged"),
])
def test_corrupt_store_json(tmp_path: Path, content: bytes, msg: str) -> None:
    root = tmp_path / "s"
    with open_store(root, write=True) as st:
        st.append(batch())
    (root / "store.json").write_bytes(content)
    for write in (False, True):
        with pytest.raises(StoreCorrupt, match=msg):
            open_store(root, write=write)


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with open_store(root, write=True):
        pass
    meta = json.loads((root / "store.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (root / "store.json").write_text(json.dumps(meta))
    with pytest.raises(StoreVersionError, match="upgrade fabricscope"):
        open_store(root)


@pytest.mark.parametrize("kind", ["parquet", "arrow"])
def test_corrupt_data_file_is_named(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "s"
    with open_store(root, write=True) as st:
        st.append(batch())
        if kind == "parquet":
            st.seal()
    victim = next((root / "records").rglob(f"*.{kind}"))
    victim.write_bytes(b"garbage" * 100)
    with open_store(root) as st, pytest.raises(StoreCorrupt, match=victim.name):
        st.select()


def test_corrupt_log_entry(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with open_store(root, write=True) as st:
        st.append(batch())
    entry = next((root / "_log").glob("*.json"))
    entry.write_bytes(b"\x00garbage")
    with pytest.raises(StoreCorrupt, match="damaged log file"):
        open_store(root).select()


def test_checkpoints_and_log_pruning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_mod, "CHECKPOINT_EVERY", 5)
    monkeypatch.setattr(emb, "COMPACT_MIN_FILES", 10**6)
    root = tmp_path / "s"
    with open_store(root, write=True) as st:
        reader = open_store(root)
        for k in range(23):
            st.append(batch(10, seed=k), batch_id=f"b{k}")
            assert reader.select(columns=["ts"]).num_rows == 10 * (k + 1)
        reader.close()
        st.append(batch(10, seed=0), batch_id="b0")  # deduplicated via the checkpoint
    log = sorted(p.name for p in (root / "_log").iterdir())
    assert len([n for n in log if n.endswith(".checkpoint.json")]) == 2
    assert len([n for n in log if not n.endswith(".checkpoint.json")]) < 5
    with open_store(root) as st:
        assert st.select(columns=["ts"]).num_rows == 230


def test_orphans_and_temp_files_are_swept(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with open_store(root, write=True) as st:
        st.append(batch())
        st.seal()
    part = next((root / "records").rglob("*.parquet")).parent
    shutil.copy(next(part.glob("*.parquet")), part / "0000000000000099-0.parquet")
    (part / ".tmp-0000000000000100-0.parquet").write_bytes(b"half")
    (root / "_log" / ".tmp-1-0000000000000002.json").write_bytes(b"{")
    with open_store(root) as st:  # readers never see uncommitted files
        assert st.select().num_rows == 100
    with open_store(root, write=True) as st:
        assert st.select().num_rows == 100
    names = files_under(root)
    assert not any("0000000000000099" in n or ".tmp-" in n for n in names)


def test_small_files_are_compacted_automatically(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emb, "COMPACT_MIN_FILES", 4)
    monkeypatch.setattr(emb, "DELETE_GRACE_S", 0.0)
    root = tmp_path / "s"
    # without the staging tier, every append writes small Parquet files (as sealing a
    # collector's few records does)
    with emb.EmbeddedStore(root, write=True, staging=False) as st:
        for k in range(9):
            st.append(batch(50, seed=k), batch_id=f"k{k}")
        info = st.info()
        assert info["datasets"]["records"]["files"] < 4
        assert info["rows"] == 450
    with open_store(root) as st:
        assert st.select().num_rows == 450
        t = st.select(columns=["inner_src"])
        assert t.num_rows == 450


@pytest.mark.parametrize("writer", ["write_staged", "write_parquet"])
def test_disk_full_keeps_committed_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        writer: str) -> None:
    root = tmp_path / "s"
    st = emb.EmbeddedStore(root, write=True, staging=writer == "write_staged")
    st.append(batch(seed=1), batch_id="ok")
    real = getattr(emb, writer)
    calls = {"n": 0}

    def full(table: pa.Table, path: Path) -> int:
        calls["n"] += 1
        if calls["n"] == 2:  # the batch's second file: the first is already in place
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, path)  # type: ignore[no-any-return]

    monkeypatch.setattr(emb, writer, full)
    with pytest.raises(DiskFull, match=r"no space left.*not committed"):
        st.append(batch(seed=2, span=2 * 3600 * 10**9), batch_id="full")
    monkeypatch.setattr(emb, writer, real)
    assert st.select().num_rows == 100
    assert not any(".tmp-" in n for n in files_under(root))
    st.append(batch(seed=2), batch_id="full")  # the same batch, once there is room
    st.close()
    with open_store(root) as r:
        assert r.select().num_rows == 200


def test_disk_full_on_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "s"
    st = open_store(root, write=True)
    st.append(batch(seed=1))
    real = catalog_mod.write_atomic

    def full(path: Path, data: bytes) -> None:
        raise catalog_mod.DiskFull(f"{path}: no space left on device")

    monkeypatch.setattr(catalog_mod, "write_atomic", full)
    with pytest.raises(DiskFull):
        st.append(batch(seed=2))
    monkeypatch.setattr(catalog_mod, "write_atomic", real)
    assert st.select().num_rows == 100
    st.close()
    with open_store(root, write=True) as again:
        assert again.select().num_rows == 100
    data_files = [n for n in files_under(root) if n.endswith((".parquet", ".arrow"))]
    assert data_files and all(n.endswith(".arrow") for n in data_files)
    assert len(data_files) == 1  # the first batch's staged file; no leftovers


def _can_mount_tmpfs() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs root to mount a tiny tmpfs")
def test_real_full_disk(tmp_path: Path) -> None:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {r.stderr.strip()}")
    try:
        root = mnt / "s"
        committed = 0
        with open_store(root, write=True) as st:
            with pytest.raises(DiskFull):
                for k in range(1000):
                    st.append(batch(5000, seed=k, start=T0_NS + k * 600 * 10**9),
                              batch_id=f"b{k}")
                    committed += 5000
            assert committed > 0
            assert st.select(columns=["ts"]).num_rows == committed
        with open_store(root) as st:
            assert st.select(columns=["ts"]).num_rows == committed
    finally:
        # a writer thread may still hold a file there for a moment: fall back to a lazy
        # unmount so no mount outlives the test
        if subprocess.run(["umount", str(mnt)], check=False,
                          capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


def test_reader_sees_files_replaced_by_compaction(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader whose listing predates a compaction whose old files are already gone
    retries with a new listing instead of failing."""
    monkeypatch.setattr(emb, "COMPACT_MIN_FILES", 10**6)
    monkeypatch.setattr(emb, "DELETE_GRACE_S", 0.0)
    root = tmp_path / "s"
    w = open_store(root, write=True)
    for k in range(5):
        w.append(batch(20, seed=k))
    r = open_store(root)
    assert r.select().num_rows == 100  # caches its listing
    w.compact()  # grace 0: the old files are deleted at once
    assert r.select().num_rows == 100
    w.close()
    r.close()


def test_old_captures_are_kept_for_the_retention_after_ingest(tmp_path: Path) -> None:
    root = tmp_path / "s"
    old = T0 - timedelta(days=400)
    with open_store(root, write=True) as st:
        st.append(batch(start=int(old.timestamp()) * 10**9))
    with open_store(root, write=True) as st:  # retention runs at open
        assert st.select().num_rows == 100
        st.append(batch(start=T0_NS))  # newer data does not push the old capture out
        assert st.apply_retention() == {}
        assert st.select().num_rows == 200
        later = datetime.now(UTC) + timedelta(days=8)
        assert st.apply_retention(later) == {"records": 200}
        assert st.select().num_rows == 0
        # the 1-minute aggregates stay for 90 days after they arrived
        assert st.aggregate(RecordFilter(), [], resolution="1m").column(
            "samples")[0].as_py() == 200
        assert st.apply_retention(later + timedelta(days=90))["records_1m"] > 0


def test_store_cli_info_compact_retention(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with open_store(root, write=True) as st:
        for k in range(3):
            st.append(batch(seed=k))
    env = {**os.environ, "FABRICSCOPE_DB": str(root)}
    out = subprocess.run([sys.executable, "-m", "fabricscope", "store", "info", "--json"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["rows"] == 300 and info["staged_rows"] == 300
    out = subprocess.run([sys.executable, "-m", "fabricscope", "store", "info"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0 and "300 records staged" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-m", "fabricscope", "store", "compact"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "sealed 300 staged records" in out.stdout
    with open_store(root) as st:
        assert st.info()["staged_rows"] == 0
    out = subprocess.run([sys.executable, "-m", "fabricscope", "store", "retention",
                          "--retention", "1d", "--now", "2026-11-30T00:00:00Z"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    with open_store(root) as st:
        assert st.info()["retention_s"] == 86400
    out = subprocess.run([sys.executable, "-m", "fabricscope", "store", "info"],
                         capture_output=True, text=True, env={**env, "FABRICSCOPE_DB":
                                                              str(tmp_path / "none")},
                         cwd=ROOT)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "no store at" in out.stderr


def test_files_are_sorted_for_trace(tmp_path: Path) -> None:
    """Records (and their aggregates) are written ordered by inner flow then time, so
    a trace reads one row group of a file instead of all of them."""
    import pyarrow.parquet as pq

    root = tmp_path / "s"
    with open_store(root, write=True) as st:
        st.append(batch(5000, span=3 * 3600 * 10**9))
        st.append(syn.records([{"ts": T0, "inner_src": "2001:db8::1"},
                               {"ts": T0, "inner_src": None},
                               {"ts": T0, "inner_src": "10.0.0.1"}]))
    for ds in ("records", "records_1m"):
        for f in (root / ds).rglob("*.parquet"):
            t = pq.read_table(f)

            def col(name: str, t: pa.Table = t) -> list[object]:
                return (t.column(name).to_pylist() if name in t.column_names
                        else [None] * t.num_rows)  # an all-null column is not written

            keys = [(s is not None, s or b"", d is not None, d or b"", ts) for s, d, ts in
                    zip(col("inner_src"), col("inner_dst"), col("ts"), strict=True)]
            assert keys == sorted(keys), f

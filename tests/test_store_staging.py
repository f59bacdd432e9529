"""The embedded store's staging tier (store/staging.py): records are committed as Arrow
IPC files and sealed into sorted Parquet files and per-minute aggregates later. Whatever
is staged must answer every query as the sealed store does, be counted once, survive a
failed seal, hold back appends when the sealer falls behind, and never be dropped by
retention before it is aggregated."""

from __future__ import annotations

import errno
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from fabricscope.store import DiskFull, RecordFilter, open_store
from fabricscope.store import embedded as emb
from fabricscope.store import staging as stg
from fabricscope.store import synthetic as syn

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9
HOUR = 3600 * 10**9


def batch(n: int, *, seed: int, start: int = T0_NS, span: int = 2 * HOUR) -> pa.Table:
    return syn.synthetic_records(n, start_ns=start, span_ns=span, flows=30, seed=seed)


def answers(st: emb.EmbeddedStore) -> dict[str, object]:
    """Everything a user reads, in a stable order."""
    rows = sorted(st.select().to_pylist(), key=repr)
    by_min = st.aggregate(RecordFilter(), ["minute", "inner_src"], resolution="1m")
    by_min = by_min.sort_by([("minute", "ascending"), ("inner_src", "ascending")])
    raw = st.aggregate(RecordFilter(), ["hour"], resolution="raw")
    # (not the number of aggregate rows: partial aggregates of one minute and flow from
    # different batches stay separate rows until compaction merges them)
    sql = st.sql("SELECT sum(samples) AS s, sum(est_bytes) AS b, min(first_ts) AS f, "
                 "max(last_ts) AS l, count(DISTINCT (ts, inner_src, inner_dst, inner_sport))"
                 " AS k FROM records_1m").to_pylist()
    return {"rows": rows, "1m": by_min.to_pylist(),
            "raw": raw.sort_by("hour").to_pylist(), "sql": sql}


def test_staged_records_answer_as_sealed_ones(tmp_path: Path) -> None:
    """The same queries over staged records (one partial aggregate each), over the sealed
    store, and over a store written without the staging tier."""
    plain = emb.EmbeddedStore(tmp_path / "plain", write=True, staging=False)
    st = emb.EmbeddedStore(tmp_path / "s", write=True)
    for k in range(3):
        for s in (plain, st):
            s.append(batch(400, seed=k, start=T0_NS + k * HOUR))
    assert st.staged_rows() == 1200 and plain.staged_rows() == 0
    staged = answers(st)
    assert len(staged["rows"]) == 1200  # type: ignore[arg-type]
    assert st.seal() == 1200
    assert st.staged_rows() == 0
    sealed = answers(st)
    assert staged == sealed
    assert answers(plain) == sealed
    st.close()
    plain.close()


def test_staged_and_sealed_records_are_counted_once(tmp_path: Path) -> None:
    with open_store(tmp_path / "s", write=True) as st:
        st.append(batch(300, seed=1))
        st.seal()
        st.append(batch(200, seed=2))  # same hours and minutes: both tiers hold them
        info = st.info()
        assert info["rows"] == 500 and info["staged_rows"] == 200
        r = st.sql("SELECT (SELECT count(*) FROM records) AS n, "
                   "(SELECT sum(samples) FROM records_1m) AS a").to_pylist()[0]
        assert r == {"n": 500, "a": 500}
    with open_store(tmp_path / "s") as reader:  # another reader: the same
        agg = reader.aggregate(RecordFilter(), [], resolution="1m")
        assert agg.column("samples").to_pylist() == [500]


def test_the_sealer_seals_on_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stg, "SEAL_AFTER_S", 0.0)
    monkeypatch.setattr(stg, "IDLE_WAIT_S", 0.05)
    root = tmp_path / "s"
    with open_store(root, write=True) as st:
        st.append(batch(250, seed=3))
        deadline = time.monotonic() + 60
        while st.info()["staged_rows"] and time.monotonic() < deadline:
            time.sleep(0.05)
        info = st.info()
        assert info["staged_rows"] == 0 and info["rows"] == 250
        assert info["datasets"]["records_1m"]["rows"] > 0
    assert list((root / "records").rglob("*-s*.parquet"))


Job = tuple[str, float, float, frozenset[str]]  # thread, start, end, staged files


def record_jobs(monkeypatch: pytest.MonkeyPatch) -> list[Job]:
    """Seal jobs of 100 records, each noted as it ends. A job's Parquet writes wait until
    a second job has started beside it (for at most 5 s: if none ever does, the test's
    overlap check fails), so that jobs overlap whenever the sealer lets them, without
    relying on timing."""
    monkeypatch.setattr(stg, "SEAL_ROWS", 100)
    real_job = emb.EmbeddedStore._seal_job
    real_write = emb.write_parquet
    jobs: list[Job] = []
    lock = threading.Lock()
    running = [0]
    two = threading.Event()

    def job(self: emb.EmbeddedStore, files: list) -> None:  # type: ignore[type-arg]
        with lock:
            running[0] += 1
            if running[0] >= 2:
                two.set()
        t0 = time.monotonic()
        try:
            real_job(self, files)
        finally:
            with lock:
                running[0] -= 1
        jobs.append((threading.current_thread().name, t0, time.monotonic(),
                     frozenset(f.path for f in files)))

    def held(table: pa.Table, path: Path) -> None:
        if running[0]:  # (a seal job's write, not the plain store's append)
            two.wait(5.0)
        real_write(table, path)

    monkeypatch.setattr(emb.EmbeddedStore, "_seal_job", job)
    monkeypatch.setattr(emb, "write_parquet", held)
    return jobs


def check_jobs(jobs: list[Job], threads: set[str], files: int) -> None:
    """The jobs ran on ``threads``, two of them at once, and each of the ``files``
    staged files was in exactly one job."""
    assert {name for name, *_ in jobs} == threads
    assert any(a[1] < b[2] and b[1] < a[2] for a in jobs for b in jobs
               if a[0] != b[0]), "no two jobs overlapped"
    paths = [p for *_, ps in jobs for p in ps]
    assert len(paths) == len(set(paths)) == files


def staged_pair(tmp_path: Path) -> tuple[emb.EmbeddedStore, emb.EmbeddedStore]:
    """A store without the tier and one with it, given the same six batches."""
    plain = emb.EmbeddedStore(tmp_path / "plain", write=True, staging=False)
    st = emb.EmbeddedStore(tmp_path / "s", write=True)
    for s in (plain, st):  # (the staged appends one right after the other)
        for k in range(6):
            s.append(batch(100, seed=k, span=HOUR // 2))
    return plain, st


def test_a_drain_seals_beside_the_sealer_on_disjoint_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``seal()`` runs jobs on the caller's thread and the sealer's at once; no staged
    file is in two jobs, the sealed files' names never collide, and the answers are
    those of a store written without the tier."""
    jobs = record_jobs(monkeypatch)
    monkeypatch.setattr(stg, "QUIET_S", 3600.0)  # the sealer waits for the drain
    monkeypatch.setattr(stg, "SEAL_AFTER_S", 3600.0)
    monkeypatch.setattr(stg, "SEAL_THREADS", 1)
    plain, st = staged_pair(tmp_path)
    assert st.staged_rows() == 600 and not jobs
    assert st.seal() == 600  # (the sealer's jobs count too)
    assert st.staged_rows() == 0
    check_jobs(jobs, {threading.current_thread().name, "store-sealer"}, 6)
    assert answers(st) == answers(plain)
    st.close()
    plain.close()


def test_sealer_threads_seal_side_by_side(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With two sealer threads (``SEAL_THREADS``, half the processors), staged records
    are sealed in the background on both at once."""
    jobs = record_jobs(monkeypatch)
    monkeypatch.setattr(stg, "SEAL_AFTER_S", 0.0)
    monkeypatch.setattr(stg, "SEAL_THREADS", 2)
    plain, st = staged_pair(tmp_path)
    deadline = time.monotonic() + 60
    while (st.staged_rows() or len(jobs) < 6) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert st.staged_rows() == 0
    check_jobs(jobs, {"store-sealer", "store-sealer-2"}, 6)
    assert answers(st) == answers(plain)
    st.close()
    plain.close()


@pytest.mark.parametrize(("env", "expected"), [("3", 3), ("1", 1), ("0", None),
                                               ("many", None), ("", None)])
def test_seal_threads_setting(monkeypatch: pytest.MonkeyPatch, env: str,
                              expected: int | None) -> None:
    monkeypatch.setenv("FABRICSCOPE_SEAL_THREADS", env)
    monkeypatch.setattr(stg, "_memory_bytes", lambda: 64 << 30)
    monkeypatch.setattr(stg.os, "cpu_count", lambda: 12)
    assert stg._seal_threads() == (expected or 6)  # default: half the processors
    monkeypatch.setattr(stg.os, "cpu_count", lambda: 64)
    assert stg._seal_threads() == (expected or 8)  # at most 8
    monkeypatch.setattr(stg, "_memory_bytes", lambda: 5 << 30)
    assert stg._seal_threads() == (expected or 2)  # one per 2 GiB of memory
    monkeypatch.setattr(stg, "_memory_bytes", lambda: 1 << 30)
    assert stg._seal_threads() == (expected or 1)  # at least one
    monkeypatch.setattr(stg.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(stg, "_memory_bytes", lambda: 24 << 30)
    assert stg._seal_threads() == (expected or 1)


def test_appends_wait_for_a_sealer_that_falls_behind(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emb, "STAGE_MAX_ROWS", 250)
    monkeypatch.setattr(stg, "SEAL_ROWS", 100)
    monkeypatch.setattr(stg, "IDLE_WAIT_S", 0.05)
    real = emb.write_parquet

    def slow(table: pa.Table, path: Path) -> None:
        time.sleep(0.1)
        real(table, path)

    monkeypatch.setattr(emb, "write_parquet", slow)
    with open_store(tmp_path / "s", write=True) as st:
        most = 0
        for k in range(8):
            st.append(batch(100, seed=k, span=HOUR // 2))
            most = max(most, st.staged_rows())  # type: ignore[attr-defined]
        assert most <= 250  # never more than the limit once an append returns
        assert st.info()["rows"] == 800


def test_a_failed_seal_keeps_the_staged_records(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "s"
    st = emb.EmbeddedStore(root, write=True)
    st.append(batch(300, seed=4))
    real = emb.write_parquet

    def full(table: pa.Table, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(emb, "write_parquet", full)
    with pytest.raises(DiskFull, match="staged records are intact"):
        st.seal()
    assert st.staged_rows() == 300 and st.select().num_rows == 300
    assert not [p for p in root.rglob("*") if p.name.startswith(".tmp-")]
    assert not list((root / "records").rglob("*.parquet"))  # nothing half-sealed
    monkeypatch.setattr(emb, "write_parquet", real)
    assert st.seal() == 300
    assert st.select().num_rows == 300 and st.staged_rows() == 0
    st.close()


def test_a_sealer_that_cannot_seal_stops_the_appends(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk while sealing: appends that would grow the tier past its limit fail
    with the sealer's error (no hang); everything committed stays readable."""
    monkeypatch.setattr(emb, "STAGE_MAX_ROWS", 150)
    monkeypatch.setattr(stg, "SEAL_ROWS", 100)
    monkeypatch.setattr(stg, "IDLE_WAIT_S", 0.05)

    def full(table: pa.Table, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(emb, "write_parquet", full)
    st = emb.EmbeddedStore(tmp_path / "s", write=True)
    result: list[BaseException | None] = []

    def go() -> None:
        try:
            for k in range(4):
                st.append(batch(100, seed=k))
            result.append(None)
        except BaseException as exc:
            result.append(exc)

    t = threading.Thread(target=go)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive()
    assert isinstance(result[0], DiskFull), result
    assert "no space left" in str(result[0])
    assert st.select().num_rows == st.info()["rows"] >= 200
    st.close()


def test_a_reader_lists_again_when_staged_files_were_sealed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emb, "DELETE_GRACE_S", 0.0)
    root = tmp_path / "s"
    w = emb.EmbeddedStore(root, write=True)
    w.append(batch(200, seed=5))
    r = emb.EmbeddedStore(root)
    assert r.select().num_rows == 200  # staged: mapped and registered
    assert len(r._staged_views) == 1
    w.seal()  # the staged files are gone at once (no grace period here)
    assert r.select().num_rows == 200  # the sealed files
    assert r._staged_views == {}  # nothing of the removed files stays mapped
    w.append(batch(100, seed=6))
    old = r.catalog.snapshot()  # lists the new staged file...
    assert any(stg.is_staged(f) for f in old.files.values())
    w.seal()  # ...which is gone before the reader maps it
    with pytest.raises(emb._Vanished):
        r._source("records", old.of("records"))
    assert r.select().num_rows == 300  # listed again
    w.close()
    r.close()


def test_periodic_retention_waits_for_sealing(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Old staged records are not dropped before their aggregates exist: the writer's
    periodic pass skips their partitions; once sealed, they go and the aggregates stay."""
    now = T0 + timedelta(days=30)
    arrived = T0_NS
    monkeypatch.setattr(emb, "_now_ns", lambda: arrived)
    st = emb.EmbeddedStore(tmp_path / "s", write=True)
    st.append(batch(100, seed=6))
    assert st._apply_retention(now) == {}
    assert st.select().num_rows == 100
    dropped = st.apply_retention(now)  # seals first
    assert dropped["records"] == 100
    assert st.select().num_rows == 0
    agg = st.aggregate(RecordFilter(), [], resolution="1m")
    assert agg.column("samples").to_pylist() == [100]
    st.close()


def test_staged_files_with_plain_and_dictionary_strings_read_as_one(tmp_path: Path) -> None:
    """A batch whose string column had too many distinct values for a dictionary keeps
    it plain; staged files of both kinds still read as one table."""
    dict_t = pa.table({"kind": pa.array(["flow", "flow"]).dictionary_encode(),
                       "n": pa.array([1, 2], pa.int64())})
    plain_t = pa.table({"kind": pa.array(["discard"]), "n": pa.array([3], pa.int64())})
    paths = [tmp_path / "a.arrow", tmp_path / "b.arrow"]
    for t, p in zip((dict_t, plain_t), paths, strict=True):
        stg.write_staged(t, p)
    t = stg.read_staged(paths)
    assert t.column("kind").to_pylist() == ["flow", "flow", "discard"]
    assert t.column("n").to_pylist() == [1, 2, 3]
    (tmp_path / "c.arrow").write_bytes(b"not arrow" * 10)
    with pytest.raises(stg.StagedFileError, match=r"c\.arrow: not an Arrow IPC file"):
        stg.read_staged([tmp_path / "c.arrow"])

"""One writer and many readers at once; kill -9 in the middle of writing.

The writer runs in a subprocess, appending numbered batches (batch k: ``size(k)`` records
whose ``sample_seq`` is k, spread over three hour partitions, plus one counter poll),
sealing its staged records and compacting as it goes (small thresholds) so files are
replaced under the readers' feet.
Readers must always see a prefix of whole batches; after a SIGKILL at a random moment the
store reopens with whole batches only and no leftover files.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from fabricscope.store import open_store

WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import pyarrow as pa
    from fabricscope.store import open_store
    from fabricscope.store import embedded as emb
    from fabricscope.store import staging as stg
    from fabricscope.store import synthetic as syn

    emb.COMPACT_MIN_FILES = 4
    emb.DELETE_GRACE_S = 0.2
    stg.SEAL_ROWS = 150  # the sealer works all the time, on a few batches at once
    stg.SEAL_AFTER_S = 0.0
    emb.STAGE_MAX_ROWS = 400  # and appends wait for it now and then
    root, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    T0 = 1_795_600_000 * 10**9 // 3_600_000_000_000 * 3_600_000_000_000

    def size(k):
        return 20 + (k * 37) % 50

    st = open_store(root, write=True)
    print("ready", flush=True)
    k = start
    while count < 0 or k < start + count:
        n = size(k)
        t = syn.synthetic_records(n, start_ns=T0 + (k % 3) * 3_600 * 10**9,
                                  span_ns=3_000 * 10**9, flows=10, seed=k)
        t = t.set_column(t.schema.get_field_index("sample_seq"), "sample_seq",
                         pa.array(np.full(n, k, np.uint32)))
        c = syn.counters([{"ts": T0 + k * 10**9, "agent": "10.0.0.1", "ifindex": 1,
                           "sample_seq": k, "in_octets": k * 1000}])
        st.append(t, c, batch_id=f"b{k}")
        print(k, flush=True)
        k += 1
    st.close()
""")


def size(k: int) -> int:
    return 20 + (k * 37) % 50


def check_whole_batches(seqs: pa.Array) -> list[int]:
    """Every batch present is complete; returns the sorted batch numbers."""
    counts = Counter(seqs.to_pylist())
    for k, n in counts.items():
        assert n == size(k), f"batch {k}: {n} of {size(k)} records"
    return sorted(counts)


def start_writer(root: Path, start: int, count: int) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(start), str(count)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline().strip()
    assert line == "ready", (line, p.stderr.read() if p.stderr else "")
    return p


def test_concurrent_writer_and_readers(tmp_path: Path) -> None:
    root = tmp_path / "s"
    with open_store(root, write=True):
        pass
    total = 60
    p = start_writer(root, 0, total)
    errors: list[BaseException] = []
    seen: list[int] = []

    def reader() -> None:
        try:
            with open_store(root) as st:
                last = -1
                while True:
                    done = p.poll() is not None
                    ks = check_whole_batches(st.select(columns=["sample_seq"])
                                             .column("sample_seq").combine_chunks())
                    assert ks == list(range(len(ks))), "not a prefix of the batches"
                    assert len(ks) - 1 >= last, "a reader went back in time"
                    last = len(ks) - 1
                    # one statement, one snapshot: raw rows and aggregates agree
                    r = st.sql("SELECT (SELECT count(*) FROM records) AS n, "
                               "(SELECT coalesce(sum(samples), 0) FROM records_1m) AS a, "
                               "(SELECT count(*) FROM counters) AS c").to_pylist()[0]
                    assert r["n"] == r["a"]
                    assert r["c"] >= len(ks)
                    seen.append(len(ks))
                    if done:
                        break
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    # a reader in another process too
    other = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from fabricscope.store import open_store
            with open_store({str(root)!r}) as st:
                for _ in range(20):
                    n = st.sql("SELECT count(DISTINCT sample_seq) AS n FROM records"
                               ).column("n")[0].as_py()
                    time.sleep(0.05)
            print("ok")
        """)], capture_output=True, text=True, timeout=300)
    assert other.returncode == 0, other.stderr
    p.wait(timeout=300)
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[0]
    assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    assert len(seen) > 3
    with open_store(root) as st:
        ks = check_whole_batches(st.select(columns=["sample_seq"]).column("sample_seq")
                                 .combine_chunks())
        assert ks == list(range(total))
        assert st.counters().num_rows == total


def test_kill_9_mid_ingest_loses_at_most_the_batch_in_flight(tmp_path: Path) -> None:
    root = tmp_path / "s"
    rng = random.Random(1234)
    next_k = 0
    kills = 0
    for _round in range(8):
        p = start_writer(root, next_k, -1)
        assert p.stdout is not None
        # let it commit a few batches (and compact), then kill it at a random moment
        printed = [p.stdout.readline() for _ in range(rng.randint(1, 6))]
        assert all(x.strip().isdigit() for x in printed)
        time.sleep(rng.uniform(0.0, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        kills += 1
        with open_store(root) as reader:  # readers before any recovery
            check_whole_batches(reader.select(columns=["sample_seq"]).column("sample_seq")
                                .combine_chunks())
        with open_store(root, write=True) as st:  # recovery: leftovers swept
            ks = check_whole_batches(st.select(columns=["sample_seq"]).column("sample_seq")
                                     .combine_chunks())
            assert ks == list(range(len(ks)))  # committed in order: a prefix
            assert len(ks) >= next_k  # nothing committed was lost
            known = {root / f for f in st.catalog.snapshot().files}  # type: ignore[attr-defined]
            on_disk = set(root.rglob("*.parquet")) | set(root.rglob("*.arrow"))
            assert on_disk == known  # no half-written or uncommitted file left
            assert not [q for q in root.rglob("*") if q.name.startswith(".tmp-")]
            r = st.sql("SELECT (SELECT count(*) FROM records) AS n, "
                       "(SELECT coalesce(sum(samples), 0) FROM records_1m) AS a"
                       ).to_pylist()[0]
            assert r["n"] == r["a"]
            next_k = len(ks)
    assert kills == 8 and next_k > 8


@pytest.mark.parametrize("n", [3])
def test_writer_retry_after_kill_is_idempotent(tmp_path: Path, n: int) -> None:
    """A writer that replays batches after a crash (same batch ids) adds nothing twice."""
    root = tmp_path / "s"
    p = start_writer(root, 0, n)
    p.wait(timeout=120)
    p = start_writer(root, 0, n + 2)  # replays 0..n-1, then two new ones
    p.wait(timeout=120)
    with open_store(root) as st:
        ks = check_whole_batches(st.select(columns=["sample_seq"]).column("sample_seq")
                                 .combine_chunks())
        assert ks == list(range(n + 2))


def test_one_store_shared_by_threads(tmp_path: Path) -> None:
    """The API may hand one open store to several threads: calls take turns."""
    from fabricscope.store import synthetic as syn

    root = tmp_path / "s"
    with open_store(root, write=True) as w:
        for k in range(4):
            w.append(syn.synthetic_records(500, start_ns=1_795_600_000 * 10**9,
                                           span_ns=3_600 * 10**9, flows=10, seed=k))
        shared = open_store(root)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(15):
                    assert shared.select(columns=["ts"]).num_rows % 500 == 0
                    shared.aggregate(None, ["agent"], resolution="raw")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for k in range(4, 8):  # and the writer goes on meanwhile
            w.append(syn.synthetic_records(500, start_ns=1_795_600_000 * 10**9,
                                           span_ns=3_600 * 10**9, flows=10, seed=k))
        for t in threads:
            t.join(timeout=120)
        shared.close()
    assert not errors, errors[0]

"""The embedded writer's CPU per step (store/costs.py): each step counted on the thread
that ran it, and every step of staging, sealing and compacting accounted for."""

from __future__ import annotations

import mmap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fabricscope.store import embedded as emb
from fabricscope.store import synthetic as syn
from fabricscope.store.costs import SEAL_STEPS, StepCosts

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9
HOUR = 3600 * 10**9


def burn(seconds: float) -> None:
    """Busy on this thread for ``seconds`` of its own CPU time, after touching 40 MB of
    fresh memory in 4 KiB pages (10,240 page faults)."""
    with mmap.mmap(-1, 40 << 20) as fresh:
        fresh.madvise(mmap.MADV_NOHUGEPAGE)
        for off in range(0, 40 << 20, mmap.PAGESIZE):
            fresh[off] = 1
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_step_counts_the_cpu_of_its_own_thread() -> None:
    """Work handed to another thread is counted under its own step, not under the step
    the caller waits in (a process-wide clock would count it under both)."""
    costs = StepCosts()
    with costs.step("sort"):  # the caller only waits here
        t = threading.Thread(target=costs.timed("encode_records", burn), args=(0.2,))
        t.start()
        t.join()
    s = costs.snapshot()
    assert s["cpu_s"]["encode_records"] >= 0.19
    assert s["cpu_s"]["sort"] < 0.05
    assert s["faults"]["encode_records"] >= 5_000  # (fewer if the pages were reused)
    assert s["faults"]["sort"] < 1_000


def test_per_record_figures_divide_by_the_rows_each_step_works_for() -> None:
    costs = StepCosts()
    costs.add("stage_write", 0.2)
    costs.add("sort", 0.3)
    costs.add("encode_records", 0.6)
    costs.add("compact", 0.1)
    costs.count("staged", 1_000_000)
    costs.count("sealed", 500_000)
    costs.add("gather", 0.0, faults=100_000)
    costs.add("stage_write", 0.0, faults=50_000)
    s = costs.snapshot()
    assert s["faults_per_record"] == pytest.approx(0.05 + 0.2)
    assert s["us_per_record"] == {"stage_write": 0.2, "sort": 0.6, "encode_records": 1.2,
                                  "compact": 0.2, "read": 0.0, "gather": 0.0,
                                  "aggregate": 0.0, "encode_1m": 0.0, "counters": 0.0}
    assert s["seal_us_per_record"] == pytest.approx(1.8)
    assert s["us_per_record_total"] == pytest.approx(2.2)
    assert StepCosts().snapshot()["us_per_record_total"] is None  # nothing sealed yet


def test_staging_sealing_and_compaction_are_all_counted(tmp_path: Path) -> None:
    st = emb.EmbeddedStore(tmp_path / "s", write=True)
    for k in range(3):  # three staged files per hour, sealed one by one
        st.append(syn.synthetic_records(20_000, start_ns=T0_NS, span_ns=HOUR, seed=k))
        assert st.seal() == 20_000
    after_seal = st.costs.snapshot()
    st.compact()  # three small files in each partition become one
    s = st.costs.snapshot()
    st.close()
    assert after_seal["rows"] == {"staged": 60_000, "sealed": 60_000}
    for step in ("stage_write", *SEAL_STEPS):
        assert after_seal["cpu_s"][step] > 0, step
    assert after_seal["cpu_s"]["counters"] == 0  # no counter polls were appended
    assert after_seal["cpu_s"]["compact"] == 0
    assert s["cpu_s"]["compact"] > 0
    assert s["us_per_record_total"] == pytest.approx(sum(s["us_per_record"].values()),
                                                     abs=0.01)


def test_without_the_tier_appends_sort_and_encode(tmp_path: Path) -> None:
    st = emb.EmbeddedStore(tmp_path / "s", write=True, staging=False)
    st.append(syn.synthetic_records(20_000, start_ns=T0_NS, span_ns=HOUR, seed=1),
              syn.counters([{"ts": T0, "agent": "10.0.0.1", "ifindex": 1,
                             "in_octets": 5}]))
    s = st.costs.snapshot()
    st.close()
    assert s["rows"] == {"staged": 0, "sealed": 20_000}
    assert s["cpu_s"]["stage_write"] == 0 and s["cpu_s"]["read"] == 0
    for step in ("sort", "gather", "aggregate", "encode_records", "encode_1m", "counters"):
        assert s["cpu_s"][step] > 0, step

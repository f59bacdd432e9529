"""CPU seconds of the embedded writer's steps, each measured on the thread that ran it.

A writer's work per record happens on several threads at once (the appending thread, the
sealer's, the store's Parquet pool), so the process's CPU time says how much it did, not
where. Each step here is measured on its own thread: the thread's CPU clock
(``time.thread_time``: user and system time, not time spent waiting; getrusage's thread
times are split by clock ticks and miss short steps) and its minor page faults
(``getrusage(RUSAGE_THREAD)``: on a virtual machine a fault of fresh memory can cost
several microseconds), summed per step:

=================  ===============================================================
``stage_write``    writing staged records (Arrow IPC) at commit
``read``           mapping the staged files a seal job takes
``sort``           the trace order of a job's records (``rollup.trace_sort``)
``gather``         the records put into that order (``Table.take``)
``aggregate``      their ``records_1m`` rows (``rollup.records_rollup``)
``encode_records`` Parquet files of the sorted records (the pool)
``encode_1m``      Parquet files of the aggregates (the pool)
``counters``       counter polls and their aggregates, written at commit
``compact``        merging small files (reading, sorting, aggregating, encoding)
=================  ===============================================================

``rows`` counts the records staged (``staged``) and those the sealing steps worked on
(``sealed``: sealed, or sorted inside an append when the tier is off; a job that failed
counts too, its CPU was spent), so the CPU per record of each step is one division away:
the benchmark prints it, and from it how many cores the store needs to keep up with a
given rate.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

STEPS = ("stage_write", "read", "sort", "gather", "aggregate", "encode_records",
         "encode_1m", "counters", "compact")
SEAL_STEPS = ("read", "sort", "gather", "aggregate", "encode_records", "encode_1m")


class StepCosts:
    """Thread-safe sums of CPU seconds per step, and of rows staged and sealed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cpu = dict.fromkeys(STEPS, 0.0)
        self._faults = dict.fromkeys(STEPS, 0)
        self._rows = {"staged": 0, "sealed": 0}

    def add(self, step: str, seconds: float, faults: int = 0) -> None:
        with self._lock:
            self._cpu[step] = self._cpu.get(step, 0.0) + seconds
            self._faults[step] = self._faults.get(step, 0) + faults

    def count(self, what: str, rows: int) -> None:
        with self._lock:
            self._rows[what] = self._rows.get(what, 0) + rows

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        f0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        t0 = time.thread_time()
        try:
            yield
        finally:
            t1 = time.thread_time()
            f1 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            self.add(name, t1 - t0, f1 - f0)

    def timed(self, name: str, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` with its CPU time on the calling thread added to ``name`` (for work
        handed to a pool)."""
        def run(*args: Any) -> T:
            with self.step(name):
                return fn(*args)
        return run

    def snapshot(self) -> dict[str, Any]:
        """``{"cpu_s": {step: s}, "faults": {step: n}, "rows": {"staged": n, "sealed":
        n}, "us_per_record": {step: µs}, "seal_us_per_record": µs, "us_per_record_total":
        µs, "faults_per_record": n}``. A step's µs per record divides by the rows it
        works for: ``stage_write`` by the staged rows, every other step by the sealed
        rows (``counters`` and ``compact`` too: their cost per record the store keeps).
        The total adds them all up: the CPU the store spends on a record, end to end;
        ``faults_per_record`` likewise for the page faults."""
        with self._lock:
            cpu = dict(self._cpu)
            faults = dict(self._faults)
            rows = dict(self._rows)
        per: dict[str, float] = {}
        for step, s in cpu.items():
            n = rows["staged"] if step == "stage_write" else rows["sealed"]
            if n:
                per[step] = s / n * 1e6
        seal = sum(per.get(s, 0.0) for s in SEAL_STEPS)
        fpr = (faults["stage_write"] / rows["staged"] if rows["staged"] else 0.0) + \
            sum(v for k, v in faults.items() if k != "stage_write") / max(1, rows["sealed"])
        return {"cpu_s": {k: round(v, 4) for k, v in cpu.items()}, "faults": faults,
                "rows": rows, "faults_per_record": round(fpr, 4),
                "us_per_record": {k: round(v, 3) for k, v in per.items()},
                "seal_us_per_record": round(seal, 3) if rows["sealed"] else None,
                "us_per_record_total": round(sum(per.values()), 3) if rows["sealed"]
                else None}


class CostsCollector:
    """A prometheus_client collector of a writer's step costs, read at every scrape
    (``collect --db ... --metrics``): ``fabricscope_store_writer_cpu_seconds_total`` and
    ``..._page_faults_total`` by ``step``, ``..._records_total`` by ``stage``
    (``staged``, ``sealed``), and ``fabricscope_store_staged_records``, the records
    waiting to be sealed."""

    def __init__(self, costs: StepCosts, staged: Callable[[], int] | None = None) -> None:
        self.costs = costs
        self.staged = staged

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.costs.snapshot()
        p = "fabricscope_store_writer_"
        cpu = CounterMetricFamily(p + "cpu_seconds", "CPU time of the store writer's "
                                  "steps, each on its own thread", labels=["step"])
        faults = CounterMetricFamily(p + "page_faults", "minor page faults of the store "
                                     "writer's steps", labels=["step"])
        for step in STEPS:
            cpu.add_metric([step], s["cpu_s"][step])
            faults.add_metric([step], s["faults"][step])
        rows = CounterMetricFamily(p + "records", "records the store writer staged and "
                                   "sealed", labels=["stage"])
        for stage, n in s["rows"].items():
            rows.add_metric([stage], n)
        yield from (cpu, faults, rows)
        if self.staged is not None:
            yield GaugeMetricFamily("fabricscope_store_staged_records",
                                    "records committed and not sealed yet",
                                    value=self.staged())

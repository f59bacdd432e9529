"""bench/sflow_parts.py runs at a small size and accounts for every part of the sFlow
decoder's time: the parts and the rest add up to the whole call."""

from __future__ import annotations

from benchrun import run_bench


def test_sflow_parts_bench_small() -> None:
    out = run_bench("sflow_parts.py", "--datagrams", "10000", "--passes", "1")
    assert out["datagrams"] == 10000 and out["flow_samples"] == 70000
    ns = out["ns_per_sample"]
    parts = ("walk", "columns", "accounting", "batch", "counters")
    for part in parts:
        assert ns[part] > 0, part
    assert ns["other"] >= -0.5  # nothing counted twice (the counters batch's own finish)
    assert abs(sum(ns[p] for p in parts) + ns["other"] - ns["total"]) < 0.5
    assert out["samples_per_cpu_s"] > 0

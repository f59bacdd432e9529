"""bench/sflow_decode.py runs at a small size: every path decodes every flow and counter
sample of the generated file, and the two-pass paths report both passes."""

from __future__ import annotations

from benchrun import run_bench


def test_sflow_decode_bench_small() -> None:
    out = run_bench("sflow_decode.py", "--datagrams", "3000", "--repeat", "1", timeout=900)
    assert out["input"] == {**out["input"], "datagrams": 3000, "flow_samples": 21000,
                            "counter_samples": 300}
    for mode in ("payloads", "file", "file-tuned", "process", "process-arrow"):
        r = out[mode]
        assert r["flow_samples"] == 21000, mode
        assert r["samples_per_s_cpu"] > 0 and r["peak_rss_mb"] > 0, mode
    for mode in ("payloads", "file", "file-tuned"):
        assert out[mode]["counter_samples"] == 300, mode
        assert out[mode]["first_pass_cpu_s"] > 0, mode

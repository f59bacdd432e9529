"""bench/decode_parts.py runs at a small size on a capture it generates and accounts for
every part of the in-process decode time."""

from __future__ import annotations

from benchrun import run_bench


def test_decode_parts_bench_small() -> None:
    out = run_bench("decode_parts.py", "--frames", "20000", "--batch-frames", "4096",
                    "--passes", "1")
    assert out["frames"] == 20000 and out["batch_frames"] == 4096
    ns = out["ns_per_frame"]
    for part in ("read", "walk", "walk+pack", "arrow"):
        assert ns[part] > 0, part
    assert abs(ns["pack"] - max(ns["walk+pack"] - ns["walk"], 0.0)) < 0.2
    assert out["sum_ns_per_frame"] > ns["walk+pack"]
    assert out["frames_per_cpu_s_from_sum"] > 0

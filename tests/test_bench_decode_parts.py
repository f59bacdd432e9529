"""bench/decode_parts.py runs at a small size on a capture it generates and accounts for
every part of the in-process decode time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_decode_parts_bench_small() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "decode_parts.py"), "--frames", "20000",
         "--batch-frames", "4096", "--passes", "1", "--json"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["frames"] == 20000 and out["batch_frames"] == 4096
    ns = out["ns_per_frame"]
    for part in ("read", "walk", "walk+pack", "arrow"):
        assert ns[part] > 0, part
    assert abs(ns["pack"] - max(ns["walk+pack"] - ns["walk"], 0.0)) < 0.2
    assert out["sum_ns_per_frame"] > ns["walk+pack"]
    assert out["frames_per_cpu_s_from_sum"] > 0

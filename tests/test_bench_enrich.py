"""bench/enrich.py runs at a small size, checks its answers against the scalar lookups and
reports a positive enrichment rate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_enrich_bench_small() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "enrich.py"), "--records", "20000",
         "--batch", "5000", "--hosts", "40", "--tenants", "8", "--endpoints", "400",
         "--check", "200", "--json"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["records"] == 20000
    assert out["check"]["rows"] >= 200 and out["check"]["mismatches"] == 0
    assert out["inventory"]["epochs_crossed"] == out["inventory"]["epochs"] == 10
    for group in ("all", "hosts", "endpoints", "networks", "interfaces"):
        assert out["groups"][group]["records_per_cpu_s"] > 0, group
    assert out["hit_rate"]["src_endpoint"] > 0.5

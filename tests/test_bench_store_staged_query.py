"""bench/store_staged_query.py runs at a small size: staged, then sealed, the same
answers, and the staged run really had its records staged."""

from __future__ import annotations

from pathlib import Path

from benchrun import run_bench


def test_store_staged_query_bench_small(tmp_path: Path) -> None:
    out = run_bench("store_staged_query.py", "--records", "5000", "--repeat", "1",
                    "--dir", str(tmp_path))
    staged, sealed = out["staged"], out["sealed"]
    assert staged["staged_records"] == 5000 and sealed["staged_records"] == 0
    assert staged["flow_rows"] == sealed["flow_rows"] > 0
    assert staged["top_talkers_groups"] == sealed["top_talkers_groups"] > 0
    assert staged["flow_seconds"] > 0 and sealed["top_talkers_1m_seconds"] > 0

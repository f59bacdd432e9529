"""bench/store_ingest.py runs at a small size and reports each store's committed and
sealed rates, the end-to-end split with and without the staging tier, the drain, and
the CPU per record of decoding and of each store step."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchrun import run_bench


def test_store_ingest_bench_small(tmp_path: Path) -> None:
    out = run_bench("store_ingest.py", "--records", "4000", "--batch", "1000",
                    "--pcap-frames", "3000", "--no-chdb", "--dir", str(tmp_path))
    for name in ("embedded", "embedded_unstaged"):
        r = out[name]
        assert r["records"] == 5000  # 4,000 and the warm-up batch
        assert r["records_per_s"] > 0 and r["sealed_records_per_s"] > 0
        assert r["records_1m_rows"] > 0  # sealed by the end: aggregates exist
    e = out["end_to_end"]
    assert e["frames"] == 3000
    for key in ("decode_into_store_records_per_s", "unstaged_decode_into_store_records_per_s",
                "sealed_records_per_s"):
        assert e[key] > 0, key
    assert 0 <= e["store_share_of_ingest_time"] <= 1
    assert e["sealed_records_per_s"] <= e["decode_into_store_records_per_s"]
    assert e["drain_records"] == e["drain_staged"] == 3000  # all staged, then all sealed
    assert e["drain_records_per_s"] > 0
    # the CPU budget: every record staged and sealed, its steps' CPU per record, and the
    # ceiling they give on this machine's cores
    c = e["store_cpu"]
    assert c["rows"] == {"staged": 3000, "sealed": 3000}
    assert c["us_per_record"]["encode_records"] > 0 and c["us_per_record"]["sort"] > 0
    assert e["store_cpu_us_per_record"] == c["us_per_record_total"] > 0
    assert e["decode_cpu_us_per_record"] > 0
    per = e["decode_cpu_us_per_record"] + e["store_cpu_us_per_record"]
    # (the figures printed are rounded to 0.001 µs: the ceiling is computed before that)
    assert e["sustained_ceiling_records_per_s"] == pytest.approx(out["cpus"] / per * 1e6,
                                                                 rel=0.01)
    assert e["cores_at_5m_per_s"] == pytest.approx(per * 5, abs=0.1)

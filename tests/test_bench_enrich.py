"""bench/enrich.py runs at a small size, checks its answers against the scalar lookups and
reports a positive enrichment rate."""

from __future__ import annotations

from benchrun import run_bench


def test_enrich_bench_small() -> None:
    out = run_bench("enrich.py", "--records", "20000", "--batch", "5000", "--hosts", "40",
                    "--tenants", "8", "--endpoints", "400", "--check", "200", timeout=120)
    assert out["records"] == 20000
    assert out["check"]["rows"] >= 200 and out["check"]["mismatches"] == 0
    assert out["inventory"]["epochs_crossed"] == out["inventory"]["epochs"] == 10
    for group in ("all", "hosts", "endpoints", "networks", "interfaces"):
        assert out["groups"][group]["records_per_cpu_s"] > 0, group
    assert out["hit_rate"]["src_endpoint"] > 0.5

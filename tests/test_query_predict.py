"""predict: chain rules + equal-cost underlay paths, on the example fabric inventory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fabricscope.errors import UsageError
from fabricscope.inventory.fileformat import read_file
from fabricscope.query._predict import PredictQuery, compare, predict

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fabric.yaml"


@pytest.fixture(scope="module")
def inv():  # type: ignore[no-untyped-def]
    return read_file(EXAMPLE)


def at(hh: int, mm: int) -> datetime:
    return datetime(2026, 11, 25, hh, mm, tzinfo=UTC)


def test_https_from_gateway_goes_through_the_firewall_and_ecmp_paths(inv) -> None:  # type: ignore[no-untyped-def]
    # before the migration web-1 is on hv-1 (leaf-1): hv-4 -> hv-1 crosses the spines
    r = predict(inv, PredictQuery(src="10.1.0.1", dst="10.1.0.5", at=at(10, 1), dport=443,
                                  proto=6, vni=5001))
    assert r["chains"] == ["acme-web-https"]
    assert [a["vnfs"] for a in r["alternatives"]] == [["fw-1"]]
    alt = r["alternatives"][0]
    assert alt["hosts"] == ["gw-1", "hv-4", "hv-1"]
    first, second = alt["segments"]
    assert [[h["device"] for h in p] for p in first["paths"]] == [["leaf-2"]]
    assert first["paths"][0][0]["in_if"] == "eth3" and first["paths"][0][0]["out_if"] == "eth2"
    spines = sorted(p[1]["device"] for p in second["paths"])
    assert spines == ["spine-1", "spine-2"]
    assert all([h["device"] for h in p][::2] == ["leaf-2", "leaf-1"] for p in second["paths"])


def test_after_migration_and_ids_insertion(inv) -> None:  # type: ignore[no-untyped-def]
    r = predict(inv, PredictQuery(src="10.1.0.1", dst="10.1.0.5", at=at(10, 40), dport=443,
                                  proto=6, vni=5001))
    alt = r["alternatives"][0]
    assert alt["vnfs"] == ["fw-1", "ids-1"]
    assert alt["hosts"] == ["gw-1", "hv-4", "hv-3", "hv-3"]
    # the IDS is on the destination host: the last leg stays inside hv-3
    assert alt["segments"][-1]["paths"] == [[]]


def test_unclassified_traffic_has_no_vnf(inv) -> None:  # type: ignore[no-untyped-def]
    r = predict(inv, PredictQuery(src="10.1.0.1", dst="10.1.0.5", at=at(10, 1), dport=80,
                                  proto=6, vni=5001))
    assert r["chains"] == [] and r["alternatives"][0]["vnfs"] == []
    assert r["alternatives"][0]["hosts"] == ["gw-1", "hv-1"]


def test_overlapping_address_needs_a_vni(inv) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="several endpoints"):
        predict(inv, PredictQuery(src="10.1.0.6", dst="10.1.0.5", at=at(10, 1)))


def test_compare_accepts_a_predicted_path_and_rejects_another(inv) -> None:  # type: ignore[no-untyped-def]
    pred = predict(inv, PredictQuery(src="10.1.0.1", dst="10.1.0.5", at=at(10, 1), dport=443,
                                     proto=6, vni=5001))

    def seg(a: str, b: str, hops: list[str]) -> dict:  # type: ignore[type-arg]
        return {"src_host": a, "dst_host": b,
                "hops": [{"device": d, "inferred": False} for d in hops]}

    good = {"paths": [{"direction": "forward", "vnfs": ["fw-1"],
                       "segments": [seg("gw-1", "hv-4", ["leaf-2"]),
                                    seg("hv-4", "hv-1", ["leaf-2", "spine-2", "leaf-1"])]}]}
    assert compare(pred, good)["ok"]
    bypass = {"paths": [{"direction": "forward", "vnfs": [],
                         "segments": [seg("gw-1", "hv-1", ["leaf-2", "spine-1", "leaf-1"])]}]}
    res = compare(pred, bypass)
    assert not res["ok"] and "not among the predicted" in res["problems"][0]
    wrong_hop = {"paths": [{"direction": "forward", "vnfs": ["fw-1"],
                            "segments": [seg("gw-1", "hv-4", ["leaf-1"]),
                                         seg("hv-4", "hv-1", ["leaf-2", "spine-2"])]}]}
    assert not compare(pred, wrong_hop)["ok"]

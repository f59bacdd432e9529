"""End to end on a hand-built sFlow capture with known truth (tests/fabricdata.py):
decode -> store -> trace / impact / matrix / check chains, with and without inventory,
on both stores (embedded, and ClickHouse's engine through chDB).

Ground truth is in fabricdata.FLOWS; every assertion below restates it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import fabricdata
from fabricscope import query
from fabricscope.inventory.fileformat import read_file
from fabricscope.pipeline import FileDecoder
from fabricscope.store import open_store

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fabric.yaml"


def at(h: int, m: int, s: int = 0) -> datetime:
    return datetime(2026, 11, 25, h, m, s, tzinfo=UTC)


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fabricdata.build(tmp_path_factory.mktemp("fabric") / "fabric.pcap")


@pytest.fixture(scope="module", params=["embedded", "chdb"])
def db(request: pytest.FixtureRequest, pcap: Path,
       tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same capture in both stores: every query must give the same answers."""
    d = tmp_path_factory.mktemp(request.param)
    if request.param == "chdb":
        pytest.importorskip("chdb", reason="chdb (the ClickHouse engine in-process) missing")
        loc = f"chdb://{d / 'ch'}"
    else:
        loc = str(d / "store")
    with open_store(loc, write=True) as st:
        for step in FileDecoder(pcap):
            st.append(step.records, step.counters)
    return loc


@pytest.fixture(scope="module")
def inv():  # type: ignore[no-untyped-def]
    return read_file(EXAMPLE)


def hops(seg: dict) -> list[tuple[str, str, str, bool]]:  # type: ignore[type-arg]
    return [(h["device"], h["in_if"], h["out_if"], h["inferred"]) for h in seg["hops"]]


def test_trace_flow_a_through_the_firewall_with_an_erroring_spine(db, inv) -> None:  # type: ignore[no-untyped-def]
    r = query.trace("10.1.0.1", "10.1.0.5", sport=43512, dport=443, proto=6,
                    since=at(10, 0), until=at(10, 5), db=db, inventory=inv)
    assert len(r["paths"]) == 1
    p = r["paths"][0]
    assert p["vnfs"] == ["fw-1"]
    s1, s2 = p["segments"]
    assert (s1["src_host"], s1["dst_host"], s1["vni"], s1["encap"]) == ("gw-1", "hv-4", 5001, "vxlan")
    assert (s2["src_host"], s2["dst_host"]) == ("hv-4", "hv-1")
    assert hops(s1) == [("leaf-2", "eth3", "eth2", False)]
    assert hops(s2) == [("leaf-2", "eth2", "eth49", False), ("spine-1", "eth2", "eth1", False),
                        ("leaf-1", "eth49", "eth1", False)]
    spine = s2["hops"][1]
    assert spine["health"]["status"] == "critical"
    assert "in:errors" in spine["health"]["flags"]
    assert spine["health"]["in"]["errors"] > 0
    assert s2["hops"][0]["health"]["status"] == "ok"
    # 19 samples per hop (10:01:00 .. 10:04:00 every 10 s), 1 in 1000
    assert s2["hops"][0]["samples"] == 19
    assert s2["hops"][0]["est_packets"] == 19_000
    assert r["src"]["endpoint"] == "acme-gw" and r["dst"]["endpoint"] == "web-1"
    assert p["complete"] is True


def test_trace_sees_the_migration_in_time(db, inv) -> None:  # type: ignore[no-untyped-def]
    r = query.trace("10.1.0.1", "10.1.0.5", sport=43512, dport=443, proto=6,
                    since=at(10, 0), until=at(10, 10), db=db, inventory=inv)
    ends = sorted((p["segments"][-1]["dst_host"], p["first_seen"][:16]) for p in r["paths"])
    assert ends == [("hv-1", "2026-11-25T10:01"), ("hv-3", "2026-11-25T10:06")]
    for p in r["paths"]:
        assert p["vnfs"] == ["fw-1"]


def test_trace_of_all_flows_between_two_ips_shows_ecmp_and_bypass(db, inv) -> None:  # type: ignore[no-untyped-def]
    r = query.trace("10.1.0.1", "10.1.0.5", since=at(10, 0), until=at(10, 5), db=db,
                    inventory=inv)
    spines = {}
    for p in r["paths"]:
        devs = [h["device"] for s in p["segments"] for h in s["hops"]]
        spine = next(d for d in devs if d.startswith("spine"))
        spines[spine, tuple(p["vnfs"])] = p["samples"]
    assert set(spines) == {("spine-1", ("fw-1",)), ("spine-2", ("fw-1",)), ("spine-1", ())}
    assert abs(sum(p["share"] for p in r["paths"]) - 1.0) < 0.01


def test_trace_without_inventory_uses_raw_identities(db) -> None:  # type: ignore[no-untyped-def]
    r = query.trace("10.1.0.1", "10.1.0.5", sport=43512, dport=443, proto=6,
                    since=at(10, 0), until=at(10, 5), db=db, inventory="none")
    p = r["paths"][0]
    # without inventory the VNF is named by its host's tunnel address
    assert p["vnfs"] == ["172.16.2.14"]
    s2 = p["segments"][1]
    assert (s2["src_host"], s2["dst_host"]) == ("172.16.2.14", "172.16.1.11")
    assert [h["device"] for h in s2["hops"]] == ["10.255.0.12", "10.255.0.1", "10.255.0.11"]
    assert s2["hops"][1]["in_if"] == "10.255.0.1:2"


def test_impact_of_the_erroring_spine_port_names_both_tenants(db, inv) -> None:  # type: ignore[no-untyped-def]
    r = query.impact("spine-1", interface="eth2", since=at(10, 0), until=at(10, 5), db=db,
                     inventory=inv)
    tenants = {t["tenant"] for t in r["tenants"]}
    assert tenants == {"acme", "globex"}
    flows = {(f["src"], f["dst"], f["sport"]) for f in r["flows"]}
    assert flows == {("10.1.0.1", "10.1.0.5", 43512), ("10.1.0.1", "10.1.0.5", 43700),
                     ("10.1.0.5", "10.1.0.6", 51000)}
    assert r["link"]["far_end"] == "leaf-2:eth49"
    # both ends of the link sampled the same packets: estimates are averaged, not added
    a = next(f for f in r["flows"] if f["sport"] == 43512)
    assert a["est_packets"] == 19_000


def test_impact_of_the_other_spine_is_only_flow_b(db, inv) -> None:  # type: ignore[no-untyped-def]
    r = query.impact("spine-2", since=at(10, 0), until=at(10, 5), db=db, inventory=inv)
    assert [(f["sport"], f["tenant"]) for f in r["flows"]] == [(43600, "acme")]


def test_matrix_by_tenant_and_host(db, inv) -> None:  # type: ignore[no-untyped-def]
    r = query.matrix("tenant", since=at(10, 0), until=at(10, 10), db=db, inventory=inv)
    pairs = {(x["src"], x["dst"]) for x in r["rows"]}
    assert pairs == {("acme", "acme"), ("globex", "globex")}
    h = query.matrix("host", since=at(10, 0), until=at(10, 10), db=db, inventory=inv)
    hp = {(x["src"], x["dst"]) for x in h["rows"]}
    assert hp == {("gw-1", "hv-4"), ("hv-4", "hv-1"), ("hv-4", "hv-3"), ("gw-1", "hv-1"),
                  ("hv-2", "hv-4")}


def test_check_chains_finds_the_bypass(db, inv) -> None:  # type: ignore[no-untyped-def]
    r = query.check_chains(since=at(10, 0), until=at(10, 10), db=db, inventory=inv)
    assert not r["ok"]
    bypass = [v for v in r["violations"] if v["kind"] == "bypass"]
    assert [(v["src"], v["sport"], v["hosts"]) for v in bypass] == [
        ("10.1.0.1", 43700, ["gw-1", "hv-1"])]
    assert r["flows_checked"] >= 3


def test_predict_observed_is_a_subset(db, inv) -> None:  # type: ignore[no-untyped-def]
    r = query.predict("10.1.0.1", "10.1.0.5", sport=43512, dport=443, proto=6, vni=5001,
                      at=at(10, 2), observed=True, since=at(10, 0), until=at(10, 5), db=db,
                      inventory=inv)
    assert r["observed"]["ok"], r["observed"]["problems"]
    assert r["observed"]["paths"] == 1

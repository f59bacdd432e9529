"""Vectorised, time-aware enrichment of record batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from fabricscope.inventory import addr
from fabricscope.inventory.enrich import FIELDS, Enricher, KeyIndex, enrich
from fabricscope.inventory.fileformat import check_text, read_file
from fabricscope.inventory.index import Inventory

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fabric.yaml"


def T(hhmm: str, sec: int = 0) -> datetime:
    return datetime.fromisoformat(f"2026-11-25T{hhmm}:{sec:02d}+00:00")


def ns(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) * 1000


IP_COLS = ("src", "dst", "inner_src", "inner_dst", "agent")
TYPES: dict[str, pa.DataType] = {
    "ts": pa.timestamp("ns", tz="UTC"), "encap": pa.dictionary(pa.int16(), pa.string()),
    "vni": pa.uint64(), "in_if": pa.uint32(), "out_if": pa.uint32(), "out_if_format": pa.uint8(),
    **{c: pa.binary(16) for c in IP_COLS},
}


def records(rows: list[dict[str, Any]]) -> pa.Table:
    """A record table with the columns of records/schema.py that enrichment reads."""
    cols: dict[str, pa.Array] = {}
    names = {k for r in rows for k in r} | {"ts"}
    for name in TYPES:
        if name not in names:
            continue
        vals = [r.get(name) for r in rows]
        if name == "ts":
            vals = [ns(v) if isinstance(v, datetime) else v for v in vals]
        if name in IP_COLS:
            vals = [None if v is None else addr.ip16(v) for v in vals]
        if name == "encap":
            cols[name] = pa.array(vals, pa.string()).dictionary_encode().cast(TYPES[name])
        else:
            cols[name] = pa.array(vals, TYPES[name])
    return pa.table(cols)


@pytest.fixture(scope="module")
def inv() -> Inventory:
    return read_file(EXAMPLE)


@pytest.fixture(scope="module")
def enricher(inv: Inventory) -> Enricher:
    return Enricher(inv)


def test_migrated_vm_and_its_hosts_over_time(enricher: Enricher) -> None:
    tbl = records([
        # web-1 on hv-1 sends to the firewall on hv-4, before the move
        {"ts": T("10:04"), "src": "172.16.1.11", "dst": "172.16.2.14", "encap": "vxlan",
         "vni": 5001, "inner_src": "10.1.0.5", "inner_dst": "10.1.0.250"},
        # after the move, from hv-3
        {"ts": T("10:07"), "src": "172.16.2.13", "dst": "172.16.2.14", "encap": "vxlan",
         "vni": 5001, "inner_src": "10.1.0.5", "inner_dst": "10.1.0.250"},
    ])
    out = enricher.enrich(tbl).to_pylist()
    assert [r["src_host"] for r in out] == ["hv-1", "hv-3"]
    assert [r["dst_host"] for r in out] == ["hv-4", "hv-4"]
    assert [r["src_endpoint"] for r in out] == ["web-1", "web-1"]
    assert [r["dst_endpoint"] for r in out] == ["fw-1-in", "fw-1-in"]
    assert [r["dst_vnf"] for r in out] == ["fw-1", "fw-1"]
    assert [r["src_vnf"] for r in out] == [None, None]
    assert {r["src_tenant"] for r in out} == {"acme"}
    assert {r["network"] for r in out} == {"acme-web"}


def test_overlapping_addresses_are_told_apart_by_vni(enricher: Enricher) -> None:
    tbl = records([
        {"ts": T("10:00"), "encap": "vxlan", "vni": 5001, "inner_src": "10.1.0.5", "inner_dst": "10.1.0.6"},
        {"ts": T("10:00"), "encap": "vxlan", "vni": 6001, "inner_src": "10.1.0.5", "inner_dst": "10.1.0.6"},
        # a VNI nobody declared: the address alone is ambiguous (both tenants use it) ...
        {"ts": T("10:00"), "encap": "vxlan", "vni": 7777, "inner_src": "10.1.0.5", "inner_dst": "10.1.0.7"},
        # ... but 10.1.0.7 is only globex's cache-1
    ])
    out = enricher.enrich(tbl, ["src_endpoint", "src_tenant", "dst_endpoint", "network", "tenant"]).to_pylist()
    assert [(r["src_endpoint"], r["src_tenant"]) for r in out] == [
        ("web-1", "acme"), ("app-1", "globex"), (None, None)]
    assert [r["dst_endpoint"] for r in out] == ["web-2", "app-2", "cache-1"]
    assert [(r["network"], r["tenant"]) for r in out] == [
        ("acme-web", "acme"), ("globex-app", "globex"), (None, None)]


def test_frames_without_tunnel_use_the_wire_addresses(enricher: Enricher) -> None:
    tbl = records([
        {"ts": T("10:00"), "src": "10.2.0.9", "dst": "10.1.0.5"},  # db-1 -> ambiguous
        {"ts": T("10:00"), "src": "172.16.1.11", "dst": "192.168.0.12"},  # host addresses
    ])
    out = enricher.enrich(tbl).to_pylist()
    assert out[0]["src_endpoint"] == "db-1" and out[0]["src_network"] == "acme-db"
    assert out[0]["dst_endpoint"] is None
    assert out[0]["src_host"] is None
    assert (out[1]["src_host"], out[1]["dst_host"]) == ("hv-1", "hv-2")  # tunnel, then mgmt IP


def test_sflow_agent_interfaces_links_and_peers(enricher: Enricher) -> None:
    tbl = records([
        {"ts": T("10:00"), "agent": "10.255.0.11", "in_if": 1, "out_if": 49, "out_if_format": 0},
        {"ts": T("10:00"), "agent": "10.255.0.1", "in_if": 1, "out_if": 2, "out_if_format": 0},
        {"ts": T("10:00"), "agent": "10.255.0.12", "in_if": 3, "out_if": 7, "out_if_format": 1},
        {"ts": T("10:00"), "agent": "10.255.0.12", "in_if": 0x3FFFFFFF, "out_if": 77, "out_if_format": 0},
        {"ts": T("10:00"), "agent": "10.9.9.9", "in_if": 1, "out_if": 2, "out_if_format": 0},
    ])
    out = enricher.enrich(tbl, ["device", "in_if_name", "out_if_name", "in_link", "out_link",
                                "in_peer", "out_peer"]).to_pylist()
    assert out[0] == {**out[0], "device": "leaf-1", "in_if_name": "eth1", "out_if_name": "eth49",
                      "in_peer": "hv-1:eth0", "out_peer": "spine-1:eth1",
                      "out_link": "leaf-1:eth49--spine-1:eth1"}
    assert (out[1]["device"], out[1]["in_peer"], out[1]["out_peer"]) == (
        "spine-1", "leaf-1:eth49", "leaf-2:eth49")
    # out_if_format 1: the packet was discarded, out_if is a reason code, not a port
    assert (out[2]["in_if_name"], out[2]["in_peer"], out[2]["out_if_name"]) == (
        "eth3", "gw-1:eth0", None)
    assert (out[2]["in_link"]) == "gw-1-uplink"
    # internal / unknown ifIndex
    assert (out[3]["in_if_name"], out[3]["out_if_name"]) == (None, None)
    # unknown agent
    assert out[4]["device"] is None and out[4]["in_if_name"] is None


def test_chains_change_and_endpoints_appear_over_time(enricher: Enricher) -> None:
    rows = [{"ts": T("10:29"), "encap": "vxlan", "vni": 5001, "inner_src": "10.1.0.251",
             "inner_dst": "10.1.0.252"},
            {"ts": T("10:31"), "encap": "vxlan", "vni": 5001, "inner_src": "10.1.0.251",
             "inner_dst": "10.1.0.252"}]
    out = enricher.enrich(records(rows), ["src_vnf", "dst_endpoint", "dst_vnf"]).to_pylist()
    assert out == [
        {**out[0], "src_vnf": "fw-1", "dst_endpoint": None, "dst_vnf": None},
        {**out[1], "src_vnf": "fw-1", "dst_endpoint": "ids-1-in", "dst_vnf": "ids-1"},
    ]


def test_record_batches_chunked_tables_and_missing_columns(enricher: Enricher) -> None:
    tbl = records([{"ts": T("10:00"), "src": "172.16.1.11"}, {"ts": T("10:00"), "src": "172.16.1.12"}])
    batch = tbl.to_batches()[0]
    got = enricher.enrich(batch, ["src_host", "device"])
    assert isinstance(got, pa.RecordBatch)
    assert got.column("src_host").to_pylist() == ["hv-1", "hv-2"]
    assert got.column("device").to_pylist() == [None, None]  # no agent column: null
    chunked = pa.concat_tables([tbl, tbl])
    assert chunked.column("src").num_chunks == 2
    got2 = enricher.enrich(chunked, ["src_host"])
    assert got2.column("src_host").to_pylist() == ["hv-1", "hv-2", "hv-1", "hv-2"]
    assert enrich(Inventory(), tbl, ["src_host"]).column("src_host").null_count == 2
    empty = records([]).slice(0, 0)
    assert enricher.enrich(empty).num_rows == 0
    with pytest.raises(ValueError, match="unknown enrichment field"):
        enricher.enrich(tbl, ["nope"])


def test_output_columns_are_dictionary_strings(enricher: Enricher) -> None:
    out = enricher.enrich(records([{"ts": T("10:00"), "src": "172.16.1.11"}]))
    for f in FIELDS:
        assert pa.types.is_dictionary(out.schema.field(f).type), f


def test_declared_facts_win_over_learned_ones() -> None:
    declared = check_text("hosts: [{name: hv-1, tunnel_ips: [10.0.0.1]}]\n", "x.yaml").facts
    learned = check_text("hosts: [{name: vtep-10.0.0.1, tunnel_ips: [10.0.0.1]},"
                         " {name: vtep-10.0.0.2, tunnel_ips: [10.0.0.2]}]\n", "y.yaml").facts
    learned = [f.__class__(**{**f.__dict__, "learned": True}) for f in learned]
    inv = Inventory([*declared, *learned])
    out = Enricher(inv).enrich(records([{"ts": T("10:00"), "src": "10.0.0.1"},
                                        {"ts": T("10:00"), "src": "10.0.0.2"}]), ["src_host"])
    assert out.column("src_host").to_pylist() == ["hv-1", "vtep-10.0.0.2"]


def test_key_index_is_exact_even_when_halves_collide() -> None:
    # keys that differ only in the high half, or are swapped halves
    hi = np.array([0, 1, 2, 5, 2**63], dtype=np.uint64)
    lo = np.array([7, 7, 7, 0, 1], dtype=np.uint64)
    idx = KeyIndex([hi, lo], np.arange(5, dtype=np.int32))
    q_hi = np.array([0, 1, 2, 5, 2**63, 7, 0, 3], dtype=np.uint64)
    q_lo = np.array([7, 7, 7, 0, 1, 0, 5, 7], dtype=np.uint64)
    assert idx.lookup([q_hi, q_lo]).tolist() == [0, 1, 2, 3, 4, -1, -1, -1]
    empty = KeyIndex([np.empty(0, np.uint64)], np.empty(0, np.int32))
    assert empty.lookup([np.array([1], np.uint64)]).tolist() == [-1]


# --------------------------------------------------------------------------- property test


def _scalar(inv: Inventory, r: dict[str, Any]) -> dict[str, Any]:
    """What the per-question lookups say for one record (the reference)."""
    t = addr.utc(datetime.fromtimestamp(r["ts"] / 1e9, UTC)) if isinstance(r["ts"], int) else r["ts"]
    out: dict[str, Any] = {}
    for side in ("src", "dst"):
        ip = r.get(side)
        h = (inv.host_by_tunnel_ip(ip, t) or inv.host_by_ip(ip, t)) if ip else None
        out[f"{side}_host"] = h.name if h else None
        key = r.get(f"inner_{side}") if r.get("encap") else r.get(side)
        e = None
        vni, encap = r.get("vni"), r.get("encap")
        if key is not None:
            if vni is not None:
                e = inv.endpoint_by_ip(key, vni, t, encap=encap) or inv.endpoint_by_ip(key, vni, t)
                if e is None and inv.network_by_vni(vni, t) is None:
                    e = inv.endpoint_by_ip(key, None, t)
            else:
                e = inv.endpoint_by_ip(key, None, t)
        out[f"{side}_endpoint"] = e.name if e else None
        out[f"{side}_tenant"] = inv.tenant_of(e, t) if e else None
        v = inv.vnf_of_endpoint(e.name, t) if e else None
        out[f"{side}_vnf"] = v.name if v else None
    vni, encap = r.get("vni"), r.get("encap")
    net = None
    if vni is not None:
        net = inv.network_by_vni(vni, t, encap) or inv.network_by_vni(vni, t)
    out["network"] = net.name if net else None
    agent = r.get("agent")
    d = inv.device_by_agent(agent, t) if agent else None
    out["device"] = d.name if d else None
    for side in ("in", "out"):
        ifx = r.get(f"{side}_if")
        found = inv.interface(agent, ifx, t) if agent and ifx is not None else None
        out[f"{side}_if_name"] = found.interface.name if found else None
        link = inv.link_of(found.device.name, found.interface.name, t) if found else None
        out[f"{side}_link"] = link.key if link else None
    return out


def test_vectorised_answers_equal_the_scalar_lookups(inv: Inventory, enricher: Enricher) -> None:
    rng = np.random.default_rng(7)
    outer = ["172.16.1.11", "172.16.1.12", "172.16.2.13", "172.16.2.14", "172.16.2.20",
             "192.168.0.11", "172.16.9.9", None]
    inner = [f"10.1.0.{i}" for i in (1, 5, 6, 7, 250, 251, 252, 253, 99)] + ["10.2.0.9", None]
    agents = ["10.255.0.1", "10.255.0.2", "10.255.0.11", "10.255.0.12", "192.168.0.13",
              "10.9.9.9", None]
    times = [T("09:00"), T("10:04", 59), T("10:05"), T("10:05", 1), T("10:29", 59),
             T("10:30"), T("11:00")]
    rows = []
    for _ in range(3000):
        tunnel = rng.random() < 0.8
        rows.append({
            "ts": times[rng.integers(len(times))],
            "src": outer[rng.integers(len(outer))],
            "dst": outer[rng.integers(len(outer))],
            "encap": (["vxlan", "geneve"][int(rng.random() < 0.1)]) if tunnel else None,
            "vni": ([5001, 5002, 6001, 7777, None][rng.integers(5)]) if tunnel else None,
            "inner_src": inner[rng.integers(len(inner))] if tunnel else None,
            "inner_dst": inner[rng.integers(len(inner))] if tunnel else None,
            "agent": agents[rng.integers(len(agents))],
            "in_if": [1, 2, 3, 49, 50, 0x3FFFFFFF, None][rng.integers(7)],
            "out_if": [1, 2, 3, 49, 50, 0, None][rng.integers(7)],
        })
    got = enricher.enrich(records(rows)).to_pylist()
    for r, g in zip(rows, got, strict=True):
        want = _scalar(inv, r)
        assert {k: g[k] for k in want} == want, r
    # the comparison is not vacuous: every kind of answer occurs
    for k in ("src_host", "src_endpoint", "src_vnf", "network", "device", "in_if_name", "out_link"):
        assert sum(g[k] is not None for g in got) > 100, k

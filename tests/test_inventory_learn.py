"""Learning the inventory from traffic: VTEPs, MAC/IP behind VTEPs with moves, agents and
ifIndexes, adjacency, and conflicts with the declared inventory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from fabricscope.inventory import addr
from fabricscope.inventory.fileformat import check_text, read_file
from fabricscope.inventory.index import Inventory
from fabricscope.inventory.learn import Learner
from fabricscope.inventory.model import Endpoint, Link

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fabric.yaml"

WEB1_MAC = "fa:16:3e:00:01:05"
HV1, HV2, HV3, HV4 = "172.16.1.11", "172.16.1.12", "172.16.2.13", "172.16.2.14"


def T(hhmmss: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-25T{hhmmss}+00:00")


def ns(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) * 1000


IP_COLS = ("src", "dst", "inner_src", "inner_dst", "agent")
TYPES: dict[str, pa.DataType] = {
    "ts": pa.timestamp("ns", tz="UTC"), "encap": pa.dictionary(pa.int16(), pa.string()),
    "vni": pa.uint64(), "inner_eth_src": pa.uint64(), "in_if": pa.uint32(),
    "out_if": pa.uint32(), "out_if_format": pa.uint8(), "ttl": pa.uint8(), "proto": pa.uint8(),
    "sport": pa.uint16(), "dport": pa.uint16(), "inner_mpls_label": pa.uint32(),
    **{c: pa.binary(16) for c in IP_COLS},
}


def records(rows: list[dict[str, Any]]) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    for name, typ in TYPES.items():
        vals = [r.get(name) for r in rows]
        if name == "ts":
            vals = [ns(v) for v in vals]
        elif name in IP_COLS:
            vals = [None if v is None else addr.ip16(v) for v in vals]
        elif name == "inner_eth_src":
            vals = [None if v is None else addr.mac_to_int(v) for v in vals]
        if name == "encap":
            cols[name] = pa.array(vals, pa.string()).dictionary_encode().cast(typ)
        else:
            cols[name] = pa.array(vals, typ)
    return pa.table(cols)


def frame(t: datetime, vtep: str, mac: str, ip: str | None, vni: int = 5001,
          dst: str = HV4, **kw: Any) -> dict[str, Any]:
    """A VXLAN frame from the VM (mac, ip) behind ``vtep``."""
    return {"ts": t, "src": vtep, "dst": dst, "encap": "vxlan", "vni": vni,
            "inner_eth_src": mac, "inner_src": ip, "inner_dst": "10.1.0.250", "proto": 17,
            "sport": 40000, "dport": 4789, **kw}


def migration() -> list[dict[str, Any]]:
    """web-1 talks from hv-1 until 10:04, then from hv-3 from 10:05:10."""
    rows = [frame(T(f"10:0{m}:00"), HV1, WEB1_MAC, "10.1.0.5") for m in range(5)]
    rows += [frame(T(f"10:0{m}:10"), HV3, WEB1_MAC, "10.1.0.5") for m in range(5, 10)]
    return rows


@pytest.fixture(scope="module")
def declared() -> Inventory:
    return read_file(EXAMPLE)


# --------------------------------------------------------------------------- zero-config


def test_learns_vteps_networks_and_a_migration_with_its_time() -> None:
    lr = Learner()
    lr.feed(records(migration()))
    moves = lr.moves()
    assert len(moves) == 1
    m = moves[0]
    assert (m.vni, m.mac, m.ips, m.from_vtep, m.to_vtep, m.at) == (
        5001, WEB1_MAC, ("10.1.0.5",), HV1, HV3, T("10:05:10"))
    assert str(m) == ("2026-11-25T10:05:10Z 10.1.0.5 (MAC fa:16:3e:00:01:05, VNI 5001) moved "
                      f"from vtep-{HV1} to vtep-{HV3}")
    facts = lr.facts()
    assert all(f.learned and f.source == "learned" and f.evidence > 0 for f in facts)
    hosts = {f.key: f for f in facts if f.KIND == "hosts"}
    assert set(hosts) == {f"vtep-{HV1}", f"vtep-{HV3}", f"vtep-{HV4}"}
    assert hosts[f"vtep-{HV1}"].evidence == 5 and hosts[f"vtep-{HV4}"].evidence == 10
    assert [f.key for f in facts if f.KIND == "networks"] == ["vni-5001"]
    eps = sorted((f for f in facts if isinstance(f, Endpoint)), key=lambda e: e.valid_from or T("00:00:00"))
    assert [(e.key, e.host, e.ips, e.valid_from, e.valid_to, e.evidence) for e in eps] == [
        (f"{WEB1_MAC}@vni5001", f"vtep-{HV1}", ("10.1.0.5",), T("10:00:00"), T("10:05:10"), 5),
        (f"{WEB1_MAC}@vni5001", f"vtep-{HV3}", ("10.1.0.5",), T("10:05:10"), None, 5),
    ]
    # the learned inventory answers time-aware lookups like a declared one
    inv = lr.inventory()
    before = inv.endpoint_by_ip("10.1.0.5", 5001, T("10:02:00"))
    after = inv.endpoint_by_ip("10.1.0.5", 5001, T("10:07:00"))
    assert before is not None and before.host == f"vtep-{HV1}"
    assert after is not None and after.host == f"vtep-{HV3}"
    assert inv.host_by_tunnel_ip(HV3, T("10:07:00")).name == f"vtep-{HV3}"  # type: ignore[union-attr]
    assert lr.conflicts() == []


def test_learning_does_not_depend_on_batching_or_order() -> None:
    rows = migration()
    one = Learner()
    one.feed(records(rows))
    many = Learner()
    for r in reversed(rows):  # one record per batch, newest first
        many.feed(records([r]))
    assert [str(m) for m in many.moves()] == [str(m) for m in one.moves()]
    shuffled = Learner()
    shuffled.feed(records(rows[::-1]))  # one batch, out of time order
    key = lambda f: (f.KIND, f.key, f.valid_from)  # noqa: E731
    for other in (many, shuffled):
        assert [str(m) for m in other.moves()] == [str(m) for m in one.moves()]
        assert sorted(map(repr, sorted(other.facts(), key=key))) == sorted(
            map(repr, sorted(one.facts(), key=key)))


def test_aging_ends_an_episode() -> None:
    rows = [frame(T("10:00:00"), HV1, WEB1_MAC, "10.1.0.5"),
            # someone else keeps the clock running
            frame(T("10:30:00"), HV2, "fa:16:3e:00:09:09", "10.1.0.9")]
    lr = Learner(aging=timedelta(minutes=5))
    lr.feed(records(rows))
    web = [f for f in lr.facts() if f.KIND == "endpoints" and f.key.startswith(WEB1_MAC)]
    assert [(f.valid_from, f.valid_to) for f in web] == [(T("10:00:00"), T("10:05:00"))]
    other = [f for f in lr.facts() if f.KIND == "endpoints" and f.key.startswith("fa:16:3e:00:09:09")]
    assert [(f.valid_from, f.valid_to) for f in other] == [(T("10:30:00"), None)]
    # a silence longer than the aging time then a return behind the same VTEP: two episodes
    lr.feed(records([frame(T("10:40:00"), HV1, WEB1_MAC, "10.1.0.5")]))
    web = [f for f in lr.facts() if f.KIND == "endpoints" and f.key.startswith(WEB1_MAC)]
    assert [(f.valid_from, f.valid_to) for f in web] == [
        (T("10:00:00"), T("10:05:00")), (T("10:40:00"), None)]
    assert lr.moves() == []


def test_router_macs_are_gateways_not_endpoints() -> None:
    router = "fa:16:3e:ff:ff:01"
    rows = [frame(T("10:00:00"), HV2, router, f"10.9.{i}.1") for i in range(10)]
    rows += [frame(T("10:00:01"), HV1, WEB1_MAC, "10.9.0.1")]  # same IP as a routed source
    lr = Learner()
    lr.feed(records(rows))
    eps = {f.key: f for f in lr.facts() if isinstance(f, Endpoint)}
    gw = eps[f"{router}@vni5001"]
    assert gw.kind == "gateway" and gw.ips == ()
    assert eps[f"{WEB1_MAC}@vni5001"].ips == ("10.9.0.1",)
    assert lr.conflicts() == []


def test_sflow_agents_interfaces_and_adjacency() -> None:
    rows = []
    for i in range(3):  # three flows along hv-1 -> leaf-1 -> spine-1 -> leaf-2
        f = frame(T("10:01:00"), HV1, WEB1_MAC, "10.1.0.5", sport=40000 + i)
        rows.append({**f, "agent": "10.255.0.11", "in_if": 1, "out_if": 49, "ttl": 64})
        rows.append({**f, "agent": "10.255.0.1", "in_if": 1, "out_if": 2, "ttl": 63})
        rows.append({**f, "agent": "10.255.0.12", "in_if": 49, "out_if": 2, "ttl": 62})
    # a discarded sample: out_if is a reason code, not a port
    rows.append({**frame(T("10:02:00"), HV1, WEB1_MAC, "10.1.0.5"), "agent": "10.255.0.11",
                 "in_if": 1, "out_if": 259, "out_if_format": 1, "ttl": 64})
    lr = Learner()
    lr.feed(records(rows))
    counters = pa.table({
        "ts": pa.array([ns(T("10:03:00"))] * 2, pa.timestamp("ns", tz="UTC")),
        "agent": pa.array([addr.ip16("10.255.0.11")] * 2, pa.binary(16)),
        "ifindex": pa.array([49, 50], pa.uint32()),
        "port_name": pa.array(["Ethernet49", "Ethernet50"]),
        "speed": pa.array([100_000_000_000, 100_000_000_000], pa.uint64()),
    })
    lr.feed(counters)
    devices = {f.key: f for f in lr.facts() if f.KIND == "devices"}
    assert set(devices) == {"agent-10.255.0.1", "agent-10.255.0.11", "agent-10.255.0.12"}
    leaf = devices["agent-10.255.0.11"]
    assert [(i.ifindex, i.name, i.speed) for i in leaf.interfaces] == [  # type: ignore[attr-defined]
        (1, "ifindex-1", None), (49, "Ethernet49", 100_000_000_000),
        (50, "Ethernet50", 100_000_000_000)]
    assert 259 not in [i.ifindex for i in leaf.interfaces]  # type: ignore[attr-defined]
    adj = {(a.a_agent, a.a_ifindex, a.b_agent, a.b_ifindex, a.host_ip): a.evidence
           for a in lr.adjacency()}
    assert adj == {
        ("10.255.0.11", 49, "10.255.0.1", 1, None): 3,
        ("10.255.0.1", 2, "10.255.0.12", 49, None): 3,
        ("10.255.0.11", 1, None, None, HV1): 3,
    }
    links = {f.key for f in lr.facts() if isinstance(f, Link)}
    assert links == {
        "agent-10.255.0.11:Ethernet49--agent-10.255.0.1:ifindex-1",
        "agent-10.255.0.12:ifindex-49--agent-10.255.0.1:ifindex-2",
        f"agent-10.255.0.11:ifindex-1--vtep-{HV1}:uplink",
    }
    inv = lr.inventory()
    found = inv.interface("10.255.0.11", 49, T("10:05:00"))
    assert found is not None and found.interface.name == "Ethernet49"
    link = inv.link_of("agent-10.255.0.11", 49, T("10:05:00"))
    assert link is not None and link.learned


def test_single_flow_adjacency_is_below_the_evidence_threshold() -> None:
    f = frame(T("10:01:00"), HV1, WEB1_MAC, "10.1.0.5")
    rows = [{**f, "agent": "10.255.0.11", "in_if": 1, "out_if": 49, "ttl": 64},
            {**f, "agent": "10.255.0.1", "in_if": 1, "out_if": 2, "ttl": 63}]
    lr = Learner()
    lr.feed(records(rows))
    assert [a.evidence for a in lr.adjacency()] == [1, 1]
    assert [f for f in lr.facts() if f.KIND == "links"] == []
    lr2 = Learner(min_link_evidence=1)
    lr2.feed(records(rows))
    assert len([f for f in lr2.facts() if f.KIND == "links"]) == 2


def test_sfc_frames_are_not_used_for_locations() -> None:
    rows = migration()
    # the firewall on hv-4 forwards web-1's frames inside the chain (MPLS label)
    rows += [frame(T("10:02:00"), HV4, WEB1_MAC, "10.1.0.5", inner_mpls_label=(1 << 8) | 254)]
    lr = Learner()
    lr.feed(records(rows))
    assert lr.conflicts() == []
    assert len(lr.moves()) == 1


# --------------------------------------------------------------------------- with declared facts


def test_declared_facts_are_never_overridden(declared: Inventory) -> None:
    lr = Learner(declared)
    lr.feed(records(migration()))
    facts = lr.facts()
    # every VTEP, the VNI and web-1 are declared: nothing learned about them
    assert [f for f in facts if f.KIND in ("hosts", "networks", "endpoints")] == []
    m = lr.moves()[0]
    assert (m.from_host, m.to_host) == ("hv-1", "hv-3")
    # traffic agrees with the declared migration (declared 10:05, seen 10:05:10)
    assert lr.conflicts() == []
    inv = lr.inventory()
    e = inv.endpoint_by_ip("10.1.0.5", 5001, T("10:07:00"))
    assert e is not None and e.name == "web-1" and not e.learned


def test_learned_facts_fill_gaps_declared_ones_win(declared: Inventory) -> None:
    rows = [frame(T("10:00:00"), "172.16.9.9", "fa:16:3e:00:07:07", "10.1.0.77")]
    lr = Learner(declared)
    lr.feed(records(rows))
    inv = lr.inventory()
    h = inv.host_by_tunnel_ip("172.16.9.9", T("10:01:00"))
    assert h is not None and h.learned and h.name == "vtep-172.16.9.9"
    assert inv.host_by_tunnel_ip(HV4, T("10:01:00")).name == "hv-4"  # type: ignore[union-attr]
    e = inv.endpoint_by_ip("10.1.0.77", 5001, T("10:01:00"))
    assert e is not None and e.learned and e.network == "acme-web"
    assert inv.tenant_of(e, T("10:01:00")) == "acme"


def test_conflict_ip_behind_two_vteps_at_once() -> None:
    a, b = "fa:16:3e:00:0a:0a", "fa:16:3e:00:0b:0b"
    rows = []
    for s in range(0, 120, 10):  # two VMs with one IP, talking at the same time
        rows.append(frame(T("10:00:00") + timedelta(seconds=s), HV1, a, "10.1.0.9"))
        rows.append(frame(T("10:00:05") + timedelta(seconds=s), HV2, b, "10.1.0.9"))
    lr = Learner()
    lr.feed(records(rows))
    kinds = [(c.kind, c.subject) for c in lr.conflicts()]
    assert kinds == [("ip-two-vteps", "10.1.0.9 on VNI 5001")]
    c = lr.conflicts()[0]
    assert HV1 in c.message and HV2 in c.message
    assert c.first_seen == T("10:00:05") and c.evidence == 24
    # the learned endpoints for the address overlap: the lookup refuses to guess
    assert lr.inventory().endpoint_by_ip("10.1.0.9", 5001, T("10:01:00")) is None


def test_conflict_mac_behind_two_vteps_at_once() -> None:
    rows = []
    for s in range(0, 60, 10):  # one MAC flapping between two VTEPs
        rows.append(frame(T("10:00:00") + timedelta(seconds=s), HV1, WEB1_MAC, "10.1.0.5"))
        rows.append(frame(T("10:00:05") + timedelta(seconds=s), HV3, WEB1_MAC, "10.1.0.5"))
    lr = Learner()
    lr.feed(records(rows))
    conflicts = lr.conflicts()
    assert [(c.kind, c.subject) for c in conflicts] == [
        ("mac-two-vteps", f"MAC {WEB1_MAC} on VNI 5001")]
    assert lr.moves() == []  # a flap is not a migration


def test_conflict_declared_location(declared: Inventory) -> None:
    # web-2 is declared on hv-2, but its MAC talks from hv-4
    lr = Learner(declared)
    lr.feed(records([frame(T("10:00:00"), HV4, "fa:16:3e:00:01:06", "10.1.0.6", dst=HV1)]))
    [c] = lr.conflicts()
    assert c.kind == "location-mismatch" and c.subject == "endpoint web-2"
    assert c.message == f"declared on hv-2 at 2026-11-25T10:00:00Z, seen behind {HV4} (hv-4)"


def test_conflict_undocumented_migration(declared: Inventory) -> None:
    # web-1 reaches hv-3 at 10:03, two minutes before the declared 10:05
    rows = [frame(T("10:00:00"), HV1, WEB1_MAC, "10.1.0.5"),
            frame(T("10:03:00"), HV3, WEB1_MAC, "10.1.0.5"),
            frame(T("10:07:00"), HV3, WEB1_MAC, "10.1.0.5")]
    lr = Learner(declared)
    lr.feed(records(rows))
    [c] = lr.conflicts()
    assert c.kind == "location-mismatch" and c.subject == "endpoint web-1"
    assert c.message == f"declared on hv-1 at 2026-11-25T10:03:00Z, seen behind {HV3} (hv-3)"
    assert lr.moves()[0].at == T("10:03:00")


def test_conflict_vni_contradicts_the_declared_one(declared: Inventory) -> None:
    # db-1's MAC (network acme-db, VNI 5002) seen on VNI 5001
    lr = Learner(declared)
    lr.feed(records([frame(T("10:00:00"), HV2, "fa:16:3e:00:02:09", "10.2.0.9", vni=5001)]))
    [c] = lr.conflicts()
    assert c.kind == "vni-mismatch" and c.subject == "endpoint db-1"
    assert c.message == ("declared on network 'acme-db' (VNI 5002), its MAC fa:16:3e:00:02:09 "
                         "seen on VNI 5001")


def test_conflict_another_mac_uses_a_declared_address(declared: Inventory) -> None:
    lr = Learner(declared)
    lr.feed(records([frame(T("10:00:00"), HV2, "fa:16:3e:de:ad:01", "10.1.0.6")]))
    [c] = lr.conflicts()
    assert c.kind == "mac-mismatch" and c.subject == "endpoint web-2"


def test_conflict_encapsulation(declared: Inventory) -> None:
    lr = Learner(declared)
    lr.feed(records([{**frame(T("10:00:00"), HV1, WEB1_MAC, "10.1.0.5"), "encap": "geneve"}]))
    assert [c.kind for c in lr.conflicts()] == ["encap-mismatch"]


def test_conflict_links_and_undeclared_interfaces(declared: Inventory) -> None:
    rows = []
    for i in range(3):
        f = frame(T("10:01:00"), HV1, WEB1_MAC, "10.1.0.5", sport=41000 + i)
        # leaf-1 eth49 is declared to spine-1 eth1; samples show spine-2 behind it
        rows.append({**f, "agent": "10.255.0.11", "in_if": 1, "out_if": 49, "ttl": 64})
        rows.append({**f, "agent": "10.255.0.2", "in_if": 1, "out_if": 2, "ttl": 63})
    rows.append({**frame(T("10:02:00"), HV1, WEB1_MAC, "10.1.0.5"), "agent": "10.255.0.11",
                 "in_if": 7, "out_if": 49, "ttl": 64})
    lr = Learner(declared)
    lr.feed(records(rows))
    got = {(c.kind, c.subject): c for c in lr.conflicts()}
    assert set(got) == {("link-mismatch", "leaf-1:eth49"),
                        ("undeclared-interface", "leaf-1 ifIndex 7")}
    assert got[("link-mismatch", "leaf-1:eth49")].message == (
        "declared to spine-1:eth1, samples show spine-2:eth1")
    assert [f for f in lr.facts() if f.KIND == "links"] == []


def test_counter_and_packet_batches_without_optional_columns() -> None:
    lr = Learner()
    lr.feed(pa.table({"ts": pa.array([ns(T("10:00:00"))], pa.timestamp("ns", tz="UTC")),
                      "src": pa.array([addr.ip16(HV1)], pa.binary(16))}))
    assert lr.facts() == [] and lr.records == 1
    lr.feed(records([]).slice(0, 0))
    assert lr.summary()["records"] == 1


def test_learning_is_vectorised_enough() -> None:
    """A million records with a few hundred VMs: the Python work is per episode."""
    rng = np.random.default_rng(3)
    n = 1_000_000
    macs = np.arange(300, dtype=np.uint64) + 0xFA163E000000
    vteps = np.array([addr.ip16(h) for h in (HV1, HV2, HV3, HV4)], dtype="S16")
    which = rng.integers(0, 300, n)
    ts = ns(T("10:00:00")) + np.sort(rng.integers(0, 3600 * 10**9, n))
    tbl = pa.table({
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "src": pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), n, [None, pa.py_buffer(vteps[which % 4].tobytes())]),
        "dst": pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), n, [None, pa.py_buffer(vteps[(which + 1) % 4].tobytes())]),
        "encap": pa.array(["vxlan"] * n).dictionary_encode(),
        "vni": pa.array(np.full(n, 5001, np.uint64)),
        "inner_eth_src": pa.array(macs[which]),
    })
    import time

    lr = Learner()
    t0 = time.process_time()
    lr.feed(tbl)
    facts = lr.facts()
    cpu = time.process_time() - t0
    assert len([f for f in facts if f.KIND == "endpoints"]) == 300
    assert cpu < 20, f"{cpu:.1f}s of CPU for {n} records"


def test_example_inventory_round_trip_with_learned_facts(declared: Inventory) -> None:
    """Learned facts are ordinary facts: they render in the file format (with meta)."""
    lr = Learner()
    lr.feed(records(migration()))
    from fabricscope.inventory.fileformat import document_from_facts

    doc = document_from_facts(lr.facts(), meta=True)
    assert all(item["learned"] is True and item["evidence"] > 0
               for kind in ("hosts", "endpoints") for item in doc[kind])
    plain = document_from_facts(lr.facts())
    # without meta it is a valid inventory file
    import json

    assert check_text(json.dumps(plain), "learned.json").ok

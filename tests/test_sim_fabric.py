"""The simulated fabric's model, hash functions, parameters and inventory file."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from fabricscope.errors import UsageError
from fabricscope.sim import hashing as H
from fabricscope.sim.fabric import build_fabric, ipv4_str
from fabricscope.sim.inventory_out import write_inventory
from fabricscope.sim.params import PRESETS, SimParams, parse_events, parse_mix

# --------------------------------------------------------------------------- hashing


def test_fmix32_known_values() -> None:
    # MurmurHash3's finaliser: 0 -> 0, and a bijection (no collisions on a sample)
    assert H.fmix32_scalar(0) == 0
    vals = {H.fmix32_scalar(i) for i in range(20000)}
    assert len(vals) == 20000
    assert H.fmix32_scalar(1) == 0x514E28B7


def test_numpy_hashes_match_the_scalar_definitions() -> None:
    rnd = random.Random(5)
    n = 300
    src = np.array([rnd.getrandbits(32) for _ in range(n)], np.uint32)
    dst = np.array([rnd.getrandbits(32) for _ in range(n)], np.uint32)
    proto = np.array([rnd.choice([1, 6, 17]) for _ in range(n)], np.int64)
    sport = np.array([rnd.randrange(65536) for _ in range(n)], np.int64)
    dport = np.array([rnd.randrange(65536) for _ in range(n)], np.int64)
    th = H.tunnel_hash(src, dst, proto, sport, dport)
    ts = H.tunnel_sport(th)
    for i in range(n):
        s, d = ipv4_str(int(src[i])), ipv4_str(int(dst[i]))
        args = (s, d, int(proto[i]), int(sport[i]), int(dport[i]))
        assert int(th[i]) == H.tunnel_hash_scalar(*args)
        assert int(ts[i]) == H.tunnel_sport_scalar(*args)
        assert 49152 <= int(ts[i]) <= 65535
    vm = H.vnf_member(np.full(n, 3, np.int64), src, dst, proto, sport, dport)
    vm_rev = H.vnf_member(np.full(n, 3, np.int64), dst, src, proto, dport, sport)
    assert (vm == vm_rev).all(), "both directions must pick the same VNF"
    for i in range(0, n, 7):
        assert int(vm[i]) == H.vnf_member_scalar(3, ipv4_str(int(src[i])),
                                                 ipv4_str(int(dst[i])), int(proto[i]),
                                                 int(sport[i]), int(dport[i]))


def test_ecmp_hash_ipv4_and_ipv6_match_scalar() -> None:
    rnd = random.Random(9)
    for v6 in (False, True):
        for _ in range(50):
            if v6:
                a = f"fd00:fab:0:{rnd.randrange(300):x}::{rnd.randrange(1, 40):x}"
                b = f"fd00:fab:0:{rnd.randrange(300):x}::{rnd.randrange(1, 40):x}"
            else:
                a = ipv4_str(rnd.getrandbits(32))
                b = ipv4_str(rnd.getrandbits(32))
            leaf, spines = rnd.randrange(100), rnd.choice([2, 4, 8])
            x = rnd.getrandbits(32)
            proto = rnd.choice([17, 47])
            aw, bw = H.ip_words(a), H.ip_words(b)
            got = H.ecmp_member(np.array([leaf]), spines,
                                [np.array([w], np.uint32) for w in aw],
                                [np.array([w], np.uint32) for w in bw],
                                np.array([proto]), np.array([x]))
            assert int(got[0]) == H.ecmp_member_scalar(leaf, spines, a, b, proto, x)


def test_ecmp_spreads_flows_evenly() -> None:
    rng = np.random.default_rng(1)
    n = 40000
    sport = H.tunnel_sport(rng.integers(0, 2**32, n).astype(np.uint32))
    m = H.ecmp_member(np.zeros(n, np.int64), 4, [np.full(n, 0xAC100001, np.uint32)],
                      [np.full(n, 0xAC100102, np.uint32)], np.full(n, 17),
                      (sport << 16) | 4789)
    counts = np.bincount(m, minlength=4)
    assert counts.min() > 0.9 * n / 4 and counts.max() < 1.1 * n / 4


# --------------------------------------------------------------------------- params


def test_presets_validate() -> None:
    for name in PRESETS:
        p = SimParams.preset(name)
        assert p.preset_name == name
    assert SimParams.preset("demo", seed=3).seed == 3


@pytest.mark.parametrize("change", [
    {"spines": 0}, {"encap": "stt"}, {"underlay": "ipv5"}, {"vms": 2, "tenants": 2},
    {"chains": 3, "tenants": 2}, {"duration": 5.0}, {"events": ("earthquake",)},
    {"mix": (("sctp", 1.0),)}, {"vnfs": 0, "chains": 1},
])
def test_bad_params_are_usage_errors(change: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        SimParams().replace(**change).validated()


def test_unknown_preset() -> None:
    with pytest.raises(UsageError, match="unknown preset"):
        SimParams.preset("huge")


def test_parse_mix_and_events() -> None:
    assert parse_mix("tcp:80, udp:15,icmp=5") == (("tcp", 80.0), ("udp", 15.0),
                                                  ("icmp", 5.0))
    with pytest.raises(UsageError):
        parse_mix("tcp:lots")
    assert parse_events("all") == SimParams().events
    assert parse_events("none") == ()
    assert parse_events("migration,congestion") == ("migration", "congestion")
    with pytest.raises(UsageError):
        parse_events("migration,flood")


# --------------------------------------------------------------------------- fabric


def test_demo_fabric_shape() -> None:
    p = SimParams.preset("demo")
    fab = build_fabric(p)
    assert fab.n_devices == p.spines + p.leaves
    assert fab.n_hosts == p.leaves * p.hosts_per_leaf + fab.params.n_gateways
    # every device's ifIndexes are unique, uplinks start at 49
    for d in range(fab.n_devices):
        idx = fab.if_index[fab.if_dev == d]
        assert len(set(idx.tolist())) == idx.shape[0]
    assert int(fab.if_index[fab.leaf_up_if[0, 0]]) == 49
    assert int(fab.if_index[fab.leaf_up_if[0, 1]]) == 50
    assert int(fab.if_index[fab.spine_down_if[1, 2]]) == 3
    # tenants share subnets on different VNIs
    assert len(set(fab.net_vni.tolist())) == len(fab.net_vni)
    web = [fab.ep_ip[e] for t in range(p.tenants) for e in fab.tenant_role_eps[t][0]]
    assert all(ipv4_str(int(ip)).startswith("10.1.") for ip in web)
    # a chain with a firewall, then the IDS inserted after it
    ch = fab.chains[0]
    assert [fab.vnfs[g[0]].kind for g in ch.versions[0].groups] == ["firewall"]
    assert [fab.vnfs[g[0]].kind for g in ch.versions[1].groups] == ["firewall", "ids"]
    kinds = [e.kind for e in fab.events]
    assert kinds == ["vm-migration", "vnf-insertion", "link-errors", "sflow-outage"]
    assert fab.mig_ep >= 0
    assert fab.host_leaf[fab.mig_to_host] != fab.host_leaf[fab.ep_host[fab.mig_ep]]


def test_fabric_is_deterministic() -> None:
    p = SimParams.preset("demo", seed=11)
    a, b = build_fabric(p), build_fabric(p)
    assert a.ep_host.tolist() == b.ep_host.tolist()
    assert a.ep_name == b.ep_name
    c = build_fabric(p.replace(seed=12))
    assert c.ep_host.tolist() != a.ep_host.tolist()


def test_vtep_addresses_ipv6() -> None:
    fab = build_fabric(SimParams.preset("demo", underlay="ipv6"))
    assert fab.host_vtep_text[0] == "fd00:fab::1"
    assert all(t.startswith("fd00:fab:") for t in fab.host_vtep_text)
    assert len(set(fab.host_vtep_text)) == fab.n_hosts


@pytest.mark.parametrize("params", [
    SimParams.preset("demo"),
    SimParams.preset("small", underlay="ipv6", encap="mixed", tenants=4, vms=40, vnfs=7,
                     chains=3),
    SimParams.preset("small", events=(), chains=0, vnfs=0),
    SimParams.preset("small", leaves=20, hosts_per_leaf=48, spines=4, tenants=15, vms=600,
                     vnfs=12, chains=6, gateways=3),
], ids=["demo", "ipv6-mixed", "no-events", "wide"])
def test_inventory_file_validates(params: SimParams, tmp_path: Path) -> None:
    from fabricscope.inventory.fileformat import check_file

    fab = build_fabric(params)
    path = tmp_path / "inventory.yaml"
    n = write_inventory(fab, path)
    doc = check_file(path)
    assert doc.ok, [str(x) for x in doc.problems[:5]]
    assert not doc.problems, [str(x) for x in doc.problems[:5]]
    assert n == len(doc.facts)
    inv = doc.inventory()
    # the migrated VM has two versions, on two hosts
    if fab.mig_ep >= 0:
        vers = inv.versions("endpoints", fab.ep_name[fab.mig_ep])
        assert len(vers) == 2
        assert {v.host for v in vers} == {fab.host_name[fab.ep_host[fab.mig_ep]],
                                         fab.host_name[fab.mig_to_host]}
    if fab.chains:
        assert len(inv.versions("chains", fab.chains[0].name)) == len(
            fab.chains[0].versions)

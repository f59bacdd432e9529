"""The lab's plan and the commands generated from it: pure data, no root needed."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from pathlib import Path

import pytest

from fabricscope.errors import UsageError
from fabricscope.lab.commands import (
    RunPaths,
    all_up_steps,
    chain_steps,
    firewall_ruleset,
    impair_steps,
    migrate_steps,
)
from fabricscope.lab.plan import (
    ECMP_GROUP,
    IFNAMSIZ,
    LabConfig,
    LabPlan,
    build_plan,
    names_by_namespace,
)

CONFIGS = [
    LabConfig(),
    LabConfig(spines=1, leaves=1, hosts=2),
    LabConfig(spines=4, leaves=3, hosts=7, prefix="lab9-"),
    LabConfig(spines=8, leaves=8, hosts=32, encap_b="geneve"),
    LabConfig(spines=2, leaves=2, hosts=4, encap_b="geneve", prefix="x-"),
]
IDS = [f"{c.spines}s{c.leaves}l{c.hosts}h-{c.prefix}{c.encap_b}" for c in CONFIGS]


@pytest.fixture(params=CONFIGS, ids=IDS)
def plan(request: pytest.FixtureRequest) -> LabPlan:
    return build_plan(request.param)


def test_interface_names_fit_and_are_unique_per_namespace(plan: LabPlan) -> None:
    for ns, names in names_by_namespace(plan).items():
        dup = [n for n, c in Counter(names).items() if c > 1]
        assert not dup, f"{ns}: duplicate interface names {dup}"
        for n in names:
            assert len(n) <= IFNAMSIZ, f"{ns}: {n!r} is longer than {IFNAMSIZ}"
            assert n.startswith(plan.prefix), f"{ns}: {n!r} lacks the lab prefix"
            assert re.fullmatch(r"[a-z0-9-]+", n), n


def test_every_name_carries_the_prefix(plan: LabPlan) -> None:
    for ns in plan.namespaces:
        assert ns.name.startswith(plan.prefix)
    for sw in plan.switches:
        assert sw.bridge.startswith(plan.prefix)
    # the only interface in the root namespace is the collector end of the mgmt veth
    assert names_by_namespace(plan)[None] == [plan.mgmt.a.name]


def test_namespaces_unique(plan: LabPlan) -> None:
    names = [ns.name for ns in plan.namespaces]
    assert len(names) == len(set(names))
    assert len(names) == 1 + plan.config.hosts + len(plan.endpoints)


def test_every_veth_has_two_distinct_ends_in_planned_namespaces(plan: LabPlan) -> None:
    known = {ns.name for ns in plan.namespaces} | {None}
    ends = []
    for v in plan.all_veths():
        assert v.a.name and v.b.name
        assert (v.a.ns, v.a.name) != (v.b.ns, v.b.name)
        assert v.a.ns in known and v.b.ns in known
        ends += [(v.a.ns, v.a.name), (v.b.ns, v.b.name)]
    assert len(ends) == len(set(ends))
    c = plan.config
    roles = Counter(v.role for v in plan.veths)
    assert roles["fabric"] == c.spines * c.leaves
    assert roles["access"] == c.hosts
    assert roles["vnic"] == sum(len(e.nics) for e in plan.endpoints)


def test_addresses_unique_per_namespace(plan: LabPlan) -> None:
    per_ns: dict[str | None, list[str]] = {}
    for v in plan.all_veths():
        for end in (v.a, v.b):
            for a in end.addrs:
                per_ns.setdefault(end.ns, []).append(str(ipaddress.IPv4Interface(a).ip))
    for ns, addrs in per_ns.items():
        assert len(addrs) == len(set(addrs)), f"{ns}: {addrs}"
    tunnel = [h.ip for h in plan.hypervisors]
    assert len(tunnel) == len(set(tunnel))
    agents = [s.agent for s in plan.switches]
    assert len(agents) == len(set(agents)), "each switch needs its own sFlow agent address"


def test_macs_unique_and_locally_administered(plan: LabPlan) -> None:
    macs = [e.mac for v in plan.all_veths() for e in (v.a, v.b) if e.mac]
    macs += [p.mac for s in plan.switches for p in s.ports]
    macs = list(dict.fromkeys(macs))  # a switch port's MAC is also its veth end's
    assert len(macs) == len(set(macs))
    for m in macs:
        assert int(m.split(":")[0], 16) & 0x02, m


def test_overlapping_tenant_addresses_are_on_different_vnis(plan: LabPlan) -> None:
    seen: dict[tuple[int, str], str] = {}
    for e in plan.endpoints:
        for n in e.nics:
            key = (plan.network(n.network).vni, n.ip)
            assert key not in seen, f"{e.name} and {seen[key]} share {key}"
            seen[key] = e.name
    a1, b1 = plan.endpoint("a1"), plan.endpoint("b1")
    assert a1.nics[0].ip == b1.nics[0].ip
    assert plan.network(a1.nics[0].network).vni != plan.network(b1.nics[0].network).vni
    assert len({n.vni for n in plan.networks}) == len(plan.networks)


_PORT_REFS = re.compile(r"(?:in_port=|output:)(\d+)")
_GROUP_REFS = re.compile(r"group:(\d+)")


def test_every_flow_rule_refers_to_existing_ports_and_groups(plan: LabPlan) -> None:
    for sw in plan.switches:
        ports = {p.ofport for p in sw.ports}
        assert len(ports) == len(sw.ports)
        groups = {g.group_id for g in sw.groups}
        for f in sw.flows:
            for ref in _PORT_REFS.findall(f.match + " " + f.actions):
                assert int(ref) in ports, f"{sw.name}: {f.spec()} -> no port {ref}"
            for ref in _GROUP_REFS.findall(f.actions):
                assert int(ref) in groups, f"{sw.name}: {f.spec()} -> no group {ref}"
        for g in sw.groups:
            assert g.buckets
            for b in g.buckets:
                for ref in _PORT_REFS.findall(b.actions):
                    assert int(ref) in ports, f"{sw.name}: bucket {b} -> no port {ref}"
        assert any(f.priority == 0 and f.actions == "drop" for f in sw.flows)


def test_routing_is_complete_and_decrements_ttl(plan: LabPlan) -> None:
    for sw in plan.switches:
        for f in sw.flows:
            if f.match.startswith("ip,") and f.actions != "drop":
                assert f.actions.startswith("dec_ttl"), f.spec()
    for lf in plan.leaves():
        for h in plan.hypervisors:
            if h.leaf == lf.name:
                assert any(f"nw_dst={h.ip}" in f.match for f in lf.flows)
                assert any(f"arp_tpa={h.gateway}" in f.match for f in lf.flows)
        if plan.config.leaves > 1:
            (g,) = lf.groups
            assert g.group_id == ECMP_GROUP
            assert {b.to for b in g.buckets} == {s.name for s in plan.spines()}
            assert "udp_src" in g.fields and "ip_dst" in g.fields
            assert "selection_method=hash" in g.spec()
    for sp in plan.spines():
        for lf in plan.leaves():
            assert any(f"nw_dst=172.16.{lf.index}.0/24" in f.match for f in sp.flows)


def test_bucket_rewrites_match_the_spine_port(plan: LabPlan) -> None:
    for lf in plan.leaves():
        for g in lf.groups:
            for b in g.buckets:
                up, down = plan.fabric_link(lf.name, b.to)
                assert f"set_field:{up.mac}->eth_src" in b.actions
                assert f"set_field:{down.mac}->eth_dst" in b.actions
                assert b.actions.endswith(f"output:{up.ofport}")


def test_hypervisors_spread_over_leaves() -> None:
    p = build_plan(LabConfig(spines=2, leaves=2, hosts=4))
    assert [h.leaf for h in p.hypervisors] == ["leaf1", "leaf1", "leaf2", "leaf2"]
    assert [h.ip for h in p.hypervisors] == ["172.16.1.2", "172.16.1.6", "172.16.2.2",
                                             "172.16.2.6"]
    # the default conversations cross the spines
    for a, b in (("a1", "a2"), ("b1", "b2"), ("a1", "rta"), ("fw1", "a3")):
        ha = p.hypervisor(p.endpoint(a).host)
        hb = p.hypervisor(p.endpoint(b).host)
        assert ha.leaf != hb.leaf, (a, b)


def test_plan_is_deterministic_and_placement_overrides() -> None:
    c = LabConfig()
    assert build_plan(c) == build_plan(c)
    moved = build_plan(c, {"a2": "hv2"})
    assert moved.endpoint("a2").host == "hv2"
    vnic = next(v for v in moved.veths if v.role == "vnic" and v.a.ns == "fs-a2")
    assert vnic.b.ns == "fs-hv2"
    with pytest.raises(UsageError):
        build_plan(c, {"zz": "hv1"})
    with pytest.raises(UsageError):
        build_plan(c, {"a2": "hv9"})


@pytest.mark.parametrize("kw", [
    {"prefix": "FS-"}, {"prefix": "toolong-"}, {"prefix": "fs"}, {"hosts": 1},
    {"spines": 0}, {"leaves": 9}, {"hosts": 33}, {"mgmt_net": "169.254.250.1/30"},
    {"mgmt_net": "10.0.0.0/31"}, {"encap_b": "gre"}, {"sampling": 0},
])
def test_config_validation(kw: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        LabConfig(**kw).validate()  # type: ignore[arg-type]


def test_config_round_trips() -> None:
    c = LabConfig(spines=3, prefix="ab-", sampling=32)
    assert LabConfig.from_dict({**c.to_dict(), "unknown": 1}) == c


# -- commands ---------------------------------------------------------------------------

@pytest.fixture
def paths(tmp_path: Path) -> RunPaths:
    return RunPaths(tmp_path / "run")


def test_steps_stay_inside_the_lab(plan: LabPlan, paths: RunPaths) -> None:
    """Safety: only lab namespaces, only the lab's OVS, nothing on the host's interfaces."""
    steps = all_up_steps(plan, paths)
    lab_ns = {ns.name for ns in plan.namespaces}
    root_if = plan.mgmt.a.name
    for s in steps:
        argv = s.argv
        if s.ns is not None:
            assert s.ns in lab_ns, s.shell()
        if argv[0] == "ip" and "-n" in argv:
            assert argv[argv.index("-n") + 1] in lab_ns, s.shell()
        if argv[0] in ("ovs-vsctl", "ovs-ofctl", "ovs-appctl"):
            target = " ".join(argv)
            assert str(paths.ovs_dir) in target, f"not the lab's own OVS: {s.shell()}"
        if argv[:3] == ("ip", "link", "add"):
            # a veth is created with each end directly in its namespace; only the
            # collector end of the mgmt veth stays in the root namespace
            peer = argv.index("name")
            for name_at in (3, peer + 1):
                in_ns = argv[name_at + 1:name_at + 2] == ("netns",)
                assert in_ns or argv[name_at] == root_if, s.shell()
        elif argv[0] == "ip" and s.ns is None and "-n" not in argv:
            # root namespace: only netns management or our own mgmt veth
            assert argv[1] == "netns" or root_if in argv, s.shell()
        if argv[0] in ("ovsdb-server", "ovs-vswitchd"):
            assert s.ns == plan.sw_ns and s.record is not None
            assert all(str(paths.ovs_dir) in a for a in argv if a.startswith("--pidfile"))
        # no route anywhere but the fabric and tenant networks
        if "route" in argv and "add" in argv:
            dst = argv[argv.index("add") + 1]
            assert dst == "default" or ipaddress.IPv4Network(dst).is_private, s.shell()
            if dst == "default":
                assert s.ns is None and argv[2] in {e.ns for e in plan.endpoints}


def test_every_created_object_is_journaled_first(plan: LabPlan, paths: RunPaths) -> None:
    steps = all_up_steps(plan, paths)
    created_ns = [s.record["name"] for s in steps if s.record and s.record["kind"] == "netns"]
    assert sorted(created_ns) == sorted(ns.name for ns in plan.namespaces)
    for s in steps:
        if s.argv[:3] == ("ip", "link", "add") and "veth" in s.argv:
            assert s.record is not None, s.shell()
        if s.argv[:1] in (("iperf3",),) or "sink" in s.argv:
            assert s.record and s.record["kind"] == "process" and s.record["pidfile"]
    # the root-namespace link is recorded as such (lab down deletes it explicitly)
    (link,) = [s.record for s in steps if s.record and s.record["kind"] == "link"]
    assert link["ns"] is None and link["name"] == plan.mgmt.a.name


def test_sflow_is_configured_on_every_switch(plan: LabPlan, paths: RunPaths) -> None:
    steps = [s for s in all_up_steps(plan, paths) if s.argv[0] == "ovs-vsctl"]
    agents = []
    for sw in plan.switches:
        (s,) = [x for x in steps if "add-br" in x.argv and sw.bridge in x.argv]
        text = " ".join(s.argv)
        assert f'target="{plan.collector}"' in text
        assert f"sampling={plan.config.sampling}" in text
        assert f"polling={plan.config.polling}" in text
        assert "datapath_type=netdev" in text
        agents.append(re.search(r"agent=(\S+)", text).group(1))  # type: ignore[union-attr]
    assert agents == [s.agent for s in plan.switches]


def test_offloads_off_on_every_fabric_facing_veth(plan: LabPlan, paths: RunPaths) -> None:
    steps = all_up_steps(plan, paths)
    ethtool = {(s.ns, s.argv[2]) for s in steps if s.argv[0] == "ethtool"}
    for v in plan.veths:
        for end in (v.a, v.b):
            assert (end.ns, end.name) in ethtool, f"{end.ns}/{end.name} keeps TX offload"


def test_chain_steering_is_symmetric() -> None:
    p = build_plan(LabConfig())
    ch = p.chains[0]
    ins = [" ".join(s.argv) for s in chain_steps(p, ch, True)]
    assert any("dport 443" in x and "lookup 100" in x for x in ins)
    assert any("sport 443" in x and "lookup 101" in x for x in ins)
    fw = p.endpoint("fw1")
    assert any(f"via {fw.nic('a-net1').ip}" in x for x in ins)
    assert any(f"via {fw.nic('a-net2').ip}" in x for x in ins)
    rm = chain_steps(p, ch, False)
    assert all(not s.check for s in rm)
    rules = firewall_ruleset(p, fw)
    assert "policy drop" in rules and "dport 443" in rules
    assert p.endpoint("a2").nics[0].ip in rules


def test_migration_replugs_into_the_new_hypervisor() -> None:
    c = LabConfig()
    before, after = build_plan(c), build_plan(c, {"a2": "hv2"})
    steps = migrate_steps(before, after, "a2")
    text = [s.shell() for s in steps]
    assert text[0] == "ip -n fs-hv3 link del fs-a2-0"
    assert any("netns fs-a2" in t and "netns fs-hv2" in t for t in text)
    assert any("master fs-br1001" in t and "fs-hv2" in t for t in text)
    assert "garp" in text[-1]
    assert not any(s.argv[0] == "nft" for s in steps)


@pytest.mark.parametrize("netem", [True, False])
def test_impairment_both_directions(netem: bool) -> None:
    p = build_plan(LabConfig())
    on = impair_steps(p, "leaf1", "spine1", netem, True)
    assert [s.argv[s.argv.index("dev") + 1] for s in on] == ["fs-l1-s1", "fs-s1-l1"]
    assert all(("netem" in s.argv) == netem for s in on)
    off = impair_steps(p, "leaf1", "spine1", netem, False)
    assert all("del" in s.argv and not s.check for s in off)
    with pytest.raises(KeyError):
        p.fabric_link("leaf1", "spine9")

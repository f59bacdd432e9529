"""The inventory model and its time-aware lookups, on the example fabric."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabricscope.inventory import addr
from fabricscope.inventory.fileformat import (
    document_from_facts,
    fact_from_dict,
    facts_from_document,
    read_file,
)
from fabricscope.inventory.index import Inventory
from fabricscope.inventory.model import (
    Endpoint,
    FlowClassifier,
    Host,
    Network,
    Tenant,
    sort_key,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fabric.yaml"


def T(hhmm: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-25T{hhmm}:00+00:00")


MOVE = T("10:05")


@pytest.fixture(scope="module")
def inv() -> Inventory:
    return read_file(EXAMPLE)


def test_migrated_vm_resolves_to_old_host_before_the_move_and_new_host_after(inv: Inventory) -> None:
    before = inv.endpoint_by_ip("10.1.0.5", vni=5001, at=T("10:04"))
    after = inv.endpoint_by_ip("10.1.0.5", vni=5001, at=T("10:07"))
    assert before is not None and after is not None
    assert before.name == after.name == "web-1"
    assert before.host == "hv-1"
    assert after.host == "hv-3"
    # the boundary: valid_from is inclusive, valid_to exclusive
    at_move = inv.endpoint_by_ip("10.1.0.5", vni=5001, at=MOVE)
    assert at_move is not None and at_move.host == "hv-3"
    just_before = inv.endpoint_by_ip("10.1.0.5", vni=5001, at=datetime(2026, 11, 25, 10, 4, 59, 999999, tzinfo=UTC))
    assert just_before is not None and just_before.host == "hv-1"
    # by MAC and by name too
    by_mac = inv.endpoint_by_mac("FA-16-3E-00-01-05", at=T("10:00"))
    assert by_mac is not None and by_mac.host == "hv-1"
    by_mac_int = inv.endpoint_by_mac(0xFA163E000105, vni=5001, at=T("10:10"))
    assert by_mac_int is not None and by_mac_int.host == "hv-3"
    ep = inv.endpoint("web-1", T("10:10"))
    assert ep is not None and ep.host == "hv-3"
    assert len(inv.versions("endpoints", "web-1")) == 2


def test_the_new_host_of_a_migrated_vm_is_found_by_its_tunnel_ip(inv: Inventory) -> None:
    ep = inv.endpoint_by_ip("10.1.0.5", 5001, T("10:07"))
    assert ep is not None and ep.host is not None
    host = inv.host(ep.host, T("10:07"))
    assert host is not None
    assert inv.host_by_tunnel_ip(host.tunnel_ips[0], T("10:07")) == host
    assert [e.name for e in inv.endpoints_on_host("hv-1", T("10:00")) if e.tenant == "acme"] == ["web-1"]
    assert [e.name for e in inv.endpoints_on_host("hv-1", T("10:07")) if e.tenant == "acme"] == []


def test_overlapping_tenant_ips_are_told_apart_by_vni(inv: Inventory) -> None:
    acme = inv.endpoint_by_ip("10.1.0.5", 5001, T("10:00"))
    globex = inv.endpoint_by_ip("10.1.0.5", 6001, T("10:00"))
    assert acme is not None and acme.name == "web-1" and inv.tenant_of(acme) == "acme"
    assert globex is not None and globex.name == "app-1" and inv.tenant_of(globex) == "globex"
    # without a VNI the address is ambiguous: no guess
    assert inv.endpoint_by_ip("10.1.0.5", at=T("10:00")) is None
    assert {e.name for e in inv.endpoints_by_ip("10.1.0.5", T("10:00"))} == {"web-1", "app-1"}
    # an address only one tenant uses needs no VNI
    db = inv.endpoint_by_ip("10.2.0.9", at=T("10:00"))
    assert db is not None and db.name == "db-1"
    # the encapsulation can narrow a VNI
    assert inv.endpoint_by_ip("10.1.0.5", 5001, T("10:00"), encap="geneve") is None
    net = inv.network_by_vni(6001, T("10:00"))
    assert net is not None and net.name == "globex-app"
    assert inv.network_by_vni(6001, T("10:00"), encap="vxlan") == net
    assert inv.network_by_vni(9999, T("10:00")) is None


def test_underlay_lookups(inv: Inventory) -> None:
    at = T("10:00")
    # outer IPs in any form: text, IPv4-mapped IPv6, 16 raw bytes
    assert inv.host_by_tunnel_ip("172.16.1.11", at).name == "hv-1"  # type: ignore[union-attr]
    assert inv.host_by_tunnel_ip("::ffff:172.16.1.11", at).name == "hv-1"  # type: ignore[union-attr]
    assert inv.host_by_tunnel_ip(addr.ip16("172.16.1.12"), at).name == "hv-2"  # type: ignore[union-attr]
    assert inv.host_by_tunnel_ip("172.16.9.9", at) is None
    assert inv.host_by_ip("192.168.0.13", at).name == "hv-3"  # type: ignore[union-attr]
    dev = inv.device_by_agent("10.255.0.11", at)
    assert dev is not None and dev.name == "leaf-1" and dev.role == "leaf"
    found = inv.interface("10.255.0.11", 49, at)
    assert found is not None
    assert found.device.name == "leaf-1" and found.interface.name == "eth49"
    assert found.interface.speed == 100_000_000_000
    assert inv.interface("10.255.0.11", 77, at) is None
    assert inv.interface("10.9.9.9", 1, at) is None
    # declared leaf-spine link, by name or by ifIndex, seen from either end
    link = inv.link_of("leaf-1", 49, at)
    assert link is not None and link.key == "leaf-1:eth49--spine-1:eth1"
    assert inv.link_of("spine-1", "eth1", at) == link
    far = link.other("leaf-1", "eth49")
    assert far is not None and far.label == "spine-1:eth1"
    # host NIC cabling written on the host
    cab = inv.link_of("leaf-1", "eth1", at)
    assert cab is not None and cab.b.host == "hv-1" and cab.b.nic == "eth0"
    # host NIC cabling written as a link
    gw = inv.link_of("leaf-2", "eth3", at)
    assert gw is not None and gw.name == "gw-1-uplink"
    assert inv.link_of("leaf-2", "eth50", at) is not None
    assert inv.link_of("leaf-2", 99, at) is None
    # every link at that time: 5 declared + 4 from host cabling
    assert len(inv.links(at)) == 9
    # the vswitch of a hypervisor
    ovs = inv.vswitch_of_host("hv-2", at)
    assert ovs is not None and ovs.agent == "192.168.0.12" and ovs.role == "vswitch"


def test_chains_and_vnfs_change_over_time(inv: Inventory) -> None:
    before = inv.chains(T("10:29"))
    after = inv.chains(T("10:31"))
    assert [c.vnf_names() for c in before] == [("fw-1",)]
    assert [c.vnf_names() for c in after] == [("fw-1", "ids-1")]
    vnf = inv.vnf_of_endpoint("fw-1-in", T("10:00"))
    assert vnf is not None and vnf.name == "fw-1" and vnf.kind == "firewall" and vnf.stateful
    assert vnf.port_endpoints("ingress") == ("fw-1-in",)
    assert inv.vnf_of_endpoint("ids-1-in", T("10:00")) is None
    ids = inv.vnf_of_endpoint("ids-1-in", T("10:30"))
    assert ids is not None and ids.name == "ids-1"
    assert [c.name for c in inv.chains_of_vnf("ids-1", T("10:31"))] == ["acme-web-https"]
    fc = after[0].classifiers[0]
    assert fc.protocol == 6
    assert fc.matches("198.51.100.7", "10.1.0.5", protocol=6, sport=40000, dport=443)
    assert not fc.matches("198.51.100.7", "10.1.0.5", protocol=6, sport=40000, dport=80)
    assert not fc.matches("198.51.100.7", "10.1.0.5", protocol=17, dport=443)
    assert not fc.matches("198.51.100.7", "10.2.0.9", protocol=6, dport=443)
    assert not fc.matches("2001:db8::1", "2001:db8::2", protocol=6, dport=443)


def test_snapshot_view_answers_at_one_instant(inv: Inventory) -> None:
    v = inv.at(T("10:00"))
    w = inv.at(T("10:10"))
    assert v.endpoint_by_ip("10.1.0.5", 5001).host == "hv-1"  # type: ignore[union-attr]
    assert w.endpoint_by_ip("10.1.0.5", 5001).host == "hv-3"  # type: ignore[union-attr]
    assert v.counts()["endpoints"] == 9
    assert inv.at(T("10:31")).counts()["endpoints"] == 11
    assert v.network_by_vni(5001).name == "acme-web"  # type: ignore[union-attr]
    assert [c.name for c in v.chains()] == ["acme-web-https"]
    assert v.interface("10.255.0.1", 2).interface.name == "eth2"  # type: ignore[union-attr]
    assert MOVE in inv.change_times() and T("10:30") in inv.change_times()


def test_naive_times_are_utc_and_none_is_now(inv: Inventory) -> None:
    naive = datetime(2026, 11, 25, 10, 0)
    assert inv.endpoint_by_ip("10.1.0.5", 5001, naive).host == "hv-1"  # type: ignore[union-attr]
    now = inv.endpoint_by_ip("10.1.0.5", 5001)  # the present: after the move
    assert now is not None and now.host == "hv-3"


def test_declared_facts_hide_learned_ones() -> None:
    declared = Host(name="hv-1", tunnel_ips=("10.0.0.1",))
    learned = Host(name="vtep-10.0.0.1", tunnel_ips=("10.0.0.1",), learned=True, evidence=7,
                   source="learned")
    inv = Inventory([learned, declared])
    assert inv.host_by_tunnel_ip("10.0.0.1", T("10:00")) == declared
    only_learned = Inventory([learned])
    got = only_learned.host_by_tunnel_ip("10.0.0.1", T("10:00"))
    assert got is not None and got.learned and got.evidence == 7


def test_facts_round_trip_through_the_file_format(inv: Inventory) -> None:
    facts = list(inv)
    doc = document_from_facts(facts)
    again = facts_from_document(doc)
    assert sorted(again, key=sort_key) == sorted(facts, key=sort_key)
    assert doc["version"] == 1


def test_validity_is_half_open() -> None:
    t = Tenant(name="a", valid_from=T("10:00"), valid_to=T("11:00"))
    assert not t.valid_at(T("09:59"))
    assert t.valid_at(T("10:00"))
    assert t.valid_at(T("10:59"))
    assert not t.valid_at(T("11:00"))
    assert t.overlaps(Tenant(name="a", valid_from=T("10:59")))
    assert not t.overlaps(Tenant(name="a", valid_from=T("11:00")))
    assert not t.overlaps(Tenant(name="a", valid_to=T("10:00")))
    assert Tenant(name="a").overlaps(Tenant(name="a"))


def test_network_contains_and_endpoint_defaults() -> None:
    n = fact_from_dict("networks", {"name": "n", "vni": 1, "subnets": ["10.1.0.0/24"]})
    assert isinstance(n, Network)
    assert n.contains("10.1.0.7") and not n.contains("10.2.0.7")
    e = fact_from_dict("endpoints", {"name": "e", "ips": ["::ffff:10.1.0.7", "2001:DB8::1"],
                                     "mac": "0011.2233.4455"})
    assert isinstance(e, Endpoint)
    assert e.kind == "vm"
    assert e.ips == ("10.1.0.7", "2001:db8::1")
    assert e.mac == "00:11:22:33:44:55"


@pytest.mark.parametrize(
    ("text", "bps"),
    [("25G", 25 * 10**9), ("100 Gbps", 100 * 10**9), ("1.5G", 1_500_000_000), (10, 10), ("400g", 400 * 10**9)],
)
def test_parse_speed(text: object, bps: int) -> None:
    assert addr.parse_speed(text) == bps


@pytest.mark.parametrize("bad", ["fast", "-1G", True, -5, "G"])
def test_parse_speed_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        addr.parse_speed(bad)


def test_time_parsing_needs_a_zone() -> None:
    assert addr.parse_rfc3339("2026-11-25T10:05:00Z") == MOVE
    assert addr.parse_rfc3339("2026-11-25T11:05:00+01:00") == MOVE
    assert addr.parse_rfc3339("2026-11-25T10:05:00.123456789Z").microsecond == 123456
    for bad in ("2026-11-25T10:05:00", "2026-11-25", "yesterday", "2026-13-45T10:05:00Z"):
        with pytest.raises(ValueError):
            addr.parse_rfc3339(bad)
    assert addr.format_time(MOVE) == "2026-11-25T10:05:00Z"


@given(st.integers(min_value=0, max_value=2**48 - 1))
def test_mac_int_round_trip(value: int) -> None:
    assert addr.mac_to_int(addr.int_to_mac(value)) == value


@given(st.ip_addresses())
def test_ip16_round_trip(ip: object) -> None:
    raw = addr.ip16(ip)
    assert len(raw) == 16
    assert addr.ip_address(raw) == addr.ip_address(ip)


def test_classifier_port_ranges() -> None:
    fc = FlowClassifier(protocol=17, destination_port_range_min=1000, destination_port_range_max=2000)
    assert fc.matches("10.0.0.1", "10.0.0.2", protocol=17, dport=1500)
    assert not fc.matches("10.0.0.1", "10.0.0.2", protocol=17, dport=2001)
    assert not fc.matches("10.0.0.1", "10.0.0.2", protocol=17)  # unknown port never matches a range
    assert FlowClassifier().matches("10.0.0.1", "10.0.0.2")

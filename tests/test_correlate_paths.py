"""Path building from observations: segment chaining, hop order, ECMP, migration, SFC labels."""

from __future__ import annotations

from fabricscope.correlate.observe import Obs
from fabricscope.correlate.paths import build_paths
from fabricscope.records.present import ip_bytes

S = 1_000_000_000


def ip(t: str) -> bytes:
    return ip_bytes(t)


HOSTS = {ip("172.16.1.11"): "hv-1", ip("172.16.1.12"): "hv-2", ip("172.16.2.13"): "hv-3",
         ip("172.16.2.14"): "hv-4"}
LEAF1, LEAF2, SPINE1, SPINE2 = ip("10.255.0.11"), ip("10.255.0.12"), ip("10.255.0.1"), ip("10.255.0.2")


def host_of(b: bytes | None) -> str | None:
    return None if b is None else HOSTS.get(b, "?")


def obs(inner, outer_src, outer_dst, agent, in_if, out_if, ttl, t0, t1, *, sport=40000,
        samples=10, vni=5001, mpls=None) -> Obs:
    return Obs(inner=inner, encap="vxlan", vni=vni, outer_src=ip(outer_src),
               outer_dst=ip(outer_dst), outer5=(17, sport, 4789), agent=agent, in_if=in_if,
               out_if=out_if, samples=samples, est_packets=samples * 1000.0,
               est_bytes=samples * 1500_000.0, first_ns=t0 * S, last_ns=t1 * S, ttl=ttl,
               mpls_label=mpls)


F1 = (ip("10.1.0.5"), ip("10.2.0.9"), 6, 43512, 443)
F2 = (ip("10.1.0.5"), ip("10.2.0.9"), 6, 43513, 443)


def devices(path) -> list[list[bytes | None]]:
    return [[h.agent for h in s.hops] for s in path.segments]


def test_hops_ordered_by_decreasing_outer_ttl() -> None:
    o = [obs(F1, "172.16.1.11", "172.16.2.13", SPINE1, 1, 2, 63, 0, 10),
         obs(F1, "172.16.1.11", "172.16.2.13", LEAF2, 49, 1, 62, 0, 10),
         obs(F1, "172.16.1.11", "172.16.2.13", LEAF1, 1, 49, 64, 0, 10)]
    paths = build_paths(o, host_of)
    assert len(paths) == 1
    assert devices(paths[0]) == [[LEAF1, SPINE1, LEAF2]]
    assert paths[0].segments[0].hops[0].in_if == 1
    assert paths[0].agg.samples == 30
    # every hop saw the same packets: the path estimate is the mean, not the sum
    est_p, _ = paths[0].estimate()
    assert est_p == 10_000.0


def test_segments_chain_through_a_vnf_host_in_order() -> None:
    # hv-1 -> hv-2 (firewall) -> hv-3, given in reverse order
    o = [obs(F1, "172.16.1.12", "172.16.2.13", LEAF1, 2, 49, 64, 1, 11, sport=50000),
         obs(F1, "172.16.1.11", "172.16.1.12", LEAF1, 1, 2, 64, 0, 10)]
    paths = build_paths(o, host_of)
    assert len(paths) == 1
    segs = paths[0].segments
    assert [host_of(s.outer_src) for s in segs] == ["hv-1", "hv-2"]
    assert [host_of(s.outer_dst) for s in segs] == ["hv-2", "hv-3"]


def test_migration_gives_two_paths_in_their_own_time_spans() -> None:
    o = [obs(F1, "172.16.1.11", "172.16.1.12", LEAF1, 1, 2, 64, 0, 100),     # before, from hv-1
         obs(F1, "172.16.2.14", "172.16.1.12", LEAF2, 2, 49, 64, 200, 300),  # after, from hv-4
         obs(F1, "172.16.1.12", "172.16.2.13", LEAF1, 2, 49, 64, 0, 300)]    # fw -> dst
    paths = build_paths(o, host_of)
    starts = sorted(host_of(p.segments[0].outer_src) for p in paths)
    assert starts == ["hv-1", "hv-4"]
    for p in paths:
        assert host_of(p.segments[-1].outer_dst) == "hv-3"
        assert len(p.segments) == 2
    # the migrated leg must not be chained to the old one (no time overlap)
    assert all(len({host_of(s.outer_src) for s in p.segments}) == 2 for p in paths)


def test_ecmp_members_are_distinct_paths_with_shares() -> None:
    o = [obs(F1, "172.16.1.11", "172.16.2.13", LEAF1, 1, 49, 64, 0, 10, sport=40001, samples=30),
         obs(F1, "172.16.1.11", "172.16.2.13", SPINE1, 1, 2, 63, 0, 10, sport=40001, samples=30),
         obs(F2, "172.16.1.11", "172.16.2.13", LEAF1, 1, 50, 64, 0, 10, sport=40002, samples=10),
         obs(F2, "172.16.1.11", "172.16.2.13", SPINE2, 1, 2, 63, 0, 10, sport=40002, samples=10)]
    paths = build_paths(o, host_of)
    assert len(paths) == 2
    assert devices(paths[0]) == [[LEAF1, SPINE1]]  # the bigger share first
    assert devices(paths[1]) == [[LEAF1, SPINE2]]
    assert paths[0].agg.samples == 60 and paths[1].agg.samples == 20
    assert paths[0].segments[0].outer5 == {(17, 40001, 4789)}


def test_flows_with_identical_paths_are_merged() -> None:
    o = [obs(F1, "172.16.1.11", "172.16.2.13", SPINE1, 1, 2, 63, 0, 10, sport=40001),
         obs(F2, "172.16.1.11", "172.16.2.13", SPINE1, 1, 2, 63, 5, 20, sport=40009)]
    paths = build_paths(o, host_of)
    assert len(paths) == 1
    assert paths[0].flows == {F1, F2}
    assert paths[0].agg.first_ns == 0 and paths[0].agg.last_ns == 20 * S


def test_sfc_labels_order_segments_by_service_index() -> None:
    chain = 7 << 8
    o = [obs(F1, "172.16.2.13", "172.16.2.14", None, None, None, None, 0, 10, mpls=chain | 253),
         obs(F1, "172.16.1.11", "172.16.1.12", None, None, None, None, 0, 10, mpls=chain | 255),
         obs(F1, "172.16.1.12", "172.16.2.13", None, None, None, None, 0, 10, mpls=chain | 254)]
    paths = build_paths(o, host_of)
    assert len(paths) == 1
    assert [s.mpls_label & 0xFF for s in paths[0].segments] == [255, 254, 253]
    # captures without an agent are observation points but not hops
    assert all(s.hops == [] for s in paths[0].segments)

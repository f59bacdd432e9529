"""trace on decoded records: naming, VNF chaining, inferred hops from the topology.

Frames are built with scapy, decoded by fabricscope's own decoder, then given the sFlow
observation columns (agent, in_if, out_if, sampling_rate) that a switch would add.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from fabricscope.decode import PacketDecoder
from fabricscope.inventory.fileformat import read_file
from fabricscope.query._trace import TraceQuery, trace_records
from fabricscope.query.common import Window
from fabricscope.records.arrow import IP_TYPE
from fabricscope.records.present import ip_bytes
from framehelp import frames_from_bytes

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fabric.yaml"
T0 = datetime(2026, 11, 25, 10, 1, tzinfo=UTC)


def vxlan(outer_src: str, outer_dst: str, ttl: int, sport: int) -> bytes:
    inner = (Ether(src="fa:16:3e:00:00:01", dst="fa:16:3e:00:01:05")
             / IP(src="10.1.0.1", dst="10.1.0.5") / TCP(sport=43512, dport=443, flags="A"))
    return bytes(Ether() / IP(src=outer_src, dst=outer_dst, ttl=ttl)
                 / UDP(sport=sport, dport=4789) / VXLAN(vni=5001) / inner)


def sampled(rows: list[tuple[bytes, str, int, int, int]]) -> pa.Table:
    """(frame, agent, in_if, out_if, seconds after T0) -> records as a switch reports them."""
    ts = [int((T0 + timedelta(seconds=r[4])).timestamp() * 1e9) for r in rows]
    batch = PacketDecoder().decode(frames_from_bytes([r[0] for r in rows], ts_ns=ts))
    t = pa.Table.from_batches([batch])
    n = t.num_rows

    def setcol(name: str, arr: pa.Array) -> None:
        nonlocal t
        t = t.set_column(t.schema.get_field_index(name), name, arr)

    setcol("agent", pa.array([ip_bytes(r[1]) for r in rows], IP_TYPE))
    setcol("in_if", pa.array([r[2] for r in rows], pa.uint32()))
    setcol("out_if", pa.array([r[3] for r in rows], pa.uint32()))
    setcol("sampling_rate", pa.array([1000] * n, pa.uint32()))
    return t


@pytest.fixture(scope="module")
def result() -> dict:  # type: ignore[type-arg]
    leaf1, leaf2 = "10.255.0.11", "10.255.0.12"
    seg1 = vxlan("172.16.2.20", "172.16.2.14", 64, 50001)   # gw-1 -> hv-4 (fw-1)
    seg2_l2 = vxlan("172.16.2.14", "172.16.1.11", 64, 50002)  # hv-4 -> hv-1, at leaf-2
    seg2_l1 = vxlan("172.16.2.14", "172.16.1.11", 62, 50002)  # same packet at leaf-1
    rows = [(seg1, leaf2, 3, 2, k) for k in range(5)]
    rows += [(seg2_l2, leaf2, 2, 50, k) for k in range(4)]
    rows += [(seg2_l1, leaf1, 50, 1, k) for k in range(3)]
    records = sampled(rows)
    q = TraceQuery(src="10.1.0.1", dst="10.1.0.5",
                   window=Window(T0 - timedelta(minutes=1), T0 + timedelta(minutes=5)))
    return trace_records(records, read_file(EXAMPLE), q)


def test_endpoints_are_named(result) -> None:  # type: ignore[no-untyped-def]
    assert result["src"]["endpoint"] == "acme-gw"
    assert result["src"]["tenant"] == "acme"
    assert result["dst"]["endpoint"] == "web-1"
    assert result["dst"]["host"] == "hv-1"  # before the 10:05 migration


def test_one_path_through_the_firewall(result) -> None:  # type: ignore[no-untyped-def]
    assert len(result["paths"]) == 1
    p = result["paths"][0]
    assert p["vnfs"] == ["fw-1"]
    assert [(s["src_host"], s["dst_host"]) for s in p["segments"]] == [
        ("gw-1", "hv-4"), ("hv-4", "hv-1")]
    assert p["segments"][0]["network"] == "acme-web"
    assert p["samples"] == 12
    assert p["share"] == 1.0


def test_hops_named_ordered_and_spine_inferred(result) -> None:  # type: ignore[no-untyped-def]
    seg1, seg2 = result["paths"][0]["segments"]
    assert [(h["device"], h["in_if"], h["out_if"], h["inferred"]) for h in seg1["hops"]] == [
        ("leaf-2", "eth3", "eth2", False)]
    hops = [(h["device"], h["in_if"], h["out_if"], h["inferred"]) for h in seg2["hops"]]
    assert hops == [("leaf-2", "eth2", "eth50", False),
                    ("spine-2", "eth2", "eth1", True),
                    ("leaf-1", "eth50", "eth1", False)]
    leaf2 = seg2["hops"][0]
    assert leaf2["samples"] == 4 and leaf2["est_packets"] == 4000
    assert seg2["hops"][1]["samples"] == 0


def test_zero_inventory_falls_back_to_raw_identities() -> None:
    rows = [(vxlan("172.16.2.20", "172.16.2.14", 64, 50001), "10.255.0.12", 3, 2, 0)]
    q = TraceQuery(src="10.1.0.1", dst="10.1.0.5",
                   window=Window(T0 - timedelta(minutes=1), T0 + timedelta(minutes=5)))
    r = trace_records(sampled(rows), None, q)
    seg = r["paths"][0]["segments"][0]
    assert (seg["src_host"], seg["dst_host"]) == ("172.16.2.20", "172.16.2.14")
    hop = seg["hops"][0]
    assert (hop["device"], hop["in_if"], hop["out_if"]) == (
        "10.255.0.12", "10.255.0.12:3", "10.255.0.12:2")
    assert r["src"]["endpoint"] is None

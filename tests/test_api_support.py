"""Shared by the API and web tests (imported by them; holds no tests itself): a small real
store built from frames decoded by fabricscope's own decoder, on the example fabric.

The flow acme-gw (10.1.0.1, on gw-1) -> web-1 (10.1.0.5, on hv-1 before 10:05), TCP 443,
goes through the firewall fw-1 on hv-4 (chain acme-web-https): segment 1 gw-1 -> hv-4
seen at leaf-2; segment 2 hv-4 -> hv-1 seen at leaf-2, spine-2 and leaf-1. Interface
counters (two polls per port, 30 s apart) give the links a utilisation; spine-2 eth2 has
errors.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fabric.yaml"
T0 = datetime(2026, 11, 25, 10, 1, tzinfo=UTC)
SINCE = "2026-11-25T10:00:00Z"
UNTIL = "2026-11-25T10:04:00Z"
TOKEN = "test-token-0123456789abcdef"
FLOW = {"src": "10.1.0.1", "dst": "10.1.0.5", "dport": 443, "proto": "tcp"}
PATH_SWITCHES = {"leaf-2", "spine-2", "leaf-1"}

LEAF1, LEAF2, SPINE2 = "10.255.0.11", "10.255.0.12", "10.255.0.2"
GW1, HV4, HV1 = "172.16.2.20", "172.16.2.14", "172.16.1.11"


def _vxlan(outer_src: str, outer_dst: str, ttl: int, sport: int) -> bytes:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    inner = (Ether(src="fa:16:3e:00:00:01", dst="fa:16:3e:00:01:05")
             / IP(src="10.1.0.1", dst="10.1.0.5") / TCP(sport=43512, dport=443, flags="A")
             / (b"x" * 200))
    return bytes(Ether() / IP(src=outer_src, dst=outer_dst, ttl=ttl)
                 / UDP(sport=sport, dport=4789) / VXLAN(vni=5001) / inner)


def records() -> pa.Table:
    """The sampled records, as the switches would report them."""
    from fabricscope.decode import PacketDecoder
    from fabricscope.records.arrow import IP_TYPE
    from fabricscope.records.present import ip_bytes
    from framehelp import frames_from_bytes

    seg1 = _vxlan(GW1, HV4, 64, 50001)
    rows: list[tuple[bytes, str, int, int, int]] = [(seg1, LEAF2, 3, 2, k) for k in range(6)]
    rows += [(_vxlan(HV4, HV1, 64, 50002), LEAF2, 2, 50, k) for k in range(5)]
    rows += [(_vxlan(HV4, HV1, 63, 50002), SPINE2, 2, 1, k) for k in range(4)]
    rows += [(_vxlan(HV4, HV1, 62, 50002), LEAF1, 50, 1, k) for k in range(4)]
    ts = [int((T0 + timedelta(seconds=10 * r[4] + i * 0.01)).timestamp() * 1e9)
          for i, r in enumerate(rows)]
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


def counters() -> pa.Table:
    """Two polls 30 s apart of every switch port on the path, and spine-2's errors."""
    from fabricscope.store.synthetic import counters as make

    ports = [(LEAF2, 3, 25e9), (LEAF2, 2, 25e9), (LEAF2, 50, 100e9), (SPINE2, 2, 100e9),
             (SPINE2, 1, 100e9), (LEAF1, 50, 100e9), (LEAF1, 1, 25e9), (LEAF1, 49, 100e9)]
    rows: list[dict[str, Any]] = []
    for k, (agent, ix, speed) in enumerate(ports):
        for poll in range(2):
            ts = T0 + timedelta(seconds=30 * poll)
            util = 0.95 if (agent, ix) == (LEAF2, 50) else 0.2 + 0.05 * k
            octets = int(poll * util * speed * 30 / 8)
            rows.append({
                "ts": ts, "agent": agent, "sub_agent": 0, "seq": poll + 1,
                "uptime_ms": 1_000_000 + 30_000 * poll, "sample_seq": poll + 1,
                "source_id": ix, "ifindex": ix, "iftype": 6, "speed": int(speed),
                "direction": 1, "status": 3, "in_octets": octets, "out_octets": octets,
                "in_ucast": 1000 * poll, "out_ucast": 1000 * poll,
                "in_errors": 50 * poll if (agent, ix) == (SPINE2, 2) else 0,
                "out_errors": 0, "in_discards": 0, "out_discards": 0,
                "port_name": f"eth{ix}"})
    return make(rows)


def build_store(path: Path) -> str:
    """A real embedded store at ``path`` with :func:`records` and :func:`counters`."""
    from fabricscope.store import open_store

    with open_store(str(path), write=True) as st:
        st.append(records(), counters(), batch_id="api-test")
    return str(path)


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

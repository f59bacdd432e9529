"""A hand-built sFlow capture of the example fabric (examples/fabric.yaml), with known truth.

Switches sample on ingress (the header shows the outer TTL as received: 64 at the first
leaf, 63 at the spine, 62 at the last leaf), 1 in 1000, and send datagrams to a collector.

Flows (tenant acme unless said otherwise), all TCP to port 443 of web-1 (10.1.0.5):

* ``A``   acme-gw 10.1.0.1:43512, through the firewall fw-1 on hv-4 (chain acme-web-https):
          gw-1 -> hv-4 (leaf-2 eth3>eth2), hv-4 -> hv-1 (leaf-2 eth2>eth49, spine-1
          eth2>eth1, leaf-1 eth49>eth1), 10:01-10:04. After web-1 migrates to hv-3 at 10:05:
          hv-4 -> hv-3 (leaf-2 eth2>eth1), 10:06-10:09.
* ``B``   acme-gw 10.1.0.1:43600, same chain, the other ECMP member: hv-4 -> hv-1 over
          spine-2 (leaf-2 eth2>eth50, spine-2 eth2>eth1, leaf-1 eth50>eth1), 10:01-10:04.
* ``BYP`` acme-gw 10.1.0.1:43700 straight to hv-1, bypassing the firewall (a violation):
          gw-1 -> hv-1 (leaf-2 eth3>eth49, spine-1 eth2>eth1, leaf-1 eth49>eth1), 10:02-10:03.
* ``C``   globex app-1 10.1.0.5:51000 (hv-2) -> app-2 10.1.0.6:8080 (hv-4), VNI 6001:
          leaf-1 eth2>eth49, spine-1 eth1>eth2, leaf-2 eth49>eth2, 10:01-10:04.

Counters every 20 s for the spine ports and leaf uplinks; spine-1 eth2 (ifIndex 2)
accumulates input errors from 10:00 on (the "erroring link" leaf-2 eth49 -- spine-1 eth2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from fabricscope.capture.writer import PcapWriter
from fabricscope.sflow import encode as E

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
COLLECTOR = "192.0.2.100"
AGENTS = {"spine-1": "10.255.0.1", "spine-2": "10.255.0.2", "leaf-1": "10.255.0.11",
          "leaf-2": "10.255.0.12"}
VTEP = {"hv-1": "172.16.1.11", "hv-2": "172.16.1.12", "hv-3": "172.16.2.13",
        "hv-4": "172.16.2.14", "gw-1": "172.16.2.20"}
TTL_AT = (64, 63, 62)
RATE = 1000


@dataclass
class Leg:
    src_host: str
    dst_host: str
    vni: int
    hops: list[tuple[str, int, int]]  # device, in ifIndex, out ifIndex


@dataclass
class Flow:
    name: str
    src: str
    dst: str
    sport: int
    dport: int
    legs: list[Leg]
    start_s: int
    end_s: int
    every_s: int = 10


def _if(name: str) -> int:
    return int(name.removeprefix("eth"))


def _leg(a: str, b: str, vni: int, hops: str) -> Leg:
    out = []
    for h in hops.split():
        dev, ports = h.split(":")
        i, o = ports.split(">")
        out.append((dev, _if(i), _if(o)))
    return Leg(a, b, vni, out)


FLOWS: list[Flow] = [
    Flow("A", "10.1.0.1", "10.1.0.5", 43512, 443,
         [_leg("gw-1", "hv-4", 5001, "leaf-2:eth3>eth2"),
          _leg("hv-4", "hv-1", 5001, "leaf-2:eth2>eth49 spine-1:eth2>eth1 leaf-1:eth49>eth1")],
         60, 240),
    Flow("A-after", "10.1.0.1", "10.1.0.5", 43512, 443,
         [_leg("gw-1", "hv-4", 5001, "leaf-2:eth3>eth2"),
          _leg("hv-4", "hv-3", 5001, "leaf-2:eth2>eth1")],
         360, 540),
    Flow("B", "10.1.0.1", "10.1.0.5", 43600, 443,
         [_leg("gw-1", "hv-4", 5001, "leaf-2:eth3>eth2"),
          _leg("hv-4", "hv-1", 5001, "leaf-2:eth2>eth50 spine-2:eth2>eth1 leaf-1:eth50>eth1")],
         60, 240),
    Flow("BYP", "10.1.0.1", "10.1.0.5", 43700, 443,
         [_leg("gw-1", "hv-1", 5001, "leaf-2:eth3>eth49 spine-1:eth2>eth1 leaf-1:eth49>eth1")],
         120, 180),
    Flow("C", "10.1.0.5", "10.1.0.6", 51000, 8080,
         [_leg("hv-2", "hv-4", 6001, "leaf-1:eth2>eth49 spine-1:eth1>eth2 leaf-2:eth49>eth2")],
         60, 240),
]


def _outer_sport(flow: Flow, leg: Leg) -> int:
    """A deterministic stand-in for the VTEP's hash of the inner flow."""
    return 49152 + ((flow.sport * 31 + sum(map(ord, leg.src_host + leg.dst_host))) % 16384)


def frame(flow: Flow, leg: Leg, ttl: int, size: int = 1400) -> bytes:
    inner = (Ether(src="fa:16:3e:00:00:01", dst="fa:16:3e:00:01:05")
             / IP(src=flow.src, dst=flow.dst, ttl=64)
             / TCP(sport=flow.sport, dport=flow.dport, flags="PA") / (b"x" * size))
    pkt = (Ether(src="52:54:00:aa:00:01", dst="52:54:00:bb:00:01")
           / IP(src=VTEP[leg.src_host], dst=VTEP[leg.dst_host], ttl=ttl)
           / UDP(sport=_outer_sport(flow, leg), dport=4789) / VXLAN(vni=leg.vni) / inner)
    return bytes(pkt)


def build(path: Path) -> Path:
    """Write the capture; returns its path."""
    events: list[tuple[int, str, bytes]] = []  # (ns, agent device, sample)
    seqs: dict[str, int] = {}
    sample_seq: dict[tuple[str, int], int] = {}

    def next_seq(key: tuple[str, int]) -> int:
        sample_seq[key] = sample_seq.get(key, 0) + 1
        return sample_seq[key]

    for f in FLOWS:
        for t in range(f.start_s, f.end_s + 1, f.every_s):
            for leg in f.legs:
                for k, (dev, i, o) in enumerate(leg.hops):
                    ttl = TTL_AT[k] if len(leg.hops) == 3 else 64 - k
                    full = frame(f, leg, ttl)
                    s = E.flow_sample(
                        seq=next_seq((dev, i)), source_id_index=i, sampling_rate=RATE,
                        sample_pool=RATE * t, input_if=i, output_if=o, expanded=True,
                        records=[E.raw_header(full[:128], frame_length=len(full) + 4)])
                    events.append(((t * 10**9) + k * 1000, dev, s))
    # counters every 20 s, 10:00:00 .. 10:10:00
    ports = {"spine-1": [1, 2], "spine-2": [1, 2], "leaf-1": [1, 2, 49, 50],
             "leaf-2": [1, 2, 3, 49, 50]}
    for t in range(0, 601, 20):
        for dev, ifs in ports.items():
            for ix in ifs:
                errors = (t // 20) * 50 if (dev, ix) == ("spine-1", 2) else 0
                c = E.counter_sample(seq=next_seq((dev, 1000 + ix)), source_id_index=ix, records=[
                    E.generic_interface_counters(ifindex=ix, speed=100 * 10**9,
                                                 in_octets=t * 10**8, out_octets=t * 10**8,
                                                 in_ucast=t * 1000, out_ucast=t * 1000,
                                                 in_errors=errors),
                    E.port_name(f"eth{ix}")])
                events.append((t * 10**9 + 500_000, dev, c))
    events.sort(key=lambda e: e[0])
    with PcapWriter(path, nanosecond=True) as w:
        for ns, dev, s in events:
            seqs[dev] = seqs.get(dev, 0) + 1
            agent = AGENTS[dev]
            dg = E.datagram(agent=agent, seq=seqs[dev], uptime_ms=3_600_000 + ns // 10**6,
                            samples=[s])
            pkt = (Ether(src="52:54:00:00:00:fe", dst="52:54:00:00:00:ff")
                   / IP(src=agent, dst=COLLECTOR) / UDP(sport=6343, dport=6343) / dg)
            w.write(bytes(pkt), int((T0 + timedelta(seconds=0)).timestamp() * 1e9) + ns)
    return path

"""Benchmark: vectorised, time-aware enrichment of record batches
(``fabricscope.inventory.enrich.Enricher``) against an inventory with validity epochs.

Everything is built here, deterministically (``--seed``; NumPy, no Python object per record):

* the inventory: ``examples/fabric.yaml`` plus a generated leaf-spine fabric: ``--hosts``
  hypervisors (400) under leaves of 20 hosts and 4 spines, each host with an Open vSwitch
  exporting sFlow from its management address; ``--tenants`` tenants (40) with 3 networks
  each (VXLAN, every 5th tenant GENEVE; groups of 4 tenants reuse the same subnets, so an
  address without its VNI is often ambiguous; every 8th tenant dual-stack), ``--endpoints``
  VMs (8,000) and a firewall VNF (two ports) per tenant. Facts change over time: the
  example's web-1 migration (10:05) and IDS insertion (10:30); 2 % of the VMs migrate at
  10:10 and another 2 % at 10:50; 1 % are deleted at 10:20 and their addresses reused by
  new VMs at 10:40; a leaf's ifIndexes are renumbered at 10:45 (after a reboot); a host
  changes its tunnel address at 11:00 and a new host reuses the old one at 11:05. Nine
  change times: ten epochs.
* ``--records`` packet records (2,000,000) in batches of ``--batch`` (250,000, the size
  correlation reads from the store; ``--batch 16384`` is the decoder's), time-ordered over
  09:45-11:15 so the epochs are crossed in turn (a few records per batch are put exactly
  on a change time, and one nanosecond either side). Columns (types of records/schema.py):
  ``ts``, ``src``, ``dst``, ``encap``, ``vni``, ``inner_src``, ``inner_dst``, ``agent``,
  ``in_if``, ``out_if``, ``out_if_format``. Mix: 90 % tunnelled (outer addresses: host
  tunnel addresses, 3 % unknown; VNI of a network, 2 % unknown, 2 % with the other
  encapsulation; inner addresses of that network's endpoints of any time, 3 % / 10 %
  unknown), 10 % without tunnel (wire addresses: endpoints, management, tunnel, unknown);
  60 % carry sFlow fields (known agents, 3 % unknown; ifIndexes of the agent's device, 5 %
  internal, 5 % unknown; ``out_if_format`` 1 or 2 for 5 %).

Measured, CPU time (``time.process_time``) and wall, excluding the generation of the input:

1. ``Enricher(inventory)`` and the per-epoch key arrays (a warm-up batch touching every
   epoch; these are built once per inventory);
2. ``Enricher.enrich(batch)``: all 19 columns;
3. ``Enricher.columns(batch, group)`` for each group: hosts (``src_host``, ``dst_host``),
   endpoints (``src_/dst_`` endpoint, tenant, network, vnf), networks (``network``,
   ``tenant``), interfaces (``device``, ``in_/out_`` if_name, link, peer).

Then ``--check`` sampled rows (300, spread over the batches, plus the rows put on change
times) are compared, every column, with the Inventory's scalar lookups, and each group's
columns with the all-columns answer: any mismatch prints the rows and exits 1, so no speed
is reported for wrong answers.

    .venv/bin/python bench/enrich.py [--records 2000000] [--batch 250000] [--hosts 400]
        [--tenants 40] [--endpoints 8000] [--check 300] [--seed 1] [--example-only]
        [--validate] [--json]

``--example-only`` uses the inventory of examples/fabric.yaml alone (3 epochs).

Not a test. Prints records/s (per CPU second, and wall) and peak RSS (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fabric.yaml"
DAY = datetime(2026, 11, 25, tzinfo=UTC)
UNIX = datetime(1970, 1, 1, tzinfo=UTC)
ENCAPS = ("vxlan", "geneve")  # the dictionary of the records' encap column
PER_LEAF = 20
SPINES = 4
G = 10**9


def at(hh: int, mm: int) -> datetime:
    return DAY.replace(hour=hh, minute=mm)


START, END = at(9, 45), at(11, 15)


def to_ns(t: datetime) -> int:
    return (t - UNIX) // timedelta(microseconds=1) * 1000


def from_ns(v: int) -> datetime:
    return UNIX + timedelta(microseconds=v // 1000)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- the inventory


def generated_facts(hosts: int, tenants: int, endpoints: int, seed: int) -> list[Any]:
    """A leaf-spine fabric with tenants, VMs and VNFs, and facts that change over time."""
    from fabricscope.inventory.model import (
        Device,
        Endpoint,
        Host,
        HostNic,
        Interface,
        Link,
        LinkEnd,
        Network,
        Tenant,
        Vnf,
        VnfPort,
    )

    rng = np.random.default_rng(seed)
    facts: list[Any] = []
    leaves = (hosts + PER_LEAF - 1) // PER_LEAF
    for s in range(SPINES):
        facts.append(Device(name=f"gspine-{s + 1}", role="spine", agent=f"10.254.1.{s + 1}",
                            interfaces=tuple(Interface(name=f"eth{lf + 1}", ifindex=lf + 1,
                                                       speed=100 * G) for lf in range(leaves))))
    renumbered = min(2, leaves - 1)  # its ifIndexes change at 10:45 (a reboot)
    for lf in range(leaves):
        names = [f"eth{i + 1}" for i in range(PER_LEAF)] + [f"eth{49 + s}" for s in range(SPINES)]
        speeds = [25 * G] * PER_LEAF + [100 * G] * SPINES

        def ports(base: int, names: list[str] = names, speeds: list[int] = speeds
                  ) -> tuple[Any, ...]:
            return tuple(Interface(name=n, ifindex=base + int(n[3:]), speed=sp)
                         for n, sp in zip(names, speeds, strict=True))

        leaf: dict[str, Any] = dict(name=f"gleaf-{lf + 1:02d}", role="leaf",
                                    agent=f"10.254.0.{lf + 1}")
        if lf == renumbered:
            facts.append(Device(**leaf, interfaces=ports(0), valid_to=at(10, 45)))
            facts.append(Device(**leaf, interfaces=ports(1000), valid_from=at(10, 45)))
        else:
            facts.append(Device(**leaf, interfaces=ports(0)))
        for s in range(SPINES):
            facts.append(Link(a=LinkEnd(device=f"gleaf-{lf + 1:02d}", interface=f"eth{49 + s}"),
                              b=LinkEnd(device=f"gspine-{s + 1}", interface=f"eth{lf + 1}"),
                              speed=100 * G))
    reip = min(6, hosts - 1)  # changes its tunnel address at 11:00; a new host takes it 11:05
    host_names = []
    for h in range(hosts):
        lf, i = divmod(h, PER_LEAF)
        name = f"cmp-{h:04d}"
        host_names.append(name)
        nic = HostNic(name="eth0", mac=f"52:54:01:00:{h >> 8:02x}:{h & 255:02x}",
                      device=f"gleaf-{lf + 1:02d}", interface=f"eth{i + 1}")
        base: dict[str, Any] = dict(name=name, mgmt_ip=f"172.21.{lf}.{10 + i}", nics=(nic,))
        tunnel = f"172.20.{lf}.{10 + i}"
        if h == reip:
            facts.append(Host(**base, tunnel_ips=(tunnel,), valid_to=at(11, 0)))
            facts.append(Host(**base, tunnel_ips=("172.22.0.1",), valid_from=at(11, 0)))
            facts.append(Host(name="cmp-spare", tunnel_ips=(tunnel,), mgmt_ip="172.21.255.1",
                              valid_from=at(11, 5)))
        else:
            facts.append(Host(**base, tunnel_ips=(tunnel,)))
        facts.append(Device(name=f"ovs-{name}", role="vswitch", host=name,
                            agent=f"172.21.{lf}.{10 + i}",
                            interfaces=(Interface(name="eth0", ifindex=1, speed=25 * G),
                                        Interface(name="vxlan_sys_4789", ifindex=2),
                                        Interface(name="genev_sys_6081", ifindex=3))))
    nets = []
    for t in range(tenants):
        tn = f"t{t:03d}"
        facts.append(Tenant(name=tn))
        for k in range(3):
            octet = 100 + (t % 10) + 10 * k  # tenants t, t+10, t+20, ... share subnets
            subnets: tuple[str, ...] = (f"10.{octet}.0.0/16",)
            if t % 8 == 0:
                subnets += (f"fd00:{t:x}:{k}::/64",)
            net = Network(name=f"{tn}-n{k}", tenant=tn, vni=10000 + 10 * t + k,
                          encap="geneve" if t % 5 == 4 else "vxlan", subnets=subnets)
            facts.append(net)
            nets.append((net, octet, t, k))
        net0, octet0, _, _ = nets[3 * t]
        fw_ports = []
        for j, role in ((250, "ingress"), (251, "egress")):
            ep = f"{tn}-fw-{role[:2]}"
            facts.append(Endpoint(name=ep, kind="vnf-port", tenant=tn, network=net0.name,
                                  host=host_names[int(rng.integers(hosts))],
                                  mac=f"fa:16:3f:{t:02x}:00:{j - 250:02x}",
                                  ips=(f"10.{octet0}.255.{j}",)))
            fw_ports.append(VnfPort(endpoint=ep, role=role))
        facts.append(Vnf(name=f"{tn}-fw", kind="firewall", tenant=tn, stateful=True,
                         ports=tuple(fw_ports)))
    # VMs: round-robin over the networks; some migrate, some are deleted and replaced
    fate = rng.random(endpoints)
    for e in range(endpoints):
        net, octet, t, k = nets[e % len(nets)]
        j = e // len(nets)
        ips: tuple[str, ...] = (f"10.{octet}.{j // 250}.{j % 250 + 2}",)
        if t % 8 == 0:  # dual-stack
            ips += (f"fd00:{t:x}:{k}::{j + 2:x}",)
        vm: dict[str, Any] = dict(
            name=f"{net.name}-vm{j:04d}", tenant=net.tenant, network=net.name, ips=ips,
            mac=f"fa:16:3e:{e >> 16 & 255:02x}:{e >> 8 & 255:02x}:{e & 255:02x}")
        h1, h2 = (host_names[int(x)] for x in rng.integers(hosts, size=2))
        if fate[e] < 0.04:  # migrations, half at 10:10 and half at 10:50
            when = at(10, 10) if fate[e] < 0.02 else at(10, 50)
            facts.append(Endpoint(**vm, host=h1, valid_to=when))
            facts.append(Endpoint(**vm, host=h2, valid_from=when))
        elif fate[e] < 0.05:  # deleted at 10:20; a new VM gets its addresses at 10:40
            facts.append(Endpoint(**vm, host=h1, valid_to=at(10, 20)))
            facts.append(Endpoint(**{**vm, "name": f"{vm['name']}-r",
                                     "mac": f"fa:16:3d:{e >> 16 & 255:02x}:{e >> 8 & 255:02x}:"
                                            f"{e & 255:02x}"},
                                  host=h2, valid_from=at(10, 40)))
        else:
            facts.append(Endpoint(**vm, host=h1))
    return facts


def build_inventory(args: argparse.Namespace) -> Any:
    from fabricscope.inventory.fileformat import check_data, document_from_facts, read_file
    from fabricscope.inventory.index import Inventory

    example = list(read_file(EXAMPLE))
    if args.example_only:
        return Inventory(example)
    facts = generated_facts(args.hosts, args.tenants, args.endpoints, args.seed)
    if args.validate:
        doc = check_data(document_from_facts(facts), None, "generated")
        if not doc.ok:
            for p in doc.errors[:10]:
                print(f"generated inventory: {p}", file=sys.stderr)
            sys.exit(2)
    return Inventory([*example, *facts])


# --------------------------------------------------------------------------- the records


def ip_rows(ips: list[str]) -> np.ndarray:
    from fabricscope.inventory import addr

    if not ips:
        return np.zeros((0, 16), np.uint8)
    return np.frombuffer(b"".join(addr.ip16(ip) for ip in ips), np.uint8).reshape(-1, 16)


@dataclass
class Pools:
    """The identities the records are drawn from (every version, so some are not valid at
    a record's time), as 16-byte rows; per network and per agent, flat with offsets."""

    tunnel: np.ndarray
    mgmt: np.ndarray
    ep_any: np.ndarray
    net_vni: np.ndarray
    net_encap: np.ndarray  # index into ENCAPS
    net_off: np.ndarray
    net_cnt: np.ndarray
    net_ips: np.ndarray
    agents: np.ndarray
    switches: np.ndarray  # indexes into agents of the physical switches (not vswitches)
    if_off: np.ndarray
    if_cnt: np.ndarray
    ifs: np.ndarray


def pools_of(inv: Any) -> Pools:
    tunnel: set[str] = set()
    mgmt: set[str] = set()
    for h in inv.facts("hosts", all_versions=True):
        tunnel.update(h.tunnel_ips)
        if h.mgmt_ip:
            mgmt.add(h.mgmt_ip)
    segs: dict[tuple[str, int], int] = {}
    by_name: dict[str, list[int]] = {}
    for n in inv.facts("networks", all_versions=True):
        if n.vni is not None and n.encap in ENCAPS:
            seg = segs.setdefault((n.encap, n.vni), len(segs))
            by_name.setdefault(n.name, []).append(seg)
    per_net: list[set[str]] = [set() for _ in segs]
    ep_any: set[str] = set()
    for e in inv.facts("endpoints", all_versions=True):
        ep_any.update(e.ips)
        for seg in by_name.get(e.network or "", []):
            per_net[seg].update(e.ips)
    keep = [i for i, s in enumerate(per_net) if s]
    seg_list = list(segs)
    lists = [sorted(per_net[i]) for i in keep]
    agents: dict[str, set[int]] = {}
    physical: set[str] = set()
    for d in inv.facts("devices", all_versions=True):
        if d.agent:
            if d.role != "vswitch":
                physical.add(d.agent)
            agents.setdefault(d.agent, set()).update(
                i.ifindex for i in d.interfaces if i.ifindex is not None)
    alist = sorted(agents)
    ifl = [sorted(agents[a]) or [1] for a in alist]
    return Pools(
        tunnel=ip_rows(sorted(tunnel)), mgmt=ip_rows(sorted(mgmt)), ep_any=ip_rows(sorted(ep_any)),
        net_vni=np.array([seg_list[i][1] for i in keep], np.uint64),
        net_encap=np.array([ENCAPS.index(seg_list[i][0]) for i in keep], np.int16),
        net_cnt=np.array([len(x) for x in lists], np.int64),
        net_off=np.cumsum([0] + [len(x) for x in lists[:-1]]).astype(np.int64),
        net_ips=ip_rows([ip for x in lists for ip in x]),
        agents=ip_rows(alist),
        switches=np.array([i for i, a in enumerate(alist) if a in physical], np.int64),
        if_cnt=np.array([len(x) for x in ifl], np.int64),
        if_off=np.cumsum([0] + [len(x) for x in ifl[:-1]]).astype(np.int64),
        ifs=np.array([i for x in ifl for i in x], np.uint32))


def v4_rows(rng: np.random.Generator, n: int, a: int, b: int) -> np.ndarray:
    """n random IPv4 addresses a.b.x.y as 16-byte rows (IPv4-mapped)."""
    out = np.zeros((n, 16), np.uint8)
    out[:, 10:12] = 255
    out[:, 12], out[:, 13] = a, b
    out[:, 14:16] = rng.integers(0, 256, (n, 2), dtype=np.uint8)
    return out


def pick(rng: np.random.Generator, off: np.ndarray, cnt: np.ndarray, which: np.ndarray
         ) -> np.ndarray:
    """A random member of group ``which`` (flat pools with offsets and counts)."""
    out: np.ndarray = off[which] + (rng.random(len(which)) * cnt[which]).astype(np.int64)
    return out


def mask(valid: np.ndarray) -> pa.Buffer | None:
    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))


def fsb(rows: np.ndarray, valid: np.ndarray) -> pa.Array:
    rows = np.ascontiguousarray(rows)
    return pa.Array.from_buffers(pa.binary(16), len(rows), [mask(valid), pa.py_buffer(rows)])


def num(values: np.ndarray, typ: pa.DataType, valid: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(typ, len(values), [mask(valid), pa.py_buffer(
        np.ascontiguousarray(values, dtype=typ.to_pandas_dtype()))])


def make_batch(rng: np.random.Generator, n: int, lo_ns: int, hi_ns: int, p: Pools,
               boundaries: np.ndarray) -> tuple[pa.RecordBatch, np.ndarray]:
    """A batch of packet records over [lo_ns, hi_ns); also the rows put on change times."""
    def chance(q: float) -> np.ndarray:
        return rng.random(n) < q

    ts = np.sort(rng.integers(lo_ns, hi_ns, n, dtype=np.int64))
    edge = []
    for b in boundaries[(boundaries >= lo_ns) & (boundaries < hi_ns)]:
        rows = rng.choice(n, size=min(n, 12), replace=False)
        ts[rows] = b + rng.integers(-1, 2, len(rows))
        edge.append(rows)
    edge_rows = np.unique(np.concatenate(edge)) if edge else np.empty(0, np.int64)

    tunnel = chance(0.9)
    net = rng.integers(0, len(p.net_vni), n)
    vni = p.net_vni[net].copy()
    unknown_vni = chance(0.02)
    vni[unknown_vni] = 900_000 + rng.integers(0, 1000, int(unknown_vni.sum())).astype(np.uint64)
    enc = p.net_encap[net].copy()
    flip = chance(0.02)
    enc[flip] = 1 - enc[flip]
    inner_src = p.net_ips[pick(rng, p.net_off, p.net_cnt, net)]
    miss = chance(0.03)
    inner_src[miss] = v4_rows(rng, int(miss.sum()), 10, 250)
    inner_dst = p.net_ips[pick(rng, p.net_off, p.net_cnt, net)]
    miss = chance(0.10)
    inner_dst[miss] = v4_rows(rng, int(miss.sum()), 203, 0)
    wire = []
    for _side in ("src", "dst"):
        outer = p.tunnel[rng.integers(0, len(p.tunnel), n)]
        miss = chance(0.03)
        outer[miss] = v4_rows(rng, int(miss.sum()), 172, 31)
        # without tunnel: an endpoint, management, tunnel or unknown address
        kind = rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
        plain = v4_rows(rng, n, 198, 51)
        for k, pool in enumerate((p.ep_any, p.mgmt, p.tunnel)):
            sel = kind == k
            plain[sel] = pool[rng.integers(0, len(pool), int(sel.sum()))]
        wire.append(np.where(tunnel[:, None], outer, plain))

    sflow = chance(0.6)
    a = rng.integers(0, len(p.agents), n)
    if len(p.switches):  # 70 % from leaves and spines, the rest from any agent
        phys = chance(0.7)
        a[phys] = p.switches[rng.integers(0, len(p.switches), int(phys.sum()))]
    agent = p.agents[a]
    miss = chance(0.03)
    agent[miss] = v4_rows(rng, int(miss.sum()), 10, 253)
    ifx = []
    for internal in (0x3FFFFFFF, 0):
        v = p.ifs[pick(rng, p.if_off, p.if_cnt, a)]
        r = rng.random(n)
        v[r < 0.05] = internal
        v[(r >= 0.05) & (r < 0.10)] = rng.integers(3000, 4000, int(((r >= 0.05) & (r < 0.10))
                                                                  .sum()), dtype=np.uint32)
        ifx.append(v)
    fmt = rng.choice(3, n, p=[0.95, 0.03, 0.02]).astype(np.uint8)
    ifx[1][fmt == 1] = 258  # a discard reason, not a port

    encap = pa.DictionaryArray.from_arrays(num(enc, pa.int16(), tunnel),
                                           pa.array(ENCAPS, pa.string()))
    batch = pa.RecordBatch.from_arrays([
        pa.Array.from_buffers(pa.timestamp("ns", tz="UTC"), n, [None, pa.py_buffer(ts)]),
        fsb(wire[0], np.ones(n, bool)), fsb(wire[1], np.ones(n, bool)),
        encap, num(vni, pa.uint64(), tunnel),
        fsb(inner_src, tunnel), fsb(inner_dst, tunnel),
        fsb(agent, sflow), num(ifx[0], pa.uint32(), sflow), num(ifx[1], pa.uint32(), sflow),
        num(fmt, pa.uint8(), sflow),
    ], names=["ts", "src", "dst", "encap", "vni", "inner_src", "inner_dst", "agent", "in_if",
              "out_if", "out_if_format"])
    return batch, edge_rows


# --------------------------------------------------------------------------- the reference


def scalar(inv: Any, r: dict[str, Any]) -> dict[str, Any]:
    """What the per-question lookups of the Inventory say for one record."""
    t = from_ns(r["ts"])
    out: dict[str, Any] = {}
    vni, encap = r["vni"], r["encap"]
    for side in ("src", "dst"):
        ip = r[side]
        h = (inv.host_by_tunnel_ip(ip, t) or inv.host_by_ip(ip, t)) if ip else None
        out[f"{side}_host"] = h.name if h else None
        key = r[f"inner_{side}"] if encap else r[side]
        e = None
        if key is not None:
            if vni is not None:
                e = (inv.endpoint_by_ip(key, vni, t, encap=encap)
                     or inv.endpoint_by_ip(key, vni, t))
                if e is None and inv.network_by_vni(vni, t) is None:
                    e = inv.endpoint_by_ip(key, None, t)
            else:
                e = inv.endpoint_by_ip(key, None, t)
        v = inv.vnf_of_endpoint(e.name, t) if e else None
        out[f"{side}_endpoint"] = e.name if e else None
        out[f"{side}_tenant"] = inv.tenant_of(e, t) if e else None
        out[f"{side}_network"] = e.network if e else None
        out[f"{side}_vnf"] = v.name if v else None
    net = None
    if vni is not None:
        net = inv.network_by_vni(vni, t, encap) or inv.network_by_vni(vni, t)
    out["network"] = net.name if net else None
    out["tenant"] = net.tenant if net else None
    agent = r["agent"]
    d = inv.device_by_agent(agent, t) if agent else None
    out["device"] = d.name if d else None
    for side in ("in", "out"):
        ifx = r[f"{side}_if"]
        if side == "out" and (r["out_if_format"] or 0) > 0:
            ifx = None
        found = inv.interface(agent, ifx, t) if agent and ifx is not None else None
        link = inv.link_of(found.device.name, found.interface.name, t) if found else None
        far = link.other(found.device.name, found.interface.name) if link and found else None
        out[f"{side}_if_name"] = found.interface.name if found else None
        out[f"{side}_link"] = link.key if link else None
        out[f"{side}_peer"] = far.label if far else None
    return out


def show(row: dict[str, Any]) -> str:
    """A sampled record, readable (addresses as text, the time in RFC 3339 and ns)."""
    from fabricscope.inventory import addr

    parts = [f"ts={from_ns(row['ts']).isoformat()} ({row['ts']} ns)"]
    parts += [f"{k}={addr.canonical_ip(v) if isinstance(v, bytes) else v}"
              for k, v in row.items() if k != "ts" and v is not None]
    return " ".join(parts)


def sample_rows(batch: pa.RecordBatch, idx: np.ndarray) -> list[dict[str, Any]]:
    taken = batch.take(pa.array(idx))
    cols = {name: taken.column(name).to_pylist() for name in taken.schema.names if name != "ts"}
    if "ts" in taken.schema.names:
        cols["ts"] = taken.column("ts").cast(pa.int64()).to_pylist()
    return [{k: v[i] for k, v in cols.items()} for i in range(len(idx))]


# --------------------------------------------------------------------------- the run


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--batch", type=int, default=250_000, help="records per batch")
    ap.add_argument("--hosts", type=int, default=400, help="generated hypervisors")
    ap.add_argument("--tenants", type=int, default=40, help="generated tenants (3 networks each)")
    ap.add_argument("--endpoints", type=int, default=8000, help="generated VMs")
    ap.add_argument("--check", type=int, default=300,
                    help="sampled rows compared with the scalar lookups")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--example-only", action="store_true",
                    help="the inventory of examples/fabric.yaml alone (no generated fabric)")
    ap.add_argument("--validate", action="store_true",
                    help="also validate the generated inventory (file-format checks; slow)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if args.hosts < 2 or args.tenants < 1 or args.endpoints < 1 or args.records < 1:
        ap.error("--hosts >= 2, --tenants, --endpoints and --records >= 1")

    from fabricscope.inventory.enrich import (
        ENDPOINT_FIELDS,
        FIELDS,
        HOST_FIELDS,
        NETWORK_FIELDS,
        SFLOW_FIELDS,
        Enricher,
    )

    t0 = time.perf_counter()
    inv = build_inventory(args)
    pools = pools_of(inv)
    boundaries = np.array([to_ns(t) for t in inv.change_times()], np.int64)
    inv_s = time.perf_counter() - t0
    rss_inventory = rss_mb()

    # 1. the enricher and its per-epoch key arrays (warm-up batch over the whole span)
    rng = np.random.default_rng(args.seed)
    warm, _ = make_batch(rng, 4096, to_ns(START), to_ns(END), pools, boundaries)
    c0, w0 = time.process_time(), time.perf_counter()
    enricher = Enricher(inv)
    enricher.enrich(warm)
    build = {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}
    rss_index = rss_mb()

    # 2./3. every batch: all columns, then each group
    groups: dict[str, tuple[str, ...]] = {
        "all": FIELDS, "hosts": HOST_FIELDS, "endpoints": ENDPOINT_FIELDS,
        "networks": NETWORK_FIELDS, "interfaces": SFLOW_FIELDS}
    cpu = dict.fromkeys(groups, 0.0)
    wall = dict.fromkeys(groups, 0.0)
    hits = dict.fromkeys(FIELDS, 0)
    n_batches = (args.records + args.batch - 1) // args.batch
    span = (to_ns(END) - to_ns(START)) // n_batches
    per_batch = -(-args.check // n_batches)
    samples: list[tuple[dict[str, Any], dict[str, Any]]] = []
    group_mismatch: list[str] = []
    gen_s = 0.0
    epochs_seen: set[int] = set()
    done = 0
    for k in range(n_batches):
        n = min(args.batch, args.records - done)
        g0 = time.perf_counter()
        lo = to_ns(START) + k * span
        batch, edge = make_batch(rng, n, lo, lo + span, pools, boundaries)
        idx = np.union1d(rng.choice(n, size=min(n, per_batch), replace=False), edge)
        gen_s += time.perf_counter() - g0

        c0, w0 = time.process_time(), time.perf_counter()
        out = enricher.enrich(batch)
        cpu["all"] += time.process_time() - c0
        wall["all"] += time.perf_counter() - w0
        for f in FIELDS:
            hits[f] += n - out.column(f).null_count
        got = sample_rows(out.select(list(FIELDS)), idx)
        samples.extend(zip(sample_rows(batch, idx), got, strict=True))
        epochs_seen.update(np.unique(enricher.epoch_of(
            batch.column("ts").cast(pa.int64()).to_numpy())).tolist())

        for name, fields in groups.items():
            if name == "all":
                continue
            c0, w0 = time.process_time(), time.perf_counter()
            cols = enricher.columns(batch, fields)
            cpu[name] += time.process_time() - c0
            wall[name] += time.perf_counter() - w0
            take = pa.array(idx)
            for f in fields:
                if cols[f].take(take).to_pylist() != [g[f] for g in got]:
                    group_mismatch.append(f"batch {k}: group {name}: column {f} differs from "
                                          "the all-columns answer")
        done += n

    # the check: sampled rows against the scalar lookups
    c0 = time.perf_counter()
    bad = []
    answers = 0
    for row, answer in samples:
        want = scalar(inv, row)
        answers += sum(v is not None for v in want.values())
        if want != answer:
            diff = {f: (answer[f], want[f]) for f in FIELDS if answer[f] != want[f]}
            bad.append(f"{show(row)}: (enriched, scalar) {diff}")
    check_s = time.perf_counter() - c0
    if bad or group_mismatch:
        for line in [*group_mismatch, *bad][:10]:
            print(f"MISMATCH {line}", file=sys.stderr)
        print(f"enrichment disagrees with the scalar lookups on {len(bad)} of {len(samples)} "
              f"sampled rows ({len(group_mismatch)} group mismatches): no figures reported",
              file=sys.stderr)
        sys.exit(1)

    counts = inv.counts(at(10, 0))
    result: dict[str, Any] = {
        "records": done, "batch": args.batch, "batches": n_batches,
        "cpus": os.cpu_count(),
        "inventory": {
            "facts": len(inv), "hosts": counts["hosts"], "devices": counts["devices"],
            "endpoints": counts["endpoints"], "networks": counts["networks"],
            "endpoint_versions": len(inv.facts("endpoints", all_versions=True)),
            "change_times": len(boundaries), "epochs": len(boundaries) + 1,
            "epochs_crossed": len(epochs_seen), "build_s": round(inv_s, 3)},
        "index_build": {"cpu_s": round(build["cpu_s"], 3), "wall_s": round(build["wall_s"], 3)},
        "groups": {name: {
            "columns": len(groups[name]),
            "cpu_s": round(cpu[name], 3), "wall_s": round(wall[name], 3),
            "records_per_cpu_s": round(done / cpu[name]) if cpu[name] else None,
            "records_per_s": round(done / wall[name]) if wall[name] else None,
        } for name in groups},
        "hit_rate": {f: round(hits[f] / done, 3) for f in FIELDS},
        "check": {"rows": len(samples), "answers": answers, "mismatches": 0,
                  "seconds": round(check_s, 2)},
        "generation_s": round(gen_s, 2),
        "peak_rss_mb": round(rss_mb()), "rss_after_inventory_mb": round(rss_inventory),
        "rss_after_index_build_mb": round(rss_index),
    }
    if args.json:
        print(json.dumps(result))
        return
    i = result["inventory"]
    print(f"inventory: {i['facts']:,} facts ({i['hosts']} hosts, {i['devices']} devices, "
          f"{i['endpoints']:,} endpoints at 10:00, {i['endpoint_versions']:,} endpoint "
          f"versions), {i['change_times']} change times = {i['epochs']} epochs "
          f"({i['epochs_crossed']} crossed by the records)")
    print(f"Enricher + per-epoch key arrays: {build['cpu_s']:.2f} s CPU "
          f"({build['wall_s']:.2f} s wall), once per inventory")
    print(f"{done:,} records in {n_batches} batches of {args.batch:,}:")
    for name, g in result["groups"].items():
        print(f"  {name:<11} {g['columns']:>2} columns: {g['records_per_cpu_s'] / 1e6:6.2f} M "
              f"records/CPU-s ({g['cpu_s']:.2f} s CPU), {g['records_per_s'] / 1e6:6.2f} M "
              f"records/s wall")
    rates = ", ".join(f"{f} {v:.0%}" for f, v in result["hit_rate"].items())
    print(f"answered: {rates}")
    print(f"check: {len(samples)} sampled rows, {answers:,} non-null answers, all equal to "
          f"the scalar lookups")
    print(f"peak RSS {result['peak_rss_mb']} MB ({result['rss_after_inventory_mb']} MB after "
          f"building the inventory, {result['rss_after_index_build_mb']} MB after the key "
          f"arrays), {result['cpus']} CPUs")


if __name__ == "__main__":
    main()

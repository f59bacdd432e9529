"""``trace``: the path of an overlay flow in a time window (CONTRACTS.md "Trace result").

1. Select the records whose innermost headers match the flow (and the reverse with
   ``both``) in the window.
2. Aggregate them into observations (correlate/observe.py) and paths (correlate/paths.py):
   tunnel segments chained through VNF hosts, ECMP members, hops ordered by outer TTL.
3. Name everything from the inventory valid at the time it was seen (raw identities
   otherwise), insert the hops the topology implies but no sample saw (``inferred``),
   and attach each hop's health (interface counters and discard samples in the window).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fabricscope.correlate.names import Namer
from fabricscope.correlate.observe import OBS_COLUMNS, bucket_for, ns_to_dt, observations
from fabricscope.correlate.paths import Hop, Path, Segment, build_paths
from fabricscope.correlate.topology import Anchor, build_graph, fill_gap
from fabricscope.query.common import Source, Window, iso
from fabricscope.records.present import ip_str

if TYPE_CHECKING:
    import networkx as nx

    from fabricscope.inventory import Inventory

HealthFn = Callable[[str | None, int | None, int | None, datetime, datetime], dict[str, Any]]


@dataclass
class TraceQuery:
    src: str
    dst: str
    window: Window
    sport: int | None = None
    dport: int | None = None
    proto: int | None = None
    vni: int | None = None
    both: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"src": self.src, "dst": self.dst, "sport": self.sport, "dport": self.dport,
                "proto": self.proto, "vni": self.vni, "both": self.both,
                **self.window.to_dict()}


@dataclass
class TraceContext:
    namer: Namer
    graph: nx.Graph | None  # None: no inventory, no topology
    health: HealthFn | None
    window: Window
    inv: Inventory | None
    query: TraceQuery
    notes: list[str] = field(default_factory=list)


def record_filter(q: TraceQuery) -> Any:
    from fabricscope.store.filters import RecordFilter

    return RecordFilter(since=q.window.since, until=q.window.until, inner_src=q.src,
                        inner_dst=q.dst, inner_sport=q.sport, inner_dport=q.dport,
                        inner_proto=q.proto, vni=q.vni, either_direction=q.both)


def trace(source: Source, inventory: Inventory | None, q: TraceQuery, *,
          health: HealthFn | None = None) -> dict[str, Any]:
    """Run a trace; returns the contract JSON structure."""
    records = source.select(record_filter(q), columns=OBS_COLUMNS)
    return trace_records(records, inventory, q, health=health)


def trace_records(records: Any, inventory: Inventory | None, q: TraceQuery, *,
                  health: HealthFn | None = None) -> dict[str, Any]:
    """The trace of already-selected records (Arrow table with OBS_COLUMNS)."""
    namer = Namer(inventory)
    at = q.window.until
    span = int((q.window.until - q.window.since).total_seconds() * 1e9)
    obs = observations(records, bucket_for(span))
    paths = build_paths(obs, lambda ip: namer.host(ip, at))
    ctx = TraceContext(namer=namer, graph=build_graph(inventory, at), health=health,
                       window=q.window, inv=inventory, query=q)
    total = sum(p.agg.samples for p in paths) or 1
    out_paths = [_path_json(p, ctx, total) for p in paths]
    first = paths[0] if paths else None
    vni0 = first.segments[0].vni if first and first.segments else q.vni
    when = ns_to_dt(first.last_ns) if first else at
    return {
        "query": q.to_dict(),
        "src": namer.endpoint(q.src, vni0, when),
        "dst": namer.endpoint(q.dst, vni0, when),
        "paths": out_paths,
        "samples": sum(p.agg.samples for p in paths),
        "inventory": inventory is not None,
        "notes": ctx.notes,
    }


def _path_json(p: Path, ctx: TraceContext, total: int) -> dict[str, Any]:
    first_inner = next(iter(sorted(p.flows, key=lambda f: (f[0] or b"", f[1] or b""))))
    forward = ip_str(first_inner[0]) == ctx.query.src
    when = ns_to_dt(p.first_ns)
    segs = [_segment_json(s, ctx, p) for s in p.segments]
    est_p, est_b = p.estimate()
    return {
        "direction": "forward" if forward else "reverse",
        "vnfs": _vnfs(p, segs, ctx, when, first_inner),
        "complete": _complete(p, segs, ctx, first_inner),
        "segments": segs,
        "samples": p.agg.samples,
        "share": round(p.agg.samples / total, 4),
        "est_packets": round(est_p),
        "est_bytes": round(est_b),
        "first_seen": iso(ns_to_dt(p.first_ns)),
        "last_seen": iso(ns_to_dt(p.last_ns)),
        "flows": len(p.flows),
    }


def _complete(p: Path, segs: list[dict[str, Any]], ctx: TraceContext,
              inner: tuple[Any, ...]) -> bool | None:
    """Does the path reach the hosts of the flow's endpoints? False when it starts or ends
    elsewhere (part of it was not sampled); None when the inventory does not place both
    endpoints (an external address: nothing tells a partial path from a whole one)."""
    if not segs or ctx.inv is None:
        return None
    vni = p.segments[0].vni
    first, last = ns_to_dt(p.first_ns), ns_to_dt(p.last_ns)
    src = ctx.namer.endpoint(inner[0], vni, first)["host"]
    dst = ctx.namer.endpoint(inner[1], vni, last)["host"]
    if (src is not None and segs[0]["src_host"] != src) or (
            dst is not None and segs[-1]["dst_host"] != dst):
        return False
    return True if src is not None and dst is not None else None


def _vnfs(p: Path, segs: list[dict[str, Any]], ctx: TraceContext, when: datetime,
          inner: tuple[Any, ...]) -> list[str]:
    names: list[str] = []
    for k in range(len(segs) - 1):
        host = segs[k]["dst_host"]
        if host is None:
            continue
        # the VNF is asked for when the flow left it (the next segment's start)
        left = ns_to_dt(p.clip(p.segments[k + 1].agg.first_ns))
        names.append(_vnf_at(host, p.segments[k], ctx, max(left, when), inner))
    return names


def _vnf_at(host: str, seg: Segment, ctx: TraceContext, when: datetime,
            inner: tuple[Any, ...]) -> str:
    """The VNF at ``host`` between two segments of a flow: a VNF located there (inventory)
    that a chain selecting the flow, or the chain named by the networking-sfc label, holds;
    else any VNF there; else the host itself (raw identity)."""
    on_host = ctx.namer.vnfs_on_host(host, when)
    if ctx.inv is None or not on_host:
        return host
    candidates: list[str] = []
    if seg.mpls_label is not None:
        # networking-sfc: label = chain_id << 8 | service index (255 towards the first
        # group, minus one per group; a symmetric chain's reverse path walks the groups
        # backwards, so the group is only a hint: the VNF must be on this host)
        chain_id, si = seg.mpls_label >> 8, seg.mpls_label & 0xFF
        for chain in ctx.inv.chains(when):
            if chain.chain_id != chain_id:
                continue
            k = 255 - si
            groups = list(chain.groups)
            for g in ([groups[k]] if 0 <= k < len(groups) else []) + groups[::-1] + groups:
                candidates += [v for v in g.vnfs if v in on_host and v not in candidates]
    src, dst = ip_str(inner[0]), ip_str(inner[1])
    for chain in ctx.inv.chains(when):
        if any(c.matches(src, dst, protocol=inner[2], sport=inner[3], dport=inner[4])
               or c.matches(dst, src, protocol=inner[2], sport=inner[4], dport=inner[3])
               for c in chain.classifiers):
            candidates += [v for v in chain.vnf_names() if v in on_host and v not in candidates]
    return (candidates or on_host)[0]


def _segment_json(s: Segment, ctx: TraceContext, p: Path) -> dict[str, Any]:
    when = ns_to_dt(p.clip(s.agg.first_ns))
    n = ctx.namer
    src_host = n.host(s.outer_src, when)
    dst_host = n.host(s.outer_dst, when)
    hops = _hops_with_inferred(s, ctx, src_host, dst_host, when, p)
    out: dict[str, Any] = {
        "encap": s.encap,
        "vni": s.vni,
        "outer_src": ip_str(s.outer_src) if s.outer_src else None,
        "outer_dst": ip_str(s.outer_dst) if s.outer_dst else None,
        "src_host": src_host,
        "dst_host": dst_host,
        "network": n.network_of_vni(s.vni, when),
        "outer_ports": sorted({(o[1], o[2]) for o in s.outer5 if o[1] is not None}),
        "hops": hops,
        "samples": s.agg.samples,
        "first_seen": iso(ns_to_dt(p.clip(s.agg.first_ns))),
        "last_seen": iso(ns_to_dt(p.clip(s.agg.last_ns))),
    }
    if s.mpls_label is not None:
        out["sfc"] = {"chain_id": s.mpls_label >> 8, "service_index": s.mpls_label & 0xFF}
    return out


def _hops_with_inferred(s: Segment, ctx: TraceContext, src_host: str | None,
                        dst_host: str | None, when: datetime, p: Path
                        ) -> list[dict[str, Any]]:
    n = ctx.namer
    g = ctx.graph
    observed = [_hop_json(h, ctx, when, p) for h in s.hops]
    if g is None or g.number_of_nodes() == 0:
        return observed
    anchors: list[tuple[Anchor, dict[str, Any] | None]] = []
    if src_host is not None:
        anchors.append((Anchor(("host", src_host)), None))
    for hj in observed:
        node = ("dev", hj["device"]) if ("dev", hj["device"]) in g else None
        anchors.append((Anchor(node, in_if=hj["in_if"], out_if=hj["out_if"]), hj))
    if dst_host is not None:
        anchors.append((Anchor(("host", dst_host)), None))
    result: list[dict[str, Any]] = []
    for k, (anc, maybe_hop) in enumerate(anchors):
        if k > 0:
            prev = anchors[k - 1][0]
            for f in fill_gap(g, prev, anc):
                agent = None
                if ctx.inv is not None:
                    d = ctx.inv.device(f.node[1], when)
                    agent = d.agent if d is not None else None
                in_ix = n.ifindex_of(f.node[1], f.in_if, when) if f.in_if else None
                out_ix = n.ifindex_of(f.node[1], f.out_if, when) if f.out_if else None
                result.append({
                    "device": f.node[1], "agent": agent, "in_if": f.in_if,
                    "in_ifindex": in_ix, "out_if": f.out_if, "out_ifindex": out_ix,
                    "samples": 0, "est_packets": 0, "est_bytes": 0, "first_seen": None,
                    "last_seen": None, "ttl": None, "inferred": True,
                    "candidates": f.candidates,
                    "health": _health(ctx, agent, in_ix, out_ix),
                })
        if maybe_hop is not None:
            result.append(maybe_hop)
    return result


def _hop_json(h: Hop, ctx: TraceContext, when: datetime, p: Path) -> dict[str, Any]:
    n = ctx.namer
    agent = ip_str(h.agent) if h.agent else None
    return {
        "device": n.device(agent, when),
        "agent": agent,
        "in_if": n.interface(agent, h.in_if, when),
        "in_ifindex": h.in_if,
        "out_if": n.interface(agent, h.out_if, when),
        "out_ifindex": h.out_if,
        "samples": h.agg.samples,
        "est_packets": round(h.agg.est_packets),
        "est_bytes": round(h.agg.est_bytes),
        "first_seen": iso(ns_to_dt(p.clip(h.agg.first_ns))),
        "last_seen": iso(ns_to_dt(p.clip(h.agg.last_ns))),
        "ttl": None if h.agg.ttl is None else round(h.agg.ttl, 1),
        "inferred": False,
        "health": _health(ctx, agent, h.in_if, h.out_if),
    }


def _health(ctx: TraceContext, agent: str | None, in_if: int | None,
            out_if: int | None) -> dict[str, Any]:
    if ctx.health is None or agent is None:
        return {"status": "unknown", "flags": [], "reason": "no counters source"}
    return ctx.health(agent, in_if, out_if, ctx.window.since, ctx.window.until)

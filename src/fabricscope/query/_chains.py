"""``check chains``: traffic a service chain selects that bypassed one of its VNFs, and
asymmetric paths through stateful VNFs.

For each chain version valid in the window and each of its flow classifiers, the
tunneled records the classifier could select are read (protocol and a single destination
port are pushed down to the store; prefixes and port ranges are checked per flow), turned
into paths (correlate/paths.py) and checked:

* **bypass**: a flow's hosts, in order, must pass through a host of every VNF group
  (a VNF co-located with the source or destination host cannot be seen from the
  underlay: reported as ``unverifiable``, not as a violation);
* **asymmetric**: for a stateful VNF (``stateful: true``, or a firewall/lb/nat/ids kind),
  the reverse flow must cross the same VNF host as the forward flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fabricscope.correlate.names import Namer
from fabricscope.correlate.observe import OBS_COLUMNS, bucket_for, ns_to_dt, observations
from fabricscope.correlate.paths import Path, build_paths
from fabricscope.errors import UsageError
from fabricscope.query.common import Source, Window, iso
from fabricscope.records.present import ip_str

if TYPE_CHECKING:
    from fabricscope.inventory import Chain, FlowClassifier, Inventory

STATEFUL_KINDS = {"firewall", "fw", "lb", "load-balancer", "loadbalancer", "nat", "ids", "ips"}


@dataclass
class ChainCheckQuery:
    window: Window
    chain: str | None = None


def _versions(inv: Inventory, w: Window, only: str | None) -> list[Chain]:
    from fabricscope.inventory import Chain

    out = []
    for f in inv.facts("chains", all_versions=True):
        if not isinstance(f, Chain) or (only and f.name != only):
            continue
        lo = f.valid_from or w.since
        hi = f.valid_to or w.until
        if lo <= w.until and hi >= w.since:
            out.append(f)
    return out


def _vnf_hosts(inv: Inventory, vnf: str, at: datetime) -> set[str]:
    v = inv.vnf(vnf, at)
    hosts: set[str] = set()
    if v is None:
        return hosts
    for ep in v.port_endpoints():
        e = inv.endpoint(ep, at)
        if e is not None and e.host:
            hosts.add(e.host)
    return hosts


def _is_stateful(inv: Inventory, vnf: str, at: datetime) -> bool:
    v = inv.vnf(vnf, at)
    if v is None:
        return False
    if v.stateful is not None:
        return v.stateful
    return v.kind.lower() in STATEFUL_KINDS


def _select(source: Source, c: FlowClassifier, lo: datetime, hi: datetime,
            reverse: bool) -> Any:
    from fabricscope.store.filters import RecordFilter

    single = (c.destination_port_range_min is not None
              and c.destination_port_range_min == c.destination_port_range_max)
    port = c.destination_port_range_min if single else None
    flt = RecordFilter(since=lo, until=hi, inner_proto=c.protocol,
                       inner_sport=port if reverse else None,
                       inner_dport=None if reverse else port)
    return source.select(flt, columns=OBS_COLUMNS)


def _hosts_of(path: Path, namer: Namer) -> list[str]:
    at = ns_to_dt(path.first_ns)
    segs = path.segments
    if not segs:
        return []
    return [namer.host(segs[0].outer_src, at) or "?"] + [
        namer.host(s.outer_dst, at) or "?" for s in segs]


def check_chains(source: Source, inv: Inventory | None, q: ChainCheckQuery
                 ) -> dict[str, Any]:
    if inv is None:
        raise UsageError("check chains needs an inventory with service chains")
    namer = Namer(inv)
    w = q.window
    violations: list[dict[str, Any]] = []
    unverifiable: list[dict[str, Any]] = []
    checked = 0
    chains_checked = []
    for chain in _versions(inv, w, q.chain):
        lo = max(w.since, chain.valid_from or w.since)
        hi = min(w.until, chain.valid_to or w.until)
        chains_checked.append({"chain": chain.name, "since": iso(lo), "until": iso(hi),
                               "groups": [list(g.vnfs) for g in chain.groups]})
        for c in chain.classifiers:
            fwd = _paths(source, c, lo, hi, namer, inv)
            for path, flow, hosts, when in fwd:
                checked += 1
                src_host, dst_host = hosts[0], hosts[-1]
                pos = 0
                for gi, group in enumerate(chain.groups):
                    ghosts = set().union(*(_vnf_hosts(inv, v, when) for v in group.vnfs))
                    if ghosts & {src_host, dst_host} and not ghosts & set(hosts[1:-1]):
                        unverifiable.append(_flow_info(chain, flow, hosts, path, when) | {
                            "group": gi, "vnfs": list(group.vnfs),
                            "reason": "VNF on the source or destination host"})
                        continue
                    hit = next((k for k in range(max(pos, 1), len(hosts) - 1)
                                if hosts[k] in ghosts), None)
                    if hit is None:
                        violations.append(_flow_info(chain, flow, hosts, path, when) | {
                            "kind": "bypass", "group": gi, "vnfs": list(group.vnfs),
                            "expected_hosts": sorted(ghosts)})
                    else:
                        pos = hit + 1
            # asymmetry through stateful VNFs
            stateful = [v for g in chain.groups for v in g.vnfs if _is_stateful(inv, v, hi)]
            if not stateful:
                continue
            rev = {_key(f): (hosts, p, when) for p, f, hosts, when in
                   _paths(source, c, lo, hi, namer, inv, reverse=True)}
            for path, flow, hosts, when in fwd:
                r = rev.get(_key((flow[1], flow[0], flow[2], flow[4], flow[3])))
                if r is None:
                    continue
                rhosts = r[0]
                for v in stateful:
                    vh = _vnf_hosts(inv, v, when)
                    f_in = vh & set(hosts[1:-1])
                    r_in = vh & set(rhosts[1:-1])
                    if f_in != r_in:
                        violations.append(_flow_info(chain, flow, hosts, path, when) | {
                            "kind": "asymmetric", "vnf": v,
                            "forward_hosts": hosts, "reverse_hosts": rhosts})
    return {"query": {"chain": q.chain, **w.to_dict()}, "chains": chains_checked,
            "flows_checked": checked, "ok": not violations, "violations": violations,
            "unverifiable": unverifiable}


def _key(f: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(f)


def _paths(source: Source, c: FlowClassifier, lo: datetime, hi: datetime, namer: Namer,
           inv: Inventory, *, reverse: bool = False
           ) -> list[tuple[Path, tuple[Any, ...], list[str], datetime]]:
    records = _select(source, c, lo, hi, reverse)
    obs = observations(records, bucket_for(int((hi - lo).total_seconds() * 1e9)))
    at = hi
    paths = build_paths(obs, lambda ip: namer.host(ip, at))
    out = []
    for p in paths:
        for flow in sorted(p.flows, key=lambda f: tuple(str(x) for x in f)):
            src, dst = ip_str(flow[0]) if flow[0] else None, ip_str(flow[1]) if flow[1] else None
            if src is None or dst is None:
                continue
            if reverse:
                ok = c.matches(dst, src, protocol=flow[2], sport=flow[4], dport=flow[3])
            else:
                ok = c.matches(src, dst, protocol=flow[2], sport=flow[3], dport=flow[4])
            if not ok:
                continue
            if c.logical_source_port and not reverse \
                    and not _from_port(inv, namer, c.logical_source_port, src, p):
                continue
            key = (ip_str(flow[0]), ip_str(flow[1]), flow[2], flow[3], flow[4])
            out.append((p, key, _hosts_of(p, namer), ns_to_dt(p.first_ns)))
    return out


def _from_port(inv: Inventory, namer: Namer, port: str, src: str, p: Path) -> bool:
    """Did the flow enter at the logical source port? Either its source address is the
    port's, or (a gateway port: external sources) its first segment starts at the host
    where that port is."""
    when = ns_to_dt(p.first_ns)
    e = inv.endpoint_by_ip(src, p.segments[0].vni if p.segments else None, when)
    if e is not None:
        return e.name == port
    ep = inv.endpoint(port, when)
    if ep is None or not ep.host or not p.segments:
        return False
    return namer.host(p.segments[0].outer_src, when) == ep.host


def _flow_info(chain: Chain, flow: tuple[Any, ...], hosts: list[str], path: Path,
               when: datetime) -> dict[str, Any]:
    return {"chain": chain.name, "src": flow[0], "dst": flow[1], "proto": flow[2],
            "sport": flow[3], "dport": flow[4], "hosts": hosts,
            "samples": path.agg.samples, "first_seen": iso(when),
            "last_seen": iso(ns_to_dt(path.last_ns))}

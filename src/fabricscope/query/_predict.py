"""``predict``: the paths a flow would take, from the inventory alone.

The chain: every service chain whose flow classifier selects the flow (networking-sfc
semantics: protocol, source/destination prefixes and port ranges, logical source port)
contributes its VNF groups in order; a group with several VNFs is a load-balanced choice.
The underlay: every equal-cost path in the topology between consecutive hosts (source
host, each VNF's host, destination host).

``compare`` checks an observed trace against the prediction: the observed VNFs must be one
of the predicted choices, each observed segment must join predicted hosts, and each
segment's observed hops must appear, in order, on one predicted underlay path.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fabricscope.correlate.topology import all_paths, build_graph, edge_ifs
from fabricscope.errors import NotFound, UsageError

if TYPE_CHECKING:
    from fabricscope.inventory import Chain, Endpoint, Inventory

MAX_COMBOS = 64


@dataclass
class PredictQuery:
    src: str
    dst: str
    at: datetime
    dport: int | None = None
    sport: int | None = None
    proto: int | None = None
    vni: int | None = None


def _endpoint(inv: Inventory, ip: str, vni: int | None, at: datetime, what: str) -> Endpoint:
    e = inv.endpoint_by_ip(ip, vni, at)
    if e is None:
        many = inv.endpoints_by_ip(ip, at)
        if len(many) > 1:
            raise UsageError(f"--{what} {ip} is used by several endpoints "
                             f"({', '.join(x.name for x in many)}): give --vni")
        raise NotFound(f"--{what} {ip}: no endpoint with that address in the inventory "
                       f"at {at.isoformat()}")
    return e


def matching_chains(inv: Inventory, src: Endpoint, src_ip: str, dst_ip: str,
                    q: PredictQuery, at: datetime) -> list[Chain]:
    out = []
    for chain in inv.chains(at):
        for c in chain.classifiers:
            if c.logical_source_port and c.logical_source_port != src.name:
                continue
            if c.matches(src_ip, dst_ip, protocol=q.proto, sport=q.sport, dport=q.dport):
                out.append(chain)
                break
    return out


def _vnf_hosts(inv: Inventory, vnf: str, at: datetime) -> list[str]:
    v = inv.vnf(vnf, at)
    if v is None:
        return []
    hosts: list[str] = []
    for ep_name in v.port_endpoints():
        ep = inv.endpoint(ep_name, at)
        if ep is not None and ep.host and ep.host not in hosts:
            hosts.append(ep.host)
    return hosts


def predict(inv: Inventory | None, q: PredictQuery) -> dict[str, Any]:
    if inv is None:
        raise UsageError("predict needs an inventory (--inventory FILE, or load one with "
                         "'fabricscope inventory load')")
    at = q.at
    src = _endpoint(inv, q.src, q.vni, at, "src")
    dst = _endpoint(inv, q.dst, q.vni, at, "dst")
    if not src.host or not dst.host:
        raise NotFound("the inventory does not say which host the endpoints are on")
    chains = matching_chains(inv, src, q.src, q.dst, q, at)
    groups: list[list[str]] = []
    for chain in chains:
        for grp in chain.groups:
            groups.append(list(grp.vnfs))
    g = build_graph(inv, at)
    choices = list(itertools.islice(itertools.product(*groups), MAX_COMBOS)) if groups else [()]
    alternatives = []
    for vnfs in choices:
        hosts_per_vnf = [_vnf_hosts(inv, v, at) for v in vnfs]
        for vhosts in itertools.islice(itertools.product(*hosts_per_vnf), MAX_COMBOS):
            seq = [src.host, *vhosts, dst.host]
            legs = []
            for a, b in itertools.pairwise(seq):
                legs.append({"src_host": a, "dst_host": b,
                             "paths": _underlay(g, a, b) if a != b else [[]]})
            alternatives.append({"vnfs": list(vnfs), "hosts": seq, "segments": legs})
    return {
        "query": {"src": q.src, "dst": q.dst, "sport": q.sport, "dport": q.dport,
                  "proto": q.proto, "vni": q.vni, "at": at.isoformat()},
        "src": {"ip": q.src, "endpoint": src.name, "tenant": inv.tenant_of(src, at),
                "host": src.host},
        "dst": {"ip": q.dst, "endpoint": dst.name, "tenant": inv.tenant_of(dst, at),
                "host": dst.host},
        "chains": [c.name for c in chains],
        "vnf_groups": groups,
        "alternatives": alternatives,
    }


def _underlay(g: Any, a: str, b: str) -> list[list[dict[str, Any]]]:
    out = []
    for p in all_paths(g, ("host", a), ("host", b)):
        hops = []
        for k in range(1, len(p) - 1):
            in_if, _ = edge_ifs(g, p[k], p[k - 1])
            out_if, _ = edge_ifs(g, p[k], p[k + 1])
            hops.append({"device": p[k][1], "in_if": in_if, "out_if": out_if})
        out.append(hops)
    return out


def _subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(x in it for x in small)


def compare(prediction: dict[str, Any], observed: dict[str, Any]) -> dict[str, Any]:
    """Observed trace (trace JSON) vs prediction: every observed path must fit a predicted
    alternative. Returns {"ok": bool, "problems": [...], "matched": [...]}."""
    problems: list[str] = []
    matched = []
    alts = prediction["alternatives"]
    for k, path in enumerate(observed.get("paths", [])):
        if path.get("direction") == "reverse":
            continue
        hosts = ([path["segments"][0]["src_host"]] + [s["dst_host"] for s in path["segments"]]
                 if path["segments"] else [])
        fit = None
        for alt in alts:
            if alt["hosts"] != hosts or (alt["vnfs"] != path["vnfs"] and not _raw_vnfs(path)):
                continue
            ok = True
            for seg, leg in zip(path["segments"], alt["segments"], strict=True):
                seen = [h["device"] for h in seg["hops"] if not h.get("inferred")]
                if not any(_subsequence(seen, [h["device"] for h in p]) for p in leg["paths"]):
                    ok = False
                    break
            if ok:
                fit = alt
                break
        if fit is None:
            problems.append(
                f"observed path {k} (hosts {' -> '.join(map(str, hosts))}, VNFs "
                f"{path['vnfs'] or 'none'}, hops "
                + "; ".join(",".join(h["device"] for h in s["hops"]) for s in path["segments"])
                + ") is not among the predicted paths")
        else:
            matched.append({"path": k, "vnfs": fit["vnfs"], "hosts": fit["hosts"]})
    return {"ok": not problems, "problems": problems, "matched": matched}


def _raw_vnfs(path: dict[str, Any]) -> bool:
    """A trace without inventory names VNFs by host; accept the host sequence then."""
    return all(v == s["dst_host"] for v, s in zip(path["vnfs"], path["segments"], strict=False))

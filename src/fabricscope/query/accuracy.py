"""How right is ``trace``? Score it against a simulated fabric's ground truth.

For every simulated flow with at least one sample that reached the collector, the paths
the trace engine rebuilds from the stored samples are compared with ``truth``:

* **hop precision**: observed (not inferred) hops -- device, in ifIndex, out ifIndex --
  that are on the flow's true path, over all observed hops (a false hop lowers it);
* **hop recall**: true hops where the flow was sampled (so a trace *could* see them) that
  the trace reports, over all such hops;
* **VNFs**: each VNF sequence the trace reports for a flow must be a true sequence of that
  flow (a span of its life) or, for a path sampled only in part, a contiguous piece of
  one; ``vnf_false`` counts flows with any other sequence.

All flows are evaluated in one pass (one store read, one path build), with exactly the
engine ``trace`` uses (correlate/observe, correlate/paths, query/_trace naming).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from fabricscope.correlate.names import Namer
from fabricscope.correlate.observe import OBS_COLUMNS, bucket_for, observations
from fabricscope.correlate.paths import build_paths
from fabricscope.correlate.topology import build_graph
from fabricscope.query._trace import TraceContext, TraceQuery, _path_json
from fabricscope.query.common import Window
from fabricscope.records.present import ip_str

if TYPE_CHECKING:
    from fabricscope.inventory import Inventory
    from fabricscope.sim.truth import Truth

FlowKey = tuple[str, str, int, int, int, int]


def evaluate(store: Any, inventory: Inventory | None, truth: Truth, since: datetime,
             until: datetime) -> dict[str, Any]:
    from fabricscope.store.filters import RecordFilter

    w = Window(since, until)
    records = store.select(RecordFilter(since=since, until=until, kind="flow"),
                           columns=OBS_COLUMNS)
    obs = observations(records, bucket_for(int((until - since).total_seconds() * 1e9)))
    namer = Namer(inventory)
    paths = build_paths(obs, lambda ip: namer.host(ip, until))
    ctx = TraceContext(namer=namer, graph=build_graph(inventory, until), health=None,
                       window=w, inv=inventory,
                       query=TraceQuery(src="0.0.0.0", dst="0.0.0.0", window=w))

    flows = truth.flows
    # One 5-tuple may be several flows: at different times (port reuse) they are told
    # apart by time; at overlapping times (a ping's requests and another ping's replies:
    # same addresses, no ports) nothing in a 5-tuple separates them, so they are scored
    # as one flow (``rep`` maps each to the first of its group).
    by_key: dict[FlowKey, list[tuple[int, int, int]]] = defaultdict(list)
    for r in flows.select(["flow_id", "src_ip", "dst_ip", "proto", "sport", "dport",
                           "vni", "start_ns", "end_ns"]).to_pylist():
        by_key[(r["src_ip"], r["dst_ip"], r["proto"], r["sport"] or 0, r["dport"] or 0,
                r["vni"])].append((r["flow_id"], r["start_ns"], r["end_ns"]))
    rep: dict[int, int] = {}
    key_to_ids: dict[FlowKey, list[tuple[int, int, int]]] = {}
    for key, cands in by_key.items():
        groups: list[list[int]] = []  # [rep, start, end]
        for fid, s, e in sorted(cands, key=lambda c: c[1]):
            if groups and s <= groups[-1][2]:
                groups[-1][2] = max(groups[-1][2], e)
                rep[fid] = groups[-1][0]
            else:
                groups.append([fid, s, e])
                rep[fid] = fid
        key_to_ids[key] = [(g[0], g[1], g[2]) for g in groups]

    true_hops: dict[int, set[tuple[str, int, int]]] = defaultdict(set)
    for r in truth.hops.select(["flow_id", "device", "in_if", "out_if"]).to_pylist():
        true_hops[rep[r["flow_id"]]].add((str(r["device"]), r["in_if"], r["out_if"]))
    sampled: dict[int, set[tuple[str, int, int]]] = defaultdict(set)
    s = truth.table("samples")
    s = s.filter(pc.invert(s["lost"]))
    for r in s.select(["flow_id", "device", "in_if", "out_if"]).to_pylist():
        sampled[rep[r["flow_id"]]].add((str(r["device"]), r["in_if"], r["out_if"]))
    true_vnfs: dict[int, set[tuple[str, ...]]] = defaultdict(set)
    seg = truth.segments.select(["flow_id", "span", "seg", "to_vnf"]).to_pylist()
    spans: dict[tuple[int, int], list[tuple[int, str | None]]] = defaultdict(list)
    for r in seg:
        spans[(r["flow_id"], r["span"])].append((r["seg"], r["to_vnf"]))
    for (fid, _span), segs in spans.items():
        true_vnfs[rep[fid]].add(tuple(str(v) for _, v in sorted(segs, key=lambda x: x[0])
                                 if v is not None))

    seen: dict[Any, tuple[int, int]] = {}
    for o in obs:
        lo, hi = seen.get(o.inner, (o.first_ns, o.last_ns))
        seen[o.inner] = (min(lo, o.first_ns), max(hi, o.last_ns))
    observed: dict[int, set[tuple[str, int, int]]] = defaultdict(set)
    obs_vnfs: dict[int, set[tuple[tuple[str, ...], bool]]] = defaultdict(set)
    unmatched = 0
    total = sum(p.agg.samples for p in paths) or 1
    for p in paths:
        pj = _path_json(p, ctx, total)
        hops = {(h["device"], h["in_ifindex"], h["out_ifindex"])
                for sg in pj["segments"] for h in sg["hops"] if not h["inferred"]}
        vni = p.segments[0].vni if p.segments else None
        for inner in p.flows:
            fkey: FlowKey = (ip_str(inner[0]) or "", ip_str(inner[1]) or "", inner[2] or 0,
                             inner[3] or 0, inner[4] or 0, vni or 0)
            found = _pick(key_to_ids.get(fkey, []), *seen[inner])
            if found is None:
                unmatched += 1
                continue
            observed[found] |= hops
            obs_vnfs[found].add((tuple(pj["vnfs"]), pj["complete"] is True))

    evaluated = sorted(f for f in sampled if sampled[f])
    tp_p = fp = tp_r = fn = 0
    vnf_false: list[int] = []
    false_hops: list[tuple[int, tuple[str, int, int]]] = []
    missed_hops: list[tuple[int, tuple[str, int, int]]] = []
    for fid in evaluated:
        got = observed.get(fid, set())
        for h in got:
            if h in true_hops[fid]:
                tp_p += 1
            else:
                fp += 1
                false_hops.append((fid, h))
        for h in sampled[fid]:
            if h in got:
                tp_r += 1
            else:
                fn += 1
                missed_hops.append((fid, h))
        if any(not any(_piece(o, t) for t in true_vnfs[fid]) for o in obs_vnfs.get(fid, ())):
            vnf_false.append(fid)
    return {
        "flows": flows.num_rows,
        "flows_sampled": len(evaluated),
        "flows_merged": sum(1 for f, r in rep.items() if f != r),
        "flows_traced": sum(1 for f in evaluated if observed.get(f)),
        "hop_precision": tp_p / (tp_p + fp) if tp_p + fp else 1.0,
        "hop_recall": tp_r / (tp_r + fn) if tp_r + fn else 1.0,
        "false_hops": len(false_hops),
        "missed_hops": len(missed_hops),
        "vnf_false": len(vnf_false),
        "unmatched_flows": unmatched,
        "examples": {"false_hops": false_hops[:5], "missed_hops": missed_hops[:5],
                     "vnf_false": vnf_false[:5]},
    }


def _pick(cands: list[tuple[int, int, int]], lo: int, hi: int) -> int | None:
    """The candidate flow whose life overlaps [lo, hi] the most."""
    best, best_ov = None, None
    for fid, s, e in cands:
        ov = min(e, hi) - max(s, lo)
        if best_ov is None or ov > best_ov:
            best, best_ov = fid, ov
    return best


def _piece(observed: tuple[tuple[str, ...], bool], true: tuple[str, ...]) -> bool:
    seq, complete = observed
    if complete:
        return seq == true
    n = len(seq)
    return any(true[k:k + n] == seq for k in range(len(true) - n + 1))

"""``matrix``: who talks to whom, over which hosts, in a time window.

The store aggregates samples and estimates per (VNI, inner source, inner destination,
outer source, outer destination, observation point). A flow sampled at several switches
is counted once: its estimate is the mean over the observation points that saw it (each
is an unbiased estimate of the same packets). Rows are then named (tenant, endpoint or
host, from the inventory valid at the end of the window; raw identities otherwise) and
summed, keeping for each row the host pairs (tunnel endpoints) that carried it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import pyarrow as pa

from fabricscope.correlate.names import Namer
from fabricscope.query.common import Window

if TYPE_CHECKING:
    from fabricscope.inventory import Inventory

By = Literal["tenant", "endpoint", "host"]
GROUP = ["vni", "inner_src", "inner_dst", "src", "dst", "agent"]

_MEAN_SQL = """
SELECT vni, inner_src, inner_dst, src, dst,
       sum(samples) AS samples, avg(est_packets) AS est_packets, avg(est_bytes) AS est_bytes
FROM a GROUP BY ALL
"""


@dataclass
class MatrixQuery:
    window: Window
    by: By = "tenant"
    limit: int = 100


def matrix(source: Any, inventory: Inventory | None, q: MatrixQuery) -> dict[str, Any]:
    from fabricscope.store.filters import RecordFilter

    agg = source.aggregate(RecordFilter(since=q.window.since, until=q.window.until),
                           by=GROUP, resolution="auto")
    return matrix_from_aggregate(agg, inventory, q)


def matrix_from_aggregate(agg: pa.Table, inventory: Inventory | None, q: MatrixQuery
                          ) -> dict[str, Any]:
    namer = Namer(inventory)
    at = q.window.until
    con = duckdb.connect()
    try:
        con.register("a", agg)
        rows = con.execute(_MEAN_SQL).fetchall()
    finally:
        con.close()
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    hosts: dict[tuple[str, str], dict[tuple[str, str], float]] = defaultdict(
        lambda: defaultdict(float))
    total = 0.0
    for vni, isrc, idst, osrc, odst, samples, estp, estb in rows:
        tunneled = isrc is not None
        s_host = namer.host(osrc, at) if tunneled else None
        d_host = namer.host(odst, at) if tunneled else None
        if q.by == "host":
            if not tunneled:
                continue
            key = (s_host or "?", d_host or "?")
        else:
            s_ip, d_ip = (isrc, idst) if tunneled else (osrc, odst)
            vv = vni if tunneled else None
            se = namer.endpoint(s_ip, vv, at)
            de = namer.endpoint(d_ip, vv, at)
            if q.by == "tenant":
                fallback = f"vni:{vni}" if vv is not None else "(underlay)"
                key = (se["tenant"] or fallback, de["tenant"] or fallback)
            else:
                key = (se["endpoint"] or str(se["ip"]), de["endpoint"] or str(de["ip"]))
        c = cells.setdefault(key, {"src": key[0], "dst": key[1], "samples": 0,
                                   "est_packets": 0.0, "est_bytes": 0.0, "flows": 0})
        c["samples"] += int(samples)
        c["est_packets"] += float(estp)
        c["est_bytes"] += float(estb)
        c["flows"] += 1
        total += float(estb)
        if tunneled:
            hosts[key][(s_host or "?", d_host or "?")] += float(estb)
    out = sorted(cells.values(), key=lambda c: -c["est_bytes"])[: q.limit]
    for c in out:
        c["est_packets"] = round(c["est_packets"])
        c["est_bytes"] = round(c["est_bytes"])
        c["share"] = round(c["est_bytes"] / total, 4) if total else 0.0
        hp = hosts.get((c["src"], c["dst"]), {})
        c["host_pairs"] = [{"src_host": a, "dst_host": b, "est_bytes": round(v)}
                           for (a, b), v in sorted(hp.items(), key=lambda kv: -kv[1])][:10]
    return {"query": {"by": q.by, "limit": q.limit, **q.window.to_dict()},
            "rows": out, "total_est_bytes": round(total), "cells": len(cells)}

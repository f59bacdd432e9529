"""``matrix``: who talks to whom, over which hosts, in a time window.

The store aggregates samples and estimates per (VNI, inner source, inner destination,
outer source, outer destination, observation point). A flow sampled at several switches
is counted once: its estimate is the mean over the observation points that saw it (each
is an unbiased estimate of the same packets). Rows are then named (tenant, endpoint or
host, from the inventory valid at the end of the window; raw identities otherwise) and
summed, keeping for each row the host pairs (tunnel endpoints) that carried it.
"""

from __future__ import annotations

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
    """Name and sum. Python work is per distinct identity (address + VNI, outer address),
    never per row: DuckDB computes the per-flow means, the distinct identities are named
    once, and the naming tables are joined back for the final grouping."""
    namer = Namer(inventory)
    at = q.window.until
    con = duckdb.connect()
    try:
        con.register("a", agg)
        con.execute(f"CREATE TEMP TABLE f AS {_MEAN_SQL}")
        outer = con.execute(
            "SELECT DISTINCT x FROM (SELECT src AS x FROM f WHERE inner_src IS NOT NULL "
            "UNION SELECT dst FROM f WHERE inner_src IS NOT NULL) WHERE x IS NOT NULL"
        ).fetchall()
        hosts_t = pa.table({"ip": pa.array([ip for (ip,) in outer], pa.binary()),
                            "name": pa.array([namer.host(ip, at) for (ip,) in outer],
                                             pa.string())})
        con.register("hosts", hosts_t)
        if q.by != "host":
            ids = con.execute(
                "SELECT DISTINCT v, x FROM ("
                " SELECT vni AS v, inner_src AS x FROM f WHERE inner_src IS NOT NULL"
                " UNION SELECT vni, inner_dst FROM f WHERE inner_src IS NOT NULL"
                " UNION SELECT NULL, src FROM f WHERE inner_src IS NULL"
                " UNION SELECT NULL, dst FROM f WHERE inner_src IS NULL) WHERE x IS NOT NULL"
            ).fetchall()
            vs, ips, nm = [], [], []
            for v, ip in ids:
                e = namer.endpoint(ip, v, at)
                if q.by == "tenant":
                    name = e["tenant"] or (f"vni:{v}" if v is not None else "(underlay)")
                else:
                    name = e["endpoint"] or str(e["ip"])
                vs.append(v)
                ips.append(ip)
                nm.append(name)
            con.register("names", pa.table({"v": pa.array(vs, pa.uint64()),
                                            "ip": pa.array(ips, pa.binary()),
                                            "name": pa.array(nm, pa.string())}))
            key_s = "ns.name"
            key_d = "nd.name"
            joins = (
                "LEFT JOIN names ns ON ns.ip = (CASE WHEN f.inner_src IS NULL THEN f.src "
                "ELSE f.inner_src END) AND ns.v IS NOT DISTINCT FROM "
                "(CASE WHEN f.inner_src IS NULL THEN NULL ELSE f.vni END) "
                "LEFT JOIN names nd ON nd.ip = (CASE WHEN f.inner_src IS NULL THEN f.dst "
                "ELSE f.inner_dst END) AND nd.v IS NOT DISTINCT FROM "
                "(CASE WHEN f.inner_src IS NULL THEN NULL ELSE f.vni END) ")
            where = ""
        else:
            key_s = "coalesce(hs.name, '?')"
            key_d = "coalesce(hd.name, '?')"
            joins = ""
            where = "WHERE f.inner_src IS NOT NULL"
        base = (f"SELECT {key_s} AS s, {key_d} AS d, coalesce(hs.name, '?') AS sh, "
                f"coalesce(hd.name, '?') AS dh, f.inner_src IS NOT NULL AS tunneled, "
                f"f.samples, f.est_packets, f.est_bytes FROM f {joins}"
                "LEFT JOIN hosts hs ON hs.ip = f.src LEFT JOIN hosts hd ON hd.ip = f.dst "
                f"{where}")
        con.execute(f"CREATE TEMP TABLE g AS {base}")
        cells = con.execute(
            "SELECT s, d, sum(samples)::BIGINT, sum(est_packets), sum(est_bytes), count(*) "
            "FROM g GROUP BY s, d ORDER BY sum(est_bytes) DESC").fetchall()
        total = float(con.execute("SELECT coalesce(sum(est_bytes), 0) FROM g").fetchall()[0][0])
        top = cells[: q.limit]
        pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        if top:
            con.register("topc", pa.table({"s": pa.array([c[0] for c in top], pa.string()),
                                           "d": pa.array([c[1] for c in top], pa.string())}))
            for s, d, sh, dh, b in con.execute(
                    "SELECT g.s, g.d, sh, dh, sum(est_bytes) AS b FROM g JOIN topc "
                    "USING (s, d) WHERE tunneled GROUP BY g.s, g.d, sh, dh "
                    "ORDER BY b DESC").fetchall():
                lst = pairs.setdefault((s, d), [])
                if len(lst) < 10:
                    lst.append({"src_host": sh, "dst_host": dh, "est_bytes": round(b)})
    finally:
        con.close()
    out = []
    for s, d, samples, estp, estb, nflows in top:
        out.append({"src": s, "dst": d, "samples": int(samples),
                    "est_packets": round(estp), "est_bytes": round(estb),
                    "flows": int(nflows),
                    "share": round(estb / total, 4) if total else 0.0,
                    "host_pairs": pairs.get((s, d), [])})
    return {"query": {"by": q.by, "limit": q.limit, **q.window.to_dict()},
            "rows": out, "total_est_bytes": round(total), "cells": len(cells)}

"""``impact``: the tenants, endpoints, VNIs and inner flows that crossed a device, an
interface or a link in a time window, by estimated bytes, with their confidence.

Traffic at an interface is what the device sampled arriving on it (``in_if``) or leaving
by it (``out_if``). For a link (an interface whose far end is another sFlow device, per
the inventory), both ends' samples count; each end's estimate stands for the same
packets, so per flow the ends' estimates are averaged, not added.

Confidence: sFlow's sampling error bound, 196 x sqrt(1 / samples) percent at 95%
(sFlow.org, "Packet Sampling Basics").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from fabricscope.correlate.names import Namer
from fabricscope.correlate.observe import ns_to_dt
from fabricscope.errors import UsageError
from fabricscope.query.common import Source, Window, iso
from fabricscope.records.present import ip_str

if TYPE_CHECKING:
    from fabricscope.inventory import Inventory

IMPACT_COLUMNS = ["ts", "kind", "agent", "in_if", "out_if", "sampling_rate", "frame_len",
                  "src", "dst", "proto", "encap", "vni", "inner_src", "inner_dst",
                  "inner_proto", "inner_sport", "inner_dport"]


@dataclass
class ImpactQuery:
    device: str
    window: Window
    interface: str | None = None
    limit: int = 50

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "interface": self.interface, "limit": self.limit,
                **self.window.to_dict()}


def error_pct(samples: int) -> float | None:
    return None if samples <= 0 else round(196.0 * math.sqrt(1.0 / samples), 1)


def _select(source: Source, agent: str, ifindex: int | None, w: Window) -> pa.Table:
    from fabricscope.store.filters import RecordFilter

    if ifindex is None:
        return source.select(RecordFilter(since=w.since, until=w.until, agent=agent),
                             columns=IMPACT_COLUMNS)
    return source.select(RecordFilter(since=w.since, until=w.until, agent=agent,
                                      interface=ifindex), columns=IMPACT_COLUMNS)


_FLOWS_SQL = """
WITH per_end AS (
  SELECT agent, vni, CAST(encap AS VARCHAR) AS encap,
         inner_src, inner_dst, inner_proto, inner_sport, inner_dport,
         src, dst, proto,
         count(*) AS samples,
         sum(coalesce(sampling_rate, 1))::DOUBLE AS est_packets,
         sum(coalesce(frame_len, 0)::DOUBLE * coalesce(sampling_rate, 1)) AS est_bytes,
         epoch_ns(min(ts)) AS first_ns, epoch_ns(max(ts)) AS last_ns,
         count(*) FILTER (WHERE CAST(kind AS VARCHAR) = 'discard') AS discards
  FROM r GROUP BY ALL
)
SELECT vni, encap, inner_src, inner_dst, inner_proto, inner_sport, inner_dport, src, dst, proto,
       sum(samples) AS samples, avg(est_packets) AS est_packets, avg(est_bytes) AS est_bytes,
       min(first_ns) AS first_ns, max(last_ns) AS last_ns, sum(discards) AS discards
FROM per_end GROUP BY ALL ORDER BY est_bytes DESC
"""


def impact(source: Source, inventory: Inventory | None, q: ImpactQuery) -> dict[str, Any]:
    namer = Namer(inventory)
    w = q.window
    at = w.until
    agent = namer.agent_of_device(q.device, at)
    if agent is None:
        raise UsageError(f"--device {q.device!r}: not a device name in the inventory "
                         "nor an agent IP address")
    ends: list[tuple[str, int | None]] = []
    ifindex = None
    link_info: dict[str, Any] | None = None
    if q.interface is not None:
        ifindex = namer.ifindex_of(q.device, q.interface, at)
        if ifindex is None:
            raise UsageError(f"--interface {q.interface!r}: unknown on {q.device} (give a "
                             "name from the inventory or an ifIndex)")
        ends.append((agent, ifindex))
        far = _far_end(inventory, namer, agent, ifindex, at)
        if far is not None:
            link_info = far
            if far.get("agent") and far.get("ifindex") is not None:
                ends.append((far["agent"], far["ifindex"]))
    else:
        ends.append((agent, None))
    tables = [_select(source, a, i, w) for a, i in ends]
    records = pa.concat_tables(tables, promote_options="permissive") if tables else None
    flows = _aggregate(records) if records is not None and records.num_rows else []
    return _report(q, namer, agent, ifindex, link_info, flows, at)


def _far_end(inv: Inventory | None, namer: Namer, agent: str, ifindex: int, at: Any
             ) -> dict[str, Any] | None:
    if inv is None:
        return None
    di = inv.interface(agent, ifindex, at)
    if di is None:
        return None
    link = inv.link_of(di.device.name, di.interface.name, at)
    if link is None:
        return None
    far = link.other(di.device.name, di.interface.name)
    if far is None:
        return None
    out: dict[str, Any] = {"link": link.key, "far_end": far.label}
    if far.device is not None:
        dev = inv.device(far.device, at)
        if dev is not None and dev.agent:
            itf = dev.interface(far.interface or "")
            out["agent"] = dev.agent
            out["ifindex"] = itf.ifindex if itf is not None else None
    return out


def _aggregate(records: pa.Table) -> list[dict[str, Any]]:
    cols = []
    for f in records.schema:
        c = records.column(f.name)
        cols.append(c.cast(pa.string()) if pa.types.is_dictionary(f.type) else c)
    r = pa.Table.from_arrays(cols, names=records.schema.names)
    con = duckdb.connect()
    try:
        con.register("r", r)
        cur = con.execute(_FLOWS_SQL)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def _report(q: ImpactQuery, namer: Namer, agent: str, ifindex: int | None,
            link: dict[str, Any] | None, flows: list[dict[str, Any]], at: Any
            ) -> dict[str, Any]:
    tenants: dict[str, dict[str, Any]] = {}
    endpoints: dict[tuple[Any, ...], dict[str, Any]] = {}
    vnis: dict[Any, dict[str, Any]] = {}
    out_flows: list[dict[str, Any]] = []
    total_bytes = sum(f["est_bytes"] for f in flows) or 1.0
    for f in flows:
        when = ns_to_dt(f["last_ns"])
        tunneled = f["inner_src"] is not None
        s_ip = f["inner_src"] if tunneled else f["src"]
        d_ip = f["inner_dst"] if tunneled else f["dst"]
        vni = f["vni"] if tunneled else None
        se = namer.endpoint(s_ip, vni, when)
        de = namer.endpoint(d_ip, vni, when)
        tenant = se["tenant"] or de["tenant"] or (
            namer.tenant_of_vni(vni, when) if vni is not None else None)
        tkey = tenant or (f"vni:{vni}" if vni is not None else "(underlay)")
        t = tenants.setdefault(tkey, {"tenant": tkey, "samples": 0, "est_packets": 0.0,
                                      "est_bytes": 0.0, "flows": 0})
        t["samples"] += f["samples"]
        t["est_packets"] += f["est_packets"]
        t["est_bytes"] += f["est_bytes"]
        t["flows"] += 1
        for e in (se, de):
            key = (e["ip"], tkey)
            ep = endpoints.setdefault(key, {"ip": e["ip"], "endpoint": e["endpoint"],
                                            "tenant": tenant, "host": e["host"],
                                            "samples": 0, "est_bytes": 0.0})
            ep["samples"] += f["samples"]
            ep["est_bytes"] += f["est_bytes"]
        if vni is not None:
            v = vnis.setdefault(vni, {"vni": vni, "encap": f["encap"],
                                      "network": namer.network_of_vni(vni, when),
                                      "tenant": tenant, "samples": 0, "est_bytes": 0.0})
            v["samples"] += f["samples"]
            v["est_bytes"] += f["est_bytes"]
        if len(out_flows) < q.limit:
            out_flows.append({
                "src": ip_str(s_ip) if s_ip else None, "dst": ip_str(d_ip) if d_ip else None,
                "proto": f["inner_proto"] if tunneled else f["proto"],
                "sport": f["inner_sport"], "dport": f["inner_dport"], "vni": vni,
                "encap": f["encap"], "tenant": tenant,
                "src_endpoint": se["endpoint"], "dst_endpoint": de["endpoint"],
                "outer_src": ip_str(f["src"]) if f["src"] else None,
                "outer_dst": ip_str(f["dst"]) if f["dst"] else None,
                "src_host": namer.host(f["src"], when) if tunneled else None,
                "dst_host": namer.host(f["dst"], when) if tunneled else None,
                "samples": int(f["samples"]), "est_packets": round(f["est_packets"]),
                "est_bytes": round(f["est_bytes"]),
                "share": round(f["est_bytes"] / total_bytes, 4),
                "error_pct": error_pct(int(f["samples"])),
                "discard_samples": int(f["discards"]),
                "first_seen": iso(ns_to_dt(f["first_ns"])),
                "last_seen": iso(ns_to_dt(f["last_ns"])),
            })

    def finish(rows: list[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
        rows.sort(key=lambda x: -x["est_bytes"])
        if limit is not None:
            del rows[limit:]
        for x in rows:
            for k in ("est_packets", "est_bytes"):
                if k in x:
                    x[k] = round(x[k])
            x["share"] = round(x["est_bytes"] / total_bytes, 4)
            x["error_pct"] = error_pct(int(x["samples"]))
        return rows

    return {
        "query": q.to_dict(),
        "device": namer.device(agent, at),
        "agent": agent,
        "interface": namer.interface(agent, ifindex, at) if ifindex is not None else None,
        "ifindex": ifindex,
        "link": link,
        "samples": int(sum(f["samples"] for f in flows)),
        "tenants": finish(list(tenants.values())),
        "endpoints": finish(list(endpoints.values()), q.limit),
        "vnis": finish(list(vnis.values())),
        "flows": out_flows,
    }

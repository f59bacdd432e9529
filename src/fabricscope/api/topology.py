"""The picture the web page draws: the underlay (devices, hosts, links coloured by the
interface counters of a window), the overlay on top (endpoints and VNFs inside their
hosts, tunnels between hosts), as nodes and edges.

Node ids: ``dev:NAME``, ``host:NAME``, ``ep:NAME``, ``vnf:NAME``; edge ids ``link:KEY`` and
``tun:A|B``. A vswitch device with a ``host`` is drawn inside its host (``parent``).
Without an inventory (zero-config) devices are the sFlow agents seen in the window, hosts
the tunnel endpoints (outer IPs), and there are no links (nothing says what is cabled to
what).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fabricscope.correlate.names import Namer
from fabricscope.query.common import Window, iso
from fabricscope.records.present import ip_str

if TYPE_CHECKING:
    from fabricscope.inventory import Inventory

UTIL_WARN = 0.7
UTIL_CRIT = 0.9
MAX_TUNNEL_ROWS = 500


def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) or math.isinf(f) else f


def interface_stats(store: Any, w: Window) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (agent, ifIndex): mean and peak utilisation, error and discard rates over the
    window, from the store's counter polls (empty when the store has none)."""
    t = store.counters(since=w.since, until=w.until)
    if t.num_rows == 0:
        return {}
    cols = {n: t.column(n).to_pylist() for n in (
        "agent", "ifindex", "port_name", "speed", "in_util", "out_util", "in_bps", "out_bps",
        "in_errors_ps", "out_errors_ps", "fcs_errors_ps", "in_discards_ps",
        "out_discards_ps") if n in t.column_names}
    acc: dict[tuple[str, int], dict[str, Any]] = {}
    sums: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for k in range(t.num_rows):
        raw = cols["agent"][k]
        agent = raw if isinstance(raw, str) else ip_str(raw)
        ix = cols["ifindex"][k]
        if agent is None or ix is None:
            continue
        key = (agent, int(ix))
        a = acc.setdefault(key, {"agent": agent, "ifindex": int(ix), "port_name": None,
                                 "speed": None, "polls": 0})
        a["polls"] += 1
        if cols.get("port_name") and cols["port_name"][k]:
            a["port_name"] = cols["port_name"][k]
        if cols.get("speed") and cols["speed"][k]:
            a["speed"] = int(cols["speed"][k])
        for name in ("in_util", "out_util", "in_bps", "out_bps", "in_errors_ps",
                     "out_errors_ps", "fcs_errors_ps", "in_discards_ps", "out_discards_ps"):
            v = _num(cols[name][k]) if name in cols else None
            if v is not None:
                sums[key][name].append(v)
    for key, a in acc.items():
        s = sums.get(key, {})

        def mean(name: str, s: dict[str, list[float]] = s) -> float | None:
            xs = s.get(name)
            return sum(xs) / len(xs) if xs else None

        a["in_util"] = mean("in_util")
        a["out_util"] = mean("out_util")
        peaks = [v for n in ("in_util", "out_util") for v in s.get(n, [])]
        a["peak_util"] = max(peaks) if peaks else None
        a["in_bps"] = mean("in_bps")
        a["out_bps"] = mean("out_bps")
        errs = [mean(n) for n in ("in_errors_ps", "out_errors_ps", "fcs_errors_ps")]
        a["errors_ps"] = sum(e for e in errs if e is not None) if any(
            e is not None for e in errs) else None
        disc = [mean(n) for n in ("in_discards_ps", "out_discards_ps")]
        a["discards_ps"] = sum(d for d in disc if d is not None) if any(
            d is not None for d in disc) else None
        a["level"] = level(a)
    return acc


def level(s: dict[str, Any]) -> str:
    """ok / warning / critical / unknown, from utilisation and error/discard rates."""
    util = max((v for v in (s.get("in_util"), s.get("out_util"), s.get("util"))
                if v is not None), default=None)
    errors = s.get("errors_ps")
    discards = s.get("discards_ps")
    if util is None and errors is None and discards is None:
        return "unknown"
    if (errors or 0) > 0 or (util or 0) >= UTIL_CRIT:
        return "critical"
    if (discards or 0) > 0 or (util or 0) >= UTIL_WARN:
        return "warning"
    return "ok"


def span(store: Any) -> dict[str, Any] | None:
    """First and last record time in the store (None when it is empty): from the store's
    bookkeeping when it keeps it, else a query."""
    info = store.info()
    first_ns, last_ns, rows = (info.get("first_ns"), info.get("last_ns"), info.get("rows")
                               ) if isinstance(info, dict) else (None, None, None)
    if isinstance(first_ns, int) and isinstance(last_ns, int):
        from fabricscope.timeutil import format_ns

        return {"first": format_ns(first_ns), "last": format_ns(last_ns),
                "samples": int(rows) if isinstance(rows, int) else None}
    if isinstance(rows, int) and rows == 0:
        return None
    t = store.aggregate(None, by=[])
    if t.num_rows == 0:
        return None
    first, last = t.column("first_seen")[0].as_py(), t.column("last_seen")[0].as_py()
    if first is None or last is None:
        return None
    return {"first": iso(_dt(first)), "last": iso(_dt(last)),
            "samples": int(t.column("samples")[0].as_py() or 0)}


def _dt(v: Any) -> datetime:
    if isinstance(v, datetime):  # pandas.Timestamp is a datetime too
        return v
    from fabricscope.correlate.observe import ns_to_dt

    return ns_to_dt(int(v))


def _round(v: float | None, nd: int = 4) -> float | None:
    return None if v is None else round(v, nd)


def build_topology(store: Any, inv: Inventory | None, w: Window) -> dict[str, Any]:
    at = w.until
    namer = Namer(inv)
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    stats = interface_stats(store, w)

    def iface_entry(agent: str | None, ifindex: int | None, name: str | None
                    ) -> dict[str, Any]:
        s = stats.get((agent, ifindex)) if agent is not None and ifindex is not None else None
        out: dict[str, Any] = {"name": name, "ifindex": ifindex}
        if s is not None:
            out.update({k: _round(s[k]) if isinstance(s[k], float) else s[k] for k in (
                "in_util", "out_util", "peak_util", "in_bps", "out_bps", "errors_ps",
                "discards_ps", "level", "speed")})
        else:
            out["level"] = "unknown"
        return out

    if inv is not None:
        from fabricscope.inventory import Device, Endpoint, Host, Vnf

        hosts = {h.key: h for h in inv.facts("hosts", at) if isinstance(h, Host)}
        for h in hosts.values():
            nodes[f"host:{h.key}"] = {"id": f"host:{h.key}", "kind": "host", "label": h.key,
                                      "role": h.role, "tunnel_ips": list(h.tunnel_ips)}
        for d in inv.facts("devices", at):
            if not isinstance(d, Device):
                continue
            parent = f"host:{d.host}" if d.role == "vswitch" and d.host in hosts else None
            itfs = [iface_entry(d.agent, i.ifindex, i.name) for i in d.interfaces]
            nodes[f"dev:{d.key}"] = {
                "id": f"dev:{d.key}", "kind": "device", "label": d.key, "role": d.role,
                "agent": d.agent, "parent": parent, "interfaces": itfs,
                "level": _worst(i["level"] for i in itfs)}
        vnf_port_eps: dict[str, str] = {}
        for v in inv.facts("vnfs", at):
            if not isinstance(v, Vnf):
                continue
            host = None
            for ep_name in v.port_endpoints():
                vnf_port_eps[ep_name] = v.key
                ep = inv.endpoint(ep_name, at)
                if host is None and ep is not None and ep.host:
                    host = ep.host
            nodes[f"vnf:{v.key}"] = {
                "id": f"vnf:{v.key}", "kind": "vnf", "label": v.key, "vnf_kind": v.kind,
                "tenant": v.tenant, "parent": f"host:{host}" if host in hosts else None,
                "host": host, "ports": list(v.port_endpoints())}
        for e in inv.facts("endpoints", at):
            if not isinstance(e, Endpoint) or e.key in vnf_port_eps:
                continue
            nodes[f"ep:{e.key}"] = {
                "id": f"ep:{e.key}", "kind": "endpoint", "label": e.key, "ep_kind": e.kind,
                "tenant": inv.tenant_of(e, at), "network": e.network, "ips": list(e.ips),
                "host": e.host, "parent": f"host:{e.host}" if e.host in hosts else None}
        for link in inv.links(at):
            ends = []
            for end in (link.a, link.b):
                if end.device is not None:
                    dev = inv.device(end.device, at)
                    itf = dev.interface(end.interface or "") if dev is not None else None
                    ends.append((f"dev:{end.device}", end.interface,
                                 dev.agent if dev is not None else None,
                                 itf.ifindex if itf is not None else None,
                                 itf.speed if itf is not None else None))
                elif end.host is not None:
                    ends.append((f"host:{end.host}", end.nic, None, None, None))
            if len(ends) != 2 or ends[0][0] not in nodes or ends[1][0] not in nodes:
                continue
            (na, ia, aga, ixa, spa), (nb, ib, agb, ixb, spb) = ends
            sa, sb = iface_entry(aga, ixa, ia), iface_entry(agb, ixb, ib)
            edges[f"link:{link.key}"] = _link_edge(link.key, na, nb, sa, sb,
                                                   link.speed or spa or spb)
    else:
        notes.append("no inventory: devices are sFlow agents, hosts are tunnel endpoint "
                     "addresses, links are unknown")
        agents = {a for a, _ in stats}
        for a in _agents_seen(store, w):
            agents.add(a)
        for a in sorted(agents):
            itfs = [iface_entry(a, ix, s.get("port_name") or str(ix))
                    for (ag, ix), s in sorted(stats.items()) if ag == a]
            nodes[f"dev:{a}"] = {"id": f"dev:{a}", "kind": "device", "label": a,
                                 "role": "unknown", "agent": a, "parent": None,
                                 "interfaces": itfs,
                                 "level": _worst(i["level"] for i in itfs)}

    _tunnels(store, inv, w, nodes, edges, namer)
    return {
        "query": {**w.to_dict(), "at": iso(at)},
        "nodes": list(nodes.values()),
        "edges": list(edges.values()),
        "span": span(store),
        "inventory": inv is not None,
        "notes": notes,
    }


def _link_edge(key: str, na: str, nb: str, sa: dict[str, Any], sb: dict[str, Any],
               speed: int | None) -> dict[str, Any]:
    utils = [v for s in (sa, sb) for v in (s.get("in_util"), s.get("out_util"))
             if v is not None]
    peaks = [s["peak_util"] for s in (sa, sb) if s.get("peak_util") is not None]
    errs = [s["errors_ps"] for s in (sa, sb) if s.get("errors_ps") is not None]
    disc = [s["discards_ps"] for s in (sa, sb) if s.get("discards_ps") is not None]
    summary = {"util": max(utils) if utils else None,
               "errors_ps": sum(errs) if errs else None,
               "discards_ps": sum(disc) if disc else None}
    return {"id": f"link:{key}", "kind": "link", "source": na, "target": nb, "link": key,
            "a": sa, "b": sb, "speed": speed, "util": _round(summary["util"]),
            "peak_util": _round(max(peaks) if peaks else None),
            "errors_ps": _round(summary["errors_ps"]),
            "discards_ps": _round(summary["discards_ps"]), "level": level(summary)}


def _worst(levels: Any) -> str:
    order = ["unknown", "ok", "warning", "critical"]
    best = 0
    for lv in levels:
        best = max(best, order.index(lv) if lv in order else 0)
    return order[best]


def _agents_seen(store: Any, w: Window) -> list[str]:
    from fabricscope.store.filters import RecordFilter

    t = store.aggregate(RecordFilter(since=w.since, until=w.until), by=["agent"])
    out = []
    for raw in t.column("agent").to_pylist() if t.num_rows else []:
        if raw is not None:
            out.append(raw if isinstance(raw, str) else ip_str(raw))
    return [a for a in out if a is not None]


def _tunnels(store: Any, inv: Inventory | None, w: Window, nodes: dict[str, dict[str, Any]],
             edges: dict[str, dict[str, Any]], namer: Namer) -> None:
    """Tunnel edges between hosts from the traffic matrix by tenant (host pairs)."""
    from fabricscope.query._matrix import MatrixQuery, matrix

    m = matrix(store, inv, MatrixQuery(window=w, by="tenant", limit=MAX_TUNNEL_ROWS))
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for row in m["rows"]:
        for hp in row.get("host_pairs", []):
            a, b = hp.get("src_host"), hp.get("dst_host")
            if not a or not b or a == b:
                continue
            key = (min(a, b), max(a, b))
            p = pairs.setdefault(key, {"est_bytes": 0, "tenants": set()})
            p["est_bytes"] += hp.get("est_bytes") or 0
            for t in (row.get("src"), row.get("dst")):
                if t:
                    p["tenants"].add(t)
    total = sum(p["est_bytes"] for p in pairs.values()) or 1
    for (a, b), p in sorted(pairs.items()):
        for h in (a, b):
            hid = f"host:{h}"
            if hid not in nodes:
                nodes[hid] = {"id": hid, "kind": "host", "label": h, "role": "unknown",
                              "tunnel_ips": []}
        edges[f"tun:{a}|{b}"] = {
            "id": f"tun:{a}|{b}", "kind": "tunnel", "source": f"host:{a}",
            "target": f"host:{b}", "est_bytes": int(p["est_bytes"]),
            "share": round(p["est_bytes"] / total, 4), "tenants": sorted(p["tenants"])}

"""Collector accounting in one shape, whatever reported it.

The accounting comes from a collector running in this process (its ``status()``) or from
what the collector and ``ingest`` wrote with the data (the store's ``info()``). Both are
read leniently and brought to::

    {"source": "live" | "store" | "none",
     "totals": {"datagrams", "samples", "gaps", "drops", "socket_drops", ...},
     "agents": [{"agent", "datagrams", "samples", "gaps", "drops"}, ...],
     "events": {event name: count},
     "raw": what was reported}

``gaps`` are datagrams lost on the way (sFlow sequence numbers), ``drops`` samples the
agent itself dropped (the ``drops`` field), ``socket_drops`` datagrams the kernel dropped
at the collector's socket (/proc/net/udp).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIELDS: dict[str, tuple[str, ...]] = {
    "datagrams": ("datagrams", "datagrams_received", "received"),
    "samples": ("samples", "flow_samples_total", "records"),
    "gaps": ("lost_datagrams", "lost", "gaps", "seq_gaps", "datagrams_lost"),
    "sample_gaps": ("lost_samples", "sample_gaps", "samples_lost"),
    "drops": ("agent_drops", "drops", "sample_drops"),
}
TOTAL_EXTRA: dict[str, tuple[str, ...]] = {
    "socket_drops": ("socket_drops", "udp_drops", "kernel_drops", "rcvbuf_drops"),
    "bytes": ("bytes", "bytes_received"),
    "flow_samples": ("flow_samples",),
    "counter_samples": ("counter_samples",),
    "discard_samples": ("discard_samples",),
}


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return int(v)
    return None


def _pick(d: Mapping[str, Any], names: tuple[str, ...]) -> int | None:
    for n in names:
        if n in d:
            v = _int(d[n])
            if v is not None:
                return v
    return None


def _agents(raw: Any) -> list[dict[str, Any]]:
    items: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items() if isinstance(v, Mapping)]
    elif isinstance(raw, list):
        for a in raw:
            if isinstance(a, Mapping):
                name = a.get("agent") or a.get("address") or a.get("name")
                if name is not None:
                    sub = a.get("sub_agent")
                    items.append((str(name) if sub in (None, 0) else f"{name}/{sub}", a))
    by: dict[str, dict[str, Any]] = {}
    for name, a in items:
        row = by.setdefault(name, {"agent": name, **dict.fromkeys(FIELDS, 0)})
        for f, names in FIELDS.items():
            row[f] += _pick(a, names) or 0
        if "samples" not in a and ("flow_samples" in a or "counter_samples" in a):
            row["samples"] += sum(_int(a.get(k)) or 0 for k in (
                "flow_samples", "counter_samples", "discard_samples"))
    return sorted(by.values(), key=lambda r: r["agent"])


def _events(raw: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    if isinstance(raw, Mapping):
        for k, v in raw.items():
            n = _int(v)
            if n is not None:
                out[str(k)] = out.get(str(k), 0) + n
    elif isinstance(raw, list):
        for e in raw:
            if isinstance(e, Mapping) and "name" in e:
                n = _int(e.get("count"))
                if n is not None:
                    out[str(e["name"])] = out.get(str(e["name"]), 0) + n
    return out


def find(info: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The accounting part of a store's ``info()`` (or of a status dict), if any."""
    for key in ("accounting", "collector", "collect"):
        v = info.get(key)
        if isinstance(v, Mapping):
            return v
    if any(k in info for k in ("agents", "datagrams")):
        return info
    return None


def normalize(raw: Mapping[str, Any] | None, source: str) -> dict[str, Any]:
    if raw is None:
        return {"source": "none", "totals": {}, "agents": [], "events": {}, "raw": None}
    agents = _agents(raw.get("agents") or raw.get("per_agent") or raw.get("sources"))
    totals: dict[str, int] = {}
    for f, names in {**FIELDS, **TOTAL_EXTRA}.items():
        v = _pick(raw, names)
        if v is None and f in FIELDS and agents:
            v = sum(a[f] for a in agents)
        if v is not None:
            totals[f] = v
    sock = raw.get("socket")
    if isinstance(sock, Mapping) and "socket_drops" not in totals:
        d = _int(sock.get("drops"))
        if d is not None:
            totals["socket_drops"] = d
    events = _events(raw.get("events") or raw.get("decode_events"))
    return {"source": source, "totals": totals, "agents": agents, "events": events,
            "raw": raw}

"""Collector accounting in one shape, whatever reported it.

The accounting comes from a collector running in this process (its ``snapshot()``, or
``status()``) or from what ``collect --db`` and ``ingest`` wrote with the data: the summary
each records with ``mark_ingested`` (a collector run: its closing accounting without the
per-agent list; an ingested file: its sFlow datagrams and decode events). Both are read
leniently and brought to::

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


def live(collector: Any) -> dict[str, Any]:
    """What an in-process collector reports: ``snapshot()`` (sflow.collector.Collector)
    or ``status()``."""
    for name in ("snapshot", "status"):
        fn = getattr(collector, name, None)
        if callable(fn):
            out = fn()
            return dict(out) if isinstance(out, Mapping) else {}
    return {}


def _ingested(store: Any) -> dict[str, Any]:
    fn = getattr(store, "ingested_summaries", None)
    if callable(fn):
        return dict(fn())
    cat = getattr(store, "catalog", None)  # the embedded store's commit log
    snap = getattr(cat, "snapshot", None)
    if callable(snap):
        return dict(getattr(snap(), "ingested", {}) or {})
    return {}


def stored(store: Any) -> dict[str, Any] | None:
    """The accounting written with the data, added up over every collector run and every
    ingested capture (shaped like ``sflow.accounting.Accounting.to_dict()``, without the
    per-agent list, which only a live collector has)."""
    info = store.info()
    found = find(info) if isinstance(info, Mapping) else None
    if found is not None:
        return dict(found)
    summaries = _ingested(store)
    if not summaries:
        return None
    out: dict[str, Any] = {"datagrams": 0, "samples": 0, "lost_datagrams": 0,
                           "lost_samples": 0, "agent_drops": 0, "events": {},
                           "socket": {"drops": 0}, "agents": [], "collector_runs": 0,
                           "captures": 0, "last_written": None}

    def add(key: str, n: Any) -> None:
        v = _int(n)
        if v is not None:
            out[key] += v

    for key, s in summaries.items():
        if not isinstance(s, Mapping):
            continue
        if str(key).startswith("collect-"):
            out["collector_runs"] += 1
            for k in ("datagrams", "samples", "lost_datagrams", "lost_samples",
                      "agent_drops"):
                add(k, s.get(k))
            sock = s.get("socket")
            if isinstance(sock, Mapping):
                out["socket"]["drops"] += _int(sock.get("drops")) or 0
        else:
            out["captures"] += 1
            dg = _int(s.get("sflow_datagrams")) or 0
            out["datagrams"] += dg
            if dg:
                add("samples", s.get("records"))
                add("samples", s.get("counters"))
        for name, n in _events(s.get("events")).items():
            out["events"][name] = out["events"].get(name, 0) + n
        at = s.get("ingested_at")
        if isinstance(at, str) and (out["last_written"] is None or at > out["last_written"]):
            out["last_written"] = at
    return out

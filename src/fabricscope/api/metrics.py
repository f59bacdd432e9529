"""Prometheus metrics (``GET /metrics``), in a registry of the app's own.

Low cardinality by construction: labels are agents (switches: a bounded set, capped with an
``other`` bucket), event names (a fixed table), datasets, routes (the templates, never the
URL), query names, and device/interface names from the inventory (capped). Never a tenant
address, never a 5-tuple.

What is read from the store (accounting written with the data, sizes, interface counters)
is computed at scrape time and reused for ``CACHE_SECONDS``, so a fast scraper costs the
store nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("fabricscope.api")

MAX_AGENTS = 256
MAX_INTERFACES = 4096
CACHE_SECONDS = 10.0
INTERFACE_WINDOW = timedelta(minutes=5)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Snapshot:
    """What one scrape reports from the store and the collector."""

    def __init__(self) -> None:
        self.accounting: dict[str, Any] = {"source": "none", "totals": {}, "agents": [],
                                           "events": {}}
        self.store: dict[str, dict[str, float]] = {}
        self.interfaces: list[dict[str, Any]] = []
        self.errors: list[str] = []


class FabricCollector(Collector):
    """A custom collector: turns a :class:`Snapshot` (from ``snapshot_fn``) into metric
    families at every scrape."""

    def __init__(self, snapshot_fn: Callable[[], Snapshot]) -> None:
        self.snapshot_fn = snapshot_fn
        self._lock = threading.Lock()
        self._cached: tuple[float, Snapshot] | None = None

    def _snapshot(self) -> Snapshot:
        now = time.monotonic()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            try:
                snap = self.snapshot_fn()
            except Exception as exc:  # a broken store must not break /metrics
                log.warning("metrics: %s", exc)
                snap = Snapshot()
                snap.errors.append(type(exc).__name__)
            self._cached = (now, snap)
            return snap

    def collect(self) -> Iterator[Any]:
        snap = self._snapshot()
        yield from _accounting_families(snap.accounting)
        yield from _store_families(snap.store)
        yield from _interface_families(snap.interfaces)
        up = GaugeMetricFamily("fabricscope_metrics_source_up",
                               "1 when the store could be read for this scrape")
        up.add_metric([], 0.0 if snap.errors else 1.0)
        yield up


def capped_accounting(raw: dict[str, Any]) -> dict[str, Any]:
    """The accounting with at most ``MAX_AGENTS`` agent series: the agents with the fewest
    datagrams beyond the cap are added up under the agent ``other``."""
    agents = [a for a in raw.get("agents") or [] if isinstance(a, dict)]
    if len(agents) <= MAX_AGENTS:
        return raw
    ranked = sorted(agents, key=lambda a: -int(a.get("datagrams") or 0))
    other: dict[str, Any] = {"agent": "other", "sub_agent": 0, "sources": []}
    for a in ranked[MAX_AGENTS - 1:]:
        for k, v in a.items():
            if isinstance(v, int) and not isinstance(v, bool) and k not in (
                    "sub_agent", "last_seq", "first_ts_ns", "last_ts_ns"):
                other[k] = int(other.get(k, 0)) + v
    return {**raw, "agents": [*ranked[: MAX_AGENTS - 1], other]}


def _accounting_families(acc: dict[str, Any]) -> Iterator[Any]:
    """The collector's own metric families (``fabricscope_sflow_*``, the same names a
    standalone collector exports), per agent only (no per-source series)."""
    raw = acc.get("raw")
    if isinstance(raw, dict):
        from fabricscope.sflow.accounting import AccountingCollector

        capped = capped_accounting(raw)
        try:
            yield from AccountingCollector(lambda: capped, per_source=False).collect()
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("metrics: accounting of an unexpected shape: %s", exc)
    src = GaugeMetricFamily("fabricscope_collector_accounting_source",
                            "where the accounting comes from (1 for the current source)",
                            labels=["source"])
    for s in ("live", "store", "none"):
        src.add_metric([s], 1.0 if acc.get("source") == s else 0.0)
    yield src


def _store_families(store: dict[str, dict[str, float]]) -> Iterator[Any]:
    rows = GaugeMetricFamily("fabricscope_store_rows", "rows in the store, per dataset",
                             labels=["dataset"])
    size = GaugeMetricFamily("fabricscope_store_bytes", "bytes the store uses, per dataset",
                             labels=["dataset"])
    files = GaugeMetricFamily("fabricscope_store_files", "files or parts, per dataset",
                              labels=["dataset"])
    for ds, d in sorted(store.items()):
        if "rows" in d:
            rows.add_metric([ds], d["rows"])
        if "bytes" in d:
            size.add_metric([ds], d["bytes"])
        if "files" in d:
            files.add_metric([ds], d["files"])
    yield rows
    yield size
    yield files


def _interface_families(itfs: list[dict[str, Any]]) -> Iterator[Any]:
    labels = ["device", "interface", "direction"]
    util = GaugeMetricFamily(
        "fabricscope_interface_utilisation_ratio",
        f"mean utilisation (0..1 of speed) over the last {INTERFACE_WINDOW}", labels=labels)
    bps = GaugeMetricFamily("fabricscope_interface_bits_per_second",
                            f"mean bit rate over the last {INTERFACE_WINDOW}", labels=labels)
    errs = GaugeMetricFamily(
        "fabricscope_interface_errors_per_second",
        f"mean error rate over the last {INTERFACE_WINDOW} (in, out, fcs)", labels=labels)
    disc = GaugeMetricFamily("fabricscope_interface_discards_per_second",
                             f"mean discard rate over the last {INTERFACE_WINDOW}",
                             labels=labels)
    capped = GaugeMetricFamily("fabricscope_interface_series_capped",
                               "interfaces left out of the per-interface metrics (cap "
                               f"{MAX_INTERFACES})")
    capped.add_metric([], float(max(0, len(itfs) - MAX_INTERFACES)))
    for s in itfs[:MAX_INTERFACES]:
        dev, itf = str(s["device"]), str(s["interface"])
        for d in ("in", "out"):
            for fam, key in ((util, f"{d}_util"), (bps, f"{d}_bps"),
                             (errs, f"{d}_errors_ps"), (disc, f"{d}_discards_ps")):
                v = s.get(key)
                if v is not None:
                    fam.add_metric([dev, itf, d], float(v))
        if s.get("fcs_errors_ps") is not None:
            errs.add_metric([dev, itf, "fcs"], float(s["fcs_errors_ps"]))
    yield util
    yield bps
    yield errs
    yield disc
    yield capped


# --- what the snapshot reads -----------------------------------------------------------------


def store_sizes(info: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Rows/bytes/files per dataset from a store's ``info()`` (lenient about its shape:
    ``{"datasets": {name: {...}}}`` or ``{name: {"rows":..}}``)."""
    out: dict[str, dict[str, float]] = {}
    src = info.get("datasets") if isinstance(info.get("datasets"), dict) else info
    if not isinstance(src, dict):
        return out
    for ds, d in src.items():
        if not isinstance(d, dict):
            continue
        vals = {k: float(d[k]) for k in ("rows", "bytes", "files")
                if isinstance(d.get(k), (int, float)) and not isinstance(d.get(k), bool)}
        if vals:
            out[str(ds)] = vals
    return out


def interface_rows(store: Any, inv: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per interface (named from the inventory; raw agent and ifIndex otherwise) the mean
    rates over the last ``INTERFACE_WINDOW``, busiest first."""
    from fabricscope.correlate.names import Namer
    from fabricscope.query.common import Window

    until = now or datetime.now(UTC)
    w = Window(until - INTERFACE_WINDOW, until)
    t = store.counters(since=w.since, until=w.until)
    if t.num_rows == 0:
        return []
    namer = Namer(inv)
    import pyarrow as pa

    from fabricscope.records.present import ip_str

    keys = ["agent", "ifindex"]
    measures = [c for c in ("in_util", "out_util", "in_bps", "out_bps", "in_errors_ps",
                            "out_errors_ps", "fcs_errors_ps", "in_discards_ps",
                            "out_discards_ps") if c in t.column_names]
    g = pa.table({k: t.column(k) for k in keys + measures}).group_by(keys).aggregate(
        [(m, "mean") for m in measures])
    rows = []
    agents = g.column("agent").to_pylist()
    ixs = g.column("ifindex").to_pylist()
    cols = {m: g.column(f"{m}_mean").to_pylist() for m in measures}
    for k in range(g.num_rows):
        raw = agents[k]
        agent = raw if isinstance(raw, str) else ip_str(raw)
        if agent is None or ixs[k] is None:
            continue
        r: dict[str, Any] = {"device": namer.device(agent, until) or agent,
                             "interface": namer.interface(agent, int(ixs[k]), until)
                             or str(ixs[k])}
        for m in measures:
            r[m] = cols[m][k]
        rows.append(r)
    rows.sort(key=lambda r: -float((r.get("in_bps") or 0) + (r.get("out_bps") or 0)))
    return rows


# --- request and query instrumentation ------------------------------------------------------


class ApiMetrics:
    """The app's registry: request counts/latency by route, query latency by query, and the
    :class:`FabricCollector`."""

    def __init__(self, snapshot_fn: Callable[[], Snapshot]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("fabricscope_api_requests", "API requests, by route and "
                                "status code", ["route", "method", "code"],
                                registry=self.registry)
        self.latency = Histogram("fabricscope_api_request_duration_seconds",
                                 "API request latency, by route", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.query_latency = Histogram("fabricscope_query_duration_seconds",
                                       "time spent in a query (store and correlation), "
                                       "by query", ["query"], buckets=LATENCY_BUCKETS,
                                       registry=self.registry)
        self.collector = FabricCollector(snapshot_fn)
        self.registry.register(self.collector)

    def observe_request(self, route: str, method: str, code: int, seconds: float) -> None:
        self.requests.labels(route, method, str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        data: bytes = generate_latest(self.registry)
        return data

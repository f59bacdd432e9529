"""Learning the inventory from traffic (zero-config).

A ``Learner`` is fed Arrow record batches (the columns of ``records/schema.py``) and learns:

* **VTEPs**: the outer source and destination of every tunnelled record are tunnel
  endpoints (hosts);
* **what lives behind which VTEP, on which VNI, since when**, like a VTEP's MAC learning:
  the inner source MAC of a tunnelled frame is behind its outer source address. Sightings
  become *episodes* (same VNI, MAC and VTEP; a silence longer than ``aging`` ends one).
  An episode behind another VTEP that starts after the previous one is a **move** (a VM
  migration, with its time); episodes behind two VTEPs that overlap are a **conflict**.
  Inner source IPs are bound to the MAC that carries them; a MAC carrying more than
  ``router_mac_ips`` addresses on a VNI is a router/gateway port (routed traffic keeps the
  remote source IP), not an endpoint;
* **sFlow agents and ifIndexes**, with port names and speeds from counter records;
* **underlay adjacency**: the same tunnel flow (outer 5-tuple) sampled at agent A with TTL
  t leaving by ``out_if`` X and at agent B with TTL t-1 entering by ``in_if`` Y puts a link
  between A:X and B:Y; a sample still carrying an initial TTL (64, 128, 255) was taken at
  the first switch, whose ``in_if`` is cabled to the source VTEP. This assumes ingress
  sampling (the sFlow default).

Learned facts are marked ``learned`` with their ``evidence`` (samples, or flows for links)
and ``source="learned"``. A learned fact is never produced where a declared one answers;
disagreements with declared facts are reported as conflicts instead:

==================== ============================================================
kind                 meaning
==================== ============================================================
mac-two-vteps        one MAC on one VNI behind two VTEPs at the same time
ip-two-vteps         one IP on one VNI carried by MACs behind two VTEPs at once
location-mismatch    a declared endpoint seen behind another host's VTEP
vni-mismatch         a declared endpoint's MAC seen on a VNI its network does not have
mac-mismatch         a declared endpoint's IP carried by another (non-router) MAC
encap-mismatch       a declared network's VNI seen with another encapsulation
link-mismatch        samples imply a far end other than the declared link's
undeclared-interface an ifIndex in the samples that the declared device does not list
==================== ============================================================

Records are reduced with NumPy/Arrow (sorts, group-bys, joins); Python only touches the
resulting episodes and distinct keys, never each record. Records carrying an MPLS label
(networking-sfc chains) are not used for location learning: a VNF forwards frames with
the original source addresses from its own host.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fabricscope.inventory import addr
from fabricscope.inventory.columns import Col, as_array, combine, int_col, ip_col
from fabricscope.inventory.index import Inventory
from fabricscope.inventory.model import (
    NETWORK_ENCAPS,
    Device,
    Endpoint,
    Fact,
    Host,
    Interface,
    Link,
    LinkEnd,
    Network,
)

DEFAULT_AGING = timedelta(minutes=5)
INITIAL_TTLS = (64, 128, 255)
ROUTER_MAC_IPS = 4
MIN_LINK_EVIDENCE = 2
MAX_HOP_ROWS = 2_000_000
SOURCE = "learned"
IF_INTERNAL = 0x3FFFFFFF

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _dt(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


def _ip_text(hi: Any, lo: Any) -> str:
    return _ip_text_cached(int(hi), int(lo))


@lru_cache(maxsize=1 << 16)
def _ip_text_cached(hi: int, lo: int) -> str:
    return addr.canonical_ip(((hi << 64) | lo).to_bytes(16, "big"))


def _texts(c: Col, codes: np.ndarray) -> list[str]:
    """Address text of each code (conversions memoised)."""
    return [_ip_text_cached(h, lo) for h, lo in zip(c.part(0, codes).tolist(),
                                                    c.part(1, codes).tolist(), strict=True)]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Move:
    """A MAC (and its IPs) that moved from one VTEP to another: a VM migration."""

    vni: int
    mac: str
    ips: tuple[str, ...]
    from_vtep: str
    to_vtep: str
    from_host: str | None
    to_host: str | None
    at: datetime
    evidence: int

    def __str__(self) -> str:
        who = ", ".join(self.ips) or self.mac
        return (f"{addr.format_time(self.at)} {who} (MAC {self.mac}, VNI {self.vni}) moved "
                f"from {self.from_host or self.from_vtep} to {self.to_host or self.to_vtep}")

    def to_dict(self) -> dict[str, Any]:
        return {"vni": self.vni, "mac": self.mac, "ips": list(self.ips),
                "from_vtep": self.from_vtep, "to_vtep": self.to_vtep,
                "from_host": self.from_host, "to_host": self.to_host,
                "at": addr.format_time(self.at), "evidence": self.evidence}


@dataclass(frozen=True)
class Conflict:
    """Traffic that contradicts itself or the declared inventory."""

    kind: str
    subject: str
    message: str
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    evidence: int = 0

    def __str__(self) -> str:
        when = ""
        if self.first_seen is not None:
            when = f" ({addr.format_time(self.first_seen)} .. {addr.format_time(self.last_seen)})"
        return f"{self.kind}: {self.subject}: {self.message}{when}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "message": self.message,
                "first_seen": addr.format_time(self.first_seen),
                "last_seen": addr.format_time(self.last_seen), "evidence": self.evidence}


@dataclass(frozen=True)
class Adjacency:
    """A link implied by samples: agent A's ``a_ifindex`` to agent B's ``b_ifindex``, or (a
    first hop) to the host owning ``host_ip``. ``evidence``: flows that show it."""

    a_agent: str
    a_ifindex: int
    b_agent: str | None
    b_ifindex: int | None
    host_ip: str | None
    evidence: int
    first_seen: datetime
    last_seen: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"a_agent": self.a_agent, "a_ifindex": self.a_ifindex, "b_agent": self.b_agent,
                "b_ifindex": self.b_ifindex, "host_ip": self.host_ip,
                "evidence": self.evidence, "first_seen": addr.format_time(self.first_seen),
                "last_seen": addr.format_time(self.last_seen)}


# --------------------------------------------------------------------------- state


@dataclass
class _Stat:
    first: int
    last: int
    count: int

    def add(self, first: int, last: int, count: int) -> None:
        self.first = min(self.first, first)
        self.last = max(self.last, last)
        self.count += count


def _bump(d: dict[Any, _Stat], key: Any, first: int, last: int, count: int) -> None:
    s = d.get(key)
    if s is None:
        d[key] = _Stat(first, last, count)
    else:
        s.add(first, last, count)


@dataclass
class _Episode:
    vtep: str
    first: int
    last: int
    count: int


@dataclass
class _Port:
    stat: _Stat
    name: str | None = None
    speed: int | None = None


@dataclass
class _State:
    vteps: dict[str, _Stat] = field(default_factory=dict)
    segments: dict[tuple[int, str], _Stat] = field(default_factory=dict)  # (vni, encap)
    macs: dict[tuple[int, int], list[_Episode]] = field(default_factory=dict)
    bindings: dict[tuple[int, str], dict[int, _Stat]] = field(default_factory=dict)
    agents: dict[str, _Stat] = field(default_factory=dict)
    ports: dict[tuple[str, int], _Port] = field(default_factory=dict)
    hops: list[pa.Table] = field(default_factory=list)
    hop_rows: int = 0


def _merge_episode(eps: list[_Episode], new: _Episode, aging: int) -> None:
    last = eps[-1]
    if (last.vtep == new.vtep and new.first >= last.first and new.first <= last.last + aging
            and all(e.first <= last.first for e in eps)):
        # the common case: more of the latest episode
        last.last = max(last.last, new.last)
        last.count += new.count
        return
    eps.append(new)
    eps.sort(key=lambda e: (e.first, e.vtep))
    out: list[_Episode] = []
    for ep in eps:
        # join the latest episode of the same VTEP if the silence between them is short
        prev = next((o for o in reversed(out) if o.vtep == ep.vtep), None)
        if prev is not None and ep.first <= prev.last + aging:
            prev.last = max(prev.last, ep.last)
            prev.count += ep.count
        else:
            out.append(ep)
    eps[:] = out


def _segments(key: np.ndarray, vtep: np.ndarray, ts: np.ndarray, aging: int
              ) -> tuple[np.ndarray, ...]:
    """Runs of the same (key, vtep) in time with no silence longer than ``aging``:
    (key, vtep, first, last, count) per run."""
    width = int(vtep.max()) + 1 if len(vtep) else 1
    if len(ts) < 2 or bool((ts[1:] >= ts[:-1]).all()):
        # records in time order (the usual case): one stable integer sort keeps it
        order = np.argsort(key.astype(np.int64) * width + vtep, kind="stable")
    else:
        order = np.lexsort((ts, vtep, key))
    k, v, t = key[order], vtep[order], ts[order]
    start = np.ones(len(k), dtype=bool)
    start[1:] = (k[1:] != k[:-1]) | (v[1:] != v[:-1]) | ((t[1:] - t[:-1]) > aging)
    s = np.flatnonzero(start)
    e = np.r_[s[1:], len(k)] - 1
    return k[s], v[s], t[s], t[e], (e - s + 1)


def _group(keys: dict[str, np.ndarray], ts: np.ndarray) -> dict[str, np.ndarray]:
    """Group rows by ``keys`` columns: the keys and ts min/max/count per group."""
    tbl = pa.table({**{k: pa.array(v) for k, v in keys.items()}, "ts": pa.array(ts)})
    g = tbl.group_by(list(keys)).aggregate([("ts", "min"), ("ts", "max"), ("ts", "count")])
    return {name: g.column(name).to_numpy(zero_copy_only=False) for name in g.schema.names}


def _valid_ifindex(ifx: Col, codes: np.ndarray) -> np.ndarray:
    vals = ifx.part(0, codes)
    ok: np.ndarray = ifx.valid(codes) & (vals != 0) & (vals != IF_INTERNAL)
    return ok


# --------------------------------------------------------------------------- learner


class Learner:
    """Learns hosts, endpoints, networks, devices, interfaces and links from records."""

    def __init__(self, inventory: Inventory | None = None, *,
                 aging: timedelta = DEFAULT_AGING,
                 initial_ttls: Iterable[int] = INITIAL_TTLS,
                 router_mac_ips: int = ROUTER_MAC_IPS,
                 min_link_evidence: int = MIN_LINK_EVIDENCE) -> None:
        self.declared = inventory if inventory is not None else Inventory()
        self.aging = aging
        self.aging_ns = int(aging.total_seconds() * 1e9)
        self.initial_ttls = tuple(initial_ttls)
        self.router_mac_ips = router_mac_ips
        self.min_link_evidence = min_link_evidence
        self.records = 0
        self.horizon = 0  # latest record time seen (ns)
        self._s = _State()
        self._derived: tuple[list[Fact], list[Conflict]] | None = None

    # ------------------------------------------------------------------ feeding

    def feed(self, batch: pa.Table | pa.RecordBatch) -> None:
        """Learn from one batch of packet/flow records, or of counter records."""
        names = set(batch.schema.names)
        if batch.num_rows == 0:
            return
        self._derived = None
        if "ifindex" in names and "src" not in names:
            self._feed_counters(batch)
            return
        n = batch.num_rows

        def col(name: str, typ: pa.DataType) -> pa.Array:
            return as_array(batch.column(name)) if name in names else pa.nulls(n, typ)

        ip_t = pa.binary(16)
        ts_arr = col("ts", pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        has_ts = pc.is_valid(ts_arr).to_numpy(zero_copy_only=False)
        ts = ts_arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        if not has_ts.any():
            return
        self.records += int(has_ts.sum())
        self.horizon = max(self.horizon, int(ts[has_ts].max()))
        encap = col("encap", pa.string())
        tunnel = has_ts & pc.is_valid(encap).to_numpy(zero_copy_only=False)
        src, dst = ip_col(col("src", ip_t)), ip_col(col("dst", ip_t))
        if tunnel.any():
            self._learn_vteps(src, dst, ts, tunnel)
            self._learn_segments(col("vni", pa.uint64()), encap, ts, tunnel)
            sfc = np.zeros(n, dtype=bool)
            for label in ("mpls_label", "inner_mpls_label"):
                if label in names:
                    sfc |= pc.is_valid(batch.column(label)).to_numpy(zero_copy_only=False)
            self._learn_locations(src, int_col(col("vni", pa.uint64())),
                                  int_col(col("inner_eth_src", pa.uint64())),
                                  ip_col(col("inner_src", ip_t)), ts, tunnel & ~sfc)
        agent = ip_col(col("agent", ip_t))
        sampled = has_ts & agent.valid(agent.codes)
        if sampled.any():
            self._learn_ports(batch, names, agent, ts, sampled)
            if tunnel.any() and "ttl" in names:
                self._learn_hops(batch, src, dst, agent, ts, sampled & tunnel)

    def _learn_vteps(self, src: Col, dst: Col, ts: np.ndarray, tunnel: np.ndarray) -> None:
        for c in (src, dst):
            m = tunnel & c.valid(c.codes)
            if not m.any():
                continue
            g = _group({"k": c.codes[m]}, ts[m])
            for k, lo, hi, cnt in zip(g["k"], g["ts_min"], g["ts_max"], g["ts_count"],
                                      strict=True):
                ip = _ip_text(c.parts[0][k], c.parts[1][k])
                _bump(self._s.vteps, ip, int(lo), int(hi), int(cnt))

    def _learn_segments(self, vni: pa.Array, encap: pa.Array, ts: np.ndarray,
                        tunnel: np.ndarray) -> None:
        vc = int_col(vni)
        enc = encap if pa.types.is_dictionary(encap.type) else pc.dictionary_encode(
            encap.cast(pa.string()))
        ec = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        names = enc.dictionary.to_pylist()
        m = tunnel & vc.valid(vc.codes) & (ec >= 0)
        if not m.any():
            return
        g = _group({"v": vc.codes[m], "e": ec[m]}, ts[m])
        for v, e, lo, hi, cnt in zip(g["v"], g["e"], g["ts_min"], g["ts_max"], g["ts_count"],
                                     strict=True):
            _bump(self._s.segments, (int(vc.parts[0][v]), str(names[e])), int(lo), int(hi),
                  int(cnt))

    def _learn_locations(self, src: Col, vni: Col, mac: Col, ip: Col, ts: np.ndarray,
                         mask: np.ndarray) -> None:
        m = mask & src.valid(src.codes) & vni.valid(vni.codes) & mac.valid(mac.codes)
        if not m.any():
            return
        idx = np.flatnonzero(m)
        # (vni, mac) behind a VTEP: episodes
        inverse, parts = combine([vni, mac])
        key = inverse[idx]
        k, v, first, last, count = _segments(key, src.codes[idx], ts[idx], self.aging_ns)
        vnis = vni.part(0, parts[0][k]).tolist()
        macs = mac.part(0, parts[1][k]).tolist()
        vteps = _texts(src, v)
        macs_state = self._s.macs
        for vn, mc, vt, f, la, c in zip(vnis, macs, vteps, first.tolist(), last.tolist(),
                                        count.tolist(), strict=True):
            eps = macs_state.get((vn, mc))
            if eps is None:
                macs_state[(vn, mc)] = [_Episode(vt, f, la, c)]
            else:
                _merge_episode(eps, _Episode(vt, f, la, c), self.aging_ns)
        # inner source IP carried by a MAC: bindings
        mi = m & ip.valid(ip.codes)
        if not mi.any():
            return
        sel = np.flatnonzero(mi)
        inv2, parts2 = combine([vni, mac, ip])
        g = _group({"k": inv2[sel]}, ts[sel])
        kk = g["k"]
        vnis = vni.part(0, parts2[0][kk]).tolist()
        macs = mac.part(0, parts2[1][kk]).tolist()
        ips = _texts(ip, parts2[2][kk])
        bindings = self._s.bindings
        for vn, mc, ipt, lo, hi, cnt in zip(vnis, macs, ips, g["ts_min"].tolist(),
                                            g["ts_max"].tolist(), g["ts_count"].tolist(),
                                            strict=True):
            b = bindings.get((vn, ipt))
            if b is None:
                bindings[(vn, ipt)] = {mc: _Stat(lo, hi, cnt)}
            else:
                _bump(b, mc, lo, hi, cnt)

    def _learn_ports(self, batch: Any, names: set[str], agent: Col, ts: np.ndarray,
                     sampled: np.ndarray) -> None:
        g = _group({"a": agent.codes[sampled]}, ts[sampled])
        for a, lo, hi, cnt in zip(g["a"], g["ts_min"], g["ts_max"], g["ts_count"], strict=True):
            _bump(self._s.agents, _ip_text(agent.parts[0][a], agent.parts[1][a]), int(lo),
                  int(hi), int(cnt))
        for side in ("in_if", "out_if"):
            if side not in names:
                continue
            ifx = int_col(as_array(batch.column(side)))
            ok = sampled & _valid_ifindex(ifx, ifx.codes)
            fmt_col = f"{side}_format"
            if fmt_col in names:
                fmt = as_array(batch.column(fmt_col)).fill_null(0).to_numpy(
                    zero_copy_only=False)
                ok &= fmt == 0
            if not ok.any():
                continue
            g = _group({"a": agent.codes[ok], "i": ifx.codes[ok]}, ts[ok])
            for a, i, lo, hi, cnt in zip(g["a"], g["i"], g["ts_min"], g["ts_max"],
                                         g["ts_count"], strict=True):
                key = (_ip_text(agent.parts[0][a], agent.parts[1][a]), int(ifx.parts[0][i]))
                port = self._s.ports.get(key)
                if port is None:
                    self._s.ports[key] = _Port(_Stat(int(lo), int(hi), int(cnt)))
                else:
                    port.stat.add(int(lo), int(hi), int(cnt))

    def _learn_hops(self, batch: Any, src: Col, dst: Col, agent: Col, ts: np.ndarray,
                    mask: np.ndarray) -> None:
        n = len(ts)

        def ints(name: str, fill: int = -1) -> np.ndarray:
            if name not in batch.schema.names:
                return np.full(n, fill, dtype=np.int64)
            a = as_array(batch.column(name))
            out: np.ndarray = a.cast(pa.int64()).fill_null(fill).to_numpy(zero_copy_only=False)
            return out

        ttl = ints("ttl")
        m = mask & (ttl >= 0) & src.valid(src.codes) & dst.valid(dst.codes)
        if not m.any():
            return
        in_if, out_if = ints("in_if"), ints("out_if")
        in_if = np.where((in_if == 0) | (in_if == IF_INTERNAL), -1, in_if)
        out_if = np.where((out_if == 0) | (out_if == IF_INTERNAL), -1, out_if)
        if "out_if_format" in batch.schema.names:
            out_if = np.where(ints("out_if_format", 0) == 0, out_if, -1)
        s_hi, s_lo = src.part(0, src.codes), src.part(1, src.codes)
        d_hi, d_lo = dst.part(0, dst.codes), dst.part(1, dst.codes)
        flow = s_hi.copy()
        for c in (s_lo, d_hi, d_lo, ints("proto", 0).astype(np.uint64),
                  ints("sport", 0).astype(np.uint64), ints("dport", 0).astype(np.uint64)):
            flow = (flow * _MIX) ^ c
        g = _group({
            "flow": flow[m], "ttl": ttl[m],
            "a_hi": agent.part(0, agent.codes)[m], "a_lo": agent.part(1, agent.codes)[m],
            "in_if": in_if[m], "out_if": out_if[m], "v_hi": s_hi[m], "v_lo": s_lo[m],
        }, ts[m])
        tbl = pa.table({k: pa.array(v) for k, v in g.items()})
        self._s.hops.append(tbl)
        self._s.hop_rows += tbl.num_rows
        if self._s.hop_rows > MAX_HOP_ROWS:  # keep memory bounded: compact, then drop oldest
            self._s.hops = [self._compact_hops()]
            self._s.hop_rows = self._s.hops[0].num_rows
            while self._s.hop_rows > MAX_HOP_ROWS and self._s.hops[0].num_rows:
                keep = self._s.hops[0].sort_by([("ts_max", "descending")]).slice(
                    0, MAX_HOP_ROWS // 2)
                self._s.hops = [keep]
                self._s.hop_rows = keep.num_rows

    def _compact_hops(self) -> pa.Table:
        keys = ["flow", "ttl", "a_hi", "a_lo", "in_if", "out_if", "v_hi", "v_lo"]
        if not self._s.hops:
            return pa.table({k: pa.array([], pa.int64()) for k in [*keys, "ts_min", "ts_max"]})
        t = pa.concat_tables(self._s.hops)
        return t.group_by(keys).aggregate([("ts_min", "min"), ("ts_max", "max"),
                                           ("ts_count", "sum")]).rename_columns(
            [*keys, "ts_min", "ts_max", "ts_count"])

    def _feed_counters(self, batch: Any) -> None:
        names = set(batch.schema.names)
        agent = ip_col(as_array(batch.column("agent")))
        ifx = int_col(as_array(batch.column("ifindex")))
        n = batch.num_rows
        ts = (as_array(batch.column("ts")).cast(pa.int64()).fill_null(0).to_numpy(
            zero_copy_only=False) if "ts" in names else np.zeros(n, np.int64))
        ok = agent.valid(agent.codes) & _valid_ifindex(ifx, ifx.codes)
        if not ok.any():
            return
        self.horizon = max(self.horizon, int(ts.max()))
        pn = (as_array(batch.column("port_name")).cast(pa.string()).to_pylist()
              if "port_name" in names else [None] * n)
        sp = (as_array(batch.column("speed")).to_pylist() if "speed" in names else [None] * n)
        g = _group({"a": agent.codes[ok], "i": ifx.codes[ok]}, ts[ok])
        # names and speeds: the last non-null value per port (loop over ports, not records)
        rows = np.flatnonzero(ok)
        last_row: dict[tuple[int, int], int] = {}
        order = rows[np.argsort(ts[rows], kind="stable")]
        a_codes, i_codes = agent.codes[order], ifx.codes[order]
        keyed = a_codes * (ifx.size + 1) + i_codes
        uniq, last_idx = np.unique(keyed[::-1], return_index=True)
        for kv, li in zip(uniq, last_idx, strict=True):
            last_row[(int(kv) // (ifx.size + 1), int(kv) % (ifx.size + 1))] = int(
                order[::-1][li])
        for a, i, lo, hi in zip(g["a"], g["i"], g["ts_min"], g["ts_max"], strict=True):
            key = (_ip_text(agent.parts[0][a], agent.parts[1][a]), int(ifx.parts[0][i]))
            r = last_row.get((int(a), int(i)))
            port = self._s.ports.get(key)
            if port is None:
                port = self._s.ports[key] = _Port(_Stat(int(lo), int(hi), 0))
            else:
                port.stat.first = min(port.stat.first, int(lo))
                port.stat.last = max(port.stat.last, int(hi))
            if r is not None:
                name, speed = pn[r], sp[r]
                if name:
                    port.name = str(name)
                if speed:
                    port.speed = int(speed)
            _bump(self._s.agents, key[0], int(lo), int(hi), 0)

    # ------------------------------------------------------------------ derived views

    def _host_name(self, vtep: str, t: datetime) -> str:
        h = self.declared.host_by_tunnel_ip(vtep, t) or self.declared.host_by_ip(vtep, t)
        return h.name if h is not None else f"vtep-{vtep}"

    def _declared_host(self, vtep: str, t: datetime) -> Host | None:
        h = self.declared.host_by_tunnel_ip(vtep, t) or self.declared.host_by_ip(vtep, t)
        return h if h is not None and not h.learned else None

    def _router_macs(self) -> set[tuple[int, int]]:
        per_mac: dict[tuple[int, int], int] = defaultdict(int)
        for (vni, _ip), macs in self._s.bindings.items():
            for mac in macs:
                per_mac[(vni, mac)] += 1
        return {k for k, n in per_mac.items() if n > self.router_mac_ips}

    def _ips_by_mac(self) -> dict[tuple[int, int], list[tuple[str, _Stat]]]:
        out: dict[tuple[int, int], list[tuple[str, _Stat]]] = defaultdict(list)
        for (vni, ip), macs in self._s.bindings.items():
            for mac, st in macs.items():
                out[(vni, mac)].append((ip, st))
        return out

    def _ips_of(self, vni: int, mac: int, first: int, last: int,
                routers: set[tuple[int, int]],
                by_mac: dict[tuple[int, int], list[tuple[str, _Stat]]]) -> tuple[str, ...]:
        if (vni, mac) in routers:
            return ()
        ips = [ip for ip, st in by_mac.get((vni, mac), ()) if st.first <= last and st.last >= first]
        return tuple(sorted(ips, key=addr.ip16))

    def _episode_end(self, eps: list[_Episode], i: int) -> int | None:
        ep = eps[i]
        end: int | None = ep.last + self.aging_ns
        if end is not None and end > self.horizon:
            end = None
        later = [o.first for o in eps[i + 1:] if o.first > ep.first]
        if later:
            nxt = min(later)
            end = nxt if end is None else min(end, nxt)
        return end

    def moves(self) -> list[Move]:
        """Every MAC that moved from one VTEP to another, in time order."""
        routers = self._router_macs()
        by_mac = self._ips_by_mac()
        out: list[Move] = []
        for (vni, mac), eps in self._s.macs.items():
            if (vni, mac) in routers:
                continue
            for a, b in itertools.pairwise(eps):
                if a.vtep != b.vtep and b.first >= a.last:
                    t = _dt(b.first)
                    out.append(Move(
                        vni=vni, mac=addr.int_to_mac(mac),
                        ips=self._ips_of(vni, mac, b.first, b.last, routers, by_mac),
                        from_vtep=a.vtep, to_vtep=b.vtep,
                        from_host=self._host_name(a.vtep, _dt(a.last)),
                        to_host=self._host_name(b.vtep, t), at=t, evidence=a.count + b.count))
        return sorted(out, key=lambda m: (m.at, m.vni, m.mac))

    def adjacency(self) -> list[Adjacency]:
        """Links implied by the samples (switch to switch, and first hops to VTEPs)."""
        if not self._s.hops:
            return []
        h = self._compact_hops()
        out: list[Adjacency] = []
        a = h.filter(pc.greater_equal(h["out_if"], 0)).select(
            ["flow", "ttl", "a_hi", "a_lo", "out_if", "ts_min", "ts_max"])
        a = a.append_column("ttl_next", pc.subtract(a["ttl"], 1)).drop_columns(["ttl"])
        b = h.filter(pc.greater_equal(h["in_if"], 0)).select(
            ["flow", "ttl", "a_hi", "a_lo", "in_if", "ts_min", "ts_max"]).rename_columns(
            ["flow", "ttl_next", "b_hi", "b_lo", "in_if", "b_min", "b_max"])
        if a.num_rows and b.num_rows:
            j = a.join(b, keys=["flow", "ttl_next"], join_type="inner")
            j = j.filter(pc.or_(pc.not_equal(j["a_hi"], j["b_hi"]),
                                pc.not_equal(j["a_lo"], j["b_lo"])))
            if j.num_rows:
                g = j.group_by(["a_hi", "a_lo", "out_if", "b_hi", "b_lo", "in_if"]).aggregate(
                    [("flow", "count_distinct"), ("ts_min", "min"), ("b_max", "max")])
                for r in g.to_pylist():
                    out.append(Adjacency(
                        a_agent=_ip_text(r["a_hi"], r["a_lo"]), a_ifindex=int(r["out_if"]),
                        b_agent=_ip_text(r["b_hi"], r["b_lo"]), b_ifindex=int(r["in_if"]),
                        host_ip=None, evidence=int(r["flow_count_distinct"]),
                        first_seen=_dt(r["ts_min_min"]), last_seen=_dt(r["b_max_max"])))
        first = h.filter(pc.and_(pc.is_in(h["ttl"], pa.array(self.initial_ttls, pa.int64())),
                                 pc.greater_equal(h["in_if"], 0)))
        if first.num_rows:
            g = first.group_by(["a_hi", "a_lo", "in_if", "v_hi", "v_lo"]).aggregate(
                [("flow", "count_distinct"), ("ts_min", "min"), ("ts_max", "max")])
            for r in g.to_pylist():
                out.append(Adjacency(
                    a_agent=_ip_text(r["a_hi"], r["a_lo"]), a_ifindex=int(r["in_if"]),
                    b_agent=None, b_ifindex=None, host_ip=_ip_text(r["v_hi"], r["v_lo"]),
                    evidence=int(r["flow_count_distinct"]), first_seen=_dt(r["ts_min_min"]),
                    last_seen=_dt(r["ts_max_max"])))
        return sorted(out, key=lambda x: (x.a_agent, x.a_ifindex, -x.evidence))

    # ------------------------------------------------------------------ facts

    def _device_name(self, agent: str, t: datetime) -> tuple[str, Device | None]:
        d = self.declared.device_by_agent(agent, t)
        if d is not None and not d.learned:
            return d.name, d
        return f"agent-{agent}", None

    def _if_name(self, agent: str, ifindex: int, t: datetime) -> str:
        d = self.declared.device_by_agent(agent, t)
        if d is not None:
            itf = d.interface(ifindex)
            if itf is not None:
                return itf.name
        port = self._s.ports.get((agent, ifindex))
        return port.name if port is not None and port.name else f"ifindex-{ifindex}"

    def facts(self) -> list[Fact]:
        """Learned facts (``learned=True``, ``source="learned"``, with evidence), only
        where no declared fact answers."""
        return list(self._derive()[0])

    def conflicts(self) -> list[Conflict]:
        """Contradictions within the traffic, and between traffic and declared facts."""
        return list(self._derive()[1])

    def inventory(self) -> Inventory:
        """The declared inventory plus what was learned (declared facts win)."""
        return self.declared.with_facts(self.facts())

    def summary(self) -> dict[str, int]:
        facts, conflicts = self._derive()
        out = {"records": self.records, "vteps": len(self._s.vteps),
               "macs": len(self._s.macs), "agents": len(self._s.agents),
               "ports": len(self._s.ports), "moves": len(self.moves()),
               "conflicts": len(conflicts)}
        for f in facts:
            out[f"learned_{f.KIND}"] = out.get(f"learned_{f.KIND}", 0) + 1
        return out

    def _derive(self) -> tuple[list[Fact], list[Conflict]]:
        if self._derived is None:
            self._derived = self._derive_now()
        return self._derived

    def _derive_now(self) -> tuple[list[Fact], list[Conflict]]:
        decl = self.declared
        facts: list[Fact] = []
        conflicts: list[Conflict] = []

        # hosts
        for ip, st in sorted(self._s.vteps.items(), key=lambda kv: addr.ip16(kv[0])):
            if self._declared_host(ip, _dt(st.first)) is None:
                facts.append(Host(name=f"vtep-{ip}", tunnel_ips=(ip,), valid_from=_dt(st.first),
                                  evidence=st.count, source=SOURCE, learned=True))

        # networks
        by_vni: dict[int, list[tuple[str, _Stat]]] = defaultdict(list)
        for (vni, encap), st in self._s.segments.items():
            by_vni[vni].append((encap, st))
        for vni, encs in sorted(by_vni.items()):
            first = min(st.first for _, st in encs)
            t = _dt(first)
            net = decl.network_by_vni(vni, t)
            if net is not None and not net.learned:
                for encap, st in encs:
                    if encap in NETWORK_ENCAPS and encap != net.encap:
                        conflicts.append(Conflict(
                            "encap-mismatch", f"VNI {vni}",
                            f"network {net.name!r} is declared {net.encap}, seen as {encap}",
                            _dt(st.first), _dt(st.last), st.count))
                continue
            encap, st = max(encs, key=lambda es: es[1].count)
            facts.append(Network(name=f"vni-{vni}", vni=vni,
                                 encap=encap if encap in NETWORK_ENCAPS else "vxlan",
                                 valid_from=t, evidence=sum(s.count for _, s in encs),
                                 source=SOURCE, learned=True))

        # endpoints, from MAC episodes
        routers = self._router_macs()
        by_mac = self._ips_by_mac()
        for (vni, mac), eps in sorted(self._s.macs.items()):
            mac_text = addr.int_to_mac(mac)
            router = (vni, mac) in routers
            for i, ep in enumerate(eps):
                # two VTEPs at once
                for other in eps[i + 1:]:
                    if other.vtep != ep.vtep and other.first <= ep.last and not router:
                        conflicts.append(Conflict(
                            "mac-two-vteps", f"MAC {mac_text} on VNI {vni}",
                            f"seen behind {ep.vtep} ({self._host_name(ep.vtep, _dt(ep.first))})"
                            f" and {other.vtep} ({self._host_name(other.vtep, _dt(other.first))})"
                            " at the same time",
                            _dt(max(ep.first, other.first)), _dt(min(ep.last, other.last)),
                            ep.count + other.count))
                t0, t1 = _dt(ep.first), _dt(ep.last)
                end = self._episode_end(eps, i)
                ips = self._ips_of(vni, mac, ep.first, ep.last, routers, by_mac)
                declared = self._declared_endpoint(vni, mac_text, ips, t0, t1)
                if declared is not None:
                    conflicts += self._check_declared(declared, vni, mac_text, ep, t0, t1)
                    continue
                net = decl.network_by_vni(vni, t0)
                facts.append(Endpoint(
                    name=f"{mac_text}@vni{vni}", kind="gateway" if router else "vm",
                    mac=mac_text, ips=ips,
                    network=net.name if net is not None else f"vni-{vni}",
                    host=self._host_name(ep.vtep, t0), valid_from=t0,
                    valid_to=_dt(end) if end is not None else None, evidence=ep.count,
                    source=SOURCE, learned=True))

        conflicts += self._ip_conflicts(routers)

        # devices and interfaces
        ports_by_agent: dict[str, list[tuple[int, _Port]]] = defaultdict(list)
        for (agent, ifindex), port in self._s.ports.items():
            ports_by_agent[agent].append((ifindex, port))
        for agent, st in sorted(self._s.agents.items(), key=lambda kv: addr.ip16(kv[0])):
            t = _dt(st.first)
            name, dev = self._device_name(agent, t)
            ports = sorted(ports_by_agent.get(agent, []), key=lambda p: p[0])
            if dev is not None:
                for ifindex, port in ports:
                    if dev.interfaces and dev.interface(ifindex) is None:
                        conflicts.append(Conflict(
                            "undeclared-interface", f"{dev.name} ifIndex {ifindex}",
                            f"samples name ifIndex {ifindex}"
                            + (f" ({port.name})" if port.name else "")
                            + f" on {dev.name}, which does not declare it",
                            _dt(port.stat.first), _dt(port.stat.last), port.stat.count))
                continue
            facts.append(Device(
                name=name, role="other", agent=agent, valid_from=t, evidence=st.count,
                interfaces=tuple(Interface(name=port.name or f"ifindex-{ifindex}",
                                           ifindex=ifindex, speed=port.speed)
                                 for ifindex, port in ports),
                source=SOURCE, learned=True))

        # links
        lf, lc = self._links()
        facts += lf
        conflicts += lc
        conflicts.sort(key=lambda c: (c.first_seen or _EPOCH, c.kind, c.subject))
        return facts, conflicts

    def _declared_endpoint(self, vni: int, mac: str, ips: tuple[str, ...], t0: datetime,
                           t1: datetime) -> Endpoint | None:
        for t in (t0, t1):
            e = self.declared.endpoint_by_mac(mac, None, t)
            if e is None:
                for ip in ips:
                    e = self.declared.endpoint_by_ip(ip, vni, t)
                    if e is not None:
                        break
            if e is not None and not e.learned:
                return e
        return None

    def _check_declared(self, e: Endpoint, vni: int, mac: str, ep: _Episode, t0: datetime,
                        t1: datetime) -> list[Conflict]:
        decl = self.declared
        out: list[Conflict] = []
        subject = f"endpoint {e.name}"
        net = decl.network(e.network, t0) if e.network else None
        if net is not None and net.vni is not None and net.vni != vni and e.mac == mac:
            out.append(Conflict(
                "vni-mismatch", subject,
                f"declared on network {net.name!r} (VNI {net.vni}), its MAC {mac} seen on "
                f"VNI {vni}", t0, t1, ep.count))
            return out
        if e.mac is not None and e.mac != mac:
            out.append(Conflict(
                "mac-mismatch", subject,
                f"declared with MAC {e.mac}, its address seen from MAC {mac} on VNI {vni}",
                t0, t1, ep.count))
            return out
        for t in (t0, t1):
            cur = decl.endpoint(e.name, t)
            if cur is None or cur.host is None:
                continue
            host = decl.host(cur.host, t)
            if host is None or not host.tunnel_ips:
                continue
            if ep.vtep not in host.tunnel_ips:
                seen = self._host_name(ep.vtep, t)
                out.append(Conflict(
                    "location-mismatch", subject,
                    f"declared on {host.name} at {addr.format_time(t)}, seen behind "
                    f"{ep.vtep}" + (f" ({seen})" if not seen.startswith("vtep-") else ""),
                    t0, t1, ep.count))
                break
        return out

    def _ip_conflicts(self, routers: set[tuple[int, int]]) -> list[Conflict]:
        out: list[Conflict] = []
        for (vni, ip), macs in sorted(self._s.bindings.items()):
            owners = [m for m in macs if (vni, m) not in routers]
            if len(owners) < 2:
                continue
            spans: list[tuple[int, int, str, int, int]] = []  # first, last, vtep, mac, count
            for m in owners:
                b = macs[m]
                for ep in self._s.macs.get((vni, m), []):
                    lo, hi = max(ep.first, b.first), min(ep.last, b.last)
                    if lo <= hi:
                        spans.append((lo, hi, ep.vtep, m, ep.count))
            spans.sort()
            for i, (lo, hi, vtep, m, cnt) in enumerate(spans):
                hit = next(((lo2, hi2, v2, m2, c2) for lo2, hi2, v2, m2, c2 in spans[i + 1:]
                            if m2 != m and v2 != vtep and lo2 <= hi), None)
                if hit is not None:
                    lo2, hi2, v2, m2, c2 = hit
                    out.append(Conflict(
                        "ip-two-vteps", f"{ip} on VNI {vni}",
                        f"carried by MAC {addr.int_to_mac(m)} behind {vtep} and MAC "
                        f"{addr.int_to_mac(m2)} behind {v2} at the same time",
                        _dt(max(lo, lo2)), _dt(min(hi, hi2)), cnt + c2))
                    break
        return out

    def _links(self) -> tuple[list[Fact], list[Conflict]]:
        decl = self.declared
        facts: list[Fact] = []
        conflicts: list[Conflict] = []
        seen: set[str] = set()
        for adj in self.adjacency():
            t = adj.first_seen
            a_name, a_dev = self._device_name(adj.a_agent, t)
            a_if = self._if_name(adj.a_agent, adj.a_ifindex, t)
            if adj.b_agent is not None and adj.b_ifindex is not None:
                b_name, _ = self._device_name(adj.b_agent, t)
                b_if = self._if_name(adj.b_agent, adj.b_ifindex, t)
                far = LinkEnd(device=b_name, interface=b_if)
            else:
                assert adj.host_ip is not None
                far = LinkEnd(host=self._host_name(adj.host_ip, t), nic="uplink")
            near = LinkEnd(device=a_name, interface=a_if)
            declared = decl.link_of(a_name, a_if, t) if a_dev is not None else None
            if declared is not None and not declared.learned:
                other = declared.other(a_name, a_if)
                ok = other is not None and (
                    (far.device is not None and other.device == far.device
                     and other.interface == far.interface)
                    or (far.host is not None and other.host == far.host))
                if not ok and adj.evidence >= self.min_link_evidence:
                    conflicts.append(Conflict(
                        "link-mismatch", f"{a_name}:{a_if}",
                        f"declared to {other.label if other else '?'}, samples show "
                        f"{far.label}", adj.first_seen, adj.last_seen, adj.evidence))
                continue
            if adj.evidence < self.min_link_evidence:
                continue
            link = Link(a=near, b=far, valid_from=adj.first_seen, evidence=adj.evidence,
                        source=SOURCE, learned=True)
            if link.key in seen:
                continue
            seen.add(link.key)
            facts.append(link)
        return facts, conflicts


__all__ = ["DEFAULT_AGING", "Adjacency", "Conflict", "Learner", "Move"]

"""Exact sFlow accounting: what arrived, what was lost on the way, what the agents lost.

sFlow numbers everything it sends (sFlow v5 section 4):

* the **datagram sequence number** counts datagrams per agent and sub-agent;
* the **sample sequence number** counts samples per data source (``source_id``), separately
  for flow, counter and discarded-packet samples;
* ``drops`` in flow and discard samples is the agent's own running count of samples it
  could not take (no resources, rate limits).

From them, per agent/sub-agent and per source:

``received``   datagrams (samples) that arrived
``lost``       sequence numbers skipped (gaps), minus late arrivals that filled a gap
``duplicates`` a sequence number seen twice (within the window)
``reordered``  a datagram (sample) older than the newest one seen, that filled a gap
``resets``     agent restarts (uptime going down by more than ``restart_slack_ms``, not a
               wrap of the 32-bit uptime) and sequence resets (a jump back of at least a
               window); counting starts again from there, nothing is counted as lost
``agent_drops``increments of the agents' drops counters

Sequence arithmetic is modulo 2^32 (a wrap from 0xFFFFFFFF to 0 is one step). Late and
duplicate arrivals are told apart with a bitmap of the last ``window`` sequence numbers.
Datagrams lost after the last one that arrived cannot be seen by sequence numbers;
the collector's socket drop counter (``capture/udp.py``) covers those on this host.

State is bounded: at most ``max_agents`` agent/sub-agent pairs and ``max_sources`` sources
are tracked (open-addressing tables in NumPy arrays, updated by a numba loop over each
batch's datagram and sample columns). Datagrams and samples of keys beyond the caps are
still counted in the totals and in ``overflow``; spoofed agent addresses cannot grow memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from numba import njit

from fabricscope.decode.common import no_refcount, per_frame
from fabricscope.sflow.layout import (
    D_AGENT_HI,
    D_AGENT_LO,
    D_AGENT_VER,
    D_COUNTERS,
    D_FLOWS,
    D_SAMPLES,
    D_SEQ,
    D_SUB_AGENT,
    D_TS,
    D_UPTIME,
    Q_DGRAM,
    Q_DROPS,
    Q_KIND,
    Q_SEQ,
    Q_SOURCE,
)

U32 = 1 << 32
WRAP_MARGIN_MS = 3_600_000  # uptime within an hour of 2^32 then small again = a wrap

# per-key state: one row per agent or source, these columns (a key's fields share a cache
# line: the fields as rows, 4,096 or 65,536 keys wide, put each in a page of its own);
# agents and sources share the sequence part
K_INIT = 0
K_MAX = 1  # newest sequence number
K_BASE = 2  # first sequence number since start/reset
K_RECEIVED = 3
K_LOST = 4
K_DUP = 5
K_REORDERED = 6
K_RESETS = 7
K_FIRST_TS = 8
K_LAST_TS = 9
K_SPAN = 10  # sequence steps since the base, saturating at the window size
# agent only
A_UPTIME = 11
A_EPOCH = 12  # bumped on every reset; sources of the agent rebase when it changes
A_SAMPLES = 13
A_FLOWS = 14
A_COUNTERS = 15
A_VER = 16
A_HI = 17
A_LO = 18
A_SUB = 19
NA = 20
# source only
R_AGENT = 11  # agent slot
R_EPOCH = 12
R_DROPS_LAST = 13
R_AGENT_DROPS = 14
R_KIND = 15
R_SOURCE = 16
NR = 17

# totals vector
T_DATAGRAMS = 0
T_SAMPLES = 1
T_UNATTRIBUTED = 2  # datagrams that ended before their agent address
T_AGENT_OVERFLOW = 3  # datagrams of agents beyond the cap
T_SOURCE_OVERFLOW = 4  # samples of sources beyond the cap
T_FLOWS = 5
T_COUNTERS = 6
T_DISCARDS = 7
NTOT = 8

KIND_LABELS = {1: "flow", 2: "discard", 3: "counters"}


@njit(inline="always", cache=True)
def _mix(a: int, b: int, c: int, d: int) -> int:
    """A 63-bit hash of four integers: one multiply per key part, all independent (they
    run side by side), then a finalising multiply (a chain of four dependent rounds
    cost ~10 ns a sample)."""
    h = (np.uint64(a & 0x7FFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
         ^ np.uint64(b & 0x7FFFFFFFFFFFFFFF) * np.uint64(0xC2B2AE3D27D4EB4F)
         ^ np.uint64(c & 0x7FFFFFFFFFFFFFFF) * np.uint64(0x165667B19E3779F9)
         ^ np.uint64(d & 0x7FFFFFFFFFFFFFFF) * np.uint64(0xD6E8FEB86659FD93))
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(32)
    return np.int64(h >> np.uint64(1))  # type: ignore[return-value]


@per_frame
def _lookup(keys: np.ndarray, slots: np.ndarray, used: np.ndarray, cap: int,
            a: int, b: int, c: int, d: int) -> int:
    """Slot of key (a, b, c, d), inserting it if there is room; -1 when the table is full.

    ``keys`` (size, 4) and ``slots`` (size) form an open-addressing table (size a power of
    two, at least twice ``cap``); ``used[0]`` counts the slots handed out.
    """
    size = slots.shape[0]
    mask = size - 1
    h = _mix(a, b, c, d) & mask
    for _ in range(size):
        sl = slots[h]
        if sl < 0:
            if used[0] >= cap:
                return -1
            sl = used[0]
            used[0] += 1
            slots[h] = sl
            keys[h, 0] = a
            keys[h, 1] = b
            keys[h, 2] = c
            keys[h, 3] = d
            return int(sl)
        if keys[h, 0] == a and keys[h, 1] == b and keys[h, 2] == c and keys[h, 3] == d:
            return int(sl)
        h = (h + 1) & mask
    return -1


@njit(inline="always", cache=True)
def _sdiff(a: int, b: int) -> int:
    """a - b modulo 2^32, as a signed 32-bit value."""
    d = (a - b) & 0xFFFFFFFF
    if d >= 0x80000000:
        d -= 0x100000000
    return d


@per_frame
def _rebase(st: np.ndarray, win: np.ndarray, sl: int, seq: int) -> None:
    st[sl, K_MAX] = seq
    st[sl, K_BASE] = seq
    st[sl, K_SPAN] = 0
    for w in range(win.shape[1]):
        win[sl, w] = 0
    b = seq & (win.shape[1] * 64 - 1)  # the window is a power of two: no division
    win[sl, b >> 6] |= np.uint64(1) << np.uint64(b & 63)


@per_frame
def _track(st: np.ndarray, win: np.ndarray, sl: int, seq: int, reset: bool) -> int:
    """One sequence number for key ``sl``: -> 1 new in order, 2 late (filled a gap),
    3 duplicate, 4 reset/first, 5 late but older than the first one seen. Bit positions
    are taken modulo the window with a mask (a power of two; sequence numbers are 32-bit
    and non-negative): a division per bit cost ~20 ns a sample."""
    nb = win.shape[1] * 64
    mask = nb - 1
    st[sl, K_RECEIVED] += 1
    if st[sl, K_INIT] == 0:
        st[sl, K_INIT] = 1
        _rebase(st, win, sl, seq)
        return 4
    d = _sdiff(seq, st[sl, K_MAX])
    if reset or d <= -nb:
        st[sl, K_RESETS] += 1
        _rebase(st, win, sl, seq)
        return 4
    if d > 0:
        st[sl, K_LOST] += d - 1
        mx = st[sl, K_MAX]
        if d >= nb:
            for w in range(win.shape[1]):
                win[sl, w] = 0
        else:
            for t in range(1, d + 1):
                b = (mx + t) & mask  # == ((mx + t) mod 2^32) mod nb
                win[sl, b >> 6] &= ~(np.uint64(1) << np.uint64(b & 63))
        b = seq & mask
        win[sl, b >> 6] |= np.uint64(1) << np.uint64(b & 63)
        st[sl, K_MAX] = seq
        st[sl, K_SPAN] = min(st[sl, K_SPAN] + d, nb)
        return 1
    if d == 0:
        st[sl, K_DUP] += 1
        return 3
    if st[sl, K_SPAN] < nb and _sdiff(seq, st[sl, K_BASE]) < 0:
        st[sl, K_REORDERED] += 1
        return 5
    b = seq & mask
    bit = np.uint64(1) << np.uint64(b & 63)
    if win[sl, b >> 6] & bit:
        st[sl, K_DUP] += 1
        return 3
    win[sl, b >> 6] |= bit
    st[sl, K_LOST] -= 1
    st[sl, K_REORDERED] += 1
    return 2


@no_refcount
def _update(dg: np.ndarray, k0: int, k1: int, sq: np.ndarray, nq: int,
            akeys: np.ndarray, aslots: np.ndarray, aused: np.ndarray, amax: int,
            ast: np.ndarray, awin: np.ndarray,
            rkeys: np.ndarray, rslots: np.ndarray, rused: np.ndarray, rmax: int,
            rst: np.ndarray, rwin: np.ndarray, tot: np.ndarray, slack: int,
            dslot: np.ndarray) -> None:
    """(``dslot``: scratch of at least ``k1 - k0`` values: each datagram's agent slot.)"""
    for k in range(k1 - k0):
        dslot[k] = -1
    for k in range(k0, k1):
        tot[0] += 1
        if dg[D_SEQ, k] < 0:
            tot[2] += 1
            continue
        ver = dg[D_AGENT_VER, k]
        if ver < 0:
            ver = 0
        sl = _lookup(akeys, aslots, aused, amax, ver, dg[D_AGENT_HI, k], dg[D_AGENT_LO, k],
                     dg[D_SUB_AGENT, k])
        if sl < 0:
            tot[3] += 1
            continue
        dslot[k - k0] = sl
        up = dg[D_UPTIME, k]
        ts = dg[D_TS, k]
        reset = False
        if ast[sl, K_INIT] == 0:
            ast[sl, A_VER] = ver
            ast[sl, A_HI] = dg[D_AGENT_HI, k]
            ast[sl, A_LO] = dg[D_AGENT_LO, k]
            ast[sl, A_SUB] = dg[D_SUB_AGENT, k]
            ast[sl, K_FIRST_TS] = ts
            ast[sl, A_UPTIME] = up
        else:
            last = ast[sl, A_UPTIME]
            wrap = last >= 0x100000000 - WRAP_MARGIN_MS and up < WRAP_MARGIN_MS
            if up + slack < last and not wrap:
                reset = True
        r = _track(ast, awin, sl, dg[D_SEQ, k], reset)
        if r == 4 and ast[sl, K_RECEIVED] > 1:
            ast[sl, A_EPOCH] += 1
        if r == 1 or r == 4:
            ast[sl, A_UPTIME] = up
        if ts > ast[sl, K_LAST_TS]:
            ast[sl, K_LAST_TS] = ts
        ast[sl, A_SAMPLES] += dg[D_SAMPLES, k]
        ast[sl, A_FLOWS] += dg[D_FLOWS, k]
        ast[sl, A_COUNTERS] += dg[D_COUNTERS, k]
    for q in range(nq):
        tot[1] += 1
        kind = sq[Q_KIND, q]
        if kind == 1:
            tot[5] += 1
        elif kind == 2:
            tot[7] += 1
        else:
            tot[6] += 1
        k = sq[Q_DGRAM, q]
        asl = dslot[k - k0]
        if asl < 0:
            tot[4] += 1
            continue
        src = sq[Q_SOURCE, q]
        sl = _lookup(rkeys, rslots, rused, rmax, asl, kind, src, 0)
        if sl < 0:
            tot[4] += 1
            continue
        epoch = ast[asl, A_EPOCH]
        reset = False
        if rst[sl, K_INIT] == 0:
            rst[sl, R_AGENT] = asl
            rst[sl, R_KIND] = kind
            rst[sl, R_SOURCE] = src
            rst[sl, R_EPOCH] = epoch
            rst[sl, K_FIRST_TS] = dg[D_TS, k]
        elif rst[sl, R_EPOCH] != epoch:
            reset = True
            rst[sl, R_EPOCH] = epoch
        r = _track(rst, rwin, sl, sq[Q_SEQ, q], reset)
        if dg[D_TS, k] > rst[sl, K_LAST_TS]:
            rst[sl, K_LAST_TS] = dg[D_TS, k]
        drops = sq[Q_DROPS, q]
        if drops >= 0:
            if r == 4:
                if rst[sl, K_RECEIVED] > 1:
                    # counting starts again after a restart: what it counted since then
                    rst[sl, R_AGENT_DROPS] += drops
                rst[sl, R_DROPS_LAST] = drops
            elif r == 1:
                rst[sl, R_AGENT_DROPS] += (drops - rst[sl, R_DROPS_LAST]) & 0xFFFFFFFF
                rst[sl, R_DROPS_LAST] = drops


def _table(cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = 1
    while size < 2 * max(cap, 1):
        size *= 2
    return (np.zeros((size, 4), np.int64), np.full(size, -1, np.int64),
            np.zeros(1, np.int64))


def _ip_text(ver: int, hi: int, lo: int) -> str | None:
    from fabricscope.records.present import ip_str

    if ver not in (4, 6):
        return None
    raw = int(hi & (U32 * U32 - 1)).to_bytes(8, "big") + int(lo & (U32 * U32 - 1)).to_bytes(8, "big")
    return ip_str(raw)


class Accounting:
    """Sequence, loss and drop accounting over decoded batches (see the module doc)."""

    def __init__(self, *, max_agents: int = 4096, max_sources: int = 65536,
                 window: int = 1024, restart_slack_ms: int = 10_000) -> None:
        if window < 64 or window & (window - 1):
            raise ValueError("window must be a power of two, at least 64")
        self.max_agents = max_agents
        self.max_sources = max_sources
        self.window = window
        self.restart_slack_ms = restart_slack_ms
        self._akeys, self._aslots, self._aused = _table(max_agents)
        self._ast = np.zeros((max_agents, NA), np.int64)
        self._awin = np.zeros((max_agents, window // 64), np.uint64)
        self._rkeys, self._rslots, self._rused = _table(max_sources)
        self._rst = np.zeros((max_sources, NR), np.int64)
        self._rwin = np.zeros((max_sources, window // 64), np.uint64)
        self._tot = np.zeros(NTOT, np.int64)
        self.events: dict[str, int] = {}
        """Decode events by name (the decoder keeps this up to date)."""
        self.unattributed_peers: dict[str, int] = {}
        """Senders of datagrams that ended before their agent address (at most 256)."""
        self.extra: dict[str, Any] = {}
        """Collector figures (socket drops, bytes...) written with the accounting."""

    # -- updating ----------------------------------------------------------------------
    def update(self, dg: np.ndarray, nd: int, sq: np.ndarray, nq: int, *, k0: int = 0,
               k1: int | None = None,
               peers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        """Account for datagrams ``k0..k1`` (columns of the datagram matrix, of ``nd``
        columns) and ``nq`` samples (columns of the sequence matrix, whose datagram
        indexes refer to ``dg``), in arrival order. ``peers`` (version, hi, lo of each
        datagram's sender) names the senders of unattributed datagrams."""
        k1 = nd if k1 is None else k1
        if k1 <= k0:
            return
        _update(dg, k0, k1, sq, nq, self._akeys, self._aslots, self._aused,
                self.max_agents, self._ast, self._awin, self._rkeys, self._rslots,
                self._rused, self.max_sources, self._rst, self._rwin, self._tot,
                self.restart_slack_ms, np.empty(k1 - k0, np.int64))
        if peers is not None:
            bad = k0 + np.nonzero(dg[D_SEQ, k0:k1] < 0)[0]
            for k in bad[:1024]:  # rare: malformed datagrams; bounded work and state
                name = _ip_text(int(peers[0][k]), int(peers[1][k]), int(peers[2][k]))
                key = name or "?"
                if key in self.unattributed_peers or len(self.unattributed_peers) < 256:
                    self.unattributed_peers[key] = self.unattributed_peers.get(key, 0) + 1

    # -- reading -----------------------------------------------------------------------
    @property
    def datagrams(self) -> int:
        return int(self._tot[T_DATAGRAMS])

    @property
    def samples(self) -> int:
        return int(self._tot[T_SAMPLES])

    def _agents(self) -> Iterator[tuple[int, dict[str, Any]]]:
        ast = self._ast
        for sl in range(int(self._aused[0])):
            yield sl, {
                "agent": _ip_text(int(ast[sl, A_VER]), int(ast[sl, A_HI]), int(ast[sl, A_LO])),
                "sub_agent": int(ast[sl, A_SUB]),
                "datagrams": int(ast[sl, K_RECEIVED]),
                "samples": int(ast[sl, A_SAMPLES]),
                "flow_samples": int(ast[sl, A_FLOWS]),
                "counter_samples": int(ast[sl, A_COUNTERS]),
                "lost": int(ast[sl, K_LOST]),
                "duplicates": int(ast[sl, K_DUP]),
                "reordered": int(ast[sl, K_REORDERED]),
                "resets": int(ast[sl, K_RESETS]),
                "last_seq": int(ast[sl, K_MAX]),
                "first_ts_ns": int(ast[sl, K_FIRST_TS]),
                "last_ts_ns": int(ast[sl, K_LAST_TS]),
                "sources": [],
            }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready: totals, then per agent/sub-agent with its sources."""
        agents = dict(self._agents())
        rst = self._rst
        for sl in range(int(self._rused[0])):
            a = agents.get(int(rst[sl, R_AGENT]))
            if a is None:
                continue
            src = int(rst[sl, R_SOURCE])
            a["sources"].append({
                "kind": KIND_LABELS.get(int(rst[sl, R_KIND]), "?"),
                "source_id_type": src >> 32,
                "source_id_index": src & (U32 - 1),
                "samples": int(rst[sl, K_RECEIVED]),
                "lost": int(rst[sl, K_LOST]),
                "duplicates": int(rst[sl, K_DUP]),
                "reordered": int(rst[sl, K_REORDERED]),
                "resets": int(rst[sl, K_RESETS]),
                "agent_drops": int(rst[sl, R_AGENT_DROPS]),
                "last_seq": int(rst[sl, K_MAX]),
            })
        alist = list(agents.values())
        for a in alist:
            a["agent_drops"] = sum(s["agent_drops"] for s in a["sources"])
            a["lost_samples"] = sum(s["lost"] for s in a["sources"])
        tot = self._tot
        return {
            "datagrams": int(tot[T_DATAGRAMS]),
            "samples": int(tot[T_SAMPLES]),
            "flow_samples": int(tot[T_FLOWS]),
            "discard_samples": int(tot[T_DISCARDS]),
            "counter_samples": int(tot[T_COUNTERS]),
            "lost_datagrams": sum(a["lost"] for a in alist),
            "lost_samples": sum(a["lost_samples"] for a in alist),
            "duplicate_datagrams": sum(a["duplicates"] for a in alist),
            "reordered_datagrams": sum(a["reordered"] for a in alist),
            "agent_resets": sum(a["resets"] for a in alist),
            "agent_drops": sum(a["agent_drops"] for a in alist),
            "unattributed_datagrams": int(tot[T_UNATTRIBUTED]),
            "unattributed_peers": dict(self.unattributed_peers),
            "overflow": {
                "agents_tracked": int(self._aused[0]), "max_agents": self.max_agents,
                "untracked_datagrams": int(tot[T_AGENT_OVERFLOW]),
                "sources_tracked": int(self._rused[0]), "max_sources": self.max_sources,
                "untracked_samples": int(tot[T_SOURCE_OVERFLOW]),
            },
            "events": dict(sorted(self.events.items())),
            **self.extra,
            "agents": alist,
        }


_SUMMED = ("datagrams", "samples", "flow_samples", "discard_samples", "counter_samples",
           "lost_datagrams", "lost_samples", "duplicate_datagrams", "reordered_datagrams",
           "agent_resets", "agent_drops", "unattributed_datagrams")


_SPECIAL = {*_SUMMED, "overflow", "events", "agents"}


def merge_dicts(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Add up ``to_dict()`` results of several workers (each agent's datagrams reach one
    worker: SO_REUSEPORT hashes on the sender's address and port)."""
    out: dict[str, Any] = {k: 0 for k in _SUMMED}
    out["overflow"] = {}
    out["events"] = {}
    agents: dict[tuple[Any, Any], dict[str, Any]] = {}
    for p in parts:
        for k in _SUMMED:
            out[k] += int(p.get(k, 0))
        for k, v in p.get("overflow", {}).items():
            if k.startswith("max_"):
                out["overflow"][k] = v
            else:
                out["overflow"][k] = out["overflow"].get(k, 0) + v
        for k, v in p.get("events", {}).items():
            out["events"][k] = out["events"].get(k, 0) + v
        for k, v in p.items():
            if k not in _SPECIAL:
                out[k] = _add(out.get(k), v)
        for a in p.get("agents", []):
            key = (a["agent"], a["sub_agent"])
            if key not in agents:
                agents[key] = {**a, "sources": list(a["sources"])}
                continue
            b = agents[key]
            for k, v in a.items():
                if k in ("agent", "sub_agent", "sources", "last_seq"):
                    continue
                if k == "first_ts_ns":
                    b[k] = min(b[k], v)
                elif k == "last_ts_ns":
                    b[k] = max(b[k], v)
                else:
                    b[k] += v
            b["sources"].extend(a["sources"])
    out["events"] = dict(sorted(out["events"].items()))
    out["agents"] = list(agents.values())
    return out


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _add(a.get(k), b.get(k)) if k in a and k in b else a.get(k, b.get(k))
                for k in {**a, **b}}
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return a + b
    return b


# -- Prometheus --------------------------------------------------------------------------

class AccountingCollector:
    """A prometheus_client collector reading an accounting snapshot on every scrape.

    ``source`` returns a ``to_dict()``-shaped dict (one worker's, or merged). Per-source
    series are bounded by the accounting's caps.
    """

    def __init__(self, source: Callable[[], dict[str, Any]], *,
                 per_source: bool = True) -> None:
        self.source = source
        self.per_source = per_source

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        d = self.source()
        p = "fabricscope_sflow_"
        alab = ["agent", "sub_agent"]
        fams = {
            "datagrams": CounterMetricFamily(p + "datagrams", "datagrams received",
                                             labels=alab),
            "samples": CounterMetricFamily(p + "samples", "samples received", labels=alab),
            "lost": CounterMetricFamily(p + "datagrams_lost",
                                        "datagram sequence numbers missing", labels=alab),
            "duplicates": CounterMetricFamily(p + "datagrams_duplicate",
                                              "datagrams seen twice", labels=alab),
            "reordered": CounterMetricFamily(p + "datagrams_reordered",
                                             "late datagrams that filled a gap", labels=alab),
            "resets": CounterMetricFamily(p + "agent_resets",
                                          "agent restarts and sequence resets", labels=alab),
            "agent_drops": CounterMetricFamily(p + "agent_drops",
                                               "samples the agent reports it dropped",
                                               labels=alab),
            "lost_samples": CounterMetricFamily(p + "samples_lost",
                                                "sample sequence numbers missing",
                                                labels=alab),
        }
        slab = ["agent", "sub_agent", "kind", "source_id"]
        ssamples = CounterMetricFamily(p + "source_samples", "samples per data source",
                                       labels=slab)
        slost = CounterMetricFamily(p + "source_samples_lost",
                                    "sample sequence numbers missing per data source",
                                    labels=slab)
        sdrops = CounterMetricFamily(p + "source_agent_drops",
                                     "agent drops per data source", labels=slab)
        for a in d.get("agents", []):
            lv = [str(a["agent"]), str(a["sub_agent"])]
            for k, fam in fams.items():
                fam.add_metric(lv, a.get(k, 0))
            if self.per_source:
                for s in a["sources"]:
                    sv = [*lv, s["kind"], f"{s['source_id_type']}:{s['source_id_index']}"]
                    ssamples.add_metric(sv, s["samples"])
                    slost.add_metric(sv, s["lost"])
                    sdrops.add_metric(sv, s["agent_drops"])
        yield from fams.values()
        if self.per_source:
            yield ssamples
            yield slost
            yield sdrops
        ev = CounterMetricFamily(p + "decode_events", "sFlow and packet decode events",
                                 labels=["event"])
        for name, v in d.get("events", {}).items():
            ev.add_metric([name], v)
        yield ev
        un = CounterMetricFamily(p + "unattributed_datagrams",
                                 "datagrams that ended before their agent address")
        un.add_metric([], d.get("unattributed_datagrams", 0))
        yield un
        ov = d.get("overflow", {})
        of = CounterMetricFamily(p + "untracked", "datagrams/samples beyond the state caps",
                                 labels=["table"])
        of.add_metric(["agents"], ov.get("untracked_datagrams", 0))
        of.add_metric(["sources"], ov.get("untracked_samples", 0))
        yield of
        tr = GaugeMetricFamily(p + "tracked", "keys tracked", labels=["table"])
        tr.add_metric(["agents"], ov.get("agents_tracked", 0))
        tr.add_metric(["sources"], ov.get("sources_tracked", 0))
        yield tr
        sock = d.get("socket")
        if isinstance(sock, dict):
            sd = CounterMetricFamily(p + "socket_drops",
                                     "datagrams the kernel dropped for the collector's "
                                     "sockets (/proc/net/udp drops)")
            sd.add_metric([], sock.get("drops", 0))
            yield sd
            sr = CounterMetricFamily(p + "socket_datagrams",
                                     "datagrams read from the collector's sockets")
            sr.add_metric([], sock.get("received", 0))
            yield sr


def registry(source: Callable[[], dict[str, Any]], *, per_source: bool = True) -> Any:
    """A fresh ``prometheus_client.CollectorRegistry`` exposing ``source``'s accounting
    (for the API to mount: ``make_asgi_app(registry=...)``)."""
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(AccountingCollector(source, per_source=per_source))
    return reg

"""Observations -> paths: tunnel segments chained through VNF hosts, ECMP variants, hops.

For each inner flow (5-tuple), its observations are grouped by tunnel segment (encap, VNI,
outer source, outer destination). Segments are chained when one ends on the host where
the next starts and their times overlap (a VNF host receives the flow on one segment and
sends it on the next); networking-sfc MPLS labels (chain_id << 8 | service index), where
present, order segments by decreasing service index. A VM migration shows up as two
chains in different time spans.

Inside a segment, each outer 5-tuple is one ECMP member; its hops are the observation
points that saw it, ordered by decreasing median outer TTL (a routed hop decrements it),
ties broken by first sighting. Flows whose chain and hop sequences are identical form
one *path*; every distinct path is reported with its share of the samples.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fabricscope.correlate.observe import Obs

SegKey = tuple[str | None, int | None, bytes | None, bytes | None]
HopKey = tuple[bytes | None, int | None, int | None]  # agent, in_if, out_if
InnerKey = tuple[bytes | None, bytes | None, int | None, int | None, int | None]

OVERLAP_TOLERANCE_NS = 30_000_000_000
MAX_CHAINS_PER_FLOW = 32
MAX_VARIANT_COMBOS = 64


@dataclass
class Agg:
    samples: int = 0
    est_packets: float = 0.0
    est_bytes: float = 0.0
    first_ns: int = 2**63 - 1
    last_ns: int = 0
    ttl_weighted: float = 0.0
    ttl_samples: int = 0

    def add(self, o: Obs) -> None:
        self.samples += o.samples
        self.est_packets += o.est_packets
        self.est_bytes += o.est_bytes
        self.first_ns = min(self.first_ns, o.first_ns)
        self.last_ns = max(self.last_ns, o.last_ns)
        if o.ttl is not None:
            self.ttl_weighted += o.ttl * o.samples
            self.ttl_samples += o.samples

    def merge(self, other: Agg) -> None:
        self.samples += other.samples
        self.est_packets += other.est_packets
        self.est_bytes += other.est_bytes
        self.first_ns = min(self.first_ns, other.first_ns)
        self.last_ns = max(self.last_ns, other.last_ns)
        self.ttl_weighted += other.ttl_weighted
        self.ttl_samples += other.ttl_samples

    @property
    def ttl(self) -> float | None:
        return self.ttl_weighted / self.ttl_samples if self.ttl_samples else None


@dataclass
class Hop:
    agent: bytes | None
    in_if: int | None
    out_if: int | None
    agg: Agg = field(default_factory=Agg)
    inferred: bool = False
    device_name: str | None = None  # set for inferred hops (no agent)
    in_name: str | None = None
    out_name: str | None = None

    @property
    def key(self) -> HopKey:
        return (self.agent, self.in_if, self.out_if)


@dataclass
class Segment:
    key: SegKey
    hops: list[Hop]
    agg: Agg = field(default_factory=Agg)  # all observations of the segment (incl. captures)
    outer5: set[tuple[int | None, int | None, int | None]] = field(default_factory=set)
    mpls_label: int | None = None
    obs_points: dict[Hashable, Agg] = field(default_factory=dict)

    @property
    def encap(self) -> str | None:
        return self.key[0]

    @property
    def vni(self) -> int | None:
        return self.key[1]

    @property
    def outer_src(self) -> bytes | None:
        return self.key[2]

    @property
    def outer_dst(self) -> bytes | None:
        return self.key[3]


@dataclass
class Path:
    segments: list[Segment]
    flows: set[InnerKey] = field(default_factory=set)
    agg: Agg = field(default_factory=Agg)
    # when the whole chain was in use (None: unbounded); reported times are clipped to it
    window: tuple[int, int] | None = None

    def clip(self, ns: int) -> int:
        if self.window is None:
            return ns
        return min(max(ns, self.window[0]), self.window[1])

    @property
    def first_ns(self) -> int:
        return self.clip(self.agg.first_ns)

    @property
    def last_ns(self) -> int:
        return self.clip(self.agg.last_ns)

    def estimate(self) -> tuple[float, float]:
        """Mean over observation points of the packets and bytes each estimated."""
        pts = [a for s in self.segments for a in s.obs_points.values()]
        if not pts:
            return 0.0, 0.0
        return (sum(a.est_packets for a in pts) / len(pts),
                sum(a.est_bytes for a in pts) / len(pts))


# --------------------------------------------------------------------------------------

@dataclass
class _Variant:
    agg: Agg = field(default_factory=Agg)
    hops: dict[HopKey, Agg] = field(default_factory=dict)
    capture: Agg = field(default_factory=Agg)  # observations without an agent


@dataclass
class _Seg:
    agg: Agg = field(default_factory=Agg)
    obs: list[Obs] = field(default_factory=list)
    mpls: int | None = None


def _overlap(a: Agg, b: Agg) -> bool:
    return (a.first_ns <= b.last_ns + OVERLAP_TOLERANCE_NS
            and b.first_ns <= a.last_ns + OVERLAP_TOLERANCE_NS)


def _order_hops(hops: dict[HopKey, Agg]) -> list[tuple[HopKey, Agg]]:
    def sort_key(item: tuple[HopKey, Agg]) -> tuple[float, int]:
        ttl = item[1].ttl
        return (-(ttl if ttl is not None else -1.0), item[1].first_ns)

    return sorted(hops.items(), key=sort_key)


def _chains(segs: dict[SegKey, _Seg], host_of: Callable[[bytes | None], str | None]
            ) -> list[list[SegKey]]:
    keys = list(segs)
    if len(keys) == 1:
        return [keys]
    # networking-sfc: when every segment carries a label of one chain, the service index
    # (low byte) decreases along the chain
    labels = [segs[k].mpls for k in keys]
    if all(lb is not None for lb in labels) and len({lb >> 8 for lb in labels if lb}) == 1:
        return [sorted(keys, key=lambda k: -((segs[k].mpls or 0) & 0xFF))]
    nxt: dict[SegKey, list[SegKey]] = defaultdict(list)
    has_in: set[SegKey] = set()
    for a in keys:
        for b in keys:
            if a is b or a == b:
                continue
            if host_of(a[3]) == host_of(b[2]) and host_of(a[2]) != host_of(b[3]) \
                    and _overlap(segs[a].agg, segs[b].agg):
                nxt[a].append(b)
                has_in.add(b)
    starts = [k for k in keys if k not in has_in] or [min(keys, key=lambda k: segs[k].agg.first_ns)]
    chains: list[list[SegKey]] = []

    def walk(path: list[SegKey]) -> None:
        if len(chains) >= MAX_CHAINS_PER_FLOW:
            return
        succ = [b for b in nxt[path[-1]] if b not in path]
        if not succ:
            chains.append(list(path))
            return
        for b in sorted(succ, key=lambda k: segs[k].agg.first_ns):
            walk([*path, b])

    for s in sorted(starts, key=lambda k: segs[k].agg.first_ns):
        walk([s])
    return chains


def _window(chain: list[SegKey], segs: dict[SegKey, _Seg]) -> tuple[int, int]:
    """When the whole chain was in use: the overlap of its segments' spans (a segment
    shared with another chain, e.g. the leg before a VM migration, is cut to it)."""
    lo = max(segs[k].agg.first_ns for k in chain)
    hi = min(segs[k].agg.last_ns for k in chain)
    if lo > hi:  # chained across a short gap (tolerance): take the whole span
        lo = min(segs[k].agg.first_ns for k in chain)
        hi = max(segs[k].agg.last_ns for k in chain)
    return lo, hi


def _variants(seg: _Seg, lo: int, hi: int) -> dict[tuple[int | None, int | None, int | None],
                                                   _Variant]:
    """The segment's observations that fall in [lo, hi], grouped by outer 5-tuple."""
    out: dict[tuple[int | None, int | None, int | None], _Variant] = {}
    for o in seg.obs:
        if o.last_ns < lo - OVERLAP_TOLERANCE_NS or o.first_ns > hi + OVERLAP_TOLERANCE_NS:
            continue
        var = out.setdefault(o.outer5, _Variant())
        var.agg.add(o)
        if o.agent is None:
            var.capture.add(o)
        else:
            var.hops.setdefault((o.agent, o.in_if, o.out_if), Agg()).add(o)
    return out


def build_paths(obs: Sequence[Obs], host_of: Callable[[bytes | None], str | None]
                ) -> list[Path]:
    """Group observations into paths. ``host_of`` maps an outer IP to a host identity
    (inventory name, or the IP itself) so that several tunnel IPs of one host chain.

    Observations should be per time bucket (correlate/observe.py: one minute) so that a
    segment shared by two chains in different time spans is split between them."""
    flows: dict[InnerKey, dict[SegKey, _Seg]] = defaultdict(dict)
    for o in obs:
        seg = flows[o.inner].setdefault(o.segment, _Seg())
        seg.agg.add(o)
        seg.obs.append(o)
        if o.mpls_label is not None:
            seg.mpls = o.mpls_label

    paths: dict[tuple[Hashable, ...], Path] = {}
    for inner, segs in flows.items():
        chains = _chains(segs, host_of)
        for chain in chains:
            bounded = len(chains) > 1
            lo, hi = _window(chain, segs) if bounded else (0, 2**63 - 1)
            # per segment: variants in the chain's window, grouped by ordered hop sequence
            per_seg: list[list[tuple[tuple[HopKey, ...], list[tuple[Any, _Variant]]]]] = []
            for sk in chain:
                groups: dict[tuple[HopKey, ...], list[tuple[Any, _Variant]]] = {}
                for o5, var in _variants(segs[sk], lo, hi).items():
                    sig = tuple(k for k, _ in _order_hops(var.hops))
                    groups.setdefault(sig, []).append((o5, var))
                per_seg.append(list(groups.items()))
            for combo in itertools.islice(itertools.product(*per_seg), MAX_VARIANT_COMBOS):
                signature = tuple(zip(chain, (sig for sig, _ in combo), strict=True))
                path = paths.get(signature)
                if path is None:
                    path = Path(segments=[Segment(key=sk, hops=[Hop(*hk) for hk in sig])
                                          for sk, (sig, _) in zip(chain, combo, strict=True)])
                    paths[signature] = path
                w = path.window
                if not path.flows:  # the path's first flow
                    path.window = (lo, hi) if bounded else None
                elif w is not None:  # an unbounded flow makes the path unbounded
                    path.window = (min(w[0], lo), max(w[1], hi)) if bounded else None
                path.flows.add(inner)
                for out_seg, (_sig, variants) in zip(path.segments, combo, strict=True):
                    hop_by_key = {h.key: h for h in out_seg.hops}
                    for o5, var in variants:
                        out_seg.agg.merge(var.agg)
                        path.agg.merge(var.agg)
                        out_seg.outer5.add(o5)
                        for hk, a in var.hops.items():
                            hop_by_key[hk].agg.merge(a)
                            out_seg.obs_points.setdefault(hk[0], Agg()).merge(a)
                        if var.capture.samples:
                            out_seg.obs_points.setdefault(None, Agg()).merge(var.capture)
                    mpls = segs[out_seg.key].mpls
                    if mpls is not None:
                        out_seg.mpls_label = mpls
    out = list(paths.values())
    # in time order (a migration reads as before/after); concurrent ones by share
    out.sort(key=lambda p: (p.first_ns // 10**9, -p.agg.samples))
    return out

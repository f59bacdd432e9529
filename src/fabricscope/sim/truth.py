"""Ground truth of a simulated run: written as the run goes (bounded memory), read back
with :func:`load_truth`.

Files in the output directory (schemas in docs/sim.md):

- ``truth.json``: the run (parameters, time span, collector, hash constants, devices,
  featured flows, events with their measured effects, counts, file list).
- ``truth-flows.parquet``: one row per directional flow (5-tuple, endpoints, VNI, times,
  packets, bytes, chain).
- ``truth-segments.parquet``: one row per (flow, span, segment): the tunnel from host to
  VNF host to destination host, outer addresses, ports, MPLS label, the spine ECMP chose,
  and the packets/bytes carried in that span.
- ``truth-hops.parquet``: one row per (flow, span, segment, hop): device, in/out ifIndex and
  name, outer TTL as received.
- ``truth-counters.parquet``: one row per interface per poll: cumulative 64-bit counters.
- ``truth-samples.parquet`` (``truth_samples``): every flow sample, with its flow and hop.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fabricscope.errors import InputError

TRUTH_FORMAT = 1

FILES = {
    "flows": "truth-flows.parquet",
    "segments": "truth-segments.parquet",
    "hops": "truth-hops.parquet",
    "counters": "truth-counters.parquet",
    "samples": "truth-samples.parquet",
}


class TableWriter:
    """A Parquet file written batch by batch (zstd). Columns are NumPy arrays, or
    ``(indices, dictionary)`` pairs for strings (no Python string per row)."""

    STATS = ("flow_id", "start_ns", "end_ns", "t_from_ns", "t_to_ns", "ts_ns", "device")
    """Columns with row-group statistics (what queries filter on); the rest have none,
    which halves the writing time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._w: Any = None
        self.rows = 0

    def write(self, cols: dict[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = {}
        for k, v in cols.items():
            if isinstance(v, tuple):
                idx, dictionary = v
                idx = np.asarray(idx, np.int32)
                mask = idx < 0
                ind = pa.array(np.where(mask, 0, idx), pa.int32(), mask=mask)
                arrays[k] = pa.DictionaryArray.from_arrays(ind, pa.array(dictionary,
                                                                         pa.string()))
            elif isinstance(v, pa.Array):
                arrays[k] = v
            else:
                arrays[k] = pa.array(v)
        batch = pa.table(arrays)
        if self._w is None:
            stats = [c for c in batch.column_names if c in self.STATS]
            self._w = pq.ParquetWriter(str(self.path), batch.schema, compression="zstd",
                                       write_statistics=stats or False)
        self._w.write_table(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        if self._w is not None:
            self._w.close()


def nullable(values: NDArray[np.int64], mask: NDArray[np.bool_]) -> Any:
    import pyarrow as pa

    return pa.array(values, pa.int64(), mask=mask)


# --------------------------------------------------------------------------- reading


def _iso(ns: int) -> str:
    from fabricscope.timeutil import format_ns

    return format_ns(int(ns), 9)


@dataclass
class Truth:
    """A run's ground truth. Tables load on first use (pyarrow)."""

    dir: Path
    meta: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self.meta.get("events", []))

    @property
    def featured(self) -> list[dict[str, Any]]:
        return list(self.meta.get("featured", []))

    def table(self, name: str) -> Any:
        """``flows``, ``segments``, ``hops``, ``counters`` or ``samples`` (pyarrow Table)."""
        if name not in self._cache:
            import pyarrow.parquet as pq

            path = self.dir / FILES[name]
            if not path.exists():
                raise InputError(f"no {FILES[name]} (run `fabricscope sim` with the option "
                                 "that writes it)", path=str(self.dir))
            self._cache[name] = pq.read_table(path)
        return self._cache[name]

    @cached_property
    def flows(self) -> Any:
        return self.table("flows")

    @cached_property
    def segments(self) -> Any:
        return self.table("segments")

    @cached_property
    def hops(self) -> Any:
        return self.table("hops")

    @cached_property
    def counters(self) -> Any:
        return self.table("counters")

    def find_flows(self, src: str | None = None, dst: str | None = None,
                   sport: int | None = None, dport: int | None = None,
                   proto: int | None = None, vni: int | None = None) -> list[dict[str, Any]]:
        """Flows whose inner 5-tuple (and VNI) match the given fields, as dicts."""
        import pyarrow.compute as pc

        t = self.flows
        m = None
        for col, val in (("src_ip", src), ("dst_ip", dst), ("sport", sport),
                         ("dport", dport), ("proto", proto), ("vni", vni)):
            if val is None:
                continue
            c = pc.equal(t[col], val)
            m = c if m is None else pc.and_(m, c)
        if m is not None:
            t = t.filter(m)
        return [_plain(r) for r in t.to_pylist()]

    def flow(self, flow_id: int) -> dict[str, Any]:
        import pyarrow.compute as pc

        rows = self.flows.filter(pc.equal(self.flows["flow_id"], flow_id)).to_pylist()
        if not rows:
            raise KeyError(flow_id)
        return _plain(rows[0])

    def path(self, flow_id: int, at: int | str | None = None) -> list[dict[str, Any]]:
        """The true path of a flow: one entry per span (``[t_from, t_to)``), each with its
        VNFs in order and its segments, each segment with its hops. ``at`` (ns since the
        epoch, or RFC 3339) keeps only the span holding that instant."""
        import pyarrow.compute as pc

        from fabricscope.timeutil import parse_time, to_ns

        segs = self.segments.filter(pc.equal(self.segments["flow_id"], flow_id)).to_pylist()
        hops = self.hops.filter(pc.equal(self.hops["flow_id"], flow_id)).to_pylist()
        at_ns = to_ns(parse_time(at)) if isinstance(at, str) else at
        by_seg: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for h in sorted(hops, key=lambda h: (h["span"], h["seg"], h["hop"])):
            by_seg.setdefault((h["span"], h["seg"]), []).append(
                {k: h[k] for k in ("device", "in_if", "out_if", "in_ifname", "out_ifname",
                                   "ttl")})
        spans: dict[int, dict[str, Any]] = {}
        for s in sorted(segs, key=lambda s: (s["span"], s["seg"])):
            t0 = int(s["t_from_ns"])
            t1 = int(s["t_to_ns"])
            if at_ns is not None and not (t0 <= at_ns < t1):
                continue
            sp = spans.setdefault(s["span"], {"span": s["span"], "t_from": _iso(t0),
                                              "t_to": _iso(t1), "vnfs": [], "segments": []})
            if s["to_vnf"] is not None:
                sp["vnfs"].append(s["to_vnf"])
            seg = {k: _plain_value(s[k]) for k in (
                "seg", "encap", "vni", "outer_src", "outer_dst", "src_host", "dst_host",
                "tunnel_sport", "gre_key", "mpls_label", "from_vnf", "to_vnf", "local",
                "spine", "packets", "bytes")}
            seg["hops"] = by_seg.get((s["span"], s["seg"]), [])
            sp["segments"].append(seg)
        return [spans[k] for k in sorted(spans)]

    def counter_deltas(self, device: str, interface: str) -> list[dict[str, Any]]:
        """Per poll interval of one interface: the counter increments (64-bit)."""
        import pyarrow.compute as pc

        t = self.counters
        m = pc.and_(pc.equal(t["device"], device), pc.equal(t["ifname"], interface))
        rows = sorted(t.filter(m).to_pylist(), key=lambda r: int(r["ts_ns"]))
        out = []
        for prev, cur in itertools.pairwise(rows):
            d: dict[str, Any] = {"from": _iso(prev["ts_ns"]), "to": _iso(cur["ts_ns"]),
                                 "from_ns": int(prev["ts_ns"]), "to_ns": int(cur["ts_ns"])}
            for k in ("in_octets", "in_pkts", "out_octets", "out_pkts", "in_errors",
                      "in_discards", "out_errors", "out_discards"):
                d[k] = int(cur[k]) - int(prev[k])
            out.append(d)
        return out


def _plain_value(v: Any) -> Any:
    return v


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for k, v in row.items():
        if k.endswith("_ns") and isinstance(v, int):
            out[k[:-3]] = _iso(v)
    return out


def load_truth(directory: str | Path) -> Truth:
    """Read the ground truth of a ``fabricscope sim`` output directory."""
    d = Path(directory)
    path = d / "truth.json"
    try:
        meta = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError("no truth.json here (not a `fabricscope sim` output directory?)",
                         path=str(d)) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read truth.json: {exc}", path=str(path)) from None
    if not isinstance(meta, dict) or meta.get("format") != TRUTH_FORMAT:
        raise InputError(f"unsupported truth format (expected {TRUTH_FORMAT})",
                         path=str(path), field="format")
    return Truth(d, meta)

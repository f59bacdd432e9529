"""Records of one query -> observations, aggregated with DuckDB (no Python loop per record).

An *observation* is what one observation point (an sFlow agent with its in/out ifIndex,
or a capture when there is no agent) saw of one inner flow inside one tunnel segment with
one outer 5-tuple in one time bucket (10 s by default): sample count, estimated packets and bytes, first and last time, the
median outer TTL (to order hops along a routed path) and the networking-sfc MPLS label.

Estimates: an sFlow sample stands for ``sampling_rate`` packets and ``frame_len`` x rate
bytes; a captured packet (no sampling rate) stands for itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

OBS_COLUMNS = [
    "ts", "kind", "agent", "in_if", "out_if", "sampling_rate", "frame_len", "src", "dst",
    "proto", "sport", "dport", "ttl", "encap", "vni", "inner_src", "inner_dst",
    "inner_proto", "inner_sport", "inner_dport", "inner_mpls_label", "depth",
]

_SQL = """
SELECT
  inner_src, inner_dst, inner_proto, inner_sport, inner_dport,
  CAST(encap AS VARCHAR) AS encap, vni, src, dst, proto, sport, dport,
  agent, in_if, out_if,
  epoch_ns(ts) // $bucket AS bucket,
  count(*) AS samples,
  sum(coalesce(sampling_rate, 1))::DOUBLE AS est_packets,
  sum(coalesce(frame_len, 0)::DOUBLE * coalesce(sampling_rate, 1)) AS est_bytes,
  epoch_ns(min(ts)) AS first_ns,
  epoch_ns(max(ts)) AS last_ns,
  median(ttl)::DOUBLE AS ttl,
  min(inner_mpls_label) AS mpls_label
FROM r
WHERE coalesce(CAST(kind AS VARCHAR), 'packet') <> 'discard'
GROUP BY ALL
"""


@dataclass(frozen=True, slots=True)
class Obs:
    inner: tuple[bytes | None, bytes | None, int | None, int | None, int | None]
    encap: str | None
    vni: int | None
    outer_src: bytes | None
    outer_dst: bytes | None
    outer5: tuple[int | None, int | None, int | None]  # proto, sport, dport
    agent: bytes | None
    in_if: int | None
    out_if: int | None
    samples: int
    est_packets: float
    est_bytes: float
    first_ns: int
    last_ns: int
    ttl: float | None
    mpls_label: int | None

    @property
    def segment(self) -> tuple[str | None, int | None, bytes | None, bytes | None]:
        return (self.encap, self.vni, self.outer_src, self.outer_dst)


def _fix_types(records: pa.Table) -> pa.Table:
    """Dictionary string columns -> plain strings (DuckDB reads both; this keeps casts simple)."""
    cols = []
    for f in records.schema:
        col = records.column(f.name)
        if pa.types.is_dictionary(f.type):
            col = col.cast(pa.string())
        cols.append(col)
    return pa.Table.from_arrays(cols, names=records.schema.names)


def bucket_for(window_ns: int) -> int:
    """Observation time bucket for a window: 10 s, or 1/200 of the window if longer."""
    return max(10_000_000_000, window_ns // 200)


def observations(records: pa.Table, bucket_ns: int = 10_000_000_000) -> list[Obs]:
    if records.num_rows == 0:
        return []
    con = duckdb.connect()
    try:
        con.register("r", _fix_types(records))
        rows = con.execute(_SQL, {"bucket": int(bucket_ns)}).fetchall()
    finally:
        con.close()
    out: list[Obs] = []
    for (isrc, idst, iproto, isport, idport, encap, vni, src, dst, proto, sport, dport,
         agent, in_if, out_if, _bucket, samples, estp, estb, first_ns, last_ns, ttl,
         mpls) in rows:
        out.append(Obs(
            inner=(isrc, idst, iproto, isport, idport), encap=encap, vni=vni,
            outer_src=src, outer_dst=dst, outer5=(proto, sport, dport), agent=agent,
            in_if=in_if, out_if=out_if, samples=int(samples), est_packets=float(estp),
            est_bytes=float(estb), first_ns=int(first_ns), last_ns=int(last_ns),
            ttl=None if ttl is None else float(ttl),
            mpls_label=None if mpls is None else int(mpls),
        ))
    return out


def ns_to_dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)

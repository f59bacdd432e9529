"""Record filters, compiled to parameterised SQL for both store dialects.

User input never becomes SQL text: every value is a ``?`` parameter (DuckDB binds them
natively; the ClickHouse backend turns each into a typed ``{pN:Type}`` server-side
parameter). Only column names from the schema are written into the SQL.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from fabricscope.errors import UsageError

_V4_PREFIX = b"\x00" * 10 + b"\xff\xff"


@dataclass
class RecordFilter:
    """What to select. Every field is optional; set fields are ANDed.

    ``since <= ts < until`` (aware datetimes). Addresses are text (IPv4 or IPv6).
    ``either_direction`` also matches the flow the other way round: ``src``/``dst``,
    ``inner_src``/``inner_dst`` and ``inner_sport``/``inner_dport`` swapped.
    ``interface`` matches ``in_if`` or ``out_if``. ``kind``: packet, flow, discard.
    """

    since: datetime | None = None
    until: datetime | None = None
    inner_src: str | None = None
    inner_dst: str | None = None
    src: str | None = None
    dst: str | None = None
    inner_sport: int | None = None
    inner_dport: int | None = None
    inner_proto: int | None = None
    vni: int | None = None
    encap: str | None = None
    agent: str | None = None
    in_if: int | None = None
    out_if: int | None = None
    interface: int | None = None
    either_direction: bool = False
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None or v is False:
                continue
            out[f.name] = v.isoformat() if isinstance(v, datetime) else v
        return out


FILTER_COLUMNS: tuple[str, ...] = (
    "inner_src", "inner_dst", "src", "dst", "inner_sport", "inner_dport", "inner_proto",
    "vni", "encap", "agent", "in_if", "out_if", "kind",
)
"""Columns a filter may touch besides ``ts`` (all of them are in ``records_1m`` too)."""

_SWAP = {"src": "dst", "dst": "src", "inner_src": "inner_dst", "inner_dst": "inner_src",
         "inner_sport": "inner_dport", "inner_dport": "inner_sport"}
_DIRECTED = ("src", "dst", "inner_src", "inner_dst", "inner_sport", "inner_dport")
_IP_FIELDS = {"src", "dst", "inner_src", "inner_dst", "agent"}
_INT_FIELDS = {"inner_sport": 0xFFFF, "inner_dport": 0xFFFF, "inner_proto": 0xFF,
               "vni": (1 << 64) - 1, "in_if": 0xFFFFFFFF, "out_if": 0xFFFFFFFF,
               "interface": 0xFFFFFFFF}


def ip_param(text: str, field: str) -> bytes:
    """Text address -> the 16-byte stored form, or a one-line usage error."""
    try:
        addr = ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise UsageError(f"{field}: not an IP address: {text!r}") from None
    if isinstance(addr, ipaddress.IPv4Address):
        return _V4_PREFIX + addr.packed
    return addr.packed


def aware(dt: datetime, field: str) -> datetime:
    if not isinstance(dt, datetime):
        raise UsageError(f"{field}: not a datetime: {dt!r}")
    if dt.tzinfo is None:
        raise UsageError(f"{field}: needs a time zone (aware datetime)")
    return dt.astimezone(UTC)


def floor_minute(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


def compile_filter(flt: RecordFilter | None, *, minute: bool = False,
                   ts_col: str = "ts") -> tuple[str, list[Any]]:
    """``flt`` -> (SQL boolean expression with ``?`` placeholders, parameter values).

    Values: IPs as 16-byte ``bytes``, times as aware ``datetime``, the rest ``int``/``str``.
    ``minute=True`` compiles for the 1-minute aggregates, whose ``ts`` is the start of a
    minute: the minute holding ``since`` is included.
    """
    if flt is None:
        return "TRUE", []
    conds: list[str] = []
    params: list[Any] = []
    if flt.since is not None:
        since = aware(flt.since, "since")
        conds.append(f"{ts_col} >= ?")
        params.append(floor_minute(since) if minute else since)
    if flt.until is not None:
        conds.append(f"{ts_col} < ?")
        params.append(aware(flt.until, "until"))

    values: dict[str, Any] = {}
    for name in ("src", "dst", "inner_src", "inner_dst", "agent"):
        v = getattr(flt, name)
        if v is not None:
            values[name] = ip_param(v, name)
    for name, top in _INT_FIELDS.items():
        v = getattr(flt, name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
            raise UsageError(f"{name}: must be an integer from 0 to {top}, not {v!r}")
        values[name] = v
    for name in ("encap", "kind"):
        v = getattr(flt, name)
        if v is not None:
            values[name] = str(v)

    directed = {k: v for k, v in values.items() if k in _DIRECTED}
    for name, v in values.items():
        if name in _DIRECTED:
            continue
        if name == "interface":
            conds.append("(in_if = ? OR out_if = ?)")
            params.extend([v, v])
        else:
            conds.append(f"{name} = ?")
            params.append(v)
    if directed:
        fwd = [f"{k} = ?" for k in directed]
        if flt.either_direction:
            rev = [f"{_SWAP[k]} = ?" for k in directed]
            conds.append(f"(({' AND '.join(fwd)}) OR ({' AND '.join(rev)}))")
            params.extend(directed.values())
            params.extend(directed.values())
        else:
            conds.extend(fwd)
            params.extend(directed.values())
    return (" AND ".join(conds) if conds else "TRUE"), params


def window_ns(flt: RecordFilter | None) -> tuple[int | None, int | None]:
    """The filter's time window as integer ns (for partition pruning)."""
    from fabricscope.timeutil import to_ns

    if flt is None:
        return None, None
    lo = to_ns(aware(flt.since, "since")) if flt.since is not None else None
    hi = to_ns(aware(flt.until, "until")) if flt.until is not None else None
    return lo, hi


def widen_minute(lo: int | None) -> int | None:
    """Window start for the 1-minute aggregates (the minute that holds it)."""
    if lo is None:
        return None
    step = int(timedelta(minutes=1).total_seconds() * 1e9)
    return lo - lo % step


__all__ = ["FILTER_COLUMNS", "RecordFilter", "compile_filter", "ip_param", "window_ns"]

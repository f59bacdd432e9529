"""Turning record batches into what people and scripts read: NDJSON objects and table rows.

This is the presentation edge: it creates Python objects per record, so it is used for
output only (``decode --format ndjson|table``, API responses), never on ingest paths.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from typing import Any, TextIO

import pyarrow as pa

from fabricscope.records.schema import (
    CONTRACT_FIELDS,
    COUNTER_COLUMNS,
    PACKET_COLUMNS,
    TUNNEL_AB_NAMES,
)
from fabricscope.timeutil import format_ns

_V4_PREFIX = b"\x00" * 10 + b"\xff\xff"


def ip_str(raw: bytes | None) -> str | None:
    """16-byte address (IPv4-mapped for IPv4) -> text."""
    if raw is None:
        return None
    if raw[:12] == _V4_PREFIX:
        return ".".join(str(b) for b in raw[12:])
    return str(ipaddress.IPv6Address(raw))


def ip_bytes(text: str) -> bytes:
    """Text address -> the 16-byte stored form (IPv4-mapped for IPv4)."""
    addr = ipaddress.ip_address(text.strip())
    if isinstance(addr, ipaddress.IPv4Address):
        return _V4_PREFIX + addr.packed
    return addr.packed


def mac_str(v: int | None) -> str | None:
    if v is None:
        return None
    h = f"{v:012x}"
    return ":".join(h[k:k + 2] for k in range(0, 12, 2))


def _tunnel(t: dict[str, Any]) -> dict[str, Any]:
    typ = t["type"]
    out: dict[str, Any] = {"type": typ, "vni": t["vni"], "src": ip_str(t["src"]),
                           "dst": ip_str(t["dst"]), "sport": t["sport"], "dport": t["dport"]}
    a_name, b_name = TUNNEL_AB_NAMES.get(typ, (None, None))
    if a_name and t["a"] is not None:
        out[a_name] = t["a"]
    if b_name and t["b"] is not None:
        out[b_name] = t["b"]
    return out


_MAC = {"eth_src", "eth_dst", "inner_eth_src", "inner_eth_dst"}
_IP = {c.name for c in (*PACKET_COLUMNS, *COUNTER_COLUMNS) if c.type == "ip"}
_HIDDEN = {"ts_prec", "file_offset", "linktype", "iface", "geneve_options"}


def record_dicts(batch: pa.RecordBatch | pa.Table, *, all_fields: bool = False
                 ) -> Iterator[dict[str, Any]]:
    """Yield one JSON-ready dict per record: contract fields always (null when absent), the
    other columns when they have a value (or always with ``all_fields``)."""
    names = batch.schema.names
    prec = batch.column(names.index("ts_prec")).to_pylist() if "ts_prec" in names else None
    ts = batch.column(names.index("ts")).cast(pa.int64()).to_pylist() if "ts" in names else None
    rows = batch.to_pylist()
    contract = set(CONTRACT_FIELDS)
    for k, row in enumerate(rows):
        out: dict[str, Any] = {}
        for name in names:
            if name in _HIDDEN and not all_fields:
                continue
            v = row[name]
            if v is None:
                if name in contract or all_fields:
                    out[name] = None
                continue
            if name == "ts" and ts is not None:
                p = prec[k] if prec is not None and prec[k] is not None else 9
                out[name] = format_ns(ts[k], int(p))
            elif name in _IP:
                out[name] = ip_str(v)
            elif name in _MAC:
                out[name] = mac_str(v)
            elif name == "tunnels":
                out[name] = [_tunnel(t) for t in v]
            elif name == "geneve_options":
                out[name] = v.hex()
            else:
                out[name] = v
        yield out


def write_ndjson(batch: pa.RecordBatch | pa.Table, fh: TextIO) -> int:
    n = 0
    for d in record_dicts(batch):
        fh.write(json.dumps(d, separators=(",", ":")))
        fh.write("\n")
        n += 1
    return n

"""Synthetic record and counter tables for the store's tests and benchmarks.

:func:`synthetic_records` builds millions of VXLAN flow samples per second with NumPy
(no Python object per record): flows with a skewed popularity, each seen at a few
switches, inner 5-tuple, outer hypervisor addresses, one tunnel layer. :func:`records` and
:func:`counters` build small tables from dicts (text addresses) for tests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from fabricscope.records.arrow import IP_TYPE, TUNNEL_STRUCT, TUNNELS_TYPE, schema_of
from fabricscope.records.ddl import STORED_COUNTER_COLUMNS, STORED_PACKET_COLUMNS

PACKET_STORED = schema_of(STORED_PACKET_COLUMNS)
COUNTER_STORED = schema_of(STORED_COUNTER_COLUMNS)
_V4 = np.array([0] * 10 + [0xFF, 0xFF], dtype=np.uint8)


def ipv4_array(addrs: np.ndarray) -> pa.Array:
    """uint32 IPv4 addresses -> fixed_size_binary(16), IPv4-mapped."""
    n = len(addrs)
    buf = np.empty((n, 16), dtype=np.uint8)
    buf[:, :12] = _V4
    buf[:, 12:] = addrs.astype(">u4").view(np.uint8).reshape(n, 4)
    return pa.FixedSizeBinaryArray.from_buffers(IP_TYPE, n, [None, pa.py_buffer(buf)])


def ipv4_text(x: int) -> str:
    return str(ipaddress.IPv4Address(int(x)))


def _ip(a: int, b: int, c: int, d: int) -> int:
    return (a << 24) | (b << 16) | (c << 8) | d


def flow_of(f: int | np.ndarray) -> dict[str, Any]:
    """The inner 5-tuple and VNI of synthetic flow ``f`` (vectorised over arrays)."""
    f = np.asarray(f, dtype=np.int64)
    return {
        "inner_src": (_ip(10, 1, 0, 0) + (f % 60000) + 1).astype(np.uint32),
        "inner_dst": (_ip(10, 2, 0, 0) + ((f * 7919) % 60000) + 1).astype(np.uint32),
        "inner_sport": (1024 + (f * 31) % 60000).astype(np.uint16),
        "inner_dport": np.where(f % 3 == 0, 443, np.where(f % 3 == 1, 80, 5432)
                                ).astype(np.uint16),
        "inner_proto": np.full(f.shape, 6, np.uint8),
        "vni": (1000 + f % 97).astype(np.uint64),
        "src": (_ip(192, 168, 0, 0) + (f % 200) + 1).astype(np.uint32),
        "dst": (_ip(192, 168, 0, 0) + ((f * 13 + 7) % 200) + 1).astype(np.uint32),
    }


def synthetic_records(n: int, *, start_ns: int, span_ns: int, flows: int = 100_000,
                      agents: int = 32, sampling_rate: int = 1024, seed: int = 0
                      ) -> pa.Table:
    """``n`` sFlow flow samples of VXLAN traffic, time-sorted over ``[start, start+span)``."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, max(1, span_ns), n, dtype=np.int64)) + start_ns
    f = np.minimum(rng.exponential(flows / 8.0, n).astype(np.int64), flows - 1)
    fl = flow_of(f)
    hop = rng.integers(0, 4, n, dtype=np.int64)
    agent = (_ip(10, 255, 0, 1) + (f + hop * 5) % agents).astype(np.uint32)
    frame_len = rng.integers(64, 1500, n, dtype=np.int64).astype(np.uint32) + 50
    outer_sport = (49152 + (f * 2654435761) % 16384).astype(np.uint16)
    cols: dict[str, pa.Array] = {
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "kind": pa.DictionaryArray.from_arrays(
            pa.array(np.ones(n, np.int16)), pa.array(["packet", "flow", "discard"])),
        "frame_len": pa.array(frame_len),
        "caplen": pa.array(np.minimum(frame_len, 128).astype(np.uint32)),
        "ethertype": pa.array(np.full(n, 0x0800, np.uint16)),
        "ip_ver": pa.array(np.full(n, 4, np.uint8)),
        "src": ipv4_array(fl["src"]),
        "dst": ipv4_array(fl["dst"]),
        "proto": pa.array(np.full(n, 17, np.uint8)),
        "ttl": pa.array((64 - hop).astype(np.uint8)),
        "sport": pa.array(outer_sport),
        "dport": pa.array(np.full(n, 4789, np.uint16)),
        "encap": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int16)),
                                                pa.array(["vxlan"])),
        "vni": pa.array(fl["vni"]),
        "depth": pa.array(np.ones(n, np.uint8)),
        "inner_ethertype": pa.array(np.full(n, 0x0800, np.uint16)),
        "inner_ip_ver": pa.array(np.full(n, 4, np.uint8)),
        "inner_src": ipv4_array(fl["inner_src"]),
        "inner_dst": ipv4_array(fl["inner_dst"]),
        "inner_proto": pa.array(fl["inner_proto"]),
        "inner_ttl": pa.array(np.full(n, 63, np.uint8)),
        "inner_sport": pa.array(fl["inner_sport"]),
        "inner_dport": pa.array(fl["inner_dport"]),
        "agent": ipv4_array(agent),
        "sub_agent": pa.array(np.zeros(n, np.uint32)),
        "in_if": pa.array((1 + (f + hop) % 48).astype(np.uint32)),
        "out_if": pa.array((49 + (f + hop) % 4).astype(np.uint32)),
        "sampling_rate": pa.array(np.full(n, sampling_rate, np.uint32)),
    }
    tunnel = pa.StructArray.from_arrays(
        [pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int16)), pa.array(["vxlan"])),
         pa.array(fl["vni"]), ipv4_array(fl["src"]), ipv4_array(fl["dst"]),
         pa.array(outer_sport), pa.array(np.full(n, 4789, np.uint16)),
         pa.nulls(n, pa.int64()), pa.nulls(n, pa.int64())],
        fields=list(TUNNEL_STRUCT))
    cols["tunnels"] = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)),
                                               tunnel, type=TUNNELS_TYPE)
    arrays = [cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in PACKET_STORED]
    return pa.Table.from_arrays(arrays, schema=PACKET_STORED)


# --- small tables from dicts (tests) ---------------------------------------------------------

_IP_COLS = {"src", "dst", "inner_src", "inner_dst", "agent"}


def _ipb(v: Any) -> bytes | None:
    if v is None or isinstance(v, bytes):
        return v
    from fabricscope.records.present import ip_bytes

    return ip_bytes(str(v))


def _rows(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    from datetime import datetime

    fixed: list[dict[str, Any]] = []
    for r in rows:
        d = dict(r)
        for k in list(d):
            if k in _IP_COLS:
                d[k] = _ipb(d[k])
            elif k == "ts" and isinstance(d[k], datetime):
                ts = d[k]
                d[k] = int(ts.timestamp()) * 10**9 + ts.microsecond * 1000
            elif k == "tunnels" and d[k] is not None:
                d[k] = [{**t, "src": _ipb(t.get("src")), "dst": _ipb(t.get("dst"))}
                        for t in d[k]]
        unknown = set(d) - set(schema.names)
        if unknown:
            raise KeyError(f"unknown column(s): {sorted(unknown)}")
        fixed.append(d)
    plain = pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type)
                                else f.type) for f in schema])
    t = pa.Table.from_pylist(fixed, schema=_undict(plain))
    return t.cast(schema)


def _undict(schema: pa.Schema) -> pa.Schema:
    from fabricscope.store.conform import undictionary_type

    return pa.schema([pa.field(f.name, undictionary_type(f.type)) for f in schema])


def records(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Packet records from dicts (``ts`` as aware datetime or ns; addresses as text)."""
    return _rows(rows, PACKET_STORED)


def counters(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Counter polls from dicts (the raw counter columns; derived ones are computed)."""
    return _rows(rows, COUNTER_STORED)

"""Arrow batches from a slot matrix with fused numba column passes: the sFlow counters.

* one numba pass per column writes the typed values and the validity bitmap together
  (instead of NumPy's cast, compare, invert and Arrow's own mask packing), into one 2-D
  array per value width so every column is a zero-copy row of it;
* a column with no value at all is found by a scan that stops at its first value, and
  becomes a null array without being written.

``sflow/batch.py`` builds the counters batch with it (a test compares it with a
reference built from ``records.arrow``'s helpers). Flow and discard samples are packed
chunk by chunk during the walk instead (``sflow/fused.py``, ``records/packing.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from numba import njit

from fabricscope.records.arrow import (
    IP_TYPE,
    TS_TYPE,
    arrow_type,
)
from fabricscope.records.schema import Column

# validity rules
R_NONNEG = 0  # v >= 0 (u8/u16/u32)
R_NOT_M1 = 1  # v != -1 (mac, u64, i64)
R_ALWAYS = 2  # ts: always valid, value as is
R_POSITIVE = 3  # dictionary codes of encap/error: > 0
R_KIND = 4  # kind codes: < 0 -> 0, always valid

_WIDTH = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "i64": 8, "mac": 8, "ts": 8, "str": 2}
_DTYPES = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.int64}


@njit(cache=True)
def _fill(m: np.ndarray, slots: np.ndarray, rules: np.ndarray, n: int, out: np.ndarray,
          bitmaps: np.ndarray, nulls: np.ndarray) -> None:
    """Column c = slot ``slots[c]`` of ``m`` under rule ``rules[c]``: values into
    ``out[c, :n]`` (0 where null), validity bits into ``bitmaps[c]``, null count into
    ``nulls[c]`` (n when the column has no value: nothing else is written then)."""
    for c in range(slots.shape[0]):
        s = slots[c]
        r = rules[c]
        if r in (R_ALWAYS, R_KIND):
            for i in range(n):
                v = m[s, i]
                if r == R_KIND and v < 0:
                    v = 0
                out[c, i] = v
            nulls[c] = 0
            continue
        first = -1
        for i in range(n):
            v = m[s, i]
            if (r == R_NONNEG and v >= 0) or (r == R_NOT_M1 and v != -1) or (
                    r == R_POSITIVE and v > 0):
                first = i
                break
        if first < 0:
            nulls[c] = n
            continue
        cnt = 0
        nbytes = (n + 7) >> 3
        for byte in range(nbytes):
            bits = 0
            base = byte << 3
            lim = n - base
            if lim > 8:
                lim = 8
            for b in range(lim):
                i = base + b
                v = m[s, i]
                ok = (r == R_NONNEG and v >= 0) or (r == R_NOT_M1 and v != -1) or (
                    r == R_POSITIVE and v > 0)
                if ok:
                    bits |= 1 << b
                    out[c, i] = v
                else:
                    out[c, i] = 0
                    cnt += 1
            bitmaps[c, byte] = bits
        nulls[c] = cnt


@njit(inline="always", cache=True)
def _bswap64(v: int) -> int:
    """Byte-swap a 64-bit value (stored little-endian, it then reads big-endian)."""
    u = np.uint64(v)
    u = ((u & np.uint64(0x00FF00FF00FF00FF)) << np.uint64(8)) | (
        (u >> np.uint64(8)) & np.uint64(0x00FF00FF00FF00FF))
    u = ((u & np.uint64(0x0000FFFF0000FFFF)) << np.uint64(16)) | (
        (u >> np.uint64(16)) & np.uint64(0x0000FFFF0000FFFF))
    u = (u << np.uint64(32)) | (u >> np.uint64(32))
    return np.int64(u)  # type: ignore[return-value]


@njit(cache=True)
def _fill_ip(m: np.ndarray, his: np.ndarray, los: np.ndarray, vers: np.ndarray, n: int,
             out: np.ndarray, bitmaps: np.ndarray, nulls: np.ndarray) -> None:
    """IP column c: (hi, lo) big-endian into ``out[c, i]`` (two int64 holding the 16
    bytes) where version > 0."""
    for c in range(his.shape[0]):
        h = his[c]
        lo_s = los[c]
        vs = vers[c]
        first = -1
        for i in range(n):
            if m[vs, i] > 0:
                first = i
                break
        if first < 0:
            nulls[c] = n
            continue
        cnt = 0
        for byte in range((n + 7) >> 3):
            bits = 0
            base = byte << 3
            lim = min(8, n - base)
            for b in range(lim):
                i = base + b
                if m[vs, i] > 0:
                    bits |= 1 << b
                    out[c, i, 0] = _bswap64(m[h, i])
                    out[c, i, 1] = _bswap64(m[lo_s, i])
                else:
                    out[c, i, 0] = 0
                    out[c, i, 1] = 0
                    cnt += 1
            bitmaps[c, byte] = bits
        nulls[c] = cnt


_NULLS: dict[pa.DataType, pa.Array] = {}


def nulls_of(t: pa.DataType, n: int) -> pa.Array:
    """``pa.nulls(n, t)`` as a zero-copy slice of a cached all-null array (most columns
    of a batch are all null; allocating and zeroing them each time is what costs)."""
    a = _NULLS.get(t)
    if a is None or len(a) < n:
        a = pa.nulls(max(n, 1 << 16), t)
        _NULLS[t] = a
    return a.slice(0, n)


def _primitive(t: pa.DataType, n: int, data: np.ndarray, bitmap: np.ndarray,
               nulls: int) -> pa.Array:
    if nulls == n:
        return nulls_of(t, n)
    validity = None if nulls == 0 else pa.py_buffer(bitmap)
    return pa.Array.from_buffers(t, n, [validity, pa.py_buffer(data)], null_count=nulls)


class Plan:
    """How to build a batch of ``columns`` from a slot matrix, worked out once: the scalar
    and dictionary columns grouped by value width (slots and validity rules as arrays for
    the numba pass), the IP columns, the Arrow types and schema, the dictionaries."""

    def __init__(self, columns: Sequence[Column], names: dict[str, Sequence[str]]) -> None:
        self.columns = tuple(columns)
        self.types = [arrow_type(c.type) for c in columns]
        self.schema = pa.schema([pa.field(c.name, t) for c, t in zip(columns, self.types,
                                                                        strict=True)])
        self.dicts = {name: pa.array(list(v), pa.string()) for name, v in names.items()}
        groups: dict[int, tuple[list[int], list[int], list[int]]] = {}
        for pos, c in enumerate(columns):
            if c.type in ("ip", "tunnels", "bin", "bool") or c.slot < 0:
                continue
            if c.type == "str":
                rule = R_KIND if c.name == "kind" else R_POSITIVE
            elif c.type == "ts":
                rule = R_ALWAYS
            elif c.type in ("u64", "i64", "mac"):
                rule = R_NOT_M1
            else:
                rule = R_NONNEG
            g = groups.setdefault(_WIDTH[c.type], ([], [], []))
            g[0].append(pos)
            g[1].append(c.slot)
            g[2].append(rule)
        self.groups = [(w, pos, np.array(sl, np.int64), np.array(ru, np.int64))
                       for w, (pos, sl, ru) in groups.items()]
        ips = [(pos, c.ip) for pos, c in enumerate(columns) if c.type == "ip" and c.ip]
        self.ip_pos = [pos for pos, _ in ips]
        self.ip_slots = tuple(np.array([ip[k] for _, ip in ips], np.int64) for k in range(3))

    def build(self, m: np.ndarray, n: int) -> list[pa.Array | None]:
        """The scalar, dictionary and IP columns (None for the others)."""
        arrays: list[pa.Array | None] = [None] * len(self.columns)
        nb = (n + 7) >> 3
        for w, positions, slots, rules in self.groups:
            k = len(positions)
            out = np.empty((k, n), _DTYPES[w])
            bm = np.empty((k, max(nb, 1)), np.uint8)
            nulls = np.zeros(k, np.int64)
            _fill(m, slots, rules, n, out, bm, nulls)
            for j, pos in enumerate(positions):
                c = self.columns[pos]
                nn = int(nulls[j])
                if c.type == "str":
                    idx = (nulls_of(pa.int16(), n) if nn == n else
                           _primitive(pa.int16(), n, out[j].view(np.int16), bm[j, :nb], nn))
                    arrays[pos] = pa.DictionaryArray.from_arrays(idx, self.dicts[c.name])
                elif c.type == "ts":
                    arrays[pos] = pa.Array.from_buffers(TS_TYPE, n,
                                                        [None, pa.py_buffer(out[j])])
                else:
                    arrays[pos] = _primitive(self.types[pos], n, out[j], bm[j, :nb], nn)
        if self.ip_pos:
            k = len(self.ip_pos)
            out8 = np.empty((k, n, 2), np.int64)
            bm = np.empty((k, max(nb, 1)), np.uint8)
            nulls = np.zeros(k, np.int64)
            his, los, vers = self.ip_slots
            _fill_ip(m, his, los, vers, n, out8, bm, nulls)
            for j, pos in enumerate(self.ip_pos):
                arrays[pos] = _primitive(IP_TYPE, n, out8[j].reshape(-1).view(np.uint8),
                                         bm[j, :nb], int(nulls[j]))
        return arrays

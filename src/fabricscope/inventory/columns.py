"""Arrow record columns as NumPy keys, without a Python step per record.

A key column is *factorised* (Arrow's hash-based ``dictionary_encode``): each record gets a
code, and only the distinct values are looked at. ``combine`` factorises several columns
together (a dense presence table when the code space is small, a hash pass otherwise).
Shared by enrichment and learning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fabricscope.inventory.model import NETWORK_ENCAPS

ENCAP_ANY = 0  # key component: "any encapsulation"
ENCAP_ID = {name: i + 1 for i, name in enumerate(NETWORK_ENCAPS)}
ENCAP_UNKNOWN = len(NETWORK_ENCAPS) + 1


@dataclass
class Col:
    """A factorised key column: a code per record in ``[0, size]`` (``size`` = null) and,
    per code, the component values (``parts``, each of length ``size + 1``; the null code
    holds 0)."""

    codes: np.ndarray
    parts: list[np.ndarray]
    size: int

    def valid(self, codes: np.ndarray) -> np.ndarray:
        return codes < self.size

    def part(self, j: int, codes: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.parts[j][codes]
        return out


def as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def encode(col: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Hash-factorise: (code per record, -1 for null; the distinct values)."""
    enc = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
    idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return idx, enc.dictionary


def with_null(idx: np.ndarray, parts: list[np.ndarray], size: int) -> Col:
    codes = np.where(idx < 0, size, idx)
    return Col(codes, [np.concatenate([p, np.zeros(1, np.uint64)]) for p in parts], size)


def ip_col(col: pa.Array) -> Col:
    """A fixed_size_binary(16) address column; parts: (hi, lo) 64-bit halves."""
    if not (pa.types.is_fixed_size_binary(col.type) and col.type.byte_width == 16):
        raise TypeError(f"expected fixed_size_binary(16) addresses, got {col.type}")
    idx, dic = encode(col)
    n = len(dic)
    if n:
        raw = np.frombuffer(dic.buffers()[1], dtype=">u8",
                            count=(dic.offset + n) * 2)[dic.offset * 2:]
        halves = raw.reshape(-1, 2).astype(np.uint64)
        hi, lo = halves[:, 0].copy(), halves[:, 1].copy()
    else:
        hi = lo = np.empty(0, np.uint64)
    return with_null(idx, [hi, lo], n)


def int_col(col: pa.Array) -> Col:
    idx, dic = encode(col)
    vals = (dic.to_numpy(zero_copy_only=False).astype(np.uint64) if len(dic)
            else np.empty(0, np.uint64))
    return with_null(idx, [vals], len(dic))


def encap_col(col: pa.Array) -> Col:
    if not (pa.types.is_dictionary(col.type) or pa.types.is_string(col.type)):
        col = col.cast(pa.string())
    idx, dic = encode(col)
    names = dic.to_pylist()
    vals = np.array([ENCAP_ID.get(str(s), ENCAP_UNKNOWN) for s in names], dtype=np.uint64)
    return with_null(idx, [vals], len(names))


def choose(mask: np.ndarray, a: Col, b: Col) -> Col:
    """The column that is ``a`` where ``mask`` is true and ``b`` elsewhere, from the two
    factorised columns (no hash pass: a value present in both gets two codes)."""
    size = a.size + b.size
    codes = np.where(mask, np.where(a.codes < a.size, a.codes, size),
                     np.where(b.codes < b.size, b.codes + a.size, size))
    parts = [np.concatenate([pa_[:a.size], pb[:b.size], np.zeros(1, np.uint64)])
             for pa_, pb in zip(a.parts, b.parts, strict=True)]
    return Col(codes, parts, size)


def epoch_col(epoch: np.ndarray) -> Col:
    lo = int(epoch.min()) if len(epoch) else 0
    hi = int(epoch.max()) if len(epoch) else 0
    size = hi - lo + 1
    return Col(epoch - lo, [np.arange(lo, hi + 1, dtype=np.uint64), ], size)


def combine(cols: Sequence[Col]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Factorise the combination of key columns with one hash pass: the index of each
    record's combination, and per distinct combination the code of each column."""
    code = cols[0].codes.astype(np.int64, copy=True)
    size = cols[0].size + 1
    for c in cols[1:]:
        width = c.size + 1
        if size * width > 2**62:  # pragma: no cover - needs ~10^18 distinct combinations
            raise OverflowError("too many distinct keys in one batch")
        code = code * width + c.codes
        size *= width
    if size <= max(len(code) // 2, 1 << 16):
        # small code space: a dense presence table is cheaper than hashing
        present = np.zeros(size, dtype=bool)
        present[code] = True
        rest = np.flatnonzero(present).astype(np.int64)
        remap = np.zeros(size, dtype=np.int64)
        remap[rest] = np.arange(len(rest), dtype=np.int64)
        inverse = remap[code]
    else:
        inverse, dic = encode(pa.array(code, pa.int64()))
        rest = dic.to_numpy(zero_copy_only=False).astype(np.int64)
    parts: list[np.ndarray] = []
    for c in reversed(cols[1:]):
        parts.append(rest % (c.size + 1))
        rest = rest // (c.size + 1)
    parts.append(rest)
    parts.reverse()
    return inverse, parts



def int32_with_nulls(idx: np.ndarray) -> pa.Array:
    """int32 Arrow array from NumPy, null where negative (validity bitmap built directly)."""
    idx = np.ascontiguousarray(idx, dtype=np.int32)
    valid = idx >= 0
    if valid.all():
        return pa.array(idx, pa.int32())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.int32(), len(idx), [bitmap, pa.py_buffer(idx)])

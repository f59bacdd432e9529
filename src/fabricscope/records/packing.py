# mypy: disable-error-code="return-value,assignment,arg-type"
"""The numba kernels of ``records/arrow.py``'s ``PacketColumns``: slot matrix -> typed
column buffers, validity bitmaps and null counts in one pass per value width.

A module of their own so that reading a store or answering a query (which build Arrow
schemas from ``records/arrow.py`` but never pack a slot matrix) does not import numba:
0.6 s of every one-shot command's start.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fabricscope.decode import slots as S
from fabricscope.decode.common import no_refcount
from fabricscope.records.arrow import (
    R_ALWAYS,
    R_BOOL,
    R_KIND,
    R_NONNEG,
    R_NOT_M1,
    R_POSITIVE,
)


@njit(inline="always", cache=True)
def _ok(v: int, r: int) -> int:
    if r == R_NONNEG:
        return np.int64(v >= 0)
    if r == R_NOT_M1:
        return np.int64(v != -1)
    return np.int64(v > 0)


@njit(inline="always", cache=True)
def _values(row: np.ndarray, o: np.ndarray, r: int) -> None:
    """``o[i] <- row[i]`` where present, else 0. One loop per rule (the rule is not
    tested per value) over slices (indices known non-negative: no wraparound check), so
    the compiler vectorises them: about 0.5 ns a value instead of 1."""
    if r == R_NONNEG:
        for i in range(o.shape[0]):
            v = row[i]
            o[i] = v if v >= 0 else 0
    elif r == R_NOT_M1:
        for i in range(o.shape[0]):
            v = row[i]
            o[i] = v if v != -1 else 0
    else:
        for i in range(o.shape[0]):
            v = row[i]
            o[i] = v if v > 0 else 0


@njit(inline="always", cache=True)
def _word(row: np.ndarray, n: int, r: int) -> np.uint64:
    """The validity bits of ``row[0:n]`` (n <= 64, a constant at each call: the loop is
    unrolled and vectorised) as one word, bit b for value b."""
    w = np.uint64(0)
    if r == R_NONNEG:
        for b in range(n):
            w |= np.uint64(row[b] >= 0) << np.uint64(b)
    elif r == R_NOT_M1:
        for b in range(n):
            w |= np.uint64(row[b] != -1) << np.uint64(b)
    else:
        for b in range(n):
            w |= np.uint64(row[b] > 0) << np.uint64(b)
    return w


@njit(inline="always", cache=True)
def _popcount(x: np.uint64) -> int:
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2))
                                               & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(inline="always", cache=True)
def _validity(row: np.ndarray, c: int, at: int, bk: np.ndarray, r: int) -> int:
    """Validity bits of ``row[0:c]`` into bitmap ``bk`` from bit ``at`` (zeroed before:
    records up to the first byte boundary OR their bits into a byte an earlier chunk
    started); returns how many are present. 64 values make a word, written as 8 bytes;
    then whole bytes; only the first and last few records go bit by bit."""
    valid = np.int64(0)
    i = 0
    while i < c and ((at + i) & 7) != 0:
        ok = _ok(row[i], r)
        bk[(at + i) >> 3] |= np.uint8(ok << ((at + i) & 7))
        valid += ok
        i += 1
    while i + 64 <= c:
        w = _word(row[i:i + 64], 64, r)
        out = bk[(at + i) >> 3:((at + i) >> 3) + 8]
        for b in range(8):
            out[b] = np.uint8((w >> np.uint64(8 * b)) & np.uint64(0xFF))
        valid += _popcount(w)
        i += 64
    while i + 8 <= c:  # whole bytes (a chunk of the sFlow walk is rarely 64-aligned)
        w = _word(row[i:i + 8], 8, r)
        bk[(at + i) >> 3] = np.uint8(w)
        valid += _popcount(w)
        i += 8
    while i < c:
        ok = _ok(row[i], r)
        bk[(at + i) >> 3] |= np.uint8(ok << ((at + i) & 7))
        valid += ok
        i += 1
    return valid


@no_refcount
def pack_scalars(m: np.ndarray, c: int, at: int, slots: np.ndarray, rules: np.ndarray,
                  active: np.ndarray, out: np.ndarray, bits: np.ndarray,
                  nulls: np.ndarray) -> None:
    """Column k <- slot ``slots[k]`` of records 0..c-1 of ``m``, into ``out[k, at + i]``
    (0 where absent), validity bits into ``bits[k]``, absent count added to ``nulls[k]``;
    a boolean column (``R_BOOL``) has only bits: its values, 1 where the slot is > 0.
    ``bits`` must start zeroed: a record that does not start a byte (``at`` not a
    multiple of 8, as the sFlow walk's chunks end wherever a datagram ends) ORs its bit
    in. An inactive column (``active[k] == 0``: known absent, e.g. sFlow slots of packet
    records) is not read: all absent, its bits left zero. Values and validity bits are
    two passes over the (cache-resident) row, each a loop the compiler vectorises."""
    for k in range(slots.shape[0]):
        bk = bits[k]
        if active[k] == 0:  # values left as they are: only read under a validity bit
            nulls[k] += c
            continue
        row = m[slots[k]][:c]
        o = out[k][at:at + c]
        r = rules[k]
        if r == R_BOOL:  # the bitmap is the data (an Arrow boolean), never null
            _validity(row, c, at, bk, R_POSITIVE)
            continue
        if r >= R_ALWAYS:
            for i in range(c):
                v = row[i]
                if r == R_KIND and v < 0:
                    v = 0
                o[i] = v
                bk[(at + i) >> 3] |= np.uint8(1 << ((at + i) & 7))
            continue
        _values(row, o, r)
        nulls[k] += c - _validity(row, c, at, bk, r)


@njit(inline="always", cache=True)
def _bswap64(x: int) -> int:
    x = ((x & 0x00FF00FF00FF00FF) << 8) | ((x >> 8) & 0x00FF00FF00FF00FF)
    x = ((x & 0x0000FFFF0000FFFF) << 16) | ((x >> 16) & 0x0000FFFF0000FFFF)
    return ((x & 0x00000000FFFFFFFF) << 32) | ((x >> 32) & 0x00000000FFFFFFFF)


@no_refcount
def pack_ips(m: np.ndarray, c: int, at: int, his: np.ndarray, los: np.ndarray,
              vers: np.ndarray, active: np.ndarray, out: np.ndarray, bits: np.ndarray,
              nulls: np.ndarray) -> None:
    """IP column k: the (hi, lo) halves in network byte order into ``out[k, at + i, 0:2]``
    (uint64 pairs: 16 bytes) where the version slot is > 0 (bits, zeroed first, and nulls
    as in :func:`pack_scalars`)."""
    for k in range(his.shape[0]):
        bk = bits[k]
        if active[k] == 0:
            nulls[k] += c
            continue
        hrow = m[his[k]][:c]
        lrow = m[los[k]][:c]
        vrow = m[vers[k]][:c]
        o = out[k][at:at + c]
        for i in range(c):
            ok = np.int64(vrow[i] > 0)
            o[i, 0] = _bswap64(hrow[i] * ok)
            o[i, 1] = _bswap64(lrow[i] * ok)
        nulls[k] += c - _validity(vrow, c, at, bk, R_POSITIVE)


@no_refcount
def pack_layers(m: np.ndarray, c: int, at: int, pos: int, offsets: np.ndarray,
                 g: np.ndarray, gof: np.ndarray, glen: np.ndarray) -> int:
    """Tunnel layers of records 0..c-1, outermost first, as columns ``pos..`` of ``g``
    (one row per tunnel slot); list offsets; GENEVE option offsets/lengths. Returns the
    next free column of ``g``."""
    for i in range(c):
        d = m[S.M_DEPTH, i]
        if d < 0:
            d = 0
        if d > S.MAX_DEPTH:
            d = S.MAX_DEPTH
        offsets[at + i] = pos
        for k in range(d):
            base = S.TUN + k * S.NT
            for f in range(S.NT):
                g[f, pos] = m[base + f, i]
            pos += 1
        offsets[at + i + 1] = pos
        gof[at + i] = m[S.M_GENEVE_OFF, i]
        glen[at + i] = m[S.M_GENEVE_LEN, i]
    return pos


@njit(cache=True)
def options_size(gof: np.ndarray, glen: np.ndarray) -> tuple[int, int]:
    """(total bytes, records with options) of the GENEVE options at ``gof``/``glen``
    (offset -1: no options)."""
    total = 0
    present = 0
    for i in range(gof.shape[0]):
        if gof[i] >= 0:
            present += 1
            if glen[i] > 0:
                total += glen[i]
    return total, present


@njit(cache=True)
def gather_options(buf: np.ndarray, gof: np.ndarray, glen: np.ndarray,
                    valid: np.ndarray, offsets: np.ndarray, data: np.ndarray) -> None:
    """The GENEVE option bytes of every record back to back into ``data`` (sized by
    :func:`options_size`), their ``offsets`` and validity bits (``valid`` zeroed)."""
    p = 0
    for i in range(gof.shape[0]):
        offsets[i] = p
        o = gof[i]
        if o >= 0:
            valid[i >> 3] |= np.uint8(1 << (i & 7))
            for b in range(glen[i]):
                data[p] = buf[o + b]
                p += 1
    offsets[gof.shape[0]] = p


@njit(inline="always", cache=True)
def reset_chunk(m: np.ndarray, rows: np.ndarray) -> None:
    """Set the slot rows ``rows`` (``slots.reset_rows``) of a reused chunk matrix back to
    -1, before each chunk of both fused walks (``decode/fused.py``, ``sflow/fused.py``)."""
    for y in range(rows.shape[0]):
        row = m[rows[y]]
        for x in range(row.shape[0]):
            row[x] = -1


@no_refcount
def pack_chunk(m: np.ndarray, c: int, at: int,
               slots1: np.ndarray, rules1: np.ndarray, on1: np.ndarray, out1: np.ndarray,
               bits1: np.ndarray, nulls1: np.ndarray,
               slots2: np.ndarray, rules2: np.ndarray, on2: np.ndarray, out2: np.ndarray,
               bits2: np.ndarray, nulls2: np.ndarray,
               slots4: np.ndarray, rules4: np.ndarray, on4: np.ndarray, out4: np.ndarray,
               bits4: np.ndarray, nulls4: np.ndarray,
               slots8: np.ndarray, rules8: np.ndarray, on8: np.ndarray, out8: np.ndarray,
               bits8: np.ndarray, nulls8: np.ndarray,
               his: np.ndarray, los: np.ndarray, vers: np.ndarray, ip_on: np.ndarray,
               ip_out: np.ndarray, ip_bits: np.ndarray, ip_nulls: np.ndarray,
               layers_on: bool, offsets: np.ndarray, layers: np.ndarray,
               gof: np.ndarray, glen: np.ndarray, nlayers: int) -> int:
    """Records 0..c-1 of slot matrix ``m`` into the column buffers at ``at`` (the
    arguments after ``at`` are ``PacketColumns.fused_args``, then the tunnel layers so
    far); returns the tunnel layers after them. The packing step of both fused walks
    (``decode/fused.py``, ``sflow/fused.py``)."""
    pack_scalars(m, c, at, slots1, rules1, on1, out1, bits1, nulls1)
    pack_scalars(m, c, at, slots2, rules2, on2, out2, bits2, nulls2)
    pack_scalars(m, c, at, slots4, rules4, on4, out4, bits4, nulls4)
    pack_scalars(m, c, at, slots8, rules8, on8, out8, bits8, nulls8)
    pack_ips(m, c, at, his, los, vers, ip_on, ip_out, ip_bits, ip_nulls)
    if layers_on:
        nlayers = pack_layers(m, c, at, nlayers, offsets, layers, gof, glen)
    return nlayers

"""The numba kernels of ``inventory/enrich.py``: per-record, compiled lookups.

For every record: its epoch (a running pointer over the change times, a binary search
when the record leaves the current epoch, so any order is correct), its key components
read straight from the Arrow buffers (a 16-byte address as its two native 64-bit words,
VNI, encapsulation, ifIndex), and probes of the epoch's open-addressing key table
(the keys of ``enrich.KeyIndex``, packed over the epochs by ``enrich._Packed``), every component
compared, so the answers are exact. The fallbacks are the scalar lookups' order.

A key column is passed as ``(data, bitmap, bit_offset)``: ``data[i]`` is record ``i``'s
value (an address: a row of two uint64 words), ``bitmap`` the Arrow validity bitmap (empty:
no nulls) whose bit ``bit_offset + i`` tells whether record ``i`` has a value. A packed key
table is ``(rows, offset, bits, mixer)``: the slots of epoch ``e`` are
``rows[offset[e]:offset[e] + 2**bits[e]]``, each the key's words then its value (``EMPTY``
in a free slot), at most half of them taken; keys are mixed with ``mixer[e]`` like
``KeyIndex``, placed by linear probing (``place``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FIB = np.uint64(0x9E3779B97F4A7C15)
_ZERO = np.uint64(0)


@njit(cache=True)
def _valid(col, i):  # type: ignore[no-untyped-def]
    bm = col[1]
    if bm.shape[0] == 0:
        return True
    j = col[2] + i
    return ((bm[j >> 3] >> (j & 7)) & 1) == 1


EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)  # the value word of a free slot


@njit(cache=True, nogil=True)
def place(comps, values, k, bits, rows):  # type: ignore[no-untyped-def]
    """Put the keys ``comps`` (one row per key) with their ``values`` into ``rows`` (a
    table of ``2**bits`` slots of the key's words then the value word, free slots with
    value ``EMPTY``) by linear probing from each key's home slot."""
    w = comps.shape[1]
    mask = (np.int64(1) << bits) - 1
    for i in range(comps.shape[0]):
        h = comps[i, 0]
        for j in range(1, w):
            h = (h * k) ^ comps[i, j]
        s = np.int64((h * _FIB) >> np.uint64(64 - bits))
        while rows[s, w] != EMPTY:
            s = (s + 1) & mask
        for j in range(w):
            rows[s, j] = comps[i, j]
        rows[s, w] = np.uint64(values[i])


# one lookup function per key width (a generic one testing the width compiles to code
# twice as slow): the value stored for the key in epoch ``e`` of table ``t``, -1 if none.
# A slot holds the key and its value, so a lookup usually touches one cache line.
# (Plain functions that LLVM inlines: numba's inline="always" made the kernels 2-3x slower.)


@njit(cache=True)
def _find2(t, e, c0, c1):  # type: ignore[no-untyped-def]
    rows, b = t[0], t[2][e]
    s = np.int64((((c0 * t[3][e]) ^ c1) * _FIB) >> np.uint64(64 - b))
    mask = (np.int64(1) << b) - 1
    base = t[1][e]
    r = np.int32(-1)
    while True:
        q = base + s
        v = rows[q, 2]
        if v == EMPTY:
            break
        if rows[q, 0] == c0 and rows[q, 1] == c1:
            r = np.int32(v)
            break
        s = (s + 1) & mask
    return r


@njit(cache=True)
def _find3(t, e, c0, c1, c2):  # type: ignore[no-untyped-def]
    rows, b, k = t[0], t[2][e], t[3][e]
    s = np.int64((((((c0 * k) ^ c1) * k) ^ c2) * _FIB) >> np.uint64(64 - b))
    mask = (np.int64(1) << b) - 1
    base = t[1][e]
    r = np.int32(-1)
    while True:
        q = base + s
        v = rows[q, 3]
        if v == EMPTY:
            break
        if rows[q, 0] == c0 and rows[q, 1] == c1 and rows[q, 2] == c2:
            r = np.int32(v)
            break
        s = (s + 1) & mask
    return r


@njit(cache=True)
def _find4(t, e, c0, c1, c2, c3):  # type: ignore[no-untyped-def]
    rows, b, k = t[0], t[2][e], t[3][e]
    s = np.int64((((((((c0 * k) ^ c1) * k) ^ c2) * k) ^ c3) * _FIB) >> np.uint64(64 - b))
    mask = (np.int64(1) << b) - 1
    base = t[1][e]
    r = np.int32(-1)
    while True:
        q = base + s
        v = rows[q, 4]
        if v == EMPTY:
            break
        if rows[q, 0] == c0 and rows[q, 1] == c1 and rows[q, 2] == c2 and rows[q, 3] == c3:
            r = np.int32(v)
            break
        s = (s + 1) & mask
    return r


@njit(cache=True, nogil=True)
def epochs(ts, bounds, out, counts):  # type: ignore[no-untyped-def]
    """``out[i]``: the number of change times ``<= ts[i]`` (``np.searchsorted(bounds, ts,
    side="right")``); ``counts[e]`` += the records of epoch ``e``."""
    nb = bounds.shape[0]
    e = 0
    for i in range(ts.shape[0]):
        t = ts[i]
        if not ((e == 0 or bounds[e - 1] <= t) and (e == nb or t < bounds[e])):
            lo, hi = 0, nb
            while lo < hi:
                mid = (lo + hi) >> 1
                if bounds[mid] <= t:
                    lo = mid + 1
                else:
                    hi = mid
            e = lo
        out[i] = e
        counts[e] += 1


@njit(cache=True, nogil=True)
def address_ids(ep, ip, table, out):  # type: ignore[no-untyped-def]
    """Answer of each record's address (hosts, devices), -1 for none or a null address."""
    words = ip[0]
    for i in range(ep.shape[0]):
        r = np.int32(-1)
        if _valid(ip, i):
            r = _find2(table, ep[i], words[i, 0], words[i, 1])
        out[i] = r


@njit(cache=True)
def _encap(encap, emap, i):  # type: ignore[no-untyped-def]
    """The encapsulation key component of record ``i`` (0: none, i.e. any)."""
    if _valid(encap, i):
        return emap[encap[0][i]]
    return _ZERO


@njit(cache=True, nogil=True)
def endpoint_ids(ep, wire, inner, encap, emap, vni, seg, alone, nets,  # type: ignore[no-untyped-def]
                 out):
    """Endpoint of each record: the inner address (the wire address if the record has no
    encapsulation) by (encapsulation, VNI, address), then (VNI, address); by the address
    alone where there is no VNI or one that no network has in that epoch."""
    for i in range(ep.shape[0]):
        e = ep[i]
        r = np.int32(-1)
        if _valid(encap, i):
            enc = emap[encap[0][i]]
            key = inner
        else:
            enc = _ZERO
            key = wire
        if _valid(key, i):
            w0 = key[0][i, 0]
            w1 = key[0][i, 1]
            if _valid(vni, i):
                v = vni[0][i]
                r = _find4(seg, e, enc, v, w0, w1)
                if r < 0 and enc != 0:
                    r = _find4(seg, e, _ZERO, v, w0, w1)
                if r < 0 and _find2(nets, e, _ZERO, v) < 0:
                    r = _find2(alone, e, w0, w1)
            else:
                r = _find2(alone, e, w0, w1)
        out[i] = r


@njit(cache=True, nogil=True)
def network_ids(ep, encap, emap, vni, nets, out):  # type: ignore[no-untyped-def]
    """Network of each record by (encapsulation, VNI), then VNI."""
    for i in range(ep.shape[0]):
        r = np.int32(-1)
        if _valid(vni, i):
            e = ep[i]
            v = vni[0][i]
            enc = _encap(encap, emap, i)
            r = _find2(nets, e, enc, v)
            if r < 0 and enc != 0:
                r = _find2(nets, e, _ZERO, v)
        out[i] = r


@njit(cache=True, nogil=True)
def interface_ids(ep, agent, ifx, fmt, table, out):  # type: ignore[no-untyped-def]
    """Interface of each record's (agent, ifIndex); none where ``fmt`` (the ifIndex's
    format, e.g. ``out_if_format``) is set and above 0 (not a port)."""
    words = agent[0]
    for i in range(ep.shape[0]):
        r = np.int32(-1)
        if _valid(agent, i) and _valid(ifx, i) and not (_valid(fmt, i) and fmt[0][i] > 0):
            r = _find3(table, ep[i], words[i, 0], words[i, 1], np.uint64(ifx[0][i]))
        out[i] = r

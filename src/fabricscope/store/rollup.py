"""The per-minute aggregate of packet records (``records_1m``), and the trace order of a
batch, computed with NumPy and numba.

Grouping a million records by minute and 17 key columns (five of them 16-byte addresses)
is the most expensive step of an append; a SQL GROUP BY spends ~2 µs per record here.
This does the same in a fraction of that: every key column becomes 64-bit words (an
address two), the words of a row are mixed into two independent 64-bit hashes, and the
rows, visited in the caller's order (trace order), are grouped by the first hash in an
open-addressing table (no sort): groups come out in the order of their first row. Rows of
a group must also agree on the second hash and the minute; if two different keys ever
shared the first hash (about one chance in 10^7 per million-row batch) that check fails
and the caller falls back to SQL (``None`` is returned). Two different keys would have to
collide on both hashes, 128 bits, to be merged: about one chance in 10^26 per batch.

``merge=True`` combines rows of ``records_1m`` itself (sums and min/max of the measures),
which is how compaction merges the aggregates of several batches.

Same semantics as ``records/ddl.py`` ``rollup_select("records_1m", ...)``: ``samples`` =
records, ``est_packets`` = sum of ``sampling_rate`` (1 when null), ``est_bytes`` = sum of
``frame_len`` (0 when null) times the rate, ``first_ts``/``last_ts`` = min/max ``ts``.

Trace order (``trace_sort``): (inner_src, inner_dst) pairs are numbered exactly (a hash
table on their words), only the distinct pairs are sorted, and the rows, in time order,
are placed by a stable counting sort on (partition, pair rank): the order of a lexsort on
(partition, inner_src, inner_dst, ts) at a third of its cost.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from fabricscope.records.arrow import schema_of
from fabricscope.records.ddl import RECORDS_1M_COLUMNS, RECORDS_1M_KEY

SCHEMA = schema_of(RECORDS_1M_COLUMNS)
MINUTE_NS = 60 * 10**9
_SEEDS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD6E8FEB86659FD93))
_MULS = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0xFF51AFD7ED558CCD))
_SHIFTS = (np.uint64(31), np.uint64(29))


@njit(cache=True, nogil=True)
def _hash_columns(words, s1, s2, m1, m2, r1, r2):  # type: ignore[no-untyped-def]
    """Two 64-bit hashes per row of the uint64 columns ``words`` (a tuple of arrays)."""
    n = words[0].shape[0]
    h = np.full(n, s1, np.uint64)
    g = np.full(n, s2, np.uint64)
    for j in range(len(words)):
        w = words[j]
        for i in range(n):
            a = (h[i] ^ w[i]) * m1
            h[i] = a ^ (a >> r1)
            b = (g[i] ^ w[i]) * m2
            g[i] = b ^ (b >> r2)
    for i in range(n):
        a = h[i] * m2
        h[i] = a ^ (a >> r2)
        b = g[i] * m1
        g[i] = b ^ (b >> r1)
    return h, g


@njit(cache=True, nogil=True)
def _group(h, g, minute, seq, s1, s2, s3, lo, hi):  # type: ignore[no-untyped-def]
    """Rows ``seq`` (in that order) grouped by their first hash ``h`` in an open-addressing
    table: groups numbered in the order of their first row. Per group: that first row,
    the sums of ``s1``/``s2``/``s3``, the min of ``lo`` and the max of ``hi``. Every row
    of a group must agree with its first row on ``g`` and ``minute``; if one does not
    (two keys sharing the first hash), the group count returned is -1."""
    n = seq.shape[0]
    cap = 16
    while cap < 2 * n:
        cap <<= 1
    mask = np.uint64(cap - 1)
    slots = np.full(cap, -1, np.int64)
    gh = np.empty(n, np.uint64)
    first = np.empty(n, np.int64)
    a = np.empty(n, np.uint64)
    b = np.empty(n, np.uint64)
    c = np.empty(n, np.uint64)
    mn = np.empty(n, np.int64)
    mx = np.empty(n, np.int64)
    ng = 0
    for k in range(n):
        i = seq[k]
        x = h[i]
        j = x & mask
        while True:
            gid = slots[j]
            if gid < 0:
                gid = ng
                ng += 1
                slots[j] = gid
                gh[gid] = x
                first[gid] = i
                a[gid] = s1[i]
                b[gid] = s2[i]
                c[gid] = s3[i]
                mn[gid] = lo[i]
                mx[gid] = hi[i]
                break
            if gh[gid] == x:
                f = first[gid]
                if g[f] != g[i] or minute[f] != minute[i]:
                    return -1, first, a, b, c, mn, mx
                a[gid] += s1[i]
                b[gid] += s2[i]
                c[gid] += s3[i]
                if lo[i] < mn[gid]:
                    mn[gid] = lo[i]
                if hi[i] > mx[gid]:
                    mx[gid] = hi[i]
                break
            j = (j + np.uint64(1)) & mask
    return ng, first[:ng], a[:ng], b[:ng], c[:ng], mn[:ng], mx[:ng]


def _words(col: pa.ChunkedArray) -> tuple[list[np.ndarray], np.ndarray]:
    """A column -> (64-bit words per row, validity). The words only need to be equal for
    equal values (they are hashed and compared, never read as numbers)."""
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(arr)
    valid = np.ones(n, bool) if arr.null_count == 0 else np.asarray(
        arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        # the code of a string is its rank among this table's distinct strings: stable
        # within the table, which is all the grouping needs
        enc = pc.dictionary_encode(arr)
        idx = np.asarray(enc.indices.fill_null(0).to_numpy(zero_copy_only=False))
        return [idx.astype(np.uint64)], valid
    if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        buf = arr.buffers()[1]
        raw = np.frombuffer(buf, dtype=np.uint64, count=2 * (arr.offset + n))
        raw = raw.reshape(-1, 2)[arr.offset:arr.offset + n]
        hi = np.ascontiguousarray(raw[:, 0])
        lo = np.ascontiguousarray(raw[:, 1])
        if not valid.all():
            hi[~valid] = 0
            lo[~valid] = 0
        return [hi, lo], valid
    if pa.types.is_integer(t) or pa.types.is_timestamp(t):
        vals = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False))
        return [vals.astype(np.uint64)], valid
    raise TypeError(f"cannot group by {t}")


def _u64(col: pa.ChunkedArray, fill: int) -> np.ndarray:
    return np.asarray(col.fill_null(fill).to_numpy(zero_copy_only=False)).astype(np.uint64)


def _i64(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def records_rollup(t: pa.Table, *, merge: bool = False, seq: np.ndarray | None = None,
                   sort_key: np.ndarray | None = None) -> pa.Table | None:
    """``records_1m`` rows for the records ``t`` (or, with ``merge``, for the
    ``records_1m`` rows ``t``); ``None`` means "use SQL instead". Groups come out in the
    order of their first row when the rows are visited in ``seq`` order (default: the
    table's order), then stably ordered by ``sort_key`` (one value per row of ``t``) of
    that first row, if given. So a table in trace order (or ``seq`` = its trace order)
    gives groups in trace order."""
    n = t.num_rows
    if n == 0:
        return SCHEMA.empty_table()
    names = set(t.column_names)  # key columns may be left out: all null
    ts = _i64(t.column("ts"))
    minute = ts if merge else ts - ts % MINUTE_NS
    words: list[np.ndarray] = [minute.view(np.uint64)]
    nullbits = np.zeros(n, np.uint64)
    try:
        for k, name in enumerate(RECORDS_1M_KEY):
            if name not in names:
                continue  # left out because all null: the same for every row
            ws, valid = _words(t.column(name))
            words.extend(ws)
            if not valid.all():
                nullbits[~valid] |= np.uint64(1 << k)
    except (TypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    words.append(nullbits)
    words = [np.require(w, np.uint64, ["C", "W"]) for w in words]  # one numba signature
    h, g = _hash_columns(tuple(words), _SEEDS[0], _SEEDS[1], _MULS[0], _MULS[1],
                         _SHIFTS[0], _SHIFTS[1])
    if merge:
        s1 = _u64(t.column("samples"), 0)
        s2 = _u64(t.column("est_packets"), 0)
        s3 = _u64(t.column("est_bytes"), 0)
        lo = _i64(t.column("first_ts"))
        hi = _i64(t.column("last_ts"))
    else:
        s1 = np.ones(n, np.uint64)
        s2 = _u64(t.column("sampling_rate"), 1) if "sampling_rate" in names else \
            np.ones(n, np.uint64)
        s3 = (_u64(t.column("frame_len"), 0) * s2 if "frame_len" in names else
              np.zeros(n, np.uint64))
        lo = hi = ts
    order = np.arange(n, dtype=np.int64) if seq is None else np.require(seq, np.int64, "C")
    ng, first, samples, est_packets, est_bytes, first_ts, last_ts = _group(
        h, g, minute, order, s1, s2, s3, lo, hi)
    if ng < 0:
        return None
    if sort_key is not None:
        kf = sort_key[first]
        if kf.size > 1 and not bool(np.all(kf[1:] >= kf[:-1])):
            by = np.argsort(kf, kind="stable")
            first = first[by]
            samples, est_packets, est_bytes = samples[by], est_packets[by], est_bytes[by]
            first_ts, last_ts = first_ts[by], last_ts[by]
    take = pa.array(first)
    tstype = pa.timestamp("ns", tz="UTC")
    cols: dict[str, pa.Array | pa.ChunkedArray] = {"ts": pa.array(minute[first], tstype)}
    for name in RECORDS_1M_KEY:
        if name in names:  # (missing ones: null, by conform_input)
            cols[name] = t.column(name).take(take)
    cols["samples"] = pa.array(samples)
    cols["est_packets"] = pa.array(est_packets)
    cols["est_bytes"] = pa.array(est_bytes)
    cols["first_ts"] = pa.array(first_ts, tstype)
    cols["last_ts"] = pa.array(last_ts, tstype)
    from fabricscope.store.conform import conform_input

    return conform_input(pa.table(cols), RECORDS_1M_COLUMNS)


def _ip_sort_words(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 16-byte address column -> (null flag, high word, low word) whose numeric order is
    the byte order of the addresses (the order of Parquet's min/max statistics); nulls
    are (0, 0, 0), first."""
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(arr)
    if arr.type != pa.binary(16):
        arr = arr.cast(pa.binary(16))
    raw = np.frombuffer(arr.buffers()[1], dtype=">u8", count=2 * (arr.offset + n))
    raw = raw.reshape(-1, 2)[arr.offset:arr.offset + n]
    hi = raw[:, 0].astype(np.uint64)
    lo = raw[:, 1].astype(np.uint64)
    if arr.null_count == 0:
        return np.ones(n, np.uint8), hi, lo
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    hi[~valid] = 0
    lo[~valid] = 0
    return valid.astype(np.uint8), hi, lo


@njit(cache=True, nogil=True)
def _factorize(words):  # type: ignore[no-untyped-def]
    """Each row's id among the distinct rows of the uint64 columns ``words`` (ids in the
    order of first appearance; equality is exact), and the first row of each id."""
    n = words[0].shape[0]
    cap = 16
    while cap < 2 * n:
        cap <<= 1
    mask = np.uint64(cap - 1)
    slots = np.full(cap, -1, np.int64)
    ids = np.empty(n, np.int64)
    firsts = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        x = np.uint64(0x9E3779B97F4A7C15)
        for w in words:
            a = (x ^ w[i]) * np.uint64(0xBF58476D1CE4E5B9)
            x = a ^ (a >> np.uint64(31))
        j = x & mask
        while True:
            p = slots[j]
            if p < 0:
                slots[j] = m
                firsts[m] = i
                ids[i] = m
                m += 1
                break
            f = firsts[p]
            same = True
            for w in words:
                if w[f] != w[i]:
                    same = False
                    break
            if same:
                ids[i] = p
                break
            j = (j + np.uint64(1)) & mask
    return ids, firsts[:m]


@njit(cache=True, nogil=True)
def _counting_order(key, buckets, seq):  # type: ignore[no-untyped-def]
    """The rows ``seq`` stably ordered by ``key`` (integers in [0, buckets))."""
    count = np.zeros(buckets + 1, np.int64)
    for i in range(key.shape[0]):
        count[key[i] + 1] += 1
    for b in range(buckets):
        count[b + 1] += count[b]
    out = np.empty(seq.shape[0], np.int64)
    for k in range(seq.shape[0]):
        i = seq[k]
        out[count[key[i]]] = i
        count[key[i]] += 1
    return out


def _pair_words(t: pa.Table) -> list[np.ndarray]:
    """(inner_src, inner_dst) as sort words, most significant first (a column left out
    because it was all null sorts as nulls: no words)."""
    words: list[np.ndarray] = []
    for name in ("inner_src", "inner_dst"):
        if name in t.column_names:
            words.extend(_ip_sort_words(t.column(name)))
    return words


def _sort_rows(words: list[np.ndarray]) -> np.ndarray:
    """An order of distinct rows by their unsigned words, most significant first: constant
    words are skipped, and narrow ones (IPv4-mapped addresses) are packed, after taking
    their minimum off, into as few 64-bit sort keys as they fit in."""
    keys: list[np.ndarray] = []
    cur: np.ndarray | None = None
    used = 0
    for w in words:
        w = w.astype(np.uint64, copy=False)
        lo, hi = int(w.min()), int(w.max())
        if lo == hi:
            continue
        bits = (hi - lo).bit_length()
        v = w - np.uint64(lo)
        if cur is not None and used + bits <= 64:
            cur = (cur << np.uint64(bits)) | v
            used += bits
        else:
            if cur is not None:
                keys.append(cur)
            cur, used = v, bits
    if cur is not None:
        keys.append(cur)
    if not keys:
        return np.arange(len(words[0]) if words else 0)
    if len(keys) == 1:
        return np.argsort(keys[0])
    return np.lexsort(tuple(reversed(keys)))


def trace_sort(t: pa.Table, step_ns: int | None = None
               ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Row order by (``ts // step_ns``, inner_src, inner_dst, ts) — with a partition step,
    each partition's rows are one contiguous run, in trace order — and each row's rank
    of its (inner_src, inner_dst) pair among the table's distinct pairs (in that order).
    The order is ``None`` if the table is already in it; the ranks are ``None`` if the
    table lacks both address columns (then there is one pair)."""
    n = t.num_rows
    if n == 0 or "ts" not in t.column_names:
        return None, None
    ts = _i64(t.column("ts"))
    # rows in time order (stable), then a stable counting sort by (partition, pair rank):
    # the same order as a lexsort on (partition, inner_src, inner_dst, ts), in O(n) but
    # for the sort of the distinct pairs
    seq = np.arange(n, dtype=np.int64)
    if n > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        seq = np.argsort(ts, kind="stable")
    rank = None
    key = np.zeros(n, np.int64)
    pairs = 1
    words = _pair_words(t)
    if words:
        ids, firsts = _factorize(tuple(np.require(w, np.uint64, "C") for w in words))
        pairs = len(firsts)
        by = _sort_rows([w[firsts] for w in words])  # the distinct pairs
        prank = np.empty(pairs, np.int64)
        prank[by] = np.arange(pairs)
        rank = prank[ids]
        key = rank
    if step_ns is not None:
        part = ts // step_ns
        lo, hi = int(part.min()), int(part.max())
        if lo != hi:
            key = (part - lo) * pairs + key
            pairs *= hi - lo + 1
    if pairs == 1:
        order = seq
    elif pairs <= 4 * n + (1 << 20):
        order = _counting_order(key, pairs, seq)
    else:  # sparse partitions: sort the keys
        order = seq[np.argsort(key[seq], kind="stable")]
    if np.array_equal(order, np.arange(n)):
        return None, rank
    return order, rank


def trace_order(t: pa.Table) -> np.ndarray | None:
    """Row order by (inner_src, inner_dst, ts): one inner flow's rows end up together, so a
    trace reads one row group of a file instead of all of them. ``None`` if the table
    lacks those columns or is already in that order."""
    names = set(t.column_names)
    if t.num_rows < 2 or "ts" not in names or not names & {"inner_src", "inner_dst"}:
        return None  # (an all-null column may have been left out: it sorts as nulls)
    return trace_sort(t)[0]


def inverse(order: np.ndarray) -> np.ndarray:
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank


def sort_for_trace(t: pa.Table) -> pa.Table:
    order = trace_order(t)
    return t if order is None else t.take(pa.array(order))

"""The per-minute aggregate of packet records (``records_1m``), computed with NumPy.

Grouping a million records by minute and 17 key columns (five of them 16-byte addresses)
is the most expensive step of an append; a SQL GROUP BY spends ~2 µs per record here.
This does the same in a fraction of that: every key column becomes 64-bit words (an
address two), the words of a row are mixed into two independent 64-bit hashes, rows are
sorted by the first, and groups are runs of equal first hashes. Rows of a group must also
agree on the second hash; if two different keys ever shared the first hash (about one
chance in 10^7 per million-row batch) that check fails and the caller falls back to SQL
(``None`` is returned). Two different keys would have to collide on both hashes, 128 bits,
to be merged: about one chance in 10^26 per batch.

``merge=True`` combines rows of ``records_1m`` itself (sums and min/max of the measures),
which is how compaction merges the aggregates of several batches.

Same semantics as ``records/ddl.py`` ``rollup_select("records_1m", ...)``: ``samples`` =
records, ``est_packets`` = sum of ``sampling_rate`` (1 when null), ``est_bytes`` = sum of
``frame_len`` (0 when null) times the rate, ``first_ts``/``last_ts`` = min/max ``ts``.
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


def records_rollup(t: pa.Table, *, merge: bool = False, rank: np.ndarray | None = None
                   ) -> pa.Table | None:
    """``records_1m`` rows for the records ``t`` (or, with ``merge``, for the
    ``records_1m`` rows ``t``); ``None`` means "use SQL instead". Groups come out in the
    order of their first row in ``rank`` (a row -> position map, e.g. the inverse of
    :func:`trace_order`), else in no particular order."""
    n = t.num_rows
    if n == 0:
        return SCHEMA.empty_table()
    ts = _i64(t.column("ts"))
    minute = ts if merge else ts - ts % MINUTE_NS
    words: list[np.ndarray] = [minute.view(np.uint64)]
    nullbits = np.zeros(n, np.uint64)
    try:
        for k, name in enumerate(RECORDS_1M_KEY):
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
    order = np.argsort(h, kind="stable")
    hs = h[order]
    same = hs[1:] == hs[:-1]  # row i+1 is in the group of row i
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    first = order[starts]
    if rank is not None:  # groups in the caller's order: starts/first permuted alike
        by = np.argsort(rank[first], kind="stable")
    else:
        by = None
    if same.any():  # the second hash and the minute must agree within every group
        for w in (g, minute):
            srt = w[order]
            if np.any((srt[1:] != srt[:-1]) & same):
                return None

    if merge:
        samples = np.add.reduceat(_u64(t.column("samples"), 0)[order], starts)
        est_packets = np.add.reduceat(_u64(t.column("est_packets"), 0)[order], starts)
        est_bytes = np.add.reduceat(_u64(t.column("est_bytes"), 0)[order], starts)
        first_ts = np.minimum.reduceat(_i64(t.column("first_ts"))[order], starts)
        last_ts = np.maximum.reduceat(_i64(t.column("last_ts"))[order], starts)
    else:
        sr = _u64(t.column("sampling_rate"), 1)
        fl = _u64(t.column("frame_len"), 0)
        samples = np.diff(np.append(starts, n)).astype(np.uint64)
        est_packets = np.add.reduceat(sr[order], starts)
        est_bytes = np.add.reduceat((fl * sr)[order], starts)
        ts_sorted = ts[order]
        first_ts = np.minimum.reduceat(ts_sorted, starts)
        last_ts = np.maximum.reduceat(ts_sorted, starts)

    if by is not None:
        first = first[by]
        samples, est_packets, est_bytes = samples[by], est_packets[by], est_bytes[by]
        first_ts, last_ts = first_ts[by], last_ts[by]
    take = pa.array(first)
    tstype = pa.timestamp("ns", tz="UTC")
    cols: dict[str, pa.Array | pa.ChunkedArray] = {"ts": pa.array(minute[first], tstype)}
    for name in RECORDS_1M_KEY:
        cols[name] = t.column(name).take(take)
    cols["samples"] = pa.array(samples.astype(np.uint64))
    cols["est_packets"] = pa.array(est_packets.astype(np.uint64))
    cols["est_bytes"] = pa.array(est_bytes.astype(np.uint64))
    cols["first_ts"] = pa.array(first_ts, tstype)
    cols["last_ts"] = pa.array(last_ts, tstype)
    from fabricscope.store.conform import conform_input

    return conform_input(pa.table(cols), RECORDS_1M_COLUMNS)


def _ip_sort_words(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 16-byte address column -> (null flag, high word, low word) whose numeric order is
    the byte order of the addresses (the order of Parquet's min/max statistics)."""
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(arr)
    if arr.type != pa.binary(16):
        arr = arr.cast(pa.binary(16))
    valid = np.ones(n, bool) if arr.null_count == 0 else np.asarray(
        arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    raw = np.frombuffer(arr.buffers()[1], dtype=">u8", count=2 * (arr.offset + n))
    raw = raw.reshape(-1, 2)[arr.offset:arr.offset + n]
    hi = raw[:, 0].astype(np.uint64)
    lo = raw[:, 1].astype(np.uint64)
    return (~valid).astype(np.uint8) ^ 1, hi, lo  # nulls (0) first


def trace_order(t: pa.Table) -> np.ndarray | None:
    """Row order by (inner_src, inner_dst, ts): one inner flow's rows end up together, so a
    trace reads one row group of a file instead of all of them. ``None`` if the table
    lacks those columns or is already in that order."""
    names = set(t.column_names)
    if t.num_rows < 2 or "ts" not in names or not names & {"inner_src", "inner_dst"}:
        return None  # (an all-null column may have been left out: it sorts as nulls)
    keys: list[np.ndarray] = [_i64(t.column("ts"))]
    for name in ("inner_dst", "inner_src"):  # lexsort: the last key is the primary one
        if name in names:
            null, hi, lo = _ip_sort_words(t.column(name))
            keys.extend([lo, hi, null])
    order = np.lexsort(tuple(keys))
    if np.array_equal(order, np.arange(t.num_rows)):
        return None
    return order


def inverse(order: np.ndarray) -> np.ndarray:
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank


def sort_for_trace(t: pa.Table) -> pa.Table:
    order = trace_order(t)
    return t if order is None else t.take(pa.array(order))

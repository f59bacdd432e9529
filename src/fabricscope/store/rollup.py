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

Same semantics as ``records/ddl.py`` ``rollup_select("records_1m", ...)``: ``samples`` =
records, ``est_packets`` = sum of ``sampling_rate`` (1 when null), ``est_bytes`` = sum of
``frame_len`` (0 when null) times the rate, ``first_ts``/``last_ts`` = min/max ``ts``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fabricscope.records.arrow import schema_of
from fabricscope.records.ddl import RECORDS_1M_COLUMNS, RECORDS_1M_KEY

SCHEMA = schema_of(RECORDS_1M_COLUMNS)
MINUTE_NS = 60 * 10**9
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_N1 = np.uint64(0xD6E8FEB86659FD93)
_N2 = np.uint64(0xFF51AFD7ED558CCD)
_N3 = np.uint64(0xC4CEB9FE1A85EC53)


def _mix(h: np.ndarray, w: np.ndarray, m: np.uint64, r: np.uint64) -> np.ndarray:
    h ^= w
    h *= m
    h ^= h >> r
    return h


def _words(col: pa.ChunkedArray) -> tuple[list[np.ndarray], np.ndarray]:
    """A column -> (64-bit words per row, validity)."""
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(arr)
    valid = np.ones(n, bool) if arr.null_count == 0 else np.asarray(
        arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        enc = pc.dictionary_encode(arr)
        idx = np.asarray(enc.indices.fill_null(0).to_numpy(zero_copy_only=False),
                         dtype=np.int64)
        # the code of a string is its rank among this table's distinct strings: stable
        # within the table, which is all the grouping needs
        return [idx.astype(np.uint64)], valid
    if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        buf = arr.buffers()[1]
        raw = np.frombuffer(buf, dtype=">u8", count=2 * (arr.offset + n))
        raw = raw.reshape(-1, 2)[arr.offset:arr.offset + n]
        hi = raw[:, 0].astype(np.uint64)
        lo = raw[:, 1].astype(np.uint64)
        if not valid.all():
            hi = np.where(valid, hi, np.uint64(0))
            lo = np.where(valid, lo, np.uint64(0))
        return [hi, lo], valid
    if pa.types.is_integer(t) or pa.types.is_timestamp(t):
        vals = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False))
        return [vals.astype(np.int64).view(np.uint64) if vals.dtype.kind == "i"
                else vals.astype(np.uint64)], valid
    raise TypeError(f"cannot group by {t}")


def records_rollup(t: pa.Table) -> pa.Table | None:
    """``records_1m`` rows for the records ``t``; ``None`` means "use SQL instead"."""
    n = t.num_rows
    if n == 0:
        return SCHEMA.empty_table()
    ts = np.asarray(t.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False),
                    dtype=np.int64)
    minute = ts - ts % MINUTE_NS
    words: list[np.ndarray] = [minute.view(np.uint64)]
    nullbits = np.zeros(n, np.uint64)
    try:
        for k, name in enumerate(RECORDS_1M_KEY):
            ws, valid = _words(t.column(name))
            words.extend(ws)
            if not valid.all():
                nullbits |= np.where(valid, np.uint64(0), np.uint64(1 << k))
    except (TypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    words.append(nullbits)
    h = np.full(n, _M1, np.uint64)
    g = np.full(n, _N1, np.uint64)
    r1, r2 = np.uint64(31), np.uint64(29)
    with np.errstate(over="ignore"):
        for w in words:
            h = _mix(h, w, _M2, r1)
            g = _mix(g, w, _N2, r2)
        h = _mix(h, np.zeros(1, np.uint64), _M3, r2)
        g = _mix(g, np.zeros(1, np.uint64), _N3, r1)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    same = hs[1:] == hs[:-1]  # row i+1 is in the group of row i
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    first = order[starts]
    if same.any():  # the second hash and the minute must agree within every group
        for w in (g, minute):
            srt = w[order]
            if np.any((srt[1:] != srt[:-1]) & same):
                return None

    sr = t.column("sampling_rate")
    fl = t.column("frame_len")
    sr_v = np.asarray(sr.fill_null(1).to_numpy(zero_copy_only=False), dtype=np.uint64)
    fl_v = np.asarray(fl.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.uint64)
    samples = np.diff(np.append(starts, n)).astype(np.uint64)
    est_packets = np.add.reduceat(sr_v[order], starts)
    est_bytes = np.add.reduceat((fl_v * sr_v)[order], starts)
    ts_sorted = ts[order]
    first_ts = np.minimum.reduceat(ts_sorted, starts)
    last_ts = np.maximum.reduceat(ts_sorted, starts)

    take = pa.array(first)
    cols: dict[str, pa.Array | pa.ChunkedArray] = {
        "ts": pa.array(minute[first], pa.timestamp("ns", tz="UTC")),
    }
    for name in RECORDS_1M_KEY:
        cols[name] = t.column(name).take(take)
    cols["samples"] = pa.array(samples)
    cols["est_packets"] = pa.array(est_packets.astype(np.uint64))
    cols["est_bytes"] = pa.array(est_bytes.astype(np.uint64))
    cols["first_ts"] = pa.array(first_ts, pa.timestamp("ns", tz="UTC"))
    cols["last_ts"] = pa.array(last_ts, pa.timestamp("ns", tz="UTC"))
    from fabricscope.store.conform import conform_input

    out = pa.table(cols)
    return conform_input(out, RECORDS_1M_COLUMNS)

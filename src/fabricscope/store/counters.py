"""Deltas between two polls of one interface's counters: wraps and resets handled.

sFlow interface counters are absolute values; what people want is rates (bits/s,
packets/s, errors/s, utilisation). The writer keeps the last poll of every interface
(agent, ifIndex) and derives, for every new poll, the time since the previous one and the
increase of each counter, stored next to the poll (records/ddl.py ``COUNTER_DERIVED_COLUMNS``)
so that rates, and their per-minute sums in ``counters_1m``, are one query away.

Rules (vectorised over the batch, polls taken in time order per interface):

* interval: agent uptime difference when both polls carry it (``uptime_ms`` is 32-bit:
  a decrease matching the receive-time difference is an uptime wrap after 49.7 days),
  else the receive-time difference;
* reset: uptime went down (agent restart), or a counter went down in a way that is not a
  plausible wrap: the poll gets ``reset = true`` and null deltas;
* 32-bit counters (packets, errors, discards) that go down wrap at 2^32 when the wrapped
  increase is plausible: below 2^31 and, when the speed is known, within twice what the
  link could carry in the interval;
* 64-bit octet counters that go down: both values below 2^32 -> an agent exporting a
  32-bit counter in the 64-bit field, wrap at 2^32; else a wrap at 2^64 only when the
  wrapped increase is plausible (same test); anything else is a reset;
* the first poll of an interface has null deltas.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fabricscope.records.arrow import schema_of
from fabricscope.records.ddl import COUNTER_DELTA_NAMES, STORED_COUNTER_COLUMNS
from fabricscope.store.conform import empty_table

BITS64 = frozenset({"in_octets", "out_octets"})
STATE_COLUMNS: tuple[str, ...] = (
    "agent", "ifindex", "ts", "uptime_ms", "speed",
    *dict.fromkeys(s for _, _, srcs in COUNTER_DELTA_NAMES for s in srcs),
)
_STORED = schema_of(STORED_COUNTER_COLUMNS)
STATE_SCHEMA = pa.schema([_STORED.field(c) for c in STATE_COLUMNS])

U32 = np.uint64(1 << 32)
M32 = np.uint64((1 << 32) - 1)
HALF32 = np.uint64(1 << 31)
HALF64 = np.uint64(1 << 63)


def _u64(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Arrow integer column -> (uint64 values with 0 for null, valid mask)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    vals = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False)).astype(np.uint64)
    return vals, valid


def _agent_keys(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if arr.type != pa.binary(16):
        arr = arr.cast(pa.binary(16))
    hi = np.zeros(n, np.uint64)
    lo = np.zeros(n, np.uint64)
    if n:
        buf = arr.buffers()[1]
        raw = np.frombuffer(buf, dtype=">u8", count=2 * (arr.offset + n))
        raw = raw.reshape(-1, 2)[arr.offset:arr.offset + n]
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        hi = np.where(valid, raw[:, 0].astype(np.uint64), np.uint64(0))
        lo = np.where(valid, raw[:, 1].astype(np.uint64), np.uint64(0))
    return hi, lo


def _arrow_u64(vals: np.ndarray, valid: np.ndarray) -> pa.Array:
    return pa.array(vals.astype(np.uint64), type=pa.uint64(), mask=~valid)


class CounterState:
    """Last poll per interface; :meth:`derive` adds the derived columns to a batch."""

    def __init__(self) -> None:
        self.table: pa.Table = empty_table(STATE_SCHEMA)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def load(self, polls: pa.Table) -> None:
        """Start from stored polls (any number per interface: the last one is kept)."""
        _, state = self.derive(polls, keep_state=False)
        self.table = state

    def derive(self, batch: pa.Table, *, keep_state: bool = True
               ) -> tuple[pa.Table, pa.Table]:
        """``batch`` (stored counter columns, derived ones null) -> (the batch with the
        derived columns filled, the new state). The state is not changed here: the caller
        sets ``self.table`` once the batch is committed."""
        n = batch.num_rows
        base = self.table if keep_state else empty_table(STATE_SCHEMA)
        m = base.num_rows
        comb = pa.concat_tables([base, batch.select(list(STATE_COLUMNS)).cast(STATE_SCHEMA)])
        total = m + n
        is_new = np.zeros(total, bool)
        is_new[m:] = True
        hi, lo = _agent_keys(comb.column("agent"))
        ifx, ifx_ok = _u64(comb.column("ifindex"))
        ifx = np.where(ifx_ok, ifx, np.uint64((1 << 64) - 1))
        ts = np.asarray(comb.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False),
                        dtype=np.int64)
        # sort: interface, then time; on equal times the stored state comes first
        order = np.lexsort((is_new, ts, ifx, lo, hi))
        same = np.zeros(total, bool)
        if total > 1:
            a, b = order[1:], order[:-1]
            same[1:] = (hi[a] == hi[b]) & (lo[a] == lo[b]) & (ifx[a] == ifx[b])
        prev = np.empty(total, np.int64)
        prev[0] = 0
        prev[1:] = order[:-1]
        cur = order

        up, up_ok = _u64(comb.column("uptime_ms"))
        speed, speed_ok = _u64(comb.column("speed"))
        dts_ms = (ts[cur] - ts[prev]) / 1e6
        up_c, up_p = up[cur], up[prev]
        have_up = same & up_ok[cur] & up_ok[prev]
        up_delta = (up_c - up_p) & M32  # modulo 2^32
        up_down = have_up & (up_c < up_p)
        up_wrap = up_down & (np.abs(up_delta.astype(np.float64) - dts_ms)
                             <= np.maximum(10_000.0, 0.2 * np.abs(dts_ms)))
        reset = up_down & ~up_wrap
        interval = np.where(have_up, up_delta.astype(np.float64), dts_ms)
        interval_ok = same & (interval > 0)
        secs = np.where(interval_ok, interval / 1000.0, 0.0)
        spd = np.where(speed_ok[cur], speed[cur], np.uint64(0)).astype(np.float64)

        deltas: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        wrapped = np.zeros(total, np.uint8)
        for src in dict.fromkeys(s for _, _, srcs in COUNTER_DELTA_NAMES for s in srcs):
            v, ok = _u64(comb.column(src))
            c, p = v[cur], v[prev]
            both = same & ok[cur] & ok[prev]
            down = both & (c < p)
            d = c - p  # uint64 arithmetic: modulo 2^64
            octets = src in BITS64
            per_sec = spd / 8.0 if octets else spd / (8.0 * 64.0)
            limit = np.where(spd > 0, per_sec * secs * 2.0 + 1e6, np.inf)
            d32 = (c - p) & M32
            if octets:
                small = (p < U32) & (c < U32)
                w32 = down & small & (d32 < HALF32) & (d32.astype(np.float64) <= limit)
                w64 = down & ~small & (d < HALF64) & (d.astype(np.float64) <= limit)
            else:
                w32 = down & (d32 < HALF32) & (d32.astype(np.float64) <= limit)
                w64 = np.zeros(total, bool)
            reset |= down & ~w32 & ~w64
            d = np.where(w32, d32, d)
            wrapped |= np.where(w32 & both, np.uint8(1), np.uint8(0))
            wrapped |= np.where(w64 & both, np.uint8(2), np.uint8(0))
            deltas[src] = (d, both)

        out_cols: dict[str, pa.Array] = {}
        good = same & ~reset
        out_cols["interval_ms"] = _arrow_u64(np.round(np.where(good & interval_ok,
                                                                interval, 0)),
                                             good & interval_ok)
        for name, _doc, srcs in COUNTER_DELTA_NAMES:
            acc = np.zeros(total, np.uint64)
            anyok = np.zeros(total, bool)
            for s in srcs:
                d, ok = deltas[s]
                acc += np.where(ok, d, np.uint64(0))
                anyok |= ok
            out_cols[name] = _arrow_u64(acc, anyok & good)
        out_cols["wrapped"] = pa.array(np.where(good, wrapped, 0).astype(np.uint8))
        out_cols["reset"] = pa.array(reset & same)

        # back to batch order: position k in sorted order is comb row order[k]
        inv = np.empty(total, np.int64)
        inv[order] = np.arange(total)
        take = inv[m:]  # sorted positions of the batch rows, in batch order
        result = batch
        for name, arr in out_cols.items():
            col = arr.take(pa.array(take))
            idx = result.schema.get_field_index(name)
            f = _STORED.field(name)
            if idx >= 0:
                result = result.set_column(idx, f, col.cast(f.type))
            else:
                result = result.append_column(f, col.cast(f.type))

        # new state: the last poll of every interface (in sorted order)
        last = np.ones(total, bool)
        if total > 1:
            last[:-1] = ~same[1:]
        state = comb.take(pa.array(order[last]))
        return result, state

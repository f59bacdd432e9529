"""Arrow batches from the sFlow walk: records (the packet schema) and counters.

Flow and discard samples become record batches with exactly the packet record schema
(``records.arrow.packet_batch`` over the slot matrix, so the two never drift apart).
Counter samples become the counters batch, whose columns are ``records.schema.
COUNTER_COLUMNS`` filled from the counters matrix of ``sflow/layout.py``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa

from fabricscope.decode.common import no_refcount
from fabricscope.records.arrow import COUNTER_SCHEMA, STR_TYPE, dict_array
from fabricscope.records.schema import COUNTER_COLUMNS, KIND_COUNTERS, KIND_NAMES, Column
from fabricscope.sflow.events import EV_TOO_MANY_PORT_NAMES
from fabricscope.sflow.layout import C_NAME_LEN, C_NAME_OFF, COUNTER_IP_SLOTS, COUNTER_SLOTS

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
MAX_NAMES = 32767
"""Distinct port names a counters batch can hold (its dictionary indexes are int16)."""


@no_refcount
def name_codes(off: np.ndarray, ln: np.ndarray, n: int, buf: np.ndarray, codes: np.ndarray,
               first: np.ndarray, table: np.ndarray) -> tuple[int, int]:
    """Dictionary-encode the port names of rows ``0 .. n`` (bytes ``buf[off:off + ln]``;
    ``off < 0``: no name) without a Python object per row: ``codes[i]`` = the name's
    index among the distinct names (-1: none), ``first[u]`` = the first row holding
    distinct name ``u``. ``table`` (a power of two of -1 values, more than ``n``) is
    the open-addressing scratch. Returns (distinct names, rows left out): at most
    :data:`MAX_NAMES` names are numbered, a row whose name would be a further one gets
    -1 and is counted as left out. A name reaching past ``buf`` counts as none (the
    walk never records one)."""
    mask = table.shape[0] - 1
    nbuf = buf.shape[0]
    u = 0
    left_out = 0
    for i in range(n):
        o = off[i]
        k = ln[i]
        if k < 0:
            k = 0
        if o < 0 or o + k > nbuf:
            codes[i] = -1
            continue
        h = _FNV_OFFSET
        for p in range(o, o + k):
            h = (h ^ np.uint64(buf[p])) * _FNV_PRIME
        s = np.int64(h >> np.uint64(1)) & mask
        while True:
            f = table[s]
            if f < 0:
                if u >= MAX_NAMES:
                    codes[i] = -1
                    left_out += 1
                    break
                table[s] = i
                first[u] = i
                codes[i] = u
                u += 1
                break
            fo = off[f]
            fk = ln[f]
            if fk < 0:
                fk = 0
            same = fk == k
            if same:
                for t in range(k):
                    if buf[fo + t] != buf[o + t]:
                        same = False
                        break
            if same:
                codes[i] = codes[f]
                break
            s = (s + 1) & mask
    return u, left_out


def _names(cm: np.ndarray, n: int, buf: np.ndarray,
           ev: np.ndarray | None = None) -> pa.Array:
    """Port names (0:1005) as a dictionary<int16, string> array; bytes that are not UTF-8
    are replaced (U+FFFD), never an error; beyond :data:`MAX_NAMES` distinct names, the
    further ones are null and counted in ``ev`` as ``sflow_too_many_port_names``. Encoded in one compiled pass over the rows
    (``name_codes``): only the distinct names become Arrow strings, so a batch costs
    microseconds, not the ~260 us of Arrow's own dictionary encoding plus casts."""
    off = np.ascontiguousarray(cm[C_NAME_OFF, :n])
    ln = np.ascontiguousarray(cm[C_NAME_LEN, :n])
    if n == 0 or not (off >= 0).any():
        return pa.nulls(n, STR_TYPE)
    size = 1 << max(4, (2 * n).bit_length())
    codes = np.empty(n, np.int16)
    first = np.empty(n, np.int64)
    u, left_out = name_codes(off, ln, n, buf, codes, first, np.full(size, -1, np.int64))
    if left_out and ev is not None:
        ev[EV_TOO_MANY_PORT_NAMES] += left_out
    rows = first[:u]
    lens = np.maximum(ln[rows], 0)
    offsets = np.zeros(u + 1, dtype=np.int32)
    np.cumsum(lens, out=offsets[1:])
    total = int(offsets[-1])
    rec = np.repeat(np.arange(u), lens)
    data = (buf[np.arange(total) - offsets[:-1][rec] + off[rows][rec]] if total
            else np.zeros(0, np.uint8))
    uniques = pa.StringArray.from_buffers(u, pa.py_buffer(offsets), pa.py_buffer(data))
    try:  # valid UTF-8 (the usual case): checked in Arrow, no Python strings
        uniques.validate(full=True)
    except pa.ArrowInvalid:
        raw = pa.BinaryArray.from_buffers(pa.binary(), u,
                                          [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        uniques = pa.array([v.decode("utf-8", errors="replace") for v in raw.to_pylist()],
                           pa.string())
    valid = codes >= 0
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    indices = pa.Array.from_buffers(pa.int16(), n, [validity, pa.py_buffer(codes)])
    return pa.DictionaryArray.from_arrays(indices, uniques)


def _counter_columns() -> tuple[Column, ...]:
    """The counters batch's columns that come from the counters matrix, each with its
    row there (``kind`` and ``port_name`` are built apart)."""
    cols = []
    for c in COUNTER_COLUMNS:
        if c.type == "ip":
            cols.append(replace(c, ip=COUNTER_IP_SLOTS[c.name]))
        elif c.name in COUNTER_SLOTS:
            cols.append(replace(c, slot=COUNTER_SLOTS[c.name]))
    return tuple(cols)


_COLUMNS: tuple[Column, ...] | None = None
_KIND: dict[int, pa.Array] = {}


def _kind(n: int) -> pa.Array:
    """``kind`` = counters for ``n`` rows (immutable: one per length is kept)."""
    a = _KIND.get(n)
    if a is None:
        if len(_KIND) > 64:
            _KIND.clear()
        a = _KIND[n] = dict_array(np.full(n, KIND_COUNTERS, np.int64), KIND_NAMES)
    return a


def counter_batch(cm: np.ndarray, n: int, buf: np.ndarray,
                  ev: np.ndarray | None = None) -> pa.RecordBatch:
    """The counters batch from the first ``n`` rows of counters matrix ``cm``; ``buf`` is
    the buffer the datagrams were decoded from (for port names); ``ev``: the event
    counters (``sflow_too_many_port_names``). No buffer of the result
    shares memory with ``cm``: the columns are packed into a batch of their own
    (``records.arrow.PacketColumns``, one import into Arrow), then ``kind`` and
    ``port_name`` join them."""
    from fabricscope.records.arrow import PacketColumns

    global _COLUMNS
    if _COLUMNS is None:
        _COLUMNS = _counter_columns()
    pc = PacketColumns(n, _COLUMNS)
    pc.add(cm, n, 0)
    batch = pc.finish()  # in COUNTER_COLUMNS' order, kind and port_name left out
    # two columns added in place (a list of the columns, then a batch made of them,
    # cost ~200 us a batch in Python wrappers)
    for pos, c in enumerate(COUNTER_COLUMNS):
        if c.name == "kind":
            batch = batch.add_column(pos, COUNTER_SCHEMA.field(pos), _kind(n))
        elif c.name == "port_name":
            batch = batch.add_column(pos, COUNTER_SCHEMA.field(pos), _names(cm, n, buf, ev))
    return batch


def empty_counter_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=COUNTER_SCHEMA)

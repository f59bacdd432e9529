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

from fabricscope.records.arrow import COUNTER_SCHEMA, STR_TYPE, dict_array
from fabricscope.records.schema import COUNTER_COLUMNS, KIND_COUNTERS, KIND_NAMES, Column
from fabricscope.sflow.layout import C_NAME_LEN, C_NAME_OFF, COUNTER_IP_SLOTS, COUNTER_SLOTS


def _names(cm: np.ndarray, n: int, buf: np.ndarray) -> pa.Array:
    """Port names (0:1005) as a dictionary<int16, string> array; bytes that are not UTF-8
    are replaced (U+FFFD), never an error."""
    off = cm[C_NAME_OFF, :n]
    valid = off >= 0
    if not valid.any():
        return pa.nulls(n, STR_TYPE)
    ln = np.where(valid, np.maximum(cm[C_NAME_LEN, :n], 0), 0)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(ln, out=offsets[1:])
    total = int(offsets[-1])
    rec = np.repeat(np.arange(n), ln)
    pos = np.arange(total) - offsets[:-1][rec] + off[rec]
    data = buf[pos] if total else np.zeros(0, np.uint8)
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    raw = pa.BinaryArray.from_buffers(pa.binary(), n,
                                      [validity, pa.py_buffer(offsets), pa.py_buffer(data)])
    enc = raw.dictionary_encode()
    try:  # valid UTF-8 (the usual case): checked and cast in Arrow, no Python strings
        uniques = enc.dictionary.cast(pa.string())
    except pa.ArrowInvalid:
        uniques = pa.array([b.decode("utf-8", errors="replace")
                            for b in enc.dictionary.to_pylist()], pa.string())
    return pa.DictionaryArray.from_arrays(enc.indices.cast(pa.int16()), uniques)


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


def counter_batch(cm: np.ndarray, n: int, buf: np.ndarray) -> pa.RecordBatch:
    """The counters batch from the first ``n`` rows of counters matrix ``cm``; ``buf`` is
    the buffer the datagrams were decoded from (for port names). No buffer of the result
    shares memory with ``cm``: the columns are packed into a batch of their own
    (``records.arrow.PacketColumns``, one import into Arrow), then ``kind`` and
    ``port_name`` join them."""
    from fabricscope.records.arrow import PacketColumns

    global _COLUMNS
    if _COLUMNS is None:
        _COLUMNS = _counter_columns()
    pc = PacketColumns(n, _COLUMNS)
    pc.add(cm, n, 0)
    columns = pc.finish().columns  # in COUNTER_COLUMNS' order, kind and port_name left out
    arrays = []
    k = 0
    for c in COUNTER_COLUMNS:
        if c.name == "kind":
            arrays.append(_kind(n))
        elif c.name == "port_name":
            arrays.append(_names(cm, n, buf))
        else:
            arrays.append(columns[k])
            k += 1
    return pa.RecordBatch.from_arrays(arrays, schema=COUNTER_SCHEMA)


def empty_counter_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=COUNTER_SCHEMA)

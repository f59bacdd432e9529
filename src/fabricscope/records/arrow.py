"""Arrow schema from the column table, and the batch builder: slot matrix -> Arrow.

No Python object per record: every column is a NumPy slice of the decoder's matrix turned
into an Arrow array (with a validity mask from the -1 sentinel), IPs are packed into
16-byte fixed-size binaries with NumPy, strings are dictionary arrays over a small
name table, and the ``tunnels`` list is built from offsets and flattened struct fields.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from fabricscope.decode import slots as S
from fabricscope.decode.events import EV_NAMES
from fabricscope.decode.protocols import TUNNEL_NAMES
from fabricscope.records.schema import (
    COUNTER_COLUMNS,
    KIND_NAMES,
    PACKET_COLUMNS,
    TUNNEL_FIELDS,
    Column,
    LogicalType,
)

_NP: dict[str, type] = {
    "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64, "i64": np.int64,
    "mac": np.uint64,
}

IP_TYPE = pa.binary(16)
TS_TYPE = pa.timestamp("ns", tz="UTC")
STR_TYPE = pa.dictionary(pa.int16(), pa.string())


def arrow_type(t: LogicalType) -> pa.DataType:
    if t == "ts":
        return TS_TYPE
    if t == "ip":
        return IP_TYPE
    if t == "bool":
        return pa.bool_()
    if t == "str":
        return STR_TYPE
    if t == "bin":
        return pa.binary()
    if t == "tunnels":
        return TUNNELS_TYPE
    return pa.from_numpy_dtype(np.dtype(_NP[t]))


TUNNEL_STRUCT = pa.struct([pa.field(n, arrow_type(t)) for n, t, _ in TUNNEL_FIELDS])
TUNNELS_TYPE = pa.list_(TUNNEL_STRUCT)


def schema_of(columns: Sequence[Column], *, stored_only: bool = False) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, arrow_type(c.type), metadata={"doc": c.doc})
         for c in columns if c.stored or not stored_only]
    )


PACKET_SCHEMA = schema_of(PACKET_COLUMNS)
PACKET_STORED_SCHEMA = schema_of(PACKET_COLUMNS, stored_only=True)
COUNTER_SCHEMA = schema_of(COUNTER_COLUMNS)


# --- builders -----------------------------------------------------------------------------

def _validity(mask_valid: np.ndarray) -> pa.Buffer | None:
    if mask_valid.all():
        return None
    return pa.py_buffer(np.packbits(mask_valid, bitorder="little"))


def ip_array(hi: np.ndarray, lo: np.ndarray, valid: np.ndarray) -> pa.Array:
    """int64 hi/lo halves -> fixed_size_binary(16) (network byte order), null where invalid."""
    n = hi.shape[0]
    packed = np.empty((n, 2), dtype=">u8")
    packed[:, 0] = hi.view(np.uint64)
    packed[:, 1] = lo.view(np.uint64)
    if not valid.all():
        packed[~valid] = 0
    data = pa.py_buffer(packed.view(np.uint8).reshape(-1))
    return pa.FixedSizeBinaryArray.from_buffers(IP_TYPE, n, [_validity(valid), data])


def scalar_array(vals: np.ndarray, t: LogicalType) -> pa.Array:
    valid = vals >= 0
    if t == "mac":
        valid = vals != -1
    if t == "ts":
        return pa.array(vals, type=TS_TYPE)
    if t == "bool":
        return pa.array(vals > 0, type=pa.bool_())
    arr: np.ndarray = vals.astype(_NP[t], copy=False) if t == "i64" else vals.astype(_NP[t])
    if t in ("i64", "u64"):
        # 64-bit ids (an STT context) may have the top bit set: only -1 means absent
        valid = vals != -1
    if valid.all():
        return pa.array(arr)
    return pa.array(arr, mask=~valid)


def dict_array(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    """Integer codes (-1 = null, 0 = null for tunnel type) -> dictionary<int16, string>."""
    valid = codes > 0 if names is TUNNEL_NAMES or names is EV_NAMES else codes >= 0
    idx = np.where(valid, codes, 0).astype(np.int16)
    indices = pa.array(idx, mask=~valid) if not valid.all() else pa.array(idx)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names), pa.string()))


def _tunnels_array(m: np.ndarray, n: int) -> pa.Array:
    depth = np.clip(m[S.M_DEPTH, :n], 0, S.MAX_DEPTH)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(depth, out=offsets[1:])
    sel = np.arange(S.MAX_DEPTH)[None, :] < depth[:, None]  # (n, depth)

    def field(f: int) -> np.ndarray:
        rows = np.stack([m[S.tun_slot(k, f), :n] for k in range(S.MAX_DEPTH)], axis=1)
        picked: np.ndarray = rows[sel]
        return picked

    children: list[pa.Array] = []
    for _name, t, f in TUNNEL_FIELDS:
        if t == "ip":
            hi = field(f)
            lo = field(f + 1)
            ver = field(S.T_IPVER)
            children.append(ip_array(hi, lo, ver > 0))
        elif t == "str":  # the tunnel type: always set for a layer that exists
            children.append(dict_array(field(f), TUNNEL_NAMES))
        else:
            children.append(scalar_array(field(f), t))
    struct = pa.StructArray.from_arrays(children, fields=list(TUNNEL_STRUCT))
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=TUNNELS_TYPE)


def _geneve_array(m: np.ndarray, n: int, buf: np.ndarray) -> pa.Array:
    off = m[S.M_GENEVE_OFF, :n]
    ln = np.where(off >= 0, np.maximum(m[S.M_GENEVE_LEN, :n], 0), 0)
    valid = off >= 0
    if not valid.any():
        return pa.nulls(n, pa.binary())
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(ln, out=offsets[1:])
    total = int(offsets[-1])
    # gather the option bytes: index of every byte = start of its record + position
    rec = np.repeat(np.arange(n), ln)
    pos = np.arange(total) - offsets[:-1][rec] + off[rec]
    data = buf[pos] if total else np.zeros(0, np.uint8)
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def packet_batch(m: np.ndarray, n: int, buf: np.ndarray | None = None,
                 columns: Sequence[Column] = PACKET_COLUMNS) -> pa.RecordBatch:
    """Build the packet record batch from the first ``n`` records of slot matrix ``m``.

    ``buf`` is the byte buffer the frames were decoded from (for the GENEVE options); the
    offsets in ``m`` refer to it.
    """
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for c in columns:
        if c.type == "ip":
            assert c.ip is not None
            hi, lo, ver = c.ip
            arr = ip_array(m[hi, :n], m[lo, :n], m[ver, :n] > 0)
        elif c.type == "tunnels":
            arr = _tunnels_array(m, n)
        elif c.type == "bin":
            arr = _geneve_array(m, n, buf) if buf is not None else pa.nulls(n, pa.binary())
        elif c.name == "encap":
            arr = dict_array(m[c.slot, :n], TUNNEL_NAMES)
        elif c.name == "error":
            arr = dict_array(m[c.slot, :n], EV_NAMES)
        elif c.name == "kind":
            codes = m[c.slot, :n]
            arr = dict_array(np.where(codes < 0, 0, codes), KIND_NAMES)
        else:
            arr = scalar_array(m[c.slot, :n], c.type)
        arrays.append(arr)
        fields.append(pa.field(c.name, arrow_type(c.type)))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def empty_packet_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=PACKET_SCHEMA)

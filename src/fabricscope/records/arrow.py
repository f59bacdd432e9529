"""Arrow schema from the column table, and the batch builder: slot matrix -> Arrow.

No Python object per record: every column is a NumPy slice of the decoder's matrix turned
into an Arrow array (with a validity mask from the -1 sentinel), IPs are packed into
16-byte fixed-size binaries with NumPy, strings are dictionary arrays over a small
name table, and the ``tunnels`` list is built from offsets and flattened struct fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def _primitive(t: pa.DataType, data: np.ndarray, valid: np.ndarray) -> pa.Array:
    """A primitive array over ``data`` (its own buffer) with validity ``valid``."""
    n = data.shape[0]
    nulls = n - int(np.count_nonzero(valid))
    if nulls == n and n:
        return pa.nulls(n, t)
    bitmap = None if nulls == 0 else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(t, n, [bitmap, pa.py_buffer(np.ascontiguousarray(data))],
                                 null_count=nulls)


def scalar_array(vals: np.ndarray, t: LogicalType) -> pa.Array:
    if t == "ts":
        return pa.Array.from_buffers(TS_TYPE, vals.shape[0],
                                     [None, pa.py_buffer(np.array(vals, np.int64))])
    if t == "bool":
        return pa.Array.from_buffers(pa.bool_(), vals.shape[0], [
            None, pa.py_buffer(np.packbits(vals > 0, bitorder="little"))])
    # 64-bit values (an STT context id, a MAC) may use every bit: only -1 means absent
    valid = vals != -1 if t in ("i64", "u64", "mac") else vals >= 0
    return _primitive(arrow_type(t), vals.astype(_NP[t]), valid)


_DICTIONARIES: dict[int, pa.Array] = {}


def _dictionary(names: Sequence[str]) -> pa.Array:
    """The string array of a name table, built from buffers (``pa.array`` on a list
    imports pandas to look for pandas objects: 0.3 s and 40 MB for the first batch)."""
    d = _DICTIONARIES.get(id(names))
    if d is None:
        raw = [name.encode() for name in names]
        offsets = np.zeros(len(raw) + 1, np.int32)
        np.cumsum([len(b) for b in raw], out=offsets[1:])
        d = pa.StringArray.from_buffers(len(raw), pa.py_buffer(offsets),
                                        pa.py_buffer(b"".join(raw)))
        _DICTIONARIES[id(names)] = d
    return d


def dict_array(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    """Integer codes (-1 = null, 0 = null for tunnel type) -> dictionary<int16, string>."""
    valid = codes > 0 if names is TUNNEL_NAMES or names is EV_NAMES else codes >= 0
    idx = np.where(valid, codes, 0).astype(np.int16)
    return pa.DictionaryArray.from_arrays(_primitive(pa.int16(), idx, valid),
                                          _dictionary(names))


# --- the packet batch builder: numba passes into typed buffers, chunk by chunk ---------------
#
# ``PacketColumns(n)`` holds, for ``n`` records, one typed buffer per column (grouped by
# value width so each column is a zero-copy row of a 2-D array) and its validity bitmap.
# ``add(m, c, at)`` fills records ``at .. at + c`` from the first ``c`` columns of a slot
# matrix in one numba pass per group (value, validity bit, null count together);
# ``finish()`` wraps the buffers as Arrow arrays. ``packet_batch(m, n)`` is one ``add`` of
# the whole matrix; ``PacketDecoder.decode`` adds a small chunk matrix at a time, so the
# int64 matrix never leaves the CPU caches (one pass over a 16k-record matrix in memory
# costs more than decoding it).

R_NONNEG = 0  # present when >= 0 (u8/u16/u32)
R_NOT_M1 = 1  # present unless -1 (u64, i64, mac)
R_POSITIVE = 2  # present when > 0 (encap, error dictionary codes; the tunnel type)
R_ALWAYS = 3  # always present (ts); the rules from here on are always present
R_KIND = 4  # always present, negative -> 0 (kind)
R_BOOL = 5  # always present, 1 when > 0 (truncated)

_WIDTH = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "i64": 8, "mac": 8, "ts": 8, "str": 2,
          "bool": 1}
_WDTYPE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.int64}


_NULLS: dict[tuple[str, int], pa.Array] = {}


def _nulls(t: pa.DataType, n: int) -> pa.Array:
    """An all-null array (immutable, so one per type and length is shared)."""
    key = (str(t), n)
    a = _NULLS.get(key)
    if a is None:
        if len(_NULLS) > 256:
            _NULLS.clear()
        a = _NULLS[key] = pa.nulls(n, t)
    return a


def _rule(c: Column) -> int:
    if c.type == "str":
        return R_KIND if c.name == "kind" else R_POSITIVE
    if c.type == "ts":
        return R_ALWAYS
    if c.type == "bool":
        return R_BOOL
    if c.type in ("u64", "i64", "mac"):
        return R_NOT_M1
    return R_NONNEG


class _Plan:
    """The columns of a batch grouped for the numba passes."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        groups: dict[int, list[int]] = {}
        for pos, c in enumerate(self.columns):
            if c.type in ("ip", "tunnels", "bin"):
                continue
            groups.setdefault(_WIDTH[c.type], []).append(pos)
        self.groups = {
            w: (pos, np.array([self.columns[p].slot for p in pos], np.int64),
                np.array([_rule(self.columns[p]) for p in pos], np.int64))
            for w, pos in groups.items()}
        # per group, what wrapping each column takes: (position, kind, Arrow type,
        # dictionary or None); kind: _PLAIN, _DICT (int16 codes into a name table) or
        # _BOOL (values 0/1, packed into bits)
        self.specs = {
            w: [(p, _kind(self.columns[p]), arrow_type(self.columns[p].type),
                 _dictionary(_DICT_OF[self.columns[p].name])
                 if self.columns[p].type == "str" else None) for p in pos]
            for w, (pos, _s, _r) in self.groups.items()}
        # which columns an sFlow-less (plain packet) batch can skip: 0 = sFlow
        self.no_sflow = {w: np.array([self.columns[p].group != "sflow" for p in pos],
                                     np.uint8) for w, (pos, _s, _r) in self.groups.items()}
        self.all_on = {w: np.ones(len(pos), np.uint8)
                       for w, (pos, _s, _r) in self.groups.items()}
        self.ips = [p for p, c in enumerate(self.columns) if c.type == "ip"]
        ipc = [self.columns[p].ip for p in self.ips]
        self.ip_slots = tuple(np.array([t[k] for t in ipc if t is not None], np.int64)
                              for k in range(3))
        self.ip_no_sflow = np.array([self.columns[p].group != "sflow" for p in self.ips],
                                    np.uint8)
        self.ip_all_on = np.ones(len(self.ips), np.uint8)
        self.tunnels = any(c.type == "tunnels" for c in self.columns)
        self.geneve = any(c.type == "bin" for c in self.columns)
        self.fields = [pa.field(c.name, arrow_type(c.type)) for c in self.columns]
        self.schema = pa.schema(self.fields)


_PLAIN, _DICT, _BOOL = 0, 1, 2


def _kind(c: Column) -> int:
    return _DICT if c.type == "str" else _BOOL if c.type == "bool" else _PLAIN


_PLANS: dict[tuple[str, ...], _Plan] = {}
_TUNNEL_COLUMNS = tuple(
    Column(name, t, "tunnel", "", slot=f, ip=(f, f + 1, S.T_IPVER) if t == "ip" else None)
    for name, t, f in TUNNEL_FIELDS)
_DICT_OF: dict[str, Sequence[str]] = {"encap": TUNNEL_NAMES, "error": EV_NAMES,
                                      "kind": KIND_NAMES, "type": TUNNEL_NAMES}


def _plan(columns: Sequence[Column]) -> _Plan:
    key = tuple(c.name for c in columns)
    plan = _PLANS.get(key)
    if plan is None or plan.columns != tuple(columns):
        plan = _PLANS[key] = _Plan(columns)
    return plan


def _padded(n: int) -> int:
    """Row length for ``n`` values: rounded up to 16, plus 8. Rows of a 2-D buffer whose
    stride is a multiple of 4 KiB (16,384 or 65,536 values...) map the same position of
    every row to the same cache set, so writing one value per row, as the packers do,
    evicts the others (the slot matrix showed it: see ``decode.padded_width``)."""
    return (max(n, 1) + 15) // 16 * 16 + 8


class PacketColumns:
    """Typed column buffers for ``n`` records, filled from slot matrices chunk by chunk
    (``add``), then turned into a record batch (``finish``)."""

    def __init__(self, n: int, columns: Sequence[Column] = PACKET_COLUMNS) -> None:
        self.n = n
        self.plan = _plan(columns)
        nb = _padded((n + 7) >> 3)
        # rows padded off multiples of 4 KiB (see _padded): the packers write every
        # column of a record, one row apart
        self.values = {w: np.empty((len(pos), _padded(n)), _WDTYPE[w])
                       for w, (pos, _s, _r) in self.plan.groups.items()}
        self.bits = {w: np.zeros((len(pos), nb), np.uint8)  # the packers OR bits in
                     for w, (pos, _s, _r) in self.plan.groups.items()}
        self.nulls = {w: np.zeros(len(pos), np.int64)
                      for w, (pos, _s, _r) in self.plan.groups.items()}
        k = len(self.plan.ips)
        self.ip_values = np.empty((k, _padded(n), 2), np.int64)
        self.ip_bits = np.zeros((k, nb), np.uint8)
        self.ip_nulls = np.zeros(k, np.int64)
        if self.plan.tunnels or self.plan.geneve:
            self.offsets = np.zeros(n + 1, np.int32)
            self.layers = np.empty((S.NT, _padded(n * S.MAX_DEPTH)), np.int64)
            self.gof = np.empty(max(n, 1), np.int64)
            self.glen = np.empty(max(n, 1), np.int64)
        self.nlayers = 0
        self.skip: set[int] = set()

    def add(self, m: np.ndarray, c: int, at: int = 0, *, sflow: bool = True) -> None:
        """Records ``at .. at + c`` from the first ``c`` columns of slot matrix ``m``. ``sflow=False``: the records are plain packets, whose
        sFlow slots are all absent: they are not read."""
        if c <= 0:
            return
        from fabricscope.records.packing import pack_ips, pack_layers, pack_scalars

        plan = self.plan
        for w, (_pos, slots, rules) in plan.groups.items():
            on = plan.all_on[w] if sflow else plan.no_sflow[w]
            pack_scalars(m, c, at, slots, rules, on, self.values[w], self.bits[w],
                          self.nulls[w])
        if plan.ips:
            his, los, vers = plan.ip_slots
            on = plan.ip_all_on if sflow else plan.ip_no_sflow
            pack_ips(m, c, at, his, los, vers, on, self.ip_values, self.ip_bits,
                      self.ip_nulls)
        if plan.tunnels or plan.geneve:
            self.nlayers = pack_layers(m, c, at, self.nlayers, self.offsets, self.layers,
                                        self.gof, self.glen)

    def fused_args(self, sflow: bool) -> tuple[Any, ...]:
        """The column buffers in the argument order of ``decode.fused.walk_and_pack``:
        per value width (1, 2, 4, 8 bytes) slots, rules, active flags, values, bits and
        null counts; then the IP columns; then the tunnel layers."""
        plan = self.plan
        args: list[Any] = []
        for w, dt in _WDTYPE.items():
            if w in plan.groups:
                _pos, slots, rules = plan.groups[w]
                on = plan.all_on[w] if sflow else plan.no_sflow[w]
                args += [slots, rules, on, self.values[w], self.bits[w], self.nulls[w]]
            else:  # no column of that width: empty groups, same types
                e = np.zeros(0, np.int64)
                args += [e, e, np.zeros(0, np.uint8), np.zeros((0, 1), dt),
                         np.zeros((0, 1), np.uint8), e]
        his, los, vers = plan.ip_slots
        args += [his, los, vers, plan.ip_all_on if sflow else plan.ip_no_sflow,
                 self.ip_values, self.ip_bits, self.ip_nulls]
        layers = plan.tunnels or plan.geneve
        if layers:
            args += [True, self.offsets, self.layers, self.gof, self.glen]
        else:
            e = np.zeros(1, np.int64)
            args += [False, np.zeros(1, np.int32), np.zeros((1, 1), np.int64), e, e]
        return tuple(args)

    def _scalars(self, out: list[pa.Array | None]) -> None:
        """Wrap the scalar columns into ``out`` (by position): one Arrow buffer over each
        width group's values and one over its bitmaps, sliced per column (a buffer per
        column and the per-column lookups took about half of the time of wrapping a
        batch, a few microseconds a column)."""
        n = self.n
        nb = (n + 7) >> 3
        int16 = pa.int16()
        for w, specs in self.plan.specs.items():
            vals = self.values[w]
            bits = self.bits[w]
            vbuf = pa.py_buffer(vals)  # C-contiguous rows: column j at j * row bytes
            bbuf = pa.py_buffer(bits)
            vrow = vals.shape[1] * w
            brow = bits.shape[1]
            nulls = self.nulls[w].tolist()
            for j, (p, kind, t, names) in enumerate(specs):
                nl = nulls[j]
                if kind == _BOOL:
                    out[p] = pa.Array.from_buffers(t, n, [None, pa.py_buffer(
                        np.packbits(vals[j, :n], bitorder="little"))])
                    continue
                if nl == n and n:
                    out[p] = _nulls(t, n) if names is None else \
                        pa.DictionaryArray.from_arrays(_nulls(int16, n), names)
                    continue
                validity = None if nl == 0 else bbuf.slice(j * brow, nb)
                data = vbuf.slice(j * vrow, n * w)
                if names is None:
                    out[p] = pa.Array.from_buffers(t, n, [validity, data], null_count=nl)
                else:
                    out[p] = pa.DictionaryArray.from_arrays(
                        pa.Array.from_buffers(int16, n, [validity, data], null_count=nl),
                        names)

    def _ip(self, k: int) -> pa.Array:
        n = self.n
        nulls = int(self.ip_nulls[k])
        if nulls == n and n:
            return _nulls(IP_TYPE, n)
        validity = None if nulls == 0 else pa.py_buffer(self.ip_bits[k, :(n + 7) >> 3])
        return pa.Array.from_buffers(IP_TYPE, n, [
            validity, pa.py_buffer(self.ip_values[k, :n].reshape(-1).view(np.uint8))],
            null_count=nulls)

    def _tunnels(self) -> pa.Array:
        total = self.nlayers
        tc = PacketColumns(total, _TUNNEL_COLUMNS)
        # the whole (C-contiguous) matrix, of which the packers read the first ``total``
        # columns: a view of those columns is strided, and the packers compiled for
        # strided rows do not vectorise (three times slower)
        tc.add(self.layers, total, 0)
        struct = pa.StructArray.from_arrays(tc.arrays(), fields=list(TUNNEL_STRUCT))
        offsets = pa.Array.from_buffers(pa.int32(), self.n + 1,
                                        [None, pa.py_buffer(self.offsets)])
        return pa.ListArray.from_arrays(offsets, struct, type=TUNNELS_TYPE)

    def _geneve(self, buf: np.ndarray | None) -> pa.Array:
        n = self.n
        gof = self.gof[:n]
        if buf is None or n == 0 or int(gof.max()) < 0:
            return _nulls(pa.binary(), n)
        from fabricscope.records.packing import gather_options

        offsets = np.empty(n + 1, np.int32)
        data = gather_options(buf, gof, self.glen[:n], n, offsets)
        return pa.BinaryArray.from_buffers(pa.binary(), n, [
            _validity(gof >= 0), pa.py_buffer(offsets), pa.py_buffer(data)])

    def arrays(self, buf: np.ndarray | None = None) -> list[pa.Array]:
        plan = self.plan
        out: list[pa.Array | None] = [None] * len(plan.columns)
        self._scalars(out)
        for k, p in enumerate(plan.ips):
            out[p] = self._ip(k)
        for p, c in enumerate(plan.columns):
            if c.type == "tunnels":
                out[p] = self._tunnels()
            elif c.type == "bin":
                out[p] = self._geneve(buf)
        return [a for a in out if a is not None]

    def finish(self, buf: np.ndarray | None = None) -> pa.RecordBatch:
        """The record batch (``buf``: the bytes the frames were decoded from, for the
        GENEVE options; the offsets in the matrices refer to it)."""
        return pa.RecordBatch.from_arrays(self.arrays(buf), schema=self.plan.schema)


def packet_batch(m: np.ndarray, n: int, buf: np.ndarray | None = None,
                 columns: Sequence[Column] = PACKET_COLUMNS) -> pa.RecordBatch:
    """Build the packet record batch from the first ``n`` records of slot matrix ``m``.

    ``buf`` is the byte buffer the frames were decoded from (for the GENEVE options); the
    offsets in ``m`` refer to it. The batch never shares memory with ``m``.
    """
    pc = PacketColumns(n, columns)
    pc.add(m, n, 0)
    return pc.finish(buf)


def empty_packet_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=PACKET_SCHEMA)

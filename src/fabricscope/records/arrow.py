"""Arrow schema from the column table, and the batch builder: slot matrix -> Arrow.

No Python object per record: every column is a NumPy slice of the decoder's matrix turned
into an Arrow array (with a validity mask from the -1 sentinel), IPs are packed into
16-byte fixed-size binaries with NumPy, strings are dictionary arrays over a small
name table, and the ``tunnels`` list is built from offsets and flattened struct fields.
"""

from __future__ import annotations

import threading
import weakref
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
    """The Arrow schema of ``columns`` (remembered: the stores conform every batch to
    one, and building it costs a millisecond)."""
    hit = _SCHEMAS.get((id(columns), stored_only))
    if hit is not None and hit[0] is columns:  # (the same object: not a reused id)
        return hit[1]
    got = pa.schema(
        [pa.field(c.name, arrow_type(c.type), metadata={"doc": c.doc})
         for c in columns if c.stored or not stored_only]
    )
    if isinstance(columns, tuple) and len(_SCHEMAS) < 64:  # (a list may change)
        _SCHEMAS[(id(columns), stored_only)] = (columns, got)
    return got


_SCHEMAS: dict[tuple[int, bool], tuple[Sequence[Column], pa.Schema]] = {}


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
        self.layout: Any = None
        self.source: Sequence[Column] | None = None  # the tuple it was last found for
        """``records.cdata.Layout``: the batch's C structs, made at the first batch."""


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
    # the same (immutable) column table as last time, the usual case: no comparison of
    # its ~110 columns per batch
    plan = _LAST.get(id(columns))
    if plan is not None and plan.source is columns:
        return plan
    key = tuple(c.name for c in columns)
    plan = _PLANS.get(key)
    if plan is None or plan.columns != tuple(columns):
        plan = _PLANS[key] = _Plan(columns)
    if isinstance(columns, tuple):
        if len(_LAST) > 64:
            _LAST.clear()
        plan.source = columns
        _LAST[id(columns)] = plan
    return plan


_LAST: dict[int, _Plan] = {}


def _padded(n: int) -> int:
    """Row length for ``n`` values: rounded up to 16, plus 8. Rows of a 2-D buffer whose
    stride is a multiple of 4 KiB (16,384 or 65,536 values...) map the same position of
    every row to the same cache set, so writing one value per row, as the packers do,
    evicts the others (the slot matrix showed it: see ``decode.padded_width``)."""
    return (max(n, 1) + 15) // 16 * 16 + 8


class _LayersScratch(threading.local):
    """Each thread's reusable tunnel-layer matrix (``PacketColumns.layers``): a flat
    int64 buffer and the ``PacketColumns`` using it (a weak reference: one that was
    dropped without ``finish`` frees it too)."""

    buf: np.ndarray | None = None
    user: Any = None


_LAYERS = _LayersScratch()


def _layers_matrix(pc: PacketColumns, width: int) -> np.ndarray:
    """An ``(S.NT, width)`` C-contiguous int64 scratch matrix for ``pc``: the thread's
    reused buffer when no other live ``PacketColumns`` holds it, else a new one.

    It is 11 rows of 4 slots per record (5 MB for a batch of 16,384 records), written and
    read again by every batch: allocated afresh each time, the C library mapped it anew
    whenever its size crossed the mmap threshold, and every page was faulted in again
    (measured in docs/sflow.md). The buffer stays with the thread, as large as its
    largest batch needed (at most 23 MB, for the sFlow decoder's 65,536 records)."""
    size = S.NT * width
    user = _LAYERS.user() if _LAYERS.user is not None else None
    if user is not None and user is not pc:
        return np.empty((S.NT, width), np.int64)
    buf = _LAYERS.buf
    if buf is None or buf.shape[0] < size:
        buf = _LAYERS.buf = np.empty(max(size, 0 if buf is None else buf.shape[0] * 2),
                                     np.int64)
    _LAYERS.user = weakref.ref(pc)
    return buf[:size].reshape(S.NT, width)


def _release_layers(pc: PacketColumns) -> None:
    if _LAYERS.user is not None and _LAYERS.user() is pc:
        _LAYERS.user = None


class PacketColumns:
    """Typed column buffers for ``n`` records, filled from slot matrices chunk by chunk
    (``add``, or the fused walks through ``fused_args``), then turned into a record
    batch (``finish``). The buffers Arrow keeps (values, validity bitmaps, IP values,
    the tunnel list's offsets) are one block of C memory that the batch takes over
    (``records/cdata.py``); the tunnel layers' int64 matrix is scratch."""

    def __init__(self, n: int, columns: Sequence[Column] = PACKET_COLUMNS) -> None:
        from fabricscope.records.cdata import Block, round_up

        self.n = n
        self.plan = plan = _plan(columns)
        width = _padded(n)
        # rows padded off multiples of 4 KiB (see _padded): the packers write every
        # column of a record, one row apart
        nb = _padded((n + 7) >> 3)
        k_ip = len(plan.ips)
        counts = {w: len(pos) for w, (pos, _s, _r) in plan.groups.items()}
        nbits = nb * (sum(counts.values()) + k_ip)
        at = [round_up(nbits)]  # the bitmaps first: zeroed at once

        def take(size: int) -> int:
            start = at[0]
            at[0] += round_up(size)
            return start

        spots = {w: take(k * width * w) for w, k in counts.items()}
        ip_at = take(k_ip * width * 16)
        offsets_at = take(4 * (n + 1)) if plan.tunnels else 0
        self.block = Block(at[0])
        mem = self.block.mem
        mem[:nbits] = 0  # the packers OR bits in
        bit_rows = mem[:nbits].reshape(-1, nb)
        self.values: dict[int, np.ndarray] = {}
        self.bits: dict[int, np.ndarray] = {}
        self.nulls: dict[int, np.ndarray] = {}
        self.null_counts = np.zeros(len(bit_rows), np.int64)  # groups', then the IPs'
        row = 0
        base = self.block.address
        where: list[tuple[int, int, int, int]] = []  # cdata._fill's groups
        for w, k in counts.items():
            self.values[w] = mem[spots[w]:spots[w] + k * width * w].view(
                _WDTYPE[w]).reshape(k, width)
            self.bits[w] = bit_rows[row:row + k]
            self.nulls[w] = self.null_counts[row:row + k]
            where.append((base + spots[w], width * w, base + row * nb, nb))
            row += k
        self.ip_values = mem[ip_at:ip_at + k_ip * width * 16].view(np.int64).reshape(
            k_ip, width, 2)
        self.ip_bits = bit_rows[row:row + k_ip]
        self.ip_nulls = self.null_counts[row:row + k_ip]
        where.append((base + ip_at, width * 16, base + row * nb, nb))
        self._where = where
        if plan.tunnels or plan.geneve:
            self.offsets = (mem[offsets_at:offsets_at + 4 * (n + 1)].view(np.int32)
                            if plan.tunnels else np.zeros(n + 1, np.int32))
            self.offsets[:1] = 0
            self.layers = _layers_matrix(self, _padded(n * S.MAX_DEPTH))
            self.gof = np.empty(max(n, 1), np.int64)
            self.glen = np.empty(max(n, 1), np.int64)
        self.nlayers = 0

    def groups(self) -> np.ndarray:
        """Per value width, then for the IPs: (values address, row stride, bitmaps
        address, row stride) in bytes."""
        return np.array(self._where, np.int64)

    def add(self, m: np.ndarray, c: int, at: int = 0, *, sflow: bool = True) -> None:
        """Records ``at .. at + c`` from the first ``c`` columns of slot matrix ``m``.
        ``sflow=False``: the records are plain packets, whose sFlow slots are all absent:
        they are not read."""
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

    def _geneve(self, buf: np.ndarray | None) -> tuple[int, int, Any]:
        """The GENEVE options column: (null count, bytes, block with its validity,
        offsets and bytes, or None when no record has options)."""
        n = self.n
        if buf is None or n == 0:
            return n, 0, None
        from fabricscope.records.cdata import binary_block
        from fabricscope.records.packing import gather_options, options_size

        gof, glen = self.gof[:n], self.glen[:n]
        size, present = options_size(gof, glen)
        if present == 0:
            return n, 0, None
        block, valid, offsets, data = binary_block(n, size)
        gather_options(buf, gof, glen, valid, offsets, data)
        return n - present, size, block

    def finish(self, buf: np.ndarray | None = None) -> pa.RecordBatch:
        """The record batch (``buf``: the bytes the frames were decoded from, for the
        GENEVE options; the offsets in the matrices refer to it). The batch takes the
        column memory over: this object is empty afterwards."""
        from fabricscope.records.cdata import Layout, record_batch

        plan = self.plan
        blocks = [self.block]
        tunnels = None
        if plan.tunnels:
            # the whole (C-contiguous) matrix, of which the packers read the first
            # ``nlayers`` columns: a view of those columns is strided, and the packers
            # compiled for strided rows do not vectorise (three times slower)
            tunnels = PacketColumns(self.nlayers, _TUNNEL_COLUMNS)
            if self.nlayers:  # one compiled call for all the fields
                from fabricscope.records.packing import pack_chunk

                args = (self.layers, self.nlayers, 0, *tunnels.fused_args(sflow=True), 0)
                pack_chunk(*args)
            blocks.append(tunnels.block)
        binary = self._geneve(buf) if plan.geneve else (self.n, 0, None)
        if binary[2] is not None:
            blocks.append(binary[2])
        if plan.layout is None:
            plan.layout = Layout(plan, _plan(_TUNNEL_COLUMNS))
        batch = record_batch(self, plan.layout, plan.schema, tunnels, binary, blocks)
        _release_layers(self)  # the next batch may reuse the tunnel-layer scratch
        self.__dict__.clear()  # no view of memory that Arrow owns now
        return batch


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

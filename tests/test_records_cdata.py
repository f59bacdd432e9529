"""The record batches assembled through the Arrow C data interface (``records/cdata.py``)
equal batches built value by value in Python from the same slot matrix (the reference
below knows nothing of the packers, the buffers or the C structs); they pass Arrow's full
validation, outlive everything that made them, are freed when dropped (on any thread),
and never carry bytes that were not written (an all-null column reads zeros)."""

from __future__ import annotations

import gc
import os
import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from fabricscope.decode import PacketDecoder
from fabricscope.decode import slots as S
from fabricscope.records.arrow import (
    _DICT_OF,
    R_ALWAYS,
    R_BOOL,
    R_KIND,
    R_NONNEG,
    R_NOT_M1,
    R_POSITIVE,
    PacketColumns,
    _rule,
    arrow_type,
    packet_batch,
)
from fabricscope.records.schema import PACKET_COLUMNS, TUNNEL_FIELDS, Column
from framehelp import frames_from_bytes
from matrixhelp import random_matrix
from test_decode_cases import CASES

MASK = (1 << 64) - 1


def _present(v: int, rule: int) -> bool:
    if rule == R_NONNEG:
        return v >= 0
    if rule == R_NOT_M1:
        return v != -1
    if rule == R_POSITIVE:
        return v > 0
    assert rule in (R_ALWAYS, R_KIND, R_BOOL)
    return True


def _column(c: Column, m: np.ndarray, n: int, base: int = 0) -> pa.Array:
    """Column ``c`` of records 0..n-1, slots read at ``base + c.slot``."""
    t = arrow_type(c.type)
    if c.type == "ip":
        assert c.ip is not None
        hi, lo, ver = (base + s for s in c.ip)
        return pa.array([(int(m[hi, i]) & MASK).to_bytes(8, "big")
                         + (int(m[lo, i]) & MASK).to_bytes(8, "big")
                         if m[ver, i] > 0 else None for i in range(n)], t)
    rule = _rule(c)
    vals = [int(v) for v in m[base + c.slot, :n]]
    if c.type == "bool":
        return pa.array([v > 0 for v in vals], t)
    if c.type == "str":
        names = _DICT_OF[c.name]
        codes = [(max(v, 0) if rule == R_KIND else v) if _present(v, rule) else None
                 for v in vals]
        return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int16()),
                                              pa.array(list(names), pa.string()))
    if c.type in ("u64", "mac"):
        return pa.array([v & MASK if _present(v, rule) else None for v in vals], t)
    bits = t.bit_width
    if bits < 64:  # the packers keep the low bits (the walk never writes wider values)
        vals = [v & ((1 << bits) - 1) if v >= 0 else v for v in vals]
    return pa.array([v if _present(v, rule) else None for v in vals], t)


def reference(m: np.ndarray, n: int, buf: np.ndarray | None = None) -> pa.RecordBatch:
    """The packet batch of slot matrix ``m``, value by value."""
    arrays = []
    fields = [Column(name, t, "tunnel", "", slot=f,
                     ip=(f, f + 1, S.T_IPVER) if t == "ip" else None)
              for name, t, f in TUNNEL_FIELDS]
    for c in PACKET_COLUMNS:
        if c.type == "tunnels":
            offsets = [0]
            parts: list[list[pa.Array]] = [[] for _ in fields]
            for i in range(n):
                d = min(max(int(m[S.M_DEPTH, i]), 0), S.MAX_DEPTH)
                offsets.append(offsets[-1] + d)
                for k in range(d):
                    one = np.ascontiguousarray(m[:, i:i + 1])
                    for f, field in enumerate(fields):
                        parts[f].append(_column(field, one, 1, S.TUN + k * S.NT))
            kids = [pa.concat_arrays(p) if p else _column(fields[f], m, 0)
                    for f, p in enumerate(parts)]
            struct = pa.StructArray.from_arrays(kids, names=[f.name for f in fields])
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), struct))
        elif c.type == "bin":
            got: list[bytes | None] = []
            for i in range(n):
                o, ln = int(m[S.M_GENEVE_OFF, i]), int(m[S.M_GENEVE_LEN, i])
                got.append(None if o < 0 or buf is None else bytes(buf[o:o + max(ln, 0)]))
            arrays.append(pa.array(got, pa.binary()))
        else:
            arrays.append(_column(c, m, n))
    return pa.RecordBatch.from_arrays(arrays, schema=packet_batch(m, 0).schema)


def same(got: pa.RecordBatch, want: pa.RecordBatch) -> None:
    got.validate(full=True)
    assert got.schema.equals(want.schema)
    assert got.num_rows == want.num_rows
    for name in want.schema.names:
        a, b = got.column(name), want.column(name)
        assert a.null_count == b.null_count, name
        assert a.equals(b), (name, a.to_pylist()[:5], b.to_pylist()[:5])


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 63, 64, 65, 300])
def test_random_matrices_equal_the_reference(n: int) -> None:
    rng = np.random.default_rng(n)
    m = random_matrix(rng, n)
    # GENEVE options: some records point into a byte buffer
    buf = rng.integers(0, 256, 4096).astype(np.uint8)
    has = rng.random(n) < 0.3
    m[S.M_GENEVE_OFF, :n] = np.where(has, rng.integers(0, 4000, n), -1)
    m[S.M_GENEVE_LEN, :n] = np.where(has, rng.integers(0, 64, n), -1)
    same(packet_batch(m, n, buf), reference(m, n, buf))


def test_decoded_frames_equal_the_reference() -> None:
    """Real decodes (every layer and tunnel of the round-trip cases, GENEVE options
    included), through the fused decoder and through the matrix path."""

    frames = [c.frame for c in CASES if c.linktype == 1 and not c.decode_as] * 5
    fb = frames_from_bytes(frames)
    fast = PacketDecoder().decode(fb)
    m = PacketDecoder().decode_matrix(fb)
    want = reference(m, len(fb), fb.buf)
    assert want.column("geneve_options").null_count < len(fb)  # options were seen
    assert want.column("tunnels").to_pylist().count([]) < len(fb)
    same(fast, want)
    same(packet_batch(m, len(fb), fb.buf), want)


def test_batch_outlives_its_makers_and_is_freed_on_another_thread() -> None:
    rng = np.random.default_rng(1)
    m = random_matrix(rng, 500)
    want = reference(m, 500)
    batch = packet_batch(m, 500)
    del m
    gc.collect()
    seen: list[Any] = []

    def consume(b: pa.RecordBatch) -> None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, b.schema) as w:
            w.write_batch(b)
        seen.append(pa.ipc.open_stream(sink.getvalue()).read_next_batch())

    t = threading.Thread(target=consume, args=(batch,))
    del batch  # the thread holds the last reference: Arrow releases it there
    t.start()
    t.join()
    same(seen[0], want)


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_dropped_batches_give_their_memory_back() -> None:
    """300 batches of 8,192 decoded records (about 3.5 MB of column memory each, a GB
    if it were never freed) made and dropped one after another."""

    frames = [c.frame for c in CASES if c.linktype == 1 and not c.decode_as]
    fb = frames_from_bytes((frames * (8192 // len(frames) + 1))[:8192])
    dec = PacketDecoder()
    for _ in range(20):  # the allocator's working set
        dec.decode(fb)
    before = _rss()
    for _ in range(300):
        batch = dec.decode(fb)
        assert batch.num_rows == 8192
        del batch
    assert _rss() - before < 200 << 20


def test_all_null_columns_read_zeros_and_columns_do_not_share_rows() -> None:
    """The sFlow columns of a packet batch were never written: they point at zeros, so
    an Arrow IPC file (which keeps the bytes under nulls) holds nothing stale."""

    fb = frames_from_bytes([c.frame for c in CASES if c.linktype == 1][:20])
    batch = PacketDecoder().decode(fb)
    empty = [c.name for c in PACKET_COLUMNS if c.group == "sflow"]
    assert empty
    for name in empty:
        col = batch.column(name)
        assert col.null_count == len(fb), name
        for b in col.buffers():
            if b is not None:
                assert not np.frombuffer(b, np.uint8).any(), name
    # no two non-empty columns share a values buffer
    seen: dict[int, str] = {}
    for c in PACKET_COLUMNS:
        col = batch.column(c.name)
        if c.type in ("tunnels", "bin") or col.null_count == len(fb):
            continue
        address = col.buffers()[-1].address
        assert address not in seen, (c.name, seen.get(address))
        seen[address] = c.name


def test_unfinished_columns_free_their_memory() -> None:
    """A PacketColumns never finished (an exception mid-decode) frees its block when it
    is dropped; one finished is emptied (no view of memory that Arrow owns)."""
    before = _rss()
    for _ in range(200):
        pc = PacketColumns(65536)
        for v in pc.values.values():
            v[:] = 1  # touch it all
        del pc
    assert _rss() - before < 200 << 20
    pc = PacketColumns(10)
    pc.finish()
    assert not hasattr(pc, "values")


def test_threads_decoding_at_once_get_their_own_batches() -> None:
    """One decoder per thread (as the collector's workers): every batch equals the one
    decoded alone, whatever the others do meanwhile."""
    frames = [c.frame for c in CASES if c.linktype == 1 and not c.decode_as]
    batches = [frames_from_bytes((frames * 40)[:k]) for k in (50, 400, 1500, 3000)]
    want = [PacketDecoder().decode(fb) for fb in batches]
    got: dict[int, list[pa.RecordBatch]] = {}

    def work(k: int) -> None:
        dec = PacketDecoder()
        got[k] = [dec.decode(batches[k]) for _ in range(30)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, w in enumerate(want):
        assert len(got[k]) == 30
        for b in got[k]:
            same(b, w)


def test_tunnel_layer_scratch_is_reused_and_never_shared() -> None:
    """``PacketColumns.layers`` (scratch) is one reused buffer per thread: the next
    columns of the thread get it back once the last ones finished or were dropped; two
    alive at once never share it, and what they build equals the reference."""
    rng = np.random.default_rng(7)
    m1, m2 = random_matrix(rng, 300), random_matrix(rng, 200)
    gc.collect()  # no columns of an earlier test hold the thread's scratch
    a = PacketColumns(300)
    base = a.layers.base
    assert base is not None and base.ndim == 1  # a view of the thread's flat buffer
    b = PacketColumns(200)  # a holds the scratch: b gets memory of its own
    assert b.layers.base is None and not np.shares_memory(a.layers, b.layers)
    a.add(m1, 300)
    b.add(m2, 200)
    same(a.finish(), reference(m1, 300))
    same(b.finish(), reference(m2, 200))
    c = PacketColumns(250)  # a finished: its scratch comes back
    assert c.layers.base is base and c.layers.flags.c_contiguous
    del c  # dropped unfinished: free again
    gc.collect()
    d = PacketColumns(300)
    assert d.layers.base is base
    d.add(m1, 300)
    same(d.finish(), reference(m1, 300))

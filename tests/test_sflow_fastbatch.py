"""The packers: batches built chunk by chunk, at any record position (the sFlow walk's
chunks end wherever a datagram ends), and the fused walk-and-pack kernels of the packet
and sFlow decoders, give exactly ``records.arrow.packet_batch``'s batches over the whole
slot matrix; the counters batch equals a reference built from ``records.arrow``'s
helpers; no batch points into a decoder's reusable matrices."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fabricscope.decode import slots as S
from fabricscope.records.arrow import PacketColumns, packet_batch
from matrixhelp import random_matrix


def same(a: pa.RecordBatch, b: pa.RecordBatch) -> None:
    assert a.schema.equals(b.schema)
    assert a.num_rows == b.num_rows
    for name in a.schema.names:
        assert a.column(name).equals(b.column(name)), name
        assert a.column(name).null_count == b.column(name).null_count, name


def chunked(m: np.ndarray, n: int, cuts: list[int], buf: np.ndarray | None = None
            ) -> pa.RecordBatch:
    """The batch of ``m``'s first ``n`` records, added at the given cut points."""
    pc = PacketColumns(n)
    edges = [0, *cuts, n]
    for a, b in itertools.pairwise(edges):
        # each chunk as a matrix of its own, as the walks hand them over
        pc.add(np.ascontiguousarray(m[:, a:b]), b - a, a)
    return pc.finish(buf)


def test_random_matrices_any_chunking() -> None:
    rng = np.random.default_rng(7)
    for n in (0, 1, 7, 8, 9, 100, 1000):
        m = random_matrix(rng, n)
        want = packet_batch(m, n)
        for _ in range(4):
            k = int(rng.integers(0, 12)) if n > 1 else 0
            cuts = sorted({int(x) for x in rng.integers(1, max(n, 2), k)} - {0, n})
            same(chunked(m, n, cuts), want)
        if n > 3:
            same(chunked(m, n, [1, 2, 3]), want)  # chunks of one record, unaligned


def test_unaligned_chunk_does_not_clear_earlier_bits() -> None:
    """A chunk starting inside a bitmap byte ORs its bits in: the records before it in
    the same byte stay valid (a plain store of the byte would drop them)."""
    n = 16
    m = np.full((S.NSLOTS, n), -1, np.int64)
    m[S.WIRE + S.H_SPORT, :n] = np.arange(n)
    m[S.WIRE + S.H_SPORT, 5] = -1
    for cuts in ([3], [3, 4], [1, 9, 10], [7, 8]):
        b = chunked(m, n, cuts)
        got = b.column("sport").to_pylist()
        assert got == [None if i == 5 else i for i in range(n)], cuts


def test_decoded_frames_fused_equals_matrix(shared_captures: Path) -> None:
    """``PacketDecoder.decode`` (walk and pack fused, chunk by chunk) gives the batch
    built from the whole slot matrix."""
    from fabricscope.capture.reader import open_capture
    from fabricscope.decode import PacketDecoder

    dec = PacketDecoder()
    ref = PacketDecoder()
    for p in sorted(shared_captures.rglob("*.pcap")):
        with open_capture(p) as cap:
            for frames in cap:
                got = dec.decode(frames)
                want = packet_batch(ref.decode_matrix(frames), len(frames), frames.buf)
                same(got, want)


@pytest.mark.parametrize("n", [1, 333, 4096])
def test_synthetic_sflow_fused_equals_matrix(n: int) -> None:
    """The sFlow decoder's batch (datagrams walked and packed a chunk at a time) equals
    the batch of one walk of every datagram into a whole slot matrix."""
    from fabricscope.decode.slots import NSLOTS
    from fabricscope.sflow import SflowDecoder
    from fabricscope.sflow.datagram import NT_SCRATCH, walk_datagrams
    from fabricscope.sflow.encode import synthetic_datagrams
    from fabricscope.sflow.fused import walk_headers
    from fabricscope.sflow.layout import NCSLOTS, ND, NQ

    buf, off, ln = synthetic_datagrams(n)
    ts = np.arange(n, dtype=np.int64)
    dec = SflowDecoder()
    recs, _cnts = dec.decode_payloads(buf, off, ln, ts)
    assert recs.num_rows == 7 * n

    cap = 8 * n
    m = np.full((NSLOTS, cap), -1, np.int64)
    cm = np.full((NCSLOTS, cap), -1, np.int64)
    sq = np.full((NQ, 2 * cap), -1, np.int64)
    dg = np.full((ND, n), -1, np.int64)
    ev = np.zeros_like(dec.event_counts)
    k, i, _j, _q = walk_datagrams(
        buf, np.asarray(off, np.int64), np.asarray(ln, np.int64), np.zeros(n, np.int64),
        ts, np.full(n, 6, np.int64), np.arange(n, dtype=np.int64), 0, 0, m, cap, cm, cap,
        sq, dg, ev, np.empty(NT_SCRATCH, np.int64), 0, 0)
    assert (k, i) == (n, 7 * n)
    assert recs.column("inner_src").null_count == 0  # the sampled headers were walked
    walk_headers(buf, m, i, np.empty(i, np.int32), np.empty(i, np.int32), np.empty(i, np.int8),
                 dec.tables, dec.params, ev)
    same(recs, packet_batch(m, i, buf))


def test_counters_and_no_shared_memory() -> None:
    """Counters equal a reference built with records.arrow's helpers; no buffer of either
    batch points into the decoder's reusable matrices."""
    from fabricscope.records.arrow import ip_array, scalar_array
    from fabricscope.records.schema import COUNTER_COLUMNS
    from fabricscope.sflow import SflowDecoder
    from fabricscope.sflow.encode import synthetic_datagrams
    from fabricscope.sflow.layout import COUNTER_IP_SLOTS, COUNTER_SLOTS

    buf, off, ln = synthetic_datagrams(500)
    dec = SflowDecoder()
    recs, cnts = dec.decode_payloads(buf, off, ln, np.arange(500, dtype=np.int64))
    cm = dec._cpool.m
    n = cnts.num_rows
    assert n == 50
    for c in COUNTER_COLUMNS:
        got = cnts.column(c.name)
        if c.type == "ip":
            hi, lo, ver = COUNTER_IP_SLOTS[c.name]
            want = ip_array(cm[hi, :n], cm[lo, :n], cm[ver, :n] > 0)
        elif c.name in COUNTER_SLOTS:
            want = scalar_array(cm[COUNTER_SLOTS[c.name], :n], c.type)
        else:
            continue
        assert got.equals(want), c.name
    assert cnts.column("port_name").to_pylist() == ["uplink0"] * n
    for batch in (recs, cnts):
        for col in batch.columns:
            for chunk_buf in col.buffers():
                if chunk_buf is not None:
                    assert dec._chunk is not None
                    base = dec._chunk.ctypes.data
                    assert not base <= chunk_buf.address < base + dec._chunk.nbytes
                    assert not dec._cpool.owns(chunk_buf.address)

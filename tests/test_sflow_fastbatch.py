"""The fused batch builder gives exactly ``records.arrow.packet_batch``'s batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fabricscope.decode import slots as S
from fabricscope.records.arrow import packet_batch
from fabricscope.sflow.fastbatch import fast_packet_batch


def same(m: np.ndarray, n: int, buf: np.ndarray | None = None) -> None:
    a = packet_batch(m, n, buf)
    b = fast_packet_batch(m, n, buf)
    assert a.schema.equals(b.schema)
    for name in a.schema.names:
        assert a.column(name).equals(b.column(name)), name
        assert a.column(name).null_count == b.column(name).null_count, name


def test_random_matrices() -> None:
    rng = np.random.default_rng(7)
    for n in (0, 1, 7, 8, 9, 100, 1000):
        m = np.full((S.NSLOTS, n + 5), -1, np.int64)
        for s in range(S.NSLOTS):
            pick = rng.random(n) < rng.random()
            vals = rng.integers(-3, 2**40, n)
            vals[rng.random(n) < 0.1] = rng.integers(-(2**63), 2**63 - 1, 1)[0]
            m[s, :n] = np.where(pick, vals, -1)
        m[S.M_DEPTH, :n] = rng.integers(-1, 6, n)
        m[S.M_GENEVE_OFF, :n] = -1
        for k in range(S.MAX_DEPTH):
            t = S.tun_slot(k, S.T_TYPE)
            m[t, :n] = rng.integers(0, 10, n)
            m[S.tun_slot(k, S.T_IPVER), :n] = rng.choice([-1, 4, 6], n)
        for slot in (S.WIRE + S.H_IPVER, S.INNER + S.H_IPVER, S.S_AGENT_VER):
            m[slot, :n] = rng.choice([-1, 0, 4, 6], n)
        m[S.M_KIND, :n] = rng.integers(-1, 3, n)
        m[S.M_ERROR, :n] = rng.integers(-1, 70, n)
        same(m, n)


def test_decoded_samples(shared_captures: Path) -> None:
    from fabricscope.capture.reader import open_capture
    from fabricscope.decode import PacketDecoder

    dec = PacketDecoder()
    for p in sorted(shared_captures.rglob("*.pcap")):
        with open_capture(p) as cap:
            for frames in cap:
                m = dec.decode_matrix(frames)
                same(m, len(frames), frames.buf)


@pytest.mark.parametrize("n", [1, 333, 4096])
def test_synthetic_sflow(n: int) -> None:
    from fabricscope.sflow import SflowDecoder
    from fabricscope.sflow.decoder import MatrixPool
    from fabricscope.sflow.encode import synthetic_datagrams

    buf, off, ln = synthetic_datagrams(n)
    dec = SflowDecoder()
    dec.decode_payloads(buf, off, ln, np.zeros(n, np.int64))
    pool: MatrixPool = dec._mpool
    rows = int(dec.records)
    same(pool.m, rows, buf)


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
                    assert not dec._mpool.owns(chunk_buf.address)
                    assert not dec._cpool.owns(chunk_buf.address)

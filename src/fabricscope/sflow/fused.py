# mypy: disable-error-code="return-value,assignment,arg-type"
"""Walk datagrams and pack their records in one compiled call: datagrams -> typed columns.

The sFlow counterpart of ``decode/fused.py``. The datagram walk (``datagram.py``) writes
the flow and discard samples of a few datagrams into a small slot matrix (at most
``chunk`` records, 156 slots each: it stays in the CPU's level-2 cache); the packet walk
then decodes the chunk's sampled headers into the same records (``walk_headers``), the
matrix is packed at once into the batch's typed columns
(``records.arrow.PacketColumns``), and the walk goes on with the next datagrams. The
whole batch's int64 matrix (1.2 KB a record, tens of MB for a receive batch) never
exists: writing it, a slot row apart, and reading it back cost four times the walk
itself.

A chunk ends wherever a datagram ends, so records are packed at any position (the
packers OR validity bits into zeroed bitmaps). Counter samples (one in ten datagrams or
so) still go to their own matrix ``cm`` with the batch's capacity.
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode.common import no_refcount
from fabricscope.decode.slots import (
    M_CAPLEN,
    M_FILE_OFF,
    M_FRAME_LEN,
    M_IFACE,
    M_LINKTYPE,
    M_PAYLOAD,
    M_TS,
    M_TS_PREC,
)
from fabricscope.decode.walk import walk_batch
from fabricscope.records.packing import pack_chunk, reset_chunk
from fabricscope.sflow.datagram import walk_datagrams


@no_refcount
def walk_headers(buf: np.ndarray, m: np.ndarray, c: int, lt: np.ndarray, ifc: np.ndarray,
                 prec: np.ndarray, tables: np.ndarray, params: np.ndarray,
                 ev: np.ndarray) -> None:
    """The packet walk of the sampled headers of records ``0 .. c`` of ``m``, after the
    sFlow walk (``walk_datagrams``) has left each header's start in ``M_PAYLOAD`` (-1:
    none), its length in ``M_CAPLEN`` and its link type in ``M_LINKTYPE``.

    It calls the packet decoder's own batch loop (``decode.walk.walk_batch``) with the
    argument types of a capture batch (``lt``, ``ifc``: int32 and ``prec``: int8
    scratch vectors of at least ``c``), so the one compiled walk serves both: no second
    compilation (a minute on a 2-vCPU VM), and one call per chunk (a call per sample, to
    a separately compiled walk, cost 30-45 ns more per sample). The per-record fields
    it sets from those vectors are the ones the sFlow walk already set."""
    for i in range(c):
        lt[i] = m[M_LINKTYPE, i]
        ifc[i] = m[M_IFACE, i]
        prec[i] = m[M_TS_PREC, i]
    walk_batch(buf, m[M_PAYLOAD, :c], m[M_CAPLEN, :c], m[M_FRAME_LEN, :c], m[M_TS, :c],
               lt[:c], ifc[:c], prec[:c], m[M_FILE_OFF, :c], m, tables, params, ev)


@no_refcount
def walk_and_pack_datagrams(
        buf: np.ndarray, offset: np.ndarray, length: np.ndarray, truncated: np.ndarray,
        ts_ns: np.ndarray, ts_prec: np.ndarray, file_offset: np.ndarray, dgram_base: int,
        k0: int, m: np.ndarray, chunk: int, cap_rec: int, cm: np.ndarray, cap_cnt: int,
        sq: np.ndarray, dg: np.ndarray, tables: np.ndarray, params: np.ndarray,
        ev: np.ndarray, t: np.ndarray, lt: np.ndarray, ifc: np.ndarray,
        prec: np.ndarray, reset: np.ndarray,
        slots1: np.ndarray, rules1: np.ndarray, on1: np.ndarray, out1: np.ndarray,
        bits1: np.ndarray, nulls1: np.ndarray,
        slots2: np.ndarray, rules2: np.ndarray, on2: np.ndarray, out2: np.ndarray,
        bits2: np.ndarray, nulls2: np.ndarray,
        slots4: np.ndarray, rules4: np.ndarray, on4: np.ndarray, out4: np.ndarray,
        bits4: np.ndarray, nulls4: np.ndarray,
        slots8: np.ndarray, rules8: np.ndarray, on8: np.ndarray, out8: np.ndarray,
        bits8: np.ndarray, nulls8: np.ndarray,
        his: np.ndarray, los: np.ndarray, vers: np.ndarray, ip_on: np.ndarray,
        ip_out: np.ndarray, ip_bits: np.ndarray, ip_nulls: np.ndarray,
        layers_on: bool, offsets: np.ndarray, layers: np.ndarray,
        gof: np.ndarray, glen: np.ndarray) -> tuple[int, int, int, int, int]:
    """Walk datagrams from ``k0`` (see ``walk_datagrams``) at most ``chunk`` records at a
    time through ``m`` (C-contiguous, ``chunk`` columns or more; ``chunk`` at least the
    records the largest datagram can yield) into the column buffers, until all are done
    or the next datagram's records would not fit the ``cap_rec`` of the buffers (or its
    counter rows the ``cap_cnt`` of ``cm``). ``lt``, ``ifc`` (int32) and ``prec`` (int8):
    scratch vectors of ``chunk`` values for ``walk_headers``; ``reset``: the rows set back
    to -1 before each chunk (``slots.reset_rows``). -> (next datagram, records, counter
    rows, samples, tunnel layers)."""
    nd = offset.shape[0]
    at = 0
    j = 0
    q = 0
    nlayers = 0
    k = k0
    while k < nd:
        room = cap_rec - at
        if room > chunk:
            room = chunk
        if room <= 0:
            break
        reset_chunk(m, reset)
        k2, c, j, q = walk_datagrams(buf, offset, length, truncated, ts_ns, ts_prec,
                                     file_offset, dgram_base, k, m, room, cm, cap_cnt, sq,
                                     dg, ev, t, j, q)
        walk_headers(buf, m, c, lt, ifc, prec, tables, params, ev)
        if c > 0:
            nlayers = pack_chunk(
                m, c, at, slots1, rules1, on1, out1, bits1, nulls1,
                slots2, rules2, on2, out2, bits2, nulls2,
                slots4, rules4, on4, out4, bits4, nulls4, slots8, rules8, on8, out8, bits8,
                nulls8, his, los, vers, ip_on, ip_out, ip_bits, ip_nulls, layers_on, offsets,
                layers, gof, glen, nlayers)
            at += c
        if k2 == k:  # the next datagram did not fit what is left
            break
        k = k2
    return k, at, j, q, nlayers

# mypy: disable-error-code="return-value,assignment,arg-type"
"""Walk and pack in one compiled call per capture batch: frames -> typed column buffers.

``PacketDecoder.decode`` used to loop in Python over chunks of 1,024 frames, calling the
walk and then each packing kernel of ``records/packing.py`` once per chunk (eight calls
through numba's dispatcher a chunk, each converting a dozen array arguments). This kernel
does that loop itself: for every ``chunk`` frames it resets the small slot matrix, walks
the frames into it, then packs the matrix into the batch's typed columns, validity bitmaps
and null counts (``records.arrow.PacketColumns``). The matrix is small enough to stay in
the CPU's level-2 cache between the walk writing it and the packers reading it; the full
int64 matrix of a batch (1.2 KB a record) never exists.

Compiled without reference counting, like the walk it calls (see ``walk.py``).
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode.common import no_refcount
from fabricscope.decode.slots import M_KIND
from fabricscope.decode.walk import walk_batch
from fabricscope.records.packing import pack_chunk, reset_chunk


@no_refcount
def walk_and_pack(buf: np.ndarray, offset: np.ndarray, caplen: np.ndarray,
                  wirelen: np.ndarray, ts_ns: np.ndarray, linktype: np.ndarray,
                  iface: np.ndarray, ts_prec: np.ndarray, file_offset: np.ndarray,
                  m: np.ndarray, chunk: int, tables: np.ndarray, params: np.ndarray,
                  ev: np.ndarray, reset: np.ndarray,
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
                  gof: np.ndarray, glen: np.ndarray) -> int:
    """Decode frames ``0 .. n`` (``n = offset.shape[0]``) ``chunk`` at a time (a multiple
    of 8, at most ``m.shape[1]``) through slot matrix ``m`` (C-contiguous, the walk's one
    compiled layout) into the column buffers (one group per value width: 1, 2, 4, 8
    bytes; see ``PacketColumns.fused_args``); before each chunk the rows ``reset``
    (``slots.reset_rows``) are set back to -1. Returns the number of tunnel layers."""
    n = offset.shape[0]
    nlayers = 0
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        c = b - a
        reset_chunk(m, reset)
        walk_batch(buf, offset[a:b], caplen[a:b], wirelen[a:b], ts_ns[a:b], linktype[a:b],
                   iface[a:b], ts_prec[a:b], file_offset[a:b], m, tables, params, ev)
        kind = m[M_KIND]
        for j in range(c):
            kind[j] = 0  # KIND_PACKET
        nlayers = pack_chunk(
            m, c, a, slots1, rules1, on1, out1, bits1, nulls1,
            slots2, rules2, on2, out2, bits2, nulls2,
            slots4, rules4, on4, out4, bits4, nulls4, slots8, rules8, on8, out8, bits8,
            nulls8, his, los, vers, ip_on, ip_out, ip_bits, ip_nulls, layers_on, offsets,
            layers, gof, glen, nlayers)
    return nlayers

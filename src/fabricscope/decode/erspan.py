# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""ERSPAN type II and type III (draft-foschiano-erspan), carried in GRE.

Type II (GRE protocol 0x88BE, GRE sequence number present), 8 octets::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Ver  |          VLAN         | COS | En|T|    Session ID     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |      Reserved         |                  Index                |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Type III (GRE protocol 0x22EB), 12 octets, plus an 8-octet platform sub-header if O::

    |  Ver  |          VLAN         | COS |BSO|T|     Session ID    |
    |                          Timestamp                            |
    |             SGT               |P|    FT   |   Hw ID   |D|Gra|O|

Version is 1 for type II and 2 for type III. The session id goes to ``vni`` and ``a``,
the ERSPAN version to ``b``. Type III frames with FT != 0 (not Ethernet) stop there.
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd16
from fabricscope.decode.protocols import P_END, P_ETH, TUN_ERSPAN
from fabricscope.decode.slots import X_PT_A, X_PT_B, X_PT_TYPE, X_PT_VNI


@per_frame
def decode_erspan(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
                  ev: np.ndarray, version: int) -> tuple[int, int]:
    hlen = 8 if version == 1 else 12
    if end - pos < hlen:
        event(ev, m, i, E.EV_TRUNCATED_ERSPAN)
        return pos, P_END
    w0 = rd16(buf, pos)
    if w0 >> 12 != version:
        event(ev, m, i, E.EV_ERSPAN_BAD_VERSION)
        return pos, P_END
    session = rd16(buf, pos + 2) & 0x3FF
    s[X_PT_TYPE] = TUN_ERSPAN
    s[X_PT_VNI] = session
    s[X_PT_A] = session
    s[X_PT_B] = version
    p = pos + hlen
    if version == 2:
        w = rd16(buf, pos + 10)
        ft = (w >> 10) & 0x1F
        if w & 1:
            p += 8
            if p > end:
                event(ev, m, i, E.EV_TRUNCATED_ERSPAN)
                return end, P_END
        if ft != 0:
            return p, P_END
    return p, P_ETH

# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""Network Service Header (RFC 8300), after VXLAN-GPE (next protocol 4) or ethertype 0x894F.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Ver|O|U|    TTL    |   Length  |U|U|U|U|MD Type| Next Protocol |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |          Service Path Identifier (SPI)        | Service Index |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Context headers (MD type 1 or 2) ...       |

Length counts 4-octet words of the whole NSH (>= 2). The SPI and SI go to the enclosing
tunnel layer's ``a`` and ``b`` (they name the service chain and the hop within it).
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd8, rd16, rd32
from fabricscope.decode.protocols import P_END
from fabricscope.decode.slots import X_PT_A, X_PT_B, X_PT_TYPE
from fabricscope.decode.vxlan import next_proto_gpe_nsh


@per_frame
def decode_nsh(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
               ev: np.ndarray) -> tuple[int, int]:
    if end - pos < 8:
        event(ev, m, i, E.EV_TRUNCATED_NSH)
        return pos, P_END
    w = rd16(buf, pos)
    ver = w >> 14
    length = (w & 0x3F) * 4
    if ver != 0 or length < 8:
        event(ev, m, i, E.EV_NSH_BAD)
        return pos, P_END
    sp = rd32(buf, pos + 4)
    if s[X_PT_TYPE] > 0:
        s[X_PT_A] = sp >> 8
        s[X_PT_B] = sp & 0xFF
    if end - pos < length:
        event(ev, m, i, E.EV_TRUNCATED_NSH)
        return pos, P_END
    return pos + length, next_proto_gpe_nsh(rd8(buf, pos + 3))

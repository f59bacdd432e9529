# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""ICMP (RFC 792) and ICMPv6 (RFC 4443): type and code.

::

    +--------+--------+--------+--------+
    |  Type  |  Code  |     Checksum    |
    +--------+--------+--------+--------+

The embedded packet of ICMP errors is not decoded (it is the offending packet, not the
flow's own header).
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd8
from fabricscope.decode.protocols import P_END
from fabricscope.decode.slots import H_ICMP_CODE, H_ICMP_TYPE


@per_frame
def decode_icmp(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
                ev: np.ndarray) -> tuple[int, int]:
    if end - pos < 4:
        event(ev, m, i, E.EV_TRUNCATED_ICMP)
        return pos, P_END
    s[H_ICMP_TYPE] = rd8(buf, pos)
    s[H_ICMP_CODE] = rd8(buf, pos + 1)
    return pos + 4, P_END

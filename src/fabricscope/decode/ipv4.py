# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""IPv4 (RFC 791).

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version|  IHL  |Type of Service|          Total Length         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Identification        |Flags|      Fragment Offset    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Time to Live |    Protocol   |         Header Checksum       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       Source Address                          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Destination Address                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Options (IHL > 5)                          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Options are skipped by IHL. Fragments are flagged in ``frag`` (bit0 MF, bit1 offset != 0,
bit2 DF); a non-first fragment has no transport header, so decoding stops there.
The payload ends at Total Length (Ethernet padding is not payload); a Total Length of 0
(TSO/GSO captures) means "up to the captured end". Addresses are kept IPv4-mapped.
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import IPV4_MAPPED_PREFIX, event, per_frame, rd8, rd16, rd32
from fabricscope.decode.protocols import P_END
from fabricscope.decode.slots import (
    H_DST_HI,
    H_DST_LO,
    H_FRAG,
    H_IPLEN,
    H_IPVER,
    H_PROTO,
    H_SRC_HI,
    H_SRC_LO,
    H_TOS,
    H_TTL,
)
from fabricscope.decode.tables import T_IPPROTO


@per_frame
def decode_ipv4(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
                ev: np.ndarray, tables: np.ndarray) -> tuple[int, int, int]:
    if end - pos < 20:
        event(ev, m, i, E.EV_TRUNCATED_IPV4)
        return pos, end, P_END
    vihl = rd8(buf, pos)
    if vihl >> 4 != 4:
        event(ev, m, i, E.EV_IPV4_BAD_VERSION)
        return pos, end, P_END
    hlen = (vihl & 0xF) * 4
    s[H_IPVER] = 4
    s[H_TOS] = rd8(buf, pos + 1)
    totlen = rd16(buf, pos + 2)
    s[H_IPLEN] = totlen
    fl = rd16(buf, pos + 6)
    s[H_TTL] = rd8(buf, pos + 8)
    proto = rd8(buf, pos + 9)
    s[H_PROTO] = proto
    s[H_SRC_HI] = 0
    s[H_SRC_LO] = IPV4_MAPPED_PREFIX | rd32(buf, pos + 12)
    s[H_DST_HI] = 0
    s[H_DST_LO] = IPV4_MAPPED_PREFIX | rd32(buf, pos + 16)
    frag = np.int64(0)
    if fl & 0x2000:
        frag |= 1
    if fl & 0x1FFF:
        frag |= 2
    if fl & 0x4000:
        frag |= 4
    s[H_FRAG] = frag
    if hlen < 20:
        event(ev, m, i, E.EV_IPV4_BAD_HLEN)
        return pos, end, P_END
    if totlen != 0:
        if totlen < hlen:
            event(ev, m, i, E.EV_IPV4_BAD_TOTLEN)
            return pos, end, P_END
        if pos + totlen < end:
            end = pos + totlen
    if end - pos < hlen:
        event(ev, m, i, E.EV_TRUNCATED_IPV4)
        return pos, end, P_END
    if frag & 3:
        event(ev, m, i, E.EV_IPV4_FRAGMENT)
        if frag & 2:
            return pos + hlen, end, P_END
    return pos + hlen, end, tables[T_IPPROTO, proto]

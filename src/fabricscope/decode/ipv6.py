# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""IPv6 (RFC 8200) and its extension-header chain.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Traffic Class |           Flow Label                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Payload Length        |  Next Header  |   Hop Limit   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                  Source Address (128 bits)                    |
    |                Destination Address (128 bits)                 |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Extension headers walked: Hop-by-Hop (0), Routing (43), Fragment (44), Destination
Options (60), Mobility (135), HIP (139), Shim6 (140), experimental (253, 254): generic
``Next Header, Hdr Ext Len (8-octet units, not counting the first 8)``; Authentication
Header (51): length in 4-octet units minus 2 (RFC 4302). ESP (50) and No Next Header (59)
end the walk. At most 16 extension headers; each consumes at least 8 octets.
A fragment header with a non-zero offset ends decoding (no transport header follows).
``proto`` is the upper-layer protocol: absent when the chain was cut or too long (the
header being walked is not it).
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd8, rd16, rd32, rd64
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

MAX_EXT = 16


@per_frame
def decode_ipv6(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
                ev: np.ndarray, tables: np.ndarray) -> tuple[int, int, int]:
    if end - pos < 40:
        event(ev, m, i, E.EV_TRUNCATED_IPV6)
        return pos, end, P_END
    w0 = rd32(buf, pos)
    if w0 >> 28 != 6:
        event(ev, m, i, E.EV_IPV6_BAD_VERSION)
        return pos, end, P_END
    s[H_IPVER] = 6
    s[H_TOS] = (w0 >> 20) & 0xFF
    plen = rd16(buf, pos + 4)
    s[H_IPLEN] = plen + 40
    nh = rd8(buf, pos + 6)
    s[H_TTL] = rd8(buf, pos + 7)
    s[H_SRC_HI] = rd64(buf, pos + 8)
    s[H_SRC_LO] = rd64(buf, pos + 16)
    s[H_DST_HI] = rd64(buf, pos + 24)
    s[H_DST_LO] = rd64(buf, pos + 32)
    if plen != 0 and pos + 40 + plen < end:
        end = pos + 40 + plen
    p = pos + 40
    frag = np.int64(0)
    n = 0
    while True:
        if nh == 0 or nh == 43 or nh == 60 or nh == 135 or nh == 139 or nh == 140 \
                or nh == 253 or nh == 254:
            if end - p < 8:  # cut: the upper-layer protocol is unknown
                event(ev, m, i, E.EV_TRUNCATED_IPV6_EXT)
                return min(p, end), end, P_END
            nxt = rd8(buf, p)
            p += (rd8(buf, p + 1) + 1) * 8
            nh = nxt
        elif nh == 51:
            if end - p < 8:  # cut: the upper-layer protocol is unknown
                event(ev, m, i, E.EV_TRUNCATED_IPV6_EXT)
                return min(p, end), end, P_END
            nxt = rd8(buf, p)
            p += (rd8(buf, p + 1) + 2) * 4
            nh = nxt
        elif nh == 44:
            if end - p < 8:  # cut: the upper-layer protocol is unknown
                event(ev, m, i, E.EV_TRUNCATED_IPV6_EXT)
                return min(p, end), end, P_END
            nxt = rd8(buf, p)
            offm = rd16(buf, p + 2)
            frag |= 1 if offm & 1 else 0
            if offm >> 3:
                frag |= 2
            s[H_FRAG] = frag
            event(ev, m, i, E.EV_IPV6_FRAGMENT)
            p += 8
            nh = nxt
            if frag & 2:
                s[H_PROTO] = nh
                return p, end, P_END
        else:
            break
        n += 1
        if n > MAX_EXT:
            event(ev, m, i, E.EV_IPV6_EXT_TOO_LONG)
            return min(p, end), end, P_END
    s[H_PROTO] = nh
    if frag == 0:
        s[H_FRAG] = 0
    if p > end:
        event(ev, m, i, E.EV_TRUNCATED_IPV6_EXT)
        return end, end, P_END
    return p, end, tables[T_IPPROTO, nh]

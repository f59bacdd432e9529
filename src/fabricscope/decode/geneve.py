# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""GENEVE (RFC 8926; UDP 6081), options kept; OVN's option decoded.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |        Virtual Network Identifier (VNI)       |    Reserved   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Variable-Length Options                    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Option TLV::

    |          Option Class         |      Type     |R|R|R| Length  |
    |                 Variable-Length Option Data (Length x 4)      |

Opt Len and option Length count 4-octet words. Version must be 0, else the datagram is
kept as UDP (``geneve_fallback_udp``); a fixed header cut off by the capture is
``truncated_geneve`` (no tunnel layer), options cut off keep the layer and its VNI. The options of the outermost GENEVE layer are kept
raw (``geneve_options`` column). OVN (class 0x0102, type 0x80, 4 octets): bits 30-16 the
logical ingress port key -> layer ``a``, bits 15-0 the egress port key -> layer ``b``;
the VNI is the OVN datapath tunnel key. Protocol 0x6558 is Ethernet; others are ethertypes.
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd8, rd16, rd24, rd32
from fabricscope.decode.protocols import P_END, TUN_GENEVE
from fabricscope.decode.slots import X_PT_A, X_PT_B, X_PT_GLEN, X_PT_GOFF, X_PT_TYPE, X_PT_VNI
from fabricscope.decode.tables import T_ETHERTYPE
from fabricscope.decode.udp import udp_cut

OVN_CLASS = 0x0102
OVN_TYPE = 0x80


@per_frame
def decode_geneve(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
                  ev: np.ndarray, tables: np.ndarray) -> tuple[int, int]:
    if end > pos and rd8(buf, pos) >> 6 != 0:  # version != 0: stays plain UDP
        event(ev, m, i, E.EV_GENEVE_FALLBACK)
        return pos, P_END
    if end - pos < 8:  # cut by the capture, or too short to be GENEVE
        event(ev, m, i, E.EV_TRUNCATED_GENEVE if udp_cut(buf, pos, end) else E.EV_GENEVE_FALLBACK)
        return pos, P_END
    b0 = rd8(buf, pos)
    optlen = (b0 & 0x3F) * 4
    proto = rd16(buf, pos + 2)
    s[X_PT_TYPE] = TUN_GENEVE
    s[X_PT_VNI] = rd24(buf, pos + 4)
    p = pos + 8
    oend = p + optlen
    s[X_PT_GOFF] = p
    s[X_PT_GLEN] = optlen
    if oend > end:
        s[X_PT_GLEN] = end - p
        event(ev, m, i, E.EV_TRUNCATED_GENEVE)
        return end, P_END
    while p < oend:
        if oend - p < 4:
            event(ev, m, i, E.EV_GENEVE_BAD_OPTION)
            return oend, P_END
        cls = rd16(buf, p)
        typ = rd8(buf, p + 2)
        olen = (rd8(buf, p + 3) & 0x1F) * 4
        if p + 4 + olen > oend:
            event(ev, m, i, E.EV_GENEVE_BAD_OPTION)
            return oend, P_END
        if cls == OVN_CLASS and typ == OVN_TYPE and olen >= 4:
            val = rd32(buf, p + 4)
            s[X_PT_A] = (val >> 16) & 0x7FFF
            s[X_PT_B] = val & 0xFFFF
        p += 4 + olen
    return oend, tables[T_ETHERTYPE, proto]

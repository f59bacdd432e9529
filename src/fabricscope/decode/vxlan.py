# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""VXLAN (RFC 7348; UDP 4789, and 8472 for Linux/flannel/Cilium) and VXLAN-GPE
(draft-ietf-nvo3-vxlan-gpe; UDP 4790).

VXLAN::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |G|R|R|R|I|R|R|R|   Reserved    |      Group Policy ID (GBP)    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                VXLAN Network Identifier (VNI) |   Reserved    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The I flag must be set; otherwise the datagram is kept as plain UDP (event
``vxlan_fallback_udp``) instead of inventing a VNI. A header cut off by the capture is
``truncated_vxlan`` (no tunnel layer, no VNI); a datagram shorter than the header is
plain UDP too. With the G flag (VXLAN-GBP, used by
Cilium and OVS), the group policy id goes to the layer's ``a``. Ethernet follows.

VXLAN-GPE::

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |R|R|Ver|I|P|B|O|           Reserved            | Next Protocol |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                VXLAN Network Identifier (VNI) |   Reserved    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Version must be 0. Next Protocol: 1 IPv4, 2 IPv6, 3 Ethernet, 4 NSH, 5 MPLS (without the
P flag the payload is Ethernet, as in plain VXLAN).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd8, rd16, rd24
from fabricscope.decode.protocols import (
    P_END,
    P_ETH,
    P_IPV4,
    P_IPV6,
    P_MPLS,
    P_NSH,
    TUN_VXLAN,
    TUN_VXLAN_GPE,
)
from fabricscope.decode.slots import X_PT_A, X_PT_TYPE, X_PT_VNI
from fabricscope.decode.udp import udp_cut


@per_frame
def decode_vxlan(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
                 ev: np.ndarray) -> tuple[int, int]:
    if end > pos and not rd8(buf, pos) & 0x08:  # no I flag: not VXLAN, the datagram stays UDP
        event(ev, m, i, E.EV_VXLAN_FALLBACK)
        return pos, P_END
    if end - pos < 8:  # cut by the capture, or too short to be VXLAN
        event(ev, m, i, E.EV_TRUNCATED_VXLAN if udp_cut(buf, pos, end) else E.EV_VXLAN_FALLBACK)
        return pos, P_END
    flags = rd8(buf, pos)
    s[X_PT_TYPE] = TUN_VXLAN
    s[X_PT_VNI] = rd24(buf, pos + 4)
    if flags & 0x80:
        s[X_PT_A] = rd16(buf, pos + 2)
    return pos + 8, P_ETH


@njit(inline="always", cache=True)
def next_proto_gpe_nsh(np_: int) -> int:
    """Next-protocol values shared by VXLAN-GPE and NSH."""
    if np_ == 1:
        return P_IPV4
    if np_ == 2:
        return P_IPV6
    if np_ == 3:
        return P_ETH
    if np_ == 4:
        return P_NSH
    if np_ == 5:
        return P_MPLS
    return P_END


@per_frame
def decode_vxlan_gpe(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray,
                     i: int, ev: np.ndarray) -> tuple[int, int]:
    if end > pos and ((rd8(buf, pos) >> 4) & 3 != 0 or not rd8(buf, pos) & 0x08):
        event(ev, m, i, E.EV_VXLAN_GPE_FALLBACK)  # version != 0 or no I flag: stays UDP
        return pos, P_END
    if end - pos < 8:
        event(ev, m, i,
              E.EV_TRUNCATED_VXLAN if udp_cut(buf, pos, end) else E.EV_VXLAN_GPE_FALLBACK)
        return pos, P_END
    flags = rd8(buf, pos)
    s[X_PT_TYPE] = TUN_VXLAN_GPE
    s[X_PT_VNI] = rd24(buf, pos + 4)
    nxt = P_ETH
    if flags & 0x04:
        nxt = next_proto_gpe_nsh(rd8(buf, pos + 3))
    return pos + 8, nxt

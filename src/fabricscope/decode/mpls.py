# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""MPLS label stack (RFC 3032) on Ethernet, and MPLS-in-UDP (RFC 7510, UDP port 6635).

Label stack entry::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                Label                  | TC  |S|       TTL     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

MPLS carries no payload type: after the bottom-of-stack entry (S = 1) the first nibble
tells IPv4 (4) or IPv6 (6); 0 is a pseudowire control word (RFC 4385) followed by
Ethernet. networking-sfc (OVS driver) puts one label inside the tunnel with
label = chain_id << 8 | service index; it lands in ``inner_mpls_label``.

MPLS-in-UDP is a tunnel (``encap = mpls-udp``): its ``vni`` is the top label, ``a`` the
bottom label, ``b`` the number of labels. The size of a stack (``mpls_labels``, ``b``) and
its bottom label are known only once the bottom-of-stack entry was captured; a stack cut
off or deeper than 16 labels keeps its top label and stops there.
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd8, rd32
from fabricscope.decode.protocols import P_END, P_ETH, P_IP_GUESS, TUN_MPLS_UDP
from fabricscope.decode.slots import H_MPLS, H_MPLS_N, X_PT_A, X_PT_B, X_PT_TYPE, X_PT_VNI
from fabricscope.decode.udp import udp_cut

MAX_LABELS = 16


@per_frame
def _payload(buf: np.ndarray, pos: int, end: int, m: np.ndarray, i: int,
             ev: np.ndarray) -> tuple[int, int]:
    """What follows the bottom of the stack; nothing captured there is a cut."""
    if pos >= end:
        event(ev, m, i, E.EV_TRUNCATED_MPLS)
        return pos, P_END
    nib = rd8(buf, pos) >> 4
    if nib == 4 or nib == 6:
        return pos, P_IP_GUESS
    if nib == 0:  # pseudowire control word, then Ethernet
        if end - pos < 4:
            event(ev, m, i, E.EV_TRUNCATED_MPLS)
            return pos, P_END
        return pos + 4, P_ETH
    return pos, P_END


@per_frame
def decode_mpls(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
                ev: np.ndarray) -> tuple[int, int]:
    n = 0
    while True:
        if end - pos < 4:
            event(ev, m, i, E.EV_TRUNCATED_MPLS)
            return pos, P_END
        entry = rd32(buf, pos)
        if n == 0:
            s[H_MPLS] = entry >> 12
        n += 1
        pos += 4
        if entry & 0x100:
            break
        if n >= MAX_LABELS:
            event(ev, m, i, E.EV_MPLS_TOO_DEEP)
            return pos, P_END
    s[H_MPLS_N] = n  # known only once the bottom of the stack was seen
    return _payload(buf, pos, end, m, i, ev)


@per_frame
def decode_mpls_udp(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray,
                    i: int, ev: np.ndarray) -> tuple[int, int]:
    if end - pos < 4:  # cut by the capture, or no label at all
        event(ev, m, i, E.EV_TRUNCATED_MPLS if udp_cut(buf, pos, end) else E.EV_MPLS_UDP_FALLBACK)
        return pos, P_END
    s[X_PT_TYPE] = TUN_MPLS_UDP
    s[X_PT_VNI] = rd32(buf, pos) >> 12  # the top label
    n = 0
    while True:
        if end - pos < 4:  # the stack was cut: its bottom and size are unknown
            event(ev, m, i, E.EV_TRUNCATED_MPLS)
            return pos, P_END
        entry = rd32(buf, pos)
        n += 1
        pos += 4
        if entry & 0x100:
            break
        if n >= MAX_LABELS:
            event(ev, m, i, E.EV_MPLS_TOO_DEEP)
            return pos, P_END
    s[X_PT_A] = entry >> 12  # the bottom label
    s[X_PT_B] = n
    return _payload(buf, pos, end, m, i, ev)

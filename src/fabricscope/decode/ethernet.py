# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""Ethernet II, IEEE 802.1Q and 802.1ad (QinQ) tags, and the ethertype dispatch.

IEEE 802.3 / Ethernet II frame (no preamble, no FCS in captures)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                  Destination MAC (6 octets)                   |
    +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                               |                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+      Source MAC (6 octets)    +
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     EtherType / TPID          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

IEEE 802.1Q-2018 tag (TPID 0x8100 C-tag, 0x88A8 S-tag; 0x9100 pre-standard QinQ)::

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |        TPID (0x8100)          | PCP |D|        VLAN ID        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   EtherType of the payload    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

A type/length value below 0x0600 is an 802.3 length (LLC follows): not decoded further.
The outermost tag's VLAN id goes to ``vlan``, the second to ``vlan2``; at most 8 tags.
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd16, rd48
from fabricscope.decode.protocols import P_END
from fabricscope.decode.slots import H_ETH_DST, H_ETH_SRC, H_ETHERTYPE, H_VLAN, H_VLAN2
from fabricscope.decode.tables import T_ETHERTYPE

MAX_VLAN_TAGS = 8


@per_frame
def ethertype_chain(buf: np.ndarray, pos: int, end: int, et: int, s: np.ndarray,
                    m: np.ndarray, i: int, ev: np.ndarray, tables: np.ndarray
                    ) -> tuple[int, int]:
    """Walk VLAN tags starting at ethertype ``et`` (already consumed); -> (pos, next)."""
    ntags = 0
    while et == 0x8100 or et == 0x88A8 or et == 0x9100:
        if end - pos < 4:
            event(ev, m, i, E.EV_TRUNCATED_VLAN)
            return pos, P_END
        vid = rd16(buf, pos) & 0xFFF
        if ntags == 0:
            s[H_VLAN] = vid
        elif ntags == 1:
            s[H_VLAN2] = vid
        ntags += 1
        if ntags > MAX_VLAN_TAGS:
            event(ev, m, i, E.EV_VLAN_TOO_DEEP)
            return pos, P_END
        et = rd16(buf, pos + 2)
        pos += 4
    if et < 0x0600:
        return pos, P_END
    s[H_ETHERTYPE] = et
    return pos, tables[T_ETHERTYPE, et]


@per_frame
def decode_ethernet(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray,
                    i: int, ev: np.ndarray, tables: np.ndarray) -> tuple[int, int]:
    if end - pos < 14:
        event(ev, m, i, E.EV_TRUNCATED_LINK)
        return pos, P_END
    s[H_ETH_DST] = rd48(buf, pos)
    s[H_ETH_SRC] = rd48(buf, pos + 6)
    et = rd16(buf, pos + 12)
    return ethertype_chain(buf, pos + 14, end, et, s, m, i, ev, tables)

# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""Capture link layers other than Ethernet: Linux cooked v1/v2, BSD null/loopback, raw IP.

Linux cooked capture v1 (LINKTYPE_LINUX_SLL = 113), 16 octets::

    +---------------+---------------+---------------+---------------+
    |         Packet type           |        ARPHRD type            |
    +---------------+---------------+---------------+---------------+
    |  Link-layer address length    |                               |
    +---------------+---------------+                               +
    |           Link-layer address (8 octets, zero padded)          |
    +                               +---------------+---------------+
    |                               |        Protocol type          |
    +---------------+---------------+---------------+---------------+

Linux cooked capture v2 (LINKTYPE_LINUX_SLL2 = 276), 20 octets::

    | Protocol type (2) | Reserved (2) | Interface index (4) | ARPHRD (2) |
    | Packet type (1) | Addr len (1) | Link-layer address (8) |

The protocol type is an ethertype when >= 0x0600 (VLAN tags may follow, as on Ethernet).
BSD null/loopback (LINKTYPE_NULL = 0 host order, LINKTYPE_LOOP = 108 network order): a
4-octet address family (2 = IPv4; 24, 28, 30 = IPv6). Raw IP (LINKTYPE_RAW = 101, and
DLT 12/14): the version nibble says IPv4 or IPv6; LINKTYPE_IPV4 = 228, LINKTYPE_IPV6 = 229.
(Source: tcpdump.org link-layer header types.)
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd8, rd16, rd48
from fabricscope.decode.ethernet import ethertype_chain
from fabricscope.decode.protocols import P_END, P_IPV4, P_IPV6
from fabricscope.decode.slots import H_ETH_SRC


@per_frame
def decode_sll(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
               ev: np.ndarray, tables: np.ndarray) -> tuple[int, int]:
    if end - pos < 16:
        event(ev, m, i, E.EV_TRUNCATED_LINK)
        return pos, P_END
    hatype = rd16(buf, pos + 2)
    alen = rd16(buf, pos + 4)
    if hatype == 1 and alen == 6:
        s[H_ETH_SRC] = rd48(buf, pos + 6)
    proto = rd16(buf, pos + 14)
    return ethertype_chain(buf, pos + 16, end, proto, s, m, i, ev, tables)


@per_frame
def decode_sll2(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
                ev: np.ndarray, tables: np.ndarray) -> tuple[int, int]:
    if end - pos < 20:
        event(ev, m, i, E.EV_TRUNCATED_LINK)
        return pos, P_END
    proto = rd16(buf, pos)
    hatype = rd16(buf, pos + 8)
    alen = rd8(buf, pos + 11)
    if hatype == 1 and alen == 6:
        s[H_ETH_SRC] = rd48(buf, pos + 12)
    return ethertype_chain(buf, pos + 20, end, proto, s, m, i, ev, tables)


@per_frame
def decode_null(buf: np.ndarray, pos: int, end: int, m: np.ndarray, i: int,
                ev: np.ndarray) -> tuple[int, int]:
    if end - pos < 4:
        event(ev, m, i, E.EV_TRUNCATED_LINK)
        return pos, P_END
    # the family is a small number: whichever end byte is non-zero holds it
    af = rd8(buf, pos) if rd8(buf, pos) != 0 else rd8(buf, pos + 3)
    if af == 2:
        return pos + 4, P_IPV4
    if af == 24 or af == 28 or af == 30:
        return pos + 4, P_IPV6
    return pos + 4, P_END

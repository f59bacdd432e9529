# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""UDP (RFC 768); the destination port selects a tunnel through the UDP port table.

::

     0      7 8     15 16    23 24    31
    +--------+--------+--------+--------+
    |   Source Port   |  Destination    |
    |                 |      Port       |
    +--------+--------+--------+--------+
    |     Length      |    Checksum     |
    +--------+--------+--------+--------+

The payload ends at Length when it is sane (>= 8); a tunnel is chosen by the destination
port only (VXLAN/GENEVE senders hash the source port, so it carries no meaning).

A tunnel decoder that finds fewer bytes than its header asks :func:`udp_cut` whether the
capture stopped inside the datagram (Length claims more: ``truncated_*``) or the datagram
really is that short (not the tunnel: it stays plain UDP, ``*_fallback_udp``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd16
from fabricscope.decode.protocols import P_END
from fabricscope.decode.slots import H_DPORT, H_SPORT
from fabricscope.decode.tables import T_UDP


@njit(inline="always", cache=True)
def udp_cut(buf: np.ndarray, pos: int, end: int) -> bool:
    """For the payload at ``pos`` of a UDP datagram (the header is the 8 octets before it):
    does the datagram's Length claim bytes beyond ``end``?"""
    ulen = rd16(buf, pos - 4)
    return ulen >= 8 and pos - 8 + ulen > end


@per_frame
def decode_udp(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
               ev: np.ndarray, tables: np.ndarray) -> tuple[int, int, int]:
    if end - pos < 8:
        event(ev, m, i, E.EV_TRUNCATED_UDP)
        return pos, end, P_END
    sport = rd16(buf, pos)
    dport = rd16(buf, pos + 2)
    s[H_SPORT] = sport
    s[H_DPORT] = dport
    ulen = rd16(buf, pos + 4)
    if ulen >= 8 and pos + ulen < end:
        end = pos + ulen
    return pos + 8, end, tables[T_UDP, dport]

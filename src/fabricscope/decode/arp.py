# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""ARP (RFC 826) for IPv4 over Ethernet: sender and target protocol addresses.

::

    | HTYPE (2) | PTYPE (2) | HLEN (1) | PLEN (1) | OPER (2) |
    | SHA (HLEN) | SPA (PLEN) | THA (HLEN) | TPA (PLEN) |

For ARP records ``src``/``dst`` hold SPA/TPA (``ip_ver`` 4, ``proto`` absent) and
``icmp_type`` is not used; ``ethertype`` 0x0806 tells them apart. Learning from traffic uses
them (who is behind which VTEP).
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import IPV4_MAPPED_PREFIX, event, per_frame, rd8, rd16, rd32
from fabricscope.decode.protocols import P_END
from fabricscope.decode.slots import H_DST_HI, H_DST_LO, H_IPVER, H_SRC_HI, H_SRC_LO


@per_frame
def decode_arp(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
               ev: np.ndarray) -> tuple[int, int]:
    if end - pos < 8:
        event(ev, m, i, E.EV_TRUNCATED_ARP)
        return pos, P_END
    ptype = rd16(buf, pos + 2)
    hlen = rd8(buf, pos + 4)
    plen = rd8(buf, pos + 5)
    if ptype != 0x0800 or plen != 4:
        return pos + 8, P_END
    need = 8 + 2 * hlen + 2 * plen
    if end - pos < need:
        event(ev, m, i, E.EV_TRUNCATED_ARP)
        return pos, P_END
    s[H_IPVER] = 4
    s[H_SRC_HI] = 0
    s[H_SRC_LO] = IPV4_MAPPED_PREFIX | rd32(buf, pos + 8 + hlen)
    s[H_DST_HI] = 0
    s[H_DST_LO] = IPV4_MAPPED_PREFIX | rd32(buf, pos + 8 + 2 * hlen + plen)
    return pos + need, P_END

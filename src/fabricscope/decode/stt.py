# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""STT (draft-davie-stt; TCP port 7471): a TCP-like header, then the STT frame header.

The TCP header is decoded by tcp.py; its sequence number carries the STT frame length
(upper 16 bits) and the fragment offset (lower 16 bits): only the first segment
(offset 0) holds the STT frame header, 18 octets::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |    Version    | Flags         |  L4 Offset    |  Reserved     |
    |    Max. Segment Size          | PCP |V|     VLAN ID           |
    +                     Context ID (64 bits)                      +
    |     Padding                   |    data (Ethernet frame)      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Version must be 0, else the segment stays plain TCP (``stt_bad_header``). The context id
(the OVS tunnel key) goes to ``vni``; later segments of a frame carry no header and are
reported as ``stt`` with the context unknown.
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd8, rd16, rd64
from fabricscope.decode.protocols import P_END, P_ETH, TUN_STT
from fabricscope.decode.slots import X_PT_TYPE, X_PT_VNI


@per_frame
def decode_stt(buf: np.ndarray, pos: int, end: int, tcp_pos: int, s: np.ndarray,
               m: np.ndarray, i: int, ev: np.ndarray) -> tuple[int, int]:
    """``pos``: after the TCP header; ``tcp_pos``: start of the TCP header."""
    frag_off = rd16(buf, tcp_pos + 6)  # low 16 bits of the sequence number
    if frag_off != 0:
        s[X_PT_TYPE] = TUN_STT
        return pos, P_END
    if end - pos < 18:
        event(ev, m, i, E.EV_TRUNCATED_STT)
        return pos, P_END
    if rd8(buf, pos) != 0:
        event(ev, m, i, E.EV_STT_BAD)
        return pos, P_END
    s[X_PT_TYPE] = TUN_STT
    s[X_PT_VNI] = rd64(buf, pos + 8)
    return pos + 18, P_ETH

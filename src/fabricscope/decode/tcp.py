# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""TCP (RFC 9293): ports and flags; the destination port selects STT (7471).

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |          Source Port          |       Destination Port        |
    |                        Sequence Number                        |
    |                    Acknowledgment Number                      |
    |  Data |       |C|E|U|A|P|R|S|F|                               |
    | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
    |           Checksum            |         Urgent Pointer        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

``tcp_flags`` holds the low 9 bits of the offset/flags word (NS..FIN).
The header is Data Offset x 4 octets; if the capture ends inside it (options included)
the record is marked ``truncated_tcp``, keeping the ports and flags when they were
captured.
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd16
from fabricscope.decode.protocols import P_END
from fabricscope.decode.slots import H_DPORT, H_SPORT, H_TCP_FLAGS
from fabricscope.decode.tables import T_TCP


@per_frame
def decode_tcp(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
               ev: np.ndarray, tables: np.ndarray) -> tuple[int, int]:
    if end - pos < 4:
        event(ev, m, i, E.EV_TRUNCATED_TCP)
        return pos, P_END
    sport = rd16(buf, pos)
    dport = rd16(buf, pos + 2)
    s[H_SPORT] = sport
    s[H_DPORT] = dport
    if end - pos < 14:
        event(ev, m, i, E.EV_TRUNCATED_TCP)
        return pos, P_END
    w = rd16(buf, pos + 12)
    s[H_TCP_FLAGS] = w & 0x1FF
    off = (w >> 12) * 4
    if off < 20:
        event(ev, m, i, E.EV_TCP_BAD_OFFSET)
        return pos, P_END
    if end - pos < off:  # the header (options too) was cut: ports and flags are kept
        event(ev, m, i, E.EV_TRUNCATED_TCP)
        return pos, P_END
    return pos + off, tables[T_TCP, dport]

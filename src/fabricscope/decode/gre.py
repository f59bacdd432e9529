# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""GRE (RFC 2784, key and sequence RFC 2890, routing RFC 1701), NVGRE (RFC 7637),
enhanced GRE v1 (RFC 2637, PPTP).

GRE v0::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |C|R|K|S|s|Recur|  Flags  | Ver |         Protocol Type         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |      Checksum (optional)      |       Offset (optional)       |  C or R
    |                         Key (optional)                        |  K
    |                 Sequence Number (optional)                    |  S
    |                         Routing (optional)                    |  R: SRE list
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

NVGRE: Protocol 0x6558 with only the K bit; Key = VSID (24 bits) << 8 | FlowID (8 bits).
A keyed GRE carrying Ethernet (OVS ``gre`` ports, Neutron GRE networks) has the same
layout; with ``gre_teb_as_nvgre`` (default on) it is reported as ``nvgre`` with
vni = VSID, ``a`` = FlowID; off, as ``gre`` with vni = the whole key. Other GRE: ``vni``
is the key (absent without K), ``b`` the flag word.

GRE v1 (PPTP)::

    |C|R|K|S|s|Recur|A| Flags | Ver |   Protocol Type (0x880B)      |
    |    Key (HW) Payload Length    |       Key (LW) Call ID        |
    |                 Sequence Number (optional)                    |
    |               Acknowledgment Number (optional)                |

Payload by protocol type: 0x6558 Ethernet, 0x0800/0x86DD IP, 0x8847 MPLS, 0x88BE ERSPAN
type II (with S) or type I (without S, Ethernet follows directly), 0x22EB ERSPAN type III.
Anything else (keepalives, PPP) is counted as ``gre_unknown_payload`` and not decoded.
Routing entries (at most 32) end with a zero-length NULL SRE.
"""

from __future__ import annotations

import numpy as np

from fabricscope.decode import events as E
from fabricscope.decode.common import event, per_frame, rd8, rd16, rd32
from fabricscope.decode.protocols import (
    P_END,
    P_ERSPAN2,
    P_ERSPAN3,
    P_ETH,
    TUN_ERSPAN,
    TUN_GRE,
    TUN_NVGRE,
)
from fabricscope.decode.slots import X_PT_A, X_PT_B, X_PT_TYPE, X_PT_VNI
from fabricscope.decode.tables import PARAM_GRE_TEB_NVGRE, T_ETHERTYPE

MAX_SRE = 32


@per_frame
def decode_gre(buf: np.ndarray, pos: int, end: int, s: np.ndarray, m: np.ndarray, i: int,
               ev: np.ndarray, tables: np.ndarray, params: np.ndarray) -> tuple[int, int]:
    if end - pos < 4:
        event(ev, m, i, E.EV_TRUNCATED_GRE)
        return pos, P_END
    fl = rd16(buf, pos)
    proto = rd16(buf, pos + 2)
    ver = fl & 7
    p = pos + 4
    key = np.int64(-1)
    if ver == 0:
        if fl & 0xC000:  # checksum and offset, present if C or R
            p += 4
        if fl & 0x2000:
            if end - p < 4:
                event(ev, m, i, E.EV_TRUNCATED_GRE)
                return pos, P_END
            key = rd32(buf, p)
            p += 4
        if fl & 0x1000:
            p += 4
        if end - p < 0:
            event(ev, m, i, E.EV_TRUNCATED_GRE)
            return pos, P_END
        if fl & 0x4000:
            n = 0
            while True:
                if end - p < 4:
                    event(ev, m, i, E.EV_TRUNCATED_GRE)
                    return pos, P_END
                af = rd16(buf, p)
                slen = rd8(buf, p + 3)
                p += 4
                if af == 0 and slen == 0:
                    break
                p += slen
                n += 1
                if n > MAX_SRE:
                    event(ev, m, i, E.EV_GRE_BAD_ROUTING)
                    return pos, P_END
                if p > end:  # the entry runs past what was captured
                    event(ev, m, i, E.EV_TRUNCATED_GRE)
                    return pos, P_END
    elif ver == 1:
        if not fl & 0x2000 or end - p < 4:
            event(ev, m, i, E.EV_TRUNCATED_GRE)
            return pos, P_END
        key = rd32(buf, p) & 0xFFFF  # call id
        p += 4
        if fl & 0x1000:
            p += 4
        if fl & 0x0080:
            p += 4
        if p > end:  # no tunnel layer before its header was captured whole
            event(ev, m, i, E.EV_TRUNCATED_GRE)
            return pos, P_END
        s[X_PT_TYPE] = TUN_GRE
        s[X_PT_VNI] = key
        s[X_PT_B] = fl
        event(ev, m, i, E.EV_GRE_UNKNOWN_PAYLOAD)  # PPP is not decoded
        return p, P_END
    else:
        event(ev, m, i, E.EV_GRE_BAD_VERSION)
        return pos, P_END
    if p > end:
        event(ev, m, i, E.EV_TRUNCATED_GRE)
        return end, P_END
    if proto == 0x6558 and (fl & 0xF000) == 0x2000 and params[PARAM_GRE_TEB_NVGRE] != 0:
        s[X_PT_TYPE] = TUN_NVGRE
        s[X_PT_VNI] = (key >> 8) & 0xFFFFFF
        s[X_PT_A] = key & 0xFF
        return p, P_ETH
    if proto == 0x88BE or proto == 0x22EB:
        # ERSPAN: the GRE protocol names the layer (even if the ERSPAN header is cut);
        # decode_erspan adds the session id and version. Type I has no ERSPAN header.
        s[X_PT_TYPE] = TUN_ERSPAN
        if proto == 0x22EB:
            return p, P_ERSPAN3
        if fl & 0x1000:
            return p, P_ERSPAN2
        s[X_PT_B] = 0  # type I
        return p, P_ETH
    s[X_PT_TYPE] = TUN_GRE
    s[X_PT_VNI] = key
    s[X_PT_B] = fl
    nxt = tables[T_ETHERTYPE, proto]
    if nxt == P_END:
        event(ev, m, i, E.EV_GRE_UNKNOWN_PAYLOAD)
    return p, nxt

# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""The frame walk: decode one frame layer by layer, iteratively, into the slot matrix.

Each step calls one layer decoder, chosen by the ``P_*`` code the previous layer
returned (via the dispatch tables of ``tables.py``). A tunnel decoder does not recurse: it
leaves a *pending tunnel* in the working slots of the current header block; before the
next header block (Ethernet, IP, MPLS) starts, the walk *enters* the tunnel: it records
the layer (type, VNI, the enclosing addresses and ports) and goes on in the inner header
block (cleared first when it already held a level's headers). So the record keeps the
wire headers, every tunnel layer (outermost first) and the innermost headers
(Suricata-style linked layers, flattened into columns).

Bounds: at most ``MAX_STEPS`` layer steps per frame, at most ``max_depth`` tunnels; each
decoder length-checks every read; a decoder that cannot go on returns ``P_END``.

Speed: every layer decoder is decorated ``common.per_frame``: compiled without reference
counting (``_nrt=False``: they never allocate, and numba's counting of each array
argument at each call, a dozen atomic operations per layer, took half the walk's time)
and inlined into :func:`walk_frame`, which is one compiled function (a call passes each
array as a 7-9 word struct: 45 words a layer; inlined, the walk takes half the time).
:func:`walk_frame` is inlined into the batch loop below too (a call per frame cost the
packet walk 30-50% more time). The sFlow decoder calls the same compiled batch loop for
the sampled headers of a chunk, after the chunk's sFlow walk (``sflow/fused.py``): one
call per chunk instead of one per sample, and no second compilation of the walk (the
walk inlined into the sFlow walk itself made the first compilation take six minutes
instead of two; inlined into a loop of its own, a minute more). The matrix is pre-filled
with -1, and the layer decoders write straight into the record's header block (a view of
its column, ``s``): the walk used to decode into a scratch vector, reset it at every
frame and tunnel, and copy the present fields into the wire and inner blocks, which was a
third of its time (141 -> 69-120 ns a frame on the decode benchmark's mix).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fabricscope.decode import events as E
from fabricscope.decode import protocols as P
from fabricscope.decode.arp import decode_arp
from fabricscope.decode.common import event, no_refcount, per_frame
from fabricscope.decode.erspan import decode_erspan
from fabricscope.decode.ethernet import decode_ethernet
from fabricscope.decode.geneve import decode_geneve
from fabricscope.decode.gre import decode_gre
from fabricscope.decode.icmp import decode_icmp
from fabricscope.decode.ipv4 import decode_ipv4
from fabricscope.decode.ipv6 import decode_ipv6
from fabricscope.decode.linux_cooked import decode_null, decode_sll, decode_sll2
from fabricscope.decode.mpls import decode_mpls, decode_mpls_udp
from fabricscope.decode.nsh import decode_nsh
from fabricscope.decode.slots import (
    H_DPORT,
    H_DST_HI,
    H_DST_LO,
    H_IPVER,
    H_SPORT,
    H_SRC_HI,
    H_SRC_LO,
    INNER,
    M_CAPLEN,
    M_DEPTH,
    M_FILE_OFF,
    M_FRAME_LEN,
    M_GENEVE_LEN,
    M_GENEVE_OFF,
    M_IFACE,
    M_LINKTYPE,
    M_PAYLOAD,
    M_PAYLOAD_END,
    M_TS,
    M_TS_PREC,
    NT,
    NX,
    T_A,
    T_B,
    T_DPORT,
    T_DST_HI,
    T_DST_LO,
    T_IPVER,
    T_SPORT,
    T_SRC_HI,
    T_SRC_LO,
    T_TYPE,
    T_VNI,
    TUN,
    WIRE,
    X_PT_A,
    X_PT_B,
    X_PT_GLEN,
    X_PT_GOFF,
    X_PT_TYPE,
    X_PT_VNI,
)
from fabricscope.decode.stt import decode_stt
from fabricscope.decode.tables import PARAM_MAX_DEPTH
from fabricscope.decode.tcp import decode_tcp
from fabricscope.decode.udp import decode_udp
from fabricscope.decode.vxlan import decode_vxlan, decode_vxlan_gpe

MAX_STEPS = 64

# link types (capture/linktypes.py holds the full table)
_LT_NULL = 0
_LT_ETHERNET = 1
_LT_RAW_12 = 12
_LT_RAW_14 = 14
_LT_RAW = 101
_LT_LOOP = 108
_LT_SLL = 113
_LT_IPV4 = 228
_LT_IPV6 = 229
_LT_SLL2 = 276


@njit(inline="always", cache=True)
def _is_header(nxt: int) -> bool:
    return (nxt == P.P_ETH or nxt == P.P_IPV4 or nxt == P.P_IPV6 or nxt == P.P_MPLS
            or nxt == P.P_IP_GUESS or nxt == P.P_ARP)


@per_frame
def _enter_tunnel(m: np.ndarray, i: int, s: np.ndarray, depth: int) -> None:
    base = TUN + depth * NT
    m[base + T_TYPE, i] = s[X_PT_TYPE]
    m[base + T_VNI, i] = s[X_PT_VNI]
    m[base + T_A, i] = s[X_PT_A]
    m[base + T_B, i] = s[X_PT_B]
    m[base + T_IPVER, i] = s[H_IPVER]
    if s[H_IPVER] > 0:
        m[base + T_SRC_HI, i] = s[H_SRC_HI]
        m[base + T_SRC_LO, i] = s[H_SRC_LO]
        m[base + T_DST_HI, i] = s[H_DST_HI]
        m[base + T_DST_LO, i] = s[H_DST_LO]
    m[base + T_SPORT, i] = s[H_SPORT]
    m[base + T_DPORT, i] = s[H_DPORT]
    if s[X_PT_TYPE] == P.TUN_GENEVE and m[M_GENEVE_OFF, i] < 0:
        m[M_GENEVE_OFF, i] = s[X_PT_GOFF]
        m[M_GENEVE_LEN, i] = s[X_PT_GLEN]
    if depth > 0:
        # the inner block held the headers of this level (now the layer's): cleared for
        # the next level (the wire block keeps its headers: the walk moves on to the inner)
        for k in range(NX):
            s[k] = -1


@per_frame
def walk_frame(buf: np.ndarray, start: int, end: int, linktype: int, m: np.ndarray, i: int,
               tables: np.ndarray, params: np.ndarray, ev: np.ndarray) -> int:
    """Decode the frame ``buf[start:end]`` into column ``i`` of ``m``; returns the depth.

    The caller has set ``m[:, i]`` to -1 (and the metadata slots it owns). The layer
    decoders write the fields of the level they decode into ``s``, the record's header
    block of that level (a view of ``m``: the wire block until the first tunnel is
    entered, then the inner block), so the fields are where they belong when the walk
    ends, without a copy.
    """
    s = m[WIRE:WIRE + NX, i]
    max_depth = params[PARAM_MAX_DEPTH]
    depth = 0
    pos = start
    if end > buf.shape[0]:
        end = buf.shape[0]
    if end <= start:
        event(ev, m, i, E.EV_FRAME_TOO_SHORT)
        m[M_DEPTH, i] = 0
        return 0
    nxt = P.P_END
    if linktype == _LT_ETHERNET:
        nxt = P.P_ETH
    elif linktype == _LT_RAW or linktype == _LT_RAW_12 or linktype == _LT_RAW_14:  # noqa: SIM109
        nxt = P.P_IP_GUESS
    elif linktype == _LT_SLL:
        pos, nxt = decode_sll(buf, pos, end, s, m, i, ev, tables)
    elif linktype == _LT_SLL2:
        pos, nxt = decode_sll2(buf, pos, end, s, m, i, ev, tables)
    elif linktype == _LT_IPV4:
        nxt = P.P_IPV4
    elif linktype == _LT_IPV6:
        nxt = P.P_IPV6
    elif linktype == _LT_NULL or linktype == _LT_LOOP:  # noqa: SIM109 (numba)
        pos, nxt = decode_null(buf, pos, end, m, i, ev)
    else:
        event(ev, m, i, E.EV_UNSUPPORTED_LINKTYPE)
    steps = 0
    tcp_pos = 0
    while nxt != P.P_END:
        steps += 1
        if steps > MAX_STEPS:
            event(ev, m, i, E.EV_LAYER_LOOP)
            break
        if nxt == P.P_IP_GUESS:
            if pos >= end:
                break
            nib = np.int64(buf[pos]) >> 4
            if nib == 4:
                nxt = P.P_IPV4
            elif nib == 6:
                nxt = P.P_IPV6
            else:
                break
        elif nxt == P.P_IPIP4 or nxt == P.P_IPIP6:
            s[X_PT_TYPE] = P.TUN_IPIP
            nxt = P.P_IPV4 if nxt == P.P_IPIP4 else P.P_IPV6
        if s[X_PT_TYPE] > 0 and _is_header(nxt):
            if depth >= max_depth:
                event(ev, m, i, E.EV_TUNNEL_DEPTH)
                s[X_PT_TYPE] = -1
                break
            _enter_tunnel(m, i, s, depth)
            depth += 1
            s = m[INNER:INNER + NX, i]
        if nxt == P.P_ETH:
            pos, nxt = decode_ethernet(buf, pos, end, s, m, i, ev, tables)
        elif nxt == P.P_IPV4:
            pos, end, nxt = decode_ipv4(buf, pos, end, s, m, i, ev, tables)
        elif nxt == P.P_IPV6:
            pos, end, nxt = decode_ipv6(buf, pos, end, s, m, i, ev, tables)
        elif nxt == P.P_UDP:
            pos, end, nxt = decode_udp(buf, pos, end, s, m, i, ev, tables)
        elif nxt == P.P_TCP:
            tcp_pos = pos
            pos, nxt = decode_tcp(buf, pos, end, s, m, i, ev, tables)
        elif nxt == P.P_VXLAN:
            pos, nxt = decode_vxlan(buf, pos, end, s, m, i, ev)
        elif nxt == P.P_GENEVE:
            pos, nxt = decode_geneve(buf, pos, end, s, m, i, ev, tables)
        elif nxt == P.P_GRE:
            pos, nxt = decode_gre(buf, pos, end, s, m, i, ev, tables, params)
        elif nxt == P.P_ICMP or nxt == P.P_ICMP6:
            pos, nxt = decode_icmp(buf, pos, end, s, m, i, ev)
        elif nxt == P.P_MPLS:
            pos, nxt = decode_mpls(buf, pos, end, s, m, i, ev)
        elif nxt == P.P_ARP:
            pos, nxt = decode_arp(buf, pos, end, s, m, i, ev)
        elif nxt == P.P_VXLAN_GPE:
            pos, nxt = decode_vxlan_gpe(buf, pos, end, s, m, i, ev)
        elif nxt == P.P_NSH:
            pos, nxt = decode_nsh(buf, pos, end, s, m, i, ev)
        elif nxt == P.P_STT:
            pos, nxt = decode_stt(buf, pos, end, tcp_pos, s, m, i, ev)
        elif nxt == P.P_ERSPAN2:
            pos, nxt = decode_erspan(buf, pos, end, s, m, i, ev, 1)
        elif nxt == P.P_ERSPAN3:
            pos, nxt = decode_erspan(buf, pos, end, s, m, i, ev, 2)
        elif nxt == P.P_MPLS_UDP:
            pos, nxt = decode_mpls_udp(buf, pos, end, s, m, i, ev)
        else:
            break
    if s[X_PT_TYPE] > 0:
        # a tunnel whose payload was not decoded (unknown, truncated): still a layer
        if depth < max_depth:
            _enter_tunnel(m, i, s, depth)
            depth += 1
        else:
            event(ev, m, i, E.EV_TUNNEL_DEPTH)
    m[M_DEPTH, i] = depth
    m[M_PAYLOAD, i] = pos
    m[M_PAYLOAD_END, i] = end
    return depth


@no_refcount
def walk_batch(buf: np.ndarray, offset: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray,
               ts_ns: np.ndarray, linktype: np.ndarray, iface: np.ndarray,
               ts_prec: np.ndarray, file_offset: np.ndarray, m: np.ndarray,
               tables: np.ndarray, params: np.ndarray, ev: np.ndarray) -> None:
    """Decode every frame of a capture batch; ``m`` must be pre-filled with -1 (the
    rows ``slots.reset_rows`` at least). A negative ``offset[i]``: no frame there, record
    ``i`` is left as it is (an sFlow sample without a sampled header: the sFlow walk
    calls this for the headers of a chunk, ``sflow/fused.py``)."""
    n = offset.shape[0]
    for i in range(n):
        st = offset[i]
        if st < 0:
            continue
        m[M_TS, i] = ts_ns[i]
        m[M_FRAME_LEN, i] = wirelen[i]
        m[M_CAPLEN, i] = caplen[i]
        m[M_LINKTYPE, i] = linktype[i]
        m[M_IFACE, i] = iface[i]
        m[M_TS_PREC, i] = ts_prec[i]
        m[M_FILE_OFF, i] = file_offset[i]
        # np.int64: one compiled signature for every caller (link types come as int32
        # here and int64 from the sFlow walk; each distinct signature compiles the whole
        # walk and every layer decoder again)
        walk_frame(buf, st, st + caplen[i], np.int64(linktype[i]), m, i, tables, params, ev)

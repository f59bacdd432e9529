"""sFlow version 5 datagrams -> slot matrices, in one numba walk over a batch of datagrams.

Specification: sFlow.org, "sFlow Version 5" (https://sflow.org/sflow_version_5.txt), with
the extensions "sFlow Tunnel Structures" (sflow_tunnels.txt: 0:1023..0:1030), "sFlow Port
Name" (0:1005 in sflow_host.txt/sflow_version_5 errata) and "sFlow Dropped Packet
Notification Structures" (sflow_drops.txt: discarded packet sample 0:5). Everything is XDR
(RFC 4506): big-endian 32-bit words, variable-length data carries a 32-bit length and is
padded to a multiple of 4 bytes.

Datagram::

    +--------------------------------------+
    | version (5)                          |
    | agent address type (1 IPv4, 2 IPv6)  |   0 = unknown: no address bytes follow
    | agent address (4 or 16 bytes)        |
    | sub-agent id                         |
    | datagram sequence number             |   per agent/sub-agent
    | uptime (ms)                          |
    | number of samples                    |
    +--------------------------------------+
    | data format | sample length | sample |   x number of samples
    +--------------------------------------+

    data format = enterprise (20 bits) << 12 | format (12 bits)

Samples (enterprise 0)::

    1 flow sample            3 expanded flow sample      5 discarded packet (drops ext.)
    +---------------------+  +-----------------------+  +-----------------------+
    | sequence number     |  | sequence number       |  | sequence number       |
    | source id (type<<24 |  | source id type        |  | source id type        |
    |   | index)          |  | source id index       |  | source id index       |
    | sampling rate       |  | sampling rate         |  | drops                 |
    | sample pool         |  | sample pool           |  | input ifIndex         |
    | drops               |  | drops                 |  | output ifIndex        |
    | input  (fmt<<30|val)|  | input format, value   |  | reason                |
    | output (fmt<<30|val)|  | output format, value  |  | number of records     |
    | number of records   |  | number of records     |  | flow records ...      |
    | flow records ...    |  | flow records ...      |  +-----------------------+
    +---------------------+  +-----------------------+

    2 counter sample: sequence number, source id, number of records, counter records
    4 expanded counter sample: sequence number, source id type, index, records

    interface format: 0 ifIndex (0x3FFFFFFF = internal), 1 packet discarded (value = reason),
    2 multiple output interfaces (value = count, 0 = unknown)

Records (``data format | length | data``); flow records decoded here::

    0:1    raw packet header: protocol, frame length, stripped, header length, header bytes
           (protocol 1 Ethernet, 11 IPv4, 12 IPv6 go through decode/walk.py)
    0:2    sampled Ethernet: length, src MAC (6+2 pad), dst MAC (6+2 pad), ethertype
    0:3    sampled IPv4: length, protocol, src, dst, sport, dport, TCP flags, TOS
    0:4    sampled IPv6: length, protocol, src (16), dst (16), sport, dport, flags, priority
    0:1001 extended switch: src VLAN, src priority, dst VLAN, dst priority
    0:1002 extended router: next hop (address), src mask, dst mask
    0:1003 extended gateway: next hop, AS, src AS, src peer AS, dst AS path
           (segments: type, count, ASes), communities (count, values), local pref
    0:1023/0:1024 extended IPv4 tunnel egress/ingress: a sampled IPv4 (outer header)
    0:1025/0:1026 extended IPv6 tunnel egress/ingress: a sampled IPv6
    0:1027/0:1028 extended decapsulate egress/ingress: inner header offset
    0:1029/0:1030 extended VNI egress/ingress: VNI

Counter records: 0:1 generic interface counters (88 bytes), 0:2 Ethernet interface counters
(52 bytes, fcs errors kept), 0:1005 port name (string, at most 255 bytes).

Hot helpers are inlined (``inline="always"``): a call between compiled functions passes
every array as seven scalars, which cost more than the helpers' work.

Bounds: every length and count is checked against the bytes left before it is used; a
loop over samples or records consumes at least 8 bytes per step, so a count of 0xFFFFFFFF
costs nothing; nothing is allocated from a count (the caller sizes its matrices with a
counting pass of this same walk, from bytes actually present). A datagram yields what was
decodable before a problem; the problem is a named event (``sflow/events.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fabricscope.decode.common import IPV4_MAPPED_PREFIX as _V4MAP_NP
from fabricscope.decode.common import no_refcount, rd32, rd48, rd64
from fabricscope.decode.events import TRUNC
from fabricscope.decode.slots import (
    H_DPORT,
    H_DST_HI,
    H_DST_LO,
    H_ETH_DST,
    H_ETH_SRC,
    H_ETHERTYPE,
    H_IPLEN,
    H_IPVER,
    H_PROTO,
    H_SPORT,
    H_SRC_HI,
    H_SRC_LO,
    H_TCP_FLAGS,
    H_TOS,
    M_CAPLEN,
    M_DEPTH,
    M_ERROR,
    M_FILE_OFF,
    M_FRAME_LEN,
    M_KIND,
    M_LINKTYPE,
    M_PAYLOAD,
    M_TRUNC,
    M_TS,
    M_TS_PREC,
    S_AGENT_HI,
    S_AGENT_LO,
    S_AGENT_VER,
    S_AS,
    S_DECAP_OFF,
    S_DGRAM,
    S_DISCARD_REASON,
    S_DROPS,
    S_DST_AS,
    S_DST_MASK,
    S_DST_VLAN,
    S_HDR_PROTO,
    S_IN_IF,
    S_IN_IF_FMT,
    S_NEXT_HOP_HI,
    S_NEXT_HOP_LO,
    S_NEXT_HOP_VER,
    S_OUT_IF,
    S_OUT_IF_FMT,
    S_PEER_AS,
    S_SAMPLE_POOL,
    S_SAMPLE_SEQ,
    S_SAMPLING_RATE,
    S_SEQ,
    S_SOURCE_ID,
    S_SRC_AS,
    S_SRC_MASK,
    S_SRC_VLAN,
    S_SUB_AGENT,
    S_TUN_DIR,
    S_TUN_DPORT,
    S_TUN_DST_HI,
    S_TUN_DST_LO,
    S_TUN_IPVER,
    S_TUN_PROTO,
    S_TUN_SPORT,
    S_TUN_SRC_HI,
    S_TUN_SRC_LO,
    S_TUN_VNI_IN,
    S_TUN_VNI_OUT,
    S_UPTIME,
    WIRE,
)
from fabricscope.sflow import events as E
from fabricscope.sflow.layout import (
    C_AGENT_HI,
    C_AGENT_LO,
    C_AGENT_VER,
    C_DGRAM,
    C_DIRECTION,
    C_FCS_ERRORS,
    C_IFINDEX,
    C_IFTYPE,
    C_IN_BCAST,
    C_IN_DISCARDS,
    C_IN_ERRORS,
    C_IN_MCAST,
    C_IN_OCTETS,
    C_IN_UCAST,
    C_IN_UNKNOWN,
    C_NAME_LEN,
    C_NAME_OFF,
    C_OUT_BCAST,
    C_OUT_DISCARDS,
    C_OUT_ERRORS,
    C_OUT_MCAST,
    C_OUT_OCTETS,
    C_OUT_UCAST,
    C_PROMISC,
    C_SAMPLE_SEQ,
    C_SEQ,
    C_SOURCE_ID,
    C_SPEED,
    C_STATUS,
    C_SUB_AGENT,
    C_TS,
    C_TS_PREC,
    C_UPTIME,
    D_AGENT_HI,
    D_AGENT_LO,
    D_AGENT_VER,
    D_COUNTERS,
    D_ERROR,
    D_FLOWS,
    D_NSAMPLES,
    D_SAMPLES,
    D_SEQ,
    D_SUB_AGENT,
    D_TS,
    D_UPTIME,
    D_VERSION,
    Q_DGRAM,
    Q_DROPS,
    Q_KIND,
    Q_SEQ,
    Q_SOURCE,
)

# sample formats (enterprise 0)
SAMPLE_FLOW = 1
SAMPLE_COUNTERS = 2
SAMPLE_FLOW_EXPANDED = 3
SAMPLE_COUNTERS_EXPANDED = 4
SAMPLE_DISCARD = 5

# flow record formats (enterprise 0)
REC_RAW_HEADER = 1
REC_ETHERNET = 2
REC_IPV4 = 3
REC_IPV6 = 4
REC_SWITCH = 1001
REC_ROUTER = 1002
REC_GATEWAY = 1003
REC_IPV4_TUNNEL_EGRESS = 1023
REC_IPV4_TUNNEL_INGRESS = 1024
REC_IPV6_TUNNEL_EGRESS = 1025
REC_IPV6_TUNNEL_INGRESS = 1026
REC_DECAP_EGRESS = 1027
REC_DECAP_INGRESS = 1028
REC_VNI_EGRESS = 1029
REC_VNI_INGRESS = 1030

# counter record formats (enterprise 0)
CREC_GENERIC = 1
CREC_ETHERNET = 2
CREC_PORT_NAME = 1005

# header protocols -> capture link types (decode/walk.py)
HP_ETHERNET = 1
HP_IPV4 = 11
HP_IPV6 = 12
_LT_ETHERNET = 1
_LT_IPV4 = 228
_LT_IPV6 = 229

# record kinds (records/schema.py)
_KIND_FLOW = 1
_KIND_DISCARD = 2
_KIND_COUNTERS = 3

# fixed sizes of the sample bodies up to and including their record count
_FIXED_FLOW = 32
_FIXED_FLOW_EXPANDED = 44
_FIXED_DISCARD = 32
_FIXED_COUNTERS = 12
_FIXED_COUNTERS_EXPANDED = 16

# scratch for the sampled Ethernet/IPv4/IPv6 records of one sample (used only when the
# sample has no raw packet header)
_T_ETH_LEN = 0
_T_ETH_SRC = 1
_T_ETH_DST = 2
_T_ETH_TYPE = 3
_T_IPVER = 4
_T_SRC_HI = 5
_T_SRC_LO = 6
_T_DST_HI = 7
_T_DST_LO = 8
_T_PROTO = 9
_T_SPORT = 10
_T_DPORT = 11
_T_FLAGS = 12
_T_TOS = 13
_T_IPLEN = 14
_NT = 15
NT_SCRATCH = _NT  # length of the scratch vector ``t`` the walk takes

# severities of the sFlow events, by code (kept here so that compiled code never depends
# on the order in which event tables were registered)
_SEV = np.zeros(128, dtype=np.int64)
for _code, _name, _sev, _doc in E.SFLOW_EVENTS:
    _SEV[_code] = _sev
_U32 = 0xFFFFFFFF
IPV4_MAPPED_PREFIX = int(_V4MAP_NP)


@njit(inline="always", cache=True)
def _pad4(n: int) -> int:
    return (n + 3) & ~3


@no_refcount
def _ev(ev: np.ndarray, m: np.ndarray, i: int, code: int, dg: np.ndarray, k: int) -> None:
    """Count sFlow event ``code``; mark record ``i`` (if >= 0) and datagram ``k``."""
    ev[code] += 1
    sev = _SEV[code]
    if sev != 0:
        if dg[D_ERROR, k] < 0:
            dg[D_ERROR, k] = code
        if i >= 0:
            if m[M_ERROR, i] < 0:
                m[M_ERROR, i] = code
            if sev == TRUNC:
                m[M_TRUNC, i] = 1


@no_refcount
def _address(buf: np.ndarray, pos: int, end: int) -> tuple[int, int, int, int, int]:
    """XDR address at ``pos`` -> (status, version, hi, lo, new pos).

    status 0 ok, 1 truncated, 2 unknown type. Version 0 for the UNKNOWN type (no bytes).
    """
    if end - pos < 4:
        return 1, 0, 0, 0, pos
    t = rd32(buf, pos)
    pos += 4
    if t == 1:
        if end - pos < 4:
            return 1, 0, 0, 0, pos
        return 0, 4, 0, IPV4_MAPPED_PREFIX | rd32(buf, pos), pos + 4
    if t == 2:
        if end - pos < 16:
            return 1, 0, 0, 0, pos
        return 0, 6, rd64(buf, pos), rd64(buf, pos + 8), pos + 16
    if t == 0:
        return 0, 0, 0, 0, pos
    return 2, 0, 0, 0, pos


@no_refcount
def _gateway(buf: np.ndarray, p: int, rend: int, m: np.ndarray, i: int, ev: np.ndarray,
             dg: np.ndarray, k: int) -> None:
    st, ver, hi, lo, p = _address(buf, p, rend)
    if st == 2:
        _ev(ev, m, i, E.EV_UNKNOWN_ADDRESS_TYPE, dg, k)
        return
    if st == 1 or rend - p < 16:
        _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
        return
    if ver > 0 and m[S_NEXT_HOP_VER, i] < 0:
        m[S_NEXT_HOP_VER, i] = ver
        m[S_NEXT_HOP_HI, i] = hi
        m[S_NEXT_HOP_LO, i] = lo
    m[S_AS, i] = rd32(buf, p)
    m[S_SRC_AS, i] = rd32(buf, p + 4)
    m[S_PEER_AS, i] = rd32(buf, p + 8)
    nseg = rd32(buf, p + 12)
    p += 16
    if nseg > (rend - p) // 8:
        _ev(ev, m, i, E.EV_COUNT_TOO_LARGE, dg, k)
        return
    last = -1
    for _ in range(nseg):
        if rend - p < 8:
            _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
            return
        cnt = rd32(buf, p + 4)
        p += 8
        if cnt > (rend - p) // 4:
            _ev(ev, m, i, E.EV_COUNT_TOO_LARGE, dg, k)
            return
        if cnt > 0:
            last = rd32(buf, p + 4 * (cnt - 1))
        p += 4 * cnt
    if last >= 0:
        m[S_DST_AS, i] = last
    # communities and local preference follow; nothing of them is kept, but their
    # counts are still checked
    if rend - p < 4:
        _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
        return
    ncom = rd32(buf, p)
    p += 4
    if ncom > (rend - p) // 4:
        _ev(ev, m, i, E.EV_COUNT_TOO_LARGE, dg, k)


@no_refcount
def _sampled_ip(buf: np.ndarray, p: int, v6: bool, t: np.ndarray) -> None:
    """Sampled IPv4 (32 bytes) / IPv6 (56 bytes) record at ``p`` into scratch ``t``."""
    t[_T_IPLEN] = rd32(buf, p)
    t[_T_PROTO] = rd32(buf, p + 4)
    if v6:
        t[_T_IPVER] = 6
        t[_T_SRC_HI] = rd64(buf, p + 8)
        t[_T_SRC_LO] = rd64(buf, p + 16)
        t[_T_DST_HI] = rd64(buf, p + 24)
        t[_T_DST_LO] = rd64(buf, p + 32)
        q = p + 40
    else:
        t[_T_IPVER] = 4
        t[_T_SRC_HI] = 0
        t[_T_SRC_LO] = IPV4_MAPPED_PREFIX | rd32(buf, p + 8)
        t[_T_DST_HI] = 0
        t[_T_DST_LO] = IPV4_MAPPED_PREFIX | rd32(buf, p + 12)
        q = p + 16
    t[_T_SPORT] = rd32(buf, q)
    t[_T_DPORT] = rd32(buf, q + 4)
    t[_T_FLAGS] = rd32(buf, q + 8)
    t[_T_TOS] = rd32(buf, q + 12)


@njit(inline="always", cache=True)
def _flow_records(buf: np.ndarray, pos: int, send: int, m: np.ndarray, i: int,
                  t: np.ndarray, ev: np.ndarray, dg: np.ndarray, k: int) -> None:
    """The ``flow_record<>`` list at ``pos`` (count first) of the sample ending at ``send``,
    into record ``i``."""
    for q in range(_NT):
        t[q] = -1
    if send - pos < 4:
        _ev(ev, m, i, E.EV_BAD_SAMPLE_LENGTH, dg, k)
        return
    nrec = rd32(buf, pos)
    pos += 4
    flagged = nrec > (send - pos) // 8
    if flagged:
        _ev(ev, m, i, E.EV_COUNT_TOO_LARGE, dg, k)
    have_header = False
    have_tunnel = False
    n = 0
    while n < nrec and send - pos >= 8:
        n += 1
        fmt = rd32(buf, pos)
        rlen = rd32(buf, pos + 4)
        p = pos + 8
        if rlen > send - p:
            _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
            flagged = True
            break
        rend = p + rlen
        pos = p + _pad4(rlen)
        if fmt >> 12 != 0:
            ev[E.EV_UNKNOWN_RECORD] += 1
            continue
        f = fmt & 0xFFF
        if f == REC_RAW_HEADER:
            if rlen < 16:
                _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            if have_header:
                ev[E.EV_DUPLICATE_RECORD] += 1
                continue
            have_header = True
            proto = rd32(buf, p)
            m[S_HDR_PROTO, i] = proto
            m[M_FRAME_LEN, i] = rd32(buf, p + 4)
            hl = rd32(buf, p + 12)
            hs = p + 16
            if hl > rend - hs:
                _ev(ev, m, i, E.EV_BAD_HEADER_LENGTH, dg, k)
                hl = rend - hs
            m[M_CAPLEN, i] = hl
            lt = -1
            if proto == HP_ETHERNET:
                lt = _LT_ETHERNET
            elif proto == HP_IPV4:
                lt = _LT_IPV4
            elif proto == HP_IPV6:
                lt = _LT_IPV6
            m[M_LINKTYPE, i] = lt
            if lt < 0:
                ev[E.EV_UNKNOWN_HEADER_PROTOCOL] += 1
                m[M_DEPTH, i] = 0
            else:
                # the packet walk of the header comes after the chunk's sFlow walk
                # (sflow/fused.py), from here: header at M_PAYLOAD, M_CAPLEN bytes
                m[M_PAYLOAD, i] = hs
        elif f == REC_SWITCH:
            if rlen < 16:
                _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            sv = rd32(buf, p)
            dv = rd32(buf, p + 8)
            if sv <= 0xFFFF:
                m[S_SRC_VLAN, i] = sv
            if dv <= 0xFFFF:
                m[S_DST_VLAN, i] = dv
        elif f == REC_ETHERNET:
            if rlen < 24:
                _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            t[_T_ETH_LEN] = rd32(buf, p)
            t[_T_ETH_SRC] = rd48(buf, p + 4)
            t[_T_ETH_DST] = rd48(buf, p + 12)
            t[_T_ETH_TYPE] = rd32(buf, p + 20) & 0xFFFF
        elif f in (REC_IPV4, REC_IPV6):
            v6 = f == REC_IPV6
            if rlen < (56 if v6 else 32):
                _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            _sampled_ip(buf, p, v6, t)
        elif f == REC_ROUTER:
            st, ver, hi, lo, q = _address(buf, p, rend)
            if st == 2:
                _ev(ev, m, i, E.EV_UNKNOWN_ADDRESS_TYPE, dg, k)
                continue
            if st == 1 or rend - q < 8:
                _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            if ver > 0:
                m[S_NEXT_HOP_VER, i] = ver
                m[S_NEXT_HOP_HI, i] = hi
                m[S_NEXT_HOP_LO, i] = lo
            m[S_SRC_MASK, i] = rd32(buf, q) & 0xFF
            m[S_DST_MASK, i] = rd32(buf, q + 4) & 0xFF
        elif f == REC_GATEWAY:
            _gateway(buf, p, rend, m, i, ev, dg, k)
        elif f >= REC_IPV4_TUNNEL_EGRESS and f <= REC_IPV6_TUNNEL_INGRESS:
            v6 = f >= REC_IPV6_TUNNEL_EGRESS
            if rlen < (56 if v6 else 32):
                _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            if have_tunnel:
                ev[E.EV_DUPLICATE_RECORD] += 1
                continue
            have_tunnel = True
            m[S_TUN_DIR, i] = 1 if (f in (REC_IPV4_TUNNEL_EGRESS, REC_IPV6_TUNNEL_EGRESS)) else 2
            m[S_TUN_PROTO, i] = rd32(buf, p + 4) & 0xFF
            if v6:
                m[S_TUN_IPVER, i] = 6
                m[S_TUN_SRC_HI, i] = rd64(buf, p + 8)
                m[S_TUN_SRC_LO, i] = rd64(buf, p + 16)
                m[S_TUN_DST_HI, i] = rd64(buf, p + 24)
                m[S_TUN_DST_LO, i] = rd64(buf, p + 32)
                q = p + 40
            else:
                m[S_TUN_IPVER, i] = 4
                m[S_TUN_SRC_HI, i] = 0
                m[S_TUN_SRC_LO, i] = IPV4_MAPPED_PREFIX | rd32(buf, p + 8)
                m[S_TUN_DST_HI, i] = 0
                m[S_TUN_DST_LO, i] = IPV4_MAPPED_PREFIX | rd32(buf, p + 12)
                q = p + 16
            m[S_TUN_SPORT, i] = rd32(buf, q) & 0xFFFF
            m[S_TUN_DPORT, i] = rd32(buf, q + 4) & 0xFFFF
        elif f in (REC_DECAP_EGRESS, REC_DECAP_INGRESS):
            if rlen < 4:
                _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            m[S_DECAP_OFF, i] = rd32(buf, p)
        elif f in (REC_VNI_EGRESS, REC_VNI_INGRESS):
            if rlen < 4:
                _ev(ev, m, i, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            m[S_TUN_VNI_OUT if f == REC_VNI_EGRESS else S_TUN_VNI_IN, i] = rd32(buf, p)
        else:
            ev[E.EV_UNKNOWN_RECORD] += 1
    if n < nrec and not flagged:
        # the bytes ran out before the declared number of records
        _ev(ev, m, i, E.EV_COUNT_TOO_LARGE, dg, k)
    if not have_header:
        m[M_DEPTH, i] = 0
        if t[_T_ETH_SRC] >= 0:
            m[WIRE + H_ETH_SRC, i] = t[_T_ETH_SRC]
            m[WIRE + H_ETH_DST, i] = t[_T_ETH_DST]
            m[WIRE + H_ETHERTYPE, i] = t[_T_ETH_TYPE]
            m[M_FRAME_LEN, i] = t[_T_ETH_LEN]
        if t[_T_IPVER] > 0:
            m[WIRE + H_IPVER, i] = t[_T_IPVER]
            m[WIRE + H_SRC_HI, i] = t[_T_SRC_HI]
            m[WIRE + H_SRC_LO, i] = t[_T_SRC_LO]
            m[WIRE + H_DST_HI, i] = t[_T_DST_HI]
            m[WIRE + H_DST_LO, i] = t[_T_DST_LO]
            m[WIRE + H_PROTO, i] = t[_T_PROTO] & 0xFF
            m[WIRE + H_SPORT, i] = t[_T_SPORT] & 0xFFFF
            m[WIRE + H_DPORT, i] = t[_T_DPORT] & 0xFFFF
            m[WIRE + H_TCP_FLAGS, i] = t[_T_FLAGS] & 0xFFFF
            m[WIRE + H_TOS, i] = t[_T_TOS] & 0xFF
            m[WIRE + H_IPLEN, i] = t[_T_IPLEN]
            if m[M_FRAME_LEN, i] < 0:
                m[M_FRAME_LEN, i] = t[_T_IPLEN]
            if m[WIRE + H_ETHERTYPE, i] < 0:
                m[WIRE + H_ETHERTYPE, i] = 0x0800 if t[_T_IPVER] == 4 else 0x86DD


@no_refcount
def _counter_records(buf: np.ndarray, pos: int, send: int, cm: np.ndarray, j: int,
                     ev: np.ndarray, m: np.ndarray, dg: np.ndarray, k: int) -> None:
    if send - pos < 4:
        _ev(ev, m, -1, E.EV_BAD_SAMPLE_LENGTH, dg, k)
        return
    nrec = rd32(buf, pos)
    pos += 4
    flagged = nrec > (send - pos) // 8
    if flagged:
        _ev(ev, m, -1, E.EV_COUNT_TOO_LARGE, dg, k)
    n = 0
    while n < nrec and send - pos >= 8:
        n += 1
        fmt = rd32(buf, pos)
        rlen = rd32(buf, pos + 4)
        p = pos + 8
        if rlen > send - p:
            _ev(ev, m, -1, E.EV_BAD_RECORD_LENGTH, dg, k)
            flagged = True
            break
        pos = p + _pad4(rlen)
        if fmt == CREC_GENERIC:
            if rlen < 88:
                _ev(ev, m, -1, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            cm[C_IFINDEX, j] = rd32(buf, p)
            cm[C_IFTYPE, j] = rd32(buf, p + 4)
            cm[C_SPEED, j] = rd64(buf, p + 8)
            cm[C_DIRECTION, j] = rd32(buf, p + 16) & 0xFF
            cm[C_STATUS, j] = rd32(buf, p + 20) & 0xFF
            cm[C_IN_OCTETS, j] = rd64(buf, p + 24)
            cm[C_IN_UCAST, j] = rd32(buf, p + 32)
            cm[C_IN_MCAST, j] = rd32(buf, p + 36)
            cm[C_IN_BCAST, j] = rd32(buf, p + 40)
            cm[C_IN_DISCARDS, j] = rd32(buf, p + 44)
            cm[C_IN_ERRORS, j] = rd32(buf, p + 48)
            cm[C_IN_UNKNOWN, j] = rd32(buf, p + 52)
            cm[C_OUT_OCTETS, j] = rd64(buf, p + 56)
            cm[C_OUT_UCAST, j] = rd32(buf, p + 64)
            cm[C_OUT_MCAST, j] = rd32(buf, p + 68)
            cm[C_OUT_BCAST, j] = rd32(buf, p + 72)
            cm[C_OUT_DISCARDS, j] = rd32(buf, p + 76)
            cm[C_OUT_ERRORS, j] = rd32(buf, p + 80)
            cm[C_PROMISC, j] = rd32(buf, p + 84) & 0xFF
        elif fmt == CREC_ETHERNET:
            if rlen < 52:
                _ev(ev, m, -1, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            cm[C_FCS_ERRORS, j] = rd32(buf, p + 4)
        elif fmt == CREC_PORT_NAME:
            if rlen < 4:
                _ev(ev, m, -1, E.EV_BAD_RECORD_LENGTH, dg, k)
                continue
            nl = rd32(buf, p)
            if nl > 255 or nl > rlen - 4:
                _ev(ev, m, -1, E.EV_BAD_STRING_LENGTH, dg, k)
                continue
            cm[C_NAME_OFF, j] = p + 4
            cm[C_NAME_LEN, j] = nl
        else:
            ev[E.EV_UNKNOWN_COUNTER_RECORD] += 1
    if n < nrec and not flagged:
        _ev(ev, m, -1, E.EV_COUNT_TOO_LARGE, dg, k)


@njit(inline="always", cache=True)
def _sample_at(buf: np.ndarray, pos: int, end: int) -> tuple[int, int, int, int, int, bool]:
    """The sample whose header is at ``pos`` (8 bytes there are guaranteed) ->
    (format, body start, body end, next sample, kind, cut).

    ``kind``: a records.schema KIND_* when the sample yields a row, 0 for an unknown
    format, minus the KIND_* when its body is too short for its fixed fields; ``cut`` when
    its length runs past ``end`` (the body is then clipped to ``end``).
    """
    fmt = rd32(buf, pos)
    slen = rd32(buf, pos + 4)
    p = pos + 8
    send = p + slen
    cut = False
    if slen > end - p:
        send = end
        cut = True
    nxt = p + _pad4(slen)
    kind = 0
    fixed = 0
    if fmt == SAMPLE_FLOW:
        kind = _KIND_FLOW
        fixed = _FIXED_FLOW
    elif fmt == SAMPLE_FLOW_EXPANDED:
        kind = _KIND_FLOW
        fixed = _FIXED_FLOW_EXPANDED
    elif fmt == SAMPLE_DISCARD:
        kind = _KIND_DISCARD
        fixed = _FIXED_DISCARD
    elif fmt == SAMPLE_COUNTERS:
        kind = _KIND_COUNTERS
        fixed = _FIXED_COUNTERS
    elif fmt == SAMPLE_COUNTERS_EXPANDED:
        kind = _KIND_COUNTERS
        fixed = _FIXED_COUNTERS_EXPANDED
    if kind != 0 and send - p < fixed:  # the fixed fields, record count included
        kind = -kind
    return fmt, p, send, nxt, kind, cut


@njit(inline="always", cache=True)
def _header(buf: np.ndarray, pos: int, end: int
            ) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """Datagram header -> (event or 0, version, agent ver, hi, lo, sub-agent, sequence,
    uptime, number of samples, position of the first sample)."""
    if end - pos < 4:
        return E.EV_TRUNCATED_DATAGRAM, -1, 0, 0, 0, 0, 0, 0, 0, pos
    version = rd32(buf, pos)
    if version != 5:
        return E.EV_BAD_VERSION, version, 0, 0, 0, 0, 0, 0, 0, pos
    st, aver, ahi, alo, pos = _address(buf, pos + 4, end)
    if st == 2:
        return E.EV_UNKNOWN_ADDRESS_TYPE, version, 0, 0, 0, 0, 0, 0, 0, pos
    if st == 1 or end - pos < 16:
        return E.EV_TRUNCATED_DATAGRAM, version, 0, 0, 0, 0, 0, 0, 0, pos
    return (0, version, aver, ahi, alo, rd32(buf, pos), rd32(buf, pos + 4),
            rd32(buf, pos + 8), rd32(buf, pos + 12), pos + 16)


@njit(inline="always", cache=True)
def count_rows(buf: np.ndarray, pos: int, end: int, nsamp: int) -> tuple[int, int]:
    """(flow/discard records, counter rows) the samples from ``pos`` will yield."""
    nf = 0
    nc = 0
    n = 0
    while n < nsamp and end - pos >= 8:
        n += 1
        _fmt, _p, _send, pos, kind, cut = _sample_at(buf, pos, end)
        if kind == _KIND_COUNTERS:
            nc += 1
        elif kind > 0:
            nf += 1
        if cut:
            break
    return nf, nc


@no_refcount
def walk_datagrams(buf: np.ndarray, offset: np.ndarray, length: np.ndarray,
                   truncated: np.ndarray, ts_ns: np.ndarray, ts_prec: np.ndarray,
                   file_offset: np.ndarray, dgram_base: int, k0: int, m: np.ndarray,
                   cap_rec: int, cm: np.ndarray, cap_cnt: int, sq: np.ndarray,
                   dg: np.ndarray, ev: np.ndarray, t: np.ndarray, j0: int,
                   q0: int) -> tuple[int, int, int, int]:
    """Walk datagrams ``k0, k0 + 1, ...``, datagram ``k`` being
    ``buf[offset[k] : offset[k] + length[k]]``, until all are done or the next one's rows
    would not fit: at most ``cap_rec`` records in ``m`` (from column 0) and counter rows
    in ``cm`` up to ``cap_cnt`` (from row ``j0``; both pre-set to -1; ``sq`` has room for
    the samples from column ``q0``, every row of which is written here for each sample;
    ``dg`` one column per datagram, pre-set to -1).
    ``t`` is a scratch vector (``_NT`` int64); the sampled headers are left for
    ``sflow.fused.walk_headers``. -> (next datagram,
    records, next counter row, next sample column).

    ``truncated[k]`` is 1 when the datagram is known to be cut short (capture length below
    the wire length, a receive buffer too small): running past its end is then
    ``sflow_truncated_datagram`` rather than a bad length. The number of rows a datagram
    yields is counted from its sample headers (bytes that are there) before it is filled.
    """
    i = 0  # next record
    j = j0  # next counter row
    q = q0  # next sequence column
    nd = offset.shape[0]
    bufend = buf.shape[0]
    for k in range(k0, nd):
        pos = offset[k]
        end = pos + length[k]
        if end > bufend:
            end = bufend
        code, version, aver, ahi, alo, sub, seq, up, nsamp, pos = _header(buf, pos, end)
        # a datagram yields at most nsamp rows: the exact count (a second pass over its
        # sample headers, ~5 ns a sample) only when that bound does not fit
        if code == 0 and (i + nsamp > cap_rec or j + nsamp > cap_cnt):
            nf, nc = count_rows(buf, pos, end, nsamp)
            if i + nf > cap_rec or j + nc > cap_cnt:
                return k, i, j, q
        ts = ts_ns[k]
        prec = ts_prec[k]
        foff = file_offset[k]
        cut_ev = E.EV_TRUNCATED_DATAGRAM if truncated[k] else E.EV_BAD_SAMPLE_LENGTH
        dg[D_TS, k] = ts
        dg[D_SAMPLES, k] = 0
        dg[D_FLOWS, k] = 0
        dg[D_COUNTERS, k] = 0
        dg[D_VERSION, k] = version
        if code != 0:
            _ev(ev, m, -1, code, dg, k)
            continue
        if aver > 0:
            dg[D_AGENT_VER, k] = aver
            dg[D_AGENT_HI, k] = ahi
            dg[D_AGENT_LO, k] = alo
        dg[D_SUB_AGENT, k] = sub
        dg[D_SEQ, k] = seq
        dg[D_UPTIME, k] = up
        dg[D_NSAMPLES, k] = nsamp
        flagged = nsamp > (end - pos) // 8
        if flagged:
            _ev(ev, m, -1, E.EV_TRUNCATED_DATAGRAM if truncated[k]
                else E.EV_COUNT_TOO_LARGE, dg, k)
        n = 0
        stop = False
        while n < nsamp and end - pos >= 8 and not stop:
            n += 1
            f, p, send, pos, kind, stop = _sample_at(buf, pos, end)
            dg[D_SAMPLES, k] += 1
            if kind <= 0:
                if kind == 0:
                    ev[E.EV_UNKNOWN_SAMPLE] += 1
                if stop:
                    _ev(ev, m, -1, cut_ev, dg, k)
                elif kind < 0:
                    _ev(ev, m, -1, E.EV_BAD_SAMPLE_LENGTH, dg, k)
                continue
            sseq = rd32(buf, p)
            sq[Q_DGRAM, q] = k
            sq[Q_KIND, q] = kind
            sq[Q_SEQ, q] = sseq
            if f in (SAMPLE_FLOW, SAMPLE_COUNTERS):
                sid = rd32(buf, p + 4)
                stype = sid >> 24
                sidx = sid & 0xFFFFFF
                b = p + 8
            else:
                stype = rd32(buf, p + 4)
                sidx = rd32(buf, p + 8)
                if sidx <= 0xFFFFFF:
                    sid = ((stype << 24) | sidx) & _U32
                else:
                    sid = sidx
                b = p + 12
            sq[Q_SOURCE, q] = ((stype & 0xFFFFFFFF) << 32) | sidx
            if kind == _KIND_COUNTERS:
                dg[D_COUNTERS, k] += 1
                cm[C_TS, j] = ts
                cm[C_TS_PREC, j] = prec
                cm[C_DGRAM, j] = dgram_base + k
                if aver > 0:
                    cm[C_AGENT_VER, j] = aver
                    cm[C_AGENT_HI, j] = ahi
                    cm[C_AGENT_LO, j] = alo
                cm[C_SUB_AGENT, j] = sub
                cm[C_SEQ, j] = seq
                cm[C_UPTIME, j] = up
                cm[C_SAMPLE_SEQ, j] = sseq
                cm[C_SOURCE_ID, j] = sid
                _counter_records(buf, b, send, cm, j, ev, m, dg, k)
                if cm[C_IFINDEX, j] < 0 and stype == 0:
                    cm[C_IFINDEX, j] = sidx
                if stop:
                    _ev(ev, m, -1, cut_ev, dg, k)
                sq[Q_DROPS, q] = -1
                j += 1
                q += 1
                continue
            dg[D_FLOWS, k] += 1
            m[M_KIND, i] = kind
            m[M_TS, i] = ts
            m[M_TS_PREC, i] = prec
            m[M_FILE_OFF, i] = foff
            m[S_DGRAM, i] = dgram_base + k
            if aver > 0:
                m[S_AGENT_VER, i] = aver
                m[S_AGENT_HI, i] = ahi
                m[S_AGENT_LO, i] = alo
            m[S_SUB_AGENT, i] = sub
            m[S_SEQ, i] = seq
            m[S_UPTIME, i] = up
            m[S_SAMPLE_SEQ, i] = sseq
            m[S_SOURCE_ID, i] = sid
            if kind == _KIND_DISCARD:
                drops = rd32(buf, b)
                m[S_DROPS, i] = drops
                m[S_IN_IF, i] = rd32(buf, b + 4)
                m[S_IN_IF_FMT, i] = 0
                m[S_OUT_IF, i] = rd32(buf, b + 8)
                m[S_OUT_IF_FMT, i] = 0
                m[S_DISCARD_REASON, i] = rd32(buf, b + 12)
                rl = b + 16
            else:
                m[S_SAMPLING_RATE, i] = rd32(buf, b)
                m[S_SAMPLE_POOL, i] = rd32(buf, b + 4)
                drops = rd32(buf, b + 8)
                m[S_DROPS, i] = drops
                if f == SAMPLE_FLOW:
                    vin = rd32(buf, b + 12)
                    vout = rd32(buf, b + 16)
                    fin = vin >> 30
                    vin &= 0x3FFFFFFF
                    fout = vout >> 30
                    vout &= 0x3FFFFFFF
                    rl = b + 20
                else:
                    fin = rd32(buf, b + 12)
                    vin = rd32(buf, b + 16)
                    fout = rd32(buf, b + 20)
                    vout = rd32(buf, b + 24)
                    rl = b + 28
                m[S_IN_IF, i] = vin
                m[S_IN_IF_FMT, i] = fin if fin <= 0xFF else 0xFF
                m[S_OUT_IF, i] = vout
                m[S_OUT_IF_FMT, i] = fout if fout <= 0xFF else 0xFF
                if fout == 1:
                    m[S_DISCARD_REASON, i] = vout
            sq[Q_DROPS, q] = drops
            if stop:
                _ev(ev, m, i, cut_ev, dg, k)
            _flow_records(buf, rl, send, m, i, t, ev, dg, k)
            i += 1
            q += 1
        if n < nsamp and not stop and not flagged:
            _ev(ev, m, -1, cut_ev if truncated[k] else E.EV_COUNT_TOO_LARGE, dg, k)
        elif n == nsamp and end - pos > 0 and not stop:
            ev[E.EV_TRAILING_BYTES] += 1
    return nd, i, j, q

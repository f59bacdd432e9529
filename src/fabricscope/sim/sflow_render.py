# mypy: disable-error-code="no-any-return,assignment,arg-type"
"""Render packets and sFlow v5 datagrams from sample columns (numba, no object per sample).

Sampled packet (the first 128 bytes as the switch received them)::

    Ethernet | IPv4 (20) or IPv6 (40) | UDP + VXLAN (8+8) or UDP + GENEVE (8+8)
             | or GRE with key (NVGRE, 8) | inner Ethernet | [MPLS label, networking-sfc]
             | inner IPv4 | TCP (20) / UDP (8) / ICMP echo (8) | zero payload

sFlow v5 datagram (sFlow.org, "sFlow Version 5", 2004), all fields big-endian XDR::

    version=5 | agent address type=1 | agent (IPv4) | sub_agent_id=0 | sequence_number
    | uptime (ms) | n_samples | samples...

    flow_sample (0:1, compact; leaves)       flow_sample_expanded (0:3; spines)
      seq | source_id (0<<24|ifIndex)          seq | 0 | ifIndex
      rate | pool | drops                      rate | pool | drops
      input | output (ifIndex)                 0 | input | 0 | output
      n_records=2                              n_records=2
      record 0:1 raw header: header_protocol=1 (Ethernet) | frame_length (with FCS)
                             | stripped=4 | header_length | header bytes (padded to 4)
      record 0:1001 extended switch: src_vlan | src_priority | dst_vlan | dst_priority

    counters_sample (0:2, compact; leaves)   counters_sample_expanded (0:4; spines)
      seq | source_id | n_records=2            seq | 0 | ifIndex | n_records=2
      record 0:1 generic interface counters (88 bytes: ifIndex, ifType=6, ifSpeed,
             ifDirection=1, ifStatus=3, in octets/ucast/mcast/bcast/discards/errors/unknown,
             out octets/ucast/mcast/bcast/discards/errors, promiscuous=0)
      record 0:1005 port name (string)

Each datagram travels in Ethernet/IPv4/UDP (agent:50000+n -> collector:6343).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

HDR = 128  # snap length of sampled headers
FRAME_OVERHEAD = 42  # Ethernet + IPv4 + UDP around each datagram
DATAGRAM_BUDGET = 1400  # bytes of sFlow payload per datagram (fits a 1500-byte MTU)
SFLOW_PORT = 6343


@njit(cache=True, inline="always")
def _w16(o: NDArray[np.uint8], p: int, v: int) -> None:
    o[p] = (v >> 8) & 0xFF
    o[p + 1] = v & 0xFF


@njit(cache=True, inline="always")
def _w32(o: NDArray[np.uint8], p: int, v: int) -> None:
    o[p] = (v >> 24) & 0xFF
    o[p + 1] = (v >> 16) & 0xFF
    o[p + 2] = (v >> 8) & 0xFF
    o[p + 3] = v & 0xFF


@njit(cache=True, inline="always")
def _w64(o: NDArray[np.uint8], p: int, v: np.uint64) -> None:
    for k in range(8):
        o[p + k] = np.uint8((v >> np.uint64(56 - 8 * k)) & np.uint64(0xFF))


@njit(cache=True, inline="always")
def _wmac(o: NDArray[np.uint8], p: int, v: np.uint64) -> None:
    for k in range(6):
        o[p + k] = np.uint8((v >> np.uint64(40 - 8 * k)) & np.uint64(0xFF))


@njit(cache=True, inline="always")
def _csum(o: NDArray[np.uint8], p: int, n: int) -> int:
    s = 0
    for k in range(0, n, 2):
        s += (np.int64(o[p + k]) << 8) | np.int64(o[p + k + 1])
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


@njit(cache=True)
def build_headers(out: NDArray[np.uint8], hl: NDArray[np.int64], wire: NDArray[np.int64],
                  eth_src: NDArray[np.uint64], eth_dst: NDArray[np.uint64], v6: bool,
                  osrc: NDArray[np.uint32], odst: NDArray[np.uint32],
                  ttl: NDArray[np.int64], encap: NDArray[np.int64],
                  tsport: NDArray[np.int64], vni: NDArray[np.int64],
                  th: NDArray[np.uint32], ip_id: NDArray[np.int64], mpls: NDArray[np.int64],
                  imac_src: NDArray[np.uint64], imac_dst: NDArray[np.uint64],
                  isrc: NDArray[np.uint32], idst: NDArray[np.uint32],
                  proto: NDArray[np.int64], sport: NDArray[np.int64],
                  dport: NDArray[np.int64], icmp_type: NDArray[np.int64],
                  iframe: NDArray[np.int64], tcp_seq: NDArray[np.int64],
                  inner_id: NDArray[np.int64], ecn: NDArray[np.int64]) -> None:
    """One row of ``out`` (n x 128, zeroed) per packet; ``hl`` gets the captured length and
    ``wire`` the outer frame length (no FCS)."""
    W = out.shape[1]
    for i in range(out.shape[0]):
        o = out[i]
        inner_total = iframe[i] + (4 if mpls[i] >= 0 else 0)
        enc = encap[i]
        if enc == 2:
            tun = 8 + inner_total  # GRE + inner frame
            oproto = 47
        else:
            tun = 16 + inner_total  # UDP + VXLAN/GENEVE + inner frame
            oproto = 17
        p = 0
        _wmac(o, 0, eth_dst[i])
        _wmac(o, 6, eth_src[i])
        if v6:
            _w16(o, 12, 0x86DD)
            p = 14
            _w32(o, p, (6 << 28) | (ecn[i] << 20) | (np.int64(th[i]) & 0xFFFFF))
            _w16(o, p + 4, tun)
            o[p + 6] = oproto
            o[p + 7] = ttl[i]
            for k in range(4):
                _w32(o, p + 8 + 4 * k, np.int64(osrc[i, k]))
                _w32(o, p + 24 + 4 * k, np.int64(odst[i, k]))
            p += 40
            total = 14 + 40 + tun
        else:
            _w16(o, 12, 0x0800)
            p = 14
            o[p] = 0x45
            o[p + 1] = ecn[i]
            _w16(o, p + 2, 20 + tun)
            _w16(o, p + 4, ip_id[i] & 0xFFFF)
            _w16(o, p + 6, 0x4000)
            o[p + 8] = ttl[i]
            o[p + 9] = oproto
            _w32(o, p + 12, np.int64(osrc[i, 0]))
            _w32(o, p + 16, np.int64(odst[i, 0]))
            _w16(o, p + 10, _csum(o, p, 20))
            p += 20
            total = 14 + 20 + tun
        if enc == 2:
            _w16(o, p, 0x2000)
            _w16(o, p + 2, 0x6558)
            _w32(o, p + 4, ((vni[i] & 0xFFFFFF) << 8) | (np.int64(th[i]) & 0xFF))
            p += 8
        else:
            _w16(o, p, tsport[i])
            _w16(o, p + 2, 6081 if enc == 1 else 4789)
            _w16(o, p + 4, tun)
            p += 8
            if enc == 1:
                o[p] = 0
                o[p + 1] = 0
                _w16(o, p + 2, 0x6558)
            else:
                o[p] = 0x08
            _w32(o, p + 4, (vni[i] & 0xFFFFFF) << 8)
            p += 8
        _wmac(o, p, imac_dst[i])
        _wmac(o, p + 6, imac_src[i])
        if mpls[i] >= 0:
            _w16(o, p + 12, 0x8847)
            p += 14
            _w32(o, p, ((mpls[i] & 0xFFFFF) << 12) | (1 << 8) | 64)
            p += 4
        else:
            _w16(o, p + 12, 0x0800)
            p += 14
        l3 = iframe[i] - 14
        pr = proto[i]
        o[p] = 0x45
        _w16(o, p + 2, l3)
        _w16(o, p + 4, inner_id[i] & 0xFFFF)
        _w16(o, p + 6, 0x4000 if pr == 6 else 0)
        o[p + 8] = 64
        o[p + 9] = pr
        _w32(o, p + 12, np.int64(isrc[i]))
        _w32(o, p + 16, np.int64(idst[i]))
        _w16(o, p + 10, _csum(o, p, 20))
        p += 20
        if pr == 6:
            _w16(o, p, sport[i])
            _w16(o, p + 2, dport[i])
            _w32(o, p + 4, tcp_seq[i] & 0xFFFFFFFF)
            _w32(o, p + 8, (tcp_seq[i] * 7 + 1) & 0xFFFFFFFF)
            o[p + 12] = 0x50
            o[p + 13] = 0x18 if iframe[i] > 66 else 0x10
            _w16(o, p + 14, 501)
            p += 20
        elif pr == 17:
            _w16(o, p, sport[i])
            _w16(o, p + 2, dport[i])
            _w16(o, p + 4, l3 - 20)
            p += 8
        else:
            o[p] = icmp_type[i]
            _w16(o, p + 4, sport[i] & 0xFFFF)
            _w16(o, p + 6, tcp_seq[i] & 0xFFFF)
            p += 8
        wire[i] = total
        hl[i] = min(W, total)


@njit(cache=True)
def group_datagrams(key: NDArray[np.int64], ts: NDArray[np.int64], size: NDArray[np.int64],
                    budget: int, flush_ns: int) -> NDArray[np.int64]:
    """Greedy packing of samples (sorted by key, then time) into datagrams: a datagram
    closes when the next sample has another key, would not fit ``budget`` bytes, or comes
    ``flush_ns`` or more after the datagram's first sample. Returns the datagram number of
    each sample."""
    n = key.shape[0]
    out = np.empty(n, np.int64)
    g = -1
    used = 0
    first = 0
    for i in range(n):
        if g < 0 or key[i] != key[i - 1] or used + size[i] > budget or ts[i] - first >= flush_ns:
            g += 1
            used = 0
            first = ts[i]
        used += size[i]
        out[i] = g
    return out


def _pad4(n: NDArray[np.int64]) -> NDArray[np.int64]:
    return (n + 3) & ~np.int64(3)


def flow_sample_size(hl: NDArray[np.int64], expanded: NDArray[np.bool_]) -> NDArray[np.int64]:
    return np.where(expanded, 100, 88) + _pad4(hl)


def counter_sample_size(name_len: NDArray[np.int64],
                        expanded: NDArray[np.bool_]) -> NDArray[np.int64]:
    return np.where(expanded, 132, 128) + _pad4(name_len)


@njit(cache=True)
def render_datagrams(
    out: NDArray[np.uint8], frame_off: NDArray[np.int64], frame_len: NDArray[np.int64],
    dg_dev: NDArray[np.int64], dg_seq: NDArray[np.int64], dg_uptime: NDArray[np.int64],
    dg_kind: NDArray[np.int64], dg_first: NDArray[np.int64], dg_count: NDArray[np.int64],
    dev_agent: NDArray[np.uint32], dev_mac: NDArray[np.uint64],
    dev_expanded: NDArray[np.bool_], collector: int, collector_mac: np.uint64,
    # flow samples
    fs_seq: NDArray[np.int64], fs_src: NDArray[np.int64], fs_rate: NDArray[np.int64],
    fs_pool: NDArray[np.int64], fs_in: NDArray[np.int64], fs_out: NDArray[np.int64],
    fs_flen: NDArray[np.int64], fs_hl: NDArray[np.int64], fs_hdr: NDArray[np.uint8],
    # counter samples
    cs_seq: NDArray[np.int64], cs_ifindex: NDArray[np.int64], cs_speed: NDArray[np.uint64],
    cs_vals: NDArray[np.uint64], cs_name: NDArray[np.uint8], cs_name_len: NDArray[np.int64],
) -> int:
    """Write every datagram as an Ethernet/IPv4/UDP frame into ``out`` (sized by the caller
    from the sample sizes); returns the bytes written. ``cs_vals`` columns: in_octets,
    in_ucast, in_discards, in_errors, out_octets, out_ucast, out_discards, out_errors."""
    pos = 0
    for d in range(dg_dev.shape[0]):
        dev = dg_dev[d]
        exp = dev_expanded[dev]
        start = pos
        frame_off[d] = start
        # Ethernet + IPv4 + UDP, lengths patched below
        _wmac(out, pos, collector_mac)
        _wmac(out, pos + 6, dev_mac[dev])
        _w16(out, pos + 12, 0x0800)
        ip = pos + 14
        out[ip] = 0x45
        _w16(out, ip + 4, dg_seq[d] & 0xFFFF)
        out[ip + 8] = 64
        out[ip + 9] = 17
        _w32(out, ip + 12, np.int64(dev_agent[dev]))
        _w32(out, ip + 16, collector)
        udp = ip + 20
        _w16(out, udp, 50000 + (dev & 0x3FFF))
        _w16(out, udp + 2, 6343)
        p = udp + 8
        _w32(out, p, 5)
        _w32(out, p + 4, 1)
        _w32(out, p + 8, np.int64(dev_agent[dev]))
        _w32(out, p + 12, 0)
        _w32(out, p + 16, dg_seq[d] & 0xFFFFFFFF)
        _w32(out, p + 20, dg_uptime[d] & 0xFFFFFFFF)
        _w32(out, p + 24, dg_count[d])
        p += 28
        for k in range(dg_first[d], dg_first[d] + dg_count[d]):
            if dg_kind[d] == 0:
                hl = fs_hl[k]
                hp = (hl + 3) & ~3
                body = (44 if exp else 32) + 8 + 16 + hp + 24
                _w32(out, p, 3 if exp else 1)
                _w32(out, p + 4, body)
                q = p + 8
                _w32(out, q, fs_seq[k] & 0xFFFFFFFF)
                if exp:
                    _w32(out, q + 4, 0)
                    _w32(out, q + 8, fs_src[k])
                    q += 12
                else:
                    _w32(out, q + 4, fs_src[k] & 0xFFFFFF)
                    q += 8
                _w32(out, q, fs_rate[k])
                _w32(out, q + 4, fs_pool[k] & 0xFFFFFFFF)
                _w32(out, q + 8, 0)
                q += 12
                if exp:
                    _w32(out, q, 0)
                    _w32(out, q + 4, fs_in[k])
                    _w32(out, q + 8, 0)
                    _w32(out, q + 12, fs_out[k])
                    q += 16
                else:
                    _w32(out, q, fs_in[k] & 0x3FFFFFFF)
                    _w32(out, q + 4, fs_out[k] & 0x3FFFFFFF)
                    q += 8
                _w32(out, q, 2)
                q += 4
                # raw packet header
                _w32(out, q, 1)
                _w32(out, q + 4, 16 + hp)
                _w32(out, q + 8, 1)
                _w32(out, q + 12, fs_flen[k])
                _w32(out, q + 16, 4)
                _w32(out, q + 20, hl)
                q += 24
                out[q: q + hl] = fs_hdr[k, :hl]
                out[q + hl: q + hp] = 0
                q += hp
                # extended switch
                _w32(out, q, 1001)
                _w32(out, q + 4, 16)
                _w32(out, q + 8, 0)
                _w32(out, q + 12, 0)
                _w32(out, q + 16, 0)
                _w32(out, q + 20, 0)
                q += 24
                p = q
            else:
                nl = cs_name_len[k]
                np4 = (nl + 3) & ~3
                body = (16 if exp else 12) + 96 + 12 + np4
                _w32(out, p, 4 if exp else 2)
                _w32(out, p + 4, body)
                q = p + 8
                _w32(out, q, cs_seq[k] & 0xFFFFFFFF)
                if exp:
                    _w32(out, q + 4, 0)
                    _w32(out, q + 8, cs_ifindex[k])
                    q += 12
                else:
                    _w32(out, q + 4, cs_ifindex[k] & 0xFFFFFF)
                    q += 8
                _w32(out, q, 2)
                q += 4
                _w32(out, q, 1)
                _w32(out, q + 4, 88)
                q += 8
                _w32(out, q, cs_ifindex[k])
                _w32(out, q + 4, 6)
                _w64(out, q + 8, cs_speed[k])
                _w32(out, q + 16, 1)
                _w32(out, q + 20, 3)
                v = cs_vals[k]
                _w64(out, q + 24, v[0])
                _w32(out, q + 32, np.int64(v[1] & np.uint64(0xFFFFFFFF)))
                _w32(out, q + 36, 0)
                _w32(out, q + 40, 0)
                _w32(out, q + 44, np.int64(v[2] & np.uint64(0xFFFFFFFF)))
                _w32(out, q + 48, np.int64(v[3] & np.uint64(0xFFFFFFFF)))
                _w32(out, q + 52, 0)
                _w64(out, q + 56, v[4])
                _w32(out, q + 64, np.int64(v[5] & np.uint64(0xFFFFFFFF)))
                _w32(out, q + 68, 0)
                _w32(out, q + 72, 0)
                _w32(out, q + 76, np.int64(v[6] & np.uint64(0xFFFFFFFF)))
                _w32(out, q + 80, np.int64(v[7] & np.uint64(0xFFFFFFFF)))
                _w32(out, q + 84, 0)
                q += 88
                _w32(out, q, 1005)
                _w32(out, q + 4, 4 + np4)
                _w32(out, q + 8, nl)
                q += 12
                out[q: q + nl] = cs_name[k, :nl]
                out[q + nl: q + np4] = 0
                q += np4
                p = q
        total = p - start
        _w16(out, ip + 2, total - 14)
        _w16(out, udp + 4, total - 34)
        _w16(out, ip + 10, _csum(out, ip, 20))
        frame_len[d] = total
        pos = p
    return pos

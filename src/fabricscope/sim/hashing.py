"""The hash functions of the simulated fabric, explicit so that tests (and people) can
recompute every path choice from the headers alone.

All hashes are chains of the MurmurHash3 32-bit finaliser over 32-bit words::

    fmix32(h):  h ^= h >> 16; h *= 0x85EBCA6B; h ^= h >> 13; h *= 0xC2B2AE35; h ^= h >> 16
    hash_words(seed, w0, w1, ...):  h = seed; for w in words: h = fmix32(h ^ w); return h

(all arithmetic modulo 2^32). An IPv4 address is one word, an IPv6 address four words
(big-endian, most significant first).

- **Tunnel entropy** (what Linux does with ``udp_flow_src_port``, RFC 7348 section 5):
  ``th = hash_words(TUNNEL_SEED, inner_src, inner_dst, inner_proto, sport << 16 | dport)``
  (ICMP: ports 0). VXLAN and GENEVE: UDP source port ``49152 + th % 16384``. NVGRE: the
  8-bit FlowID ``th & 0xFF`` (key = VSID << 8 | FlowID).
- **ECMP at a leaf** (the only place with a choice in a two-tier Clos): spine index
  ``hash_words(ECMP_SEED ^ leaf_index, outer_src..., outer_dst..., ip_proto, x) % spines``
  where ``x = udp_sport << 16 | udp_dport`` for VXLAN/GENEVE and ``x = GRE key`` for
  NVGRE.
- **VNF load sharing** in a chain group of n members: member
  ``hash_words(VNF_SEED, lo_ip, hi_ip, proto, lo_port << 16 | hi_port) % n`` where
  (lo_ip, lo_port) is the smaller of (src, sport) and (dst, dport): both directions of a
  conversation pick the same member (stateful VNFs need it).

The NumPy versions work on uint32 arrays (vectorised, used by the simulator); the
``*_scalar`` versions are plain Python (for tests and people).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

U32 = NDArray[np.uint32]

TUNNEL_SEED = 0x7E55E1A7
ECMP_SEED = 0xEC3A9001
VNF_SEED = 0x5FC0C4A1
TUNNEL_PORT_BASE = 49152
TUNNEL_PORT_SPAN = 16384

_M = 0xFFFFFFFF


def fmix32_scalar(h: int) -> int:
    h &= _M
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M
    h ^= h >> 16
    return h


def hash_words_scalar(seed: int, words: Sequence[int]) -> int:
    h = seed & _M
    for w in words:
        h = fmix32_scalar(h ^ (w & _M))
    return h


def ip_words(ip: str | int | ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[int]:
    """An address as 32-bit words (1 for IPv4, 4 for IPv6)."""
    a = ipaddress.ip_address(ip) if not isinstance(ip, int) else ipaddress.IPv4Address(ip)
    v = int(a)
    if a.version == 4:
        return [v]
    return [(v >> s) & _M for s in (96, 64, 32, 0)]


def tunnel_hash_scalar(src: str, dst: str, proto: int, sport: int, dport: int) -> int:
    if proto not in (6, 17):
        sport = dport = 0
    return hash_words_scalar(TUNNEL_SEED, [*ip_words(src), *ip_words(dst), proto,
                                           (sport << 16) | dport])


def tunnel_sport_scalar(src: str, dst: str, proto: int, sport: int, dport: int) -> int:
    return TUNNEL_PORT_BASE + tunnel_hash_scalar(src, dst, proto, sport, dport) % (
        TUNNEL_PORT_SPAN)


def ecmp_member_scalar(leaf_index: int, n_spines: int, outer_src: str, outer_dst: str,
                       ip_proto: int, x: int) -> int:
    """The spine a leaf picks; ``x`` is sport << 16 | dport (UDP) or the GRE key."""
    h = hash_words_scalar(ECMP_SEED ^ leaf_index, [*ip_words(outer_src), *ip_words(outer_dst),
                                                   ip_proto, x])
    return h % n_spines


def vnf_member_scalar(n: int, src: str, dst: str, proto: int, sport: int, dport: int) -> int:
    if proto not in (6, 17):
        sport = dport = 0
    a = (int(ipaddress.ip_address(src)), sport)
    b = (int(ipaddress.ip_address(dst)), dport)
    lo, hi = min(a, b), max(a, b)
    return hash_words_scalar(VNF_SEED, [lo[0] & _M, hi[0] & _M, proto,
                                        (lo[1] << 16) | hi[1]]) % n


# --------------------------------------------------------------------------- NumPy


def fmix32(h: U32) -> U32:
    h = h.astype(np.uint32, copy=True)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def hash_words(seed: int | U32, words: Sequence[NDArray[np.integer]]) -> U32:
    """Vectorised ``hash_words``: ``seed`` a scalar or an array, each word an array."""
    n = len(words[0])
    h = (np.zeros(n, np.uint32) + np.asarray(seed, np.uint64).astype(np.uint32))
    with np.errstate(over="ignore"):
        for w in words:
            h = fmix32(h ^ np.asarray(w).astype(np.uint32))
    return h


def _ports(proto: NDArray[np.integer], sport: NDArray[np.integer],
           dport: NDArray[np.integer]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    has = (proto == 6) | (proto == 17)
    return (np.where(has, sport, 0).astype(np.int64), np.where(has, dport, 0).astype(np.int64))


def tunnel_hash(src: NDArray[np.integer], dst: NDArray[np.integer],
                proto: NDArray[np.integer], sport: NDArray[np.integer],
                dport: NDArray[np.integer]) -> U32:
    """Inner IPv4 5-tuples (addresses as integers) -> tunnel entropy hash."""
    sp, dp = _ports(proto, sport, dport)
    return hash_words(TUNNEL_SEED, [src, dst, proto, (sp << 16) | dp])


def tunnel_sport(th: U32) -> NDArray[np.int64]:
    return TUNNEL_PORT_BASE + (th.astype(np.int64) % TUNNEL_PORT_SPAN)


def ecmp_member(leaf_index: NDArray[np.integer], n_spines: int,
                outer_src_words: Sequence[NDArray[np.integer]],
                outer_dst_words: Sequence[NDArray[np.integer]],
                ip_proto: NDArray[np.integer], x: NDArray[np.integer]) -> NDArray[np.int64]:
    seed = np.uint32(ECMP_SEED) ^ np.asarray(leaf_index).astype(np.uint32)
    h = hash_words(seed, [*outer_src_words, *outer_dst_words, ip_proto, x])
    return (h % np.uint32(n_spines)).astype(np.int64)


def vnf_member(n: NDArray[np.integer], src: NDArray[np.integer], dst: NDArray[np.integer],
               proto: NDArray[np.integer], sport: NDArray[np.integer],
               dport: NDArray[np.integer]) -> NDArray[np.int64]:
    sp, dp = _ports(proto, sport, dport)
    s = np.asarray(src, np.int64)
    d = np.asarray(dst, np.int64)
    swap = (s > d) | ((s == d) & (sp > dp))
    lo_ip = np.where(swap, d, s)
    hi_ip = np.where(swap, s, d)
    lo_p = np.where(swap, dp, sp)
    hi_p = np.where(swap, sp, dp)
    h = hash_words(VNF_SEED, [lo_ip, hi_ip, proto, (lo_p << 16) | hi_p])
    return (h.astype(np.int64) % np.maximum(np.asarray(n, np.int64), 1))


__all__ = [
    "ECMP_SEED",
    "TUNNEL_PORT_BASE",
    "TUNNEL_PORT_SPAN",
    "TUNNEL_SEED",
    "VNF_SEED",
    "ecmp_member",
    "ecmp_member_scalar",
    "fmix32",
    "fmix32_scalar",
    "hash_words",
    "hash_words_scalar",
    "ip_words",
    "tunnel_hash",
    "tunnel_hash_scalar",
    "tunnel_sport",
    "tunnel_sport_scalar",
    "vnf_member",
    "vnf_member_scalar",
]

"""Named decode events: every anomaly met while decoding has a name and a counter.

An event of severity ERROR (or TRUNC) marks the record (``error`` column holds the first
one's name) and the record keeps what was decoded before it. INFO events are only counted
(a fragment, a tunnel port that did not parse as the tunnel and fell back to plain UDP).

Codes are small integers so the numba walk can count them in an int64 array; names are
what users see (CLI summary, ``error`` column, Prometheus ``decode_events_total{event=}``).
The sFlow decoder appends its own events to the same table (``sflow/events``).
"""

from __future__ import annotations

import numpy as np

INFO = 0
ERROR = 1
TRUNC = 2  # a header cut off by the capture length: error + the ``truncated`` mark

# (code, name, severity, description). Codes are stable: append only.
EVENTS: tuple[tuple[int, str, int, str], ...] = (
    (0, "none", INFO, "no event"),
    (1, "truncated_link", TRUNC, "link-layer header cut off"),
    (2, "truncated_vlan", TRUNC, "802.1Q/802.1ad tag cut off"),
    (3, "truncated_mpls", TRUNC, "MPLS label stack cut off"),
    (4, "truncated_ipv4", TRUNC, "IPv4 header cut off"),
    (5, "truncated_ipv6", TRUNC, "IPv6 header cut off"),
    (6, "truncated_ipv6_ext", TRUNC, "IPv6 extension header cut off"),
    (7, "truncated_udp", TRUNC, "UDP header cut off"),
    (8, "truncated_tcp", TRUNC, "TCP header cut off"),
    (9, "truncated_icmp", TRUNC, "ICMP/ICMPv6 header cut off"),
    (10, "truncated_arp", TRUNC, "ARP packet cut off"),
    (11, "truncated_gre", TRUNC, "GRE header cut off"),
    (12, "truncated_vxlan", TRUNC, "VXLAN/VXLAN-GPE header cut off"),
    (13, "truncated_geneve", TRUNC, "GENEVE header or options cut off"),
    (14, "truncated_nsh", TRUNC, "NSH header cut off"),
    (15, "truncated_stt", TRUNC, "STT frame header cut off"),
    (16, "truncated_erspan", TRUNC, "ERSPAN header cut off"),
    (17, "ipv4_bad_version", ERROR, "IPv4 header version is not 4"),
    (18, "ipv4_bad_header_length", ERROR, "IPv4 IHL below 5 or beyond the total length"),
    (19, "ipv4_bad_total_length", ERROR, "IPv4 total length below the header length"),
    (20, "ipv4_fragment", INFO, "IPv4 fragment (non-first fragments carry no L4 header)"),
    (21, "ipv6_bad_version", ERROR, "IPv6 header version is not 6"),
    (22, "ipv6_ext_chain_too_long", ERROR, "more IPv6 extension headers than the cap"),
    (23, "ipv6_fragment", INFO, "IPv6 fragment"),
    (24, "tcp_bad_offset", ERROR, "TCP data offset below 5"),
    (25, "gre_bad_version", ERROR, "GRE version other than 0 or 1"),
    (26, "gre_bad_routing", ERROR, "GRE source route entries malformed"),
    (27, "vxlan_fallback_udp", INFO, "VXLAN port but no valid VXLAN header: kept as UDP"),
    (28, "vxlan_gpe_fallback_udp", INFO, "VXLAN-GPE port but no valid header: kept as UDP"),
    (29, "geneve_fallback_udp", INFO, "GENEVE port but no valid GENEVE header: kept as UDP"),
    (30, "geneve_bad_option", ERROR, "GENEVE option length runs past the options"),
    (31, "mpls_stack_too_deep", ERROR, "more MPLS labels than the cap"),
    (32, "vlan_stack_too_deep", ERROR, "more VLAN tags than the cap"),
    (33, "tunnel_depth_exceeded", ERROR, "nested tunnels beyond the configured depth"),
    (34, "unsupported_linktype", ERROR, "capture link type not decoded"),
    (35, "nsh_bad_header", ERROR, "NSH version or length invalid"),
    (36, "stt_bad_header", ERROR, "STT version or L4 offset invalid"),
    (37, "erspan_bad_version", ERROR, "ERSPAN version field does not match the GRE type"),
    (38, "mpls_udp_fallback", INFO, "MPLS-in-UDP port but no payload after the stack: kept as UDP"),
    (39, "layer_loop_cap", ERROR, "more layers than the walk allows (malformed nesting)"),
    (40, "frame_too_short", TRUNC, "frame shorter than any header"),
    (41, "gre_unknown_payload", INFO, "GRE payload protocol not decoded"),
)

NEVENTS_PACKET = len(EVENTS)
# sFlow events are appended from this code on (see sflow/); room reserved for both.
NEVENTS_MAX = 128

EV_NAMES: list[str] = ["unused"] * NEVENTS_MAX
EV_SEVERITY = np.zeros(NEVENTS_MAX, dtype=np.int64)
EV_DOC: list[str] = [""] * NEVENTS_MAX
for _code, _name, _sev, _doc in EVENTS:
    EV_NAMES[_code] = _name
    EV_SEVERITY[_code] = _sev
    EV_DOC[_code] = _doc


def register_events(events: tuple[tuple[int, str, int, str], ...]) -> None:
    """Add another decoder's events (sFlow) to the shared table. Codes must be unused."""
    for code, name, sev, doc in events:
        if EV_NAMES[code] != "unused" and EV_NAMES[code] != name:
            raise ValueError(f"event code {code} already used by {EV_NAMES[code]}")
        EV_NAMES[code] = name
        EV_SEVERITY[code] = sev
        EV_DOC[code] = doc


def code_of(name: str) -> int:
    return EV_NAMES.index(name)


def counts_by_name(counts: np.ndarray) -> dict[str, int]:
    """Event counter array -> {name: count} for the non-zero events (code 0 excluded)."""
    return {EV_NAMES[c]: int(counts[c]) for c in np.nonzero(counts)[0] if c != 0}


EV_TRUNCATED_LINK = 1
EV_TRUNCATED_VLAN = 2
EV_TRUNCATED_MPLS = 3
EV_TRUNCATED_IPV4 = 4
EV_TRUNCATED_IPV6 = 5
EV_TRUNCATED_IPV6_EXT = 6
EV_TRUNCATED_UDP = 7
EV_TRUNCATED_TCP = 8
EV_TRUNCATED_ICMP = 9
EV_TRUNCATED_ARP = 10
EV_TRUNCATED_GRE = 11
EV_TRUNCATED_VXLAN = 12
EV_TRUNCATED_GENEVE = 13
EV_TRUNCATED_NSH = 14
EV_TRUNCATED_STT = 15
EV_TRUNCATED_ERSPAN = 16
EV_IPV4_BAD_VERSION = 17
EV_IPV4_BAD_HLEN = 18
EV_IPV4_BAD_TOTLEN = 19
EV_IPV4_FRAGMENT = 20
EV_IPV6_BAD_VERSION = 21
EV_IPV6_EXT_TOO_LONG = 22
EV_IPV6_FRAGMENT = 23
EV_TCP_BAD_OFFSET = 24
EV_GRE_BAD_VERSION = 25
EV_GRE_BAD_ROUTING = 26
EV_VXLAN_FALLBACK = 27
EV_VXLAN_GPE_FALLBACK = 28
EV_GENEVE_FALLBACK = 29
EV_GENEVE_BAD_OPTION = 30
EV_MPLS_TOO_DEEP = 31
EV_VLAN_TOO_DEEP = 32
EV_TUNNEL_DEPTH = 33
EV_UNSUPPORTED_LINKTYPE = 34
EV_NSH_BAD = 35
EV_STT_BAD = 36
EV_ERSPAN_BAD_VERSION = 37
EV_MPLS_UDP_FALLBACK = 38
EV_LAYER_LOOP = 39
EV_FRAME_TOO_SHORT = 40
EV_GRE_UNKNOWN_PAYLOAD = 41

"""Dispatch tables: ethertype, IP protocol, UDP port and TCP port -> next layer.

In the style of goflow2's ``RegisterPort``: tunnel ports are configuration, not code.
The tables are NumPy arrays (one row each) so the numba walk indexes them directly.
``DecodeConfig.decode_as("udp:9999=vxlan")`` adds a port; ``udp:4789=none`` removes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fabricscope.decode import protocols as P
from fabricscope.errors import UsageError

T_ETHERTYPE = 0
T_IPPROTO = 1
T_UDP = 2
T_TCP = 3

# params vector indices
PARAM_MAX_DEPTH = 0
PARAM_GRE_TEB_NVGRE = 1  # 1: GRE/0x6558 with only the K bit is NVGRE (VSID<<8|FlowID)
NPARAMS = 4

ETHERTYPES: dict[int, int] = {
    P.ETH_IPV4: P.P_IPV4,
    P.ETH_IPV6: P.P_IPV6,
    P.ETH_ARP: P.P_ARP,
    P.ETH_MPLS: P.P_MPLS,
    P.ETH_MPLS_MC: P.P_MPLS,
    P.ETH_TEB: P.P_ETH,
    P.ETH_NSH: P.P_NSH,
}

IP_PROTOCOLS: dict[int, int] = {
    P.IPPROTO_ICMP: P.P_ICMP,
    P.IPPROTO_IPIP: P.P_IPIP4,
    P.IPPROTO_TCP: P.P_TCP,
    P.IPPROTO_UDP: P.P_UDP,
    P.IPPROTO_IPV6: P.P_IPIP6,
    P.IPPROTO_GRE: P.P_GRE,
    P.IPPROTO_ICMPV6: P.P_ICMP6,
}

DEFAULT_UDP_PORTS: dict[int, int] = {
    4789: P.P_VXLAN,  # IANA VXLAN
    8472: P.P_VXLAN,  # Linux default, flannel, Cilium
    4790: P.P_VXLAN_GPE,
    6081: P.P_GENEVE,
    6635: P.P_MPLS_UDP,  # RFC 7510
}

DEFAULT_TCP_PORTS: dict[int, int] = {
    7471: P.P_STT,
}

# names accepted by --decode-as
DECODE_AS_NAMES: dict[str, int] = {
    "vxlan": P.P_VXLAN,
    "vxlan-gpe": P.P_VXLAN_GPE,
    "geneve": P.P_GENEVE,
    "mpls": P.P_MPLS_UDP,
    "mpls-udp": P.P_MPLS_UDP,
    "stt": P.P_STT,
    "none": P.P_END,
}


@dataclass
class DecodeConfig:
    """What to decode where. Immutable once ``tables()`` is called by a decoder."""

    max_depth: int = 4
    gre_teb_as_nvgre: bool = True
    udp_ports: dict[int, int] = field(default_factory=lambda: dict(DEFAULT_UDP_PORTS))
    tcp_ports: dict[int, int] = field(default_factory=lambda: dict(DEFAULT_TCP_PORTS))

    def decode_as(self, spec: str) -> DecodeConfig:
        """Apply ``udp:PORT=NAME`` / ``tcp:PORT=NAME`` (NAME ``none`` removes the port)."""
        try:
            left, name = spec.split("=", 1)
            transport, port_s = left.split(":", 1)
            port = int(port_s)
        except ValueError:
            raise UsageError(
                f"--decode-as {spec!r}: expected udp:PORT=NAME or tcp:PORT=NAME"
            ) from None
        name = name.strip().lower()
        if not 0 < port < 65536:
            raise UsageError(f"--decode-as {spec!r}: port must be 1..65535")
        if name not in DECODE_AS_NAMES:
            raise UsageError(
                f"--decode-as {spec!r}: unknown protocol {name!r}; known: "
                + ", ".join(sorted(DECODE_AS_NAMES))
            )
        code = DECODE_AS_NAMES[name]
        transport = transport.strip().lower()
        if transport == "udp":
            if code == P.P_STT:
                raise UsageError(f"--decode-as {spec!r}: STT runs over TCP")
            self.udp_ports[port] = code
        elif transport == "tcp":
            if code not in (P.P_STT, P.P_END):
                raise UsageError(f"--decode-as {spec!r}: only stt is decoded over TCP")
            self.tcp_ports[port] = code
        else:
            raise UsageError(f"--decode-as {spec!r}: transport must be udp or tcp")
        return self

    def tables(self) -> np.ndarray:
        t = np.zeros((4, 65536), dtype=np.int64)
        for et, code in ETHERTYPES.items():
            t[T_ETHERTYPE, et] = code
        for proto, code in IP_PROTOCOLS.items():
            t[T_IPPROTO, proto] = code
        for port, code in self.udp_ports.items():
            t[T_UDP, port] = code
        for port, code in self.tcp_ports.items():
            t[T_TCP, port] = code
        return t

    def params(self) -> np.ndarray:
        if not 0 <= self.max_depth <= 4:
            raise UsageError("tunnel depth must be 0..4")
        p = np.zeros(NPARAMS, dtype=np.int64)
        p[PARAM_MAX_DEPTH] = self.max_depth
        p[PARAM_GRE_TEB_NVGRE] = 1 if self.gre_teb_as_nvgre else 0
        return p

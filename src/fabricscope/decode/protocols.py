"""Protocol codes used by the dispatch tables and the walk, and tunnel type names.

``P_*`` name the next layer to decode; ``TUN_*`` name tunnel types as they appear in the
``encap`` column and the ``tunnels`` list (CONTRACTS.md).
"""

from __future__ import annotations

P_END = 0
P_ETH = 1
P_IPV4 = 2
P_IPV6 = 3
P_MPLS = 4
P_ARP = 5
P_UDP = 6
P_TCP = 7
P_ICMP = 8
P_ICMP6 = 9
P_GRE = 10
P_VXLAN = 11
P_VXLAN_GPE = 12
P_GENEVE = 13
P_STT = 14
P_NSH = 15
P_ERSPAN2 = 16
P_ERSPAN3 = 17
P_MPLS_UDP = 18
P_IP_GUESS = 19  # IPv4 or IPv6 by the version nibble (raw IP link types, MPLS payload)
P_IPIP4 = 20  # IPv4 inside IP (a tunnel): enter the tunnel, then IPv4
P_IPIP6 = 21  # IPv6 inside IP
P_ERSPAN1 = 22  # ERSPAN type I: GRE 0x88BE without sequence number, no ERSPAN header
NPROTO = 23

# Protocols that START a header block: a pending tunnel is entered before decoding them.
HEADER_PROTOS = (P_ETH, P_IPV4, P_IPV6, P_MPLS, P_IP_GUESS, P_ARP)

TUN_NONE = 0
TUN_VXLAN = 1
TUN_VXLAN_GPE = 2
TUN_GENEVE = 3
TUN_GRE = 4
TUN_NVGRE = 5
TUN_STT = 6
TUN_IPIP = 7
TUN_MPLS_UDP = 8
TUN_ERSPAN = 9

TUNNEL_NAMES: tuple[str, ...] = (
    "", "vxlan", "vxlan-gpe", "geneve", "gre", "nvgre", "stt", "ipip", "mpls-udp", "erspan",
)

# Ethertypes
ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_VLAN = 0x8100
ETH_QINQ = 0x88A8
ETH_QINQ_OLD = 0x9100
ETH_IPV6 = 0x86DD
ETH_MPLS = 0x8847
ETH_MPLS_MC = 0x8848
ETH_TEB = 0x6558  # transparent Ethernet bridging (NVGRE, GENEVE)
ETH_ERSPAN2 = 0x88BE
ETH_ERSPAN3 = 0x22EB
ETH_NSH = 0x894F

# IP protocols
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_GRE = 47
IPPROTO_ICMPV6 = 58

"""THE column definitions. Everything else is generated from these tables: the Arrow
schema of record batches, the DuckDB and ClickHouse DDL (store/), the API models (api/)
and the NDJSON field list of ``fabricscope decode`` (CONTRACTS.md's packet record).

Two tables:

* ``PACKET_COLUMNS``: one row per captured frame or per sFlow flow/discard sample.
  Wire (outermost) headers, every tunnel layer (``tunnels``), innermost headers, sFlow
  fields. Absent = null.
* ``COUNTER_COLUMNS``: one row per sFlow interface counter record (kind ``counters``).

Logical types: ``ts`` (timestamp, ns, UTC), ``u8/u16/u32/u64/i64``, ``ip`` (16 bytes,
IPv4 as IPv4-mapped IPv6), ``mac`` (uint64, 48 bits), ``bool``, ``str`` (dictionary
encoded in batches), ``bin`` (bytes), ``tunnels`` (list of structs, outermost first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fabricscope.decode import slots as S

SCHEMA_VERSION = 1

LogicalType = Literal[
    "ts", "u8", "u16", "u32", "u64", "i64", "ip", "mac", "bool", "str", "bin", "tunnels"
]

KIND_PACKET = 0
KIND_FLOW = 1  # sFlow flow sample
KIND_DISCARD = 2  # sFlow discarded-packet sample (drops extension)
KIND_COUNTERS = 3
KIND_NAMES: tuple[str, ...] = ("packet", "flow", "discard", "counters")


@dataclass(frozen=True)
class Column:
    name: str
    type: LogicalType
    group: str  # meta | wire | tunnel | inner | sflow
    doc: str
    # how a batch builder fills it from the decoder's slot matrix:
    slot: int = -1  # scalar slot
    ip: tuple[int, int, int] | None = None  # (hi, lo, version) slots for ``ip`` columns
    contract: bool = False  # a field of CONTRACTS.md's packet record
    stored: bool = True  # kept by the stores
    key: bool = False  # part of the sort/primary key in the stores


def _h(block: int, field: int) -> int:
    return block + field


def _ip(block: int) -> tuple[int, int, int]:
    return (block + S.H_SRC_HI, block + S.H_SRC_LO, block + S.H_IPVER)


def _ipd(block: int) -> tuple[int, int, int]:
    return (block + S.H_DST_HI, block + S.H_DST_LO, block + S.H_IPVER)


def _header_columns(prefix: str, block: int, group: str, where: str) -> list[Column]:
    return [
        Column(f"{prefix}eth_src", "mac", group, f"{where} Ethernet source MAC",
               slot=_h(block, S.H_ETH_SRC), contract=True),
        Column(f"{prefix}eth_dst", "mac", group, f"{where} Ethernet destination MAC",
               slot=_h(block, S.H_ETH_DST), contract=True),
        Column(f"{prefix}vlan", "u16", group, f"{where} outermost 802.1Q/802.1ad VLAN id",
               slot=_h(block, S.H_VLAN), contract=True),
        Column(f"{prefix}vlan2", "u16", group, f"{where} second VLAN tag (QinQ C-tag)",
               slot=_h(block, S.H_VLAN2)),
        Column(f"{prefix}ethertype", "u16", group, f"{where} ethertype of the L3 payload",
               slot=_h(block, S.H_ETHERTYPE)),
        Column(f"{prefix}mpls_label", "u32", group,
               f"{where} top MPLS label (networking-sfc: chain_id << 8 | service index)",
               slot=_h(block, S.H_MPLS)),
        Column(f"{prefix}mpls_labels", "u8", group, f"{where} MPLS labels in the stack",
               slot=_h(block, S.H_MPLS_N)),
        Column(f"{prefix}ip_ver", "u8", group, f"{where} IP version (4 or 6)",
               slot=_h(block, S.H_IPVER)),
        Column(f"{prefix}src", "ip", group, f"{where} source IP address", ip=_ip(block),
               contract=True),
        Column(f"{prefix}dst", "ip", group, f"{where} destination IP address",
               ip=_ipd(block), contract=True),
        Column(f"{prefix}proto", "u8", group, f"{where} IP protocol number",
               slot=_h(block, S.H_PROTO), contract=True),
        Column(f"{prefix}ttl", "u8", group, f"{where} IPv4 TTL / IPv6 hop limit",
               slot=_h(block, S.H_TTL), contract=(prefix == "")),
        Column(f"{prefix}tos", "u8", group, f"{where} IPv4 TOS / IPv6 traffic class",
               slot=_h(block, S.H_TOS)),
        Column(f"{prefix}frag", "u8", group,
               f"{where} fragment bits: 1 more-fragments, 2 offset != 0, 4 don't-fragment",
               slot=_h(block, S.H_FRAG)),
        Column(f"{prefix}ip_len", "u32", group, f"{where} IP total length from the header",
               slot=_h(block, S.H_IPLEN)),
        Column(f"{prefix}sport", "u16", group, f"{where} UDP/TCP source port",
               slot=_h(block, S.H_SPORT), contract=True),
        Column(f"{prefix}dport", "u16", group, f"{where} UDP/TCP destination port",
               slot=_h(block, S.H_DPORT), contract=True),
        Column(f"{prefix}tcp_flags", "u16", group, f"{where} TCP flags (NS..FIN)",
               slot=_h(block, S.H_TCP_FLAGS)),
        Column(f"{prefix}icmp_type", "u8", group, f"{where} ICMP/ICMPv6 type",
               slot=_h(block, S.H_ICMP_TYPE)),
        Column(f"{prefix}icmp_code", "u8", group, f"{where} ICMP/ICMPv6 code",
               slot=_h(block, S.H_ICMP_CODE)),
    ]


PACKET_COLUMNS: tuple[Column, ...] = (
    Column("ts", "ts", "meta", "capture or sample time, UTC", slot=S.M_TS, contract=True,
           key=True),
    Column("kind", "str", "meta", "packet | flow (sFlow flow sample) | discard",
           slot=S.M_KIND),
    Column("frame_len", "u32", "meta", "length of the frame on the wire",
           slot=S.M_FRAME_LEN, contract=True),
    Column("caplen", "u32", "meta", "bytes captured (sFlow: sampled header length)",
           slot=S.M_CAPLEN),
    Column("linktype", "u16", "meta", "link type of the captured frame / sampled header",
           slot=S.M_LINKTYPE, stored=False),
    Column("iface", "u16", "meta", "pcapng interface id", slot=S.M_IFACE, stored=False),
    Column("ts_prec", "u8", "meta", "fractional digits of the capture's timestamps",
           slot=S.M_TS_PREC, stored=False),
    Column("file_offset", "i64", "meta", "byte offset of the frame's record in its file",
           slot=S.M_FILE_OFF, stored=False),
    Column("error", "str", "meta", "first decode error met (an event name), else null",
           slot=S.M_ERROR, contract=True),
    Column("truncated", "bool", "meta", "a header was cut off by the capture length",
           slot=S.M_TRUNC),
    *_header_columns("", S.WIRE, "wire", "wire (outermost)"),
    Column("encap", "str", "tunnel", "outermost tunnel type", slot=S.tun_slot(0, S.T_TYPE),
           contract=True),
    Column("vni", "u64", "tunnel",
           "outermost tunnel id: VXLAN/GENEVE VNI, NVGRE VSID, GRE key, STT context",
           slot=S.tun_slot(0, S.T_VNI), contract=True),
    Column("depth", "u8", "tunnel", "number of tunnel layers", slot=S.M_DEPTH),
    Column("tunnels", "tunnels", "tunnel",
           "every tunnel layer, outermost first: {type, vni, src, dst, sport, dport, a, b}",
           contract=True),
    Column("geneve_options", "bin", "tunnel", "raw options of the outermost GENEVE layer"),
    *_header_columns("inner_", S.INNER, "inner", "innermost"),
    Column("agent", "ip", "sflow", "sFlow agent address",
           ip=(S.S_AGENT_HI, S.S_AGENT_LO, S.S_AGENT_VER), contract=True),
    Column("sub_agent", "u32", "sflow", "sFlow sub-agent id", slot=S.S_SUB_AGENT,
           contract=True),
    Column("seq", "u32", "sflow", "sFlow datagram sequence number", slot=S.S_SEQ,
           contract=True),
    Column("uptime_ms", "u32", "sflow", "agent uptime in ms", slot=S.S_UPTIME),
    Column("sample_seq", "u32", "sflow", "sample sequence number (per source_id)",
           slot=S.S_SAMPLE_SEQ, contract=True),
    Column("source_id", "u32", "sflow", "data source: type << 24 | index",
           slot=S.S_SOURCE_ID, contract=True),
    Column("in_if", "u32", "sflow", "input ifIndex (0x3FFFFFFF internal)", slot=S.S_IN_IF,
           contract=True),
    Column("out_if", "u32", "sflow", "output ifIndex (see out_if_format)", slot=S.S_OUT_IF,
           contract=True),
    Column("in_if_format", "u8", "sflow", "input interface format bits",
           slot=S.S_IN_IF_FMT),
    Column("out_if_format", "u8", "sflow",
           "output interface format: 0 ifIndex, 1 discarded (out_if = reason), 2 multiple",
           slot=S.S_OUT_IF_FMT),
    Column("sampling_rate", "u32", "sflow", "1 in N sampling", slot=S.S_SAMPLING_RATE,
           contract=True),
    Column("sample_pool", "u32", "sflow", "packets that could have been sampled",
           slot=S.S_SAMPLE_POOL, contract=True),
    Column("drops", "u32", "sflow", "samples the agent itself dropped", slot=S.S_DROPS,
           contract=True),
    Column("header_protocol", "u16", "sflow", "sampled header protocol (1 = Ethernet)",
           slot=S.S_HDR_PROTO),
    Column("src_vlan", "u16", "sflow", "extended switch: incoming 802.1Q VLAN",
           slot=S.S_SRC_VLAN),
    Column("dst_vlan", "u16", "sflow", "extended switch: outgoing 802.1Q VLAN",
           slot=S.S_DST_VLAN),
    Column("discard_reason", "u32", "sflow", "discarded-packet reason code",
           slot=S.S_DISCARD_REASON),
    Column("tunnel_vni_in", "u32", "sflow", "extended VNI ingress (0:1030)",
           slot=S.S_TUN_VNI_IN),
    Column("tunnel_vni_out", "u32", "sflow", "extended VNI egress (0:1029)",
           slot=S.S_TUN_VNI_OUT),
    Column("next_hop", "ip", "sflow", "extended router/gateway next hop (0:1002/0:1003)",
           ip=(S.S_NEXT_HOP_HI, S.S_NEXT_HOP_LO, S.S_NEXT_HOP_VER)),
    Column("src_mask", "u8", "sflow", "extended router: source prefix length",
           slot=S.S_SRC_MASK),
    Column("dst_mask", "u8", "sflow", "extended router: destination prefix length",
           slot=S.S_DST_MASK),
    Column("router_as", "u32", "sflow", "extended gateway: the router's own AS", slot=S.S_AS),
    Column("src_as", "u32", "sflow", "extended gateway: source AS", slot=S.S_SRC_AS),
    Column("peer_as", "u32", "sflow", "extended gateway: source peer AS", slot=S.S_PEER_AS),
    Column("dst_as", "u32", "sflow", "extended gateway: last AS of the destination path",
           slot=S.S_DST_AS),
    Column("tunnel_outer_dir", "u8", "sflow",
           "extended tunnel record (0:1023..1026): 1 egress, 2 ingress", slot=S.S_TUN_DIR),
    Column("tunnel_outer_src", "ip", "sflow", "extended tunnel record: outer source IP",
           ip=(S.S_TUN_SRC_HI, S.S_TUN_SRC_LO, S.S_TUN_IPVER)),
    Column("tunnel_outer_dst", "ip", "sflow", "extended tunnel record: outer destination IP",
           ip=(S.S_TUN_DST_HI, S.S_TUN_DST_LO, S.S_TUN_IPVER)),
    Column("tunnel_outer_proto", "u8", "sflow", "extended tunnel record: outer IP protocol",
           slot=S.S_TUN_PROTO),
    Column("tunnel_outer_sport", "u16", "sflow", "extended tunnel record: outer source port",
           slot=S.S_TUN_SPORT),
    Column("tunnel_outer_dport", "u16", "sflow",
           "extended tunnel record: outer destination port", slot=S.S_TUN_DPORT),
    Column("decap_offset", "u32", "sflow",
           "extended decapsulate record (0:1027/0:1028): offset of the inner header",
           slot=S.S_DECAP_OFF),
)

# the ``tunnels`` struct fields, in order: (name, logical type, slot field)
TUNNEL_FIELDS: tuple[tuple[str, LogicalType, int], ...] = (
    ("type", "str", S.T_TYPE),
    ("vni", "u64", S.T_VNI),
    ("src", "ip", S.T_SRC_HI),
    ("dst", "ip", S.T_DST_HI),
    ("sport", "u16", S.T_SPORT),
    ("dport", "u16", S.T_DPORT),
    ("a", "i64", S.T_A),
    ("b", "i64", S.T_B),
)

# meaning of a/b per tunnel type, used by presenters (JSON output, API)
TUNNEL_AB_NAMES: dict[str, tuple[str | None, str | None]] = {
    "vxlan": ("group_policy_id", None),
    "vxlan-gpe": ("nsh_spi", "nsh_si"),
    "geneve": ("ovn_in_port", "ovn_out_port"),
    "gre": (None, "gre_flags"),
    "nvgre": ("flow_id", None),
    "stt": (None, None),
    "ipip": (None, None),
    "mpls-udp": ("bottom_label", "labels"),
    "erspan": ("session_id", "erspan_version"),
}

COUNTER_COLUMNS: tuple[Column, ...] = (
    Column("ts", "ts", "meta", "time the datagram was received / sampled", key=True),
    Column("kind", "str", "meta", "always counters (CONTRACTS.md)", stored=False),
    Column("agent", "ip", "sflow", "sFlow agent address", key=True),
    Column("sub_agent", "u32", "sflow", "sFlow sub-agent id"),
    Column("seq", "u32", "sflow", "datagram sequence number"),
    Column("uptime_ms", "u32", "sflow", "agent uptime in ms"),
    Column("sample_seq", "u32", "sflow", "counter sample sequence number"),
    Column("source_id", "u32", "sflow", "data source: type << 24 | index"),
    Column("ifindex", "u32", "sflow", "interface index", key=True),
    Column("iftype", "u32", "sflow", "IANA ifType"),
    Column("speed", "u64", "sflow", "interface speed, bits/s"),
    Column("direction", "u8", "sflow", "0 unknown, 1 full duplex, 2 half, 3 in, 4 out"),
    Column("status", "u8", "sflow", "bit0 admin up, bit1 operational up"),
    Column("in_octets", "u64", "sflow", "ifHCInOctets"),
    Column("in_ucast", "u32", "sflow", "ifInUcastPkts"),
    Column("in_mcast", "u32", "sflow", "ifInMulticastPkts"),
    Column("in_bcast", "u32", "sflow", "ifInBroadcastPkts"),
    Column("in_discards", "u32", "sflow", "ifInDiscards"),
    Column("in_errors", "u32", "sflow", "ifInErrors"),
    Column("in_unknown", "u32", "sflow", "ifInUnknownProtos"),
    Column("out_octets", "u64", "sflow", "ifHCOutOctets"),
    Column("out_ucast", "u32", "sflow", "ifOutUcastPkts"),
    Column("out_mcast", "u32", "sflow", "ifOutMulticastPkts"),
    Column("out_bcast", "u32", "sflow", "ifOutBroadcastPkts"),
    Column("out_discards", "u32", "sflow", "ifOutDiscards"),
    Column("out_errors", "u32", "sflow", "ifOutErrors"),
    Column("promisc", "u8", "sflow", "promiscuous mode"),
    Column("fcs_errors", "u32", "sflow", "dot3StatsFCSErrors (Ethernet counters, 0:2)"),
    Column("port_name", "str", "sflow", "port name (0:1005)"),
)

PACKET_BY_NAME: dict[str, Column] = {c.name: c for c in PACKET_COLUMNS}
COUNTER_BY_NAME: dict[str, Column] = {c.name: c for c in COUNTER_COLUMNS}
CONTRACT_FIELDS: tuple[str, ...] = tuple(c.name for c in PACKET_COLUMNS if c.contract)

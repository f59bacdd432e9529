"""sFlow v5 datagram encoder: build datagrams byte for byte (tests, the simulator, benches).

Every function returns ``bytes`` in sFlow's XDR layout (``sflow/datagram.py`` has the
diagrams). Samples and records nest as they do on the wire::

    from fabricscope.sflow import encode as E
    dgram = E.datagram(
        agent="192.0.2.1", sub_agent=0, seq=1, uptime_ms=1000,
        samples=[
            E.flow_sample(seq=1, source_id_index=3, sampling_rate=1024, sample_pool=4096,
                          input_if=3, output_if=0x3FFFFFFF, expanded=True,
                          records=[E.raw_header(frame_bytes, frame_length=1514),
                                   E.extended_switch(10, 0, 20, 0)]),
            E.counter_sample(seq=7, source_id_index=3,
                             records=[E.generic_interface_counters(ifindex=3),
                                      E.port_name("eth3")]),
        ])

Nothing is checked: any field can hold any 32-bit value, so tests can also build
malformed datagrams (wrong counts, lengths).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

__all__ = [
    "IF_DISCARDED",
    "IF_INTERNAL",
    "IF_MULTIPLE",
    "address",
    "counter_record",
    "counter_sample",
    "datagram",
    "decapsulate",
    "discard_sample",
    "ethernet_interface_counters",
    "extended_gateway",
    "extended_router",
    "extended_switch",
    "flow_record",
    "flow_sample",
    "generic_interface_counters",
    "port_name",
    "raw_header",
    "sample",
    "sampled_ethernet",
    "sampled_ipv4",
    "sampled_ipv6",
    "tunnel_ipv4",
    "tunnel_ipv6",
    "vni",
]

IF_INTERNAL = 0x3FFFFFFF
"""Interface value meaning "internal to the agent" (e.g. the switch CPU)."""
IF_DISCARDED = 1
"""Interface format: the packet was discarded; the value is the reason."""
IF_MULTIPLE = 2
"""Interface format: several output interfaces; the value is their count (0 unknown)."""


def _u32(*vals: int) -> bytes:
    return struct.pack(f">{len(vals)}I", *[v & 0xFFFFFFFF for v in vals])


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _opaque(b: bytes) -> bytes:
    return _u32(len(b)) + _pad(b)


def address(addr: str | None) -> bytes:
    """XDR address: type 1 + 4 bytes (IPv4), type 2 + 16 bytes (IPv6), type 0 (None)."""
    if addr is None:
        return _u32(0)
    ip = ipaddress.ip_address(addr)
    return _u32(1 if ip.version == 4 else 2) + ip.packed


def _fmt(enterprise: int, fmt: int) -> int:
    return (enterprise << 12) | fmt


def datagram(*, agent: str | None, seq: int, uptime_ms: int, samples: Sequence[bytes],
             sub_agent: int = 0, version: int = 5, num_samples: int | None = None) -> bytes:
    """A datagram; ``num_samples`` overrides the count (default: ``len(samples)``)."""
    n = len(samples) if num_samples is None else num_samples
    return (_u32(version) + address(agent) + _u32(sub_agent, seq, uptime_ms, n)
            + b"".join(samples))


def sample(fmt: int, data: bytes, *, enterprise: int = 0, length: int | None = None) -> bytes:
    """Any sample: data format, length (default: the data's), data (padded)."""
    ln = len(data) if length is None else length
    return _u32(_fmt(enterprise, fmt), ln) + _pad(data)


def flow_record(fmt: int, data: bytes, *, enterprise: int = 0,
                length: int | None = None) -> bytes:
    """Any flow record (also used for counter records: same framing)."""
    ln = len(data) if length is None else length
    return _u32(_fmt(enterprise, fmt), ln) + _pad(data)


counter_record = flow_record


def _iface(fmt: int, value: int) -> int:
    return ((fmt & 3) << 30) | (value & 0x3FFFFFFF)


def flow_sample(*, seq: int, source_id_index: int, sampling_rate: int, sample_pool: int,
                input_if: int, output_if: int, records: Sequence[bytes],
                source_id_type: int = 0, drops: int = 0, expanded: bool = False,
                input_format: int = 0, output_format: int = 0,
                num_records: int | None = None, length: int | None = None) -> bytes:
    """A flow sample (0:1) or expanded flow sample (0:3)."""
    n = len(records) if num_records is None else num_records
    if expanded:
        body = _u32(seq, source_id_type, source_id_index, sampling_rate, sample_pool, drops,
                    input_format, input_if, output_format, output_if, n)
    else:
        body = _u32(seq, ((source_id_type & 0xFF) << 24) | (source_id_index & 0xFFFFFF),
                    sampling_rate, sample_pool, drops, _iface(input_format, input_if),
                    _iface(output_format, output_if), n)
    return sample(3 if expanded else 1, body + b"".join(records), length=length)


def discard_sample(*, seq: int, source_id_index: int, reason: int, input_if: int = 0,
                   output_if: int = 0, drops: int = 0, source_id_type: int = 0,
                   records: Sequence[bytes] = (), num_records: int | None = None,
                   length: int | None = None) -> bytes:
    """A discarded-packet sample (0:5, sFlow drops extension)."""
    n = len(records) if num_records is None else num_records
    body = _u32(seq, source_id_type, source_id_index, drops, input_if, output_if, reason, n)
    return sample(5, body + b"".join(records), length=length)


def counter_sample(*, seq: int, source_id_index: int, records: Sequence[bytes],
                   source_id_type: int = 0, expanded: bool = False,
                   num_records: int | None = None, length: int | None = None) -> bytes:
    """A counter sample (0:2) or expanded counter sample (0:4)."""
    n = len(records) if num_records is None else num_records
    if expanded:
        body = _u32(seq, source_id_type, source_id_index, n)
    else:
        body = _u32(seq, ((source_id_type & 0xFF) << 24) | (source_id_index & 0xFFFFFF), n)
    return sample(4 if expanded else 2, body + b"".join(records), length=length)


# -- flow records -------------------------------------------------------------------------

def raw_header(header: bytes, *, frame_length: int | None = None, stripped: int = 4,
               protocol: int = 1, header_length: int | None = None,
               length: int | None = None) -> bytes:
    """Raw packet header (0:1); protocol 1 Ethernet, 11 IPv4, 12 IPv6."""
    fl = len(header) + stripped if frame_length is None else frame_length
    hl = len(header) if header_length is None else header_length
    data = _u32(protocol, fl, stripped, hl) + _pad(header)
    return flow_record(1, data, length=length)


def _mac(mac: str | bytes) -> bytes:
    b = bytes.fromhex(mac.replace(":", "")) if isinstance(mac, str) else mac
    return b + b"\0\0"


def sampled_ethernet(*, src_mac: str | bytes, dst_mac: str | bytes, ethertype: int,
                     length: int) -> bytes:
    """Sampled Ethernet (0:2)."""
    return flow_record(2, _u32(length) + _mac(src_mac) + _mac(dst_mac) + _u32(ethertype))


def _sampled_ip(v6: bool, src: str, dst: str, proto: int, sport: int, dport: int,
                tcp_flags: int, tos: int, length: int) -> bytes:
    s = ipaddress.ip_address(src).packed
    d = ipaddress.ip_address(dst).packed
    if len(s) != (16 if v6 else 4) or len(d) != len(s):
        raise ValueError("address family does not match the record")
    return _u32(length, proto) + s + d + _u32(sport, dport, tcp_flags, tos)


def sampled_ipv4(*, src: str, dst: str, proto: int, sport: int = 0, dport: int = 0,
                 tcp_flags: int = 0, tos: int = 0, length: int = 0) -> bytes:
    """Sampled IPv4 (0:3)."""
    return flow_record(3, _sampled_ip(False, src, dst, proto, sport, dport, tcp_flags, tos,
                                      length))


def sampled_ipv6(*, src: str, dst: str, proto: int, sport: int = 0, dport: int = 0,
                 tcp_flags: int = 0, priority: int = 0, length: int = 0) -> bytes:
    """Sampled IPv6 (0:4)."""
    return flow_record(4, _sampled_ip(True, src, dst, proto, sport, dport, tcp_flags,
                                      priority, length))


def extended_switch(src_vlan: int, src_priority: int, dst_vlan: int,
                    dst_priority: int) -> bytes:
    """Extended switch (0:1001)."""
    return flow_record(1001, _u32(src_vlan, src_priority, dst_vlan, dst_priority))


def extended_router(next_hop: str | None, src_mask: int, dst_mask: int) -> bytes:
    """Extended router (0:1002)."""
    return flow_record(1002, address(next_hop) + _u32(src_mask, dst_mask))


def extended_gateway(*, next_hop: str | None, as_number: int, src_as: int, src_peer_as: int,
                     dst_as_path: Sequence[Sequence[int]] = (),
                     communities: Sequence[int] = (), local_pref: int = 0,
                     segment_type: int = 2) -> bytes:
    """Extended gateway (0:1003); ``dst_as_path`` is a list of segments (AS lists)."""
    data = address(next_hop) + _u32(as_number, src_as, src_peer_as, len(dst_as_path))
    for seg in dst_as_path:
        data += _u32(segment_type, len(seg), *seg)
    data += _u32(len(communities), *communities) + _u32(local_pref)
    return flow_record(1003, data)


def tunnel_ipv4(*, egress: bool, src: str, dst: str, proto: int, sport: int = 0,
                dport: int = 0, tcp_flags: int = 0, tos: int = 0, length: int = 0) -> bytes:
    """Extended IPv4 tunnel egress (0:1023) / ingress (0:1024): the outer header."""
    return flow_record(1023 if egress else 1024,
                       _sampled_ip(False, src, dst, proto, sport, dport, tcp_flags, tos,
                                   length))


def tunnel_ipv6(*, egress: bool, src: str, dst: str, proto: int, sport: int = 0,
                dport: int = 0, tcp_flags: int = 0, priority: int = 0,
                length: int = 0) -> bytes:
    """Extended IPv6 tunnel egress (0:1025) / ingress (0:1026)."""
    return flow_record(1025 if egress else 1026,
                       _sampled_ip(True, src, dst, proto, sport, dport, tcp_flags, priority,
                                   length))


def decapsulate(*, egress: bool, inner_header_offset: int) -> bytes:
    """Extended decapsulate egress (0:1027) / ingress (0:1028)."""
    return flow_record(1027 if egress else 1028, _u32(inner_header_offset))


def vni(*, egress: bool, vni: int) -> bytes:
    """Extended VNI egress (0:1029) / ingress (0:1030)."""
    return flow_record(1029 if egress else 1030, _u32(vni))


# -- counter records ----------------------------------------------------------------------

def generic_interface_counters(*, ifindex: int, iftype: int = 6, speed: int = 10**9,
                               direction: int = 1, status: int = 3, in_octets: int = 0,
                               in_ucast: int = 0, in_mcast: int = 0, in_bcast: int = 0,
                               in_discards: int = 0, in_errors: int = 0,
                               in_unknown: int = 0, out_octets: int = 0, out_ucast: int = 0,
                               out_mcast: int = 0, out_bcast: int = 0,
                               out_discards: int = 0, out_errors: int = 0,
                               promisc: int = 0) -> bytes:
    """Generic interface counters (0:1), 88 bytes."""
    data = (_u32(ifindex, iftype) + struct.pack(">Q", speed) + _u32(direction, status)
            + struct.pack(">Q", in_octets)
            + _u32(in_ucast, in_mcast, in_bcast, in_discards, in_errors, in_unknown)
            + struct.pack(">Q", out_octets)
            + _u32(out_ucast, out_mcast, out_bcast, out_discards, out_errors, promisc))
    return counter_record(1, data)


def ethernet_interface_counters(*, fcs_errors: int = 0, alignment_errors: int = 0,
                                others: Sequence[int] = (0,) * 11) -> bytes:
    """Ethernet interface counters (0:2), 52 bytes (13 dot3Stats counters)."""
    if len(others) != 11:
        raise ValueError("others: the 11 dot3Stats counters after FCSErrors")
    return counter_record(2, _u32(alignment_errors, fcs_errors, *others))


def port_name(name: str | bytes) -> bytes:
    """Port name (0:1005): ``string name<255>``."""
    b = name.encode() if isinstance(name, str) else name
    return counter_record(1005, _opaque(b))

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

import numpy as np

__all__ = [
    "IF_DISCARDED",
    "IF_INTERNAL",
    "IF_MULTIPLE",
    "SyntheticStream",
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
    "synthetic_datagrams",
    "tunnel_ipv4",
    "tunnel_ipv6",
    "vni",
    "vxlan_frame",
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


# -- synthetic traffic (benchmarks, load tests, the simulator) -----------------------------

def vxlan_frame(i: int, size: int) -> bytes:
    """An Ethernet/IPv4/UDP 4789/VXLAN/Ethernet/IPv4/TCP frame cut (or zero-padded) to
    ``size`` bytes (a whole header needs 104): variant ``i`` has its own outer and inner
    addresses, ports and VNI (5000 + i % 256)."""
    inner_ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, size - 64, i & 0xFFFF, 0x4000, 64, 6, 0,
                           bytes([10, 1, i & 0xFF, 5]), bytes([10, 2, (i >> 8) & 0xFF, 9]))
    tcp = struct.pack(">HHIIBBHHH", 40000 + (i & 0x3FF), 443, i, 0, 0x50, 0x18, 512, 0, 0)
    inner = (bytes.fromhex("02000000aa01") + bytes.fromhex("02000000bb02") + b"\x08\x00"
             + inner_ip + tcp)
    vx = struct.pack(">II", 0x08000000, (5000 + (i & 0xFF)) << 8)
    udp = struct.pack(">HHHH", 49152 + (i & 0x3FFF), 4789, 8 + 8 + len(inner) + 64, 0)
    outer_ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(vx) + len(inner) + 64,
                           0, 0x4000, 64, 17, 0, bytes([192, 0, 2, 1 + (i & 0x3F)]),
                           bytes([192, 0, 2, 101 + ((i >> 6) & 0x3F)]))
    frame = (bytes.fromhex("0c0000000001") + bytes.fromhex("0c0000000002") + b"\x08\x00"
             + outer_ip + udp + vx + inner)
    frame += bytes(max(0, size - len(frame)))
    return frame[:size]


def synthetic_datagrams(count: int, *, samples: int = 7, header_bytes: int = 128,
                        switch_every: int = 2, counters_every: int = 10, agents: int = 1,
                        variants: int = 64, start_seq: int = 1
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` datagrams back to back -> (buf uint8, offset int64, length int64).

    Each datagram holds ``samples`` expanded flow samples (source index 1..samples,
    sampling rate 1024) whose raw headers are VXLAN-in-IPv4 frames of up to
    ``header_bytes`` bytes (104..header_bytes; VNI 5000..5255, varied inner addresses and
    ports); one flow sample in ``switch_every`` has an extended switch record; every
    ``counters_every``-th datagram adds a counter sample (generic + Ethernet + port name).
    Agents 10.0.0.1.. take turns; sequence numbers are contiguous per agent (datagrams)
    and per source (samples), starting at ``start_seq``. Built from ``variants`` templates
    patched with NumPy: no Python object per datagram.
    """
    st = SyntheticStream(count, samples=samples, header_bytes=header_bytes,
                         switch_every=switch_every, counters_every=counters_every,
                         agents=agents, variants=variants, start_seq=start_seq)
    return st.buf, st.offset, st.length


class SyntheticStream:
    """A block of ``block`` synthetic datagrams (see :func:`synthetic_datagrams`) that can
    be renumbered in place: :meth:`renumber(first)` makes it datagrams ``first ..
    first + block - 1`` of an endless stream (sequence numbers, uptime, sample pools), so a
    load generator can send for hours from one block. ``block`` must be a multiple of
    ``agents * counters_every`` for the counter samples to stay where they belong."""

    def __init__(self, block: int, *, samples: int = 7, header_bytes: int = 128,
                 switch_every: int = 2, counters_every: int = 10, agents: int = 1,
                 variants: int = 64, start_seq: int = 1) -> None:
        self.block = block
        self.agents = agents
        self.samples = samples
        self.counters_every = counters_every
        self.start_seq = start_seq
        if block <= 0:
            self.buf = np.zeros(0, np.uint8)
            self.offset = np.zeros(0, np.int64)
            self.length = np.zeros(0, np.int64)
            return
        lo = min(104, header_bytes)
        templates: list[bytes] = []
        sample_seq_off: list[list[int]] = []
        counter_seq_off: list[int] = []
        for with_counters in (False, True):
            for v in range(variants):
                smp: list[bytes] = []
                offs: list[int] = []
                pos = 28  # datagram header with an IPv4 agent
                for k in range(samples):
                    n = v * samples + k
                    size = header_bytes - (n * 7) % (header_bytes - lo + 1)
                    recs = [raw_header(vxlan_frame(n, size),
                                       frame_length=size + 400 + n % 1000)]
                    if switch_every and n % switch_every == 0:
                        recs.append(extended_switch(100 + v % 16, 0, 200 + k, 0))
                    smp.append(flow_sample(seq=0, source_id_index=k + 1, sampling_rate=1024,
                                           sample_pool=0, input_if=k + 1, output_if=10 + k,
                                           expanded=True, records=recs))
                    offs.append(pos + 8)
                    pos += len(smp[-1])
                coff = -1
                if with_counters:
                    smp.append(counter_sample(seq=0, source_id_index=100, expanded=True,
                                              records=[generic_interface_counters(
                                                  ifindex=100, in_octets=10**9,
                                                  out_octets=10**9),
                                                  ethernet_interface_counters(),
                                                  port_name("uplink0")]))
                    coff = pos + 8
                templates.append(datagram(agent="10.0.0.1", seq=0, uptime_ms=0,
                                          samples=smp))
                sample_seq_off.append(offs)
                counter_seq_off.append(coff)
        tlen = np.array([len(t) for t in templates], np.int64)
        n_idx = np.arange(block, dtype=np.int64)
        per_agent = n_idx // agents
        with_c = ((per_agent % counters_every == 0) if counters_every
                  else np.zeros(block, bool))
        choice = (n_idx % variants) + np.where(with_c, variants, 0)
        self.length = tlen[choice]
        self.offset = np.zeros(block, np.int64)
        np.cumsum(self.length[:-1], out=self.offset[1:])
        self.buf = np.empty(int(self.length.sum()), np.uint8)
        for tno, t in enumerate(templates):
            starts = self.offset[choice == tno]
            if len(starts):
                self.buf[starts[:, None] + np.arange(len(t))] = np.frombuffer(t, np.uint8)
        self._agent = n_idx % agents
        self._sample_pos = (self.offset[:, None]
                            + np.array(sample_seq_off, np.int64)[choice])  # (block, samples)
        coffs = np.array(counter_seq_off, np.int64)[choice]
        self._has_c = coffs >= 0
        self._counter_pos = self.offset[self._has_c] + coffs[self._has_c]
        self._put(self.offset + 8, (10 << 24) + 1 + self._agent)  # agent address
        self.renumber(0)

    def _put(self, pos: np.ndarray, val: np.ndarray) -> None:
        val = val & 0xFFFFFFFF
        for b in range(4):
            self.buf[pos + b] = (val >> (24 - 8 * b)) & 0xFF

    def renumber(self, first: int) -> None:
        """Make the block datagrams ``first ..`` of the stream."""
        per_agent = (first + np.arange(self.block, dtype=np.int64)) // self.agents
        seq = self.start_seq + per_agent
        self._put(self.offset + 16, seq)  # datagram sequence
        self._put(self.offset + 20, 1000 + 10 * per_agent)  # uptime
        for k in range(self.samples):
            self._put(self._sample_pos[:, k], seq)
            self._put(self._sample_pos[:, k] + 16, 1024 * seq)  # sample pool
        every = max(self.counters_every, 1)
        self._put(self._counter_pos, self.start_seq + per_agent[self._has_c] // every)

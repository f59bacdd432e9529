"""sFlow v5 decoding: encode -> decode round trips of every sample and record kind."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.vxlan import VXLAN

from fabricscope.records.arrow import COUNTER_SCHEMA, PACKET_SCHEMA
from fabricscope.records.present import record_dicts
from fabricscope.sflow import SflowDecoder
from fabricscope.sflow import encode as E

T0 = 1_700_000_000_123_456_000


def decode(dgrams: Sequence[bytes], decoder: SflowDecoder | None = None,
           ts: Sequence[int] | None = None
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], SflowDecoder]:
    """Decode datagrams (raw UDP payloads) -> (records, counter rows, decoder)."""
    dec = decoder or SflowDecoder()
    buf = np.frombuffer(b"".join(dgrams), np.uint8).copy()
    ln = np.array([len(d) for d in dgrams], np.int64)
    off = np.zeros(len(dgrams), np.int64)
    if len(dgrams):
        off[1:] = np.cumsum(ln)[:-1]
    tss = np.array(ts if ts is not None else [T0 + i for i in range(len(dgrams))], np.int64)
    recs, cnts = dec.decode_payloads(buf, off, ln, tss)
    return list(record_dicts(recs)), list(record_dicts(cnts)), dec


def one(dgram: bytes) -> tuple[dict[str, Any], SflowDecoder]:
    recs, _, dec = decode([dgram])
    assert len(recs) == 1
    return recs[0], dec


def tcp_frame(src: str = "10.1.0.5", dst: str = "10.2.0.9", sport: int = 43512,
              dport: int = 443, pad: int = 200) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src=src, dst=dst, ttl=61) / TCP(sport=sport, dport=dport, flags="PA")
                 / (b"x" * pad))


def vxlan_frame(vni: int = 5001, inner: bytes | None = None) -> bytes:
    inner = inner if inner is not None else tcp_frame()
    return bytes(Ether(src="0c:00:00:00:00:01", dst="0c:00:00:00:00:02")
                 / IP(src="192.0.2.10", dst="192.0.2.20") / UDP(sport=51000, dport=4789)
                 / VXLAN(vni=vni) / inner)


def geneve_frame(vni: int = 7) -> bytes:
    # GENEVE base header with one OVN option (class 0x0102, type 0x80, 4 bytes)
    opt = bytes.fromhex("01028001") + (0x0003_0004).to_bytes(4, "big")
    gen = bytes([len(opt) // 4, 0]) + (0x6558).to_bytes(2, "big") + (vni << 8).to_bytes(4, "big")
    return bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=40000, dport=6081)
                 / (gen + opt + tcp_frame(src="10.9.0.1", dst="10.9.0.2")))


def flow(records: Sequence[bytes], **kw: Any) -> bytes:
    args: dict[str, Any] = dict(seq=11, source_id_index=3, sampling_rate=1000,
                                sample_pool=123456, input_if=3, output_if=4)
    args.update(kw)
    return E.flow_sample(records=records, **args)


def dgram(samples: Sequence[bytes], **kw: Any) -> bytes:
    args: dict[str, Any] = dict(agent="192.0.2.1", sub_agent=2, seq=100, uptime_ms=5000)
    args.update(kw)
    return E.datagram(samples=samples, **args)


# -- flow samples ---------------------------------------------------------------------------

def test_flow_sample_fields_and_raw_header() -> None:
    frame = tcp_frame()
    r, dec = one(dgram([flow([E.raw_header(frame[:128], frame_length=len(frame) + 4)],
                             drops=9)]))
    assert r["kind"] == "flow"
    assert (r["agent"], r["sub_agent"], r["seq"], r["uptime_ms"]) == ("192.0.2.1", 2, 100, 5000)
    assert (r["sample_seq"], r["source_id"], r["sampling_rate"], r["sample_pool"],
            r["drops"]) == (11, 3, 1000, 123456, 9)
    assert (r["in_if"], r["out_if"], r["in_if_format"], r["out_if_format"]) == (3, 4, 0, 0)
    assert r["frame_len"] == len(frame) + 4
    assert r["caplen"] == 128
    assert r["header_protocol"] == 1
    assert (r["src"], r["dst"], r["proto"], r["sport"], r["dport"], r["ttl"]) == (
        "10.1.0.5", "10.2.0.9", 6, 43512, 443, 61)
    assert r["eth_src"] == "02:00:00:00:00:01"
    assert r["encap"] is None and r["tunnels"] == []
    assert r["error"] is None and r["truncated"] is False
    assert r["ts"] == "2023-11-14T22:13:20.123456Z"
    assert dec.events == {}


def test_expanded_vxlan_ipv6_agent_internal_interface() -> None:
    frame = vxlan_frame(vni=5001)
    d = dgram([flow([E.raw_header(frame[:128], frame_length=len(frame)),
                     E.extended_switch(10, 0, 20, 0)],
                    expanded=True, source_id_type=2, source_id_index=70_000_000,
                    input_if=E.IF_INTERNAL, output_if=12)],
              agent="2001:db8::1", sub_agent=0)
    r, _ = one(d)
    assert r["agent"] == "2001:db8::1"
    assert r["in_if"] == 0x3FFFFFFF and r["in_if_format"] == 0
    assert r["out_if"] == 12
    assert r["source_id"] == 70_000_000  # index beyond 24 bits: kept whole
    assert (r["encap"], r["vni"]) == ("vxlan", 5001)
    assert (r["src"], r["dst"], r["dport"]) == ("192.0.2.10", "192.0.2.20", 4789)
    assert (r["inner_src"], r["inner_dst"], r["inner_sport"], r["inner_dport"]) == (
        "10.1.0.5", "10.2.0.9", 43512, 443)
    assert (r["src_vlan"], r["dst_vlan"]) == (10, 20)
    assert r["tunnels"][0]["type"] == "vxlan"
    assert r["truncated"] is False  # 128 bytes hold IPv4+VXLAN+IPv4+TCP


def test_geneve_inside_sample() -> None:
    frame = geneve_frame(vni=7)
    r, _ = one(dgram([flow([E.raw_header(frame[:160], frame_length=len(frame))])]))
    assert (r["encap"], r["vni"]) == ("geneve", 7)
    assert (r["inner_src"], r["inner_dst"]) == ("10.9.0.1", "10.9.0.2")
    assert r["tunnels"][0].get("ovn_in_port") == 3
    assert r["tunnels"][0].get("ovn_out_port") == 4


def test_ipv6_underlay_ipv6_inner_truncated_at_128() -> None:
    inner = bytes(Ether() / IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=1, dport=2))
    frame = bytes(Ether() / IPv6(src="2001:db8::a", dst="2001:db8::b")
                  / UDP(sport=1000, dport=4789) / VXLAN(vni=9) / inner)
    r, _dec = one(dgram([flow([E.raw_header(frame[:128], frame_length=len(frame))])]))
    assert (r["encap"], r["vni"]) == ("vxlan", 9)
    assert r["truncated"] is True
    assert r["error"] is not None and r["error"].startswith("truncated")
    # 14 + 40 + 8 + 8 + 14 + 40 = 124: the inner IPv6 header fits, TCP only partly
    assert r["inner_src"] == "fd00::1"
    assert r.get("inner_tcp_flags") is None


@pytest.mark.parametrize(("proto", "layer"), [(11, IP(src="10.0.0.1", dst="10.0.0.2")),
                                              (12, IPv6(src="fd00::1", dst="fd00::2"))])
def test_raw_ip_headers(proto: int, layer: Any) -> None:
    pkt = bytes(layer / UDP(sport=53, dport=5353) / b"q")
    r, _ = one(dgram([flow([E.raw_header(pkt, protocol=proto)])]))
    assert r["header_protocol"] == proto
    assert r["src"] == ("10.0.0.1" if proto == 11 else "fd00::1")
    assert r["dport"] == 5353
    assert r["eth_src"] is None


def test_unknown_header_protocol_is_counted_not_decoded() -> None:
    r, dec = one(dgram([flow([E.raw_header(b"\x00" * 40, protocol=7)])]))
    assert r["src"] is None and r["caplen"] == 40 and r["header_protocol"] == 7
    assert dec.events == {"sflow_unknown_header_protocol": 1}


def test_output_interface_formats() -> None:
    d = dgram([flow([], output_format=E.IF_DISCARDED, output_if=258),
               flow([], output_format=E.IF_MULTIPLE, output_if=5, seq=12),
               flow([], expanded=True, output_format=E.IF_DISCARDED, output_if=1, seq=13)])
    recs, _, _ = decode([d])
    assert [(r["out_if_format"], r["out_if"], r.get("discard_reason")) for r in recs] == [
        (1, 258, 258), (2, 5, None), (1, 1, 1)]
    assert all(r["kind"] == "flow" for r in recs)


def test_discard_sample() -> None:
    frame = tcp_frame()
    d = dgram([E.discard_sample(seq=77, source_id_index=9, reason=262, input_if=9,
                                output_if=14, drops=5,
                                records=[E.raw_header(frame[:64], frame_length=len(frame))])])
    r, _ = one(d)
    assert r["kind"] == "discard"
    assert (r["discard_reason"], r["in_if"], r["out_if"], r["drops"], r["sample_seq"],
            r["source_id"]) == (262, 9, 14, 5, 77, 9)
    assert r["sampling_rate"] is None
    assert r["src"] == "10.1.0.5"


def test_sampled_records_fill_the_wire_headers() -> None:
    d = dgram([
        flow([E.sampled_ethernet(src_mac="02:00:00:00:00:0a", dst_mac="02:00:00:00:00:0b",
                                 ethertype=0x0800, length=1518),
              E.sampled_ipv4(src="10.0.0.1", dst="10.0.0.2", proto=6, sport=1234, dport=80,
                             tcp_flags=0x18, tos=0x10, length=1500)]),
        flow([E.sampled_ipv6(src="fd00::1", dst="fd00::2", proto=17, sport=5, dport=6,
                             length=100)], seq=12),
    ])
    r1, r2 = decode([d])[0]
    assert (r1["eth_src"], r1["eth_dst"], r1["ethertype"], r1["frame_len"]) == (
        "02:00:00:00:00:0a", "02:00:00:00:00:0b", 0x0800, 1518)
    assert (r1["src"], r1["dst"], r1["proto"], r1["sport"], r1["dport"], r1["tcp_flags"],
            r1["tos"], r1["ip_len"]) == ("10.0.0.1", "10.0.0.2", 6, 1234, 80, 0x18, 0x10, 1500)
    assert (r2["src"], r2["dst"], r2["proto"], r2["frame_len"], r2["ethertype"]) == (
        "fd00::1", "fd00::2", 17, 100, 0x86DD)


def test_raw_header_wins_over_sampled_ipv4() -> None:
    frame = tcp_frame()
    r, _ = one(dgram([flow([E.sampled_ipv4(src="1.1.1.1", dst="2.2.2.2", proto=17),
                            E.raw_header(frame[:128])])]))
    assert r["src"] == "10.1.0.5"


def test_extended_router_gateway_tunnel_decap_vni() -> None:
    d = dgram([flow([
        E.extended_router("192.0.2.254", 24, 16),
        E.extended_gateway(next_hop="192.0.2.254", as_number=65000, src_as=65001,
                           src_peer_as=65002, dst_as_path=[[65010, 65011], [65012]],
                           communities=[1, 2], local_pref=100),
        E.tunnel_ipv4(egress=True, src="192.0.2.10", dst="192.0.2.20", proto=17,
                      sport=51000, dport=4789),
        E.decapsulate(egress=False, inner_header_offset=50),
        E.vni(egress=True, vni=5001),
        E.vni(egress=False, vni=5002),
    ]), flow([E.extended_router("2001:db8::fe", 64, 48),
              E.tunnel_ipv6(egress=False, src="2001:db8::1", dst="2001:db8::2", proto=17,
                            sport=1, dport=6081)], seq=12)])
    r1, r2 = decode([d])[0]
    assert (r1["next_hop"], r1["src_mask"], r1["dst_mask"]) == ("192.0.2.254", 24, 16)
    assert (r1["router_as"], r1["src_as"], r1["peer_as"], r1["dst_as"]) == (
        65000, 65001, 65002, 65012)
    assert (r1["tunnel_outer_dir"], r1["tunnel_outer_src"], r1["tunnel_outer_dst"],
            r1["tunnel_outer_proto"], r1["tunnel_outer_sport"], r1["tunnel_outer_dport"]) == (
        1, "192.0.2.10", "192.0.2.20", 17, 51000, 4789)
    assert r1["decap_offset"] == 50
    assert (r1["tunnel_vni_out"], r1["tunnel_vni_in"]) == (5001, 5002)
    assert (r2["next_hop"], r2["src_mask"], r2["dst_mask"]) == ("2001:db8::fe", 64, 48)
    assert (r2["tunnel_outer_dir"], r2["tunnel_outer_src"], r2["tunnel_outer_dport"]) == (
        2, "2001:db8::1", 6081)
    assert r1["error"] is None and r2["error"] is None


def test_unknown_records_and_samples_are_skipped_and_counted() -> None:
    frame = tcp_frame()
    d = dgram([
        E.sample(42, b"\x01\x02\x03\x04" * 3, enterprise=9999),
        flow([E.flow_record(7, b"\xff" * 12, enterprise=8800),
              E.flow_record(1999, b""),
              E.raw_header(frame[:100])]),
        E.counter_sample(seq=1, source_id_index=1, records=[
            E.counter_record(1001, b"\0" * 12), E.port_name("p1")]),
    ])
    recs, cnts, dec = decode([d])
    assert len(recs) == 1 and recs[0]["src"] == "10.1.0.5" and recs[0]["error"] is None
    assert len(cnts) == 1 and cnts[0]["port_name"] == "p1"
    assert dec.events == {"sflow_unknown_sample": 1, "sflow_unknown_record": 2,
                          "sflow_unknown_counter_record": 1}


# -- counters -------------------------------------------------------------------------------

@pytest.mark.parametrize("expanded", [False, True])
def test_counter_sample(expanded: bool) -> None:
    d = dgram([E.counter_sample(seq=44, source_id_index=12, expanded=expanded, records=[
        E.generic_interface_counters(ifindex=12, iftype=6, speed=25 * 10**9, direction=1,
                                     status=3, in_octets=2**40 + 5, in_ucast=10, in_mcast=11,
                                     in_bcast=12, in_discards=13, in_errors=14,
                                     in_unknown=15, out_octets=2**33, out_ucast=20,
                                     out_mcast=21, out_bcast=22, out_discards=23,
                                     out_errors=24, promisc=2),
        E.ethernet_interface_counters(fcs_errors=7),
        E.port_name("tap-1234"),
    ])])
    recs, cnts, dec = decode([d])
    assert recs == [] and len(cnts) == 1
    c = cnts[0]
    assert c["kind"] == "counters"
    assert (c["agent"], c["sub_agent"], c["seq"], c["sample_seq"], c["source_id"]) == (
        "192.0.2.1", 2, 100, 44, 12)
    assert (c["ifindex"], c["iftype"], c["speed"], c["direction"], c["status"]) == (
        12, 6, 25 * 10**9, 1, 3)
    assert (c["in_octets"], c["in_ucast"], c["in_mcast"], c["in_bcast"], c["in_discards"],
            c["in_errors"], c["in_unknown"]) == (2**40 + 5, 10, 11, 12, 13, 14, 15)
    assert (c["out_octets"], c["out_ucast"], c["out_mcast"], c["out_bcast"],
            c["out_discards"], c["out_errors"], c["promisc"]) == (
        2**33, 20, 21, 22, 23, 24, 2)
    assert c["fcs_errors"] == 7
    assert c["port_name"] == "tap-1234"
    assert dec.events == {}


def test_counter_sample_without_generic_record_takes_ifindex_from_source() -> None:
    d = dgram([E.counter_sample(seq=1, source_id_index=33, records=[
        E.ethernet_interface_counters(fcs_errors=1), E.port_name(b"caf\xe9")])])
    _, cnts, _ = decode([d])
    assert cnts[0]["ifindex"] == 33 and cnts[0].get("speed") is None
    assert cnts[0]["port_name"] == "caf\ufffd"  # not UTF-8: replaced, no error


def test_batches_have_the_shared_schemas() -> None:
    frame = vxlan_frame()
    d = dgram([flow([E.raw_header(frame[:128])]),
               E.counter_sample(seq=1, source_id_index=1,
                                records=[E.generic_interface_counters(ifindex=1)])])
    dec = SflowDecoder()
    buf = np.frombuffer(d, np.uint8).copy()
    recs, cnts = dec.decode_payloads(buf, np.array([0]), np.array([len(d)]), np.array([T0]))
    assert recs.schema.equals(PACKET_SCHEMA, check_metadata=False)
    assert cnts.schema.equals(COUNTER_SCHEMA, check_metadata=False)
    e_recs, e_cnts = dec.decode_payloads(buf, np.zeros(0, np.int64), np.zeros(0, np.int64),
                                         np.zeros(0, np.int64))
    assert e_recs.num_rows == 0 and e_cnts.num_rows == 0
    assert e_recs.schema.equals(PACKET_SCHEMA, check_metadata=False)


# -- batching -------------------------------------------------------------------------------

def _many(n: int) -> list[bytes]:
    out = []
    for k in range(n):
        frame = vxlan_frame(vni=k % 4096, inner=tcp_frame(sport=1000 + k))
        out.append(dgram([flow([E.raw_header(frame[:128])], seq=k * 3 + s, source_id_index=s)
                          for s in range(3)]
                         + ([E.counter_sample(seq=k, source_id_index=99, records=[
                             E.port_name(f"port{k}")])] if k % 5 == 0 else []),
                         seq=k + 1))
    return out


def test_chunked_decoding_gives_the_same_records() -> None:
    dgrams = _many(60)
    whole, wc, _ = decode(dgrams)
    chunked, cc, dec = decode(dgrams, decoder=SflowDecoder(max_batch_records=7))
    assert len(whole) == 180 and len(wc) == 12
    assert chunked == whole and cc == wc
    assert dec.accounting.datagrams == 60


def test_reused_matrices_do_not_change_earlier_batches() -> None:
    dec = SflowDecoder()
    first = _many(4)
    buf = np.frombuffer(b"".join(first), np.uint8).copy()
    ln = np.array([len(d) for d in first], np.int64)
    off = np.concatenate([[0], np.cumsum(ln)[:-1]]).astype(np.int64)
    r1, _ = dec.decode_payloads(buf, off, ln, np.full(4, T0, np.int64))
    before = r1.to_pylist()
    dec.decode_payloads(buf, off, ln, np.full(4, T0 + 10**9, np.int64))
    assert r1.to_pylist() == before


def test_decode_datagrams_from_a_capture(tmp_path: Path) -> None:
    """The pipeline path: sFlow in UDP/6343 frames of a pcap, next to plain packets."""
    from fabricscope.capture.writer import PcapWriter
    from fabricscope.pipeline import FileDecoder

    path = tmp_path / "s.pcap"
    dgrams = _many(3)
    with PcapWriter(path) as w:
        for k, d in enumerate(dgrams):
            w.write(bytes(Ether() / IP(src="198.51.100.1", dst="198.51.100.2")
                          / UDP(sport=40000, dport=6343) / d), T0 + k * 1000)
        w.write(tcp_frame(), T0 + 5000)
    fd = FileDecoder(path)
    steps = list(fd)
    recs = [r for s in steps for r in record_dicts(s.records)]
    cnts = [r for s in steps if s.counters is not None for r in record_dicts(s.counters)]
    assert sum(1 for r in recs if r["kind"] == "flow") == 9
    assert sum(1 for r in recs if r["kind"] == "packet") == 1
    assert len(cnts) == 1
    flows = [r for r in recs if r["kind"] == "flow"]
    assert [r["seq"] for r in flows] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert flows[0]["ts"] == "2023-11-14T22:13:20.123456Z"
    assert fd.summary.sflow_datagrams == 3


def test_datagram_bounds_equal_the_packet_matrix() -> None:
    """``PacketDecoder.datagram_bounds`` (the frames of interest walked a chunk at a time)
    gives what the full slot matrix holds in its rows, across chunk boundaries, for UDP
    over IPv4 and IPv6, VLAN-tagged, TCP, cut and empty frames; and the sFlow decoder
    reads the same records through either."""
    from fabricscope.decode import BOUND_ROWS, BOUNDS_CHUNK, PacketDecoder
    from framehelp import frames_from_bytes

    d = _many(1)[0]
    kinds = [
        bytes(Ether() / IP(src="198.51.100.1", dst="198.51.100.2") / UDP(dport=6343) / d),
        bytes(Ether() / Dot1Q(vlan=7) / IP(src="198.51.100.3") / UDP(dport=6343) / d),
        bytes(Ether() / IPv6(src="2001:db8::1") / UDP(dport=6343) / d),
        tcp_frame(),
        bytes(Ether() / IP() / UDP(dport=6343) / d)[:30],
        b"",
    ]
    frames = [kinds[k % len(kinds)] for k in range(2 * BOUNDS_CHUNK + 500)]
    fb = frames_from_bytes(frames)
    dec = PacketDecoder()
    want = dec.decode_matrix(fb, count=False)[list(BOUND_ROWS)]
    rng = np.random.default_rng(3)
    for idx in (np.arange(len(frames)), np.sort(rng.choice(len(frames), 1500, replace=False)),
                np.array([], np.int64)):
        got = dec.datagram_bounds(fb, idx)
        assert got.shape == (len(BOUND_ROWS), len(idx))
        assert np.array_equal(got, want[:, idx])
    udp = np.array([k for k in range(len(frames)) if k % len(kinds) in (0, 1, 2)])
    r1, c1 = SflowDecoder().decode_datagrams(fb, dec.decode_matrix(fb, count=False), udp)
    r2, c2 = SflowDecoder().decode_bounded(fb, udp, dec.datagram_bounds(fb, udp))
    assert r1.num_rows == 3 * len(udp) and r1.equals(r2) and c1.equals(c2)


def test_every_contract_field_is_present() -> None:
    from fabricscope.records.schema import CONTRACT_FIELDS

    r, _ = one(dgram([flow([E.raw_header(vxlan_frame()[:128])])]))
    assert set(CONTRACT_FIELDS) <= set(r)


def test_addresses_round_trip_as_16_bytes() -> None:
    frame = vxlan_frame()
    d = dgram([flow([E.raw_header(frame[:128])])], agent="2001:db8::77")
    dec = SflowDecoder()
    recs, _ = dec.decode_payloads(np.frombuffer(d, np.uint8).copy(), np.array([0]),
                                  np.array([len(d)]), np.array([T0]))
    agent = recs.column("agent")[0].as_py()
    assert agent == ipaddress.ip_address("2001:db8::77").packed
    assert recs.column("agent").type == pa.binary(16)


def test_vlan_tagged_sample() -> None:
    frame = bytes(Ether() / Dot1Q(vlan=42) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP())
    r, _ = one(dgram([flow([E.raw_header(frame)])]))
    assert (r["vlan"], r["src"]) == (42, "10.0.0.1")


def _file_outcome(fd: Any) -> tuple[Any, ...]:
    """Everything a ``FileDecoder`` run gives: (records, counter rows, summary without its
    time, sFlow accounting, number of steps)."""
    steps = list(fd)
    recs = pa.concat_tables([pa.Table.from_batches([s.records]) for s in steps])
    cnts = pa.concat_tables([pa.Table.from_batches([s.counters]) for s in steps
                             if s.counters is not None])
    summary = fd.summary.to_dict()
    summary.pop("seconds")
    return recs, cnts, summary, fd.sflow_accounting(), len(steps)


@pytest.mark.parametrize("force", [False, True])
def test_bounds_first_batches_equal_packets_first(tmp_path: Path, force: bool) -> None:
    """``FileDecoder``'s adaptive path (after a batch of only sFlow datagrams, the next is
    walked for its datagram bounds first) gives what the packets-first path gives: the
    same records, counter rows, events, summary and sequence accounting, through
    all-sFlow batches, a batch with a TCP frame in it (the fallback), a cut datagram
    frame and an empty frame."""
    from fabricscope.capture.writer import PcapWriter
    from fabricscope.pipeline import FileDecoder

    path = tmp_path / "s.pcap"
    dgrams = _many(40)
    with PcapWriter(path) as w:
        for k, d in enumerate(dgrams):
            if k == 25:
                w.write(tcp_frame(), T0 + k * 1000)  # a packet in the sixth batch
            if k == 33:  # a datagram frame cut inside its UDP header
                w.write(bytes(Ether() / IP() / UDP(dport=6343) / d)[:38], T0 + k * 1000)
            w.write(bytes(Ether() / IP(src="198.51.100.1", dst="198.51.100.2")
                          / UDP(sport=40000, dport=6343) / d), T0 + k * 1000 + 1)

    def run(bounds_first: bool) -> tuple[Any, ...]:
        fd = FileDecoder(path, sflow=force, batch_frames=5)
        fd.bounds_first = bounds_first
        calls = [0]
        decode = fd.packets.decode

        def counted(frames: Any) -> pa.RecordBatch:
            calls[0] += 1
            return decode(frames)

        fd.packets.decode = counted  # type: ignore[method-assign]
        return (*_file_outcome(fd)[:4], calls[0])

    fast, slow = run(True), run(False)
    # 9 batches: packets first decodes each as packets; the adaptive path only the
    # first and the ones after a batch that was not all sFlow
    assert slow[4] == 9 and 2 <= fast[4] <= 4
    assert fast[0].num_rows > 100 and fast[1].num_rows > 0
    assert fast[0].equals(slow[0]) and fast[1].equals(slow[1])
    assert fast[2] == slow[2] and fast[3] == slow[3]


def test_file_decoder_slices_sflow_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """``FileDecoder`` decodes a capture batch's datagrams ``SFLOW_SLICE`` at a time, one
    step each: the same records, counter rows, summary and accounting as one call per
    batch, on both the bounds-first and the packets-first (mixed batch) paths."""
    from fabricscope import pipeline
    from fabricscope.capture.writer import PcapWriter
    from fabricscope.pipeline import FileDecoder

    path = tmp_path / "s.pcap"
    with PcapWriter(path) as w:
        for k, d in enumerate(_many(30)):
            if k == 17:
                w.write(tcp_frame(), T0 + k * 1000)  # a mixed batch: packets first
            w.write(bytes(Ether() / IP(src="198.51.100.1", dst="198.51.100.2")
                          / UDP(sport=40000, dport=6343) / d), T0 + k * 1000 + 1)

    def run(slice_: int) -> tuple[Any, ...]:
        monkeypatch.setattr(pipeline, "SFLOW_SLICE", slice_)
        return _file_outcome(FileDecoder(path, batch_frames=8))

    whole, sliced = run(1 << 20), run(3)
    # 31 frames in batches of 8: 4 sFlow steps (+1 for the TCP frame's packet record)
    # against 3 + 3 + 3 + 3 slices of at most 3 datagrams (+1); 30 x 3 flow samples
    assert whole[4] == 5 and sliced[4] == 13
    assert whole[0].num_rows == 90 + 1 and whole[1].num_rows == 6
    assert sliced[0].equals(whole[0])
    # each slice has its own port-name dictionary: compare the values
    assert sliced[1].to_pylist() == whole[1].to_pylist()
    assert sliced[2] == whole[2] and sliced[3] == whole[3]

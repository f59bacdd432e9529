"""Bad sFlow input: every length and count checked, named events, nothing hangs or grows.

Fixtures for the documented cases (a count of 0xFFFFFFFF, a sample longer than the
datagram, a zero-length record, a header length beyond its record, an unknown address
type, lengths that wrap 32-bit offsets...), then Hypothesis mutating the length and count
fields of valid datagrams, truncating them and flipping bytes.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabricscope.decode.events import EVENTS
from fabricscope.sflow import SflowDecoder
from fabricscope.sflow import encode as E
from fabricscope.sflow.events import SFLOW_EVENT_NAMES
from test_sflow_decode import decode, dgram, flow, tcp_frame, vxlan_frame

KNOWN_EVENTS = set(SFLOW_EVENT_NAMES) | {name for _, name, _, _ in EVENTS}
U32 = 0xFFFFFFFF


def put32(b: bytes, off: int, v: int) -> bytes:
    return b[:off] + struct.pack(">I", v & U32) + b[off + 4:]


def good_flow(seq: int = 1) -> bytes:
    frame = vxlan_frame()
    return flow([E.raw_header(frame[:128], frame_length=len(frame)),
                 E.extended_switch(1, 0, 2, 0)], seq=seq)


# -- fixtures -------------------------------------------------------------------------------

def test_empty_and_tiny_datagrams() -> None:
    recs, cnts, dec = decode([b"", b"\0\0\0", b"\0\0\0\x05"])
    assert recs == [] and cnts == []
    assert dec.events == {"sflow_truncated_datagram": 3}
    assert dec.accounting.to_dict()["unattributed_datagrams"] == 3


def test_bad_version() -> None:
    d = dgram([good_flow()], version=4)
    recs, _, dec = decode([d])
    assert recs == [] and dec.events == {"sflow_bad_version": 1}


def test_unknown_agent_address_type() -> None:
    d = put32(dgram([good_flow()]), 4, 7)
    recs, _, dec = decode([d])
    assert recs == [] and dec.events == {"sflow_unknown_address_type": 1}


def test_agent_address_type_unknown_zero_has_no_bytes() -> None:
    d = dgram([good_flow()], agent=None)
    recs, _, dec = decode([d])
    assert len(recs) == 1 and recs[0]["agent"] is None and recs[0]["src"] == "192.0.2.10"
    assert dec.events == {}


def test_sample_count_ffffffff() -> None:
    d = dgram([good_flow(1), good_flow(2)], num_samples=U32)
    recs, _, dec = decode([d])
    assert [r["sample_seq"] for r in recs] == [1, 2]  # what is there is decoded
    assert all(r["error"] is None for r in recs)
    assert dec.events == {"sflow_count_too_large": 1}


def test_fewer_samples_than_declared() -> None:
    d = dgram([good_flow(1)], num_samples=2)
    recs, _, dec = decode([d])
    assert len(recs) == 1
    assert dec.events == {"sflow_count_too_large": 1}


def test_record_count_ffffffff() -> None:
    frame = tcp_frame()
    d = dgram([flow([E.raw_header(frame[:100])], num_records=U32)])
    recs, _, dec = decode([d])
    assert len(recs) == 1 and recs[0]["src"] == "10.1.0.5"
    assert recs[0]["error"] == "sflow_count_too_large"
    assert dec.events == {"sflow_count_too_large": 1}


def test_sample_longer_than_the_datagram() -> None:
    s = good_flow()
    d = dgram([s[:8] and struct.pack(">II", 1, len(s) - 8 + 4000) + s[8:]])
    recs, _, dec = decode([d])
    assert len(recs) == 1
    assert recs[0]["error"] == "sflow_bad_sample_length"
    assert recs[0]["src"] == "192.0.2.10"  # the sample's records are still there
    assert dec.events == {"sflow_bad_sample_length": 1}


def test_sample_length_wraps_offsets() -> None:
    for bad in (U32, U32 - 3, 0x80000000, 0x7FFFFFFC):
        s = good_flow()
        d = dgram([struct.pack(">II", 1, bad) + s[8:], good_flow(2)])
        recs, _, dec = decode([d])
        assert len(recs) == 1, hex(bad)
        assert dec.events == {"sflow_bad_sample_length": 1}, hex(bad)


def test_truncated_datagram_from_a_short_capture() -> None:
    """A datagram cut by the capture (caplen < wirelen): truncated, not a bad length."""
    d = dgram([good_flow(1), good_flow(2)])
    cut = d[:len(d) - 60]
    import numpy as np

    dec = SflowDecoder()
    buf = np.frombuffer(cut, np.uint8).copy()
    recs, _ = dec.decode_payloads(buf, np.array([0]), np.array([len(cut)]), np.array([1]),
                                  truncated=np.array([1]))
    assert recs.num_rows == 2
    assert recs.column("error").to_pylist() == [None, "sflow_truncated_datagram"]
    assert dec.events.get("sflow_truncated_datagram") == 1


def test_sample_shorter_than_its_fixed_fields() -> None:
    d = dgram([E.sample(3, b"\0" * 20), E.sample(2, b"\0" * 4), good_flow(3)])
    recs, cnts, dec = decode([d])
    assert [r["sample_seq"] for r in recs] == [3] and cnts == []
    assert dec.events == {"sflow_bad_sample_length": 2}


def test_zero_length_records() -> None:
    d = dgram([flow([E.flow_record(1, b""), E.flow_record(1001, b""), E.flow_record(3, b""),
                     E.flow_record(1029, b"")])])
    recs, _, dec = decode([d])
    assert len(recs) == 1 and recs[0]["error"] == "sflow_bad_record_length"
    assert dec.events == {"sflow_bad_record_length": 4}


def test_record_longer_than_its_sample() -> None:
    frame = tcp_frame()
    rec = E.raw_header(frame[:64], length=5000)
    d = dgram([flow([rec, E.extended_switch(1, 0, 2, 0)])])
    recs, _, dec = decode([d])
    assert recs[0]["error"] == "sflow_bad_record_length"
    assert recs[0]["src"] is None and recs[0].get("src_vlan") is None  # the list stops
    assert dec.events == {"sflow_bad_record_length": 1}


def test_header_length_beyond_its_record() -> None:
    frame = tcp_frame()
    d = dgram([flow([E.raw_header(frame[:64], header_length=1000)])])
    recs, _, dec = decode([d])
    r = recs[0]
    assert r["error"] == "sflow_bad_header_length"
    assert r["caplen"] == 64 and r["src"] == "10.1.0.5"  # decoded within its record
    assert dec.events == {"sflow_bad_header_length": 1}


def test_header_length_ffffffff() -> None:
    d = dgram([flow([E.raw_header(tcp_frame()[:64], header_length=U32)])])
    recs, _, _dec = decode([d])
    assert recs[0]["error"] == "sflow_bad_header_length" and recs[0]["caplen"] == 64


def test_unknown_next_hop_address_type() -> None:
    rec = E.flow_record(1002, struct.pack(">I", 9) + b"\0" * 16)
    d = dgram([flow([rec, E.extended_switch(5, 0, 6, 0)])])
    recs, _, dec = decode([d])
    assert recs[0]["error"] == "sflow_unknown_address_type"
    assert recs[0]["src_vlan"] == 5  # the record is skipped by its length
    assert dec.events == {"sflow_unknown_address_type": 1}


def test_gateway_counts() -> None:
    # AS path segment count, AS count and community count of 0xFFFFFFFF
    base = E.address("192.0.2.1") + struct.pack(">III", 1, 2, 3)
    for tail in (struct.pack(">I", U32),
                 struct.pack(">III", 1, 2, U32),
                 struct.pack(">I", 0) + struct.pack(">I", U32)):
        d = dgram([flow([E.flow_record(1003, base + tail)])])
        recs, _, _dec = decode([d])
        assert recs[0]["error"] == "sflow_count_too_large", tail.hex()
        assert recs[0]["router_as"] == 1


def test_port_name_too_long() -> None:
    name = E.counter_record(1005, struct.pack(">I", 300) + b"x" * 300)
    short = E.counter_record(1005, struct.pack(">I", 100) + b"x" * 8)
    d = dgram([E.counter_sample(seq=1, source_id_index=1, records=[name]),
               E.counter_sample(seq=2, source_id_index=1, records=[short])])
    _, cnts, dec = decode([d])
    assert [c.get("port_name") for c in cnts] == [None, None]
    assert dec.events == {"sflow_bad_string_length": 2}


def test_counter_record_too_short() -> None:
    d = dgram([E.counter_sample(seq=1, source_id_index=4, records=[
        E.counter_record(1, b"\0" * 40), E.counter_record(2, b"\0" * 8)])])
    _, cnts, dec = decode([d])
    assert cnts[0]["ifindex"] == 4 and cnts[0].get("fcs_errors") is None
    assert dec.events == {"sflow_bad_record_length": 2}


def test_trailing_bytes() -> None:
    d = dgram([good_flow()]) + b"\0" * 12
    recs, _, dec = decode([d])
    assert len(recs) == 1 and dec.events == {"sflow_trailing_bytes": 1}


def test_tcpdump_segv_capture_decodes_to_a_clean_error(shared_captures: Path) -> None:
    from fabricscope.pipeline import FileDecoder

    fd = FileDecoder(shared_captures / "tcpdump" / "sflow_print-segv.pcap")
    steps = list(fd)
    assert sum(s.records.num_rows for s in steps) == 0
    assert fd.summary.sflow_datagrams == 1
    assert fd.summary.events == {"sflow_truncated_datagram": 1}


# -- Hypothesis -----------------------------------------------------------------------------

def field_offsets(d: bytes) -> list[int]:
    """Offsets of every length and count field of a valid datagram (a Python walk)."""
    out: list[int] = []

    def u(o: int) -> int:
        return int(struct.unpack_from(">I", d, o)[0])

    def records(p: int, end: int, counters: bool) -> None:
        out.append(p)
        n = u(p)
        p += 4
        for _ in range(n):
            fmt, ln = u(p), u(p + 4)
            out.append(p + 4)
            body = p + 8
            if not counters and fmt == 1:
                out.append(body + 12)  # sampled header length
            if counters and fmt == 1005:
                out.append(body)  # port name length
            if not counters and fmt == 1003:
                q = body + (8 if u(body) == 1 else 20 if u(body) == 2 else 4) + 12
                out.append(q)
                nseg = u(q)
                q += 4
                for _ in range(nseg):
                    out.append(q + 4)
                    q += 8 + 4 * u(q + 4)
                out.append(q)
            p = body + ((ln + 3) & ~3)
        assert p == end

    atype = u(4)
    p = 8 + (4 if atype == 1 else 16 if atype == 2 else 0) + 12
    out.append(p)
    n = u(p)
    p += 4
    for _ in range(n):
        fmt, ln = u(p), u(p + 4)
        out.append(p + 4)
        body = p + 8
        fixed = {1: 28, 3: 40, 5: 28, 2: 8, 4: 12}.get(fmt)
        if fixed is not None:
            records(body + fixed, body + ln, fmt in (2, 4))
        p = body + ln
    assert p == len(d)
    return out


def sample_datagrams() -> list[bytes]:
    frame = vxlan_frame()
    gw = E.extended_gateway(next_hop="2001:db8::1", as_number=1, src_as=2, src_peer_as=3,
                            dst_as_path=[[4, 5], [6]], communities=[7, 8], local_pref=9)
    return [
        dgram([good_flow(1), good_flow(2)]),
        dgram([flow([E.raw_header(frame[:128]), gw, E.extended_router("192.0.2.9", 8, 9),
                     E.vni(egress=True, vni=3),
                     E.tunnel_ipv6(egress=False, src="::1", dst="::2", proto=17)],
                    expanded=True),
               E.counter_sample(seq=3, source_id_index=2, expanded=True, records=[
                   E.generic_interface_counters(ifindex=2), E.ethernet_interface_counters(),
                   E.port_name("eth2")]),
               E.discard_sample(seq=4, source_id_index=5, reason=3, records=[
                   E.sampled_ipv4(src="10.0.0.1", dst="10.0.0.2", proto=6)])],
              agent="2001:db8::9"),
    ]


SAMPLES = sample_datagrams()
INTERESTING = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 7, 8, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
                     U32, U32 - 3, U32 - 7]),
    st.integers(0, U32),
)


_WARM: list[bool] = []


def check(dgrams: list[bytes]) -> tuple[list[dict[str, Any]], SflowDecoder]:
    if not _WARM:  # the 2 s bound is for decoding, not for loading the compiled kernels
        decode(SAMPLES[:1])
        _WARM.append(True)
    t0 = time.perf_counter()
    recs, cnts, dec = decode(dgrams)
    assert time.perf_counter() - t0 < 2.0
    assert set(dec.events) <= KNOWN_EVENTS, dec.events
    total = sum(len(d) for d in dgrams)
    assert len(recs) + len(cnts) <= total // 40 + 1
    return recs, dec


def test_field_locator_finds_the_fields() -> None:
    for d in SAMPLES:
        assert len(field_offsets(d)) > 5
        _recs, dec = check([d])
        assert dec.events == {}


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(SAMPLES) - 1), data=st.data())
def test_mutated_lengths_and_counts(which: int, data: st.DataObject) -> None:
    d = SAMPLES[which]
    offs = field_offsets(d)
    picks = data.draw(st.lists(st.sampled_from(offs), min_size=1, max_size=3))
    for o in picks:
        d = put32(d, o, data.draw(INTERESTING))
    recs, _dec = check([d])
    if recs:
        # records of a mutated datagram are either clean or carry a named error
        assert {r["error"] for r in recs} <= KNOWN_EVENTS | {None}


@settings(max_examples=200, deadline=None)
@given(which=st.integers(0, len(SAMPLES) - 1), cut=st.integers(0, 2000))
def test_truncated_anywhere(which: int, cut: int) -> None:
    d = SAMPLES[which]
    check([d[: cut % (len(d) + 1)]])


@settings(max_examples=200, deadline=None)
@given(which=st.integers(0, len(SAMPLES) - 1),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8))
def test_random_bytes(which: int, flips: list[tuple[int, int]]) -> None:
    b = bytearray(SAMPLES[which])
    for pos, val in flips:
        b[pos % len(b)] = val
    check([bytes(b)])


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(blob: bytes) -> None:
    check([blob, b"\0\0\0\x05" + blob])


@pytest.mark.parametrize("count", [0xFFFFFFFF, 0x7FFFFFFF, 1 << 20])
def test_huge_counts_allocate_nothing(count: int) -> None:
    """A count field never sizes an allocation: a datagram claiming ``count`` samples costs
    what a datagram claiming 1 does."""
    import tracemalloc

    dec = SflowDecoder()

    def peak_of(d: bytes) -> int:
        decode([d], decoder=dec)  # warm: pools sized for this datagram
        tracemalloc.start()
        t0 = time.perf_counter()
        decode([d], decoder=dec)
        assert time.perf_counter() - t0 < 1.0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak

    normal = peak_of(dgram([good_flow()]))
    huge = peak_of(dgram([good_flow()], num_samples=count))
    assert huge < normal + (256 << 10)

"""pcapng reading (capture/pcapng.py via capture/reader.py) and PcapngWriter."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from fabricscope.capture import PcapngWriter, open_capture, read_all
from fabricscope.capture import linktypes as lt
from fabricscope.capture.pcapng import resolution
from fabricscope.capture.writer import units_from_ns
from fabricscope.errors import InputError

T0 = 1_700_000_000_123_456_789
Order = Literal["little", "big"]
ORDERS: tuple[Order, ...] = ("little", "big")


def frames_for(n: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, int(rng.integers(14, 200)), dtype=np.uint8).tobytes()
            for _ in range(n)]


def ns_from_units(units: int, tsresol: int, tsoffset: int = 0) -> int:
    k = tsresol & 0x7F
    if tsresol & 0x80:
        return (units * 10**9 >> k) + tsoffset * 10**9
    return units * 10**9 // 10**k + tsoffset * 10**9


def drain(path: Path, **kw: int) -> tuple[list[bytes], InputError | None]:
    out: list[bytes] = []
    err = None
    with open_capture(path, **kw) as cap:
        try:
            for b in cap:
                out += [b.frame(i) for i in range(len(b))]
        except InputError as exc:
            err = exc
    return out, err


def two_interfaces(path: Path, order: Order = "little", n: int = 40,
                   tsresol: tuple[int, int] = (9, 0x80 | 20)) -> tuple[list[bytes], list[int]]:
    """Interface 0: Ethernet at tsresol[0]; interface 1: raw IP at tsresol[1]; alternating."""
    frames = frames_for(n, seed=9)
    ts = [T0 + i * 1_234_567 for i in range(n)]
    with PcapngWriter(path, byteorder=order) as w:
        w.add_interface(lt.LINKTYPE_ETHERNET, tsresol=tsresol[0], name="eth0")
        w.add_interface(lt.LINKTYPE_RAW, tsresol=tsresol[1], snaplen=65535)
        for i, (f, t) in enumerate(zip(frames, ts, strict=True)):
            w.write(f, t, iface=i % 2, wirelen=len(f) + i)
    return frames, ts


@pytest.mark.parametrize("order", ORDERS)
def test_two_interfaces_link_types_and_resolutions(tmp_path: Path, order: Order) -> None:
    path = tmp_path / "two.pcapng"
    frames, ts = two_interfaces(path, order)
    with open_capture(path) as cap:
        assert cap.format == "pcapng" and not cap.compressed
        batches = list(cap)
    b = batches[0]
    assert len(batches) == 1 and len(b) == 40
    assert [b.frame(i) for i in range(40)] == frames
    assert b.iface.tolist() == [i % 2 for i in range(40)]
    assert b.linktype.tolist() == [(lt.LINKTYPE_ETHERNET, lt.LINKTYPE_RAW)[i % 2] for i in range(40)]
    assert b.ts_prec.tolist() == [(9, 6)[i % 2] for i in range(40)]
    want = [t if i % 2 == 0 else ns_from_units(units_from_ns(t, 0x80 | 20), 0x80 | 20)
            for i, t in enumerate(ts)]
    assert b.ts_ns.tolist() == want
    assert all(abs(x - t) < 1000 for x, t in zip(b.ts_ns.tolist(), ts, strict=True))
    assert b.wirelen.tolist() == [len(f) + i for i, f in enumerate(frames)]
    # file_offset is the start of each EPB; data starts 28 bytes in
    assert (b.offset - b.file_offset == 28).all()
    data = path.read_bytes()
    o = ">" if order == "big" else "<"
    for fo in b.file_offset.tolist():
        assert struct.unpack_from(o + "I", data, fo)[0] == 6


@pytest.mark.parametrize(("tsresol", "digits"), [
    (6, 6), (9, 9), (3, 3), (0, 0), (12, 9), (0x80 | 10, 3), (0x80 | 20, 6), (0x80 | 30, 9),
    (0x80 | 40, 9),
])
def test_resolutions(tmp_path: Path, tsresol: int, digits: int) -> None:
    path = tmp_path / "r.pcapng"
    t0 = T0
    while units_from_ns(t0 + 10**9, tsresol) >= 1 << 63:  # e.g. picoseconds since 1970
        t0 //= 1000
    ts = [t0, t0 + 987_654_321, 5_000_000_001]
    with PcapngWriter(path) as w:
        w.add_interface(1, tsresol=tsresol)
        for t in ts:
            w.write(b"x" * 20, t)
    b = read_all(path)
    assert b.ts_prec.tolist() == [digits] * 3
    assert b.ts_ns.tolist() == [ns_from_units(units_from_ns(t, tsresol), tsresol) for t in ts]
    assert resolution(tsresol)[3] == digits


def test_if_tsoffset(tmp_path: Path) -> None:
    path = tmp_path / "o.pcapng"
    with PcapngWriter(path) as w:
        w.add_interface(1, tsresol=6, tsoffset=1_000_000_000)
        w.write(b"x" * 20, T0)
    with path.open("rb") as f:
        raw = f.read()
    # the stored count is relative to the offset
    assert units_from_ns(T0, 6, 1_000_000_000) == (T0 - 10**18) // 1000
    assert b"\x0e\x00\x08\x00" in raw  # option 14, 8 bytes
    assert read_all(path).ts_ns.tolist() == [T0 // 1000 * 1000]


def test_scapy_reads_the_same(tmp_path: Path) -> None:
    scapy_utils = pytest.importorskip("scapy.utils")
    for order in ORDERS:
        path = tmp_path / f"s-{order}.pcapng"
        frames, _ = two_interfaces(path, order, tsresol=(9, 6))
        ours = read_all(path)
        theirs = scapy_utils.rdpcap(str(path))
        assert len(theirs) == len(ours) == len(frames)
        assert [bytes(p) for p in theirs] == frames
        assert [int(p.time * 10**9) for p in theirs] == ours.ts_ns.tolist()
        assert [p.wirelen for p in theirs] == ours.wirelen.tolist()
    # binary resolution: scapy divides by 2^k in decimal arithmetic; ours floors to ns
    path = tmp_path / "bin.pcapng"
    two_interfaces(path, tsresol=(0x80 | 20, 0x80 | 30))
    theirs = scapy_utils.rdpcap(str(path))
    assert [int(p.time * 10**9) for p in theirs] == read_all(path).ts_ns.tolist()


def test_simple_packet_blocks(tmp_path: Path) -> None:
    path = tmp_path / "spb.pcapng"
    with PcapngWriter(path) as w:
        w.add_interface(lt.LINKTYPE_ETHERNET, snaplen=64, tsresol=9)
        w.add_interface(lt.LINKTYPE_RAW)
        w.write_simple(b"a" * 30)                  # whole frame
        w.write_simple(b"b" * 100, wirelen=100)    # cut to snaplen 64
        w.write_simple(b"c" * 40, wirelen=1500)    # captured part only: body (padded) wins
        w.write_simple(b"d" * 21)                  # padding is not data: orig length wins
    with open_capture(path) as cap:
        (b,) = list(cap)
    assert b.caplen.tolist() == [30, 64, 40, 21]
    assert b.wirelen.tolist() == [30, 100, 1500, 21]
    assert b.frame(0) == b"a" * 30 and b.frame(1) == b"b" * 64 and b.frame(3) == b"d" * 21
    assert b.ts_ns.tolist() == [0, 0, 0, 0]
    assert b.iface.tolist() == [0] * 4 and b.linktype.tolist() == [1] * 4
    assert (b.offset - b.file_offset == 12).all()


def test_obsolete_packet_block_and_skipped_blocks(tmp_path: Path) -> None:
    path = tmp_path / "pb.pcapng"
    with PcapngWriter(path, byteorder="big") as w:
        w.add_interface(lt.LINKTYPE_ETHERNET, tsresol=6)
        w.add_interface(lt.LINKTYPE_LINUX_SLL2, tsresol=9)
        w.write_block(4, b"\x00\x00\x00\x00")            # NRB (empty)
        w.write(b"first", T0, iface=0)
        units = units_from_ns(T0, 9)
        body = struct.pack(">HHIIII", 1, 7, units >> 32, units & 0xFFFFFFFF, 6, 60) + b"second"
        w.write_block(2, body + b"\0\0")                  # obsolete Packet Block, interface 1
        w.write_block(5, b"\0" * 20)                      # ISB
        w.write_block(10, b"TLSK" + b"\0" * 8)            # DSB
        w.write_block(0x00000BAD, b"custom!")             # custom block
        w.write_block(0x40000BAD, b"")                    # custom, empty body
        w.write(b"third", T0 + 1000, iface=1)
    b = read_all(path)
    assert [b.frame(i) for i in range(len(b))] == [b"first", b"second", b"third"]
    assert b.iface.tolist() == [0, 1, 1]
    assert b.linktype.tolist() == [1, 276, 276]
    assert b.ts_ns.tolist() == [T0 // 1000 * 1000, T0, T0 + 1000]
    assert b.wirelen.tolist() == [5, 60, 5]


def test_second_section_switches_byte_order_and_resets_interfaces(tmp_path: Path) -> None:
    a, b_ = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    with PcapngWriter(a) as w:
        w.add_interface(lt.LINKTYPE_ETHERNET, tsresol=9)
        w.add_interface(lt.LINKTYPE_RAW, tsresol=9)
        w.write(b"le-0", T0, iface=0)
        w.write(b"le-1", T0 + 1, iface=1)
    with PcapngWriter(b_, byteorder="big") as w:
        w.new_section(w.option(1, b"a comment") + w.option(0, b""))  # SHB with options
        w.add_interface(lt.LINKTYPE_IPV6, tsresol=6)
        w.write(b"be-0", T0 + 2000, iface=0)
    path = tmp_path / "ab.pcapng"
    path.write_bytes(a.read_bytes() + b_.read_bytes())
    for chunk in (64, 8 << 20):
        b = read_all(path, chunk_bytes=chunk)
        assert [b.frame(i) for i in range(len(b))] == [b"le-0", b"le-1", b"be-0"]
        assert b.linktype.tolist() == [1, 101, 229]
        assert b.iface.tolist() == [0, 1, 0]
        assert b.ts_ns.tolist() == [T0, T0 + 1, (T0 + 2000) // 1000 * 1000]
    # a packet naming interface 1 in the second section is an error: interfaces reset
    bad = tmp_path / "bad.pcapng"
    with PcapngWriter(bad, byteorder="big") as w:
        w.add_interface(1)
        w.write(b"x", T0)
        w._ifaces.append((6, 0, 0))  # let the writer write on a missing interface
        w.write(b"y", T0, iface=1)
    got, err = drain(bad)
    assert got == [b"x"]
    assert err is not None and "names interface 1, the section has 1" in str(err)


def test_interface_added_after_packets(tmp_path: Path) -> None:
    path = tmp_path / "late.pcapng"
    with PcapngWriter(path) as w:
        w.add_interface(1, tsresol=9)
        for i in range(5):
            w.write(b"a%d" % i, T0 + i)
        w.add_interface(101, tsresol=9)
        for i in range(5):
            w.write(b"b%d" % i, T0 + i, iface=1)
    for batch in (1, 3, 100):
        b = read_all(path, batch_frames=batch)
        assert b.iface.tolist() == [0] * 5 + [1] * 5
        assert b.linktype.tolist() == [1] * 5 + [101] * 5


@pytest.mark.parametrize("chunk", [64, 100, 1000])
@pytest.mark.parametrize("batch", [1, 5, 8192])
def test_blocks_straddling_chunks(tmp_path: Path, chunk: int, batch: int) -> None:
    path = tmp_path / "s.pcapng"
    frames, _ = two_interfaces(path, n=200)
    whole = read_all(path)
    with open_capture(path, chunk_bytes=chunk, batch_frames=batch) as cap:
        batches = list(cap)
    assert all(0 < len(b) <= batch for b in batches)
    assert [b.frame(i) for b in batches for i in range(len(b))] == frames
    assert np.concatenate([b.ts_ns for b in batches]).tolist() == whole.ts_ns.tolist()
    assert np.concatenate([b.linktype for b in batches]).tolist() == whole.linktype.tolist()


def test_big_frame_and_gzip(tmp_path: Path) -> None:
    big = np.random.default_rng(2).integers(0, 256, 300_001, dtype=np.uint8).tobytes()
    path = tmp_path / "big.pcapng"
    with PcapngWriter(path) as w:
        w.add_interface(1)
        w.write(b"small", T0)
        w.write(big, T0)
        w.write(b"after", T0)
    gz = tmp_path / "big.pcapng.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    for p in (path, gz):
        for chunk in (4096, 8 << 20):
            with open_capture(p, chunk_bytes=chunk) as cap:
                assert cap.compressed == (p == gz)
                assert cap.format == "pcapng"
                got = [b.frame(i) for b in cap for i in range(len(b))]
            assert got == [b"small", big, b"after"]


def test_header_only_is_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "h.pcapng"
    with PcapngWriter(path) as w:
        w.add_interface(1)
    assert len(read_all(path)) == 0
    path2 = tmp_path / "shb.pcapng"
    with PcapngWriter(path2):
        pass
    assert len(read_all(path2)) == 0


# --- bad input: good frames first, then InputError at the bad block's offset ---------------


def good_then(tmp_path: Path, tail: bytes | None = None, order: Order = "little",
              ) -> tuple[Path, int]:
    path = tmp_path / "bad.pcapng"
    with PcapngWriter(path, byteorder=order) as w:
        w.add_interface(1)
        for i in range(3):
            w.write(b"good%d" % i, T0)
    size = path.stat().st_size
    if tail is not None:
        with path.open("ab") as f:
            f.write(tail)
    return path, size


def block(btype: int, length: int, body: bytes, trailer: int | None = None,
          order: Order = "little") -> bytes:
    o = ">" if order == "big" else "<"
    return (struct.pack(o + "II", btype, length) + body
            + struct.pack(o + "I", length if trailer is None else trailer))


GOOD = [b"good0", b"good1", b"good2"]


def epb(data: bytes, iface: int = 0, caplen: int | None = None, order: Order = "little") -> bytes:
    o = ">" if order == "big" else "<"
    pad = data + b"\0" * (-len(data) % 4)
    body = struct.pack(o + "IIIII", iface, 0, 0, len(data) if caplen is None else caplen,
                       len(data)) + pad
    return block(6, len(body) + 12, body, order=order)


def bad_tail(case: str, o: Order) -> bytes:
    """A bad block in byte order ``o`` (one per case of :func:`test_bad_blocks`)."""
    e = ">" if o == "big" else "<"
    if case == "short":
        return block(6, 8, b"", order=o)
    if case == "zero":
        return block(6, 0, b"", order=o)
    if case == "unaligned":
        return block(0x99, 14, b"\0\0", order=o)
    if case == "lying":
        return block(6, 0x7FFFFFFC, b"", order=o)
    if case == "trailer":
        return block(5, 16, b"\0" * 4, trailer=20, order=o)
    if case == "epb-short":
        return block(6, 28, b"\0" * 16, order=o)
    if case == "iface":
        return epb(b"abcd", iface=3, order=o)
    if case == "caplen":
        return epb(b"abcd", caplen=5, order=o)
    if case == "truncated":
        return epb(b"z" * 100, order=o)[:60]
    if case == "header":
        return struct.pack(e + "I", 6)[:3]
    assert case == "bom"
    return block(0x0A0D0D0A, 28, b"\x11\x22\x33\x44" + b"\0" * 12, order=o)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("case", "message"), [
    ("short", "bad block length 8: less than 12 (enhanced packet block)"),
    ("zero", "bad block length 0: less than 12 (enhanced packet block)"),
    ("unaligned", "bad block length 14: not a multiple of 4 (block type 0x00000099)"),
    ("lying", "lying block length: enhanced packet block says 2147483644 bytes, more than "
              "the 256 MiB limit"),
    ("trailer", "block trailing length 20 differs from leading length 16 "
                "(interface statistics block)"),
    ("epb-short", "enhanced packet block too short: 28 bytes (at least 32)"),
    ("iface", "enhanced packet block names interface 3, the section has 1"),
    ("caplen", "enhanced packet block says 5 captured bytes, its body holds 4"),
    ("truncated", "truncated block: enhanced packet block says 132 bytes, 60 left"),
    ("header", "truncated block header: 8 bytes needed, 3 left"),
    ("bom", "bad byte-order magic 0x11223344 in section header block"),
])
def test_bad_blocks(tmp_path: Path, order: Order, case: str, message: str) -> None:
    path, bad_at = good_then(tmp_path, bad_tail(case, order), order)
    for chunk in (64, 8 << 20):
        got, err = drain(path, chunk_bytes=chunk)
        assert got == GOOD
        assert err is not None, message
        assert err.offset == bad_at
        assert f"offset {bad_at}: {message}" in str(err)
        assert "\n" not in str(err)


@pytest.mark.parametrize("order", ORDERS)
def test_spb_before_any_interface(tmp_path: Path, order: Order) -> None:
    path = tmp_path / "spb.pcapng"
    with PcapngWriter(path, byteorder=order) as w:
        w.write_simple(b"abc")
    got, err = drain(path)
    assert got == []
    assert err is not None and err.offset == 28
    assert "simple packet block before any interface description block" in str(err)


def test_bad_section_headers(tmp_path: Path) -> None:
    path = tmp_path / "v.pcapng"
    bom = struct.pack("<I", 0x1A2B3C4D)
    path.write_bytes(block(0x0A0D0D0A, 28, bom + struct.pack("<HHq", 2, 0, -1)))
    with pytest.raises(InputError, match=r"offset 0: unsupported pcapng version 2\.0"):
        list(open_capture(path))
    path.write_bytes(block(0x0A0D0D0A, 24, bom + struct.pack("<HHI", 1, 0, 0)))
    with pytest.raises(InputError, match="bad block length 24: a section header block has at"):
        list(open_capture(path))
    path.write_bytes(block(0x0A0D0D0A, 28, bom + struct.pack("<HHq", 1, 0, -1))[:20])
    with pytest.raises(InputError, match="truncated block: section header block says 28 bytes"):
        list(open_capture(path))
    path.write_bytes(b"\x0a\x0d\x0d\x0a\x1c\x00")
    with pytest.raises(InputError, match="offset 0: truncated block header: 8 bytes needed, 6"):
        list(open_capture(path))
    path.write_bytes(block(0x0A0D0D0A, 28, bom + struct.pack("<HHq", 1, 0, -1), trailer=32))
    with pytest.raises(InputError, match="block trailing length 32 differs from leading length 28"):
        list(open_capture(path))


def test_bad_interface_blocks(tmp_path: Path) -> None:
    path, bad_at = good_then(tmp_path, block(1, 16, b"\x01\x00\x00\x00"))
    got, err = drain(path)
    assert got == GOOD and err is not None and err.offset == bad_at
    assert "interface description block too short: 16 bytes (at least 20)" in str(err)
    opt = struct.pack("<HH", 9, 40) + b"\x06\0\0\0"
    path, bad_at = good_then(tmp_path, block(1, 28, struct.pack("<HHI", 1, 0, 0) + opt))
    got, err = drain(path)
    assert got == GOOD and err is not None and err.offset == bad_at
    assert "interface description block option 9 says 40 bytes, 4 left in the block" in str(err)


def test_truncated_gzip_pcapng(tmp_path: Path) -> None:
    path = tmp_path / "t.pcapng"
    frames, _ = two_interfaces(path, n=3000)
    data = gzip.compress(path.read_bytes())
    gz = tmp_path / "t.pcapng.gz"
    gz.write_bytes(data[: len(data) * 2 // 3])
    got, err = drain(gz, chunk_bytes=4096)
    assert err is not None and "compressed stream is truncated" in str(err)
    assert 0 < len(got) < 3000 and got == frames[: len(got)]


def test_batches_kept_by_the_consumer_are_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.pcapng"
    frames, _ = two_interfaces(path, n=2000)
    whole = read_all(path)
    kept = []
    seen = 0
    with open_capture(path, chunk_bytes=2048, batch_frames=5) as cap:
        for k, b in enumerate(cap):
            if k % 3 == 0:
                kept.append((seen, b.buf, b.offset, b.caplen, b.linktype, b.ts_ns))
            seen += len(b)
    for start, buf, offset, caplen, link, ts in kept:
        n = len(offset)
        assert link.tolist() == whole.linktype[start : start + n].tolist()
        assert ts.tolist() == whole.ts_ns[start : start + n].tolist()
        assert [buf[o : o + c].tobytes() for o, c in zip(offset, caplen, strict=True)] == \
            frames[start : start + n]

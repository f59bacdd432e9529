"""Classic pcap reading (capture/pcap.py, capture/reader.py) and PcapWriter."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from fabricscope.capture import FrameBatch, PcapWriter, open_capture, read_all
from fabricscope.capture import linktypes as lt
from fabricscope.errors import InputError

T0 = 1_700_000_000_123_456_789


def frames_for(n: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, int(rng.integers(14, 200)), dtype=np.uint8).tobytes()
            for _ in range(n)]


def pcap_header(big: bool = False, nsec: bool = False, snaplen: int = 65535,
                linktype: int = 1) -> bytes:
    o = ">" if big else "<"
    return struct.pack(o + "IHHIIII", 0xA1B23C4D if nsec else 0xA1B2C3D4, 2, 4, 0, 0,
                       snaplen, linktype)


def record(data: bytes, sec: int = 1, frac: int = 0, big: bool = False,
           caplen: int | None = None, wirelen: int | None = None) -> bytes:
    o = ">" if big else "<"
    return struct.pack(o + "IIII", sec, frac, len(data) if caplen is None else caplen,
                       len(data) if wirelen is None else wirelen) + data


def drain(path: Path, **kw: int) -> tuple[list[tuple[bytes, int, int, int]], InputError | None]:
    """(frame, ts_ns, wirelen, file_offset) of every frame handed out, and the error."""
    out: list[tuple[bytes, int, int, int]] = []
    err = None
    with open_capture(path, **kw) as cap:
        try:
            for b in cap:
                for i in range(len(b)):
                    out.append((b.frame(i), int(b.ts_ns[i]), int(b.wirelen[i]),
                                int(b.file_offset[i])))
        except InputError as exc:
            err = exc
            assert cap.stats.error is exc
    return out, err


@pytest.mark.parametrize("nsec", [False, True], ids=["usec", "nsec"])
@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_round_trip_byte_orders_and_resolutions(tmp_path: Path,
                                                byteorder: Literal["little", "big"],
                                                nsec: bool) -> None:
    frames = frames_for(50)
    ts = [T0 + i * 1_000_001 for i in range(50)]
    path = tmp_path / "x.cap"
    with PcapWriter(path, linktype=lt.LINKTYPE_RAW, nanosecond=nsec,
                    byteorder=byteorder) as w:
        for f, t in zip(frames, ts, strict=True):
            w.write(f, t, wirelen=len(f) + 4)
    magic = {("little", False): "d4c3b2a1", ("big", False): "a1b2c3d4",
             ("little", True): "4d3cb2a1", ("big", True): "a1b23c4d"}[byteorder, nsec]
    assert path.read_bytes()[:4].hex() == magic
    b = read_all(path)
    assert len(b) == 50
    assert [b.frame(i) for i in range(50)] == frames
    want_ts = ts if nsec else [t // 1000 * 1000 for t in ts]
    assert b.ts_ns.tolist() == want_ts
    assert b.wirelen.tolist() == [len(f) + 4 for f in frames]
    assert set(b.linktype.tolist()) == {lt.LINKTYPE_RAW}
    assert set(b.iface.tolist()) == {0}
    assert set(b.ts_prec.tolist()) == {9 if nsec else 6}
    assert b.file_offset[0] == 24
    assert (np.diff(b.file_offset) == 16 + b.caplen[:-1]).all()
    with open_capture(path) as cap:
        assert cap.format == "pcap" and not cap.compressed
        list(cap)
        assert cap.stats.frames == 50
        assert cap.stats.bytes == sum(map(len, frames))
        assert cap.stats.file_bytes == path.stat().st_size
        assert cap.stats.error is None


def test_columns_have_the_documented_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    with PcapWriter(path) as w:
        w.write(b"\x00" * 60, T0)
    with open_capture(path) as cap:
        (b,) = list(cap)
    assert isinstance(b, FrameBatch)
    assert b.buf.dtype == np.uint8
    for name in ("offset", "caplen", "wirelen", "ts_ns", "file_offset"):
        assert getattr(b, name).dtype == np.int64, name
    assert b.linktype.dtype == np.int32 and b.iface.dtype == np.int32
    assert b.ts_prec.dtype == np.int8


def test_scapy_reads_the_same(tmp_path: Path) -> None:
    scapy_utils = pytest.importorskip("scapy.utils")
    for nsec in (False, True):
        path = tmp_path / f"s{nsec}.pcap"
        frames = frames_for(30, seed=7)
        with PcapWriter(path, nanosecond=nsec) as w:
            for i, f in enumerate(frames):
                w.write(f, T0 + i * 12_345_678_901)
        ours = read_all(path)
        theirs = scapy_utils.rdpcap(str(path))
        assert len(theirs) == len(ours)
        assert [bytes(p) for p in theirs] == [ours.frame(i) for i in range(len(ours))]
        assert [int(p.time * 10**9) for p in theirs] == ours.ts_ns.tolist()
        assert [p.wirelen for p in theirs] == ours.wirelen.tolist()


def shared_pcaps(root: Path) -> list[Path]:
    files = sorted((root / "tcpdump").glob("*.pcap")) + sorted(
        (root / "akvorado-sflow").glob("*.pcap"))
    if not files:
        pytest.skip(f"no captures under {root}")
    return files


def test_shared_captures_match_scapy(shared_captures: Path) -> None:
    scapy_utils = pytest.importorskip("scapy.utils")
    for path in shared_pcaps(shared_captures):
        ours = read_all(path)
        theirs = scapy_utils.rdpcap(str(path))
        assert len(ours) == len(theirs), path.name
        assert [ours.frame(i) for i in range(len(ours))] == [bytes(p) for p in theirs], path.name
        assert ours.ts_ns.tolist() == [int(p.time * 10**9) for p in theirs], path.name
        assert ours.wirelen.tolist() == [p.wirelen for p in theirs], path.name
        assert int(ours.caplen.sum()) == sum(len(p) for p in theirs), path.name


def test_shared_captures_same_with_tiny_chunks_and_gzip(shared_captures: Path,
                                                        tmp_path: Path) -> None:
    for path in shared_pcaps(shared_captures):
        whole = read_all(path)
        small = read_all(path, chunk_bytes=64, batch_frames=3)
        gz = tmp_path / (path.name + ".gz")
        gz.write_bytes(gzip.compress(path.read_bytes()))
        zipped = read_all(gz, chunk_bytes=100)
        for other in (small, zipped):
            assert len(other) == len(whole)
            assert other.buf.tobytes() == whole.buf.tobytes()
            assert other.ts_ns.tolist() == whole.ts_ns.tolist()
            assert other.file_offset.tolist() == whole.file_offset.tolist()


def test_format_is_told_by_magic_not_name(tmp_path: Path) -> None:
    path = tmp_path / "capture.pcapng.txt"
    path.write_bytes(pcap_header() + record(b"abc"))
    with open_capture(path) as cap:
        assert cap.format == "pcap"
        assert [b.frame(0) for b in cap] == [b"abc"]


@pytest.mark.parametrize("chunk", [64, 65, 100, 333, 4096])
@pytest.mark.parametrize("batch", [1, 7, 8192])
def test_frames_straddling_chunks(tmp_path: Path, chunk: int, batch: int) -> None:
    frames = frames_for(300, seed=3)
    path = tmp_path / "s.pcap"
    with PcapWriter(path, nanosecond=True) as w:
        for i, f in enumerate(frames):
            w.write(f, T0 + i)
    got = []
    with open_capture(path, chunk_bytes=chunk, batch_frames=batch) as cap:
        batches = list(cap)  # keep them all: their buffers must never be reused
        assert cap.stats.batches == len(batches)
    for b in batches:
        assert 0 < len(b) <= batch
        got += [b.frame(i) for i in range(len(b))]
    assert got == frames
    assert np.concatenate([b.ts_ns for b in batches]).tolist() == [T0 + i for i in range(300)]


def test_frame_bigger_than_chunk(tmp_path: Path) -> None:
    big = np.random.default_rng(5).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    frames = [b"a" * 60, big, b"b" * 70, big[:1000]]
    path = tmp_path / "big.pcap"
    with PcapWriter(path, snaplen=1 << 20) as w:
        for f in frames:
            w.write(f, T0)
    for chunk in (4096, 65536, 8 << 20):
        b = read_all(path, chunk_bytes=chunk)
        assert [b.frame(i) for i in range(len(b))] == frames
    gz = tmp_path / "big.pcap.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    b = read_all(gz, chunk_bytes=4096)
    assert [b.frame(i) for i in range(len(b))] == frames


def test_gzip_is_transparent(tmp_path: Path) -> None:
    frames = frames_for(500, seed=11)
    plain = tmp_path / "p.pcap"
    with PcapWriter(plain) as w:
        for i, f in enumerate(frames):
            w.write(f, T0 + i * 1000)
    gz = tmp_path / "p.pcap.gz"
    with PcapWriter(gz) as w:  # the writer compresses .gz paths
        for i, f in enumerate(frames):
            w.write(f, T0 + i * 1000)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    with open_capture(gz, chunk_bytes=1000) as cap:
        assert cap.compressed and cap.format == "pcap"
        got = [b.frame(i) for b in cap for i in range(len(b))]
        assert cap.stats.file_bytes == plain.stat().st_size
    assert got == frames
    assert read_all(gz).ts_ns.tolist() == read_all(plain).ts_ns.tolist()


def test_write_batch_matches_write(tmp_path: Path) -> None:
    frames = frames_for(1000, seed=2)
    lens = np.array([len(f) for f in frames], np.int64)
    off = np.concatenate([[0], np.cumsum(lens)[:-1]])
    buf = np.frombuffer(b"".join(frames), np.uint8)
    ts = T0 + np.arange(1000, dtype=np.int64) * 999_999_937
    for nsec in (False, True):
        orders: tuple[Literal["little", "big"], ...] = ("little", "big")
        for order in orders:
            a, b = tmp_path / f"a{nsec}{order}.pcap", tmp_path / f"b{nsec}{order}.pcap"
            with PcapWriter(a, nanosecond=nsec, snaplen=100, byteorder=order) as w:
                for i, f in enumerate(frames):
                    w.write(f, int(ts[i]), wirelen=len(f) + 1)
            with PcapWriter(b, nanosecond=nsec, snaplen=100, byteorder=order) as w:
                w.write_batch(buf, off, lens, lens + 1, ts)
            assert a.read_bytes() == b.read_bytes()
            got = read_all(b)
            assert (got.caplen == np.minimum(lens, 100)).all()
            assert (got.wirelen == lens + 1).all()


def test_write_batch_rejects_frames_outside_buf(tmp_path: Path) -> None:
    with PcapWriter(tmp_path / "x.pcap") as w, pytest.raises(ValueError):
        w.write_batch(np.zeros(10, np.uint8), [5], [6], None, [0])


def test_linktype_field_low_bits_and_dlt_raw(tmp_path: Path) -> None:
    for field, want in ((12, lt.LINKTYPE_RAW), (14, lt.LINKTYPE_RAW),
                        ((0x4 << 28) | 1, lt.LINKTYPE_ETHERNET), (276, lt.LINKTYPE_LINUX_SLL2)):
        path = tmp_path / f"l{field}.pcap"
        path.write_bytes(pcap_header(linktype=field) + record(b"\x45" + b"\0" * 19))
        assert read_all(path).linktype.tolist() == [want]
    assert lt.linktype_name(1) == "ETHERNET"
    assert lt.linktype_name(147) == "LINKTYPE_147"
    assert (lt.LINKTYPE_NULL, lt.LINKTYPE_LOOP, lt.LINKTYPE_LINUX_SLL, lt.LINKTYPE_IPV4,
            lt.LINKTYPE_IPV6) == (0, 108, 113, 228, 229)


def test_caplen_above_snaplen_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "s.pcap"
    path.write_bytes(pcap_header(snaplen=64) + record(b"x" * 100) + record(b"y" * 10))
    b = read_all(path)
    assert b.caplen.tolist() == [100, 10]


# --- empty and bad input ------------------------------------------------------------------


def test_empty_file_is_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "e.pcap"
    path.write_bytes(b"")
    with open_capture(path) as cap:
        assert list(cap) == []
        assert cap.stats.frames == 0 and cap.stats.error is None
    assert len(read_all(path)) == 0
    gz = tmp_path / "e.pcap.gz"
    gz.write_bytes(gzip.compress(b""))
    assert len(read_all(gz)) == 0


@pytest.mark.parametrize("big", [False, True])
def test_header_only_file_is_zero_frames(tmp_path: Path, big: bool) -> None:
    path = tmp_path / "h.pcap"
    path.write_bytes(pcap_header(big=big))
    assert len(read_all(path)) == 0


@pytest.mark.parametrize("size", [1, 3, 4, 23])
def test_file_shorter_than_header_is_an_error(tmp_path: Path, size: int) -> None:
    path = tmp_path / "short.pcap"
    path.write_bytes(pcap_header()[:size])
    with pytest.raises(InputError) as exc:
        open_capture(path)
    assert exc.value.offset == 0
    assert str(path) in str(exc.value)


def test_unknown_magic(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"GIF89a" + b"\0" * 100)
    with pytest.raises(InputError, match=r"offset 0: unknown capture format: magic 0x47494638"):
        open_capture(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        open_capture(tmp_path / "nope.pcap")


def good_then(tmp_path: Path, tail: bytes, big: bool = False) -> tuple[Path, list[bytes], int]:
    good = [b"g" * 60, b"h" * 61, b"i" * 62]
    data = pcap_header(big=big) + b"".join(record(f, big=big) for f in good)
    path = tmp_path / "bad.pcap"
    path.write_bytes(data + tail)
    return path, good, len(data)


@pytest.mark.parametrize("chunk", [64, 8 << 20])
def test_truncated_record_yields_good_frames_then_raises(tmp_path: Path, chunk: int) -> None:
    path, good, bad_at = good_then(tmp_path, record(b"z" * 1514)[:16 + 200])
    got, err = drain(path, chunk_bytes=chunk)
    assert [g[0] for g in got] == good
    assert err is not None and err.offset == bad_at
    assert f"offset {bad_at}: truncated record: header says 1514 bytes, 200 left" in str(err)
    assert "\n" not in str(err)


def test_error_comes_after_the_batch_of_good_frames(tmp_path: Path) -> None:
    path, good, _ = good_then(tmp_path, b"\x01\x02\x03")
    with open_capture(path) as cap:
        first = next(cap)
        assert [first.frame(i) for i in range(len(first))] == good
        with pytest.raises(InputError, match="truncated record header: 16 bytes needed, 3 left"):
            next(cap)
        assert cap.stats.frames == 3
        assert cap.stats.error is not None


@pytest.mark.parametrize("big", [False, True])
def test_lying_length_is_an_error_without_allocating_it(tmp_path: Path, big: bool) -> None:
    path, good, bad_at = good_then(tmp_path, record(b"z" * 50, caplen=0xFFFFFFF0, big=big),
                                   big=big)
    got, err = drain(path)
    assert [g[0] for g in got] == good
    assert err is not None and err.offset == bad_at
    assert "lying record length: header says 4294967280 bytes" in str(err)


def test_length_under_the_cap_but_past_the_end_reads_only_what_is_there(tmp_path: Path) -> None:
    path, good, bad_at = good_then(tmp_path, record(b"z" * 50, caplen=200 << 20))
    tracemalloc.start()
    try:
        got, err = drain(path, chunk_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [g[0] for g in got] == good
    assert err is not None and err.offset == bad_at
    assert "truncated record: header says 209715200 bytes, 50 left" in str(err)
    assert peak < 16 << 20


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    frames = frames_for(2000, seed=4)
    plain = tmp_path / "t.pcap"
    with PcapWriter(plain) as w:
        for f in frames:
            w.write(f, T0)
    whole = gzip.compress(plain.read_bytes())
    gz = tmp_path / "t.pcap.gz"
    gz.write_bytes(whole[: len(whole) // 2])
    got, err = drain(gz, chunk_bytes=4096)
    assert err is not None
    assert "compressed stream is truncated" in str(err)
    assert 0 < len(got) < len(frames)
    assert [g[0] for g in got] == frames[: len(got)]


def test_corrupt_gzip_stream(tmp_path: Path) -> None:
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(b"\x1f\x8b" + b"\xff" * 100)
    with pytest.raises(InputError, match="gzip"):
        list(open_capture(gz))


def test_gzip_trailer_crc_mismatch(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(pcap_header() + record(b"abc") * 10))
    data[-8] ^= 0xFF  # CRC32 of the member
    gz = tmp_path / "crc.pcap.gz"
    gz.write_bytes(bytes(data))
    got, err = drain(gz)
    assert len(got) == 10
    assert err is not None and "gzip" in str(err)


def test_bad_arguments(tmp_path: Path) -> None:
    path = tmp_path / "a.pcap"
    path.write_bytes(pcap_header())
    from fabricscope.errors import UsageError

    with pytest.raises(UsageError):
        open_capture(path, batch_frames=0)
    with pytest.raises(UsageError):
        open_capture(path, chunk_bytes=1)


def test_close_stops_iteration(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    with PcapWriter(path) as w:
        for f in frames_for(100):
            w.write(f, T0)
    cap = open_capture(path, batch_frames=10)
    next(cap)
    cap.close()
    assert list(cap) == []


@pytest.mark.parametrize("keep_every", [1, 2, 3, 0])
def test_batches_kept_by_the_consumer_are_never_overwritten(tmp_path: Path,
                                                            keep_every: int) -> None:
    """The reader reuses buffers and columns only when no batch refers to them."""
    frames = frames_for(3000, seed=8)
    path = tmp_path / "k.pcap"
    with PcapWriter(path, nanosecond=True) as w:
        for i, f in enumerate(frames):
            w.write(f, T0 + i)
    kept: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    seen = 0
    with open_capture(path, chunk_bytes=4096, batch_frames=7) as cap:
        for k, b in enumerate(cap):
            # check every batch as it comes, keep some parts of some of them
            assert [b.frame(i) for i in range(len(b))] == frames[seen : seen + len(b)]
            assert b.ts_ns.tolist() == [T0 + i for i in range(seen, seen + len(b))]
            if keep_every and k % keep_every == 0:
                kept.append((seen, b.buf, b.offset, b.ts_ns))  # not the batch object itself
            seen += len(b)
    assert seen == len(frames)
    for start, buf, offset, ts in kept:
        assert ts.tolist() == [T0 + i for i in range(start, start + len(ts))]
        for i, o in enumerate(offset.tolist()):
            assert buf[o : o + len(frames[start + i])].tobytes() == frames[start + i]


def test_constant_columns_belong_to_their_batch(tmp_path: Path) -> None:
    """The per-file link type, interface and precision columns are writable arrays of
    each batch's own (the same argument types as a pcapng batch's, for the compiled
    walk): changing one batch's does not change the next one's."""
    path = tmp_path / "c.pcap"
    with PcapWriter(path) as w:
        for i in range(5):
            w.write(b"x" * 20, T0 + i)
    with open_capture(path, batch_frames=2) as cap:
        batches = []
        for b in cap:
            assert b.linktype.flags.writeable and b.ts_ns.flags.writeable
            assert b.linktype.dtype == np.int32 and b.ts_prec.dtype == np.int8
            assert b.linktype.tolist() == [1] * len(b)
            b.linktype[:] = 99
            batches.append(b)
    assert [len(b) for b in batches] == [2, 2, 1]


@pytest.mark.parametrize("compress", [False, True])
def test_reads_from_a_pipe(tmp_path: Path, compress: bool) -> None:
    import os
    import threading

    frames = frames_for(400, seed=12)
    src = tmp_path / "src.pcap"
    with PcapWriter(src) as w:
        for f in frames:
            w.write(f, T0)
    data = src.read_bytes()
    if compress:
        data = gzip.compress(data)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as f:
            for i in range(0, len(data), 1000):  # small writes: short reads on the pipe
                f.write(data[i : i + 1000])

    t = threading.Thread(target=feed)
    t.start()
    try:
        with open_capture(fifo, chunk_bytes=4096) as cap:
            assert cap.compressed == compress
            got = [b.frame(i) for b in cap for i in range(len(b))]
    finally:
        t.join(timeout=10)
    assert got == frames

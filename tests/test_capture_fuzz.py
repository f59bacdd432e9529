"""Random truncation and mutation of valid capture files: every outcome is either a clean
read or an InputError, quickly (never a hang, a crash, another exception or a huge
allocation)."""

from __future__ import annotations

import contextlib
import gzip
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabricscope.capture import PcapngWriter, PcapWriter, open_capture
from fabricscope.errors import InputError

T0 = 1_700_000_000_123_456_789


def _frames(n: int) -> list[bytes]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, int(rng.integers(1, 120)), dtype=np.uint8).tobytes()
            for _ in range(n)]


def _build(folder: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for order in ("little", "big"):
        for nsec in (False, True):
            p = folder / f"{order}{nsec}.pcap"
            with PcapWriter(p, nanosecond=nsec, byteorder=order) as w:  # type: ignore[arg-type]
                for i, f in enumerate(_frames(12)):
                    w.write(f, T0 + i)
            files[p.name] = p.read_bytes()
        p = folder / f"{order}.pcapng"
        with PcapngWriter(p, byteorder=order) as w:  # type: ignore[arg-type]
            w.add_interface(1, tsresol=9, snaplen=100)
            w.add_interface(101, tsresol=0x80 | 20, tsoffset=5)
            for i, f in enumerate(_frames(8)):
                w.write(f, T0 + i, iface=i % 2, options=w.option(1, b"c") + w.option(0, b""))
            w.write_simple(b"spb-frame" * 3)
            w.write_block(4, b"\0\0\0\0")
            w.new_section()
            w.add_interface(113)
            w.write(b"second section", T0)
        files[p.name] = p.read_bytes()
    files["gz.pcap.gz"] = gzip.compress(files["littleFalse.pcap"])
    files["gz.pcapng.gz"] = gzip.compress(files["big.pcapng"])
    return files


@pytest.fixture(scope="module")
def samples() -> Iterator[dict[str, bytes]]:
    with tempfile.TemporaryDirectory() as d:
        files = _build(Path(d))
        for name, data in files.items():  # compile (or load) the walkers before any timing
            (Path(d) / name).write_bytes(data)
            assert _read(Path(d) / name, 64, 3)[1] is None
        yield files


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d) / "fuzz.bin"


def _read(path: Path, chunk: int, batch: int) -> tuple[int, InputError | None]:
    frames = 0
    try:
        with open_capture(path, chunk_bytes=chunk, batch_frames=batch) as cap:
            for b in cap:
                frames += len(b)
                assert (b.offset >= 0).all() and (b.offset + b.caplen <= len(b.buf)).all()
    except InputError as exc:
        assert "\n" not in str(exc)
        return frames, exc
    return frames, None


mutation = st.tuples(st.integers(min_value=0, max_value=1 << 20), st.integers(0, 255))


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["littleFalse.pcap", "littleTrue.pcap", "bigFalse.pcap",
                             "bigTrue.pcap", "little.pcapng", "big.pcapng", "gz.pcap.gz",
                             "gz.pcapng.gz"]),
       cut=st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 20)),
       mutations=st.lists(mutation, max_size=6),
       chunk=st.sampled_from([64, 97, 4096, 8 << 20]),
       batch=st.sampled_from([1, 5, 8192]))
def test_mutated_files_read_or_raise_input_error(
        samples: dict[str, bytes], scratch: Path, name: str, cut: int | None,
        mutations: list[tuple[int, int]], chunk: int, batch: int) -> None:
    data = bytearray(samples[name])
    for pos, value in mutations:
        if data:
            data[pos % len(data)] = value
    if cut is not None and data:
        del data[cut % len(data):]
    scratch.write_bytes(bytes(data))
    start = time.perf_counter()
    with contextlib.suppress(InputError):  # raised by open_capture (bad magic, short header)
        _read(scratch, chunk, batch)
    assert time.perf_counter() - start < 5.0  # a few ms normally; generous for loaded CI


@pytest.mark.parametrize("name", ["littleFalse.pcap", "bigTrue.pcap", "little.pcapng",
                                  "big.pcapng", "gz.pcapng.gz"])
def test_every_truncation(samples: dict[str, bytes], scratch: Path, name: str) -> None:
    """Cut at every byte: the frames before the cut, then an error (or a clean end exactly
    at a record boundary)."""
    data = samples[name]
    full, err = _read_bytes(scratch, data)
    assert err is None
    seen = []
    for cut in range(len(data)):
        try:
            frames, err = _read_bytes(scratch, data[:cut])
        except InputError:
            continue
        assert frames <= full
        seen.append(frames)
    assert seen == sorted(seen)  # more bytes never give fewer frames


def _read_bytes(path: Path, data: bytes) -> tuple[int, InputError | None]:
    path.write_bytes(data)
    return _read(path, 64, 3)

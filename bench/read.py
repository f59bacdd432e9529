"""Benchmark: read a 1,000,000-frame pcap end to end (plain and gzip).

Writes the files to a temporary folder with PcapWriter.write_batch (128-byte frames, so
1M frames = 144 MB with record headers), then reads each in a fresh subprocess so that
peak RSS (resource.getrusage ru_maxrss) is that of the read alone (plus the interpreter,
NumPy and numba, printed as the baseline). Prints frames/s and MB/s of the first pass and
of the best of ``--repeat`` passes (wall clock, and per CPU second, which is what to
compare on a busy machine), peak RSS, and the RSS seen while reading. Not a test.

    .venv/bin/python bench/read.py [--frames N] [--repeat R] [--chunk-bytes B] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNAPLEN = 128


def write_files(folder: Path, frames: int) -> tuple[Path, Path]:
    import numpy as np

    from fabricscope.capture import PcapWriter

    rng = np.random.default_rng(0)
    # a pool of distinct frames, reused: 64 bytes of varied headers and a payload that
    # compresses like real traffic (about 3:1 with gzip -1)
    pool = np.zeros((4096, SNAPLEN), np.uint8)
    pool[:, :64] = rng.integers(0, 256, (4096, 64), dtype=np.uint8)
    pool[:, 12:14] = (0x08, 0x00)
    pool[:, 64:] = rng.integers(0, 4, (4096, SNAPLEN - 64), dtype=np.uint8) * 0x41
    buf = pool.reshape(-1)
    plain, gz = folder / "bench.pcap", folder / "bench.pcap.gz"
    step = 1 << 18
    for path in (plain, gz):
        with PcapWriter(path, nanosecond=True, snaplen=SNAPLEN, compresslevel=1) as w:
            for start in range(0, frames, step):
                n = min(step, frames - start)
                idx = rng.integers(0, len(pool), n)
                off = idx.astype(np.int64) * SNAPLEN
                cap = np.full(n, SNAPLEN, np.int64)
                ts = 1_700_000_000_000_000_000 + (start + np.arange(n, dtype=np.int64)) * 1000
                w.write_batch(buf, off, cap, cap + 1386, ts)
    return plain, gz


def _rss_mib() -> float:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return 0.0


def _read(path: str, chunk_bytes: int, sample_rss: bool = False) -> tuple[int, int, float]:
    from fabricscope.capture import open_capture

    frames = 0
    check = 0
    top = 0.0
    with open_capture(path, chunk_bytes=chunk_bytes) as cap:
        for batch in cap:
            frames += len(batch)
            check += int(batch.caplen[-1])  # touch the columns like a consumer would
            if sample_rss:
                top = max(top, _rss_mib())
        assert cap.stats.frames == frames
        return frames, cap.stats.file_bytes, top


def read_once(path: str, chunk_bytes: int, repeat: int) -> dict[str, float]:
    """Read a file end to end (called in a fresh subprocess): the first pass, the best of
    ``repeat`` passes, peak RSS (getrusage) and the largest RSS seen during a read."""
    from fabricscope.capture import open_capture

    # load numba's cached walkers outside the timing (a first batch of a tiny read)
    with open_capture(path, batch_frames=16, chunk_bytes=1 << 16) as cap:
        next(cap, None)
    before = _rss_mib()
    times = []
    cpu = []
    frames = file_bytes = 0
    for _ in range(max(1, repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        frames, file_bytes, _top = _read(path, chunk_bytes)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    _, _, during = _read(path, chunk_bytes, sample_rss=True)
    return {"frames": frames, "first_s": times[0], "best_s": min(times),
            "first_cpu_s": cpu[0], "best_cpu_s": min(cpu),
            "file_bytes": file_bytes, "rss_before_mib": before, "rss_during_mib": during,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def baseline_rss() -> float:
    """Peak RSS of a process that only imports the reader (interpreter + NumPy + numba)."""
    code = ("import resource, fabricscope.capture;"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--chunk-bytes", type=int, default=8 << 20)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per file")
    ap.add_argument("--keep", type=Path, help="write the files here and keep them")
    ap.add_argument("--read-once", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.read_once:
        print(json.dumps(read_once(args.read_once, args.chunk_bytes, args.repeat)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        plain, gz = write_files(folder, args.frames)
        wrote = time.perf_counter() - t0
        print(f"wrote {args.frames:,} frames of {SNAPLEN} bytes twice (pcap "
              f"{plain.stat().st_size / 1e6:.0f} MB, gzip {gz.stat().st_size / 1e6:.0f} MB) "
              f"in {wrote:.1f} s")
        print(f"baseline peak RSS (python + numpy + numba + fabricscope.capture): "
              f"{baseline_rss():.0f} MiB")
        for label, path in (("pcap", plain), ("pcap.gz", gz)):
            out = subprocess.run(
                [sys.executable, __file__, "--read-once", str(path), "--repeat",
                 str(args.repeat), "--chunk-bytes", str(args.chunk_bytes)],
                check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            assert r["frames"] == args.frames, r
            for what in ("first", "best"):
                sec, cpu = r[f"{what}_s"], r[f"{what}_cpu_s"]
                print(f"{label:8} {what:5} pass: {r['frames']:,} frames in {sec:.3f} s = "
                      f"{r['frames'] / sec / 1e6:5.1f} M frames/s, "
                      f"{r['file_bytes'] / sec / 1e6:5.0f} MB/s "
                      f"(CPU {cpu:.3f} s = {r['frames'] / max(cpu, 1e-9) / 1e6:5.1f} M frames "
                      "per CPU second)")
            print(f"{label:8} peak RSS (getrusage) {r['peak_rss_mib']:.0f} MiB; RSS "
                  f"{r['rss_before_mib']:.0f} MiB before reading, at most "
                  f"{r['rss_during_mib']:.0f} MiB while reading")


if __name__ == "__main__":
    main()

"""Benchmark: generate the 1,000-host and 10,000-host simulated fabrics (``fabricscope sim
--preset 1k|10k``) and print samples generated per second (wall clock and per CPU
second, which is what to compare on a busy machine), datagrams, bytes written, and peak
RSS sampled over the run (the generator streams to disk: memory stays bounded whatever
the duration). Each preset runs in a fresh subprocess so that its peak RSS is its own.
Not a test.

    .venv/bin/python bench/sim_scale.py [--preset 1k --preset 10k] [--duration 15m]
        [--keep DIR] [--truth-samples] [--discard-pcap]
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


def child(preset: str, duration: str, out: str, truth_samples: bool, discard: bool) -> None:
    """Run one preset in this process; print a JSON line of figures."""
    from fabricscope.sim import SimParams, simulate
    from fabricscope.timeutil import parse_duration

    if discard:
        # the datagrams are generated and written, to /dev/null: no disk needed
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "sflow.pcap").unlink(missing_ok=True)
        (Path(out) / "sflow.pcap").symlink_to("/dev/null")

    p = SimParams.preset(preset, duration=parse_duration(duration).total_seconds(),
                         truth_samples=truth_samples)
    rss_seen: list[int] = []
    marks: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    c0 = time.process_time()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def progress(done: int, total: int, samples: int) -> None:
        rss_seen.append(_rss_now())
        marks.append((time.perf_counter() - t0, samples))

    res = simulate(out, p, progress=progress)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    half = len(rss_seen) // 2
    print(json.dumps({
        "preset": preset, "duration_s": p.duration, "hosts": res.hosts,
        "endpoints": res.endpoints, "flows": res.flows, "samples": res.samples,
        "counter_samples": res.counter_samples, "datagrams": res.datagrams,
        "sflow_bytes": res.sflow_bytes, "bytes": res.bytes_written, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "samples_per_s": round(res.samples / wall), "samples_per_cpu_s": round(
            res.samples / cpu), "sim_samples_per_s": round(res.samples / p.duration),
        "peak_rss_mb": round(peak / 1024), "baseline_rss_mb": round(base / 1024),
        "rss_first_half_max_mb": round(max(rss_seen[:half] or [0]) / 1024),
        "rss_second_half_max_mb": round(max(rss_seen[half:] or [0]) / 1024),
    }))


def _rss_now() -> int:
    """Current RSS in KiB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * 4
    except OSError:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", action="append", choices=["small", "demo", "1k", "10k"])
    ap.add_argument("--duration", default="15m", help="simulated time per run (15m, 1h)")
    ap.add_argument("--keep", type=Path, help="write the runs here (default: a temp dir)")
    ap.add_argument("--truth-samples", action="store_true")
    ap.add_argument("--discard-pcap", action="store_true",
                    help="write sflow.pcap to /dev/null (an hour of 10k hosts is ~30 GB)")
    ap.add_argument("--child", nargs=2, metavar=("PRESET", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.duration, a.child[1], a.truth_samples, a.discard_pcap)
        return
    presets = a.preset or ["1k", "10k"]
    with tempfile.TemporaryDirectory() as tmp:
        root = a.keep or Path(tmp)
        for preset in presets:
            out = root / f"sim-{preset}"
            cmd = [sys.executable, __file__, "--child", preset, str(out), "--duration",
                   a.duration] + (["--truth-samples"] if a.truth_samples else []) + (
                       ["--discard-pcap"] if a.discard_pcap else [])
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                print(f"{preset}: failed\n{r.stderr}", file=sys.stderr)
                sys.exit(1)
            d = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{preset:>4}: {d['hosts']:,} hosts, {d['flows']:,} flows over "
                  f"{d['duration_s']:g} s -> {d['samples']:,} samples "
                  f"({d['sim_samples_per_s']:,}/s of simulated time), "
                  f"{d['datagrams']:,} datagrams ({d['sflow_bytes'] / 1e6:,.0f} MB), "
                  f"{d['bytes'] / 1e6:,.0f} MB on disk, in "
                  f"{d['wall_s']:.1f} s wall / {d['cpu_s']:.1f} s CPU: "
                  f"{d['samples_per_s']:,} samples/s ({d['samples_per_cpu_s']:,} per CPU s); "
                  f"peak RSS {d['peak_rss_mb']} MB (first half {d['rss_first_half_max_mb']}"
                  f", second half {d['rss_second_half_max_mb']} MB)")
            print("      " + json.dumps(d))


if __name__ == "__main__":
    main()

"""Benchmark: decode a mixed tunnel capture end to end (file -> Arrow batches).

Generates the capture with NumPy (a few scapy-built templates, then per-frame patches of
addresses, ports and VNIs: no Python object per frame), snaplen 128, nanosecond pcap:

    VXLAN over IPv4 (4789 and 8472) and over IPv6 (IPv4 and IPv6 inner), GENEVE with
    options (OVN's and another), NVGRE, plain IPv4/IPv6 TCP and UDP, some 802.1Q.

Then, each in a fresh subprocess so peak RSS is that of the run alone:

1. in-process: ``fabricscope.pipeline.FileDecoder`` over the 1,000,000-frame file
   (read + decode + Arrow batch), ``--repeat`` passes (3), the best one's frames/s (the
   VM is shared), and peak RSS (ru_maxrss of that process);
2. whole process: ``fabricscope decode FILE -f arrow -o OUT`` and ``-f parquet`` on a
   5,000,000-frame file: wall time, frames/s, peak RSS of the child (GNU time's %M, else os.wait4's
   ru_maxrss, what ``resource.getrusage(RUSAGE_CHILDREN)`` gives for one child; the parent
   stays small because Linux starts a child's ru_maxrss at its parent's RSS);
3. tshark (when installed) on a 100,000-frame slice of the same traffic, printing the
   same fields, for the ratio.

    .venv/bin/python bench/decode.py [--frames 1000000] [--process-frames 5000000]
                                      [--process-formats arrow,parquet] [--repeat 3]
                                      [--tshark-frames 100000] [--keep DIR] [--json]

Not a test. Targets: >= 5,000,000 frames/s in-process on one core; whole process >= 50x
tshark; peak RSS < 300 MB whatever the file size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SNAPLEN = 128
T0_NS = 1_700_000_000_000_000_000
CHUNK = 1 << 18  # frames generated per NumPy step


@dataclass
class Template:
    name: str
    weight: float
    data: bytes  # the whole frame (wirelen = len(data)); the file keeps the first SNAPLEN
    # byte offsets of the patched fields (-1: the template has no such field)
    outer_src: int = -1  # last 4 bytes of the outer source address (IPv4 or IPv6)
    outer_dst: int = -1
    outer_sport: int = -1
    vni: int = -1  # 3 bytes: VXLAN/GENEVE VNI, NVGRE VSID
    inner_src: int = -1
    inner_dst: int = -1
    inner_sport: int = -1
    inner_dport: int = -1


def _templates() -> list[Template]:
    """Frames built once with scapy; the generator only patches bytes in copies of them."""
    from scapy.contrib.geneve import GENEVE
    from scapy.layers.inet import GRE, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.layers.vxlan import VXLAN

    mac = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
    imac = {"src": "0a:00:00:00:00:01", "dst": "0a:00:00:00:00:02"}
    pay = b"\x00" * 1200

    def off(p, cls, nb=1):  # type: ignore[no-untyped-def]
        return len(p) - len(p.getlayer(cls, nb=nb))

    def tcp4() -> object:
        return IP(src="10.1.0.1", dst="10.2.0.1") / TCP(sport=40000, dport=443, flags="PA") / pay

    def tcp6() -> object:
        return (IPv6(src="fd00::1:0:0:1", dst="fd00::2:0:0:1")
                / TCP(sport=40000, dport=443, flags="PA") / pay)

    out: list[Template] = []

    def add(name: str, weight: float, p, outer, inner, vni_at: int = -1,  # type: ignore[no-untyped-def]
            inner_l4=None, outer_udp: bool = True) -> None:
        raw = bytes(p)
        t = Template(name, weight, raw)
        o_cls, o_nb = outer
        o = off(p, o_cls, o_nb)
        alen = 4 if o_cls is IP else 16
        a_src = 12 if o_cls is IP else 8
        a_dst = 16 if o_cls is IP else 24
        t.outer_src = o + a_src + alen - 4
        t.outer_dst = o + a_dst + alen - 4
        if outer_udp and p.haslayer(UDP):
            t.outer_sport = off(p, UDP)
        t.vni = vni_at
        if inner is not None:
            i_cls, i_nb = inner
            io = off(p, i_cls, i_nb)
            ialen = 4 if i_cls is IP else 16
            t.inner_src = io + (12 if i_cls is IP else 8) + ialen - 4
            t.inner_dst = io + (16 if i_cls is IP else 24) + ialen - 4
            if inner_l4 is not None:
                l4 = off(p, *inner_l4)
                t.inner_sport, t.inner_dport = l4, l4 + 2
        out.append(t)

    p = (Ether(**mac) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=50000, dport=4789)
         / VXLAN(vni=1000) / Ether(**imac) / tcp4())
    add("vxlan4-tcp4", 0.28, p, (IP, 1), (IP, 2), off(p, VXLAN) + 4, (TCP, 1))
    p = (Ether(**mac) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=50000, dport=8472)
         / VXLAN(vni=1) / Ether(**imac) / IP(src="10.244.1.2", dst="10.244.2.3")
         / UDP(sport=5353, dport=53) / (b"\x00" * 80))
    add("vxlan8472-udp4", 0.05, p, (IP, 1), (IP, 2), off(p, VXLAN) + 4, (UDP, 2))
    p = (Ether(**mac) / IPv6(src="2001:db8::1:0:0:1", dst="2001:db8::2:0:0:1")
         / UDP(sport=50000, dport=4789) / VXLAN(vni=2000) / Ether(**imac) / tcp4())
    add("vxlan6-tcp4", 0.10, p, (IPv6, 1), (IP, 1), off(p, VXLAN) + 4, (TCP, 1))
    p = (Ether(**mac) / IPv6(src="2001:db8::1:0:0:1", dst="2001:db8::2:0:0:1")
         / UDP(sport=50000, dport=4789) / VXLAN(vni=2001) / Ether(**imac) / tcp6())
    # 14+40+8+8+14+40 = 124: the inner TCP header is cut by the 128-byte snaplen
    add("vxlan6-tcp6", 0.05, p, (IPv6, 1), (IPv6, 2), off(p, VXLAN) + 4)
    opts = (b"\x01\x02\x80\x01" + (0x00050007).to_bytes(4, "big")  # OVN: in 5, out 7
            + b"\xff\xff\x01\x01" + b"\x00\x00\x00\x2a")  # an experimental option
    p = (Ether(**mac) / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=50000, dport=6081)
         / GENEVE(vni=3000, proto=0x6558, options=opts) / Ether(**imac) / tcp4())
    add("geneve-ovn-tcp4", 0.15, p, (IP, 1), (IP, 2), off(p, GENEVE) + 4, (TCP, 1))
    p = (Ether(**mac) / IP(src="192.0.2.1", dst="192.0.2.2")
         / GRE(key_present=1, key=(4000 << 8) | 3, proto=0x6558) / Ether(**imac)
         / IP(src="10.3.0.1", dst="10.4.0.1") / UDP(sport=1000, dport=2000) / (b"\x00" * 400))
    add("nvgre-udp4", 0.10, p, (IP, 1), (IP, 2), off(p, GRE) + 4, (UDP, 1), outer_udp=False)
    p = Ether(**mac) / tcp4()
    add("plain-tcp4", 0.10, p, (IP, 1), None, outer_udp=False)
    p = (Ether(**mac) / IPv6(src="2001:db8::3:0:0:1", dst="2001:db8::4:0:0:1")
         / UDP(sport=40000, dport=443) / (b"\x00" * 1200))
    add("plain-udp6", 0.07, p, (IPv6, 1), None)
    p = (Ether(**mac) / Dot1Q(vlan=100) / IP(src="192.0.2.1", dst="192.0.2.2")
         / UDP(sport=50000, dport=4789) / VXLAN(vni=5000) / Ether(**imac) / tcp4())
    add("vlan-vxlan4-tcp4", 0.05, p, (IP, 1), (IP, 2), off(p, VXLAN) + 4, (TCP, 1))
    p = Ether(**mac) / Dot1Q(vlan=200) / tcp4()
    add("vlan-tcp4", 0.05, p, (IP, 1), None, outer_udp=False)
    return out


class TrafficGenerator:
    """Frames of the mix, ``CHUNK`` at a time, as (buf, offset, caplen, wirelen, ts)."""

    def __init__(self, seed: int = 0) -> None:
        import numpy as np

        self.templates = _templates()
        k = len(self.templates)
        self.full_len = np.array([len(t.data) for t in self.templates], np.int64)
        self.cap_len = np.minimum(self.full_len, SNAPLEN)
        self.table = np.zeros((k, SNAPLEN), np.uint8)
        for j, t in enumerate(self.templates):
            d = np.frombuffer(t.data[:SNAPLEN], np.uint8)
            self.table[j, : len(d)] = d
        w = np.array([t.weight for t in self.templates], float)
        self.weights = w / w.sum()
        self.fields = {
            name: np.array([getattr(t, name) for t in self.templates], np.int64)
            for name in ("outer_src", "outer_dst", "outer_sport", "vni", "inner_src",
                         "inner_dst", "inner_sport", "inner_dport")
        }
        self.rng = np.random.default_rng(seed)
        self.done = 0

    @staticmethod
    def _patch(rows: Any, which: Any, offs: Any, values: Any, width: int) -> None:
        """Write ``values`` big-endian, ``width`` bytes, at per-template offsets."""
        import numpy as np

        at = offs[which]
        sel = np.nonzero((at >= 0) & (at + width <= SNAPLEN))[0]
        for b in range(width):
            shift = 8 * (width - 1 - b)
            rows[sel, at[sel] + b] = (values[sel] >> shift) & 0xFF

    def chunk(self, n: int) -> tuple[Any, Any, Any, Any, Any, Any]:
        import numpy as np

        rng = self.rng
        which = rng.choice(len(self.templates), size=n, p=self.weights)
        rows = self.table[which]  # (n, SNAPLEN) copy
        hosts = rng.integers(0, 64, n)  # VTEPs: 64 hosts
        self._patch(rows, which, self.fields["outer_src"], 0xC0000200 + hosts, 4)
        self._patch(rows, which, self.fields["outer_dst"],
                    0xC0000200 + rng.integers(0, 64, n), 4)
        self._patch(rows, which, self.fields["outer_sport"], rng.integers(49152, 65536, n), 2)
        self._patch(rows, which, self.fields["vni"], rng.integers(1, 1 << 24, n) & 0xFFFF, 3)
        self._patch(rows, which, self.fields["inner_src"],
                    0x0A000000 + rng.integers(0, 1 << 16, n), 4)
        self._patch(rows, which, self.fields["inner_dst"],
                    0x0A000000 + rng.integers(0, 1 << 16, n), 4)
        self._patch(rows, which, self.fields["inner_sport"], rng.integers(1024, 65536, n), 2)
        self._patch(rows, which, self.fields["inner_dport"],
                    rng.choice(np.array([22, 53, 80, 443, 5432, 6379]), n), 2)
        cap = self.cap_len[which]
        keep = np.arange(SNAPLEN)[None, :] < cap[:, None]
        buf = rows[keep]  # row-major: the frames back to back
        offset = np.zeros(n, np.int64)
        np.cumsum(cap[:-1], out=offset[1:])
        ts = T0_NS + (self.done + np.arange(n, dtype=np.int64)) * 1000
        self.done += n
        return buf, offset, cap, self.full_len[which], ts, which

    def write(self, path: Path, frames: int) -> dict[str, int]:
        """A pcap of ``frames`` frames; returns how many of each template it holds."""
        import numpy as np

        from fabricscope.capture import PcapWriter

        counts = np.zeros(len(self.templates), np.int64)
        with PcapWriter(path, nanosecond=True, snaplen=SNAPLEN) as w:
            left = frames
            while left > 0:
                n = min(CHUNK, left)
                buf, off, cap, wire, ts, which = self.chunk(n)
                w.write_batch(buf, off, cap, wire, ts)
                counts += np.bincount(which, minlength=len(self.templates))
                left -= n
        return {t.name: int(c) for t, c in zip(self.templates, counts, strict=True)}


# --- measurements (each in its own process) ---------------------------------------------

def vm_hwm_mib() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: a child inherits its parent's RSS
    at fork into ru_maxrss (Linux keeps it across exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_process(path: str, batch_frames: int, repeat: int = 1) -> dict[str, Any]:
    """Decode ``path`` with FileDecoder (read + decode + Arrow) ``repeat`` times, each with
    a fresh decoder; run in a fresh process. The pass with the least CPU time is
    reported (the VM is shared), with every pass's CPU seconds."""
    from fabricscope.pipeline import FileDecoder

    # load the cached numba code (and warm the Arrow builder) outside the timing
    warm = FileDecoder(path, batch_frames=64)
    next(iter(warm), None)
    warm_rss = vm_hwm_mib()
    best: dict[str, Any] = {}
    passes: list[float] = []
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        c0 = time.process_time()
        fd = FileDecoder(path, batch_frames=batch_frames)
        rows = 0
        tunnelled = 0
        for step in fd:
            rows += step.records.num_rows
            tunnelled += step.records.num_rows - step.records.column("encap").null_count
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
        passes.append(round(cpu, 3))
        if not best or cpu < best["cpu_seconds"]:
            best = {"frames": fd.summary.frames, "records": rows, "tunnelled": tunnelled,
                    "seconds": seconds, "frames_per_s": fd.summary.frames / seconds,
                    "cpu_seconds": cpu, "frames_per_cpu_s": fd.summary.frames / cpu,
                    "events": fd.summary.events}
    return {**best, "passes_cpu_seconds": passes, "peak_rss_mib": vm_hwm_mib(),
            "rss_before_mib": warm_rss}


def run_child(argv: list[str]) -> tuple[float, float, float]:
    """Run a command; (wall seconds, CPU seconds, peak RSS MiB of the child). The peak is
    taken by GNU time when installed (its child starts from time's few MiB), else from
    os.wait4 (ru_maxrss starts from this process's RSS at fork: kept small here)."""
    gnu_time = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
    cmd = ([gnu_time, "-f", "@@ %M %U %S"] if gnu_time else []) + argv
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()  # (small: a summary line)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.strip()}")
    marks = [ln for ln in err.splitlines() if ln.startswith("@@ ")]
    if marks:
        kib, user, system = marks[-1].split()[1:4]
        return wall, float(user) + float(system), int(kib) / 1024
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def generate(path: Path, frames: int, seed: int) -> dict[str, int]:
    """Write the capture in a child process (so this one stays small, see run_child)."""
    out = subprocess.run([sys.executable, __file__, "--_generate", str(path), str(frames),
                          str(seed)], check=True, capture_output=True, text=True).stdout
    counts: dict[str, int] = json.loads(out.strip().splitlines()[-1])
    return counts


TSHARK_FIELDS = ("frame.number", "eth.src", "eth.dst", "vlan.id", "ip.src", "ip.dst",
                 "ipv6.src", "ipv6.dst", "udp.srcport", "udp.dstport", "tcp.srcport",
                 "tcp.dstport", "vxlan.vni", "geneve.vni", "gre.key")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="in-process file size")
    ap.add_argument("--process-frames", type=int, default=5_000_000,
                    help="frames for the whole-process run (0: skip)")
    ap.add_argument("--process-formats", default="arrow,parquet",
                    help="output formats of the whole-process runs, comma-separated")
    ap.add_argument("--tshark-frames", type=int, default=100_000,
                    help="frames for the tshark comparison (0: skip)")
    ap.add_argument("--batch-frames", type=int, default=16384)
    ap.add_argument("--repeat", type=int, default=3,
                    help="in-process passes (each with a fresh decoder); the best is reported")
    ap.add_argument("--keep", type=Path, help="write the files here and keep them")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--_in-process", dest="child", help=argparse.SUPPRESS)
    ap.add_argument("--_generate", dest="gen", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:  # the measured child of step 1
        print(json.dumps(in_process(args.child, args.batch_frames, args.repeat)))
        return
    if args.gen:  # a generating child
        path, n, seed = args.gen
        print(json.dumps(TrafficGenerator(seed=int(seed)).write(Path(path), int(n))))
        return

    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          "(wall-time rates suffer on a busy machine; CPU-time rates less so)")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="fabricscope-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {}
    try:
        small = folder / "mixed-1m.pcap"
        t0 = time.perf_counter()
        mix = generate(small, args.frames, 1)
        gen_s = time.perf_counter() - t0
        print(f"generated {args.frames:,} frames ({small.stat().st_size / 1e6:.0f} MB) in "
              f"{gen_s:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in mix.items()))

        out = subprocess.run([sys.executable, __file__, "--_in-process", str(small),
                              "--batch-frames", str(args.batch_frames),
                              "--repeat", str(args.repeat)],
                             check=True, capture_output=True, text=True).stdout
        r1 = json.loads(out.strip().splitlines()[-1])
        results["in_process"] = r1
        print(f"in-process  FileDecoder (best of {len(r1['passes_cpu_seconds'])} passes, CPU s "
              f"{', '.join(str(x) for x in r1['passes_cpu_seconds'])}): "
              f"{r1['frames']:,} frames in {r1['seconds']:.3f} s wall"
              f" = {r1['frames_per_s'] / 1e6:.2f} M frames/s; {r1['cpu_seconds']:.3f} s CPU = "
              f"{r1['frames_per_cpu_s'] / 1e6:.2f} M frames/s per core; peak RSS "
              f"{r1['peak_rss_mib']:.0f} MiB ({r1['rss_before_mib']:.0f} before the file: "
              f"interpreter, libraries, compiled code); events: {r1['events']}")

        procs: dict[str, dict[str, float]] = {}
        if args.process_frames:
            big = folder / "mixed-big.pcap"
            generate(big, args.process_frames, 2)
            exe = str(Path(sys.executable).with_name("fabricscope"))
            for fmt in args.process_formats.split(","):
                outp = folder / f"out.{fmt}"
                wall, cpu, rss = run_child([exe, "decode", str(big), "-f", fmt, "-o",
                                            str(outp), "-q"])
                rate = args.process_frames / wall
                procs[fmt] = {"frames": args.process_frames, "wall_s": wall, "cpu_s": cpu,
                              "frames_per_s": rate,
                              "frames_per_cpu_s": args.process_frames / cpu,
                              "peak_rss_mib": rss, "file_mb": big.stat().st_size / 1e6,
                              "output_mb": outp.stat().st_size / 1e6}
                print(f"whole process `fabricscope decode -f {fmt}`: "
                      f"{args.process_frames:,} frames ({big.stat().st_size / 1e6:.0f} MB) in "
                      f"{wall:.2f} s wall = {rate / 1e6:.2f} M frames/s ({cpu:.2f} s CPU), "
                      f"peak RSS {rss:.0f} MiB, output {outp.stat().st_size / 1e6:.0f} MB")
                outp.unlink()
            results["process"] = procs
            big.unlink()

        tshark = shutil.which("tshark")
        if args.tshark_frames and tshark:
            sl = folder / "mixed-slice.pcap"
            generate(sl, args.tshark_frames, 3)
            argv = [tshark, "-n", "-r", str(sl), "-d", "udp.port==8472,vxlan", "-T", "fields",
                    "-E", "occurrence=a"]
            for f in TSHARK_FIELDS:
                argv += ["-e", f]
            wall, cpu, rss = run_child(argv)
            t_rate = args.tshark_frames / wall
            results["tshark"] = {"frames": args.tshark_frames, "wall_s": wall, "cpu_s": cpu,
                                 "frames_per_s": t_rate, "peak_rss_mib": rss}
            line = (f"tshark -T fields: {args.tshark_frames:,} frames in {wall:.2f} s wall = "
                    f"{t_rate:,.0f} frames/s ({cpu:.2f} s CPU), peak RSS {rss:.0f} MiB")
            for fmt, proc in procs.items():
                ratio = proc["frames_per_s"] / t_rate
                cpu_ratio = proc["frames_per_cpu_s"] / (args.tshark_frames / cpu)
                results[f"ratio_vs_tshark_{fmt}"] = ratio
                results[f"cpu_ratio_vs_tshark_{fmt}"] = cpu_ratio
                line += (f"\n  fabricscope whole process, -f {fmt}: {ratio:.0f}x faster "
                         f"(wall), {cpu_ratio:.0f}x per CPU second")
            print(line)
        elif args.tshark_frames:
            print("tshark not installed: no comparison")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()

"""Benchmark: where the in-process decoding time goes, part by part, per frame.

For a capture (by default the decode benchmark's traffic mix, 1,000,000 frames generated
by ``bench/decode.py``'s generator into a temporary file), in one process, each part
timed over the whole file ``--passes`` times, best pass reported (the VM is shared):

1. ``read``: the capture reader alone (file -> frame batches), CPU time;
2. ``walk``: the frame walk alone, 128 frames at a time through the reused slot matrix
   with its rows reset before each chunk, as ``PacketDecoder.decode`` does, but no
   packing (a loop compiled here around the same compiled walk);
3. ``walk+pack``: ``decode.fused.walk_and_pack``, the walk and the packing into typed
   column buffers (what ``PacketDecoder.decode`` calls);
4. ``arrow``: the record batch from those buffers (``PacketColumns.finish``: the tunnel
   list's fields packed, the GENEVE options gathered, the ~110 arrays handed to Arrow
   in one import, ``records/cdata.py``);

then ``pack`` = 3 - 2. The batches are held in memory (so the parts after ``read`` do not
include it), ``--batch-frames`` each. A figure moves by up to a third between runs on the
development VM: compare two versions of the code in interleaved runs.

    .venv/bin/python bench/decode_parts.py [--pcap FILE] [--frames 1000000]
                                           [--batch-frames 16384] [--passes 5] [--json]

Not a test: a tool for finding what to make faster.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _walk_only() -> Any:
    """The fused loop of ``decode/fused.py`` without its packing step (compiled here, not
    cached: a few seconds, the walk itself comes from the cache)."""
    from numba import njit

    from fabricscope.decode.walk import walk_batch
    from fabricscope.records.packing import reset_chunk

    def walk_only(buf: Any, offset: Any, caplen: Any, wirelen: Any, ts_ns: Any,
                  linktype: Any, iface: Any, ts_prec: Any, file_offset: Any, m: Any,
                  chunk: int, tables: Any, params: Any, ev: Any, reset: Any) -> int:
        n = offset.shape[0]
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            reset_chunk(m, reset)
            walk_batch(buf, offset[a:b], caplen[a:b], wirelen[a:b], ts_ns[a:b],
                       linktype[a:b], iface[a:b], ts_prec[a:b], file_offset[a:b], m, tables,
                       params, ev)
        return int(n)

    # without reference counting, like the walk (decode/common.py); not cached: numba's
    # cache would not see a change to the walk it calls
    return njit(cache=False, _nrt=False)(walk_only)  # type: ignore[call-overload]


def measure(path: Path, batch_frames: int, passes: int) -> dict[str, Any]:
    from fabricscope.capture.reader import open_capture
    from fabricscope.decode import _RESET, CHUNK, PacketDecoder
    from fabricscope.decode.fused import walk_and_pack
    from fabricscope.records.arrow import PacketColumns

    def read() -> list[Any]:
        with open_capture(path, batch_frames=batch_frames) as cap:
            return list(cap)

    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    batches = read()
    frames = sum(len(b) for b in batches)
    dec = PacketDecoder()
    dec.decode(batches[0])  # loads the compiled walk and packers
    m = dec._chunk
    assert m is not None
    walk_only = _walk_only()
    fr = batches[0]
    walk_only(fr.buf, fr.offset, fr.caplen, fr.wirelen, fr.ts_ns, fr.linktype, fr.iface,
              fr.ts_prec, fr.file_offset, m, CHUNK, dec.tables, dec.params,
              dec.event_counts, _RESET)  # compiled here, outside the timing
    for _ in range(passes):
        c0 = time.process_time()
        read()
        keep("read", time.process_time() - c0)
        c0 = time.process_time()
        for fr in batches:
            walk_only(fr.buf, fr.offset, fr.caplen, fr.wirelen, fr.ts_ns, fr.linktype,
                      fr.iface, fr.ts_prec, fr.file_offset, m, CHUNK, dec.tables,
                      dec.params, dec.event_counts, _RESET)
        keep("walk", time.process_time() - c0)
        fused = arrow = 0.0
        for fr in batches:
            c0 = time.process_time()
            out = PacketColumns(len(fr))
            out.nlayers = walk_and_pack(
                fr.buf, fr.offset, fr.caplen, fr.wirelen, fr.ts_ns, fr.linktype, fr.iface,
                fr.ts_prec, fr.file_offset, m, CHUNK, dec.tables, dec.params,
                dec.event_counts, _RESET, *out.fused_args(sflow=False))
            c1 = time.process_time()
            out.finish(fr.buf)
            arrow += time.process_time() - c1
            fused += c1 - c0
        keep("walk+pack", fused)
        keep("arrow", arrow)
    ns = {k: v / frames * 1e9 for k, v in best.items()}
    ns["pack"] = max(ns["walk+pack"] - ns["walk"], 0.0)
    total = ns["read"] + ns["walk+pack"] + ns["arrow"]
    return {"frames": frames, "batch_frames": batch_frames, "passes": passes,
            "ns_per_frame": {k: round(v, 1) for k, v in ns.items()},
            "sum_ns_per_frame": round(total, 1),
            "frames_per_cpu_s_from_sum": round(1e9 / total) if total else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pcap", type=Path, help="a capture to use (default: generate one)")
    ap.add_argument("--frames", type=int, default=1_000_000,
                    help="frames to generate when no --pcap is given")
    ap.add_argument("--batch-frames", type=int, default=16384)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fabricscope-parts-") as tmp:
        path = args.pcap
        if path is None:
            path = Path(tmp) / "mixed.pcap"
            subprocess.run([sys.executable, str(HERE / "decode.py"), "--_generate",
                            str(path), str(args.frames), "1"], check=True,
                           capture_output=True)
        r = measure(path, args.batch_frames, args.passes)
    if args.json:
        print(json.dumps(r))
        return
    print(f"{r['frames']:,} frames, batches of {r['batch_frames']:,}, best of "
          f"{r['passes']} passes, CPU time per frame:")
    for k in ("read", "walk", "pack", "arrow"):
        print(f"  {k:6s} {r['ns_per_frame'][k]:7.1f} ns")
    print(f"  read + walk + pack + arrow = {r['sum_ns_per_frame']:.1f} ns = "
          f"{r['frames_per_cpu_s_from_sum'] / 1e6:.2f} M frames per CPU second")


if __name__ == "__main__":
    main()

"""Benchmark: where the sFlow decoder's time goes, part by part, per flow sample.

The collector's path (``SflowDecoder.decode_payloads``, 8,192 datagrams a call, with the
collector's memory settings) over the datagrams of ``bench/sflow_decode.py``
(``sflow.encode.synthetic_datagrams``: 7 expanded flow samples of VXLAN headers each, a
counter sample in every 10th datagram), generated in memory. Each part is timed by
wrapping it (thread CPU time), over ``--passes`` passes with a fresh decoder each; the
pass with the least total is printed, in ns per flow sample:

- ``walk``: ``sflow.fused.walk_and_pack_datagrams``, the datagram walk, the packet walk
  of the sampled headers and the packing into typed columns;
- ``columns``: ``records.arrow.PacketColumns`` of each batch (its buffers);
- ``accounting``: ``Accounting.update`` (sequence numbers, per agent and source);
- ``batch``: ``PacketColumns.finish`` (tunnel list, GENEVE options, the Arrow import);
- ``counters``: ``sflow.batch.counter_batch`` (the counters batch, port names);
- ``total``: the whole ``decode_payloads`` call; ``other`` = total minus the parts.

A figure moves by up to a third between runs on the development VM: compare two
versions of the code in interleaved runs (``PYTHONPATH=OTHER/src``).

    .venv/bin/python bench/sflow_parts.py [--datagrams 150000] [--passes 5] [--json]

Not a test: a tool for finding what to make faster.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

CALL = 8192  # datagrams per decode_payloads call (the collector's batch)


def _wrap(owner: Any, name: str, key: str, acc: dict[str, float],
          inside: list[str] | None = None) -> None:
    """Time ``owner.name`` into ``acc[key]``; ``inside`` is the stack of timed parts
    running: a part called by another timed part (the counters batch's own
    ``finish``) is left to its caller."""
    fn = getattr(owner, name)
    clock = time.thread_time
    stack = inside if inside is not None else []

    def timed(*args: Any, **kwargs: Any) -> Any:
        nested = key != "total" and any(k != "total" for k in stack)
        stack.append(key)
        t = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            stack.pop()
            if not nested:
                acc[key] = acc.get(key, 0.0) + clock() - t

    setattr(owner, name, timed)


def measure(datagrams: int, passes: int) -> dict[str, Any]:
    import numpy as np

    import fabricscope.sflow.collector  # noqa: F401  (imported before freezing, as collect does)
    from fabricscope.memory import freeze_gc, tune_malloc
    from fabricscope.records import arrow
    from fabricscope.sflow import accounting, decoder
    from fabricscope.sflow.collector import warm_up
    from fabricscope.sflow.encode import synthetic_datagrams

    buf, off, ln = synthetic_datagrams(datagrams)
    ts = 1 + np.arange(len(ln), dtype=np.int64)
    warm_up()
    tune_malloc()
    freeze_gc()
    acc: dict[str, float] = {}
    stack: list[str] = []
    _wrap(decoder, "walk_and_pack_datagrams", "walk", acc, stack)
    _wrap(decoder, "counter_batch", "counters", acc, stack)
    _wrap(arrow.PacketColumns, "finish", "batch", acc, stack)
    _wrap(accounting.Accounting, "update", "accounting", acc, stack)
    _wrap(decoder.SflowDecoder, "decode_payloads", "total", acc, stack)
    _wrap(decoder, "PacketColumns", "columns", acc, stack)  # the class, called per batch
    best: dict[str, float] = {}
    totals: list[float] = []
    samples = 0
    for _ in range(max(passes, 1)):
        acc.clear()
        dec = decoder.SflowDecoder()
        samples = 0
        for a in range(0, len(ln), CALL):
            rec, _cnt = dec.decode_payloads(buf, off[a:a + CALL], ln[a:a + CALL],
                                            ts[a:a + CALL])
            samples += rec.num_rows
        assert samples and not dec.events, dec.events
        totals.append(acc["total"])
        if not best or acc["total"] < best["total"]:
            best = dict(acc)
    parts = {k: v * 1e9 / samples for k, v in best.items()}
    named = sum(v for k, v in parts.items() if k != "total")
    parts["other"] = parts["total"] - named
    return {"datagrams": datagrams, "flow_samples": samples, "passes": len(totals),
            "ns_per_sample": {k: round(v, 1) for k, v in parts.items()},
            "samples_per_cpu_s": round(samples / best["total"]),
            "pass_totals_s": [round(t, 3) for t in totals]}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--datagrams", type=int, default=150_000)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    out = measure(args.datagrams, args.passes)
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['flow_samples']:,} flow samples in {out['datagrams']:,} datagrams, "
          f"best of {out['passes']} passes, thread CPU time per flow sample:")
    for k in ("walk", "columns", "accounting", "batch", "counters", "other", "total"):
        print(f"  {k:<11}{out['ns_per_sample'].get(k, 0.0):7.1f} ns")
    print(f"  = {out['samples_per_cpu_s'] / 1e6:.2f} M flow samples per CPU second")


if __name__ == "__main__":
    main()

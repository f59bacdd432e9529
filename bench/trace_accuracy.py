"""Trace accuracy and speed on a simulated fabric, against its ground truth.

    python bench/trace_accuracy.py [--preset demo|small|1k] [--duration 300] [--seed 1]

Simulates the fabric (with per-sample truth), decodes its sFlow into a fresh embedded
store, then scores every sampled flow's rebuilt path (hop precision and recall, VNF
sequences) and times single-flow traces of the featured flows. Prints the figures and
peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--duration", type=float, default=None, help="seconds of traffic")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--encap", default=None, help="vxlan, geneve, nvgre or mixed")
    ap.add_argument("--underlay", default=None, help="ipv4 or ipv6")
    a = ap.parse_args()

    from fabricscope import query
    from fabricscope.inventory.fileformat import read_file
    from fabricscope.pipeline import FileDecoder
    from fabricscope.query.accuracy import evaluate
    from fabricscope.sim import SimParams, load_truth, simulate
    from fabricscope.store import open_store

    d = a.dir or Path(tempfile.mkdtemp(prefix="fs-acc-"))
    over: dict[str, object] = {"seed": a.seed, "truth_samples": True}
    if a.duration is not None:
        over["duration"] = a.duration
    if a.encap is not None:
        over["encap"] = a.encap
    if a.underlay is not None:
        over["underlay"] = a.underlay
    t = time.perf_counter()
    res = simulate(d / "sim", SimParams.preset(a.preset, **over))
    t_sim = time.perf_counter() - t
    db = str(d / "store")
    t = time.perf_counter()
    fd = FileDecoder(d / "sim" / "sflow.pcap")
    with open_store(db, write=True) as st:
        for step in fd:
            st.append(step.records, step.counters)
    t_ing = time.perf_counter() - t
    truth = load_truth(d / "sim")
    inv = read_file(d / "sim" / "inventory.yaml")
    start = datetime.fromisoformat(truth.meta["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(truth.meta["end"].replace("Z", "+00:00")) + timedelta(seconds=1)
    t = time.perf_counter()
    with open_store(db) as st:
        r = evaluate(st, inv, truth, start, end)
    t_eval = time.perf_counter() - t
    lat = []
    for f in truth.featured:
        t = time.perf_counter()
        query.trace(f["src"], f["dst"], sport=f.get("sport"), dport=f["dport"],
                    proto=f.get("proto"), since=start, until=end, db=db, inventory=inv)
        lat.append(time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"preset {a.preset}: {res.hosts} hosts, {res.flows:,} flows, {res.samples:,} samples "
          f"(sim {t_sim:.1f} s, decode+store {t_ing:.1f} s = {fd.summary.records / t_ing:,.0f} "
          "records/s)")
    print(f"flows sampled {r['flows_sampled']:,}, traced {r['flows_traced']:,}; "
          f"hop precision {r['hop_precision']:.4%}, hop recall {r['hop_recall']:.4%}; "
          f"false hops {r['false_hops']}, missed hops {r['missed_hops']}, "
          f"flows with a false VNF sequence {r['vnf_false']}; all flows scored in {t_eval:.1f} s")
    if lat:
        print(f"single-flow trace latency: median {sorted(lat)[len(lat) // 2] * 1000:.0f} ms "
              f"over {len(lat)} featured flows")
    print(f"peak RSS {rss:.0f} MiB; files in {d}")


if __name__ == "__main__":
    main()

"""Benchmark: end-to-end query latency (the Python API behind the CLI) on a big store.

    python bench/query_latency.py --reuse STORE_DIR [--runs 5] [--json]
    python bench/query_latency.py --records 10000000            # generate, then time

Times what an engineer waits for: ``query.trace`` (one inner flow, 1-hour window, with
hop health from counters), ``query.impact`` (one switch port, 1 hour), ``query.matrix``
by host (1 hour, from raw records) and by tenant over the whole day (per-minute rollup),
without inventory (raw identities). Each is timed cold (a fresh process: imports, store
open, first query) and warm (median and best of ``--runs`` in one process).

The store is the synthetic one of ``bench/store_query.py`` (``--keep`` it there, or let
this script generate it with store/synthetic.py): VXLAN flow samples of 100,000 flows at
32 switches over 24 hours. Target (issue 6): trace and impact under 1 s on 100,000,000
records.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 11, 24, tzinfo=UTC)
WINDOW = (START + timedelta(hours=12), START + timedelta(hours=13))
DAY = (START, START + timedelta(hours=24))
FLOW = 5


def calls() -> dict[str, Any]:
    from fabricscope import query
    from fabricscope.store.synthetic import flow_of, ipv4_text

    f = flow_of(FLOW)
    src, dst = ipv4_text(int(f["inner_src"])), ipv4_text(int(f["inner_dst"]))
    s, u = WINDOW
    return {
        "trace_1h": lambda db: query.trace(src, dst, since=s, until=u, db=db,
                                           inventory="none"),
        "trace_1h_5tuple": lambda db: query.trace(
            src, dst, sport=int(f["inner_sport"]), dport=int(f["inner_dport"]),
            proto=int(f["inner_proto"]), since=s, until=u, db=db, inventory="none"),
        "impact_port_1h": lambda db: query.impact("10.255.0.1", interface="49", since=s,
                                                  until=u, db=db, inventory="none"),
        "matrix_host_1h": lambda db: query.matrix("host", since=s, until=u, db=db,
                                                  inventory="none"),
        "matrix_tenant_24h": lambda db: query.matrix("tenant", since=DAY[0], until=DAY[1],
                                                     db=db, inventory="none"),
    }


def warm(db: str, runs: int) -> dict[str, Any]:
    from fabricscope.store import open_store

    out: dict[str, Any] = {}
    with open_store(db) as st:
        for name, fn in calls().items():
            fn(st)
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                r = fn(st)
                times.append(time.perf_counter() - t)
            size = len(r.get("paths", r.get("flows", r.get("rows", []))))
            out[name] = {"median_s": round(statistics.median(times), 4),
                         "best_s": round(min(times), 4), "result_items": size}
    return out


def cold(db: str, name: str) -> float:
    code = ("import time,sys; t=time.perf_counter(); sys.path.insert(0,'bench'); "
            f"import query_latency as q; q.calls()[{name!r}]({db!r}); "
            "print(time.perf_counter()-t)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, cwd=str(Path(__file__).resolve().parent.parent))
    return float(p.stdout.strip().splitlines()[-1])


def generate(records: int) -> str:
    from fabricscope.store import open_store
    from fabricscope.store.synthetic import synthetic_records

    d = tempfile.mkdtemp(prefix="fs-qlat-")
    span = int((DAY[1] - DAY[0]).total_seconds() * 1e9)
    batch = 2_000_000
    with open_store(d, write=True) as st:
        done = 0
        while done < records:
            n = min(batch, records - done)
            t0 = int(DAY[0].timestamp() * 1e9) + span * done // records
            st.append(synthetic_records(n, start_ns=t0, span_ns=span * n // records,
                                        seed=done))
            done += n
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reuse", type=Path, help="an existing store (bench/store_query --keep)")
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    db = str(a.reuse) if a.reuse else generate(a.records)
    from fabricscope.store import open_store

    with open_store(db) as st:
        info = st.info()
    res = {"store": db, "rows": info.get("rows"), "bytes": info.get("bytes"),
           "warm": warm(db, a.runs),
           "cold_s": {n: round(cold(db, n), 3) for n in ("trace_1h", "impact_port_1h")}}
    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f"store {db}: {res['rows']:,} records, {res['bytes'] / 2**30:.2f} GiB")
    for name, r in res["warm"].items():
        print(f"  {name:20s} warm median {r['median_s'] * 1000:8.1f} ms  best "
              f"{r['best_s'] * 1000:8.1f} ms  ({r['result_items']} items)")
    for name, s in res["cold_s"].items():
        print(f"  {name:20s} cold (new process) {s * 1000:8.1f} ms")


if __name__ == "__main__":
    main()

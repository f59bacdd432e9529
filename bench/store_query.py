"""Benchmark: query latency on a big embedded store (default 100,000,000 records).

Generates N synthetic VXLAN flow samples (records/store/synthetic.py: NumPy, no Python
object per record; 100,000 flows with a skewed popularity, 32 switches) spread over 24
hours, appends them in batches, lets the writer compact the closed hours, then times:

* trace: one inner flow (src, dst) in a 1-hour window, ``Store.select``; also with
  ``either_direction`` and with the full 5-tuple;
* impact: one switch port (agent, in_if) in a 1-hour window;
* an aggregate by switch over the hour (raw records) and over the whole day (1-minute
  aggregates);

each cold (a fresh process that opens the store, with the page cache dropped when
running as root) and warm (best and median of 5 in one process). Prints the disk bytes
per record. Target: the 1-hour single-flow select under 1 second.

    .venv/bin/python bench/store_query.py [--records 100000000] [--batch 2000000]
        [--dir DIR] [--keep] [--reuse STORE_DIR] [--json]

``--reuse`` skips generation and times queries on a store made by an earlier ``--keep``.
Not a test. Mind the disk: about 60 bytes per record (raw records plus aggregates).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 11, 24, tzinfo=UTC)
SPAN = timedelta(hours=24)
WINDOW = (START + timedelta(hours=12), START + timedelta(hours=13))
FLOW = 5  # a popular flow of the synthetic traffic
FLOWS = 100_000
BYTES_PER_RECORD_GUESS = 60


def queries() -> dict[str, Any]:
    from fabricscope.store import RecordFilter
    from fabricscope.store.synthetic import flow_of, ipv4_text

    f = flow_of(FLOW)
    src, dst = ipv4_text(int(f["inner_src"])), ipv4_text(int(f["inner_dst"]))
    since, until = WINDOW
    return {
        "trace_1h": ("select", RecordFilter(since=since, until=until, inner_src=src,
                                            inner_dst=dst)),
        "trace_1h_both_directions": ("select", RecordFilter(
            since=since, until=until, inner_src=src, inner_dst=dst, either_direction=True)),
        "trace_1h_5tuple": ("select", RecordFilter(
            since=since, until=until, inner_src=src, inner_dst=dst,
            inner_sport=int(f["inner_sport"]), inner_dport=int(f["inner_dport"]),
            inner_proto=6)),
        # the switch port where the flow's first hop is seen
        "impact_port_1h": ("select", RecordFilter(
            since=since, until=until, agent=ipv4_text(0x0AFF0001 + FLOW % 32),
            in_if=1 + FLOW % 48)),
        "by_switch_1h_raw": ("aggregate_raw", RecordFilter(since=since, until=until)),
        "by_switch_24h_1m": ("aggregate_1m", RecordFilter(since=START, until=START + SPAN)),
    }


def run_query(st: Any, kind: str, flt: Any) -> int:
    if kind == "select":
        return int(st.select(flt).num_rows)
    if kind == "aggregate_raw":
        return int(st.aggregate(flt, ["agent"], resolution="raw").num_rows)
    return int(st.aggregate(flt, ["agent"], resolution="1m").num_rows)


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def cold(root: Path, name: str) -> dict[str, Any]:
    """One query in a fresh process (opening the store included)."""
    dropped = drop_caches()
    code = (
        "import json, sys, time\n"
        "t0 = time.perf_counter()\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "import store_query as q\n"
        "from fabricscope.store import open_store\n"
        f"kind, flt = q.queries()[{name!r}]\n"
        "t1 = time.perf_counter()\n"
        f"st = open_store({str(root)!r})\n"
        "n = q.run_query(st, kind, flt)\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'rows': n, 'seconds': t2 - t1, 'imports': t1 - t0}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    r: dict[str, Any] = json.loads(out.stdout)
    r["page_cache_dropped"] = dropped
    return r


def warm(root: Path) -> dict[str, dict[str, Any]]:
    from fabricscope.store import open_store

    out: dict[str, dict[str, Any]] = {}
    with open_store(root) as st:
        for name, (kind, flt) in queries().items():
            times = []
            rows = 0
            for _ in range(5):
                t0 = time.perf_counter()
                rows = run_query(st, kind, flt)
                times.append(time.perf_counter() - t0)
            out[name] = {"rows": rows, "best": min(times), "median": statistics.median(times)}
    return out


def generate(root: Path, records: int, batch: int) -> dict[str, Any]:
    from fabricscope.store import open_store
    from fabricscope.store.synthetic import synthetic_records

    n_batches = (records + batch - 1) // batch
    span_ns = int(SPAN.total_seconds()) * 10**9
    step = span_ns // n_batches
    start_ns = int(START.timestamp()) * 10**9
    gen = app = 0.0
    t_all = time.perf_counter()
    with open_store(root, write=True) as st:
        for k in range(n_batches):
            n = min(batch, records - k * batch)
            t0 = time.perf_counter()
            t = synthetic_records(n, start_ns=start_ns + k * step, span_ns=step,
                                  flows=FLOWS, seed=k)
            t1 = time.perf_counter()
            st.append(t, batch_id=f"bench-{k}")
            t2 = time.perf_counter()
            gen += t1 - t0
            app += t2 - t1
            if (k + 1) % 10 == 0 or k + 1 == n_batches:
                print(f"  {min(records, (k + 1) * batch):,} records appended "
                      f"({(k + 1) * batch / app:,.0f} records/s in append)",
                      file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        st.compact()
        compact = time.perf_counter() - t0
        info = st.info()
    return {"generate_seconds": round(gen, 1), "append_seconds": round(app, 1),
            "append_records_per_s": round(records / app),
            "final_compact_seconds": round(compact, 1),
            "total_seconds": round(time.perf_counter() - t_all, 1), "info": info}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000_000)
    ap.add_argument("--batch", type=int, default=2_000_000)
    ap.add_argument("--dir", type=Path, help="work here (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the store afterwards")
    ap.add_argument("--reuse", type=Path, help="time queries on this existing store")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    out: dict[str, Any] = {"cpus": os.cpu_count()}
    tmp: Path | None = None
    if args.reuse:
        root = args.reuse
    else:
        tmp = Path(tempfile.mkdtemp(prefix="fs-query-bench-", dir=args.dir))
        root = tmp / "store"
        need = args.records * BYTES_PER_RECORD_GUESS
        free = shutil.disk_usage(tmp).free
        if free < 1.5 * need:
            shutil.rmtree(tmp, ignore_errors=True)
            sys.exit(f"store_query: needs about {need / 1e9:.1f} GB, "
                     f"{free / 1e9:.1f} GB free in {tmp.parent}")
        print(f"generating {args.records:,} records over 24 h in {root} ...",
              file=sys.stderr, flush=True)
        out["generate"] = generate(root, args.records, args.batch)
    try:
        from fabricscope.store import open_store

        with open_store(root) as st:
            info = st.info()
        rec = info["datasets"]["records"]
        out["records"] = rec["rows"]
        out["bytes_per_record_raw"] = round(rec["bytes"] / rec["rows"], 2)
        out["bytes_per_record_total"] = round(info["bytes"] / rec["rows"], 2)
        out["files"] = {k: v["files"] for k, v in info["datasets"].items()}
        out["cold"] = {name: cold(root, name) for name in queries()}
        out["warm"] = warm(root)
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            print(f"kept {root}", file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return
    g = out.get("generate")
    if g:
        print(f"ingest: {out['records']:,} records, append {g['append_records_per_s']:,} "
              f"records/s, final compaction {g['final_compact_seconds']} s")
    print(f"disk: {out['bytes_per_record_raw']} B/record (raw records), "
          f"{out['bytes_per_record_total']} B/record with the 1-minute aggregates; "
          f"files {out['files']}")
    for name in queries():
        c, w = out["cold"][name], out["warm"][name]
        print(f"{name:26s} rows {w['rows']:>9,}  cold {c['seconds']:7.3f} s"
              f"{'' if c['page_cache_dropped'] else ' (page cache kept)'}  warm best "
              f"{w['best']:7.3f} s, median {w['median']:7.3f} s")


if __name__ == "__main__":
    main()

"""Benchmark: what queries pay while records wait in the embedded store's staging tier.

Appends ``--records`` synthetic VXLAN flow samples (store/synthetic.py, 1,000,000-record
batches, 15 minutes each) with the sealer stopped, so that all of them stay staged (the
tier's limit is 4,000,000: the most a query can meet), then times in a fresh reader:

* one inner flow's records over the first hour (a trace's read), and
* top talkers per minute over that hour (``aggregate(by=["inner_src"], resolution="1m")``),

best of ``--repeat``, staged and then sealed (``Store.seal()``), and prints the seconds
and peak RSS.

    .venv/bin/python bench/store_staged_query.py [--records 4000000] [--repeat 3]
        [--dir DIR] [--json]

Not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

T0_NS = 1_795_600_800 * 10**9  # 2026-11-25 10:00 UTC
BATCH = 1_000_000
SLICE_NS = 900 * 10**9


def build(root: Path, records: int) -> tuple[str, str]:
    """A store with ``records`` staged records; -> one (inner_src, inner_dst) in it."""
    from fabricscope.records.present import ip_str
    from fabricscope.store.embedded import EmbeddedStore
    from fabricscope.store.synthetic import synthetic_records

    st = EmbeddedStore(root, write=True)
    assert st._sealer is not None
    st._sealer.stop()  # everything stays staged (and appends do not wait for it)
    st._sealer = None
    try:
        done = 0
        k = 0
        while done < records:
            n = min(BATCH, records - done)
            st.append(synthetic_records(n, start_ns=T0_NS + k * SLICE_NS, span_ns=SLICE_NS,
                                        seed=k), batch_id=f"b{k}")
            done += n
            k += 1
        row = st.select(columns=["inner_src", "inner_dst"], limit=1).to_pylist()[0]
    finally:
        st.close()
    src, dst = ip_str(row["inner_src"]), ip_str(row["inner_dst"])
    assert src is not None and dst is not None
    return src, dst


def timings(root: Path, src: str, dst: str, repeat: int) -> dict[str, Any]:
    from fabricscope.store import RecordFilter, open_store

    since = datetime.fromtimestamp(T0_NS / 1e9, UTC)
    until = since + timedelta(hours=1)
    trace = agg = float("inf")
    rows = groups = 0
    with open_store(root) as r:
        staged = r.info()["staged_rows"]
        for _ in range(repeat):
            t0 = time.perf_counter()
            rows = r.select(RecordFilter(inner_src=src, inner_dst=dst, since=since,
                                         until=until)).num_rows
            trace = min(trace, time.perf_counter() - t0)
            t0 = time.perf_counter()
            groups = r.aggregate(RecordFilter(since=since, until=until), ["inner_src"],
                                 resolution="1m").num_rows
            agg = min(agg, time.perf_counter() - t0)
    return {"staged_records": staged, "flow_seconds": round(trace, 3), "flow_rows": rows,
            "top_talkers_1m_seconds": round(agg, 3), "top_talkers_groups": groups}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--records", type=int, default=4_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, help="work here (default: a temporary directory)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from fabricscope.store.embedded import EmbeddedStore

    tmp = Path(tempfile.mkdtemp(prefix="fs-staged-", dir=args.dir))
    try:
        root = tmp / "store"
        src, dst = build(root, args.records)
        out: dict[str, Any] = {"records": args.records,
                               "staged": timings(root, src, dst, args.repeat)}
        with EmbeddedStore(root, write=True) as w:
            w.seal()
        out["sealed"] = timings(root, src, dst, args.repeat)
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for name in ("staged", "sealed"):
        r = out[name]
        print(f"{name} ({r['staged_records']:,} records staged): one flow over an hour "
              f"{r['flow_seconds']} s ({r['flow_rows']} records); top talkers per minute "
              f"{r['top_talkers_1m_seconds']} s ({r['top_talkers_groups']:,} groups)")
    print(f"peak RSS {out['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()

"""Benchmark: ingest rate into each store, and disk bytes per record.

1. ``Store.append`` of synthetic VXLAN flow samples (records/store/synthetic.py, 1M-record
   batches) into the embedded store and into ClickHouse through chDB (or a server with
   ``--clickhouse clickhouse://...``): records/s (wall and CPU), disk bytes per record
   (raw records alone, and with the 1-minute aggregates). The bare Parquet encoding of
   the same batches is printed as the floor. The embedded store commits records to its
   staging tier (store/staging.py): the rate until committed (queryable), then the time
   to seal what the background sealer had not sealed yet, and the rate until sealed;
   ``embedded_unstaged`` is the same store sealing inside each append (as before the tier).
2. End to end (``--pcap-frames``, default 2,000,000): a capture of the decode benchmark's
   traffic mix decoded alone (``FileDecoder``) and decoded into the embedded store
   (``fabricscope ingest``'s path: a writer thread overlapping decode and append), so the
   share of the store in the ingest time is measured, not guessed: until committed, until
   sealed, and with the tier off. Then the drain: the capture decoded into a store whose
   sealer is held back, and ``seal()`` of all of it timed (sealing alone, as at the end
   of an ``ingest``).

    .venv/bin/python bench/store_ingest.py [--records 10000000] [--batch 1000000]
        [--pcap-frames 2000000] [--no-chdb] [--clickhouse URL] [--dir DIR] [--json]

Not a test. Prints records/s and peak RSS.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def batches(total: int, size: int, start_ns: int, span_ns: int) -> Any:
    from fabricscope.store.synthetic import synthetic_records

    n_batches = (total + size - 1) // size
    step = span_ns // n_batches
    for k in range(n_batches):
        n = min(size, total - k * size)
        yield synthetic_records(n, start_ns=start_ns + k * step, span_ns=step, seed=k)


def _open(loc: str, staging: bool) -> Any:
    from fabricscope.store import open_store
    from fabricscope.store.embedded import EmbeddedStore

    if "://" in loc:
        return open_store(loc, write=True)
    return EmbeddedStore(Path(loc), write=True, staging=staging)


def bench_append(loc: str, total: int, size: int, start_ns: int, span_ns: int,
                 staging: bool = True) -> dict[str, Any]:
    from fabricscope.store.synthetic import synthetic_records

    wall = cpu = 0.0
    with _open(loc, staging) as st:
        warm = synthetic_records(1000, start_ns=start_ns, span_ns=10**9, seed=99)
        st.append(warm, batch_id="warm-up")  # imports, DuckDB, first files
        done = 1000
        for k, b in enumerate(batches(total, size, start_ns, span_ns)):
            w0, c0 = time.perf_counter(), time.process_time()
            st.append(b, batch_id=f"bench-{k}")
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            done += b.num_rows
        w0, c0 = time.perf_counter(), time.process_time()
        st.seal()
        seal_s = time.perf_counter() - w0
        cpu += time.process_time() - c0
        w0 = time.perf_counter()
        info = st.info()
        maint = time.perf_counter() - w0
    rec = info["datasets"]["records"]
    return {
        "location": loc, "records": done, "seconds": round(wall, 3),
        "records_per_s": round((done - 1000) / wall) if wall else None,
        "seal_seconds_after": round(seal_s, 3),
        "sealed_records_per_s": round((done - 1000) / (wall + seal_s)),
        "cpu_seconds": round(cpu, 3),
        "records_per_cpu_s": round((done - 1000) / cpu) if cpu else None,
        "bytes_per_record_raw": round(rec["bytes"] / rec["rows"], 2) if rec["rows"] else None,
        "bytes_per_record_total": round(info["bytes"] / rec["rows"], 2) if rec["rows"] else None,
        "records_1m_rows": info["datasets"]["records_1m"]["rows"],
        "info_seconds": round(maint, 3),
    }


def bench_parquet_floor(total: int, size: int, start_ns: int, span_ns: int, tmp: Path
                        ) -> dict[str, Any]:
    import pyarrow.parquet as pq

    wall = cpu = 0.0
    n = 0
    for k, b in enumerate(batches(min(total, 4 * size), size, start_ns, span_ns)):
        w0, c0 = time.perf_counter(), time.process_time()
        pq.write_table(b, tmp / f"floor-{k}.parquet", compression="zstd",
                       row_group_size=131072)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        n += b.num_rows
    size_b = sum((tmp / f"floor-{k}.parquet").stat().st_size for k in range(n // size))
    return {"records": n, "records_per_s": round(n / wall), "records_per_cpu_s":
            round(n / cpu), "bytes_per_record": round(size_b / n, 2)}


def bench_end_to_end(frames: int, tmp: Path, batch: int) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("bench_decode", HERE / "decode.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_decode"] = mod
    spec.loader.exec_module(mod)
    pcap = tmp / "traffic.pcap"
    t0 = time.perf_counter()
    mod.TrafficGenerator(seed=1).write(pcap, frames)
    gen = time.perf_counter() - t0

    from fabricscope.cli.commands.ingest import ingest_file
    from fabricscope.decode.tables import DecodeConfig
    from fabricscope.pipeline import FileDecoder
    from fabricscope.store.synthetic import synthetic_records

    for _ in FileDecoder(pcap, batch_frames=16384):  # warm: numba cache, imports
        break
    with _open(str(tmp / "e2e-warm"), True) as st:  # and the store's first-use imports
        st.append(synthetic_records(1000, start_ns=10**18, span_ns=10**9, seed=1))
        st.seal()
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for step in FileDecoder(pcap, batch_frames=16384):
        n += step.records.num_rows
    decode_s = time.perf_counter() - t0
    decode_us = (time.process_time() - c0) / n * 1e6
    out: dict[str, Any] = {"frames": frames, "pcap_gen_seconds": round(gen, 2),
                           "decode_only_records_per_s": round(n / decode_s),
                           "decode_cpu_us_per_record": round(decode_us, 3)}
    for staging in (True, False):
        root = tmp / f"e2e-store-{staging}"
        with _open(str(root), staging) as st:
            t0 = time.perf_counter()
            res = ingest_file(st, pcap, DecodeConfig(), sflow=False, force=False,
                              digest="b", batch_records=batch)
            ingest_s = time.perf_counter() - t0
            st.seal()
            sealed_s = time.perf_counter() - t0
            if staging:
                out["store_cpu"] = st.costs.snapshot()
        tag = "" if staging else "unstaged_"
        out[f"{tag}decode_into_store_records_per_s"] = round(res.records / ingest_s)
        out[f"{tag}store_share_of_ingest_time"] = round(max(0.0, 1 - decode_s / ingest_s), 3)
        # the time decoding stood still because the store had not taken the last batch
        out[f"{tag}store_wait_share"] = round(res.store_wait_s / ingest_s, 3)
        if staging:
            out["sealed_records_per_s"] = round(res.records / sealed_s)
            out["seal_seconds_after"] = round(sealed_s - ingest_s, 3)
        sealed = sum(p.stat().st_size for p in root.rglob("*.parquet"))  # (not the staged
        out[f"{tag}store_bytes_per_record"] = round(sealed / max(1, res.records), 2)  # left)
    out.update(bench_drain(pcap, tmp / "e2e-drain", batch))
    out.update(cpu_budget(decode_us, out["store_cpu"]["us_per_record_total"],
                          n / decode_s))
    return out


def cpu_budget(decode_us: float, store_us: float, decoder_rate: float) -> dict[str, Any]:
    """What the CPU per record says, whatever else the machine does: the most records
    a second that decoding and storing can sustain on this machine's cores, and how many
    cores storing needs to keep up with the decoder's rate alone (measured here) and with
    the decoding issue's target of 5,000,000 records/s."""
    cores = os.cpu_count() or 1
    per = decode_us + store_us
    return {"store_cpu_us_per_record": store_us,
            "sustained_ceiling_records_per_s": round(cores / per * 1e6),
            "store_cores_at_decoder_rate": round(store_us * decoder_rate / 1e6, 2),
            "cores_at_5m_per_s": round(per * 5.0, 1)}


def bench_drain(pcap: Path, root: Path, batch: int) -> dict[str, Any]:
    """The capture decoded into a store whose sealer is held back (its thresholds raised
    for the run), then ``seal()`` of everything staged: the rate of sealing alone, as at
    the end of an ``ingest``, with the caller's thread and the sealer's side by side."""
    from fabricscope.cli.commands.ingest import ingest_file
    from fabricscope.decode.tables import DecodeConfig
    from fabricscope.store import embedded, staging

    held = {(staging, "SEAL_BACKLOG_ROWS"): 1 << 62, (staging, "SEAL_AFTER_S"): 1e9,
            (staging, "QUIET_S"): 1e9, (embedded, "STAGE_MAX_ROWS"): 1 << 62}
    saved = {k: getattr(*k) for k in held}
    try:
        for (mod, name), value in held.items():
            setattr(mod, name, value)
        with _open(str(root), True) as st:
            ingest_file(st, pcap, DecodeConfig(), sflow=False, force=False, digest="d",
                        batch_records=batch)
            staged = st.staged_rows()
            t0, c0 = time.perf_counter(), time.process_time()
            n = st.seal()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            costs = st.costs.snapshot()
    finally:
        for (mod, name), value in saved.items():
            setattr(mod, name, value)
    return {"drain_records": n, "drain_staged": staged, "drain_seconds": round(wall, 3),
            "drain_cpu_seconds": round(cpu, 3), "drain_store_cpu": costs,
            "drain_records_per_s": round(n / wall) if wall > 0 else 0}


def _steps(costs: dict[str, Any], *leave_out: str) -> str:
    """A ``StepCosts.snapshot()``'s steps that cost anything, in µs per record."""
    return ", ".join(f"{k} {v:.2f}" for k, v in costs["us_per_record"].items()
                     if v and k not in leave_out)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=1_000_000)
    ap.add_argument("--pcap-frames", type=int, default=2_000_000,
                    help="end-to-end capture size (0: skip)")
    ap.add_argument("--no-chdb", action="store_true", help="skip ClickHouse (chDB)")
    ap.add_argument("--clickhouse", help="also a ClickHouse server: clickhouse://HOST:PORT/DB")
    ap.add_argument("--dir", type=Path, help="work here (default: a temporary directory; "
                    "the stores' disk matters: staged records are written uncompressed)")
    ap.add_argument("--ingest-batch", type=int, default=1 << 18,
                    help="records per store batch in the end-to-end run (ingest's default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fs-bench-", dir=args.dir))
    # recent data: ClickHouse's TTL counts from the wall clock
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    start_ns = int(start.timestamp()) * 10**9
    span_ns = 6 * 3600 * 10**9
    out: dict[str, Any] = {"records": args.records, "batch": args.batch,
                           "cpus": os.cpu_count()}
    try:
        out["parquet_floor"] = bench_parquet_floor(args.records, args.batch, start_ns,
                                                   span_ns, tmp)
        out["embedded"] = bench_append(str(tmp / "embedded"), args.records, args.batch,
                                       start_ns, span_ns)
        out["embedded"]["disk_bytes"] = dir_bytes(tmp / "embedded")
        out["embedded_unstaged"] = bench_append(str(tmp / "unstaged"), args.records,
                                                args.batch, start_ns, span_ns, staging=False)
        if not args.no_chdb:
            try:
                import chdb  # noqa: F401
            except ImportError:
                out["chdb"] = "skipped: chdb not installed"
            else:
                out["chdb"] = bench_append(f"chdb://{tmp / 'chdb'}", args.records,
                                           args.batch, start_ns, span_ns)
        if args.clickhouse:
            out["clickhouse"] = bench_append(args.clickhouse, args.records, args.batch,
                                             start_ns, span_ns)
        if args.pcap_frames:
            out["end_to_end"] = bench_end_to_end(args.pcap_frames, tmp, args.ingest_batch)
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    f = out["parquet_floor"]
    print(f"Parquet encoding alone (floor): {f['records_per_s']:,} records/s, "
          f"{f['records_per_cpu_s']:,} per CPU-s, {f['bytes_per_record']} B/record")
    for name in ("embedded", "embedded_unstaged", "chdb", "clickhouse"):
        r = out.get(name)
        if isinstance(r, dict):
            print(f"{name}: {r['records_per_s']:,} records/s committed, "
                  f"{r['sealed_records_per_s']:,} sealed ({r['seal_seconds_after']} s of "
                  f"sealing after the last append; {r['records_per_cpu_s']:,} per "
                  f"CPU-s of this process), {r['bytes_per_record_raw']} B/record raw, "
                  f"{r['bytes_per_record_total']} B/record with the 1-minute aggregates "
                  f"({r['records_1m_rows']:,} aggregate rows)")
        elif r:
            print(f"{name}: {r}")
    e = out.get("end_to_end")
    if e:
        print(f"end to end, {e['frames']:,} frames: decode alone "
              f"{e['decode_only_records_per_s']:,} records/s; decode into the embedded "
              f"store {e['decode_into_store_records_per_s']:,} records/s until committed "
              f"(the store's share of the time: {e['store_share_of_ingest_time']:.0%}; "
              f"decoding waited for the store {e['store_wait_share']:.0%} of it), "
              f"{e['sealed_records_per_s']:,} until sealed ({e['seal_seconds_after']} s "
              f"after), {e['store_bytes_per_record']} B/record on disk; without the "
              f"staging tier {e['unstaged_decode_into_store_records_per_s']:,} records/s "
              f"(the store's share: {e['unstaged_store_share_of_ingest_time']:.0%}; "
              f"waited {e['unstaged_store_wait_share']:.0%})")
        print(f"drain (everything staged, then sealed): {e['drain_records']:,} records in "
              f"{e['drain_seconds']} s, {e['drain_records_per_s']:,} records/s "
              f"({e['drain_cpu_seconds']} CPU s)")
        c, d = e["store_cpu"], e["drain_store_cpu"]
        print(f"CPU per record (us, each step on its own thread): decoding "
              f"{e['decode_cpu_us_per_record']:.2f}; the store {c['us_per_record_total']:.2f}"
              f" ({_steps(c)})")
        print(f"  sealing in the drain alone (nothing decoding beside it): "
              f"{d['seal_us_per_record']:.2f} ({_steps(d, 'stage_write')})")
        print(f"so: at most {e['sustained_ceiling_records_per_s']:,} records/s decoded and "
              f"sealed on {out['cpus']} cores; keeping up with the decoder's rate here takes "
              f"{e['store_cores_at_decoder_rate']} cores for the store, and 5,000,000 "
              f"records/s takes {e['cores_at_5m_per_s']} cores in all")
    print(f"peak RSS {out['peak_rss_mb']} MB, {out['cpus']} CPUs")


if __name__ == "__main__":
    main()

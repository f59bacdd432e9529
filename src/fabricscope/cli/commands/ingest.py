"""``fabricscope ingest PATH...``: decode capture files into the store.

pcap, pcapng, gzip'ed or not; frames that are sFlow datagrams (UDP 6343, or every UDP
datagram with ``--sflow``) become one record per sample plus counter polls. A progress bar
on stderr (when it is a terminal), then a closing summary: files, records, counters,
decode events, time span, rate.

A file already ingested (same size, same first and last MiB) is skipped unless
``--force``. Batches carry ids derived from the file, so an ingest that was interrupted
(Ctrl-C, kill, full disk) can simply be run again: the batches already committed are
skipped by the store and the rest goes in.
"""

from __future__ import annotations

import hashlib
import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from fabricscope.cli.common import DbOpt, JsonOpt
from fabricscope.cli.common import progress_bar as _progress
from fabricscope.cli.common import uncompressed_size as _gzip_size

ORDER = 20

BATCH_RECORDS = 1 << 18
"""Records per store batch (a crash loses at most the batch being written). A quarter of
the staging tier's seal job: decoding the next batch overlaps writing this one better
than with 1,048,576 (1.10-1.23 against 0.84-0.92 million records/s committed from a
3,000,000-frame capture, two runs each; docs/storage.md)."""


@dataclass
class FileResult:
    path: str
    status: str = "ingested"  # ingested | skipped | failed | partial
    key: str | None = None
    frames: int = 0
    records: int = 0
    counters: int = 0
    sflow_datagrams: int = 0
    bytes: int = 0
    batches: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    events: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    store_wait_s: float = 0.0  # decoding stood still, waiting for the store
    error: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from fabricscope.timeutil import format_ns

        d = dict(self.__dict__)
        d["first_ts"] = format_ns(self.first_ts_ns) if self.first_ts_ns is not None else None
        d["last_ts"] = format_ns(self.last_ts_ns) if self.last_ts_ns is not None else None
        return d


class _Writer:
    """Appends batches on a thread of its own, so decoding the next batch overlaps with
    writing this one (Arrow, Parquet and DuckDB release the GIL). One batch waits at most;
    an error stops everything at the next submit/finish."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.waited = 0.0  # seconds the decoding side waited for the store
        self.q: queue.Queue[tuple[Any, Any, str] | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.q.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    recs, cnts, bid = item
                    self.store.append(recs, cnts, batch_id=bid)
            except BaseException as exc:
                self.error = exc
            finally:
                self.q.task_done()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def submit(self, recs: Any, cnts: Any, batch_id: str) -> None:
        self._check()
        t0 = time.perf_counter()
        self.q.put((recs, cnts, batch_id))
        self.waited += time.perf_counter() - t0

    def wait(self) -> None:
        t0 = time.perf_counter()
        self.q.join()
        self.waited += time.perf_counter() - t0
        self._check()

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()


def _options_digest(parts: list[str]) -> str:
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:8]


def ingest_file(store: Any, path: Path, cfg: Any, *, sflow: bool, force: bool,
                digest: str, batch_records: int, progress: Any = None) -> FileResult:
    """Decode one file into ``store``; returns what happened (never raises InputError:
    a bad file is a ``failed``/``partial`` result; store errors do raise)."""
    import pyarrow as pa

    from fabricscope.errors import InputError
    from fabricscope.pipeline import FileDecoder
    from fabricscope.records.ddl import STORED_COUNTER_COLUMNS, STORED_PACKET_COLUMNS
    from fabricscope.store import file_key
    from fabricscope.store.conform import conform_input

    res = FileResult(path=str(path))
    t0 = time.perf_counter()
    if not path.exists():
        res.status, res.error = "failed", f"{path}: no such file"
        return res
    if path.is_dir():
        res.status, res.error = "failed", f"{path}: is a directory"
        return res
    try:
        key = file_key(str(path))
    except OSError as exc:
        res.status, res.error = "failed", f"{path}: {exc.strerror or exc}"
        return res
    res.key = key
    if store.ingested(key) and not force:
        prev = store.ingested_summary(key) or {}
        res.status = "skipped"
        res.note = (f"already ingested{' at ' + str(prev['ingested_at'])[:19] if 'ingested_at' in prev else ''}"
                    "; --force to ingest again")
        return res
    run = uuid.uuid4().hex[:8] if force else digest
    size = path.stat().st_size
    total = _gzip_size(path, size)
    task = None
    if progress is not None:
        task = progress.add_task(path.name, total=total, records=0)

    def on_progress(frames: int, nbytes: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=min(total, nbytes + 16 * frames),
                            records=res.records + pending_rows[0])

    from fabricscope.memory import freeze_gc

    fd = FileDecoder(path, cfg, sflow=sflow, progress=on_progress)
    writer = _Writer(store)
    freeze_gc()  # the imported modules are not walked by every collection
    recs: list[pa.Table] = []
    cnts: list[pa.Table] = []
    pending_rows = [0]

    def submit(r: pa.Table, c: pa.Table | None) -> None:
        writer.submit(r, c, f"{key}:{run}:{res.batches}")
        res.batches += 1
        res.records += r.num_rows
        res.counters += c.num_rows if c is not None else 0

    def flush(final: bool) -> None:
        """Submit whole batches of ``batch_records`` records (the rest waits, unless
        ``final``); counter polls ride with the first batch submitted."""
        if not recs and not cnts:
            return
        r = pa.concat_tables(recs) if recs else conform_input(
            pa.table({}), STORED_PACKET_COLUMNS)
        c = pa.concat_tables(cnts) if cnts else None
        recs.clear()
        cnts.clear()
        start = 0
        while r.num_rows - start >= batch_records or (final and (start < r.num_rows
                                                                  or c is not None)):
            piece = r.slice(start, batch_records)
            start += piece.num_rows
            submit(piece, c)
            c = None
        if start < r.num_rows:
            recs.append(r.slice(start))
        if c is not None:
            cnts.append(c)
        pending_rows[0] = r.num_rows - start

    try:
        try:
            for step in fd:
                if step.records is not None and step.records.num_rows:
                    recs.append(conform_input(step.records, STORED_PACKET_COLUMNS))
                    pending_rows[0] += step.records.num_rows
                if step.counters is not None and step.counters.num_rows:
                    cnts.append(conform_input(step.counters, STORED_COUNTER_COLUMNS))
                    pending_rows[0] += step.counters.num_rows
                if pending_rows[0] >= batch_records:
                    flush(False)
        except InputError as exc:
            res.status, res.error = "partial", str(exc)
        flush(True)
        writer.wait()
    finally:
        writer.close()
        res.store_wait_s = round(writer.waited, 3)
    s = fd.summary
    res.frames, res.sflow_datagrams, res.bytes = s.frames, s.sflow_datagrams, s.bytes
    res.first_ts_ns, res.last_ts_ns = s.first_ts_ns, s.last_ts_ns
    res.events = dict(s.events)
    res.seconds = time.perf_counter() - t0
    if res.status == "partial" and res.frames == 0:
        res.status = "failed"
    if res.status == "ingested":
        store.mark_ingested(key, {"path": str(path), "records": res.records,
                                  "counters": res.counters, "frames": res.frames,
                                  "first_ts_ns": res.first_ts_ns,
                                  "last_ts_ns": res.last_ts_ns})
    if progress is not None and task is not None:
        progress.update(task, completed=total, records=res.records)
    return res


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        paths: Annotated[list[Path], typer.Argument(
            help="capture files: pcap, pcapng, sFlow in pcap, gzip'ed or not")],
        db: DbOpt = None,
        force: Annotated[bool, typer.Option(
            "--force", help="ingest files even if they were ingested before")] = False,
        json_out: JsonOpt = False,
        decode_as: Annotated[list[str] | None, typer.Option(
            "--decode-as", help="extra tunnel port, e.g. udp:9999=vxlan (repeatable)")
        ] = None,
        sflow: Annotated[bool, typer.Option(
            "--sflow", help="treat every UDP datagram as sFlow (default: port 6343)")
        ] = False,
        depth: Annotated[int, typer.Option("--depth", min=0, max=4,
                         help="maximum nested tunnel layers")] = 4,
        gre_teb: Annotated[str, typer.Option(
            "--gre-teb", help="keyed GRE carrying Ethernet: 'nvgre' or 'gre'")] = "nvgre",
        retention: Annotated[str | None, typer.Option(
            "--retention", help="keep raw records this long (e.g. 7d; remembered by the "
                                "store)")] = None,
        batch_records: Annotated[int, typer.Option(
            "--batch-records", min=1, help="records per store batch")] = BATCH_RECORDS,
        quiet: Annotated[bool, typer.Option("--quiet", "-q",
                         help="no progress bar, no summary")] = False,
        no_seal: Annotated[bool, typer.Option(
            "--no-seal", help="return once the records are committed (queryable); leave "
                              "sorting them for traces and the per-minute aggregates to "
                              "the store's next writer or 'fabricscope store compact'")
        ] = False,
    ) -> None:
        """Decode capture files into the store, with a progress bar and a closing summary.

        Records are committed to the store's staging tier as fast as they are decoded
        (queryable at once) and sealed (sorted for traces, aggregated per minute) in the
        background; the command waits for the sealing to finish unless --no-seal.

        Files ingested before are skipped (--force to ingest them again). A bad file stops
        with a one-line message and exit code 2; what was decoded before the error is kept.
        """
        from fabricscope.memory import arrow_pool

        arrow_pool()  # before pyarrow loads: jemalloc (memory.py)

        from fabricscope.decode.tables import DecodeConfig
        from fabricscope.errors import InputError, UsageError
        from fabricscope.store import open_store
        from fabricscope.timeutil import parse_duration

        if gre_teb not in ("nvgre", "gre"):
            raise UsageError("--gre-teb must be nvgre or gre")
        cfg = DecodeConfig(max_depth=depth, gre_teb_as_nvgre=(gre_teb == "nvgre"))
        for spec in decode_as or []:
            cfg.decode_as(spec)
        ret = parse_duration(retention, field="--retention") if retention else None
        digest = _options_digest([str(depth), gre_teb, str(sflow), *sorted(decode_as or [])])

        t0 = time.perf_counter()
        results: list[FileResult] = []
        show_bar = not quiet and not json_out and sys.stderr.isatty()
        with open_store(db, write=True, retention=ret) as store:
            progress = _progress() if show_bar else None
            try:
                if progress is not None:
                    progress.start()
                for p in paths:
                    res = ingest_file(store, p, cfg, sflow=sflow, force=force,
                                      digest=digest, batch_records=batch_records,
                                      progress=progress)
                    results.append(res)
            finally:
                if progress is not None:
                    progress.stop()
            committed = time.perf_counter() - t0
            sealed: float | None = None
            if not no_seal:
                _seal(store, show=not quiet and not json_out)
                sealed = time.perf_counter() - t0 - committed
            location = store.location
            costs = getattr(store, "costs", None)  # the embedded writer's steps
            store_cpu = costs.snapshot() if costs is not None else None
        seconds = time.perf_counter() - t0
        totals = _totals(results, seconds)
        totals["committed_s"] = round(committed, 3)
        totals["seal_s"] = None if sealed is None else round(sealed, 3)
        totals["store_cpu"] = store_cpu
        if json_out:
            import json

            print(json.dumps({"store": location, "files": [r.to_dict() for r in results],
                              "totals": totals}, indent=2))
        elif not quiet:
            _print_summary(results, totals, location)
        bad = [r for r in results if r.status in ("failed", "partial")]
        if bad:
            err = bad[0].error or f"{bad[0].path}: failed"
            more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
            raise InputError(err + more)


def _seal(store: Any, *, show: bool) -> None:
    """Wait for the store to seal what this ingest staged (a line on stderr if there is
    much left: the background sealer did the rest while decoding went on)."""
    left = store.staged_rows()
    if show and left >= 100_000:
        print(f"sealing {left:,} staged records (sorting for traces, per-minute "
              "aggregates)...", file=sys.stderr, flush=True)
    store.seal()


def _totals(results: list[FileResult], seconds: float) -> dict[str, Any]:
    from fabricscope.timeutil import format_ns

    done = [r for r in results if r.status != "skipped"]
    firsts = [r.first_ts_ns for r in done if r.first_ts_ns is not None]
    lasts = [r.last_ts_ns for r in done if r.last_ts_ns is not None]
    events: dict[str, int] = {}
    for r in done:
        for k, v in r.events.items():
            events[k] = events.get(k, 0) + v
    records = sum(r.records for r in done)
    return {
        "files": len(results),
        "ingested": sum(r.status == "ingested" for r in results),
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": sum(r.status in ("failed", "partial") for r in results),
        "frames": sum(r.frames for r in done),
        "records": records,
        "counters": sum(r.counters for r in done),
        "events": events,
        "first_ts": format_ns(min(firsts)) if firsts else None,
        "last_ts": format_ns(max(lasts)) if lasts else None,
        "span_s": (max(lasts) - min(firsts)) / 1e9 if firsts and lasts else None,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds) if seconds > 0 else None,
        "store_wait_s": round(sum(r.store_wait_s for r in done), 3),
    }


def _print_summary(results: list[FileResult], totals: dict[str, Any], location: str) -> None:
    from rich.console import Console

    con = Console(stderr=True, highlight=False, soft_wrap=True)
    for r in results:
        if r.status == "skipped":
            con.print(f"{r.path}: skipped, {r.note}")
        elif r.status == "failed":
            con.print(f"{r.path}: failed: {r.error}")
        else:
            tail = f" (stopped early: {r.error})" if r.status == "partial" else ""
            con.print(f"{r.path}: {r.records:,} records, {r.counters:,} counter records "
                      f"from {r.frames:,} frames in {r.seconds:.2f} s{tail}")
    span = ""
    if totals["first_ts"]:
        span = f", {totals['first_ts']} .. {totals['last_ts']}"
    rate = f", {totals['records_per_s']:,} records/s" if totals["records_per_s"] else ""
    seal = ""
    if totals.get("seal_s") is not None and totals.get("committed_s") is not None:
        seal = (f" (committed in {totals['committed_s']:.2f} s, sealed "
                f"{totals['seal_s']:.2f} s later)")
    elif totals.get("committed_s") is not None:
        seal = " (not sealed yet: --no-seal)"
    con.print(f"ingested {totals['ingested']} of {totals['files']} files into {location}: "
              f"{totals['records']:,} records, {totals['counters']:,} counter records"
              f"{span} in {totals['seconds']:.2f} s{rate}{seal}"
              + (f"; {totals['skipped']} skipped" if totals["skipped"] else ""))
    if totals["events"]:
        ev = ", ".join(f"{k}={v:,}" for k, v in sorted(totals["events"].items()))
        con.print(f"decode events: {ev}")

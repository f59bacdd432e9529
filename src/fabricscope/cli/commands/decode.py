"""``fabricscope decode PATH``: decode a pcap/pcapng file (tunnels and sFlow included)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from fabricscope.errors import OutputError

if TYPE_CHECKING:
    from fabricscope.records.ipc import ArrowSink
    from fabricscope.records.parquet import ParquetSink

ORDER = 10


class Format(StrEnum):
    ndjson = "ndjson"
    table = "table"
    parquet = "parquet"
    arrow = "arrow"


#: the formats written to a file (-o FILE required), and their counter file's suffix
FILE_FORMATS = {Format.parquet: ".counters.parquet", Format.arrow: ".counters.arrow"}

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 58: "icmp6", 4: "ipip", 41: "ipv6"}


def _flow(r: dict[str, Any], prefix: str) -> str:
    src, dst = r.get(prefix + "src"), r.get(prefix + "dst")
    if src is None:
        mac = r.get(prefix + "eth_src")
        return f"{mac} > {r.get(prefix + 'eth_dst')}" if mac else ""
    sp, dp = r.get(prefix + "sport"), r.get(prefix + "dport")
    proto = r.get(prefix + "proto")
    pn = PROTO_NAMES.get(proto, str(proto)) if proto is not None else ""
    if r.get(prefix + "ethertype") == 0x0806:
        pn = "arp"
    a = f"{src}:{sp}" if sp is not None else str(src)
    b = f"{dst}:{dp}" if dp is not None else str(dst)
    return f"{a} > {b} {pn}".rstrip()


def register(app: typer.Typer) -> None:
    @app.command("decode")
    def decode(
        path: Annotated[Path, typer.Argument(help="pcap or pcapng file (gzip is fine)")],
        fmt: Annotated[Format, typer.Option("--format", "-f",
                       help="ndjson: one JSON object per record; table: for people; "
                            "parquet: the record columns to -o FILE (sFlow counter rows "
                            "to FILE.counters.parquet); arrow: an Arrow IPC (Feather v2) "
                            "file, LZ4-compressed, the fastest to write and to load "
                            "(counter rows to FILE.counters.arrow)")
                       ] = Format.ndjson,
        output: Annotated[Path | None, typer.Option("--output", "-o",
                          help="write here instead of stdout (required for parquet and "
                               "arrow)")
                          ] = None,
        limit: Annotated[int | None, typer.Option("--limit", "-n", min=0,
                         help="stop after N records")] = None,
        decode_as: Annotated[list[str] | None, typer.Option("--decode-as",
                             help="extra tunnel port, e.g. udp:9999=vxlan, tcp:7472=stt, "
                                  "udp:4789=none (repeatable)")] = None,
        sflow: Annotated[bool, typer.Option("--sflow",
                         help="treat every UDP datagram as sFlow (default: port 6343)")
                         ] = False,
        depth: Annotated[int, typer.Option("--depth", min=0, max=4,
                         help="maximum nested tunnel layers")] = 4,
        gre_teb: Annotated[str, typer.Option("--gre-teb",
                           help="keyed GRE carrying Ethernet is 'nvgre' (VSID<<8|FlowID) "
                                "or 'gre' (key = VNI, as OVS/Neutron GRE)")] = "nvgre",
        quiet: Annotated[bool, typer.Option("--quiet", "-q",
                         help="no closing summary on stderr")] = False,
        summary_json: Annotated[bool, typer.Option("--summary-json",
                                help="closing summary as JSON on stderr")] = False,
        show_progress: Annotated[bool | None, typer.Option(
            "--progress/--no-progress",
            help="a progress bar on stderr (default: when writing to -o FILE and stderr "
                 "is a terminal)")] = None,
    ) -> None:
        """Decode a capture file: wire headers, every tunnel layer, inner headers, sFlow samples.

        Frames that are sFlow datagrams (UDP 6343, or --sflow) become one record per sample;
        other frames one record each. A closing summary (frames, records, decode events by
        name) goes to stderr.
        """
        import json

        from fabricscope.memory import arrow_pool, tune_malloc

        arrow_pool()  # before pyarrow loads: jemalloc, a smaller peak (memory.py)
        if fmt is Format.arrow:
            # the writer's thread frees each batch's column block: with glibc's defaults
            # the heap's top goes back to the kernel and is faulted in again (memory.py)
            tune_malloc()

        from fabricscope.decode.tables import DecodeConfig
        from fabricscope.errors import InputError, UsageError
        from fabricscope.pipeline import FileDecoder

        if gre_teb not in ("nvgre", "gre"):
            raise UsageError("--gre-teb must be nvgre or gre")
        cfg = DecodeConfig(max_depth=depth, gre_teb_as_nvgre=(gre_teb == "nvgre"))
        for spec in decode_as or []:
            cfg.decode_as(spec)
        if fmt in FILE_FORMATS and output is None:
            raise UsageError(f"--format {fmt.value} needs -o FILE")
        if not path.exists():
            raise InputError("no such file", path=str(path))

        from fabricscope.memory import freeze_gc

        if show_progress is None:
            show_progress = (output is not None and not quiet and not summary_json
                             and sys.stderr.isatty())
        bar = _Bar(path) if show_progress else None
        fd = FileDecoder(path, cfg, sflow=sflow,
                         progress=bar.update if bar is not None else None)
        sink = _Sink(fmt, output)
        freeze_gc()  # the imported modules are not walked by every collection
        written = 0
        failure: InputError | None = None
        finished = False  # every frame read (or --limit reached), no error
        if bar is not None:
            bar.start()
        try:
            for step in fd:
                for batch in (step.records, step.counters):
                    if batch is None or batch.num_rows == 0:
                        continue
                    if limit is not None:
                        if written >= limit:
                            break
                        batch = batch.slice(0, limit - written)
                    written += sink.write(batch)
                if limit is not None and written >= limit:
                    break
                if bar is not None:
                    bar.records = written
            finished = True
        except InputError as exc:
            failure = exc
        finally:
            try:
                sink.close()
            finally:
                if bar is not None:
                    bar.stop(done=finished)
        s = fd.summary
        if summary_json:
            d = s.to_dict()
            d["written"] = written
            print(json.dumps(d), file=sys.stderr)
        elif not quiet:
            _print_summary(s, written)
        if failure is not None:
            raise failure


class _Bar:
    """The progress bar of ``decode``: bytes of the file read, records written."""

    def __init__(self, path: Path) -> None:
        from fabricscope.cli.common import progress_bar, uncompressed_size

        self.total = uncompressed_size(path, path.stat().st_size)
        self.progress = progress_bar()
        self.task = self.progress.add_task(path.name, total=self.total, records=0)
        self.records = 0

    def start(self) -> None:
        self.progress.start()

    def update(self, frames: int, nbytes: int) -> None:
        # (bytes of frames, plus 16 per pcap record header: close to the file's size)
        self.progress.update(self.task, completed=min(self.total, nbytes + 16 * frames),
                             records=self.records)

    def stop(self, *, done: bool) -> None:
        if done:  # (after an error the bar stays where the error was)
            self.progress.update(self.task, completed=self.total, records=self.records)
        self.progress.stop()


class _Sink:
    """Where ``decode`` writes. A file that cannot be written (a missing directory, no
    permission, a full disk) is a one-line ``OutputError`` naming it, not a traceback."""

    def __init__(self, fmt: Format, output: Path | None) -> None:
        self.fmt = fmt
        self.output = output
        self._pq: ParquetSink | ArrowSink | None = None
        # sFlow counter rows go to OUTPUT.counters.parquet (.arrow)
        self._pqc: ParquetSink | ArrowSink | None = None
        self._fh: TextIO | None = None
        self._console: Any = None
        if fmt is Format.ndjson:
            try:
                self._fh = open(output, "w") if output else sys.stdout  # noqa: SIM115
            except OSError as exc:
                raise OutputError(str(output), exc) from None

    def write(self, batch: Any) -> int:
        try:
            return self._write(batch)
        except OSError as exc:
            raise OutputError(str(self.output), exc) from None

    def _open(self, path: str, schema: Any) -> ParquetSink | ArrowSink:
        from fabricscope.records.sinks import open_sink

        sink: ParquetSink | ArrowSink = open_sink(self.fmt.value, path, schema)
        return sink

    def _write(self, batch: Any) -> int:
        if self.fmt in FILE_FORMATS:
            if "ifindex" in batch.schema.names:  # sFlow counter rows: their own file
                if self._pqc is None:
                    self._pqc = self._open(f"{self.output}{FILE_FORMATS[self.fmt]}",
                                           batch.schema)
                return self._pqc.write(batch)
            if self._pq is None:
                self._pq = self._open(str(self.output), batch.schema)
            return self._pq.write(batch)
        if self.fmt is Format.ndjson:
            from fabricscope.records.present import write_ndjson

            assert self._fh is not None
            return write_ndjson(batch, self._fh)
        return self._table(batch)

    def _table(self, batch: Any) -> int:
        from rich.console import Console
        from rich.table import Table

        from fabricscope.records.present import record_dicts

        if self._console is None:
            fh = open(self.output, "w") if self.output else None  # noqa: SIM115
            self._console = Console(file=fh, width=None if fh is None and sys.stdout.isatty()
                                    else 200)
        table = Table(header_style="bold", box=None, pad_edge=False)
        for c in ("time", "wire", "tunnel", "inner", "sFlow", "error"):
            table.add_column(c, no_wrap=True)
        n = 0
        for r in record_dicts(batch):
            n += 1
            ts = r.get("ts") or ""
            if r.get("kind") == "counters":  # an sFlow interface counter poll
                table.add_row(
                    ts[11:].rstrip("Z") if ts else "",
                    f"ifIndex {r.get('ifindex')} {r.get('port_name') or ''}".rstrip(), "", "",
                    f"{r['agent']} counters: in {r.get('in_octets')} B, out "
                    f"{r.get('out_octets')} B, errors {r.get('in_errors')}/"
                    f"{r.get('out_errors')}", "")
                continue
            table.add_row(
                ts[11:].rstrip("Z") if ts else "",
                _flow(r, ""),
                " ".join(f"{t['type']}:{t['vni']}" if t.get("vni") is not None else t["type"]
                         for t in r.get("tunnels") or []),
                _flow(r, "inner_") if r.get("encap") else "",
                f"{r['agent']} {r.get('in_if')}>{r.get('out_if')} 1:{r.get('sampling_rate')}"
                if r.get("agent") else "",
                r.get("error") or "",
            )
        self._console.print(table)
        return n

    def close(self) -> None:
        try:
            self._close()
        except OSError as exc:
            raise OutputError(str(self.output), exc) from None

    def _close(self) -> None:
        from fabricscope.records.sinks import close_sinks

        close_sinks(self._pq, self._pqc)
        if self._fh is not None and self._fh is not sys.stdout:
            self._fh.close()
        if self._fh is sys.stdout:
            self._fh.flush()


def _print_summary(s: Any, written: int) -> None:
    from rich.console import Console

    con = Console(stderr=True, highlight=False, soft_wrap=True)
    rate = s.frames / s.seconds if s.seconds > 0 else 0.0
    line = (f"{s.path}: {s.frames:,} frames, {written:,} records written"
            f" ({s.sflow_datagrams:,} sFlow datagrams, {s.counter_records:,} counter records)"
            f" in {s.seconds:.2f} s ({rate:,.0f} frames/s)")
    con.print(line)
    if s.events:
        ev = ", ".join(f"{k}={v:,}" for k, v in sorted(s.events.items()))
        con.print(f"decode events: {ev}")

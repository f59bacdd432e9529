"""``fabricscope collect``: the live sFlow collector (receive, decode, store, account)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

ORDER = 30


def register(app: typer.Typer) -> None:
    @app.command("collect")
    def collect(
        listen: Annotated[str, typer.Option("--listen", "-l",
                          help="HOST:PORT to receive sFlow on ([::]:6343 for IPv4 and "
                               "IPv6)")] = "127.0.0.1:6343",
        db: Annotated[str | None, typer.Option("--db",
                      help="store location (default: the embedded store, "
                           "$FABRICSCOPE_DB or the user data directory; "
                           "clickhouse://HOST:PORT/DB for ClickHouse)")] = None,
        no_store: Annotated[bool, typer.Option("--no-store",
                            help="do not write to any store (--out only, or accounting "
                                 "only)")] = False,
        out: Annotated[Path | None, typer.Option("--out", "-o",
                       help="also write FILE.ndjson, FILE.parquet or FILE.arrow (Arrow "
                            "IPC, the cheapest to write; counters in FILE.counters.parquet "
                            "or .arrow, accounting in FILE.accounting.json)")
                       ] = None,
        duration: Annotated[float | None, typer.Option("--duration", min=0.0,
                            help="stop after SECONDS (default: until SIGINT/SIGTERM)")
                            ] = None,
        workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=64,
                           help="decode processes, each with its own SO_REUSEPORT socket")
                           ] = 1,
        forward: Annotated[str | None, typer.Option("--forward",
                           help="re-send every raw datagram to HOST:PORT")] = None,
        metrics: Annotated[str | None, typer.Option("--metrics",
                           help="serve Prometheus metrics on HOST:PORT (/metrics)")
                           ] = None,
        batch: Annotated[int, typer.Option("--batch", min=1,
                         help="datagrams decoded per batch")] = 8192,
        flush: Annotated[float, typer.Option("--flush", min=0.01,
                         help="decode and hand over at least every SECONDS")] = 1.0,
        rcvbuf: Annotated[int, typer.Option("--rcvbuf", min=0,
                          help="socket receive buffer in MiB (as root beyond rmem_max)")
                          ] = 256,
        json_out: Annotated[bool, typer.Option("--json",
                            help="print the closing accounting as JSON on stdout")
                            ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q",
                         help="no closing table")] = False,
    ) -> None:
        """Receive sFlow v5 datagrams, decode them in batches (tunnels inside samples
        included), append the batches to the store (and/or a file), and account for every
        datagram and sample: sequence gaps per agent and per source, the agents' own
        drops, decode events, and the kernel's drops on the collector's socket.

        Stops on SIGINT/SIGTERM or after --duration, after decoding and writing
        everything that was received; prints the accounting (a table, or --json).
        """
        import json

        from fabricscope.capture.udp import parse_hostport
        from fabricscope.errors import InputError, UsageError
        from fabricscope.sflow.collector import (
            Collector,
            CollectorOptions,
            FileSink,
            Sink,
            StoreSink,
            TeeSink,
            install_signal_handlers,
        )

        try:
            host, port = parse_hostport(listen)
        except ValueError as exc:
            raise UsageError(f"--listen {listen!r}: {exc}") from None
        fwd = None
        if forward:
            try:
                fwd = parse_hostport(forward)
            except ValueError as exc:
                raise UsageError(f"--forward {forward!r}: {exc}") from None
        sinks: list[Sink] = []
        if out is not None:
            try:
                sinks.append(FileSink(out))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            except OSError as exc:
                raise InputError(f"cannot write: {exc.strerror}", path=str(out)) from None
        if no_store and db is not None:
            raise UsageError("--db and --no-store exclude each other")
        store_sink: StoreSink | None = None
        if not no_store:
            from fabricscope.store import StoreError

            try:
                store_sink = StoreSink(db)
            except StoreError as exc:
                raise InputError(str(exc)) from None
            sinks.append(store_sink)
        sink: Sink | None = None
        if len(sinks) == 1:
            sink = sinks[0]
        elif sinks:
            sink = TeeSink(*sinks)

        opts = CollectorOptions(host=host, port=port, workers=workers, duration=duration,
                                forward=fwd, batch_datagrams=batch, flush_interval=flush,
                                rcvbuf=rcvbuf << 20)
        col = Collector(opts, sink)
        try:
            bound = col.bind()
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        if metrics:
            try:
                mhost, mport = parse_hostport(metrics, default_port=9343)
                from prometheus_client import start_http_server

                reg = col.registry()
                store = store_sink.store if store_sink is not None else None
                costs = getattr(store, "costs", None)
                if store is not None and costs is not None:  # the embedded writer's steps
                    from fabricscope.store.costs import CostsCollector

                    reg.register(CostsCollector(costs, store.staged_rows))
                start_http_server(mport, addr=mhost, registry=reg)
            except (ValueError, OSError) as exc:
                raise UsageError(f"--metrics {metrics!r}: {exc}") from None
        import fabricscope
        from fabricscope.memory import freeze_gc, tune_malloc
        from fabricscope.sflow.collector import warm_up

        tune_malloc()  # batch buffers reused, not page-faulted in anew (memory.py)
        freeze_gc()  # the imported modules are not walked by every collection

        if fabricscope.JIT_CACHE_FRESH and not quiet:
            print("fabricscope collect: first run since install: compiling the decoders to "
                  "machine code (a few minutes, once; cached for later runs)...",
                  file=sys.stderr, flush=True)
        warm_up()  # before saying we are ready: the first batch must not wait for the JIT
        if not quiet:
            print(f"fabricscope collect: listening on {host}:{bound} "
                  f"({workers} worker{'s' if workers > 1 else ''}); "
                  "SIGINT/SIGTERM to stop", file=sys.stderr, flush=True)
        restore = install_signal_handlers(col)
        try:
            final = col.run()
        finally:
            restore()
        if json_out:
            print(json.dumps(final))
        elif not quiet:
            print_accounting(final)


def print_accounting(d: dict[str, Any]) -> None:
    """The closing accounting as rich tables on stderr."""
    from rich.console import Console
    from rich.table import Table

    con = Console(stderr=True, highlight=False, soft_wrap=True)
    sock = d.get("socket") or {}
    col = d.get("collector") or {}
    con.print(
        f"{col.get('listen', '')}: {d['datagrams']:,} datagrams, {d['samples']:,} samples "
        f"({d['flow_samples']:,} flow, {d['discard_samples']:,} discard, "
        f"{d['counter_samples']:,} counters) in {col.get('seconds', 0):.1f} s")
    con.print(
        f"lost on the way (sequence gaps): {d['lost_datagrams']:,} datagrams, "
        f"{d['lost_samples']:,} samples; agents' own drops: {d['agent_drops']:,}; "
        f"kernel socket drops: {sock.get('drops') if sock.get('drops') is not None else 'n/a'}; "
        f"duplicates {d['duplicate_datagrams']:,}, reordered {d['reordered_datagrams']:,}, "
        f"agent resets {d['agent_resets']:,}")
    if d.get("unattributed_datagrams"):
        con.print(f"datagrams without an agent (malformed): {d['unattributed_datagrams']:,}")
    ov = d.get("overflow") or {}
    if ov.get("untracked_datagrams") or ov.get("untracked_samples"):
        con.print(f"[yellow]state caps reached[/]: {ov['untracked_datagrams']:,} datagrams, "
                  f"{ov['untracked_samples']:,} samples not tracked "
                  f"(max {ov['max_agents']} agents, {ov['max_sources']} sources)")
    if sock.get("forwarded") is not None:
        con.print(f"forwarded {sock['forwarded']:,} datagrams "
                  f"({sock.get('forward_failed', 0):,} failed)")
    agents = d.get("agents") or []
    if agents:
        t = Table(header_style="bold", box=None, pad_edge=False)
        for c in ("agent", "sub", "datagrams", "samples", "lost dgrams", "lost samples",
                  "agent drops", "dup", "reordered", "resets"):
            t.add_column(c, justify="left" if c == "agent" else "right")
        for a in sorted(agents, key=lambda a: (str(a["agent"]), a["sub_agent"]))[:200]:
            t.add_row(str(a["agent"]), str(a["sub_agent"]), f"{a['datagrams']:,}",
                      f"{a['samples']:,}", f"{a['lost']:,}", f"{a['lost_samples']:,}",
                      f"{a['agent_drops']:,}", f"{a['duplicates']:,}",
                      f"{a['reordered']:,}", f"{a['resets']:,}")
        con.print(t)
        if len(agents) > 200:
            con.print(f"... and {len(agents) - 200} more agents (--json for all)")
    if d.get("events"):
        con.print("decode events: " + ", ".join(f"{k}={v:,}" for k, v in d["events"].items()))

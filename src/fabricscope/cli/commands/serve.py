"""``fabricscope serve``: the REST API, the web page and Prometheus metrics (docs/api.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fabricscope.cli.common import DbOpt, InventoryOpt

ORDER = 85

DEFAULT_LISTEN = "127.0.0.1:8626"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (127.0.0.1) -> (host, port)."""
    from fabricscope.errors import UsageError

    t = text.strip()
    if t.startswith("["):
        host, sep, port = t[1:].partition("]:")
        if not sep:
            raise UsageError(f"--listen {text!r}: use [ADDRESS]:PORT for IPv6")
    else:
        host, sep, port = t.rpartition(":")
        if not sep:
            raise UsageError(f"--listen {text!r}: use HOST:PORT (e.g. {DEFAULT_LISTEN})")
    host = host or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: the port must be 1-65535")
    return host, int(port)


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        db: DbOpt = None,
        listen: Annotated[str, typer.Option(
            "--listen", help="address and port to bind (only this machine by default; "
                             "0.0.0.0:8626 for every interface)")] = DEFAULT_LISTEN,
        inventory: InventoryOpt = None,
        token_file: Annotated[str | None, typer.Option(
            "--token-file", help="file holding the API token, created (mode 0600) with a "
                                 "new random token if missing (default: the user config "
                                 "dir; $FABRICSCOPE_TOKEN wins over any file)")] = None,
        cors_origin: Annotated[list[str] | None, typer.Option(
            "--cors-origin", help="an origin (https://dash.example) allowed to call the API "
                                  "from a browser; repeatable; none by default")] = None,
        rate: Annotated[float, typer.Option(
            "--rate", min=0, help="requests per second per client address (bursts of 5x "
                                  "allowed); 0 turns the limit off")] = 20.0,
        collect: Annotated[str | None, typer.Option(
            "--collect", help="also run the sFlow collector in this process, listening on "
                              "HOST:PORT and writing to --db (its live accounting then "
                              "shows in /api/v1/collector/status and /metrics)")] = None,
        log_level: Annotated[str, typer.Option("--log-level")] = "info",
    ) -> None:
        """Serve the REST API (/api/v1, OpenAPI at /openapi.json), the web page (/) and
        Prometheus metrics (/metrics). Every route but /health and the page shell needs
        the API token: 'Authorization: Bearer TOKEN'."""
        import uvicorn

        from fabricscope.api import RateLimit, create_app
        from fabricscope.api.security import load_token

        host, port = parse_listen(listen)
        tok = load_token(token_file)
        if tok.created:
            typer.echo(f"fabricscope: new API token written to {tok.origin} (mode 0600):",
                       err=True)
            typer.echo(f"  {tok.token}", err=True)
        else:
            typer.echo(f"fabricscope: API token from {tok.origin}", err=True)
        limit = RateLimit(rate=rate, burst=max(10, int(rate * 5))) if rate > 0 else None
        collector, thread = _start_collector(collect, db) if collect else (None, None)
        api = create_app(db, inventory, token=tok.token, rate_limit=limit,
                         cors_origins=cors_origin or (), collector=collector)
        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"fabricscope: serving http://{shown}:{port}/ (API /api/v1, metrics "
                   "/metrics); Ctrl-C stops", err=True)
        if host not in ("127.0.0.1", "::1", "localhost"):
            typer.echo("fabricscope: warning: listening beyond this machine over plain "
                       "HTTP; put a TLS proxy in front", err=True)
        try:
            uvicorn.run(api, host=host, port=port, log_level=log_level, server_header=False,
                        proxy_headers=False, access_log=False)
        finally:
            if collector is not None and thread is not None:
                collector.stop()  # it decodes and writes what it received, then stops
                thread.join(timeout=60)


def _start_collector(listen: str, db: str | None) -> tuple[Any, Any]:
    """A collector (one worker) in a background thread, writing to the store."""
    import threading

    from fabricscope.capture.udp import parse_hostport
    from fabricscope.errors import InputError, UsageError
    from fabricscope.sflow.collector import Collector, CollectorOptions, StoreSink
    from fabricscope.store import StoreError

    try:
        host, port = parse_hostport(listen)
    except ValueError as exc:
        raise UsageError(f"--collect {listen!r}: {exc}") from None
    try:
        sink = StoreSink(db)
    except StoreError as exc:
        raise InputError(str(exc)) from None
    col = Collector(CollectorOptions(host=host, port=port), sink)
    try:
        bound = col.bind()
    except OSError as exc:
        raise UsageError(f"--collect: cannot listen on {host}:{port}: {exc.strerror}"
                         ) from None
    thread = threading.Thread(target=col.run, name="collector", daemon=True)
    thread.start()
    typer.echo(f"fabricscope: collecting sFlow on {host}:{bound} into the store", err=True)
    return col, thread

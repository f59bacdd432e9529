"""Options and helpers shared by the commands: the query commands (trace, impact, matrix,
predict, check), and the progress bar of those that read capture files (ingest, decode)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

DbOpt = Annotated[str | None, typer.Option(
    "--db", help="store: a directory (embedded, default under the user's data dir, or "
                 "$FABRICSCOPE_DB) or clickhouse://HOST:PORT/DB")]
InventoryOpt = Annotated[str | None, typer.Option(
    "--inventory", "-i", help="inventory YAML file, or an inventory history directory "
                              "(default: what 'inventory load' recorded; 'none' for none)")]
SinceOpt = Annotated[str | None, typer.Option(
    "--since", help="start of the window: RFC 3339, -15m, -2h, now (default: until - 1h)")]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", help="end of the window: RFC 3339, -15m, now (default: now)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


@contextmanager
def open_source(db: str | None) -> Iterator[Any]:
    """The store, read-only, as a query source."""
    from fabricscope.store import open_store

    store = open_store(db, write=False)
    try:
        yield store
    finally:
        store.close()


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def proto_number(text: str | None) -> int | None:
    """``tcp``/``udp``/``icmp``/``icmp6``/``gre`` or a number."""
    from fabricscope.errors import UsageError

    if text is None:
        return None
    names = {"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "icmp6": 58, "icmpv6": 58,
             "sctp": 132}
    t = text.strip().lower()
    if t in names:
        return names[t]
    if t.isdigit() and 0 <= int(t) <= 255:
        return int(t)
    raise UsageError(f"--proto {text!r}: use tcp, udp, icmp, icmp6, gre or a number 0-255")


def check_ip(text: str, option: str) -> str:
    import ipaddress

    from fabricscope.errors import UsageError

    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an IP address") from None


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def human_count(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}T"


def console(stderr: bool = False) -> Any:
    """A rich console for results: the terminal's width, or 140 columns when piped (rich
    would wrap at 80)."""
    from rich.console import Console

    c = Console(highlight=False, stderr=stderr)
    if not c.is_terminal:
        c = Console(highlight=False, stderr=stderr, width=140)
    return c


def uncompressed_size(path: Path, size: int) -> int:
    """Uncompressed size of a gzip file (ISIZE trailer, modulo 4 GiB) for the progress bar."""
    try:
        with open(path, "rb") as fh:
            if fh.read(2) != b"\x1f\x8b":
                return size
            fh.seek(-4, os.SEEK_END)
            isize = int.from_bytes(fh.read(4), "little")
    except OSError:
        return size
    while isize < size:
        isize += 1 << 32
    return isize


def progress_bar(to: Any = None) -> Any:
    """A progress bar on stderr for reading a capture file: bytes, rate, records, time
    left (``ingest``, ``decode -o``)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TextColumn("{task.fields[records]:,} records"),
                    TimeRemainingColumn(), console=to or Console(stderr=True),
                    transient=False)

"""``fabricscope store info|compact|retention``: look after the store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fabricscope.cli.common import DbOpt, JsonOpt

ORDER = 25

store_app = typer.Typer(help="Look after the store: sizes, compaction, retention.",
                        no_args_is_help=True)


def _fmt_ns(ns: int | None) -> str:
    from fabricscope.timeutil import format_ns

    return format_ns(ns, 3) if ns is not None else "-"


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n):,} B"
        n /= 1024
    return f"{n:,.1f} TiB"


@store_app.command("info")
def info_cmd(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Rows, bytes, time span, partitions and schema version of each dataset."""
    from fabricscope.store import open_store

    with open_store(db) as st:
        info = st.info()
    if json_out:
        import json

        print(json.dumps(info, indent=2, default=str))
        return
    _print_info(info)


def _print_info(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    con.print(f"store {info['location']} ({info['backend']}, schema version "
              f"{info['schema_version']})")
    if info.get("writer_pid"):
        con.print(f"written now by pid {info['writer_pid']}")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for c in ("dataset", "rows", "bytes", "bytes/row", "files", "partitions", "first",
              "last"):
        table.add_column(c, justify="right" if c in ("rows", "bytes", "bytes/row", "files",
                                                       "partitions") else "left")
    for name, d in info["datasets"].items():
        per = f"{d['bytes'] / d['rows']:.1f}" if d["rows"] else "-"
        table.add_row(name, f"{d['rows']:,}", _human(d["bytes"]), per, str(d["files"]),
                      str(d["partitions"]), _fmt_ns(d["first_ns"]), _fmt_ns(d["last_ns"]))
    con.print(table)
    days = info["retention_s"] / 86400
    days_1m = info["retention_1m_s"] / 86400
    con.print(f"retention: raw {days:g} d, 1-minute aggregates {days_1m:g} d; "
              f"{info.get('ingested_files', 0)} files ingested")
    if info.get("staged_rows"):
        con.print(f"{info['staged_rows']:,} records staged: committed and queryable, not "
                  "sealed yet (sorted and aggregated by the writer in the background, or "
                  "by 'fabricscope store compact')")


@store_app.command("compact")
def compact_cmd(db: DbOpt = None) -> None:
    """Seal staged records, then merge small files (embedded); merge parts (ClickHouse
    OPTIMIZE)."""
    from fabricscope.store import open_store

    with open_store(db, write=True) as st:
        sealed = st.seal()
        merged = st.compact()
    total = sum(merged.values())
    if sealed:
        print(f"sealed {sealed:,} staged records")
    print(f"compacted {total} files" + (
        " (" + ", ".join(f"{k}: {v}" for k, v in sorted(merged.items())) + ")"
        if merged else ""))


@store_app.command("retention")
def retention_cmd(
    db: DbOpt = None,
    retention: Annotated[str | None, typer.Option(
        "--retention", help="keep raw records and counters this long (e.g. 7d); remembered"
    )] = None,
    retention_1m: Annotated[str | None, typer.Option(
        "--retention-1m", help="keep the 1-minute aggregates this long (e.g. 90d)")] = None,
    now: Annotated[str | None, typer.Option(
        "--now", help="apply as of this time (default: now)")] = None,
) -> None:
    """Drop partitions older than the retention (embedded: and that arrived longer ago)."""
    from fabricscope.store import open_store
    from fabricscope.timeutil import parse_duration, parse_time

    ret = parse_duration(retention, field="--retention") if retention else None
    ret1 = parse_duration(retention_1m, field="--retention-1m") if retention_1m else None
    at = parse_time(now, field="--now") if now else None
    with open_store(db, write=True, retention=ret, retention_1m=ret1) as st:
        dropped = st.apply_retention(at)
    if dropped:
        print("dropped " + ", ".join(f"{k}: {v:,} rows" for k, v in sorted(dropped.items())))
    else:
        print("nothing to drop")


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")

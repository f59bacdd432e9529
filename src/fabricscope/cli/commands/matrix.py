"""``fabricscope matrix``: who talks to whom over which hosts."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fabricscope.cli.common import (
    DbOpt,
    InventoryOpt,
    JsonOpt,
    SinceOpt,
    UntilOpt,
    console,
    human_bytes,
    open_source,
    print_json,
)

ORDER = 60


def register(app: typer.Typer) -> None:
    @app.command("matrix")
    def matrix_cmd(
        by: Annotated[str, typer.Option("--by", help="tenant, endpoint or host")] = "tenant",
        limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 50,
        since: SinceOpt = None,
        until: UntilOpt = None,
        db: DbOpt = None,
        inventory: InventoryOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Traffic between tenants, endpoints or hosts in the window, with the host pairs
        (tunnel endpoints) that carried it. Exit code 1 when the window is empty."""
        from fabricscope.errors import NotFound, UsageError
        from fabricscope.query._matrix import MatrixQuery, matrix
        from fabricscope.query.common import Window, load_inventory

        if by not in ("tenant", "endpoint", "host"):
            raise UsageError("--by must be tenant, endpoint or host")
        q = MatrixQuery(window=Window.parse(since, until), by=by, limit=limit)  # type: ignore[arg-type]
        inv = load_inventory(inventory)
        with open_source(db) as store:
            result = matrix(store, inv, q)
        if json_out:
            print_json(result)
        else:
            render(result)
        if not result["rows"]:
            raise NotFound("no traffic in the window")


def render(r: dict[str, Any]) -> None:
    from rich.table import Table

    con = console()
    q = r["query"]
    t = Table(title=f"traffic by {q['by']}, {q['since']} .. {q['until']}",
              title_justify="left", header_style="bold")
    for c in ("from", "to", "est bytes", "share", "samples", "over hosts"):
        t.add_column(c)
    for x in r["rows"]:
        hp = ", ".join(f"{h['src_host']}>{h['dst_host']}" for h in x["host_pairs"][:3])
        t.add_row(str(x["src"]), str(x["dst"]), human_bytes(x["est_bytes"]),
                  f"{x['share']:.1%}", str(x["samples"]), hp or "-")
    con.print(t)

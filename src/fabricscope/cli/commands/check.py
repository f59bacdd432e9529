"""``fabricscope check chains``: service-chain conformance."""

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
    open_source,
    print_json,
)

ORDER = 70

check_app = typer.Typer(help="Conformance checks.", no_args_is_help=True)


@check_app.command("chains")
def chains_cmd(
    chain: Annotated[str | None, typer.Option("--chain", help="only this chain")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    db: DbOpt = None,
    inventory: InventoryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Traffic a chain's classifier selects that bypassed one of its VNFs, and asymmetric
    paths through stateful VNFs. Exit code 1 when a violation is found."""
    from fabricscope.errors import NotFound
    from fabricscope.query._chains import ChainCheckQuery, check_chains
    from fabricscope.query.common import Window, load_inventory

    q = ChainCheckQuery(window=Window.parse(since, until), chain=chain)
    inv = load_inventory(inventory)
    with open_source(db) as store:
        result = check_chains(store, inv, q)
    if json_out:
        print_json(result)
    else:
        render(result)
    if not result["ok"]:
        raise NotFound(f"{len(result['violations'])} chain violation(s)")


def render(r: dict[str, Any]) -> None:
    con = console()
    con.print(f"[bold]check chains[/] {r['query']['since']} .. {r['query']['until']}: "
              f"{len(r['chains'])} chain version(s), {r['flows_checked']} flow path(s) checked")
    for v in r["violations"]:
        what = (f"bypassed group {v['group']} {v['vnfs']}" if v["kind"] == "bypass"
                else f"asymmetric through {v['vnf']}")
        con.print(f"  [red]{v['chain']}[/]: {v['src']}:{v['sport']} > {v['dst']}:{v['dport']} "
                  f"{what}; hosts {' -> '.join(v['hosts'])} ({v['samples']} samples, "
                  f"{v['first_seen']} .. {v['last_seen']})")
    for u in r["unverifiable"][:10]:
        con.print(f"  [dim]unverifiable: {u['src']} > {u['dst']} ({u['reason']})[/]")
    if r["ok"]:
        con.print("[green]no violation[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(check_app, name="check")

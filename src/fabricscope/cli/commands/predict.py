"""``fabricscope predict``: the paths a flow would take, from topology and chain rules."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fabricscope.cli.common import (
    DbOpt,
    InventoryOpt,
    JsonOpt,
    SinceOpt,
    UntilOpt,
    check_ip,
    console,
    open_source,
    print_json,
    proto_number,
)

ORDER = 65


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        src: Annotated[str, typer.Option("--src", help="inner (tenant) source IP")],
        dst: Annotated[str, typer.Option("--dst", help="inner (tenant) destination IP")],
        dport: Annotated[int | None, typer.Option("--dport", min=0, max=65535)] = None,
        sport: Annotated[int | None, typer.Option("--sport", min=0, max=65535)] = None,
        proto: Annotated[str | None, typer.Option("--proto")] = None,
        vni: Annotated[int | None, typer.Option("--vni")] = None,
        at: Annotated[str | None, typer.Option("--at", help="time of the inventory to use "
                                                "(default: --until, or now)")] = None,
        observed: Annotated[bool, typer.Option("--observed",
                            help="compare with what trace saw in the window")] = False,
        since: SinceOpt = None,
        until: UntilOpt = None,
        db: DbOpt = None,
        inventory: InventoryOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """The VNFs the chain rules send a flow through and every equal-cost underlay path
        between the hosts. With --observed, the traced paths must be among the predicted
        ones; anything else is reported and the exit code is 1."""
        from fabricscope.errors import NotFound
        from fabricscope.query._predict import PredictQuery, compare, predict
        from fabricscope.query.common import Window, load_inventory
        from fabricscope.timeutil import parse_time

        w = Window.parse(since, until)
        when = parse_time(at, field="--at") if at else w.until
        q = PredictQuery(src=check_ip(src, "--src"), dst=check_ip(dst, "--dst"), at=when,
                         dport=dport, sport=sport, proto=proto_number(proto), vni=vni)
        inv = load_inventory(inventory)
        result = predict(inv, q)
        if observed:
            from fabricscope.correlate.health import HealthSource
            from fabricscope.query._trace import TraceQuery, trace

            tq = TraceQuery(src=q.src, dst=q.dst, window=w, sport=sport, dport=dport,
                            proto=q.proto, vni=vni)
            with open_source(db) as store:
                tr = trace(store, inv, tq, health=HealthSource(store).hop)
            result["observed"] = compare(result, tr)
            result["observed"]["paths"] = len(tr["paths"])
        if json_out:
            print_json(result)
        else:
            render(result)
        if observed and not result["observed"]["ok"]:
            raise NotFound("observed paths differ from the prediction")


def render(r: dict[str, Any]) -> None:
    from rich.tree import Tree

    con = console()
    s, d = r["src"], r["dst"]
    con.print(f"[bold]predict[/] {s['ip']} ({s['endpoint']} on {s['host']}) -> "
              f"{d['ip']} ({d['endpoint']} on {d['host']})")
    con.print(f"  chains: {', '.join(r['chains']) or 'none'}")
    for k, alt in enumerate(r["alternatives"], 1):
        t = Tree(f"[bold]alternative {k}[/]: VNFs {' -> '.join(alt['vnfs']) or 'none'}; "
                 f"hosts {' -> '.join(alt['hosts'])}")
        for leg in alt["segments"]:
            seg = t.add(f"{leg['src_host']} -> {leg['dst_host']}: "
                        f"{len(leg['paths'])} equal-cost path(s)")
            for p in leg["paths"]:
                seg.add(" -> ".join(f"{h['device']}({h['in_if']}>{h['out_if']})" for h in p)
                        or "same host")
        con.print(t)
    if "observed" in r:
        o = r["observed"]
        color = "green" if o["ok"] else "red"
        con.print(f"[{color}]observed: {o['paths']} path(s); "
                  f"{'all predicted' if o['ok'] else 'NOT all predicted'}[/]")
        for p in o["problems"]:
            con.print(f"  [red]{p}[/]")

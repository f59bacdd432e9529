"""``fabricscope impact``: who crossed a device, an interface or a link."""

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
    human_count,
    open_source,
    print_json,
)

ORDER = 55


def register(app: typer.Typer) -> None:
    @app.command("impact")
    def impact_cmd(
        device: Annotated[str, typer.Option("--device", "-d",
                          help="device name (inventory) or sFlow agent IP")],
        interface: Annotated[str | None, typer.Option("--interface", "-I",
                             help="interface name (inventory) or ifIndex; with a link in "
                                  "the inventory, both ends count")] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1,
                         help="flows and endpoints to list")] = 20,
        since: SinceOpt = None,
        until: UntilOpt = None,
        db: DbOpt = None,
        inventory: InventoryOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Tenants, endpoints, VNIs and inner flows that crossed a device or interface in
        the window, by estimated bytes, with the sampling error (95%) of each estimate.

        Exit code 1 when nothing crossed it.
        """
        from fabricscope.errors import NotFound
        from fabricscope.query._impact import ImpactQuery, impact
        from fabricscope.query.common import Window, load_inventory

        q = ImpactQuery(device=device, interface=interface, limit=limit,
                        window=Window.parse(since, until))
        inv = load_inventory(inventory)
        with open_source(db) as store:
            result = impact(store, inv, q)
            try:
                from fabricscope.correlate.health import HealthSource

                if result["ifindex"] is not None:
                    result["health"] = HealthSource(store).interface(
                        result["agent"], result["ifindex"], q.window.since, q.window.until)
            except ImportError:
                pass
        if json_out:
            print_json(result)
        else:
            render(result)
        if result["samples"] == 0:
            raise NotFound(f"no traffic sampled at {device}"
                           + (f" {interface}" if interface else "") + " in the window")


def render(r: dict[str, Any]) -> None:
    from rich.table import Table

    con = console()
    where = r["device"] + (f" {r['interface']}" if r.get("interface") else "")
    con.print(f"[bold]impact[/] {where} (agent {r['agent']})   "
              f"{r['query']['since']} .. {r['query']['until']}   {r['samples']} samples")
    if r.get("link"):
        con.print(f"  link {r['link']['link']} to {r['link']['far_end']}")
    if r.get("health"):
        h = r["health"]
        con.print(f"  health: {h.get('status')} {', '.join(h.get('flags') or [])}")

    def table(title: str, rows: list[dict[str, Any]], cols: list[str]) -> None:
        t = Table(title=title, title_justify="left", header_style="bold")
        for c in [*cols, "samples", "est bytes", "share", "±%"]:
            t.add_column(c)
        for x in rows:
            t.add_row(*[str(x.get(c) if x.get(c) is not None else "-") for c in cols],
                      str(x["samples"]), human_bytes(x["est_bytes"]),
                      f"{x['share']:.1%}", str(x.get("error_pct") or "-"))
        con.print(t)

    table("tenants", r["tenants"], ["tenant", "flows"])
    table("VNIs", r["vnis"], ["vni", "encap", "network", "tenant"])
    table("endpoints", r["endpoints"], ["ip", "endpoint", "tenant", "host"])
    t = Table(title="flows", title_justify="left", header_style="bold")
    for c in ("flow", "tenant", "hosts", "samples", "est", "share", "±%"):
        t.add_column(c)
    for f in r["flows"]:
        flow = f"{f['src']}:{f['sport'] or ''} > {f['dst']}:{f['dport'] or ''} p{f['proto']}"
        hosts = f"{f['src_host']} > {f['dst_host']}" if f.get("src_host") else "-"
        t.add_row(flow, str(f["tenant"] or "-"), hosts, str(f["samples"]),
                  f"{human_count(f['est_packets'])} pkts {human_bytes(f['est_bytes'])}",
                  f"{f['share']:.1%}", str(f["error_pct"] or "-"))
    con.print(t)

"""``fabricscope trace``: the hop-by-hop path of an overlay flow."""

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
    human_bytes,
    human_count,
    open_source,
    print_json,
    proto_number,
)

ORDER = 50


def register(app: typer.Typer) -> None:
    @app.command("trace")
    def trace_cmd(
        src: Annotated[str, typer.Option("--src", help="inner (tenant) source IP")],
        dst: Annotated[str, typer.Option("--dst", help="inner (tenant) destination IP")],
        sport: Annotated[int | None, typer.Option("--sport", min=0, max=65535)] = None,
        dport: Annotated[int | None, typer.Option("--dport", min=0, max=65535)] = None,
        proto: Annotated[str | None, typer.Option("--proto", help="tcp, udp, icmp, number")
                         ] = None,
        vni: Annotated[int | None, typer.Option("--vni", help="only this VNI/VSID/key")
                       ] = None,
        both: Annotated[bool, typer.Option("--both", help="also the reverse direction")
                        ] = False,
        since: SinceOpt = None,
        until: UntilOpt = None,
        db: DbOpt = None,
        inventory: InventoryOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """The path of an overlay flow: VNFs in order, tunnel segments, physical hops
        (device, in/out interface), ECMP alternatives, estimates and the health of every hop.

        Exit code 1 when no record of the flow is in the window.
        """
        from fabricscope.correlate.health import HealthSource
        from fabricscope.errors import NotFound
        from fabricscope.query._trace import TraceQuery, trace
        from fabricscope.query.common import Window, load_inventory

        q = TraceQuery(src=check_ip(src, "--src"), dst=check_ip(dst, "--dst"),
                       window=Window.parse(since, until), sport=sport, dport=dport,
                       proto=proto_number(proto), vni=vni, both=both)
        inv = load_inventory(inventory)
        with open_source(db) as store:
            result = trace(store, inv, q, health=HealthSource(store).hop)
        if json_out:
            print_json(result)
        else:
            render(result)
        if not result["paths"]:
            raise NotFound(f"no record of {q.src} -> {q.dst} between "
                           f"{result['query']['since']} and {result['query']['until']}")


def _who(e: dict[str, Any]) -> str:
    parts = [e["ip"]]
    if e.get("endpoint"):
        parts.append(f"[bold]{e['endpoint']}[/]")
    if e.get("tenant"):
        parts.append(f"tenant {e['tenant']}")
    if e.get("host"):
        parts.append(f"on {e['host']}")
    return " ".join(parts)


def _health_text(h: dict[str, Any]) -> str:
    st = h.get("status", "unknown")
    color = {"ok": "green", "warning": "yellow", "critical": "red"}.get(st, "dim")
    flags = ", ".join(h.get("flags") or [])
    return f"[{color}]{st}[/]" + (f" ({flags})" if flags else "")


def render(result: dict[str, Any]) -> None:
    from rich.tree import Tree

    con = console()
    q = result["query"]
    flow = f"{q['src']} -> {q['dst']}"
    if q.get("proto") is not None:
        flow += f" proto {q['proto']}"
    if q.get("dport") is not None:
        flow += f" dport {q['dport']}"
    con.print(f"[bold]trace[/] {flow}   {q['since']} .. {q['until']}")
    con.print(f"  src: {_who(result['src'])}")
    con.print(f"  dst: {_who(result['dst'])}")
    if not result["paths"]:
        con.print("[yellow]no samples of this flow in the window[/]")
        return
    for k, p in enumerate(result["paths"], 1):
        via = " -> ".join(p["vnfs"]) if p["vnfs"] else "no VNF"
        t = Tree(f"[bold]path {k}[/] ({p['direction']}, {p['share']:.0%} of samples, "
                 f"{p['flows']} flow(s)) via {via}: {p['samples']} samples, "
                 f"~{human_count(p['est_packets'])} pkts, ~{human_bytes(p['est_bytes'])}, "
                 f"{p['first_seen']} .. {p['last_seen']}"
                 + ("  [yellow](partial: no sample of the rest of the path)[/]"
                    if p.get("complete") is False else ""))
        for i, s in enumerate(p["segments"]):
            ports = ", ".join(str(sp) for sp, _ in s["outer_ports"][:4])
            seg = t.add(f"[cyan]{s['encap'] or 'no tunnel'}[/] vni {s['vni']}"
                        f"{' (' + s['network'] + ')' if s.get('network') else ''}: "
                        f"[bold]{s['src_host']}[/] ({s['outer_src']}) -> "
                        f"[bold]{s['dst_host']}[/] ({s['outer_dst']})"
                        + (f"  outer sport {ports}" if ports else ""))
            for h in s["hops"]:
                mark = "[dim](inferred)[/] " if h["inferred"] else ""
                cand = f" or {', '.join(h['candidates'])}" if h.get("candidates") else ""
                est = ("" if h["inferred"] else
                       f"  {h['samples']} samples ~{human_bytes(h['est_bytes'])}")
                seg.add(f"{mark}[bold]{h['device']}[/]{cand} {h['in_if'] or '?'} -> "
                        f"{h['out_if'] or '?'}{est}  {_health_text(h['health'])}")
            if i < len(p["vnfs"]):
                t.add(f"[magenta]VNF {p['vnfs'][i]}[/] on {s['dst_host']}")
        con.print(t)
    for note in result.get("notes", []):
        con.print(f"[dim]note: {note}[/]")

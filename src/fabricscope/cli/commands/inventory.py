"""``fabricscope inventory``: load, show, diff and validate the overlay/underlay inventory.

``inventory_app`` is the sub-app; another command module (e.g. the importers' ``inventory
import SOURCE``) adds its own subcommand to it with ``inventory_app.command("import")``
from a module with ORDER > 40 (sub-apps are built when the program runs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fabricscope.errors import FabricscopeError, NotFound, UsageError

if TYPE_CHECKING:
    from fabricscope.inventory.index import Inventory
    from fabricscope.inventory.model import Fact

ORDER = 40

inventory_app = typer.Typer(
    name="inventory",
    help="The overlay/underlay inventory: what was where, when (hosts, VMs, VNFs, chains).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DirOpt = Annotated[
    Path | None,
    typer.Option("--dir", help="Inventory history directory (default: $FABRICSCOPE_HOME/"
                 "inventory or the user data directory).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@contextmanager
def _user_errors() -> Iterator[None]:
    """Errors for people: one line on stderr and the documented exit code."""
    try:
        yield
    except FabricscopeError as exc:
        typer.echo(f"fabricscope: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _history(directory: Path | None) -> Any:
    from fabricscope.inventory.history import InventoryHistory, default_dir

    return InventoryHistory(directory if directory is not None else default_dir())


def _time(text: str | None, option: str) -> datetime | None:
    from fabricscope.timeutil import parse_time

    return None if text is None else parse_time(text, field=option)


def _kinds(kind: str | None) -> list[str]:
    from fabricscope.inventory.model import KINDS, SINGULAR

    if kind is None:
        return list(KINDS)
    out = []
    for k in kind.split(","):
        k = k.strip().lower()
        match = next((p for p in KINDS if k in (p, SINGULAR[p])), None)
        if match is None:
            raise UsageError(f"--kind: unknown kind {k!r}; one of {', '.join(KINDS)}")
        out.append(match)
    return out


def _source_inventory(directory: Path | None, file: Path | None) -> tuple[Inventory, str]:
    """The inventory to show: one file (checked), or the history directory."""
    if file is not None:
        from fabricscope.inventory.fileformat import read_file

        return read_file(file), str(file)
    hist = _history(directory)
    if not hist.snapshots():
        raise NotFound(f"no inventory loaded in {hist.directory} "
                       "(fabricscope inventory load FILE, or --file FILE)")
    inv: Inventory = hist.current()
    return inv, str(hist.directory)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


# ---------------------------------------------------------------------------- load


def load(
    file: Annotated[Path, typer.Argument(help="Inventory file (YAML or JSON).",
                                         show_default=False)],
    directory: DirOpt = None,
    at: Annotated[str | None, typer.Option("--at", help="When this content became true "
                  "(RFC 3339, -2h, now; default now).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Name of the history this "
                      "file continues (default: file:ABSOLUTE_PATH).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate FILE and record it as a new inventory snapshot; print what changed."""
    with _user_errors():
        hist = _history(directory)
        res = hist.load_file(file, at=_time(at, "--at"), source=source)
        if as_json:
            _print_json(res.to_dict())
            return
        for w in res.warnings:
            typer.echo(f"fabricscope: warning: {w}", err=True)
        snap = res.snapshot
        from fabricscope.inventory.addr import format_time

        if res.unchanged:
            typer.echo(f"{file}: unchanged since snapshot {snap.seq} "
                       f"({format_time(snap.at)}); nothing recorded")
            return
        counts = ", ".join(f"{n} {k}" for k, n in snap.counts.items() if n)
        typer.echo(f"{file}: recorded snapshot {snap.seq} at {format_time(snap.at)} "
                   f"in {hist.directory}")
        typer.echo(f"  holds {counts or 'nothing'}")
        s = res.summary()
        if res.first:
            typer.echo(f"  first load of {snap.source}")
            return
        typer.echo(f"  {s['added']} added, {s['changed']} changed, {s['removed']} removed")
        for c in res.changes:
            typer.echo(f"  {_change_line(c)}")


def _change_line(c: Any) -> str:
    from fabricscope.inventory.model import SINGULAR

    sign = {"added": "+", "removed": "-", "changed": "~"}[c.op]
    text = f"{sign} {SINGULAR.get(c.kind, c.kind)} {c.key}"
    if c.fields:
        text += ": " + "; ".join(str(f) for f in c.fields)
    return text


# ---------------------------------------------------------------------------- show


def show(
    at: Annotated[str | None, typer.Option("--at", help="Show the inventory as it was at "
                  "this time (RFC 3339, -2h, now; default now).")] = None,
    all_versions: Annotated[bool, typer.Option("--all", help="Every version of every "
                            "fact, with its validity, instead of one instant.")] = False,
    kind: Annotated[str | None, typer.Option("--kind", help="Only these kinds (comma "
                    "separated): tenants, networks, hosts, devices, links, endpoints, vnfs, "
                    "chains.")] = None,
    directory: DirOpt = None,
    file: Annotated[Path | None, typer.Option("--file", help="Show an inventory file "
                    "instead of the loaded history.", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the inventory at a time (tables, or --json in the file format)."""
    with _user_errors():
        if all_versions and at is not None:
            raise UsageError("--all and --at do not go together")
        from datetime import UTC

        from fabricscope.inventory.addr import format_time
        from fabricscope.inventory.fileformat import document_from_facts

        t = _time(at, "--at") or datetime.now(UTC)
        kinds = _kinds(kind)
        inv, origin = _source_inventory(directory, file)
        facts = [f for k in kinds for f in inv.facts(k, t, all_versions=all_versions)]
        if as_json:
            meta = {"generated_by": "fabricscope inventory show", "from": origin}
            if not all_versions:
                meta["at"] = format_time(t) or ""
            _print_json(document_from_facts(facts, metadata=meta))
            return
        _print_tables(facts, kinds, title_at=None if all_versions else t)


def _valid(f: Fact) -> str:
    from fabricscope.inventory.addr import format_time

    a, b = format_time(f.valid_from), format_time(f.valid_to)
    if a and b:
        return f"{a} .. {b}"
    if a:
        return f"since {a}"
    if b:
        return f"until {b}"
    return ""


def _columns(f: Fact) -> dict[str, str]:
    from fabricscope.inventory.addr import PROTOCOL_NAMES, format_speed
    from fabricscope.inventory.model import (
        Chain,
        Device,
        Endpoint,
        Host,
        Link,
        Network,
        Tenant,
        Vnf,
    )

    def j(xs: Any) -> str:
        return ", ".join(str(x) for x in xs)

    if isinstance(f, Tenant):
        return {"name": f.name, "description": f.description or ""}
    if isinstance(f, Network):
        return {"name": f.name, "tenant": f.tenant or "", "encap": f.encap,
                "vni": "" if f.vni is None else str(f.vni), "subnets": j(f.subnets)}
    if isinstance(f, Host):
        return {"name": f.name, "role": f.role, "tunnel IPs": j(f.tunnel_ips),
                "mgmt": f.mgmt_ip or "",
                "cabling": j(f"{n.name}->{n.device}:{n.interface}" if n.device else n.name
                             for n in f.nics)}
    if isinstance(f, Device):
        return {"name": f.name, "role": f.role, "agent": f.agent or "", "host": f.host or "",
                "interfaces": j(f"{i.ifindex if i.ifindex is not None else '?'}:{i.name}"
                                + (f" {format_speed(i.speed)}" if i.speed else "")
                                for i in f.interfaces)}
    if isinstance(f, Link):
        return {"name": f.name or "", "a": f.a.label, "b": f.b.label}
    if isinstance(f, Endpoint):
        return {"name": f.name, "kind": f.kind, "tenant": f.tenant or "",
                "network": f.network or "", "IPs": j(f.ips), "MAC": f.mac or "",
                "host": f.host or ""}
    if isinstance(f, Vnf):
        return {"name": f.name, "kind": f.kind, "tenant": f.tenant or "",
                "ports": j(f"{p.endpoint} ({p.role})" for p in f.ports)}
    if isinstance(f, Chain):
        cls = []
        for c in f.classifiers:
            proto = "" if c.protocol is None else PROTOCOL_NAMES.get(c.protocol, str(c.protocol))
            dports = ""
            if c.destination_port_range_min is not None:
                lo, hi = c.destination_port_range_min, c.destination_port_range_max
                dports = f":{lo}" if hi in (None, lo) else f":{lo}-{hi}"
            cls.append(" ".join(x for x in (
                c.ethertype, proto, f"{c.source_ip_prefix or '*'} -> "
                f"{c.destination_ip_prefix or '*'}{dports}",
                f"from {c.logical_source_port}" if c.logical_source_port else "") if x))
        return {"name": f.name, "tenant": f.tenant or "",
                "id": "" if f.chain_id is None else str(f.chain_id),
                "VNFs": " -> ".join("|".join(g.vnfs) for g in f.groups),
                "classifiers": "; ".join(cls)}
    return {"key": f.key}


def _print_tables(facts: list[Fact], kinds: list[str], title_at: datetime | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from fabricscope.inventory.addr import format_time

    console = Console(soft_wrap=False)
    if not facts:
        typer.echo("nothing" + (f" valid at {format_time(title_at)}" if title_at else ""))
        return
    for kind in kinds:
        rows = [f for f in facts if kind == f.KIND]
        if not rows:
            continue
        title = f"{kind} ({len(rows)})"
        if title_at is not None:
            title += f" at {format_time(title_at)}"
        table = Table(title=title, title_justify="left")
        cols = list(_columns(rows[0]))
        show_valid = any(f.valid_from or f.valid_to for f in rows)
        show_learned = any(f.learned for f in rows)
        for c in cols:
            table.add_column(c, overflow="fold")
        if show_valid:
            table.add_column("valid", overflow="fold")
        if show_learned:
            table.add_column("learned", justify="right")
        for f in rows:
            vals = list(_columns(f).values())
            if show_valid:
                vals.append(_valid(f))
            if show_learned:
                vals.append(f"{f.evidence} samples" if f.learned else "")
            table.add_row(*vals)
        console.print(table)


# ---------------------------------------------------------------------------- diff


def diff(
    t1: Annotated[str, typer.Argument(help="From (RFC 3339, -2h, now).", show_default=False)],
    t2: Annotated[str, typer.Argument(help="To (RFC 3339, -2h, now).", show_default=False)],
    kind: Annotated[str | None, typer.Option("--kind", help="Only these kinds.")] = None,
    directory: DirOpt = None,
    file: Annotated[Path | None, typer.Option("--file", help="Diff within an inventory "
                    "file instead of the loaded history.", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """What was added, removed or changed between T1 and T2, and when."""
    with _user_errors():
        from fabricscope.inventory.changes import diff_times

        a = _time(t1, "T1")
        b = _time(t2, "T2")
        assert a is not None and b is not None
        inv, _ = _source_inventory(directory, file)
        kinds = set(_kinds(kind))
        changes = [c for c in diff_times(inv, a, b) if c.kind in kinds]
        if as_json:
            from fabricscope.inventory.addr import format_time

            _print_json({"from": format_time(a), "to": format_time(b),
                         "changes": [c.to_dict() for c in changes]})
            return
        if not changes:
            typer.echo("no changes")
            return
        from fabricscope.inventory.addr import format_time

        for c in changes:
            when = format_time(c.at) if c.at is not None else "?"
            typer.echo(f"{when}  {_change_line(c)}")


# ---------------------------------------------------------------------------- validate


def validate(
    file: Annotated[Path, typer.Argument(help="Inventory file (YAML or JSON).",
                                         show_default=False)],
    directory: Annotated[Path | None, typer.Option("--dir", help="Also resolve references "
                         "against the inventory already loaded here.",
                         show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check FILE (schema, references, times); print every problem as file:line: field.

    Exit code 0 when the file is valid, 2 when it is not.
    """
    from fabricscope.inventory.fileformat import InventoryFileError, check_file

    with _user_errors():
        external = None
        if directory is not None:
            hist = _history(directory)
            external = hist.current(exclude_source=f"file:{file.resolve()}")
        try:
            doc = check_file(file, external=external)
            problems = doc.problems
        except InventoryFileError as exc:  # YAML syntax errors, duplicate keys
            doc = None
            problems = exc.problems
        ok = doc is not None and doc.ok
        if as_json:
            counts: dict[str, int] = {}
            if doc is not None and doc.ok:
                for f in doc.facts:
                    counts[f.KIND] = counts.get(f.KIND, 0) + 1
            _print_json({"file": str(file), "ok": ok, "counts": counts,
                         "problems": [p.to_dict() for p in problems]})
        else:
            for p in problems:
                typer.echo(str(p), err=p.severity == "error")
            if ok and doc is not None:
                inv = doc.inventory()
                n: dict[str, int] = {}
                for f in inv:
                    n[f.KIND] = n.get(f.KIND, 0) + 1
                summary = ", ".join(f"{v} {k}" for k, v in n.items())
                typer.echo(f"{file}: ok ({summary or 'empty'})")
            else:
                errs = sum(1 for p in problems if p.severity == "error")
                typer.echo(f"fabricscope: error: {file}: {errs} problem"
                           f"{'s' if errs != 1 else ''}", err=True)
        if not ok:
            raise typer.Exit(2)


# ---------------------------------------------------------------------------- history


def history(
    directory: DirOpt = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the recorded snapshots (each load or import) and what each changed."""
    with _user_errors():
        from fabricscope.inventory.addr import format_time

        hist = _history(directory)
        snaps = hist.snapshots(source)
        if as_json:
            _print_json([s.to_dict() for s in snaps])
            return
        if not snaps:
            raise NotFound(f"no inventory loaded in {hist.directory}")
        for s in snaps:
            ops = {"added": 0, "changed": 0, "removed": 0}
            for c in s.changes:
                ops[c.op] += 1
            typer.echo(f"{s.seq:>4}  {format_time(s.at)}  {s.source}  "
                       f"+{ops['added']} ~{ops['changed']} -{ops['removed']}")


def register(app: typer.Typer) -> None:
    inventory_app.command("load")(load)
    inventory_app.command("show")(show)
    inventory_app.command("diff")(diff)
    inventory_app.command("validate")(validate)
    inventory_app.command("history")(history)
    app.add_typer(inventory_app, name="inventory")

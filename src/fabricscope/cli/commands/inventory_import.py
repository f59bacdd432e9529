"""``fabricscope inventory import SOURCE``: read the inventory from OpenStack, OVN, Kubernetes,
LLDP or sFlow counters and record it as a snapshot of that source (once, or with
``--watch INTERVAL`` on a schedule). Registered on the ``inventory`` sub-app after
cli/commands/inventory.py (ORDER 40) has created it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from fabricscope.errors import UsageError

ORDER = 41

SOURCES = ("openstack", "ovn", "kubernetes", "lldp", "sflow")

_OPTIONS_OF = {
    "openstack": {"--cloud", "--auth-url", "--username", "--password", "--project",
                  "--user-domain", "--project-domain", "--region", "--no-servers"},
    "ovn": {"--nb", "--sb", "--timeout"},
    "kubernetes": {"--kubeconfig", "--context", "--server", "--token", "--timeout"},
    "lldp": {"--file", "--run", "--device", "--socket"},
    "sflow": {"--db", "--capture", "--since", "--snmp", "--community", "--timeout"},
}


def import_source(
    source: Annotated[str, typer.Argument(
        help="Where to read from: openstack, ovn, kubernetes, lldp or sflow.",
        show_default=False)],
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="Inventory history directory (default: $FABRICSCOPE_HOME/inventory "
        "or the user data directory).", show_default=False)] = None,
    watch: Annotated[str | None, typer.Option(
        "--watch", help="Import again every INTERVAL (60s, 5m, 1h) until Ctrl-C/SIGTERM.",
        show_default=False)] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Label of this source's history (SOURCE:NAME; default from the "
        "connection: the cloud, the NB address, the context, the device).",
        show_default=False)] = None,
    allow_empty: Annotated[bool, typer.Option(
        "--allow-empty", help="Record an import that found nothing even when the last "
        "snapshot of this source held facts (they all end).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object per "
                                          "import) for scripts.")] = False,
    # openstack
    cloud: Annotated[str | None, typer.Option(
        "--cloud", help="[openstack] clouds.yaml entry (default: OS_CLOUD, or the OS_* "
        "environment variables).", show_default=False)] = None,
    auth_url: Annotated[str | None, typer.Option(
        "--auth-url", help="[openstack] Keystone URL, instead of clouds.yaml.",
        show_default=False)] = None,
    username: Annotated[str | None, typer.Option(
        "--username", help="[openstack] with --auth-url (default: OS_USERNAME).",
        show_default=False)] = None,
    password: Annotated[str | None, typer.Option(
        "--password", help="[openstack] with --auth-url (default: OS_PASSWORD).",
        show_default=False)] = None,
    project: Annotated[str | None, typer.Option(
        "--project", help="[openstack] project name with --auth-url (default: "
        "OS_PROJECT_NAME).", show_default=False)] = None,
    user_domain: Annotated[str, typer.Option(
        "--user-domain", help="[openstack] user domain name with --auth-url.")] = "Default",
    project_domain: Annotated[str, typer.Option(
        "--project-domain", help="[openstack] project domain name with --auth-url."
    )] = "Default",
    region: Annotated[str | None, typer.Option(
        "--region", help="[openstack] region name.", show_default=False)] = None,
    no_servers: Annotated[bool, typer.Option(
        "--no-servers", help="[openstack] do not ask Nova for server names (VNFs are then "
        "named by port pair).")] = False,
    # ovn
    nb: Annotated[str | None, typer.Option(
        "--nb", help="[ovn] Northbound DB (tcp:IP:PORT, ssl:..., unix:PATH; default "
        "OVN_NB_DB or unix:/var/run/ovn/ovnnb_db.sock).", show_default=False)] = None,
    sb: Annotated[str | None, typer.Option(
        "--sb", help="[ovn] Southbound DB (default OVN_SB_DB or "
        "unix:/var/run/ovn/ovnsb_db.sock).", show_default=False)] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="[ovn, kubernetes, sflow --snmp] seconds to wait for an answer."
    )] = 10.0,
    # kubernetes
    kubeconfig: Annotated[Path | None, typer.Option(
        "--kubeconfig", help="[kubernetes] kubeconfig file (default: KUBECONFIG, "
        "~/.kube/config, or the in-cluster service account).", show_default=False)] = None,
    context: Annotated[str | None, typer.Option(
        "--context", help="[kubernetes] kubeconfig context.", show_default=False)] = None,
    server: Annotated[str | None, typer.Option(
        "--server", help="[kubernetes] API server URL, instead of a kubeconfig.",
        show_default=False)] = None,
    token: Annotated[str | None, typer.Option(
        "--token", help="[kubernetes] bearer token with --server (default: KUBE_TOKEN).",
        show_default=False)] = None,
    # lldp
    file: Annotated[list[Path] | None, typer.Option(
        "--file", help="[lldp] output of `lldpcli -f json0 show neighbors details` "
        "(repeat for several devices; the device is --device, else the file's stem).",
        show_default=False)] = None,
    run: Annotated[bool, typer.Option(
        "--run", help="[lldp] run lldpcli here (the default without --file).")] = False,
    device: Annotated[str | None, typer.Option(
        "--device", help="[lldp] name of the system the neighbours were seen from "
        "(default: lldpd's own system name with --run, the file's stem with --file).",
        show_default=False)] = None,
    socket: Annotated[str | None, typer.Option(
        "--socket", help="[lldp] lldpd control socket for --run (lldpcli -u).",
        show_default=False)] = None,
    # sflow
    db: Annotated[str | None, typer.Option(
        "--db", help="[sflow] store to read counter records from (default: the embedded "
        "store).", show_default=False)] = None,
    capture: Annotated[list[Path] | None, typer.Option(
        "--capture", help="[sflow] decode counter records from this pcap/pcapng instead "
        "of a store (repeatable).", show_default=False)] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="[sflow] only counter records since (RFC 3339, -1h; default -1h "
        "for a store).", show_default=False)] = None,
    snmp: Annotated[list[str] | None, typer.Option(
        "--snmp", help="[sflow] also walk IF-MIB ifName over SNMPv2c at HOST[:PORT] "
        "(needs pysnmp; repeatable).", show_default=False)] = None,
    community: Annotated[str, typer.Option(
        "--community", help="[sflow] SNMPv2c community for --snmp.")] = "public",
) -> None:
    """Read the inventory from SOURCE and record it as a snapshot; print what changed.

    Each SOURCE keeps its own history (openstack:CLOUD, ovn:NB, kubernetes:CONTEXT,
    lldp:DEVICE, sflow:...): facts that disappear from a source end at the import that no
    longer saw them; nothing is ever deleted. See docs/import/SOURCE.md for the fields read.
    """
    from fabricscope.cli.commands.inventory import _history, _print_json, _user_errors

    with _user_errors():
        src = source.strip().lower()
        if src not in SOURCES:
            raise UsageError(f"SOURCE: unknown source {source!r}; one of {', '.join(SOURCES)}")
        given = _given_options(locals())
        wrong = sorted(o for o in given if o not in _OPTIONS_OF[src])
        if wrong:
            raise UsageError(f"{wrong[0]} does not apply to {src} (its options: "
                             f"{', '.join(sorted(_OPTIONS_OF[src]))})")
        from fabricscope.inventory.importers.base import ImportRunner, parse_interval

        interval = parse_interval(watch) if watch is not None else None
        importer = _importer(src, name=name, cloud=cloud, auth_url=auth_url,
                             username=username, password=password, project=project,
                             user_domain=user_domain, project_domain=project_domain,
                             region=region, no_servers=no_servers, nb=nb, sb=sb,
                             timeout=timeout, kubeconfig=kubeconfig, context=context,
                             server=server, token=token, file=file, run=run, device=device,
                             socket=socket, db=db, capture=capture, since=since, snmp=snmp,
                             community=community)
        runner = ImportRunner(importer, _history(directory), allow_empty=allow_empty)

        def report(outcome: Any) -> None:
            if as_json:
                line = json.dumps(outcome.to_dict(), ensure_ascii=False)
                typer.echo(line if interval is not None else json.dumps(
                    outcome.to_dict(), indent=2, ensure_ascii=False))
                return
            lines = outcome.lines()
            if not outcome.ok:
                typer.echo(f"fabricscope: error: {lines[0]}", err=True)
                return
            for w in outcome.result.warnings if outcome.result is not None else ():
                typer.echo(f"fabricscope: warning: {w}", err=True)
            for ln in lines:
                typer.echo(ln)

        if interval is None:
            outcome = runner.run_once()
            if as_json:
                _print_json(outcome.to_dict())
            else:
                report(outcome)
            return
        failures = runner.watch(interval, report)
        if not as_json:
            typer.echo(f"stopped ({failures} failed import{'s' if failures != 1 else ''})",
                       err=True)


def _given_options(values: dict[str, Any]) -> set[str]:
    """Per-source options that the user set (differ from their defaults)."""
    defaults = {"cloud": None, "auth_url": None, "username": None, "password": None,
                "project": None, "user_domain": "Default", "project_domain": "Default",
                "region": None, "no_servers": False, "nb": None, "sb": None,
                "timeout": 10.0, "kubeconfig": None, "context": None, "server": None,
                "token": None, "file": None, "run": False, "device": None, "socket": None,
                "db": None, "capture": None, "since": None, "snmp": None,
                "community": "public"}
    return {"--" + k.replace("_", "-") for k, d in defaults.items()
            if values.get(k) not in (d, [], ())}


def _importer(src: str, *, name: str | None, **o: Any) -> Any:
    if src == "openstack":
        from fabricscope.inventory.importers.openstack import OpenStackImporter

        auth = None
        if o["auth_url"]:
            auth = {"auth_url": o["auth_url"],
                    "username": o["username"] or os.environ.get("OS_USERNAME"),
                    "password": o["password"] or os.environ.get("OS_PASSWORD"),
                    "project_name": o["project"] or os.environ.get("OS_PROJECT_NAME"),
                    "user_domain_name": o["user_domain"],
                    "project_domain_name": o["project_domain"]}
            missing = [k for k in ("username", "password", "project_name") if not auth[k]]
            if missing:
                raise UsageError(f"--auth-url needs --{missing[0].replace('_name', '')} "
                                 f"(or OS_{missing[0].upper()})")
            if o["region"]:
                auth["region_name"] = o["region"]
        elif any(o[k] for k in ("username", "password", "project")):
            raise UsageError("--username/--password/--project go with --auth-url "
                             "(with --cloud they come from clouds.yaml)")
        return OpenStackImporter(cloud=o["cloud"], auth=auth, name=name,
                                 servers=not o["no_servers"])
    if src == "ovn":
        from fabricscope.inventory.importers.ovn import OvnImporter

        nb = o["nb"] or os.environ.get("OVN_NB_DB") or "unix:/var/run/ovn/ovnnb_db.sock"
        sb = o["sb"] or os.environ.get("OVN_SB_DB") or "unix:/var/run/ovn/ovnsb_db.sock"
        return OvnImporter(nb, sb, name=name, timeout=o["timeout"])
    if src == "kubernetes":
        from fabricscope.inventory.importers.kubernetes import KubernetesImporter

        if o["server"] and (o["kubeconfig"] or o["context"]):
            raise UsageError("--server and --kubeconfig/--context do not go together")
        return KubernetesImporter(
            kubeconfig=str(o["kubeconfig"]) if o["kubeconfig"] else None,
            context=o["context"], server=o["server"],
            token=o["token"] or os.environ.get("KUBE_TOKEN"), name=name,
            timeout=o["timeout"])
    if src == "lldp":
        from fabricscope.inventory.importers.lldp import LldpImporter

        files = list(o["file"] or [])
        if files and o["run"]:
            raise UsageError("--file and --run do not go together")
        if o["socket"] and files:
            raise UsageError("--socket goes with --run (lldpcli -u SOCKET)")
        if o["device"] and len(files) > 1:
            raise UsageError("--device names the system of one --file; with several "
                             "files each is named by its stem")
        return LldpImporter(files=files, device=o["device"], socket=o["socket"], name=name)
    from fabricscope.inventory.importers.sflow import SflowNamesImporter
    from fabricscope.timeutil import parse_time

    captures = list(o["capture"] or [])
    if captures and o["db"]:
        raise UsageError("--db and --capture do not go together")
    since = parse_time(o["since"], field="--since") if o["since"] else None
    return SflowNamesImporter(db=o["db"], captures=captures, since=since,
                              snmp=list(o["snmp"] or []), community=o["community"],
                              timeout=o["timeout"], name=name)


def register(app: typer.Typer) -> None:
    from fabricscope.cli.commands.inventory import inventory_app

    inventory_app.command("import")(import_source)

"""``fabricscope lab up|down|status|traffic``: the real fabric lab (network namespaces,
Open vSwitch switches exporting sFlow, Linux VXLAN hypervisors; needs root).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

ORDER = 90

RunDir = Annotated[Path, typer.Option("--run-dir", help="the lab's run directory (state file, "
                                      "OVS database, sockets and logs)")]
Json = Annotated[bool, typer.Option("--json", help="print the result as JSON")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v",
                                       help="print every command as it runs (stderr)")]


def _log(verbose: bool) -> Any:
    """Commands as they run: only with --verbose (stderr)."""
    def log(line: str) -> None:
        if verbose:
            print(line, file=sys.stderr, flush=True)
    return log


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def register(app: typer.Typer) -> None:
    from fabricscope.lab.plan import DEFAULT_PREFIX, DEFAULT_RUN_DIR

    lab = typer.Typer(
        name="lab",
        help="The real fabric lab: network namespaces, Open vSwitch leaf-spine switches "
             "exporting sFlow, Linux VXLAN hypervisors, two tenants and a firewall VNF "
             "(needs root).",
        no_args_is_help=True,
    )
    app.add_typer(lab, name="lab")
    default_run = Path(DEFAULT_RUN_DIR)

    @lab.command("up")
    def up(
        spines: Annotated[int, typer.Option(help="spine switches")] = 2,
        leaves: Annotated[int, typer.Option(help="leaf switches")] = 2,
        hosts: Annotated[int, typer.Option(help="hypervisors (spread over the leaves)")] = 4,
        run_dir: RunDir = default_run,
        prefix: Annotated[str, typer.Option(help="prefix of every name the lab creates")
                          ] = DEFAULT_PREFIX,
        mgmt_net: Annotated[str, typer.Option(
            "--mgmt-net", help="/30 between the root namespace (collector, first address) "
                               "and the switches namespace")] = "169.254.250.0/30",
        collector_port: Annotated[int, typer.Option(help="UDP port the switches send sFlow "
                                                         "to")] = 6343,
        sampling: Annotated[int, typer.Option(help="sFlow sampling rate (1 in N packets)")
                            ] = 64,
        polling: Annotated[int, typer.Option(help="sFlow counter polling interval, seconds")
                           ] = 10,
        header_bytes: Annotated[int, typer.Option(help="sampled header bytes")] = 128,
        encap_b: Annotated[str, typer.Option(
            "--encap-b", help="tenant-b's tunnels: auto (GENEVE when the kernel has it), "
                              "vxlan, geneve")] = "auto",
        inventory: Annotated[Path | None, typer.Option(
            help="write the lab's inventory here (default: RUN_DIR/inventory.yaml)")] = None,
        capture: Annotated[Path | None, typer.Option(
            help="record the switches' sFlow datagrams to this pcap (tcpdump on the collector "
                 "link, and a socket on the collector address); `lab down` stops it")
                           ] = None,
        keep_on_error: Annotated[bool, typer.Option(
            help="leave a half-built lab in place on failure (then `lab down`)")] = False,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="print the commands, run nothing (no root needed)")] = False,
        verbose: Verbose = False,
        as_json: Json = False,
    ) -> None:
        """Build the lab: switches, links, hypervisors, VMs, the firewall; start sFlow."""
        from fabricscope.lab.executor import lab_up
        from fabricscope.lab.plan import LabConfig

        config = LabConfig(spines=spines, leaves=leaves, hosts=hosts, prefix=prefix,
                           run_dir=str(run_dir), mgmt_net=mgmt_net,
                           collector_port=collector_port, sampling=sampling, polling=polling,
                           header_bytes=header_bytes)
        config.validate()
        res = lab_up(config, encap_b=encap_b, inventory=inventory, log=_log(verbose),
                     keep_on_error=keep_on_error, dry_run=dry_run, capture=capture)
        plan = res.plan
        if dry_run:
            for s in res.steps:
                typer.echo(s.shell())
            return
        summary = {
            "run_dir": str(res.paths.run_dir), "seconds": round(res.seconds, 2),
            "commands": res.commands, "collector": plan.collector,
            "inventory": str(res.inventory), "geneve": res.geneve, "netem": res.netem,
            "switch_namespace": plan.sw_ns, "capture": str(capture) if capture else None,
            "switches": [{"name": s.name, "bridge": s.bridge, "agent": s.agent}
                         for s in plan.switches],
            "hypervisors": [{"name": h.name, "ip": h.ip, "leaf": h.leaf}
                            for h in plan.hypervisors],
            "endpoints": [{"name": e.name, "tenant": e.tenant, "host": e.host,
                           "ips": [n.ip for n in e.nics]} for e in plan.endpoints],
        }
        if as_json:
            typer.echo(json.dumps(summary, indent=1))
            return
        c = plan.config
        b_encap = plan.network("b-net1").encap
        typer.echo(f"lab is up in {res.seconds:.1f}s ({res.commands} commands): "
                   f"{c.spines} spines, {c.leaves} leaves, {c.hosts} hypervisors, "
                   f"{len(plan.endpoints)} endpoints")
        typer.echo(f"  switches   Open vSwitch (userspace datapath) in namespace {plan.sw_ns}: "
                   + ", ".join(f"{s.name} {s.agent}" for s in plan.switches))
        typer.echo(f"  overlay    tenant-a VNI 1001/1002 (vxlan), tenant-b VNI 2001 ({b_encap}),"
                   " same addresses 10.0.1.0/24")
        typer.echo(f"  sFlow      all switches -> {plan.collector} (1 in {c.sampling} packets, "
                   f"counters every {c.polling}s)")
        if capture:
            typer.echo(f"  capture    {capture} (tcpdump on {plan.mgmt.a.name}; `lab down` "
                       "stops it)")
        else:
            typer.echo(f"  collect    fabricscope collect --listen {plan.collector}")
        typer.echo(f"  inventory  {res.inventory}")
        typer.echo(f"  next       fabricscope lab traffic{_rd(run_dir, default_run)}; "
                   f"fabricscope lab status; fabricscope lab down")

    @lab.command("down")
    def down(run_dir: RunDir = default_run, verbose: Verbose = False,
             as_json: Json = False) -> None:
        """Remove every namespace, link, process and file the lab created (idempotent)."""
        from fabricscope.lab.executor import lab_down, require_root

        require_root("down")
        res = lab_down(run_dir, log=_log(verbose))
        out = {"found": res.found, "processes": res.processes, "namespaces": res.namespaces,
               "links": res.links, "files": res.files, "left": res.left}
        if as_json:
            typer.echo(json.dumps(out))
        elif not res.found:
            typer.echo(f"no lab in {run_dir} (nothing to remove)")
        else:
            typer.echo(f"lab removed: {res.namespaces} namespaces, {res.links} links, "
                       f"{res.processes} processes, {res.files} files")
        if res.left:
            from fabricscope.lab.executor import LabError
            raise LabError("could not remove: " + ", ".join(res.left))

    @lab.command("status")
    def status(run_dir: RunDir = default_run, as_json: Json = False) -> None:
        """What is up: namespaces, daemons, switches and ECMP counters, VMs, chain, firewall."""
        from fabricscope.lab.executor import lab_status, require_root

        require_root("status")
        st = lab_status(run_dir)
        if as_json:
            typer.echo(json.dumps(st, indent=1))
            return
        ns_up = sum(1 for n in st["namespaces"] if n["present"])
        pr_up = sum(1 for p in st["processes"] if p["alive"])
        typer.echo(f"lab in {st['run_dir']} since {st['up_since']}: {ns_up}/"
                   f"{len(st['namespaces'])} namespaces, {pr_up}/{len(st['processes'])} "
                   f"processes alive")
        typer.echo(f"  collector  {st['collector']}   inventory  {st['inventory']}")
        for s in st["switches"]:
            ecmp = s.get("ecmp")
            extra = ("  ECMP packets " + ", ".join(f"{k}={v}" for k, v in ecmp.items())
                     if ecmp else "")
            typer.echo(f"  {s['name']:<8} {s['bridge']:<7} agent {s['agent']:<12} "
                       f"{len(s['ports'])} ports{extra}")
        for e in st["endpoints"]:
            typer.echo(f"  {e['name']:<4} {e['kind']:<6} {e['tenant']:<9} on {e['host']:<4} "
                       f"{', '.join(e['ips'])} (VNI {', '.join(map(str, e['vnis']))})")
        for name, since in st["chains"].items():
            typer.echo(f"  chain {name}: " + (f"inserted at {since}" if since else
                                              "not inserted"))
        if st["impairments"]:
            typer.echo("  impaired: " + ", ".join(st["impairments"]))
        if st["firewall"]:
            typer.echo("  firewall counters: " + ", ".join(f"{k}={v}" for k, v in
                                                         st["firewall"].items()))

    @lab.command("traffic")
    def traffic(
        run_dir: RunDir = default_run,
        steps: Annotated[str, typer.Option(
            help="comma-separated, in this order: ping,ecmp,iperf,chain,impair,migrate")
                         ] = "ping,ecmp,iperf,chain,impair,migrate",
        probes: Annotated[int, typer.Option(min=1, max=200,
                          help="ECMP probe flows (tenant-a; tenant-b gets half)")] = 12,
        probe_packets: Annotated[int, typer.Option(min=1, max=100000,
                                 help="packets per probe flow")] = 256,
        iperf_seconds: Annotated[float, typer.Option(min=0.5, max=600)] = 2.0,
        iperf_rate: Annotated[str, typer.Option(help="iperf3 -b")] = "5M",
        impair: Annotated[str, typer.Option(help="the leaf-spine link to degrade")
                          ] = "leaf1-spine1",
        migrate: Annotated[str, typer.Option(
            help="VM to migrate, optionally :HYPERVISOR (default: a2 to hv2)")] = "a2",
        ground_truth: Annotated[Path | None, typer.Option(
            help="write the ground truth JSON here (default: RUN_DIR/ground-truth.json)")
                                ] = None,
        verbose: Verbose = False,
        as_json: Json = False,
    ) -> None:
        """Send real traffic (ping, ECMP probes, iperf3, https through the chain, an impaired
        link, a VM migration) and record where it went, from OVS's own counters."""
        from fabricscope.errors import UsageError
        from fabricscope.lab.executor import open_lab, require_root
        from fabricscope.lab.traffic import TrafficOptions, run_traffic

        require_root("traffic")
        parts = impair.split("-")
        if len(parts) != 2:
            raise UsageError(f"--impair {impair!r}: expected LEAF-SPINE, e.g. leaf1-spine1")
        vm, _, to = migrate.partition(":")
        opts = TrafficOptions(steps=tuple(s.strip() for s in steps.split(",") if s.strip()),
                              probes=probes, probe_packets=probe_packets,
                              iperf_seconds=iperf_seconds, iperf_rate=iperf_rate,
                              impair=(parts[0], parts[1]), migrate=vm, migrate_to=to or None,
                              ground_truth=ground_truth)
        lab_ = open_lab(run_dir, log=_log(verbose))
        gt = run_traffic(lab_, opts, _progress)
        if as_json:
            typer.echo(json.dumps(gt, indent=1))
            return
        path = ground_truth or lab_.paths.ground_truth
        typer.echo(f"traffic done in {gt['seconds']}s: {len(gt['flows'])} flows, "
                   f"{len(gt['events'])} events; ground truth in {path}")
        res = gt["results"]
        if "ecmp_spines" in res:
            typer.echo(f"  ECMP probes used: {', '.join(res['ecmp_spines'])}")
        if "firewall" in res:
            typer.echo("  firewall: " + ", ".join(f"{k}={v}" for k, v in res["firewall"].items()))
        if "impairment" in res:
            im = res["impairment"]
            typer.echo(f"  impaired {im['link']} ({im['method']}): tenants "
                       f"{', '.join(im['tenants']) or 'none'} crossed it")


def _rd(run_dir: Path, default: Path) -> str:
    return "" if run_dir == default else f" --run-dir {run_dir}"

"""``fabricscope sim``: write a simulated fabric; ``sim replay``: send its datagrams to a
collector; ``sim truth``: print the true path of a flow (docs/sim.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

ORDER = 80

sim_app = typer.Typer(
    name="sim",
    help="A simulated leaf-spine fabric: inventory, sFlow datagrams and ground truth.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

Opt = typer.Option


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _speed(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    from fabricscope.errors import UsageError

    t = text.strip().upper().rstrip("BPS").rstrip("/")
    mult = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    try:
        if t and t[-1] in mult:
            return int(float(t[:-1]) * mult[t[-1]])
        return int(float(t))
    except ValueError:
        raise UsageError(f"{option}: cannot read {text!r}; use e.g. 25G, 100G") from None


def _check_out(out: Path) -> None:
    from fabricscope.errors import UsageError

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "truth.json").exists():
        raise UsageError(f"--out: {out} is not empty and holds no earlier simulation; "
                         "choose an empty or new directory")


@sim_app.callback(invoke_without_command=True)
def sim(
    ctx: typer.Context,
    out: Annotated[Path | None, Opt("--out", "-o", help="Output directory (created).",
                                    show_default=False)] = None,
    preset: Annotated[str, Opt("--preset", help="small (default), demo (quick, used by "
                               "`fabricscope demo`), 1k or 10k hosts.")] = "small",
    spines: Annotated[int | None, Opt("--spines", show_default=False)] = None,
    leaves: Annotated[int | None, Opt("--leaves", show_default=False)] = None,
    hosts_per_leaf: Annotated[int | None, Opt("--hosts-per-leaf", show_default=False)] = None,
    tenants: Annotated[int | None, Opt("--tenants", show_default=False)] = None,
    vms: Annotated[int | None, Opt("--vms", help="VMs in all (spread over tenants).",
                                   show_default=False)] = None,
    vnfs: Annotated[int | None, Opt("--vnfs", help="VNFs in all (the inserted one "
                                    "included).", show_default=False)] = None,
    chains: Annotated[int | None, Opt("--chains", help="Service chains (one per tenant).",
                                      show_default=False)] = None,
    duration: Annotated[str | None, Opt("--duration", help="e.g. 15m, 1h.",
                                        show_default=False)] = None,
    flows: Annotated[int | None, Opt("--flows", help="Conversations started over the run "
                                     "(TCP, DNS and ping ones have a reverse flow).",
                                     show_default=False)] = None,
    flow_rate: Annotated[float | None, Opt("--flow-rate", help="Conversations started per "
                                           "second (when --flows is not given).",
                                           show_default=False)] = None,
    steady_mbps: Annotated[float | None, Opt("--steady-mbps", help="Average Mb/s per host "
                                             "of long-lived flows (one per VM).",
                                             show_default=False)] = None,
    sampling_rate: Annotated[int | None, Opt("--sampling-rate", help="1 in N packets.",
                                             show_default=False)] = None,
    encap: Annotated[str | None, Opt("--encap", help="vxlan, geneve, nvgre or mixed.",
                                     show_default=False)] = None,
    underlay: Annotated[str | None, Opt("--underlay", help="ipv4 or ipv6.",
                                        show_default=False)] = None,
    seed: Annotated[int | None, Opt("--seed", show_default=False)] = None,
    start: Annotated[str | None, Opt("--start", help="RFC 3339 start time (default "
                                     "2026-11-25T10:00:00Z, so that runs repeat).",
                                     show_default=False)] = None,
    mix: Annotated[str | None, Opt("--mix", help="Traffic mix, e.g. tcp:80,udp:15,icmp:5.",
                                   show_default=False)] = None,
    events: Annotated[str | None, Opt("--events", help="all, none, or a list of: migration, "
                                      "vnf-insert, link-errors, congestion, sflow-outage.",
                                      show_default=False)] = None,
    sfc_mpls: Annotated[bool | None, Opt("--sfc-mpls/--no-sfc-mpls", help="networking-sfc "
                                         "MPLS label inside chained tunnels (default on).",
                                         show_default=False)] = None,
    host_speed: Annotated[str | None, Opt("--host-speed", help="Host port speed, e.g. 25G.",
                                          show_default=False)] = None,
    uplink_speed: Annotated[str | None, Opt("--uplink-speed", help="Leaf-spine speed.",
                                            show_default=False)] = None,
    host_pcaps: Annotated[bool, Opt("--host-pcaps", help="Also write hosts/<host>.pcap: "
                                    "every packet at the hosts' NICs (big).")] = False,
    pcap_hosts: Annotated[str | None, Opt("--pcap-hosts", help="Comma list of hosts for "
                                          "--host-pcaps (default: all).",
                                          show_default=False)] = None,
    truth_samples: Annotated[bool, Opt("--truth-samples", help="Also write "
                                       "truth-samples.parquet (every sample's flow and "
                                       "hop).")] = False,
    json_out: Annotated[bool, Opt("--json", help="Print the summary as JSON.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Write a simulated fabric to --out DIR: inventory.yaml, sflow.pcap, truth.json and
    the truth tables; deterministic for a seed. Subcommands: replay, truth."""
    if ctx.invoked_subcommand is not None:
        return
    from fabricscope.errors import UsageError
    from fabricscope.sim.params import SimParams, parse_events, parse_mix
    from fabricscope.timeutil import parse_duration, parse_time

    if out is None:
        raise UsageError("--out DIR is required (or a subcommand: replay, truth; see "
                         "`fabricscope sim --help`)")
    _check_out(out)
    over: dict[str, Any] = {}
    for key, val in (("spines", spines), ("leaves", leaves),
                     ("hosts_per_leaf", hosts_per_leaf), ("tenants", tenants), ("vms", vms),
                     ("vnfs", vnfs), ("chains", chains), ("flows", flows),
                     ("flow_rate", flow_rate), ("steady_mbps", steady_mbps),
                     ("sampling_rate", sampling_rate), ("encap", encap),
                     ("underlay", underlay), ("seed", seed), ("sfc_mpls", sfc_mpls)):
        if val is not None:
            over[key] = val.lower() if isinstance(val, str) else val
    if duration is not None:
        over["duration"] = parse_duration(duration, field="--duration").total_seconds()
    if start is not None:
        over["start"] = parse_time(start, field="--start")
    if mix is not None:
        over["mix"] = parse_mix(mix)
    if events is not None:
        over["events"] = parse_events(events)
    for key, text, opt in (("host_speed", host_speed, "--host-speed"),
                           ("uplink_speed", uplink_speed, "--uplink-speed")):
        v = _speed(text, opt)
        if v is not None:
            over[key] = v
    if pcap_hosts is not None and not host_pcaps:
        raise UsageError("--pcap-hosts needs --host-pcaps")
    if host_pcaps:
        over["host_pcaps"] = tuple(h.strip() for h in pcap_hosts.split(",") if h.strip()
                                   ) if pcap_hosts else ("all",)
    if truth_samples:
        over["truth_samples"] = True
    params = SimParams.preset(preset, **over)
    _run(out, params, json_out, quiet)


def _run(out: Path, params: Any, json_out: bool, quiet: bool) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from fabricscope.sim import simulate

    con = Console(stderr=True, highlight=False)
    show = not quiet and not json_out and sys.stderr.isatty()
    if show:
        with Progress(TextColumn("simulating"), BarColumn(), TextColumn(
                "{task.completed}/{task.total} intervals, {task.fields[samples]:,} samples"),
                TimeElapsedColumn(), console=con, transient=True) as prog:
            task = prog.add_task("sim", total=None, samples=0)

            def progress(done: int, total: int, samples: int) -> None:
                prog.update(task, completed=done, total=total, samples=samples)

            res = simulate(out, params, progress=progress)
    else:
        res = simulate(out, params)
    if json_out:
        print(json.dumps(res.to_dict(), indent=1))
        return
    p = params
    lost = (f" ({res.datagrams_lost:,} lost in the sFlow outage, as designed)"
            if res.datagrams_lost else "")
    print(f"wrote {out}/ in {res.seconds:.1f} s: {res.hosts:,} hosts, {res.devices:,} "
          f"switches, {res.endpoints:,} endpoints; {res.flows:,} flows over "
          f"{p.duration:g} s; {res.samples:,} flow samples (1:{p.sampling_rate}) and "
          f"{res.counter_samples:,} counter samples in {res.datagrams:,} sFlow datagrams"
          f"{lost}; {_human_bytes(res.bytes_written)}")
    if res.host_packets:
        print(f"  host captures: {res.host_packets:,} packets in {out}/hosts/")
    print(f"  next: fabricscope decode {out}/sflow.pcap -f table --limit 20")
    print(f"        fabricscope inventory validate {out}/inventory.yaml")
    print(f"        fabricscope sim truth {out} --featured 0")


@sim_app.command("replay")
def replay_cmd(
    directory: Annotated[Path, typer.Argument(help="A sim output directory, or a pcap file "
                                              "of sFlow datagrams.")],
    to: Annotated[str, Opt("--to", help="Collector HOST:PORT.")],
    rate: Annotated[float | None, Opt("--rate", help="Datagrams per second.",
                                      show_default=False)] = None,
    realtime: Annotated[bool, Opt("--realtime", help="Pace by the capture's timestamps.")
                        ] = False,
    speed: Annotated[float | None, Opt("--speed", help="With timestamps, N times faster "
                                       "(implies --realtime).", show_default=False)] = None,
    limit: Annotated[int | None, Opt("--limit", "-n", min=0, help="Stop after N datagrams.",
                                     show_default=False)] = None,
    json_out: Annotated[bool, Opt("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Send the sFlow datagrams to a live collector: as fast as possible, at --rate, or in
    real (--realtime) or accelerated (--speed N) time."""
    from fabricscope.sim.replay import parse_target, replay

    host, port = parse_target(to)
    if realtime and speed is None:
        speed = 1.0
    st = replay(directory, host, port, rate=rate, speed=speed, limit=limit)
    d = st.to_dict()
    if json_out:
        print(json.dumps(d))
        return
    print(f"sent {st.sent:,} datagrams ({_human_bytes(st.bytes)}) to {host}:{port} in "
          f"{st.seconds:.2f} s ({d['datagrams_per_second']:,.0f}/s; the capture spans "
          f"{st.capture_seconds:.1f} s)" + (f"; skipped {st.skipped:,} non-UDP frames"
                                            if st.skipped else ""))


@sim_app.command("truth")
def truth_cmd(
    directory: Annotated[Path, typer.Argument(help="A sim output directory.")],
    flow: Annotated[int | None, Opt("--flow", help="Flow id.", show_default=False)] = None,
    featured: Annotated[int | None, Opt("--featured", help="The N-th featured flow.",
                                        show_default=False)] = None,
    src: Annotated[str | None, Opt("--src", show_default=False)] = None,
    dst: Annotated[str | None, Opt("--dst", show_default=False)] = None,
    sport: Annotated[int | None, Opt("--sport", show_default=False)] = None,
    dport: Annotated[int | None, Opt("--dport", show_default=False)] = None,
    at: Annotated[str | None, Opt("--at", help="Only the span holding this time.",
                                  show_default=False)] = None,
    events: Annotated[bool, Opt("--events", help="Print the events instead.")] = False,
) -> None:
    """Print the ground truth as JSON: a flow's true path (by id, featured index or
    5-tuple), or the events."""
    from fabricscope.errors import NotFound, UsageError
    from fabricscope.sim import load_truth
    from fabricscope.timeutil import parse_time, to_ns

    t = load_truth(directory)
    if events:
        print(json.dumps(t.events, indent=1))
        return
    if featured is not None:
        fl = t.featured
        if not 0 <= featured < len(fl):
            raise UsageError(f"--featured: 0..{len(fl) - 1}")
        flow = int(fl[featured]["flow_id"])
    if flow is None:
        if src is None and dst is None:
            raise UsageError("give --flow ID, --featured N, or --src/--dst (--sport, --dport)")
        found = t.find_flows(src=src, dst=dst, sport=sport, dport=dport)
        if not found:
            raise NotFound("no flow matches")
        if len(found) > 1:
            print(json.dumps([{k: f[k] for k in ("flow_id", "src_ip", "sport", "dst_ip",
                                                 "dport", "proto", "vni", "tenant", "start",
                                                 "packets")} for f in found[:50]], indent=1))
            print(f"{len(found)} flows match; pick one with --flow ID", file=sys.stderr)
            return
        flow = int(found[0]["flow_id"])
    try:
        f = t.flow(flow)
    except KeyError:
        raise NotFound(f"no flow {flow}") from None
    at_ns = to_ns(parse_time(at, field="--at")) if at is not None else None
    f["path"] = t.path(flow, at=at_ns)
    print(json.dumps(f, indent=1))


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")

"""``fabricscope demo``: the whole story on a simulated fabric, in one command, no root.

1. simulate a small leaf-spine fabric (sim/, preset ``demo``): tenants, a firewall VNF in a
   chain, ECMP across two spines, a VM migration, an IDS inserted into the chain, a link
   with rising errors, a switch whose sFlow goes missing for 30 s;
2. decode its sFlow capture into an embedded store (numba decoders, DuckDB/Parquet store)
   and report the sFlow accounting (the missing datagrams are caught by sequence numbers);
3. ask the questions an on-call engineer asks: who talks to whom (matrix), which path did
   the tenant's HTTPS flow take (trace), who crossed the erroring link (impact), does the
   traffic go through the VNFs its chain requires (check chains).

Everything it writes stays in one directory (default: the user's cache dir), so the
commands it prints at the end work on the same data.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console


@dataclass
class DemoResult:
    directory: Path
    store: Path
    inventory: Path
    timings: dict[str, float] = field(default_factory=dict)
    trace: dict[str, Any] | None = None
    impact: dict[str, Any] | None = None
    matrix: dict[str, Any] | None = None
    chains: dict[str, Any] | None = None
    accounting: dict[str, Any] | None = None


def _console() -> Console:
    from fabricscope.cli.common import console

    c: Console = console()
    return c


def default_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("fabricscope")) / "demo"


def _compile_sflow_elsewhere() -> subprocess.Popen[bytes] | None:
    """On a first run, compile the sFlow decoder's kernels in a second process (into the
    shared cache) while this one simulates and compiles the packet walk: the two largest
    compilations at once, on two cores. None if it cannot start (this process then
    compiles everything itself)."""
    code = "from fabricscope.sflow.collector import warm_up; warm_up()"
    try:
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _compile_packet_walk(pcap: Path) -> None:
    """Compile the packet decoder's kernels on one frame (the sFlow ones are compiled by
    the helper process meanwhile)."""
    from fabricscope.capture.reader import open_capture
    from fabricscope.decode import PacketDecoder

    with open_capture(pcap, batch_frames=1) as cap:
        for frames in cap:
            dec = PacketDecoder()
            dec.decode(frames)
            dec.decode_matrix(frames, count=False)
            break


def _wait(helper: subprocess.Popen[bytes]) -> None:
    try:
        helper.wait(timeout=900)
    except subprocess.TimeoutExpired:  # then this process compiles what is missing
        helper.kill()
        helper.wait()


def _step(con: Console, n: int, title: str) -> None:
    con.print()
    con.rule(f"[bold]{n}/6  {title}[/]", align="left")


def run(directory: Path | None = None, *, console: Console | None = None,
        seed: int = 1) -> DemoResult:
    from fabricscope import query
    from fabricscope.cli.commands import check as check_cmd
    from fabricscope.cli.commands import impact as impact_cmd
    from fabricscope.cli.commands import matrix as matrix_cmd
    from fabricscope.cli.commands import trace as trace_cmd
    from fabricscope.inventory.fileformat import read_file
    from fabricscope.pipeline import FileDecoder
    from fabricscope.sim import SimParams, load_truth, simulate
    from fabricscope.store import open_store

    con = console or _console()
    d = directory or default_dir()
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    res = DemoResult(directory=d, store=d / "store", inventory=d / "sim" / "inventory.yaml")
    con.print("[bold]fabricscope demo[/]: a simulated leaf-spine fabric, end to end "
              f"(embedded store, no root, no network). Files: {d}")
    import fabricscope

    helper: subprocess.Popen[bytes] | None = None
    if fabricscope.JIT_CACHE_FRESH:
        con.print("[dim]First run since install: the simulator and decoders are compiled "
                  "to machine code and cached (about two minutes, once); later runs take "
                  "seconds.[/]")
        helper = _compile_sflow_elsewhere()

    _step(con, 1, "simulate a fabric")
    t = time.perf_counter()
    sim = simulate(d / "sim", SimParams.preset("demo", seed=seed))
    res.timings["simulate"] = time.perf_counter() - t
    if helper is not None:  # first run: finish compiling the decoders before timing them
        t = time.perf_counter()
        _compile_packet_walk(d / "sim" / "sflow.pcap")
        _wait(helper)
        res.timings["compile"] = time.perf_counter() - t
    truth = load_truth(d / "sim")
    meta = truth.meta
    con.print(f"{sim.hosts} hosts, {sim.devices} switches, {sim.endpoints} endpoints; "
              f"{sim.flows:,} tenant flows over {meta['params']['duration']:.0f} s; "
              f"{sim.samples:,} flow samples (1:{meta['sampling_rate']}) and "
              f"{sim.counter_samples:,} counter samples in {sim.datagrams:,} sFlow datagrams "
              f"({res.timings['simulate']:.1f} s)")
    if "compile" in res.timings:
        con.print(f"[dim]  then {res.timings['compile']:.0f} s compiling the decoders "
                  "(first run only)[/]")
    for ev in truth.events:
        con.print(f"  event at {ev['time'][11:19]}: {_event_text(ev)}")

    _step(con, 2, "decode the sFlow capture into the embedded store")
    t = time.perf_counter()
    fd = FileDecoder(d / "sim" / "sflow.pcap")
    with open_store(str(res.store), write=True) as st:
        for step in fd:
            st.append(step.records, step.counters)
        st.seal()  # as `fabricscope ingest` does: sorted for traces, aggregated
    res.timings["ingest"] = time.perf_counter() - t
    s = fd.summary
    con.print(f"{s.sflow_datagrams:,} sFlow datagrams -> {s.records:,} flow samples and "
              f"{s.counter_records:,} counter records in {res.timings['ingest']:.1f} s")
    acc = fd.sflow_accounting()
    res.accounting = acc
    if acc:
        names = {d["agent"]: d["name"] for d in meta.get("devices", [])
                 if isinstance(d, dict) and "agent" in d and "name" in d}
        for a in acc.get("agents", []):
            if a.get("lost"):
                who = names.get(a["agent"], a["agent"])
                con.print(f"  [yellow]{who} ({a['agent']}): {a['lost']} datagram(s) missing[/],"
                          " seen in its sequence numbers: the collector knows what it lost")

    inv = read_file(res.inventory)
    start = datetime.fromisoformat(meta["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(meta["end"].replace("Z", "+00:00")) + timedelta(seconds=1)
    db = str(res.store)

    _step(con, 3, "who talks to whom: fabricscope matrix --by tenant")
    res.matrix = query.matrix("tenant", since=start, until=end, db=db, inventory=inv, limit=8)
    matrix_cmd.render(res.matrix)

    feat = truth.featured[0]
    _step(con, 4, f"trace a tenant flow: fabricscope trace --src {feat['src']} --dst "
                  f"{feat['dst']} --dport {feat['dport']}")
    con.print(f"[dim]{feat['name']}: {feat.get('src_endpoint')} -> "
              f"{feat.get('dst_endpoint')} (tenant {feat.get('tenant')}); the chain sends it "
              "through the firewall, the destination VM migrates, an IDS joins the chain[/]")
    res.trace = query.trace(feat["src"], feat["dst"], sport=feat.get("sport"),
                            dport=feat["dport"], proto=feat.get("proto"), since=start,
                            until=end, db=db, inventory=inv)
    trace_cmd.render(res.trace)

    bad = next((e for e in truth.events if e["type"] == "link-errors"), None)
    _step(con, 5, "who crossed the erroring link: fabricscope impact")
    if bad is not None:
        end_b = bad["link"]["b"]
        res.impact = query.impact(end_b["device"], interface=end_b["interface"], since=start,
                                  until=end, db=db, inventory=inv, limit=5)
        impact_cmd.render(res.impact)

    _step(con, 6, "does traffic cross the VNFs its chain requires: fabricscope check chains")
    res.chains = query.check_chains(since=start, until=end, db=db, inventory=inv)
    check_cmd.render(res.chains)

    con.print()
    con.print("[bold]Try it yourself[/] on the same data:")
    w = f"--since {meta['start']} --until {end.isoformat().replace('+00:00', 'Z')}"
    for cmd in (
        f"fabricscope trace --src {feat['src']} --dst {feat['dst']} --dport {feat['dport']} "
        f"{w} --db {db} -i {res.inventory} --json",
        f"fabricscope matrix --by host {w} --db {db} -i {res.inventory}",
        f"fabricscope decode {d / 'sim' / 'sflow.pcap'} -f table --limit 20",
        f"fabricscope serve --db {db} -i {res.inventory}",
    ):
        con.print(f"  {cmd}")
    return res


def _event_text(ev: dict[str, Any]) -> str:
    t = ev.get("type")
    if t == "vm-migration":
        return f"VM {ev['endpoint']} migrates {ev['from_host']} -> {ev['to_host']}"
    if t == "vnf-insertion":
        return f"{ev['vnf']} ({ev.get('kind')}) inserted into chain {ev['chain']}"
    if t == "link-errors":
        a, b = ev["link"]["a"], ev["link"]["b"]
        return (f"link {a['device']} {a['interface']} -- {b['device']} {b['interface']} "
                "starts dropping and corrupting frames")
    if t == "sflow-outage":
        return f"{ev['device']}'s sFlow datagrams stop reaching the collector for a while"
    if t == "congestion":
        return f"congestion on {ev.get('device')} {ev.get('interface')}"
    return str(t)

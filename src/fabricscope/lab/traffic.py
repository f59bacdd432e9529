"""``lab traffic``: real traffic through the lab, and the ground truth of where it went.

Steps (each optional, in this order): ``ping``; ``ecmp`` (UDP probe flows with different
source ports, one at a time, so OVS's per-bucket counters tell which spine each took);
``iperf`` (TCP between VMs of each tenant); ``chain`` (https before and after the firewall
is inserted, and a blocked client); ``impair`` (a leaf-spine link degraded with tc netem,
or a token bucket where the kernel has no netem, while both tenants send across it);
``migrate`` (a VM moves to another hypervisor, then talks again).

Every flow runs alone and is bracketed by snapshots of OVS's own counters (per group
bucket, per port), so the ground truth of each flow's path comes from the switches, not
from the plan. The result is written as JSON (``ground-truth.json``).
"""

from __future__ import annotations

import functools
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabricscope.lab.commands import chain_steps, impair_steps, migrate_steps
from fabricscope.lab.executor import (
    Lab,
    LabError,
    firewall_counters,
    group_stats,
    port_stats,
    write_inventory,
)
from fabricscope.lab.plan import LabPlan, Switch, build_plan
from fabricscope.lab.state import now_rfc3339

STEPS = ("ping", "ecmp", "iperf", "chain", "impair", "migrate")
Log = Callable[[str], None]


@dataclass
class TrafficOptions:
    steps: tuple[str, ...] = STEPS
    probes: int = 12  # ECMP probe flows for tenant-a (tenant-b gets half)
    probe_packets: int = 256
    probe_interval: float = 0.0005
    iperf_seconds: float = 2.0
    iperf_rate: str = "5M"
    impair: tuple[str, str] = ("leaf1", "spine1")
    migrate: str = "a2"
    migrate_to: str | None = None
    ground_truth: Path | None = None


@dataclass
class Snapshot:
    groups: dict[str, dict[str, int]] = field(default_factory=dict)  # leaf -> spine -> pkts
    ports: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)


class Traffic:
    def __init__(self, lab: Lab, opts: TrafficOptions, log: Log) -> None:
        self.lab = lab
        self.opts = opts
        self.log = log
        self.flows: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {}
        self.ifindex: dict[str, int] = {}
        self._last: Snapshot | None = None
        inv = lab.journal.of_kind("inventory")
        if inv:
            self.ifindex = {str(k): int(v) for k, v in inv[-1].get("ifindex", {}).items()}

    @property
    def plan(self) -> LabPlan:
        return self.lab.plan

    # -- counters ----------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """OVS's counters now. Reuses the previous snapshot when nothing ran since."""
        if self._last is not None:
            return self._last
        lab = self.lab
        # make the datapath's flow statistics reach the OpenFlow/group counters
        lab.runner.query("ovs-appctl", "-t", str(lab.paths.ctl("ovs-vswitchd")),
                         "revalidator/wait", ovs=True)
        snap = Snapshot()

        def read(sw: Switch) -> None:
            names = {p.ofport: p.name for p in sw.ports}
            snap.ports[sw.name] = port_stats(lab.runner, lab.paths, sw.bridge, names)
            if sw.groups:
                stats = group_stats(lab.runner, lab.paths, sw.bridge)
                g = sw.groups[0]
                snap.groups[sw.name] = {b.to: stats.get(g.group_id, {}).get(b.bucket_id, 0)
                                        for b in g.buckets}

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(read, self.plan.switches))
        self._last = snap
        return snap

    @staticmethod
    def delta(a: Snapshot, b: Snapshot) -> dict[str, Any]:
        groups = {lf: {sp: b.groups[lf][sp] - a.groups.get(lf, {}).get(sp, 0)
                       for sp in b.groups[lf]} for lf in b.groups}
        ports: dict[str, dict[str, dict[str, int]]] = {}
        for sw, pts in b.ports.items():
            for name, st in pts.items():
                old = a.ports.get(sw, {}).get(name, {})
                d = {k: v - old.get(k, 0) for k, v in st.items()}
                if any(d[k] for k in ("rx_packets", "tx_packets", "rx_dropped", "tx_dropped")):
                    ports.setdefault(sw, {})[name] = {k: v for k, v in d.items() if v}
        return {"groups": {lf: g for lf, g in groups.items() if any(g.values())},
                "ports": ports}

    # -- flows -------------------------------------------------------------------------
    def expected_hops(self, src_host: str, dst_host: str, spine: str | None
                      ) -> list[dict[str, Any]]:
        """The switch hops between two hypervisors (spine: which ECMP branch)."""
        p = self.plan
        if src_host == dst_host:
            return []
        a, b = p.hypervisor(src_host), p.hypervisor(dst_host)
        la, lb = p.switch(a.leaf), p.switch(b.leaf)

        def hop(sw: Switch, i: str, o: str) -> dict[str, Any]:
            return {"device": sw.name, "agent": sw.agent, "in_if": i, "out_if": o,
                    "in_ifindex": self.ifindex.get(i), "out_ifindex": self.ifindex.get(o)}

        if la is lb:
            return [hop(la, a.leaf_port, b.leaf_port)]
        if spine is None:
            return [hop(la, a.leaf_port, "?"), {"device": "?"}, hop(lb, "?", b.leaf_port)]
        up, down = p.fabric_link(la.name, spine)
        up2, down2 = p.fabric_link(lb.name, spine)
        sp = p.switch(spine)
        return [hop(la, a.leaf_port, up.name), hop(sp, down.name, down2.name),
                hop(lb, up2.name, b.leaf_port)]

    def segments(self, src: str, dst: str, vnfs: Sequence[str], proto: str,
                 dport: int | None) -> list[dict[str, Any]]:
        """Tunnel segments from endpoint ``src`` to ``dst`` through ``vnfs`` (in order)."""
        p = self.plan
        chain = [src, *vnfs, dst]
        segs = []
        for x, y in itertools.pairwise(chain):
            ex, ey = p.endpoint(x), p.endpoint(y)
            shared = [n.network for n in ex.nics if n.network in {m.network for m in ey.nics}]
            net = p.network(shared[0])
            hx, hy = p.hypervisor(ex.host), p.hypervisor(ey.host)
            segs.append({"from": x, "to": y, "vni": net.vni, "encap": net.encap,
                         "network": net.name, "src_host": hx.name, "dst_host": hy.name,
                         "outer_src": hx.ip, "outer_dst": hy.ip,
                         "local": hx is hy})
        return segs

    def record_flow(self, fid: str, kind: str, src: str, dst: str, *, proto: str,
                    sport: int | None, dport: int | None, vnfs: Sequence[str] = (),
                    run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        p = self.plan
        es, ed = p.endpoint(src), p.endpoint(dst)
        dst_ip = self._addr_towards(ed, es)
        net = p.network(es.nics[0].network)
        before = self.snapshot()
        t0 = now_rfc3339()
        self._last = None
        try:
            extra = run()
        finally:
            self._last = None
        t1 = now_rfc3339()
        if sport is None and extra.get("sport"):
            sport = int(extra.pop("sport"))  # iperf3's data connection
        d = self.delta(before, self.snapshot())
        segs = self.segments(src, dst, vnfs, proto, dport)

        def leaves(s: dict[str, Any]) -> tuple[str, str]:
            return p.hypervisor(s["src_host"]).leaf, p.hypervisor(s["dst_host"]).leaf

        for s in segs:
            s["spine"] = None
            if s["local"]:
                s["hops"] = []
                continue
            lsrc, ldst = leaves(s)
            # The group counters tell this segment's spine only when no other segment of
            # the flow leaves or enters through the same leaves (replies use ldst's group).
            others = [leaves(o) for o in segs if o is not s and not o["local"]]
            alone = all(not ({lsrc, ldst} & set(o)) for o in others)
            if lsrc != ldst and alone:
                g = d["groups"].get(lsrc, {})
                if g:
                    s["spine"] = max(g, key=lambda k: g[k])
                    s["bucket_packets"] = g
                r = d["groups"].get(ldst, {})
                if r:
                    s["reverse_spine"] = max(r, key=lambda k: r[k])
                    s["reverse_bucket_packets"] = r
            s["hops"] = self.expected_hops(s["src_host"], s["dst_host"], s["spine"])
        flow = {"id": fid, "kind": kind, "tenant": es.tenant, "vni": net.vni,
                "encap": net.encap, "src_endpoint": src, "dst_endpoint": dst,
                "src": es.nics[0].ip, "dst": dst_ip, "proto": proto, "sport": sport,
                "dport": dport, "vnfs": list(vnfs), "start": t0, "end": t1,
                "segments": segs, "counters": d, **extra}
        self.flows.append(flow)
        via = []
        for s in segs:
            lsrc, ldst = leaves(s)
            via.append(f"{s['from']}>{s['to']}:" + (
                "same host" if s["local"] else lsrc if lsrc == ldst
                else f"{lsrc}>{s['spine'] or 'spine?'}>{ldst}"))
        port = f":{dport}" if dport else ""
        self.log(f"  {fid}: {src} -> {dst} {proto}{port}, {' '.join(via)}")
        return flow

    @staticmethod
    def _addr_towards(dst: Any, src: Any) -> str:
        src_nets = {n.network for n in src.nics}
        for n in dst.nics:
            if n.network in src_nets:
                return str(n.ip)
        return str(dst.nics[0].ip)

    def ns_run(self, ns: str, *argv: str, check: bool = True, timeout: float = 30
               ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            raise LabError(f"{' '.join(argv[:3])} in {ns}: {lines[-1] if lines else 'failed'}")
        return proc

    def udp_flow(self, src: str, dst: str, sport: int, packets: int) -> dict[str, Any]:
        es, ed = self.plan.endpoint(src), self.plan.endpoint(dst)
        out = self.ns_run(es.ns, sys.executable, "-m", "fabricscope.lab.udpgen", "send",
                          "--dst", self._addr_towards(ed, es), "--dport", "5001",
                          "--sport", str(sport), "--count", str(packets), "--interval",
                          str(self.opts.probe_interval))
        return {"packets": int(out.stdout.strip() or 0)}

    def iperf(self, src: str, dst: str, port: int, seconds: float, expect_ok: bool = True
              ) -> dict[str, Any]:
        es, ed = self.plan.endpoint(src), self.plan.endpoint(dst)
        proc = self.ns_run(es.ns, "iperf3", "-c", self._addr_towards(ed, es), "-p", str(port),
                           "-t", str(seconds), "-b", self.opts.iperf_rate, "-J",
                           "--connect-timeout", "1500", check=False, timeout=seconds + 20)
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            doc = {}
        err = doc.get("error")
        end = doc.get("end", {})
        res: dict[str, Any] = {"ok": proc.returncode == 0 and not err}
        if err:
            res["error"] = err
        sent = end.get("sum_sent", {})
        if sent:
            res["bytes"] = sent.get("bytes")
            res["retransmits"] = sent.get("retransmits")
            res["bits_per_second"] = round(sent.get("bits_per_second", 0))
        streams = doc.get("start", {}).get("connected", [])
        if streams:
            res["sport"] = streams[0].get("local_port")
        if res["ok"] != expect_ok:
            raise LabError(f"iperf3 {src} -> {dst}:{port} "
                           f"{'failed: ' + str(err) if expect_ok else 'got through'}")
        return res

    def ping(self, src: str, dst: str, count: int = 3) -> dict[str, Any]:
        es, ed = self.plan.endpoint(src), self.plan.endpoint(dst)
        proc = self.ns_run(es.ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", "-q",
                           self._addr_towards(ed, es), check=False)
        ok = proc.returncode == 0
        if not ok:
            raise LabError(f"ping {src} -> {dst} failed: {proc.stdout.strip().splitlines()[-1:]}")
        return {"packets": count, "ok": ok}

    def event(self, etype: str, **kw: Any) -> dict[str, Any]:
        self._last = None
        ev = {"kind": "event", "type": etype, "at": now_rfc3339(), **kw}
        self.lab.journal.append(ev)
        self.events.append({k: v for k, v in ev.items() if k != "kind"})
        return ev

    # -- steps -------------------------------------------------------------------------
    def step_ping(self) -> None:
        self.log("ping")
        for src, dst in (("a1", "a2"), ("b1", "b2"), ("a1", "a3")):
            vnfs = ("rta",) if dst == "a3" else ()
            self.record_flow(f"ping-{src}-{dst}", "icmp", src, dst, proto="icmp", sport=None,
                             dport=None, vnfs=vnfs, run=functools.partial(self.ping, src, dst))

    def step_ecmp(self) -> None:
        self.log("ecmp: UDP probe flows, one at a time, read against the group counters")
        n = self.opts.probes
        for tenant, src, dst, count, base in (("a", "a1", "a2", n, 40000),
                                              ("b", "b1", "b2", max(2, n // 2), 41000)):
            for i in range(1, count + 1):
                self.record_flow(f"ecmp-{tenant}-{i:02d}", "udp-probe", src, dst, proto="udp",
                                 sport=base + i, dport=5001,
                                 run=functools.partial(self.udp_flow, src, dst, base + i,
                                                       self.opts.probe_packets))
        used = {s["spine"] for f in self.flows if f["kind"] == "udp-probe"
                for s in f["segments"] if s.get("spine")}
        self.results["ecmp_spines"] = sorted(used)

    def step_iperf(self) -> None:
        self.log("iperf: TCP between the VMs of each tenant")
        secs = self.opts.iperf_seconds
        for src, dst in (("a1", "a2"), ("b1", "b2")):
            self.record_flow(f"iperf-{src}-{dst}", "tcp", src, dst, proto="tcp", sport=None,
                             dport=5201, run=functools.partial(self.iperf, src, dst, 5201, secs))

    def step_chain(self) -> None:
        self.log("chain: https before and after inserting the firewall")
        p = self.plan
        chain = p.chains[0]
        fw = p.endpoint(chain.vnfs[0])
        inserted = self.lab.journal.chains_inserted().get(chain.name)
        if not inserted:
            self.record_flow("https-a1-a3-direct", "tcp", "a1", "a3", proto="tcp", sport=None,
                             dport=chain.dport, vnfs=(chain.classifier,),
                             run=lambda: self.iperf("a1", "a3", chain.dport, 1.0))
            self.lab.runner.run_all(chain_steps(p, chain, insert=True))
            self.event("chain", name=chain.name, inserted=True, vnfs=list(chain.vnfs),
                       classifier=chain.classifier)
        before = firewall_counters(self.lab.runner, fw.ns)
        self.record_flow("https-a1-a3-chained", "tcp", "a1", "a3", proto="tcp", sport=None,
                         dport=chain.dport, vnfs=(chain.classifier, *chain.vnfs),
                         run=lambda: self.iperf("a1", "a3", chain.dport, 1.0))
        self.record_flow("https-a2-a3-blocked", "tcp", "a2", "a3", proto="tcp", sport=None,
                         dport=chain.dport, vnfs=(chain.classifier, *chain.vnfs),
                         run=lambda: self.iperf("a2", "a3", chain.dport, 1.0, expect_ok=False))
        after = firewall_counters(self.lab.runner, fw.ns)
        self.results["firewall"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}

    def step_impair(self) -> None:
        leaf, spine = self.opts.impair
        p = self.plan
        try:
            a, b = p.fabric_link(leaf, spine)
        except KeyError:
            raise LabError(f"no link {leaf}-{spine} in the lab") from None
        kind = "netem" if self.lab.netem else "tbf"
        self.log(f"impair: {leaf}-{spine} with {kind}")
        # flows known (from the ecmp step) to hash onto this spine, per tenant
        crossing: dict[str, list[int]] = {}
        for f in self.flows:
            if f["kind"] == "udp-probe" and f["segments"][0].get("spine") == spine:
                crossing.setdefault(f["src_endpoint"], []).append(int(f["sport"]))
        self.lab.runner.run_all(impair_steps(p, leaf, spine, self.lab.netem, on=True))
        link = f"{leaf}-{spine}"
        self.event("impair", link=link, on=True, method=kind, interfaces=[a.name, b.name],
                   devices=[leaf, spine])
        qd_before = self.qdisc_drops([a.name, b.name])
        try:
            for tenant, src, dst, base in (("a", "a1", "a2", 40000), ("b", "b1", "b2", 41000)):
                sports = crossing.get(src) or [base + i for i in range(1, 5)]
                for sp in sports[:2]:
                    self.record_flow(f"impaired-{tenant}-{sp}", "udp-probe", src, dst,
                                     proto="udp", sport=sp, dport=5001,
                                     run=functools.partial(self.udp_flow, src, dst, sp,
                                                           self.opts.probe_packets))
        finally:
            drops = self.qdisc_drops([a.name, b.name])
            self.lab.runner.run_all(impair_steps(p, leaf, spine, self.lab.netem, on=False))
            self.event("impair", link=link, on=False, method=kind,
                       interfaces=[a.name, b.name], devices=[leaf, spine])
        # which flows really crossed the link: the leaf's port towards the spine counted them
        crossed = [f for f in self.flows if f["id"].startswith("impaired-")
                   and f["counters"]["ports"].get(leaf, {}).get(a.name, {})
                   .get("tx_packets", 0) > 0]
        self.results["impairment"] = {
            "link": link, "method": kind, "interfaces": [a.name, b.name],
            "devices": [leaf, spine],
            "qdisc_drops": {k: drops.get(k, 0) - qd_before.get(k, 0) for k in drops},
            "flows": [f["id"] for f in crossed],
            "tenants": sorted({str(f["tenant"]) for f in crossed})}

    def qdisc_drops(self, ifaces: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in ifaces:
            text = self.lab.runner.query("tc", "-s", "-j", "qdisc", "show", "dev", i,
                                         ns=self.plan.sw_ns, check=False)
            try:
                out[i] = sum(int(q.get("drops", 0)) for q in json.loads(text or "[]"))
            except ValueError:
                out[i] = 0
        return out

    def step_migrate(self) -> None:
        name = self.opts.migrate
        p = self.plan
        try:
            ep = p.endpoint(name)
        except KeyError:
            raise LabError(f"no endpoint {name!r} in the lab") from None
        hvs = [h.name for h in p.hypervisors]
        target = self.opts.migrate_to or hvs[1 % len(hvs)]
        if target == ep.host:
            target = hvs[(hvs.index(ep.host) + 1) % len(hvs)]
        if target not in hvs:
            raise LabError(f"no hypervisor {target!r} in the lab")
        self.log(f"migrate: {name} {ep.host} -> {target}")
        placement = {**self.lab.journal.placement(), name: target}
        after = build_plan(p.config, placement)
        self.event("migrate", endpoint=name, **{"from": ep.host}, to=target)
        self.lab.runner.run_all(migrate_steps(p, after, name))
        self.lab.plan = after
        peer = "a1" if name != "a1" else "a2"
        self.record_flow(f"ping-{peer}-{name}-migrated", "icmp", peer, name, proto="icmp",
                         sport=None, dport=None, run=lambda: self.ping(peer, name))
        if self.plan.endpoint(name).kind == "vm" and name in ("a2", "b2"):
            src = "a1" if name == "a2" else "b1"
            self.record_flow(f"migrated-{src}-{name}", "udp-probe", src, name, proto="udp",
                             sport=40100, dport=5001,
                             run=lambda: self.udp_flow(src, name, 40100, self.opts.probe_packets))

    def run(self) -> dict[str, Any]:
        started = now_rfc3339()
        for s in self.opts.steps:
            if s not in STEPS:
                raise LabError(f"unknown traffic step {s!r} (steps: {', '.join(STEPS)})")
        for s in STEPS:
            if s in self.opts.steps:
                getattr(self, f"step_{s}")()
        write_inventory(self.lab.runner, self.plan, self.lab.paths, self.inventory_path(),
                        self.lab.journal)
        return self.ground_truth(started)

    def inventory_path(self) -> Path:
        inv = self.lab.journal.of_kind("inventory")
        return Path(inv[-1]["path"]) if inv else self.lab.paths.inventory

    def ground_truth(self, started: str) -> dict[str, Any]:
        p = self.plan
        return {
            "format": 1,
            "generated_by": "fabricscope lab traffic",
            "lab": {**p.config.to_dict(), "collector": p.collector,
                    "created": self.lab.journal.created_at(), "netem": self.lab.netem},
            "started": started,
            "finished": now_rfc3339(),
            "switches": [{"name": s.name, "bridge": s.bridge, "role": s.role, "agent": s.agent,
                          "ports": [{"name": x.name, "ofport": x.ofport,
                                     "ifindex": self.ifindex.get(x.name), "peer": x.peer,
                                     "peer_port": x.peer_port} for x in s.ports]}
                         for s in p.switches],
            "hypervisors": [{"name": h.name, "ip": h.ip, "leaf": h.leaf, "ns": h.ns}
                            for h in p.hypervisors],
            "endpoints": [{"name": e.name, "kind": e.kind, "tenant": e.tenant, "host": e.host,
                           "nics": [{"network": n.network, "vni": p.network(n.network).vni,
                                     "ip": n.ip, "mac": n.mac} for n in e.nics]}
                          for e in p.endpoints],
            "events": self.events,
            "results": self.results,
            "flows": self.flows,
        }


def run_traffic(lab: Lab, opts: TrafficOptions, log: Log) -> dict[str, Any]:
    t0 = time.monotonic()
    gt = Traffic(lab, opts, log).run()
    gt["seconds"] = round(time.monotonic() - t0, 1)
    path = opts.ground_truth or lab.paths.ground_truth
    inside = path.resolve().is_relative_to(lab.paths.run_dir.resolve())
    if inside and not any(r.get("path") == str(path) for r in lab.journal.of_kind("file")):
        lab.journal.append({"kind": "file", "path": str(path)})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(gt, indent=1) + "\n", encoding="utf-8")
    return gt

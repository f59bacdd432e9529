"""The commands that build (and change) the lab, generated from a plan: still pure data.

Each :class:`Step` is one command line (``ip``, ``ovs-vsctl``, ``ovs-ofctl``, ``ethtool``,
``nft``, ...), optionally run inside a namespace, with the state-file record to write
*before* it runs (so ``lab down`` knows about an object even if we crash while creating it).
``fabricscope lab up --dry-run`` prints them without root.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fabricscope.lab.plan import (
    GENEVE_PORT,
    OVERLAY_MTU,
    VXLAN_PORT,
    Chain,
    Endpoint,
    Iface,
    LabPlan,
    Switch,
    Veth,
    overlay_device_names,
)

OVS_SCHEMA_CANDIDATES = (
    "/usr/share/openvswitch/vswitch.ovsschema",
    "/usr/local/share/openvswitch/vswitch.ovsschema",
)
NFT_TABLE = "fabricscope"


@dataclass(frozen=True)
class Step:
    argv: tuple[str, ...]
    ns: str | None = None  # run inside this network namespace (ip netns exec)
    stdin: str | None = None
    ovs: bool = False  # run with the lab's OVS environment (OVS_RUNDIR, ...)
    record: Mapping[str, object] | None = field(default=None, compare=False)
    check: bool = True

    def full_argv(self) -> tuple[str, ...]:
        if self.ns is None:
            return self.argv
        return ("ip", "netns", "exec", self.ns, *self.argv)

    def shell(self) -> str:
        text = shlex.join(self.full_argv())
        if self.stdin is not None:
            text += " <<'EOF'\n" + self.stdin.rstrip("\n") + "\nEOF"
        return text


@dataclass(frozen=True)
class RunPaths:
    """Where the lab keeps its files. Everything the lab writes lives under ``run_dir``."""

    run_dir: Path

    @property
    def state(self) -> Path:
        return self.run_dir / "state.jsonl"

    @property
    def ovs_dir(self) -> Path:
        return self.run_dir / "ovs"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "log"

    @property
    def db(self) -> Path:
        return self.ovs_dir / "conf.db"

    @property
    def db_sock(self) -> Path:
        return self.ovs_dir / "db.sock"

    @property
    def db_remote(self) -> str:
        return f"unix:{self.db_sock}"

    def pidfile(self, daemon: str) -> Path:
        return self.ovs_dir / f"{daemon}.pid"

    def ctl(self, daemon: str) -> Path:
        return self.ovs_dir / f"{daemon}.ctl"

    def ovs_log(self, daemon: str) -> Path:
        return self.ovs_dir / f"{daemon}.log"

    def mgmt(self, bridge: str) -> str:
        return f"unix:{self.ovs_dir / (bridge + '.mgmt')}"

    @property
    def inventory(self) -> Path:
        return self.run_dir / "inventory.yaml"

    @property
    def ground_truth(self) -> Path:
        return self.run_dir / "ground-truth.json"

    def service_pidfile(self, name: str) -> Path:
        return self.log_dir / f"{name}.pid"

    def service_log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def ovs_env(self) -> dict[str, str]:
        d = str(self.ovs_dir)
        return {"OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d, "OVS_SYSCONFDIR": d}


def _ip(ns: str | None, *args: str) -> Step:
    return Step(("ip", *(("-n", ns) if ns else ()), *args))


def vsctl(paths: RunPaths, *args: str) -> Step:
    return Step(("ovs-vsctl", f"--db={paths.db_remote}", "--timeout=20", *args), ovs=True)


def ofctl(paths: RunPaths, cmd: str, bridge: str, *args: str, stdin: str | None = None) -> Step:
    return Step(("ovs-ofctl", "-O", "OpenFlow15", cmd, paths.mgmt(bridge), *args),
                stdin=stdin, ovs=True)


# -- namespaces ---------------------------------------------------------------------------

def namespace_steps(plan: LabPlan) -> list[Step]:
    steps: list[Step] = []
    for ns in plan.namespaces:
        steps.append(Step(("ip", "netns", "add", ns.name),
                          record={"kind": "netns", "name": ns.name, "role": ns.role}))
        # No IPv6 in the lab: keeps router solicitations and MLD out of the samples.
        # Set before any interface exists so every new interface inherits it.
        sysctls = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
        if ns.role in ("router", "vnf"):
            sysctls += ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                        "net.ipv4.conf.default.rp_filter=0"]
        if ns.role == "router":
            # steering sends packets back out of the interface they came in on: no redirects
            sysctls += ["net.ipv4.conf.all.send_redirects=0",
                        "net.ipv4.conf.default.send_redirects=0"]
        if ns.role == "vm":
            sysctls += ["net.ipv4.conf.all.arp_notify=1", "net.ipv4.conf.default.arp_notify=1"]
        steps.append(Step(("sysctl", "-qw", *sysctls), ns=ns.name))
        steps.append(_ip(ns.name, "link", "set", "dev", "lo", "up"))
    return steps


# -- interfaces ---------------------------------------------------------------------------

def veth_steps(v: Veth) -> list[Step]:
    a, b = v.a, v.b
    argv = ["ip", "link", "add", a.name]
    if a.ns:
        argv += ["netns", a.ns]
    argv += ["type", "veth", "peer", "name", b.name]
    if b.ns:
        argv += ["netns", b.ns]
    rec: dict[str, object] = {"kind": "veth", "a_ns": a.ns, "a": a.name, "b_ns": b.ns,
                              "b": b.name, "role": v.role}
    steps = [Step(tuple(argv), record=rec)]
    steps += iface_steps(a) + iface_steps(b)
    return steps


def iface_steps(i: Iface, up: bool = True) -> list[Step]:
    steps: list[Step] = []
    if i.ns is None:  # our own interface in the root namespace: no IPv6 chatter either
        steps.append(Step(("sysctl", "-qw", f"net.ipv6.conf.{i.name}.disable_ipv6=1")))
    attrs: list[str] = []
    if i.mac:
        attrs += ["address", i.mac]
    if i.mtu:
        attrs += ["mtu", str(i.mtu)]
    if attrs:
        steps.append(_ip(i.ns, "link", "set", "dev", i.name, *attrs))
    for a in i.addrs:
        steps.append(_ip(i.ns, "addr", "add", a, "dev", i.name))
    if i.offload_off:
        steps.append(Step(("ethtool", "-K", i.name, "tx", "off", "tso", "off", "gso", "off",
                           "gro", "off"), ns=i.ns))
    if up:
        steps.append(_ip(i.ns, "link", "set", "dev", i.name, "up"))
    return steps


def mgmt_steps(plan: LabPlan) -> list[Step]:
    """The veth from the root namespace (collector side) into the switches namespace."""
    v = plan.mgmt
    steps = veth_steps(v)
    steps[0] = Step(steps[0].argv, record={"kind": "link", "ns": None, "name": v.a.name,
                                           "peer_ns": v.b.ns, "peer": v.b.name})
    return steps


# -- Open vSwitch -------------------------------------------------------------------------

def ovs_schema() -> str:
    for c in OVS_SCHEMA_CANDIDATES:
        if Path(c).is_file():
            return c
    return OVS_SCHEMA_CANDIDATES[0]


def ovs_start_steps(plan: LabPlan, paths: RunPaths) -> list[Step]:
    """One ovsdb-server + ovs-vswitchd pair, in the switches namespace, files in run_dir."""
    ns = plan.sw_ns
    d = paths.ovs_dir
    common = ["--detach", "--no-chdir", "-vconsole:off", "-vsyslog:off"]
    return [
        Step(("ovsdb-tool", "create", str(paths.db), ovs_schema()), ovs=True,
             record={"kind": "file", "path": str(paths.db)}),
        Step(("ovsdb-server", str(paths.db), f"--remote=punix:{paths.db_sock}",
              f"--pidfile={paths.pidfile('ovsdb-server')}",
              f"--unixctl={paths.ctl('ovsdb-server')}",
              f"--log-file={paths.ovs_log('ovsdb-server')}", *common), ns=ns, ovs=True,
             record={"kind": "process", "name": "ovsdb-server", "ns": ns,
                     "pidfile": str(paths.pidfile("ovsdb-server")), "dir": str(d)}),
        vsctl(paths, "--no-wait", "init"),
        # revalidate datapath flows every 100 ms (default 500): counters per group bucket
        # and per OpenFlow rule catch up faster, which keeps `lab traffic` quick
        vsctl(paths, "--no-wait", "set", "Open_vSwitch", ".",
              "other_config:max-revalidator=100"),
        Step(("ovs-vswitchd", paths.db_remote,
              f"--pidfile={paths.pidfile('ovs-vswitchd')}",
              f"--unixctl={paths.ctl('ovs-vswitchd')}",
              f"--log-file={paths.ovs_log('ovs-vswitchd')}", *common), ns=ns, ovs=True,
             record={"kind": "process", "name": "ovs-vswitchd", "ns": ns,
                     "pidfile": str(paths.pidfile("ovs-vswitchd")), "dir": str(d)}),
    ]


def switch_steps(plan: LabPlan, paths: RunPaths, sw: Switch) -> list[Step]:
    c = plan.config
    br = sw.bridge
    args: list[str] = [
        "--", "add-br", br,
        "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure",
        "protocols=OpenFlow10,OpenFlow13,OpenFlow15",
        f"other-config:datapath-id={sw.dpid}", "other-config:disable-in-band=true",
    ]
    for p in sw.ports:
        args += ["--", "add-port", br, p.name,
                 "--", "set", "interface", p.name, f"ofport_request={p.ofport}"]
    args += ["--", "--id=@s", "create", "sflow", f"agent={sw.agent}",
             f'target="{plan.collector}"', f"sampling={c.sampling}", f"polling={c.polling}",
             f"header={c.header_bytes}",
             "--", "set", "bridge", br, "sflow=@s"]
    steps = [vsctl(paths, *args)]
    if sw.groups:
        steps.append(ofctl(paths, "add-groups", br, "-",
                           stdin="".join(g.spec() + "\n" for g in sw.groups)))
    steps.append(ofctl(paths, "add-flows", br, "-",
                       stdin="".join(f.spec() + "\n" for f in sw.flows)))
    return steps


# -- hypervisors and the overlay ------------------------------------------------------------

def overlay_steps(plan: LabPlan) -> list[Step]:
    steps: list[Step] = []
    for h in plan.hypervisors:
        steps.append(_ip(h.ns, "route", "add", "172.16.0.0/16", "via", h.gateway,
                         "dev", h.uplink))
        for net in plan.networks:
            names = overlay_device_names(plan, h, net)
            br = names[0]
            steps.append(_ip(h.ns, "link", "add", br, "mtu", str(OVERLAY_MTU), "type", "bridge"))
            if net.encap == "vxlan":
                vx = names[1]
                steps.append(_ip(h.ns, "link", "add", vx, "type", "vxlan", "id", str(net.vni),
                                 "dstport", str(VXLAN_PORT), "local", h.ip, "dev", h.uplink,
                                 "ttl", "64", "learning"))
                steps.append(_ip(h.ns, "link", "set", "dev", vx, "mtu", str(OVERLAY_MTU),
                                 "master", br, "up"))
                # head-end replication: flood unknown/broadcast to every other hypervisor,
                # learn unicast locations from what arrives
                for o in plan.hypervisors:
                    if o is not h:
                        steps.append(Step(("bridge", "-n", h.ns, "fdb", "append",
                                           "00:00:00:00:00:00", "dev", vx, "dst", o.ip)))
            else:
                others = [o for o in plan.hypervisors if o is not h]
                for gn, o in zip(names[1:], others, strict=True):
                    steps.append(_ip(h.ns, "link", "add", gn, "type", "geneve", "id",
                                     str(net.vni), "remote", o.ip, "dstport",
                                     str(GENEVE_PORT), "ttl", "64"))
                    steps.append(_ip(h.ns, "link", "set", "dev", gn, "mtu", str(OVERLAY_MTU),
                                     "master", br))
                    # split horizon: a frame from one tunnel never goes out of another
                    steps.append(Step(("bridge", "-n", h.ns, "link", "set", "dev", gn,
                                       "isolated", "on")))
                    steps.append(_ip(h.ns, "link", "set", "dev", gn, "up"))
            steps.append(_ip(h.ns, "link", "set", "dev", br, "up"))
    return steps


def endpoint_veths(plan: LabPlan, ep: Endpoint) -> list[Veth]:
    names = {n.ifname for n in ep.nics}
    return [v for v in plan.veths if v.role == "vnic" and v.a.ns == ep.ns and v.a.name in names]


def endpoint_steps(plan: LabPlan, ep: Endpoint) -> list[Step]:
    """Plug an endpoint's NICs into its hypervisor's bridges, then configure it."""
    steps: list[Step] = []
    h = plan.hypervisor(ep.host)
    for v, nic in zip(endpoint_veths(plan, ep), ep.nics, strict=True):
        net = plan.network(nic.network)
        br = overlay_device_names(plan, h, net)[0]
        assert v.b.ns == h.ns
        steps.append(veth_steps(v)[0])
        # the hypervisor side first, so the VM's gratuitous ARP (arp_notify) gets through
        steps += iface_steps(v.b, up=False)
        steps.append(_ip(h.ns, "link", "set", "dev", v.b.name, "master", br, "up"))
        steps += iface_steps(v.a)
    if ep.gateway:
        steps.append(_ip(ep.ns, "route", "add", "default", "via", ep.gateway))
    if ep.kind == "vnf":
        steps.append(Step(("nft", "-f", "-"), ns=ep.ns, stdin=firewall_ruleset(plan, ep)))
    return steps


def firewall_ruleset(plan: LabPlan, fw: Endpoint) -> str:
    """nftables for the firewall VNF: https from tenant-a's first network to its second
    passes (and the replies), a2 is blocked, everything else is dropped and counted."""
    chain = next(c for c in plan.chains if fw.name in c.vnfs)
    src, dst = plan.network(chain.src_net), plan.network(chain.dst_net)
    blocked = plan.endpoint("a2").nics[0].ip
    return (
        f"table inet {NFT_TABLE} {{\n"
        "  counter allowed { }\n"
        "  counter blocked { }\n"
        "  counter dropped { }\n"
        "  chain forward {\n"
        "    type filter hook forward priority 0; policy drop;\n"
        "    ct state established,related accept\n"
        f"    ip saddr {blocked} {chain.proto} dport {chain.dport} counter name blocked drop\n"
        f"    ip saddr {src.cidr} ip daddr {dst.cidr} {chain.proto} dport {chain.dport} "
        "ct state new counter name allowed accept\n"
        "    counter name dropped drop\n"
        "  }\n"
        "}\n"
    )


# -- services (servers the traffic step talks to) ------------------------------------------

SERVICES: tuple[tuple[str, str, str, int], ...] = (
    # (endpoint, kind, name, port)
    ("a2", "iperf3", "iperf-a2", 5201),
    ("b2", "iperf3", "iperf-b2", 5201),
    ("a3", "iperf3", "iperf-a3-443", 443),
    ("a2", "sink", "sink-a2", 5001),
    ("b2", "sink", "sink-b2", 5001),
)


def service_steps(plan: LabPlan, paths: RunPaths) -> list[Step]:
    steps: list[Step] = []
    for ep_name, kind, name, port in SERVICES:
        ep = plan.endpoint(ep_name)
        pid, log = paths.service_pidfile(name), paths.service_log(name)
        rec = {"kind": "process", "name": name, "ns": ep.ns, "pidfile": str(pid)}
        if kind == "iperf3":
            argv: tuple[str, ...] = ("iperf3", "-s", "-D", "-p", str(port), "--pidfile",
                                     str(pid), "--logfile", str(log))
        else:
            argv = (sys.executable, "-m", "fabricscope.lab.udpgen", "sink", "--port",
                    str(port), "--pidfile", str(pid), "--daemon")
        steps.append(Step(argv, ns=ep.ns, record=rec))
    return steps


# -- changes made by `lab traffic` -----------------------------------------------------------

def chain_steps(plan: LabPlan, chain: Chain, insert: bool) -> list[Step]:
    """Steer the chain's traffic through its VNF (policy routing on the classifier)."""
    if len(chain.vnfs) != 1:
        raise ValueError("the lab steers through exactly one VNF")
    rt = plan.endpoint(chain.classifier)
    fw = plan.endpoint(chain.vnfs[0])
    src, dst = plan.network(chain.src_net), plan.network(chain.dst_net)
    rin, rout = rt.nic(src.name), rt.nic(dst.name)
    fin, fout = fw.nic(src.name), fw.nic(dst.name)
    ns = rt.ns
    if not insert:
        return [
            Step(("ip", "-n", ns, "rule", "del", "priority", str(chain.table_fwd)), check=False),
            Step(("ip", "-n", ns, "rule", "del", "priority", str(chain.table_rev)), check=False),
            Step(("ip", "-n", ns, "route", "flush", "table", str(chain.table_fwd)), check=False),
            Step(("ip", "-n", ns, "route", "flush", "table", str(chain.table_rev)), check=False),
        ]
    return [
        _ip(ns, "route", "replace", dst.cidr, "via", fin.ip, "dev", rin.ifname,
            "table", str(chain.table_fwd)),
        _ip(ns, "rule", "add", "iif", rin.ifname, "ipproto", chain.proto, "dport",
            str(chain.dport), "lookup", str(chain.table_fwd), "priority", str(chain.table_fwd)),
        _ip(ns, "route", "replace", src.cidr, "via", fout.ip, "dev", rout.ifname,
            "table", str(chain.table_rev)),
        _ip(ns, "rule", "add", "iif", rout.ifname, "ipproto", chain.proto, "sport",
            str(chain.dport), "lookup", str(chain.table_rev), "priority", str(chain.table_rev)),
    ]


def migrate_steps(before: LabPlan, after: LabPlan, name: str) -> list[Step]:
    """Move an endpoint to another hypervisor: unplug its NICs, plug them in elsewhere
    (same MACs and addresses), announce it with a gratuitous ARP."""
    old, new = before.endpoint(name), after.endpoint(name)
    old_hv = before.hypervisor(old.host)
    steps = [_ip(old_hv.ns, "link", "del", nic.hv_ifname) for nic in old.nics]
    steps += endpoint_steps(after, new)
    if new.kind == "vnf":  # the ruleset is still there, do not load it twice
        steps = [s for s in steps if s.argv[:1] != ("nft",)]
    for nic in new.nics:
        steps.append(Step((sys.executable, "-m", "fabricscope.lab.udpgen", "garp", "--iface",
                           nic.ifname, "--ip", nic.ip, "--mac", nic.mac), ns=new.ns))
    return steps


def impair_steps(plan: LabPlan, leaf: str, spine: str, netem: bool, on: bool) -> list[Step]:
    """Impair both directions of a leaf-spine link: tc netem (delay + loss) where the kernel
    has it, else a token bucket (tbf) that caps the rate, so queues build and packets drop."""
    a, b = plan.fabric_link(leaf, spine)
    ns = plan.sw_ns
    steps: list[Step] = []
    for port in (a, b):
        if not on:
            steps.append(Step(("tc", "-n", ns, "qdisc", "del", "dev", port.name, "root"),
                              check=False))
        elif netem:
            steps.append(Step(("tc", "-n", ns, "qdisc", "replace", "dev", port.name, "root",
                               "netem", "delay", "20ms", "5ms", "loss", "5%")))
        else:
            steps.append(Step(("tc", "-n", ns, "qdisc", "replace", "dev", port.name, "root",
                               "tbf", "rate", "2mbit", "burst", "8kb", "latency", "30ms")))
    return steps


def up_steps(plan: LabPlan, paths: RunPaths) -> Iterator[tuple[str, list[Step]]]:
    """Every step of ``lab up``, in phases (name, steps)."""
    yield "namespaces", namespace_steps(plan)
    yield "collector link", mgmt_steps(plan)
    yield "Open vSwitch", ovs_start_steps(plan, paths)
    fabric: list[Step] = []
    for v in plan.veths:
        if v.role in ("fabric", "access"):
            fabric += veth_steps(v)
    yield "fabric links", fabric
    sw: list[Step] = []
    for s in plan.switches:
        sw += switch_steps(plan, paths, s)
    yield "switches", sw
    yield "overlay", overlay_steps(plan)
    eps: list[Step] = []
    for ep in plan.endpoints:
        eps += endpoint_steps(plan, ep)
    yield "endpoints", eps
    yield "services", service_steps(plan, paths)


def capture_sink_step(plan: LabPlan, paths: RunPaths) -> Step:
    """A socket on the collector address (root namespace) for ``lab up --capture``, so the
    switches' datagrams are received, not answered with ICMP port unreachable."""
    pid = paths.service_pidfile("capture-sink")
    return Step((sys.executable, "-m", "fabricscope.lab.udpgen", "sink", "--address",
                 plan.collector_ip, "--port", str(plan.config.collector_port), "--pidfile",
                 str(pid), "--daemon"),
                record={"kind": "process", "name": "capture-sink", "ns": None,
                        "pidfile": str(pid), "comm": "python"})


def all_up_steps(plan: LabPlan, paths: RunPaths) -> list[Step]:
    return [s for _, steps in up_steps(plan, paths) for s in steps]


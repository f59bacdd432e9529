"""The lab's topology as pure data: namespaces, veths, addresses, MACs, OpenFlow rules and
groups, tenants, endpoints, VNFs and the service chain.

Nothing here touches the system: :func:`build_plan` is a deterministic function of a
:class:`LabConfig` (and of where VMs currently are, after a migration), so the plan is
unit-testable without root and ``lab status``/``lab traffic``/``lab down`` rebuild the very
same plan from the configuration saved in the lab's state file.

Addressing (``l`` = leaf number, ``s`` = spine number, ``k`` = slot of a hypervisor on its
leaf, counting from 0):

- switch sFlow agent addresses: spine ``s`` = 172.30.1.s, leaf ``l`` = 172.30.2.l
- access link leaf ``l`` <-> hypervisor: 172.16.l.(4k)/30, leaf gateway .4k+1,
  hypervisor (tunnel endpoint) .4k+2; every rack is 172.16.l.0/24, the fabric 172.16.0.0/16
- tenant networks: tenant-a 10.0.1.0/24 (VNI 1001) and 10.0.2.0/24 (VNI 1002); tenant-b
  10.0.1.0/24 (VNI 2001), deliberately the same addresses as tenant-a's first network
- collector link root <-> switches namespace: ``mgmt_net`` (default 169.254.250.0/30), the
  collector listens on its first address in the root namespace
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from fabricscope.errors import UsageError

IFNAMSIZ = 15  # Linux interface names: at most 15 characters
DEFAULT_RUN_DIR = "/run/fabricscope-lab"
DEFAULT_PREFIX = "fs-"
VXLAN_PORT = 4789
GENEVE_PORT = 6081
FABRIC_NET = "172.16.0.0/16"
UNDERLAY_MTU = 1500
OVERLAY_MTU = 1450  # 1500 - 50 bytes of outer Ethernet/IPv4/UDP/VXLAN
ECMP_GROUP = 1
# The outer 5-tuple, hashed by the leaves' select groups (VXLAN/GENEVE carry the inner
# flow's hash in the outer UDP source port, so different inner flows spread over spines).
ECMP_FIELDS = ("ip_src", "ip_dst", "nw_proto", "udp_src", "udp_dst", "tcp_src", "tcp_dst")
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,3}-$")


@dataclass(frozen=True)
class LabConfig:
    """What ``lab up`` was asked for. Saved in the state file; the plan derives from it."""

    spines: int = 2
    leaves: int = 2
    hosts: int = 4
    prefix: str = DEFAULT_PREFIX
    run_dir: str = DEFAULT_RUN_DIR
    mgmt_net: str = "169.254.250.0/30"
    collector_port: int = 6343
    sampling: int = 64
    polling: int = 10
    header_bytes: int = 128
    # Encapsulation of tenant-b's network: "vxlan" or "geneve" (``lab up --encap-b auto``
    # resolves to geneve when the kernel has it, before the plan is built).
    encap_b: str = "vxlan"

    def validate(self) -> None:
        def rng(name: str, value: int, lo: int, hi: int) -> None:
            if not lo <= value <= hi:
                raise UsageError(f"--{name.replace('_', '-')} must be between {lo} and {hi}, "
                                 f"got {value}")

        rng("spines", self.spines, 1, 8)
        rng("leaves", self.leaves, 1, 8)
        rng("hosts", self.hosts, 2, 32)
        rng("sampling", self.sampling, 1, 1 << 24)
        rng("polling", self.polling, 1, 3600)
        rng("header_bytes", self.header_bytes, 64, 256)
        rng("collector_port", self.collector_port, 1, 65535)
        if self.hosts > self.leaves * 63:
            raise UsageError(f"--hosts {self.hosts}: at most 63 hypervisors per leaf")
        if not _PREFIX_RE.match(self.prefix):
            raise UsageError(f"--prefix {self.prefix!r}: 1-4 lowercase letters or digits "
                             "(starting with a letter) followed by '-', e.g. 'fs-'")
        if self.encap_b not in ("vxlan", "geneve"):
            raise UsageError(f"encapsulation {self.encap_b!r}: expected vxlan or geneve")
        try:
            net = ipaddress.IPv4Network(self.mgmt_net)
        except ValueError:
            raise UsageError(f"--mgmt-net {self.mgmt_net!r} is not an IPv4 prefix "
                             "with host bits zero") from None
        if net.prefixlen > 30:
            raise UsageError(f"--mgmt-net {self.mgmt_net}: needs at least 2 addresses (/30)")

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> LabConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Iface:
    """One network interface the lab creates (an end of a veth). ``ns`` None = root."""

    ns: str | None
    name: str
    mac: str | None = None
    addrs: tuple[str, ...] = ()  # CIDR notation
    mtu: int | None = None
    # Turn TX checksum/TSO/GSO/GRO off: a userspace (netdev) datapath reads frames with
    # AF_PACKET and cannot complete partial checksums or split GSO super-frames.
    offload_off: bool = True


@dataclass(frozen=True)
class Veth:
    a: Iface
    b: Iface
    role: str  # "mgmt" | "fabric" (switch-switch) | "access" (leaf-hypervisor) | "vnic"


@dataclass(frozen=True)
class SwitchPort:
    name: str  # kernel interface name = OVS port name
    ofport: int
    mac: str
    peer: str  # the device or host at the other end
    peer_port: str  # its interface name
    role: str  # "uplink" (leaf->spine), "downlink" (spine->leaf), "access" (leaf->host)


@dataclass(frozen=True)
class Flow:
    priority: int
    match: str
    actions: str
    table: int = 0

    def spec(self) -> str:
        m = f"table={self.table},priority={self.priority}"
        if self.match:
            m += "," + self.match
        return f"{m} actions={self.actions}"


@dataclass(frozen=True)
class Bucket:
    bucket_id: int
    actions: str
    to: str  # the device this bucket forwards to (for reading the per-bucket counters)


@dataclass(frozen=True)
class Group:
    group_id: int
    buckets: tuple[Bucket, ...]
    fields: tuple[str, ...] = ECMP_FIELDS

    def spec(self) -> str:
        head = (f"group_id={self.group_id},type=select,selection_method=hash,"
                f"fields({','.join(self.fields)})")
        return head + "".join(f",bucket=bucket_id:{b.bucket_id},weight:100,actions={b.actions}"
                              for b in self.buckets)


@dataclass(frozen=True)
class Switch:
    name: str  # device name: spine1, leaf1
    bridge: str  # OVS bridge name, prefixed: fs-s1, fs-l1
    role: str  # "spine" | "leaf"
    index: int
    agent: str  # sFlow agent address (distinct per switch)
    dpid: str
    ports: tuple[SwitchPort, ...]
    groups: tuple[Group, ...]
    flows: tuple[Flow, ...]

    def port(self, name: str) -> SwitchPort:
        for p in self.ports:
            if p.name == name:
                return p
        raise KeyError(name)


@dataclass(frozen=True)
class Network:
    name: str
    tenant: str
    vni: int
    cidr: str
    encap: str  # "vxlan" | "geneve"
    gateway: str | None = None

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.cidr).prefixlen


@dataclass(frozen=True)
class Tenant:
    name: str
    networks: tuple[str, ...]


@dataclass(frozen=True)
class Hypervisor:
    name: str  # hv1
    ns: str  # fs-hv1
    index: int  # 1-based
    leaf: str  # device name of its leaf
    leaf_port: str  # the leaf's interface name towards it
    uplink: str  # its own interface name (in its namespace)
    ip: str  # tunnel endpoint address
    prefixlen: int
    gateway: str
    mac: str


@dataclass(frozen=True)
class Nic:
    index: int
    network: str
    ip: str
    mac: str
    ifname: str  # inside the endpoint's namespace
    hv_ifname: str  # the peer, inside the hypervisor's namespace (a port of the bridge)


@dataclass(frozen=True)
class Endpoint:
    name: str  # a1, b2, fw1, rta
    kind: str  # "vm" | "vnf" | "router"
    tenant: str
    ns: str
    host: str  # hypervisor name
    nics: tuple[Nic, ...]
    gateway: str | None = None  # default route (VMs)
    description: str = ""

    def nic(self, network: str) -> Nic:
        for n in self.nics:
            if n.network == network:
                return n
        raise KeyError(network)


@dataclass(frozen=True)
class Chain:
    """Service chain: traffic from ``src_net`` to ``dst_net`` with ``proto``/``dport`` is
    steered by policy routing on ``classifier`` (the tenant's router) through ``vnfs``,
    both directions (symmetric, as a stateful firewall needs)."""

    name: str
    tenant: str
    classifier: str
    vnfs: tuple[str, ...]
    proto: str
    dport: int
    src_net: str
    dst_net: str
    table_fwd: int = 100
    table_rev: int = 101


@dataclass(frozen=True)
class Namespace:
    name: str
    role: str  # "switches" | "hypervisor" | "vm" | "vnf" | "router"


@dataclass(frozen=True)
class LabPlan:
    config: LabConfig
    namespaces: tuple[Namespace, ...]
    mgmt: Veth
    veths: tuple[Veth, ...]  # fabric + access + vnic (mgmt apart)
    switches: tuple[Switch, ...]
    hypervisors: tuple[Hypervisor, ...]
    tenants: tuple[Tenant, ...]
    networks: tuple[Network, ...]
    endpoints: tuple[Endpoint, ...]
    chains: tuple[Chain, ...]
    placement: Mapping[str, str] = field(default_factory=dict)

    # -- names
    @property
    def prefix(self) -> str:
        return self.config.prefix

    @property
    def sw_ns(self) -> str:
        return self.config.prefix + "sw"

    @property
    def collector_ip(self) -> str:
        return str(next(ipaddress.IPv4Network(self.config.mgmt_net).hosts()))

    @property
    def collector(self) -> str:
        return f"{self.collector_ip}:{self.config.collector_port}"

    # -- lookups
    def switch(self, name: str) -> Switch:
        for s in self.switches:
            if s.name == name or s.bridge == name:
                return s
        raise KeyError(name)

    def hypervisor(self, name: str) -> Hypervisor:
        for h in self.hypervisors:
            if h.name == name or h.ns == name:
                return h
        raise KeyError(name)

    def endpoint(self, name: str) -> Endpoint:
        for e in self.endpoints:
            if e.name == name:
                return e
        raise KeyError(name)

    def network(self, name: str) -> Network:
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)

    def chain(self, name: str) -> Chain:
        for c in self.chains:
            if c.name == name:
                return c
        raise KeyError(name)

    def all_veths(self) -> Iterator[Veth]:
        yield self.mgmt
        yield from self.veths

    def spines(self) -> tuple[Switch, ...]:
        return tuple(s for s in self.switches if s.role == "spine")

    def leaves(self) -> tuple[Switch, ...]:
        return tuple(s for s in self.switches if s.role == "leaf")

    def fabric_link(self, leaf: str, spine: str) -> tuple[SwitchPort, SwitchPort]:
        """The two ports of the leaf <-> spine link (leaf side first)."""
        lf = self.switch(leaf)
        for p in lf.ports:
            if p.role == "uplink" and p.peer == self.switch(spine).name:
                return p, self.switch(spine).port(p.peer_port)
        raise KeyError(f"{leaf}-{spine}")


def mac(kind: int, a: int, b: int) -> str:
    """Locally administered, deterministic: 02:f5:<kind>:<a>:<b high>:<b low>."""
    return f"02:f5:{kind:02x}:{a:02x}:{(b >> 8) & 0xFF:02x}:{b & 0xFF:02x}"


_KIND_SPINE_PORT, _KIND_LEAF_PORT, _KIND_HV, _KIND_NIC, _KIND_MGMT = 1, 2, 3, 4, 5


def _arp_responder(port: int, ip: str, mac_: str) -> Flow:
    """Answer ARP requests for ``ip`` arriving on ``port`` with ``mac_`` (the gateway)."""
    return Flow(400, f"arp,in_port={port},arp_op=1,arp_tpa={ip}",
                "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],"
                f"set_field:{mac_}->eth_src,set_field:2->arp_op,"
                "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],"
                "move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"
                f"set_field:{mac_}->arp_sha,set_field:{ip}->arp_spa,IN_PORT")


def _route(dst: str, port: int, src_mac: str, dst_mac: str, priority: int = 300) -> Flow:
    return Flow(priority, f"ip,nw_dst={dst}",
                f"dec_ttl,set_field:{src_mac}->eth_src,set_field:{dst_mac}->eth_dst,"
                f"output:{port}")


# The fixed overlay: two tenants, overlapping addresses, a router, a firewall VNF.
_NETWORKS = (
    ("a-net1", "tenant-a", 1001, "10.0.1.0/24", "10.0.1.1"),
    ("a-net2", "tenant-a", 1002, "10.0.2.0/24", "10.0.2.1"),
    ("b-net1", "tenant-b", 2001, "10.0.1.0/24", None),
)
# name, kind, tenant, [(network, ip)], description
_ENDPOINTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...], str], ...] = (
    ("a1", "vm", "tenant-a", (("a-net1", "10.0.1.11"),), "client"),
    ("a2", "vm", "tenant-a", (("a-net1", "10.0.1.12"),), "iperf3 and UDP sink"),
    ("a3", "vm", "tenant-a", (("a-net2", "10.0.2.13"),), "web server (tcp/443)"),
    ("b1", "vm", "tenant-b", (("b-net1", "10.0.1.11"),), "client, same address as a1"),
    ("b2", "vm", "tenant-b", (("b-net1", "10.0.1.12"),), "iperf3 and UDP sink, same address as a2"),
    ("rta", "router", "tenant-a", (("a-net1", "10.0.1.1"), ("a-net2", "10.0.2.1")),
     "tenant-a's router between a-net1 and a-net2; classifier of the chain"),
    ("fw1", "vnf", "tenant-a", (("a-net1", "10.0.1.254"), ("a-net2", "10.0.2.254")),
     "firewall: forwards https from a-net1 to a-net2, blocks a2, drops the rest"),
)


def default_placement(hosts: int) -> dict[str, str]:
    """Endpoint -> hypervisor, spread so that most conversations cross the spines."""
    h = [f"hv{i}" for i in range(1, hosts + 1)]
    n = hosts
    return {"a1": h[0], "b1": h[1 % n], "fw1": h[1 % n], "a2": h[n // 2],
            "rta": h[n // 2], "a3": h[n - 1], "b2": h[n - 1]}


def build_plan(config: LabConfig, placement: Mapping[str, str] | None = None) -> LabPlan:
    """The whole lab for ``config``; ``placement`` overrides where endpoints run."""
    config.validate()
    p = config.prefix
    sw_ns = p + "sw"
    spines = range(1, config.spines + 1)
    leaves = range(1, config.leaves + 1)

    # racks: hypervisor k (0-based) sits under leaf k * leaves // hosts
    rack: dict[int, list[int]] = {lf: [] for lf in leaves}
    for k in range(config.hosts):
        rack[k * config.leaves // config.hosts + 1].append(k + 1)

    hypervisors: list[Hypervisor] = []
    veths: list[Veth] = []
    leaf_ports: dict[int, list[SwitchPort]] = {lf: [] for lf in leaves}
    spine_ports: dict[int, list[SwitchPort]] = {s: [] for s in spines}

    for lf in leaves:
        for s in spines:
            up = SwitchPort(f"{p}l{lf}-s{s}", s, mac(_KIND_LEAF_PORT, lf, s), f"spine{s}",
                            f"{p}s{s}-l{lf}", "uplink")
            down = SwitchPort(f"{p}s{s}-l{lf}", lf, mac(_KIND_SPINE_PORT, s, lf), f"leaf{lf}",
                              f"{p}l{lf}-s{s}", "downlink")
            leaf_ports[lf].append(up)
            spine_ports[s].append(down)
            veths.append(Veth(Iface(sw_ns, up.name, up.mac, mtu=UNDERLAY_MTU),
                              Iface(sw_ns, down.name, down.mac, mtu=UNDERLAY_MTU), "fabric"))
        for slot, hv in enumerate(rack[lf]):
            ofport = 100 + slot
            base = ipaddress.IPv4Address(f"172.16.{lf}.0") + 4 * slot
            gw, ip = str(base + 1), str(base + 2)
            hv_ns = f"{p}hv{hv}"
            port = SwitchPort(f"{p}l{lf}-hv{hv}", ofport, mac(_KIND_LEAF_PORT, lf, ofport),
                              f"hv{hv}", f"{p}ul0", "access")
            leaf_ports[lf].append(port)
            h = Hypervisor(f"hv{hv}", hv_ns, hv, f"leaf{lf}", port.name, f"{p}ul0", ip, 30, gw,
                           mac(_KIND_HV, 0, hv))
            hypervisors.append(h)
            veths.append(Veth(Iface(sw_ns, port.name, port.mac, mtu=UNDERLAY_MTU),
                              Iface(hv_ns, h.uplink, h.mac, (f"{ip}/30",), UNDERLAY_MTU),
                              "access"))
    hypervisors.sort(key=lambda h: h.index)

    switches: list[Switch] = []
    for s in spines:
        flows = [_route(f"172.16.{lf}.0/24", port.ofport, port.mac, mac(_KIND_LEAF_PORT, lf, s))
                 for lf, port in zip(leaves, spine_ports[s], strict=True)]
        flows.append(Flow(0, "", "drop"))
        switches.append(Switch(f"spine{s}", f"{p}s{s}", "spine", s, f"172.30.1.{s}",
                               f"{0x100 + s:016x}", tuple(spine_ports[s]), (), tuple(flows)))
    for lf in leaves:
        flows = []
        for port in leaf_ports[lf]:
            if port.role != "access":
                continue
            h = next(x for x in hypervisors if x.leaf_port == port.name)
            flows.append(_arp_responder(port.ofport, h.gateway, port.mac))
            flows.append(_route(f"{h.ip}", port.ofport, port.mac, h.mac))
        groups: tuple[Group, ...] = ()
        if config.leaves > 1:
            # unknown addresses of our own rack: drop (never bounce them through a spine)
            flows.append(Flow(250, f"ip,nw_dst=172.16.{lf}.0/24", "drop"))
            buckets = tuple(
                Bucket(i, f"set_field:{up.mac}->eth_src,"
                          f"set_field:{mac(_KIND_SPINE_PORT, up.ofport, lf)}->eth_dst,"
                          f"output:{up.ofport}", up.peer)
                for i, up in enumerate(x for x in leaf_ports[lf] if x.role == "uplink"))
            groups = (Group(ECMP_GROUP, buckets),)
            flows.append(Flow(200, f"ip,nw_dst={FABRIC_NET}", f"dec_ttl,group:{ECMP_GROUP}"))
        flows.append(Flow(0, "", "drop"))
        switches.append(Switch(f"leaf{lf}", f"{p}l{lf}", "leaf", lf, f"172.30.2.{lf}",
                               f"{0x200 + lf:016x}", tuple(leaf_ports[lf]), groups,
                               tuple(flows)))

    networks = tuple(Network(name, tenant, vni, cidr,
                             config.encap_b if tenant == "tenant-b" else "vxlan", gw)
                     for name, tenant, vni, cidr, gw in _NETWORKS)
    tenants = tuple(Tenant(t, tuple(n.name for n in networks if n.tenant == t))
                    for t in dict.fromkeys(n.tenant for n in networks))

    place = default_placement(config.hosts)
    if placement:
        for ep_name, hv_name in placement.items():
            if ep_name not in place:
                raise UsageError(f"no endpoint {ep_name!r} in the lab")
            if hv_name not in {h.name for h in hypervisors}:
                raise UsageError(f"no hypervisor {hv_name!r} in the lab")
            place[ep_name] = hv_name
    by_name = {h.name: h for h in hypervisors}
    endpoints: list[Endpoint] = []
    for ordinal, (name, kind, tenant, nic_specs, desc) in enumerate(_ENDPOINTS, start=1):
        ns = p + name
        nics = tuple(Nic(i, net, ip, mac(_KIND_NIC, ordinal, i), f"{p}eth{i}", f"{p}{name}-{i}")
                     for i, (net, ip) in enumerate(nic_specs))
        gateway = None
        if kind == "vm":
            gateway = next(n.gateway for n in networks if n.name == nic_specs[0][0])
        ep = Endpoint(name, kind, tenant, ns, place[name], nics, gateway, desc)
        endpoints.append(ep)
        host = by_name[ep.host]
        for nic in nics:
            net = next(n for n in networks if n.name == nic.network)
            veths.append(Veth(
                Iface(ns, nic.ifname, nic.mac, (f"{nic.ip}/{net.prefixlen}",), OVERLAY_MTU),
                Iface(host.ns, nic.hv_ifname, None, (), OVERLAY_MTU), "vnic"))

    chains = (Chain("web-chain", "tenant-a", "rta", ("fw1",), "tcp", 443, "a-net1", "a-net2"),)

    mgmt_net = ipaddress.IPv4Network(config.mgmt_net)
    hosts_iter = mgmt_net.hosts()
    coll_ip, sw_ip = next(hosts_iter), next(hosts_iter)
    mgmt = Veth(Iface(None, f"{p}mgmt0", mac(_KIND_MGMT, 0, 0),
                      (f"{coll_ip}/{mgmt_net.prefixlen}",), offload_off=False),
                Iface(sw_ns, f"{p}mgmt1", mac(_KIND_MGMT, 0, 1),
                      (f"{sw_ip}/{mgmt_net.prefixlen}",), offload_off=False), "mgmt")

    namespaces = [Namespace(sw_ns, "switches")]
    namespaces += [Namespace(h.ns, "hypervisor") for h in hypervisors]
    namespaces += [Namespace(e.ns, e.kind) for e in endpoints]

    return LabPlan(config, tuple(namespaces), mgmt, tuple(veths), tuple(switches),
                   tuple(hypervisors), tenants, networks, tuple(endpoints), chains,
                   dict(place))


def names_by_namespace(plan: LabPlan) -> dict[str | None, list[str]]:
    """Every interface name the plan creates, per namespace (None = root)."""
    out: dict[str | None, list[str]] = {}
    for v in plan.all_veths():
        for end in (v.a, v.b):
            out.setdefault(end.ns, []).append(end.name)
    for h in plan.hypervisors:
        for n in plan.networks:
            out.setdefault(h.ns, []).extend(overlay_device_names(plan, h, n))
    for s in plan.switches:  # the bridges' internal ports live in the switches namespace
        out.setdefault(plan.sw_ns, []).append(s.bridge)
    return out


def overlay_device_names(plan: LabPlan, hv: Hypervisor, net: Network) -> list[str]:
    """The Linux bridge and tunnel device(s) of ``net`` on ``hv``."""
    p = plan.prefix
    names = [f"{p}br{net.vni}"]
    if net.encap == "vxlan":
        names.append(f"{p}vx{net.vni}")
    else:  # GENEVE devices are point to point: one per remote hypervisor
        names += [f"{p}gn{net.vni}-{o.index}" for o in plan.hypervisors if o is not hv]
    return names

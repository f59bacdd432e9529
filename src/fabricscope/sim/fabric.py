"""The simulated fabric: pure data built from :class:`SimParams` and a seeded generator.

Underlay (a two-tier Clos)::

    spine-1 ... spine-S          each spine: ifIndex l+1 (eth<l+1>) cabled to leaf l
       |  \\     /  |
    leaf-1 ... leaf-L            each leaf: host ports ifIndex 1..H (eth1..ethH), a gateway
     | | |                       port H+1 where a gateway node hangs, uplinks
    hosts (hypervisors)          ifIndex U+s (U = max(49, H+2)) to spine s

Every switch exports sFlow from its agent address (10.255.x.y) to the collector.
Hypervisor VTEPs: 172.16.0.0/12 (``172.16.0.0 + leaf*256 + port``) or, with an IPv6
underlay, ``fd00:fab:0:<leaf>::<port>``.

Overlay: tenants with the same three subnets (web 10.1.0.0/16, app 10.2.0.0/16,
db 10.3.0.0/16) on different VNIs (``10000 + 10*tenant + net``); VMs placed on
hypervisors; a gateway endpoint per tenant on a gateway node (north-south traffic from
external clients enters there); VNFs as VMs with an ingress and an egress port; chains
(networking-sfc port chains) that steer the tenant's inbound HTTPS (tcp/443 from its
gateway to its web subnet) through ordered groups of VNFs; and the events of the run.
Nothing here draws traffic (see ``traffic.py``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fabricscope.sim import hashing as H
from fabricscope.sim.params import ENCAPS, SimParams

I64 = NDArray[np.int64]
U32 = NDArray[np.uint32]

NET_ROLES = ("web", "app", "db")
NET_SUBNETS = ("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16")
ENCAP_CODE = {"vxlan": 0, "geneve": 1, "nvgre": 2}
TENANT_NAMES = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell",
                "cyberdyne", "soylent", "wonka", "aperture")
VNF_KINDS = ("firewall", "load-balancer", "ids")

EP_VM = 0
EP_GATEWAY = 1
EP_VNF_IN = 2
EP_VNF_OUT = 3
EP_KIND_NAMES = ("vm", "gateway", "vnf-port", "vnf-port")


def ipv4(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def ipv4_str(v: int) -> str:
    v = int(v)
    return f"{v >> 24 & 255}.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}"


def mac_str(v: int) -> str:
    h = f"{int(v):012x}"
    return f"{h[0:2]}:{h[2:4]}:{h[4:6]}:{h[6:8]}:{h[8:10]}:{h[10:12]}"


@dataclass
class ChainVersion:
    """A chain as it is from ``t_from`` (ns, inclusive) to ``t_to`` (exclusive)."""

    t_from: int | None
    t_to: int | None
    groups: list[list[int]]  # VNF indices per group


@dataclass
class Chain:
    index: int
    name: str
    chain_id: int
    tenant: int
    versions: list[ChainVersion]

    def version_at(self, t: int) -> ChainVersion:
        for v in self.versions:
            if (v.t_from is None or v.t_from <= t) and (v.t_to is None or t < v.t_to):
                return v
        return self.versions[-1]


@dataclass
class Vnf:
    index: int
    name: str
    kind: str
    tenant: int
    chain: int
    host: int
    ep_in: int
    ep_out: int
    valid_from: int | None = None


@dataclass
class Event:
    """One event on the timeline; ``info`` is what truth.json says about it."""

    kind: str
    t_from: int
    t_to: int | None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fabric:
    params: SimParams
    # devices: spines 0..S-1, leaves S..S+L-1
    dev_name: list[str]
    dev_role: list[str]
    dev_agent: U32
    dev_mac: NDArray[np.uint64]
    # interfaces (global ids)
    if_dev: I64
    if_index: I64
    if_name: list[str]
    if_speed: NDArray[np.uint64]
    if_peer_label: list[str]
    leaf_host_if: I64  # [leaf, port0..H] (port H = gateway port, -1 when none)
    leaf_up_if: I64  # [leaf, spine]
    spine_down_if: I64  # [spine, leaf]
    # hosts: hypervisors 0..L*H-1 (leaf-major), then gateway nodes
    host_name: list[str]
    host_role: list[str]
    host_leaf: I64
    host_if: I64  # the leaf interface the host is cabled to
    host_mac: NDArray[np.uint64]
    host_vtep: U32  # [host, 4] words (IPv4: word 0 only)
    host_vtep_text: list[str]
    # tenants and networks
    tenant_name: list[str]
    net_name: list[str]
    net_tenant: I64
    net_role: I64
    net_vni: I64
    net_encap: I64
    # endpoints: VMs, gateways, VNF ports
    ep_name: list[str]
    ep_kind: I64
    ep_tenant: I64
    ep_net: I64
    ep_host: I64  # host at the start of the run
    ep_ip: U32
    ep_mac: NDArray[np.uint64]
    ep_valid_from: list[int | None]
    tenant_gw: I64  # gateway endpoint per tenant
    tenant_role_eps: list[list[I64]]  # [tenant][role] -> endpoint indices (VMs)
    vnfs: list[Vnf]
    chains: list[Chain]
    tenant_chain: I64  # chain index per tenant, -1 none
    events: list[Event]
    # the migration (one VM moves), as arrays for vectorised host lookups
    mig_ep: int = -1
    mig_time: int = 0
    mig_to_host: int = -1
    featured: list[dict[str, Any]] = field(default_factory=list)
    backup_pairs: list[tuple[int, int]] = field(default_factory=list)
    backup_rate: float = 0.0

    # ------------------------------------------------------------------ sizes
    @property
    def n_spines(self) -> int:
        return self.params.spines

    @property
    def n_leaves(self) -> int:
        return self.params.leaves

    @property
    def n_devices(self) -> int:
        return len(self.dev_name)

    @property
    def n_hosts(self) -> int:
        return len(self.host_name)

    @property
    def n_ifs(self) -> int:
        return int(self.if_dev.shape[0])

    @property
    def ipv6(self) -> bool:
        return self.params.underlay == "ipv6"

    def leaf_dev(self, leaf: I64 | int) -> Any:
        return np.asarray(leaf) + self.n_spines

    # ------------------------------------------------------------------ lookups
    def host_at(self, ep: I64, t: I64) -> I64:
        """Host of endpoints ``ep`` at times ``t`` (ns), migration included."""
        h = self.ep_host[ep].copy()
        if self.mig_ep >= 0:
            moved = (ep == self.mig_ep) & (t >= self.mig_time)
            h[moved] = self.mig_to_host
        return h

    def ecmp(self, src_host: I64, dst_host: I64, ip_proto: I64, x: I64) -> I64:
        """The spine the source leaf picks for these outer headers."""
        nw = 4 if self.ipv6 else 1
        sw = [self.host_vtep[src_host, k] for k in range(nw)]
        dw = [self.host_vtep[dst_host, k] for k in range(nw)]
        return H.ecmp_member(self.host_leaf[src_host], self.n_spines, sw, dw, ip_proto, x)


def _vtep(params: SimParams, leaf: int, port: int) -> tuple[list[int], str]:
    if params.underlay == "ipv6":
        a = ipaddress.IPv6Address(f"fd00:fab:0:{leaf:x}::{port:x}")
        v = int(a)
        return [(v >> s) & 0xFFFFFFFF for s in (96, 64, 32, 0)], str(a)
    v = ipv4("172.16.0.0") + leaf * 256 + port
    return [v, 0, 0, 0], ipv4_str(v)


def _round_s(params: SimParams, frac: float) -> int:
    """A time at ``frac`` of the run, on a whole second (ns)."""
    return params.start_ns + round(params.duration * frac) * 1_000_000_000


def build_fabric(params: SimParams) -> Fabric:
    """The fabric for ``params`` (deterministic for ``params.seed``)."""
    p = params
    rng = np.random.default_rng([p.seed, 0xFAB])
    S, L, HP = p.spines, p.leaves, p.hosts_per_leaf
    n_gw = min(p.n_gateways, L)
    gw_leaves = sorted({(g * L) // n_gw for g in range(n_gw)})
    n_gw = len(gw_leaves)

    # ---- devices
    dev_name = [f"spine-{s + 1}" for s in range(S)] + [f"leaf-{i + 1}" for i in range(L)]
    dev_role = ["spine"] * S + ["leaf"] * L
    idx = np.arange(1, S + L + 1, dtype=np.uint32)
    dev_agent = (np.uint32(ipv4("10.255.0.0")) + ((idx >> 8) << 8) + (idx & 0xFF)).astype(
        np.uint32)
    dev_mac = (np.uint64(0x02FAB0000000) + np.arange(S + L, dtype=np.uint64) * np.uint64(256))

    # ---- interfaces
    up_base = max(49, HP + 2)
    if_dev: list[int] = []
    if_index: list[int] = []
    if_name: list[str] = []
    if_speed: list[int] = []
    if_peer: list[str] = []
    spine_down_if = np.full((S, L), -1, np.int64)
    leaf_up_if = np.full((L, S), -1, np.int64)
    leaf_host_if = np.full((L, HP + 1), -1, np.int64)

    def add_if(dev: int, ifindex: int, speed: int, peer: str) -> int:
        if_dev.append(dev)
        if_index.append(ifindex)
        if_name.append(f"eth{ifindex}")
        if_speed.append(speed)
        if_peer.append(peer)
        return len(if_dev) - 1

    for s in range(S):
        for leaf in range(L):
            spine_down_if[s, leaf] = add_if(s, leaf + 1, p.uplink_speed, dev_name[S + leaf])
    host_name: list[str] = []
    host_role: list[str] = []
    host_leaf: list[int] = []
    host_if: list[int] = []
    host_port: list[int] = []
    for leaf in range(L):
        d = S + leaf
        for port in range(HP):
            hn = f"hv-{leaf * HP + port + 1}"
            leaf_host_if[leaf, port] = add_if(d, port + 1, p.host_speed, hn)
        for s in range(S):
            leaf_up_if[leaf, s] = add_if(d, up_base + s, p.uplink_speed, dev_name[s])
    for leaf in range(L):
        for port in range(HP):
            host_name.append(f"hv-{leaf * HP + port + 1}")
            host_role.append("hypervisor")
            host_leaf.append(leaf)
            host_if.append(int(leaf_host_if[leaf, port]))
            host_port.append(port + 1)
    for g, leaf in enumerate(gw_leaves):
        gname = f"gw-{g + 1}"
        leaf_host_if[leaf, HP] = add_if(S + leaf, HP + 1, p.host_speed, gname)
        host_name.append(gname)
        host_role.append("gateway")
        host_leaf.append(leaf)
        host_if.append(int(leaf_host_if[leaf, HP]))
        host_port.append(HP + 1)
    n_hosts = len(host_name)
    vtep = np.zeros((n_hosts, 4), np.uint32)
    vtep_text: list[str] = []
    for h in range(n_hosts):
        words, text = _vtep(p, host_leaf[h], host_port[h])
        vtep[h] = words
        vtep_text.append(text)
    host_mac = np.uint64(0x525400000000) + np.array(
        [leaf * 256 + port for leaf, port in zip(host_leaf, host_port, strict=True)],
        np.uint64)
    n_hv = L * HP

    # ---- tenants, networks
    T = p.tenants
    tenant_name = [TENANT_NAMES[t] if t < len(TENANT_NAMES) else f"tenant-{t + 1}"
                   for t in range(T)]
    net_name: list[str] = []
    net_tenant: list[int] = []
    net_role: list[int] = []
    net_vni: list[int] = []
    net_encap: list[int] = []
    for t in range(T):
        for j, role in enumerate(NET_ROLES):
            k = len(net_name)
            net_name.append(f"{tenant_name[t]}-{role}")
            net_tenant.append(t)
            net_role.append(j)
            net_vni.append(10000 + 10 * t + j)
            enc = p.encap if p.encap != "mixed" else ENCAPS[k % len(ENCAPS)]
            net_encap.append(ENCAP_CODE[enc])

    # ---- endpoints
    ep_name: list[str] = []
    ep_kind: list[int] = []
    ep_tenant: list[int] = []
    ep_net: list[int] = []
    ep_host: list[int] = []
    ep_ip: list[int] = []
    ep_mac: list[int] = []
    ep_from: list[int | None] = []
    next_ip: dict[tuple[int, int], int] = {}  # (tenant, role) -> next host number in the subnet

    def add_ep(name: str, kind: int, t: int, role: int, host: int, ip: int | None = None,
               valid_from: int | None = None) -> int:
        if ip is None:
            k = next_ip.get((t, role), 10)
            next_ip[(t, role)] = k + 1
            ip = ipv4(NET_SUBNETS[role].split("/")[0]) + k
        ep_name.append(name)
        ep_kind.append(kind)
        ep_tenant.append(t)
        ep_net.append(3 * t + role)
        ep_host.append(host)
        ep_ip.append(ip)
        ep_mac.append(0xFA163E000000 + len(ep_mac) + 1)
        ep_from.append(valid_from)
        return len(ep_name) - 1

    # VMs: an even share per tenant; the first three of a tenant are web, app, db
    per_t = np.full(T, p.vms // T, np.int64)
    per_t[: p.vms % T] += 1
    roles_draw = rng.choice(3, size=p.vms, p=[0.4, 0.35, 0.25])
    hosts_draw = rng.integers(0, n_hv, size=p.vms)
    tenant_role_eps: list[list[list[int]]] = [[[], [], []] for _ in range(T)]
    counters = [[0, 0, 0] for _ in range(T)]
    i = 0
    for t in range(T):
        for k in range(int(per_t[t])):
            r = k if k < 3 else int(roles_draw[i])
            counters[t][r] += 1
            e = add_ep(f"{tenant_name[t]}-{NET_ROLES[r]}-{counters[t][r]}", EP_VM, t,
                       r, int(hosts_draw[i]))
            tenant_role_eps[t][r].append(e)
            i += 1
    # gateways: one endpoint per tenant on a gateway node, web network .1
    tenant_gw = np.zeros(T, np.int64)
    for t in range(T):
        tenant_gw[t] = add_ep(f"{tenant_name[t]}-gw", EP_GATEWAY, t, 0, n_hv + t % n_gw,
                              ip=ipv4("10.1.0.1"))

    ev_on = set(p.events)
    # bulk-transfer VMs for the congestion event: sources under leaf 1, sinks under leaf 2,
    # each on its own host so that no host NIC is oversubscribed
    backup_pairs: list[tuple[int, int]] = []
    backup_rate = 0.0
    if "congestion" in ev_on and L >= 2:
        target = 0.96 * p.uplink_speed
        cap = 0.97 * p.host_speed
        k = int(min(HP, max(1, -(-target // cap))))
        backup_rate = min(cap, target / k)
        t = T - 1
        for j in range(k):
            a = add_ep(f"{tenant_name[t]}-backup-{j + 1}", EP_VM, t, 2, j)
            b = add_ep(f"{tenant_name[t]}-vault-{j + 1}", EP_VM, t, 2, HP + j)
            backup_pairs.append((a, b))
    t_mig = _round_s(p, 0.35)
    t_ins = _round_s(p, 0.55)

    # ---- VNFs and chains
    vnfs: list[Vnf] = []
    chains: list[Chain] = []
    tenant_chain = np.full(T, -1, np.int64)
    vnf_counter = [dict.fromkeys(VNF_KINDS, 0) for _ in range(T)]
    vnf_ip = [0] * T

    def add_vnf(kind: int, t: int, chain: int, valid_from: int | None = None) -> int:
        kname = VNF_KINDS[kind]
        vnf_counter[t][kname] += 1
        short = {"firewall": "fw", "load-balancer": "lb", "ids": "ids"}[kname]
        name = f"{tenant_name[t]}-{short}-{vnf_counter[t][kname]}"
        host = int(rng.integers(0, n_hv))
        base = ipv4("10.1.255.0") + 2 * vnf_ip[t] + 1
        vnf_ip[t] += 1
        e_in = add_ep(f"{name}-in", EP_VNF_IN, t, 0, host, ip=base, valid_from=valid_from)
        e_out = add_ep(f"{name}-out", EP_VNF_OUT, t, 0, host, ip=base + 1,
                       valid_from=valid_from)
        vnfs.append(Vnf(len(vnfs), name, kname, t, chain, host, e_in, e_out, valid_from))
        return len(vnfs) - 1

    C = p.chains
    insert = "vnf-insert" in ev_on and C > 0 and p.vnfs > C
    groups_per_chain: list[list[list[int]]] = []
    for c in range(C):
        t = c
        tenant_chain[t] = c
        groups_per_chain.append([[add_vnf(0, t, c)]])
    extra = p.vnfs - C - (1 if insert else 0)
    for k in range(max(0, extra)):
        c = k % C
        rnd = k // C
        grp = groups_per_chain[c]
        if rnd % 2 == 0:
            grp.append([add_vnf(1, c, c)])  # a new group: a load balancer
        else:
            grp[0].append(add_vnf(0, c, c))  # load sharing in the firewall group
    ins_vnf = -1
    if insert:
        ins_vnf = add_vnf(2, 0, 0, valid_from=t_ins)
    for c in range(C):
        t = c
        name = f"{tenant_name[t]}-web-https"
        groups = groups_per_chain[c]
        if c == 0 and insert:
            after = [list(g) for g in groups]
            after.insert(1, [ins_vnf])
            versions = [ChainVersion(None, t_ins, groups), ChainVersion(t_ins, None, after)]
        else:
            versions = [ChainVersion(None, None, groups)]
        chains.append(Chain(c, name, c + 1, t, versions))

    fab = Fabric(
        params=p,
        dev_name=dev_name, dev_role=dev_role, dev_agent=dev_agent, dev_mac=dev_mac,
        if_dev=np.array(if_dev, np.int64), if_index=np.array(if_index, np.int64),
        if_name=if_name, if_speed=np.array(if_speed, np.uint64), if_peer_label=if_peer,
        leaf_host_if=leaf_host_if, leaf_up_if=leaf_up_if, spine_down_if=spine_down_if,
        host_name=host_name, host_role=host_role, host_leaf=np.array(host_leaf, np.int64),
        host_if=np.array(host_if, np.int64), host_mac=host_mac, host_vtep=vtep,
        host_vtep_text=vtep_text,
        tenant_name=tenant_name, net_name=net_name, net_tenant=np.array(net_tenant, np.int64),
        net_role=np.array(net_role, np.int64), net_vni=np.array(net_vni, np.int64),
        net_encap=np.array(net_encap, np.int64),
        ep_name=ep_name, ep_kind=np.array(ep_kind, np.int64),
        ep_tenant=np.array(ep_tenant, np.int64), ep_net=np.array(ep_net, np.int64),
        ep_host=np.array(ep_host, np.int64), ep_ip=np.array(ep_ip, np.uint32),
        ep_mac=np.array(ep_mac, np.uint64), ep_valid_from=ep_from,
        tenant_gw=tenant_gw,
        tenant_role_eps=[[np.array(r, np.int64) for r in t] for t in tenant_role_eps],
        vnfs=vnfs, chains=chains, tenant_chain=tenant_chain, events=[],
        backup_pairs=backup_pairs, backup_rate=backup_rate,
    )
    _featured_and_events(fab, rng, t_mig, t_ins, ins_vnf)
    return fab


def _featured_and_events(fab: Fabric, rng: np.random.Generator, t_mig: int, t_ins: int,
                         ins_vnf: int) -> None:
    """Pick the featured flows' endpoints and schedule the events."""
    p = fab.params
    ev_on = set(p.events)
    S, L = p.spines, p.leaves
    # featured endpoint: tenant 0's web VM, preferably on a leaf other than its gateway's
    # and its firewall's (so its paths cross the spines)
    webs = fab.tenant_role_eps[0][0]
    avoid = {int(fab.host_leaf[fab.ep_host[fab.tenant_gw[0]]])}
    if fab.chains:
        avoid |= {int(fab.host_leaf[fab.vnfs[v].host])
                  for g in fab.chains[0].versions[0].groups for v in g}
    vnf_hosts = {v.host for v in fab.vnfs}
    cand = [int(e) for e in webs if int(fab.host_leaf[fab.ep_host[e]]) not in avoid
            and int(fab.ep_host[e]) not in vnf_hosts]
    cand = cand or [int(e) for e in webs if int(fab.host_leaf[fab.ep_host[e]]) not in avoid]
    web = cand[0] if cand else int(webs[0])
    apps = fab.tenant_role_eps[0][1]
    web_leaf = int(fab.host_leaf[fab.ep_host[web]])
    cand = [int(e) for e in apps if int(fab.host_leaf[fab.ep_host[e]]) != web_leaf]
    app = cand[0] if cand else int(apps[0])
    fab.featured = [
        {"name": "north-south-https", "src_ep": int(fab.tenant_gw[0]), "dst_ep": web,
         "client_ip": ipv4("198.51.100.10"), "sport": 40001, "dport": 443, "proto": 6},
        {"name": "east-west-app", "src_ep": web, "dst_ep": app, "sport": 41002,
         "dport": 8080, "proto": 6},
    ]

    if "migration" in ev_on:
        src_host = int(fab.ep_host[web])
        src_leaf = int(fab.host_leaf[src_host])
        n_hv = L * p.hosts_per_leaf
        others = [h for h in range(n_hv) if int(fab.host_leaf[h]) != src_leaf
                  and h not in vnf_hosts] or [h for h in range(n_hv) if h != src_host]
        if others:
            to = int(others[int(rng.integers(0, len(others)))])
            fab.mig_ep, fab.mig_time, fab.mig_to_host = web, t_mig, to
            fab.events.append(Event("vm-migration", t_mig, None, {
                "endpoint": fab.ep_name[web], "ip": ipv4_str(int(fab.ep_ip[web])),
                "tenant": fab.tenant_name[0],
                "vni": int(fab.net_vni[fab.ep_net[web]]),
                "from_host": fab.host_name[src_host], "to_host": fab.host_name[to],
                "from_vtep": fab.host_vtep_text[src_host], "to_vtep": fab.host_vtep_text[to],
            }))
    if ins_vnf >= 0:
        ch = fab.chains[0]
        v = fab.vnfs[ins_vnf]
        fab.events.append(Event("vnf-insertion", t_ins, None, {
            "chain": ch.name, "chain_id": ch.chain_id, "vnf": v.name, "kind": v.kind,
            "host": fab.host_name[v.host], "position": 1,
            "vnfs_before": [[fab.vnfs[i].name for i in g] for g in ch.versions[0].groups],
            "vnfs_after": [[fab.vnfs[i].name for i in g] for g in ch.versions[1].groups],
        }))
    if "link-errors" in ev_on and L >= 1:
        # the uplink the featured east-west flow leaves its leaf on, when it crosses spines
        leaf = web_leaf
        spine = 0
        app_host = int(fab.ep_host[app])
        src_host = int(fab.ep_host[web])
        if int(fab.host_leaf[app_host]) != leaf:
            th = H.tunnel_hash(np.array([fab.ep_ip[web]]), np.array([fab.ep_ip[app]]),
                               np.array([6]), np.array([41002]), np.array([8080]))
            proto, x = _outer_x(fab, int(fab.ep_net[web]), th)
            spine = int(fab.ecmp(np.array([src_host]), np.array([app_host]), proto, x)[0])
        t0 = _round_s(p, 0.25)
        up = int(fab.leaf_up_if[leaf, spine])
        down = int(fab.spine_down_if[spine, leaf])
        fab.events.append(Event("link-errors", t0, p.start_ns + p.duration_ns, {
            "link": {"a": {"device": fab.dev_name[S + leaf], "interface": fab.if_name[up]},
                     "b": {"device": fab.dev_name[spine], "interface": fab.if_name[down]}},
            "interfaces": [up, down],
            "error_rate_start": 1e-5, "error_rate_end": 5e-3,
            "note": "CRC errors (ifInErrors) and discards (ifInDiscards) at both ends, "
                    "rising geometrically; the errored frames are not removed from the flows",
        }))
    if "congestion" in ev_on and L >= 2 and S >= 1:
        span = max(2 * p.counter_interval, round(0.1 * p.duration / p.counter_interval) *
                   p.counter_interval)
        t0 = p.start_ns + int(round(0.7 * p.duration / p.counter_interval) *
                              p.counter_interval * 1e9)
        t1 = min(t0 + int(span * 1e9), p.start_ns + p.duration_ns)
        la, lb, s = 0, 1, S - 1
        if t1 > t0:
            fab.events.append(Event("congestion", t0, t1, {
                "device": fab.dev_name[S + la], "interface": fab.if_name[
                    int(fab.leaf_up_if[la, s])], "ifindex": int(fab.if_index[
                        fab.leaf_up_if[la, s]]),
                "peer": fab.dev_name[s], "src_leaf": la, "dst_leaf": lb, "spine": s,
                "target_utilisation": 0.96,
                "note": "bulk transfers (kind 'backup') from hosts under the leaf to hosts "
                        "under another, whose ECMP hash picks this uplink; tail drops in "
                        "ifOutDiscards",
            }))
    if "sflow-outage" in ev_on:
        d = S - 1 if S > 1 else S + L - 1
        t0 = _round_s(p, 0.85)
        t1 = max(t0 + 30_000_000_000, _round_s(p, 0.92))
        t1 = min(t1, p.start_ns + p.duration_ns)
        if t1 > t0:
            fab.events.append(Event("sflow-outage", t0, t1, {
                "device": fab.dev_name[d], "agent": ipv4_str(int(fab.dev_agent[d])),
                "dev": d,
                "note": "the agent kept sampling and numbering its datagrams but none "
                        "reached the collector: the sequence numbers show the gap",
            }))


def _outer_x(fab: Fabric, net: int, th: U32) -> tuple[I64, I64]:
    """Outer IP protocol and the ECMP port word for tunnel hashes ``th`` on network
    ``net`` (same encapsulation for all)."""
    enc = int(fab.net_encap[net])
    vni = int(fab.net_vni[net])
    return outer_proto_x(np.full(th.shape[0], enc, np.int64), np.full(th.shape[0], vni,
                                                                       np.int64), th)


UDP_DPORT = {0: 4789, 1: 6081}


def outer_proto_x(encap: I64, vni: I64, th: U32) -> tuple[I64, I64]:
    """Per row: outer IP protocol (17 or 47) and the ECMP word (sport<<16|dport, or the
    NVGRE key VSID<<8|FlowID)."""
    sport = H.tunnel_sport(th)
    dport = np.where(encap == 1, 6081, 4789)
    is_gre = encap == 2
    proto = np.where(is_gre, 47, 17).astype(np.int64)
    key = (vni.astype(np.int64) << 8) | (th.astype(np.int64) & 0xFF)
    x = np.where(is_gre, key, (sport << 16) | dport).astype(np.int64)
    return proto, x

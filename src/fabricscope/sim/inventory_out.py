"""The simulated fabric as an inventory file (docs/inventory.md), with validity times for
the events: the migrated VM has two versions, the inserted VNF and its ports start at the
insertion, the chain has a version before and one after.

Written line by line in YAML flow style (one item per line), so that 10,000 hosts and
40,000 VMs take a second, and `fabricscope inventory validate` reads it back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fabricscope.sim.fabric import (
    EP_KIND_NAMES,
    NET_SUBNETS,
    Fabric,
    ipv4_str,
    mac_str,
)
from fabricscope.sim.traffic import ENCAP_NAMES
from fabricscope.timeutil import format_ns

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _y(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_y(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_y(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if _PLAIN.fullmatch(s) and s.lower() not in _RESERVED:
        return s
    return json.dumps(s)


def speed_text(bps: int) -> str | int:
    for unit, div in (("T", 10**12), ("G", 10**9), ("M", 10**6)):
        if bps % div == 0:
            return f"{bps // div}{unit}"
    return bps


def _t(ns: int | None) -> str | None:
    return None if ns is None else format_ns(ns, 0)


def _items(fab: Fabric) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """(section, item, comment) in file order; a None item starts a section."""
    p = fab.params
    S = fab.n_spines
    yield "tenants", None, None
    for t in fab.tenant_name:
        yield "tenants", {"name": t}, None

    yield "networks", None, "the same subnets for every tenant, told apart by the VNI"
    for k, name in enumerate(fab.net_name):
        yield "networks", {
            "name": name, "tenant": fab.tenant_name[int(fab.net_tenant[k])],
            "vni": int(fab.net_vni[k]), "encap": ENCAP_NAMES[int(fab.net_encap[k])],
            "subnets": [NET_SUBNETS[int(fab.net_role[k])]]}, None

    yield "hosts", None, "each NIC names the leaf port it is cabled to"
    for h, name in enumerate(fab.host_name):
        ifid = int(fab.host_if[h])
        dev = int(fab.if_dev[ifid])
        mgmt = 0xC0A80000 + h + 1  # 192.168.0.0/16
        yield "hosts", {
            "name": name, "role": fab.host_role[h], "tunnel_ips": [fab.host_vtep_text[h]],
            "mgmt_ip": ipv4_str(mgmt),
            "nics": [{"name": "eth0", "mac": mac_str(int(fab.host_mac[h])),
                      "device": fab.dev_name[dev], "interface": fab.if_name[ifid]}]}, None

    yield "devices", None, ("sFlow agents: leaves send compact samples, spines expanded ones")
    by_dev: dict[int, list[int]] = {}
    for i in range(fab.n_ifs):
        by_dev.setdefault(int(fab.if_dev[i]), []).append(i)
    for d, name in enumerate(fab.dev_name):
        itfs = sorted(by_dev.get(d, []), key=lambda i: int(fab.if_index[i]))
        yield "devices", {
            "name": name, "role": fab.dev_role[d], "agent": ipv4_str(int(fab.dev_agent[d])),
            "interfaces": [{"name": fab.if_name[i], "ifindex": int(fab.if_index[i]),
                            "speed": speed_text(int(fab.if_speed[i]))} for i in itfs]}, None

    yield "links", None, "leaf uplinks to spines (host cabling is in hosts: nics)"
    for leaf in range(fab.n_leaves):
        for s in range(S):
            up = int(fab.leaf_up_if[leaf, s])
            down = int(fab.spine_down_if[s, leaf])
            yield "links", {
                "a": {"device": fab.dev_name[S + leaf], "interface": fab.if_name[up]},
                "b": {"device": fab.dev_name[s], "interface": fab.if_name[down]},
                "speed": speed_text(p.uplink_speed)}, None

    yield "endpoints", None, None
    mig_host_name = fab.host_name[fab.mig_to_host] if fab.mig_ep >= 0 else None
    for e, name in enumerate(fab.ep_name):
        kind = int(fab.ep_kind[e])
        item: dict[str, Any] = {
            "name": name, "kind": EP_KIND_NAMES[kind],
            "tenant": fab.tenant_name[int(fab.ep_tenant[e])],
            "network": fab.net_name[int(fab.ep_net[e])],
            "host": fab.host_name[int(fab.ep_host[e])],
            "mac": mac_str(int(fab.ep_mac[e])), "ips": [ipv4_str(int(fab.ep_ip[e]))]}
        if fab.ep_valid_from[e] is not None:
            item["valid_from"] = _t(fab.ep_valid_from[e])
        if e == fab.mig_ep:
            before = dict(item, valid_to=_t(fab.mig_time))
            after = dict(item, host=mig_host_name, valid_from=_t(fab.mig_time))
            yield "endpoints", before, f"{name} migrates at {_t(fab.mig_time)}"
            yield "endpoints", after, None
        else:
            yield "endpoints", item, None

    yield "vnfs", None, None
    for v in fab.vnfs:
        item = {"name": v.name, "kind": v.kind, "tenant": fab.tenant_name[v.tenant],
                "stateful": v.kind == "firewall",
                "ports": [{"endpoint": fab.ep_name[v.ep_in], "role": "ingress"},
                          {"endpoint": fab.ep_name[v.ep_out], "role": "egress"}]}
        if v.valid_from is not None:
            item["valid_from"] = _t(v.valid_from)
        yield "vnfs", item, None

    yield "chains", None, ("inbound HTTPS from the tenant's gateway to its web subnet; "
                           "symmetric: replies cross the VNFs backwards")
    for c in fab.chains:
        gw = fab.ep_name[int(fab.tenant_gw[c.tenant])]
        classifier = {"name": "https-in", "ethertype": "IPv4", "protocol": "tcp",
                      "destination_ip_prefix": NET_SUBNETS[0],
                      "destination_port_range_min": 443, "destination_port_range_max": 443,
                      "logical_source_port": gw}
        for ver in c.versions:
            item = {"name": c.name, "tenant": fab.tenant_name[c.tenant],
                    "chain_id": c.chain_id, "symmetric": True}
            if ver.t_from is not None:
                item["valid_from"] = _t(ver.t_from)
            if ver.t_to is not None:
                item["valid_to"] = _t(ver.t_to)
            item["groups"] = [{"name": f"group-{g + 1}",
                               "vnfs": [fab.vnfs[i].name for i in members]}
                              for g, members in enumerate(ver.groups)]
            item["classifiers"] = [classifier]
            yield "chains", item, None


def write_inventory(fab: Fabric, path: Path) -> int:
    """Write the inventory; returns the number of items."""
    p = fab.params
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# A simulated leaf-spine fabric, written by `fabricscope sim` "
                 "(docs/sim.md).\n")
        fh.write(f"# {p.spines} spines, {p.leaves} leaves, {fab.n_hosts} hosts, "
                 f"{p.tenants} tenants, {len(fab.ep_name)} endpoints, {len(fab.vnfs)} VNFs, "
                 f"{len(fab.chains)} chains; seed {p.seed}.\n")
        fh.write("# Check it: fabricscope inventory validate inventory.yaml\n")
        fh.write("version: 1\n")
        meta = {"name": "fabricscope simulated fabric", "generator": "fabricscope sim",
                "seed": p.seed, "preset": p.preset_name or "custom",
                "start": format_ns(p.start_ns, 0),
                "end": format_ns(p.start_ns + p.duration_ns, 0)}
        fh.write(f"metadata: {_y(meta)}\n")
        for section, item, comment in _items(fab):
            if item is None:
                fh.write(f"\n{section}:\n")
                if comment:
                    fh.write(f"  # {comment}\n")
                continue
            if comment:
                fh.write(f"  # {comment}\n")
            fh.write(f"  - {_y(item)}\n")
            n += 1
    return n

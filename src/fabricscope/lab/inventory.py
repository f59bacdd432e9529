"""The lab's inventory file, in fabricscope's inventory format (docs/inventory.md).

Written by ``lab up`` and rewritten by ``lab traffic`` after each change, with validity
times: a migrated VM has one version per hypervisor, the service chain is valid from the
moment it was inserted. Switch interfaces carry the real ifIndexes that Open vSwitch reports
in its sFlow samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from fabricscope.lab.plan import Endpoint, LabPlan, build_plan, default_placement

HEADER = """\
# The fabricscope lab's inventory, written by `fabricscope lab {verb}` ({at}).
# Switches are Open vSwitch bridges in namespace {sw}; their sFlow goes to {collector}.
# Load it:  fabricscope inventory load {path}
"""


def _endpoint_records(plan: LabPlan, ep: Endpoint) -> list[dict[str, Any]]:
    """One inventory endpoint per NIC (an inventory endpoint sits in one network)."""
    out = []
    for nic in ep.nics:
        net = plan.network(nic.network)
        if ep.kind == "vm":
            name, kind = ep.name, "vm"
        else:
            name, kind = f"{ep.name}-{'in' if nic.index == 0 else 'out'}", "vnf-port"
        out.append({"name": name, "kind": kind, "tenant": ep.tenant, "network": net.name,
                    "host": ep.host, "mac": nic.mac, "ips": [nic.ip]})
    return out


def inventory_document(plan: LabPlan, ifindex: Mapping[str, int], *, created: str,
                       events: Sequence[Mapping[str, Any]] = (), now: str | None = None
                       ) -> dict[str, Any]:
    """The inventory as a dict (schema: docs/inventory.schema.json)."""
    c = plan.config
    doc: dict[str, Any] = {
        "version": 1,
        "metadata": {
            "name": "fabricscope lab",
            "generated_by": "fabricscope lab",
            "created": created,
            "updated": now or created,
            "prefix": c.prefix,
            "run_dir": c.run_dir,
            "collector": plan.collector,
            "sflow": {"sampling": c.sampling, "polling": c.polling, "header": c.header_bytes},
            "switch_namespace": plan.sw_ns,
        },
    }
    doc["tenants"] = [{"name": t.name, "valid_from": created} for t in plan.tenants]
    doc["networks"] = [{"name": n.name, "tenant": n.tenant, "vni": n.vni, "encap": n.encap,
                        "subnets": [n.cidr], "valid_from": created} for n in plan.networks]
    doc["hosts"] = [{
        "name": h.name, "role": "hypervisor", "tunnel_ips": [h.ip],
        "nics": [{"name": h.uplink, "mac": h.mac, "ips": [h.ip], "device": h.leaf,
                  "interface": h.leaf_port}],
        "description": f"namespace {h.ns}",
    } for h in plan.hypervisors]
    devices = []
    for sw in plan.switches:
        itfs = []
        for p in sw.ports:
            itf: dict[str, Any] = {"name": p.name}
            if p.name in ifindex:
                itf["ifindex"] = ifindex[p.name]
            itf["description"] = f"to {p.peer} {p.peer_port} (OpenFlow port {p.ofport})"
            itfs.append(itf)
        devices.append({"name": sw.name, "role": sw.role, "agent": sw.agent,
                        "description": f"Open vSwitch bridge {sw.bridge} (userspace datapath) "
                                       f"in namespace {plan.sw_ns}",
                        "interfaces": itfs})
    doc["devices"] = devices
    links = []
    for lf in plan.leaves():
        for p in lf.ports:
            if p.role == "uplink":
                links.append({"name": f"{lf.name}-{p.peer}",
                              "a": {"device": lf.name, "interface": p.name},
                              "b": {"device": p.peer, "interface": p.peer_port}})
    doc["links"] = links

    # endpoints, with one version per placement (migrations close one, open the next)
    moves = [e for e in events if e.get("type") == "migrate"]
    placement = default_placement(c.hosts)
    endpoints: list[dict[str, Any]] = []
    history: dict[str, list[tuple[str, str | None, str | None]]] = {
        name: [(hv, created, None)] for name, hv in placement.items()}
    for m in moves:
        name, to, at = str(m["endpoint"]), str(m["to"]), str(m["at"])
        hv, opened, _ = history[name][-1]
        history[name][-1] = (hv, opened, at)
        history[name].append((to, at, None))
    for ep0 in plan.endpoints:
        for hv, start, end in history[ep0.name]:
            ep = build_plan(c, {ep0.name: hv}).endpoint(ep0.name)
            for item in _endpoint_records(plan, ep):
                if start:
                    item["valid_from"] = start
                if end:
                    item["valid_to"] = end
                if ep.description:
                    item["description"] = ep.description
                endpoints.append(item)
    doc["endpoints"] = endpoints

    vnfs = []
    for ep in plan.endpoints:
        if ep.kind in ("vnf", "router"):
            vnfs.append({"name": ep.name, "kind": "firewall" if ep.kind == "vnf" else "router",
                         "tenant": ep.tenant, "stateful": ep.kind == "vnf",
                         "ports": [{"endpoint": f"{ep.name}-in", "role": "ingress"},
                                   {"endpoint": f"{ep.name}-out", "role": "egress"}],
                         "valid_from": created, "description": ep.description})
    doc["vnfs"] = vnfs

    chains = []
    for ch in plan.chains:
        since: str | None = None
        versions: list[tuple[str, str | None]] = []
        for e in events:
            if e.get("type") != "chain" or e.get("name") != ch.name:
                continue
            if e.get("inserted") and since is None:
                since = str(e["at"])
            elif not e.get("inserted") and since is not None:
                versions.append((since, str(e["at"])))
                since = None
        if since is not None:
            versions.append((since, None))
        src, dst = plan.network(ch.src_net), plan.network(ch.dst_net)
        for since_, until in versions:
            rec: dict[str, Any] = {
                "name": ch.name, "tenant": ch.tenant, "chain_id": 1, "symmetric": True,
                "groups": [{"name": "firewalls", "vnfs": list(ch.vnfs)}],
                "classifiers": [{"name": f"{ch.proto}-{ch.dport}", "ethertype": "IPv4",
                                 "protocol": ch.proto, "source_ip_prefix": src.cidr,
                                 "destination_ip_prefix": dst.cidr,
                                 "destination_port_range_min": ch.dport,
                                 "destination_port_range_max": ch.dport}],
                "valid_from": since_,
                "description": f"steered by policy routing on {ch.classifier}",
            }
            if until:
                rec["valid_to"] = until
            chains.append(rec)
    doc["chains"] = chains
    return doc


def to_yaml(doc: Mapping[str, Any], *, verb: str = "up", path: str = "inventory.yaml") -> str:
    meta = doc.get("metadata", {})
    head = HEADER.format(verb=verb, at=meta.get("updated", ""), sw=meta.get("switch_namespace"),
                         collector=meta.get("collector"), path=path)
    body = yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False, width=100)
    return head + body

"""OpenStack Neutron (and networking-sfc) -> inventory facts, with openstacksdk.

What is read (the exact fields are listed in docs/import/openstack.md):

* Keystone projects -> tenants (names when the identity API lets us list projects, else
  the project id);
* networks (``provider:network_type``, ``provider:segmentation_id``, or the ``segments``
  of a multi-segment network) and their subnets' CIDRs -> networks;
* agents' ``configurations.tunneling_ip`` -> hosts' tunnel IPs; every agent host and
  port binding host (``binding:host_id``) is a host;
* ports (``fixed_ips``, ``mac_address``, ``binding:host_id``, ``device_owner``,
  ``project_id``) -> endpoints;
* networking-sfc port pairs (ingress/egress ports) grouped by the service function VM
  (the ports' ``device_id``) -> VNFs; port pair groups -> chain groups; port chains ->
  chains, with ``chain_id`` read from the raw JSON (openstacksdk's resource drops it) and
  flow classifiers -> classifiers;
* Nova servers (optional) -> names for the VNFs.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fabricscope.inventory import addr
from fabricscope.inventory.importers.base import BaseImporter, quiet_loggers, unique_names
from fabricscope.inventory.model import (
    Chain,
    Endpoint,
    Fact,
    FlowClassifier,
    Host,
    Network,
    PortGroup,
    Tenant,
    Vnf,
    VnfPort,
)

# provider:network_type -> the inventory's encapsulation
NETWORK_TYPES = {"vxlan": "vxlan", "geneve": "geneve", "gre": "gre", "vlan": "vlan",
                 "flat": "flat", "local": "flat"}
TUNNELLED = ("vxlan", "geneve", "gre")
# device_owner values of Neutron's own service ports (routers, DHCP, ...): kind gateway
SERVICE_OWNERS = ("network:",)
SKIPPED_OWNERS = ("network:floatingip",)  # a NAT address: never on the wire with this MAC
SFC_LISTS = ("port_pairs", "port_pair_groups", "port_chains", "flow_classifiers")


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """An attribute of an openstacksdk resource, or a key of a raw dict."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class OpenStackImporter(BaseImporter):
    """Import from one OpenStack cloud.

    Give an ``openstack.connection.Connection`` (``conn``), or let the importer connect:
    ``cloud`` names an entry of clouds.yaml (``None``: ``OS_CLOUD`` or the ``OS_*``
    environment variables), ``auth`` is a dict of connection arguments (``auth_url``,
    ``username``, ``password``, ``project_name``, ...) that bypasses clouds.yaml.
    ``name`` labels the source (``openstack:NAME``; default the cloud name, or the auth
    URL's host:port)."""

    kind = "openstack"

    def __init__(self, conn: Any = None, *, cloud: str | None = None,
                 auth: dict[str, Any] | None = None, name: str | None = None,
                 servers: bool = True, projects: bool = True) -> None:
        if name is None:
            if cloud:
                name = cloud
            elif auth and auth.get("auth_url"):
                name = urlsplit(str(auth["auth_url"])).netloc or str(auth["auth_url"])
            else:
                name = "default"
        super().__init__(f"openstack:{name}")
        self.conn = conn
        self.cloud = cloud
        self.auth = dict(auth or {})
        self.use_servers = servers
        self.use_projects = projects

    # ------------------------------------------------------------------ reading

    def connect(self) -> Any:
        if self.conn is not None:
            return self.conn
        try:
            import openstack
        except ImportError:
            raise self.fail("openstacksdk is not installed (pip install "
                            "'fabricscope[import]')") from None
        try:
            if self.auth:
                self.conn = openstack.connect(load_yaml_config=False, load_envvars=False,
                                              **self.auth)
            else:
                self.conn = openstack.connect(cloud=self.cloud)
        except Exception as exc:
            raise self.fail(f"cannot connect: {_line(exc)}") from None
        return self.conn

    def _list(self, what: str, fn: Any) -> list[Any]:
        try:
            return list(fn())
        except Exception as exc:
            raise self.fail(f"listing {what}: {_line(exc)}") from None

    def _raw_list(self, conn: Any, path: str, key: str) -> list[dict[str, Any]] | None:
        """A Neutron list read as raw JSON (following ``<key>_links`` pages); ``None`` when
        the API does not have it (404: the extension is not loaded)."""
        out: list[dict[str, Any]] = []
        url: str | None = path
        pages = 0
        while url is not None and pages < 10000:
            pages += 1
            try:
                resp = conn.network.get(url)
            except Exception as exc:
                if getattr(exc, "status_code", None) == 404:
                    return None
                raise self.fail(f"GET {path}: {_line(exc)}") from None
            if resp.status_code == 404:
                return None
            if resp.status_code >= 400:
                raise self.fail(f"GET {path}: HTTP {resp.status_code}")
            try:
                body = resp.json()
                items = body[key]
            except (ValueError, KeyError, TypeError):
                raise self.fail(f"GET {path}: the answer has no {key!r} list") from None
            out.extend(i for i in items if isinstance(i, dict))
            url = next((link.get("href") for link in body.get(f"{key}_links") or ()
                        if isinstance(link, dict) and link.get("rel") == "next"), None)
        return out

    def _servers(self, conn: Any) -> dict[str, str]:
        if not self.use_servers:
            return {}
        try:
            return {str(s.id): str(s.name) for s in conn.compute.servers(all_projects=True)
                    if s.name}
        except Exception as exc:
            self.note(f"Nova servers not listed ({_line(exc)}): VNFs named by port pair")
            return {}

    def _projects(self, conn: Any) -> dict[str, str]:
        if not self.use_projects:
            return {}
        try:
            return {str(p.id): str(p.name) for p in conn.identity.projects() if p.name}
        except Exception as exc:
            self.note(f"Keystone projects not listed ({_line(exc)}): tenants named by "
                      "project id")
            return {}

    def fetch(self) -> list[Fact]:
        self.notes = []
        with warnings.catch_warnings(), quiet_loggers("keystoneauth", "keystoneauth1",
                                                      "openstack", "stevedore"):
            # openstacksdk's deprecation chatter and keystoneauth's discovery warnings
            warnings.filterwarnings("ignore", module=r"openstack(\.|$)")
            warnings.filterwarnings("ignore", module=r"keystoneauth1(\.|$)")
            return self._fetch()

    def _fetch(self) -> list[Fact]:
        conn = self.connect()
        net = conn.network
        networks = self._list("networks", net.networks)
        subnets = self._list("subnets", net.subnets)
        ports = self._list("ports", net.ports)
        agents = self._list("agents", net.agents)
        sfc: dict[str, list[dict[str, Any]]] = {}
        for key in SFC_LISTS:
            items = self._raw_list(conn, f"/sfc/{key}", key)
            if items is None:
                self.note("networking-sfc is not available (GET /sfc/port_pairs: 404): no "
                          "VNFs or chains")
                sfc = {}
                break
            sfc[key] = items
        servers = self._servers(conn)
        projects = self._projects(conn)
        return build_facts(networks=networks, subnets=subnets, ports=ports, agents=agents,
                           sfc=sfc, servers=servers, projects=projects, note=self.note)


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- mapping


def _segment(n: Any) -> tuple[str | None, int | None, str | None]:
    """(network type, segmentation id, description) of a network; a multi-segment network
    uses its first tunnelled segment (that is what overlay telemetry carries)."""
    typ = _get(n, "provider_network_type") or _get(n, "provider:network_type")
    seg = _get(n, "provider_segmentation_id")
    if seg is None:
        seg = _get(n, "provider:segmentation_id")
    segments = _get(n, "segments") or []
    if typ is None and segments:
        segs = [(s.get("provider:network_type"), s.get("provider:segmentation_id"))
                for s in segments if isinstance(s, dict)]
        chosen = next((s for s in segs if s[0] in TUNNELLED), segs[0] if segs else (None, None))
        typ, seg = chosen
        desc = "segments: " + ", ".join(f"{t} {'' if i is None else i}".strip()
                                        for t, i in segs)
        return typ, _int(seg), desc
    return typ, _int(seg), None


def _int(v: Any) -> int | None:
    if v is None or v == "":
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _dedupe_claims(facts: list[Any], claim: Any, fix: Any, what: str, note: Any) -> list[Any]:
    """Keep the first (by name) holder of each identity ``claim(f)`` returns; ``fix`` the
    others (drop the identity) and note it."""
    seen: dict[Any, str] = {}
    out = []
    for f in sorted(facts, key=lambda f: f.key):
        keys = [k for k in claim(f) if k is not None]
        clash = [k for k in keys if k in seen]
        if clash:
            note(f"{what} {clash[0][-1]} of {f.key} is also held by {seen[clash[0]]}: "
                 "kept there only")
            f = fix(f, set(clash))
        for k in claim(f):
            if k is not None:
                seen.setdefault(k, f.key)
        out.append(f)
    return out


def build_facts(*, networks: Iterable[Any], subnets: Iterable[Any], ports: Iterable[Any],
                agents: Iterable[Any], sfc: dict[str, list[dict[str, Any]]],
                servers: dict[str, str], projects: dict[str, str],
                note: Any = None) -> list[Fact]:
    """Neutron objects (openstacksdk resources or raw API dicts) -> facts."""
    import dataclasses

    note = note or (lambda text: None)
    networks = list(networks)
    ports = [p for p in ports if (_get(p, "device_owner") or "") not in SKIPPED_OWNERS]
    agents = list(agents)

    # tenants: every project something refers to
    used_projects: set[str] = set()
    for obj in [*networks, *ports, *(i for v in sfc.values() for i in v)]:
        pid = _get(obj, "project_id") or _get(obj, "tenant_id")
        if pid:
            used_projects.add(str(pid))
    tenant_names = unique_names(sorted((p, projects.get(p, "")) for p in used_projects))

    def tenant_of(obj: Any) -> str | None:
        pid = _get(obj, "project_id") or _get(obj, "tenant_id")
        return tenant_names.get(str(pid)) if pid else None

    facts: list[Fact] = [Tenant(name=tenant_names[p], external_id=p) for p in sorted(
        used_projects)]

    # networks
    cidrs: dict[str, list[str]] = defaultdict(list)
    for s in subnets:
        nid, cidr = _get(s, "network_id"), _get(s, "cidr")
        if nid and cidr:
            try:
                cidrs[str(nid)].append(addr.canonical_cidr(str(cidr)))
            except ValueError:
                note(f"subnet {_get(s, 'id')}: cidr {cidr!r} is not a prefix; skipped")
    net_names = unique_names(sorted((str(_get(n, "id")), str(_get(n, "name") or ""))
                                    for n in networks))
    nets: list[Network] = []
    for n in networks:
        nid = str(_get(n, "id"))
        typ, seg, desc = _segment(n)
        encap = NETWORK_TYPES.get(str(typ)) if typ else None
        if encap is None:
            note(f"network {net_names[nid]}: network type {typ!r} is not an encapsulation "
                 "fabricscope knows; recorded as flat")
            encap = "flat"
        vni = None if encap == "flat" else seg
        nets.append(Network(name=net_names[nid], tenant=tenant_of(n), vni=vni, encap=encap,
                            subnets=tuple(sorted(set(cidrs.get(nid, [])))),
                            external_id=nid, description=desc))
    # the same VLAN id on two physical networks is legal in Neutron, one segment id per
    # encapsulation is the inventory's rule: keep the first, note the others
    facts += _dedupe_claims(nets, lambda f: [(f.encap, f.vni)] if f.vni is not None else [],
                            lambda f, _c: dataclasses.replace(f, vni=None),
                            "segment id", note)

    # hosts: agent hosts and port binding hosts
    tunnel_ips: dict[str, set[str]] = defaultdict(set)
    agent_types: dict[str, set[str]] = defaultdict(set)
    for a in agents:
        host = _get(a, "host")
        if not host:
            continue
        agent_types[str(host)].add(str(_get(a, "agent_type") or ""))
        conf = _get(a, "configuration")
        if conf is None:
            conf = _get(a, "configurations")
        tip = conf.get("tunneling_ip") if isinstance(conf, dict) else None
        if tip:
            try:
                tunnel_ips[str(host)].add(addr.canonical_ip(tip))
            except ValueError:
                note(f"agent on {host}: tunneling_ip {tip!r} is not an IP address; skipped")
    compute_hosts: set[str] = set()
    bound_hosts: set[str] = set()
    for p in ports:
        h = _get(p, "binding_host_id") or _get(p, "binding:host_id")
        if h:
            bound_hosts.add(str(h))
            if str(_get(p, "device_owner") or "").startswith("compute:"):
                compute_hosts.add(str(h))
    hosts: list[Host] = []
    for h in sorted(set(agent_types) | bound_hosts):
        role = ("network-node" if "L3 agent" in agent_types.get(h, set())
                and h not in compute_hosts else "hypervisor")
        hosts.append(Host(name=h, role=role, tunnel_ips=tuple(sorted(tunnel_ips.get(h, ()),
                                                                     key=addr.ip16))))
    facts += _dedupe_claims(
        hosts, lambda f: [("tunnel IP", ip) for ip in f.tunnel_ips],
        lambda f, c: dataclasses.replace(f, tunnel_ips=tuple(
            ip for ip in f.tunnel_ips if ("tunnel IP", ip) not in c)), "tunnel IP", note)
    host_names = {h.name for h in hosts}

    # endpoints
    pair_ports: set[str] = set()
    for pp in sfc.get("port_pairs", []):
        for k in ("ingress", "egress"):
            if pp.get(k):
                pair_ports.add(str(pp[k]))
    port_names = unique_names(sorted((str(_get(p, "id")), str(_get(p, "name") or ""))
                                     for p in ports))
    port_by_id = {str(_get(p, "id")): p for p in ports}
    for p in ports:
        pid = str(_get(p, "id"))
        owner = str(_get(p, "device_owner") or "")
        if pid in pair_ports:
            kind = "vnf-port"
        elif owner.startswith(SERVICE_OWNERS):
            kind = "gateway"
        else:
            kind = "vm"
        host = _get(p, "binding_host_id") or _get(p, "binding:host_id")
        ips = []
        for fip in _get(p, "fixed_ips") or []:
            ip = fip.get("ip_address") if isinstance(fip, dict) else None
            if ip:
                try:
                    ips.append(addr.canonical_ip(ip))
                except ValueError:
                    note(f"port {port_names[pid]}: {ip!r} is not an IP address; skipped")
        mac = _get(p, "mac_address")
        try:
            mac = addr.canonical_mac(str(mac)) if mac else None
        except ValueError:
            note(f"port {port_names[pid]}: {mac!r} is not a MAC address; skipped")
            mac = None
        device = str(_get(p, "device_id") or "")
        desc = ", ".join(x for x in (
            f"device_owner {owner}" if owner else "",
            f"device {servers[device]}" if device in servers else "") if x) or None
        nid = str(_get(p, "network_id") or "")
        facts.append(Endpoint(
            name=port_names[pid], kind=kind, mac=mac, ips=tuple(dict.fromkeys(ips)),
            network=net_names.get(nid), host=str(host) if host in host_names else None,
            tenant=tenant_of(p), external_id=pid, description=desc))

    if not sfc:
        return facts
    # VNFs: port pairs grouped by the service function (the VM owning the ingress port)
    pairs = {str(pp["id"]): pp for pp in sfc.get("port_pairs", []) if pp.get("id")}
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pp in pairs.values():
        port = port_by_id.get(str(pp.get("ingress"))) or port_by_id.get(str(pp.get("egress")))
        if port is None:
            note(f"port pair {pp.get('name') or pp['id']}: its ports are not listed; skipped")
            continue
        device = str(_get(port, "device_id") or "") or f"port-pair-{pp['id']}"
        by_device[device].append(pp)
    wanted = []
    for device, pps in sorted(by_device.items()):
        pps.sort(key=lambda pp: (str(pp.get("name") or ""), str(pp["id"])))
        name = servers.get(device) or (str(pps[0].get("name") or "") if len(pps) == 1 else "")
        wanted.append((device, name))
    vnf_names = unique_names(wanted)
    vnf_of_pair: dict[str, str] = {}
    for device, pps in sorted(by_device.items()):
        vports: list[VnfPort] = []
        for pp in pps:
            vnf_of_pair[str(pp["id"])] = vnf_names[device]
            ing, egr = str(pp.get("ingress") or ""), str(pp.get("egress") or "")
            roles = {"both": [ing]} if ing == egr else {"ingress": [ing], "egress": [egr]}
            for role, ids in roles.items():
                for i in ids:
                    if i in port_names and all(v.endpoint != port_names[i] for v in vports):
                        vports.append(VnfPort(endpoint=port_names[i], role=role))
        facts.append(Vnf(name=vnf_names[device], tenant=tenant_of(pps[0]), ports=tuple(vports),
                         external_id=device, description="port pairs: " + ", ".join(
                             str(pp.get("name") or pp["id"]) for pp in pps)))

    # chains
    groups: dict[str, PortGroup] = {}
    for g in sfc.get("port_pair_groups", []):
        vnfs = [vnf_of_pair[str(i)] for i in g.get("port_pairs") or () if str(i) in vnf_of_pair]
        groups[str(g.get("id"))] = PortGroup(name=str(g.get("name") or "") or None,
                                             vnfs=tuple(dict.fromkeys(vnfs)))
    classifiers: dict[str, FlowClassifier] = {}
    for fc in sfc.get("flow_classifiers", []):
        try:
            classifiers[str(fc.get("id"))] = _classifier(fc, port_names)
        except ValueError as exc:
            note(f"flow classifier {fc.get('name') or fc.get('id')}: {exc}; skipped")
    chain_names = unique_names(sorted((str(c.get("id")), str(c.get("name") or ""))
                                      for c in sfc.get("port_chains", [])))
    for c in sfc.get("port_chains", []):
        cid = str(c.get("id"))
        grp = []
        for g in c.get("port_pair_groups") or ():
            if str(g) in groups and groups[str(g)].vnfs:
                grp.append(groups[str(g)])
            else:
                note(f"port chain {chain_names[cid]}: port pair group {g} has no known port "
                     "pairs; left out")
        params = c.get("chain_parameters") or {}
        facts.append(Chain(
            name=chain_names[cid], tenant=tenant_of(c), chain_id=_int(c.get("chain_id")),
            symmetric=bool(params.get("symmetric", False)) if isinstance(params, dict)
            else False, groups=tuple(grp),
            classifiers=tuple(classifiers[str(f)] for f in c.get("flow_classifiers") or ()
                              if str(f) in classifiers),
            external_id=cid, description=str(c.get("description") or "") or None))
    return facts


def _classifier(fc: dict[str, Any], port_names: dict[str, str]) -> FlowClassifier:
    def prefix(v: Any) -> str | None:
        return addr.canonical_cidr(str(v)) if v else None

    def lport(v: Any) -> str | None:
        if not v:
            return None
        if str(v) not in port_names:
            raise ValueError(f"logical port {v} is not a listed port")
        return port_names[str(v)]

    proto = fc.get("protocol")
    return FlowClassifier(
        name=str(fc.get("name") or "") or None,
        ethertype="IPv6" if str(fc.get("ethertype") or "IPv4").lower() == "ipv6" else "IPv4",
        protocol=addr.parse_protocol(proto) if proto not in (None, "") else None,
        source_ip_prefix=prefix(fc.get("source_ip_prefix")),
        destination_ip_prefix=prefix(fc.get("destination_ip_prefix")),
        source_port_range_min=_int(fc.get("source_port_range_min")),
        source_port_range_max=_int(fc.get("source_port_range_max")),
        destination_port_range_min=_int(fc.get("destination_port_range_min")),
        destination_port_range_max=_int(fc.get("destination_port_range_max")),
        logical_source_port=lport(fc.get("logical_source_port")),
        logical_destination_port=lport(fc.get("logical_destination_port")),
    )

"""OVN Northbound + Southbound databases -> inventory facts, with ovsdbapp.

* SB ``Chassis`` (``hostname``, ``encaps`` -> ``Encap.type``/``ip``) -> hosts with tunnel IPs;
* NB ``Logical_Switch`` + SB ``Datapath_Binding`` (``tunnel_key``, matched by
  ``external_ids:logical-switch``) -> networks whose ``vni`` is the datapath tunnel key,
  i.e. the GENEVE VNI OVN puts on the wire;
* NB ``Logical_Switch_Port`` (``addresses`` / ``dynamic_addresses``, ``type``) + SB
  ``Port_Binding`` (``chassis``, ``tunnel_key``) -> endpoints with their host and their
  ``tunnel_key``: the logical port key that OVN's GENEVE option (class 0x0102, type 0x80)
  carries as ingress/egress port, so ``endpoint_by_port_key`` resolves decoded keys.

Exact fields: docs/import/ovn.md.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from fabricscope.inventory import addr
from fabricscope.inventory.importers.base import BaseImporter, quiet_loggers, unique_names
from fabricscope.inventory.index import Inventory
from fabricscope.inventory.model import Endpoint, Fact, Host, Network, Tenant

# Logical_Switch_Port.type -> endpoint kind; other types (localnet, l2gateway, vtep,
# patch, ...) have no overlay identity and are not endpoints.
PORT_KINDS = {"": "vm", "virtual": "vm", "external": "vm", "router": "gateway",
              "localport": "gateway"}


def _rows(api: Any, table: str) -> list[Any]:
    return list(api.db_list_rows(table).execute(check_error=True))


def _opt(value: Any) -> Any:
    """An optional OVSDB column (a list of 0 or 1 values) -> the value or None."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


class OvnImporter(BaseImporter):
    """Import from OVN: ``nb`` and ``sb`` are OVSDB connection strings (``tcp:IP:PORT``,
    ``ssl:IP:PORT``, ``unix:PATH``). ``name`` labels the source (``ovn:NAME``; default the
    NB address)."""

    kind = "ovn"

    def __init__(self, nb: str, sb: str, *, name: str | None = None,
                 timeout: float = 10.0) -> None:
        super().__init__(f"ovn:{name or nb}")
        self.nb = nb
        self.sb = sb
        self.timeout = timeout

    def _api(self, remote: str, schema: str) -> tuple[Any, Any]:
        try:
            from ovsdbapp.backend.ovs_idl import connection
            from ovsdbapp.schema.ovn_northbound import impl_idl as nb_impl
            from ovsdbapp.schema.ovn_southbound import impl_idl as sb_impl
        except ImportError:
            raise self.fail("ovsdbapp is not installed (pip install "
                            "'fabricscope[import]')") from None
        base = (nb_impl.OvnNbApiIdlImpl if schema == "OVN_Northbound"
                else sb_impl.OvnSbApiIdlImpl)
        # ovsdbapp keeps one connection per API class: a subclass per import keeps each
        # import on its own connection
        cls = type(f"_{base.__name__}", (base,), {"_ovsdb_connection": None})
        try:
            idl = connection.OvsdbIdl.from_server(remote, schema)
        except Exception as exc:
            raise self.fail(f"cannot read the {schema} schema from {remote}: "
                            f"{_line(exc)}") from None
        conn = connection.Connection(idl=idl, timeout=self.timeout)
        try:
            api = cls(conn)
        except Exception as exc:
            conn.stop(timeout=1)
            raise self.fail(f"cannot connect to {remote}: {_line(exc)}") from None
        return api, conn

    def _read(self) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        nb_tables = ("Logical_Switch", "Logical_Switch_Port", "Logical_Router_Port")
        sb_tables = ("Chassis", "Port_Binding", "Datapath_Binding")
        nb: dict[str, list[Any]] = {}
        sb: dict[str, list[Any]] = {}
        conns = []
        try:
            api, conn = self._api(self.nb, "OVN_Northbound")
            conns.append(conn)
            for t in nb_tables:
                nb[t] = _rows(api, t)
            api, conn = self._api(self.sb, "OVN_Southbound")
            conns.append(conn)
            for t in sb_tables:
                sb[t] = _rows(api, t)
        finally:
            for c in conns:
                c.stop(timeout=2)
        return nb, sb

    def fetch(self) -> list[Fact]:
        self.notes = []
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                with quiet_loggers("ovsdbapp", "ovs"):
                    result["rows"] = self._read()
            except BaseException as exc:  # reported by the caller
                result["error"] = exc

        # python-ovs blocks on connect; a worker thread bounds the wait
        t = threading.Thread(target=work, name="ovn-import", daemon=True)
        t.start()
        t.join(self.timeout * 3 + 5)
        if t.is_alive():
            raise self.fail(f"no answer from {self.nb} / {self.sb} within "
                            f"{self.timeout * 3 + 5:.0f} s")
        if "error" in result:
            exc = result["error"]
            if isinstance(exc, Exception) and not hasattr(exc, "source"):
                raise self.fail(_line(exc)) from None
            raise exc
        nb, sb = result["rows"]
        return build_facts(nb, sb, note=self.note)


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _parse_addresses(entries: list[str]) -> tuple[str | None, tuple[str, ...]]:
    """OVN address strings (``"MAC IP IP..."``) -> (MAC, IPs) of the first usable one."""
    for entry in entries:
        toks = str(entry).split()
        if not toks:
            continue
        try:
            mac = addr.canonical_mac(toks[0])
        except ValueError:
            continue  # router, unknown, dynamic, none
        ips = []
        for tok in toks[1:]:
            try:
                ips.append(addr.canonical_ip(tok.split("/")[0]))
            except ValueError:
                continue
        return mac, tuple(dict.fromkeys(ips))
    return None, ()


def build_facts(nb: dict[str, list[Any]], sb: dict[str, list[Any]],
                note: Any = None) -> list[Fact]:
    """NB/SB rows (ovsdbapp row objects, or anything with the same attributes) -> facts."""
    note = note or (lambda text: None)
    facts: list[Fact] = []

    # hosts: chassis
    chassis = sb.get("Chassis", [])
    host_names = unique_names(sorted((str(c.name), str(getattr(c, "hostname", "") or ""))
                                     for c in chassis))
    encap_types: set[str] = set()
    seen_ips: dict[str, str] = {}
    for c in sorted(chassis, key=lambda c: host_names[str(c.name)]):
        hname = host_names[str(c.name)]
        ips = []
        for e in c.encaps or ():
            encap_types.add(str(e.type))
            try:
                ip = addr.canonical_ip(e.ip)
            except ValueError:
                note(f"chassis {c.name}: encap ip {e.ip!r} is not an IP address; skipped")
                continue
            if ip in seen_ips and seen_ips[ip] != hname:
                note(f"tunnel IP {ip} of {hname} is also held by {seen_ips[ip]}: kept there "
                     "only")
                continue
            seen_ips[ip] = hname
            ips.append(ip)
        facts.append(Host(name=hname, tunnel_ips=tuple(sorted(set(ips), key=addr.ip16)),
                          external_id=str(c.name)))
    by_chassis_uuid = {c.uuid: host_names[str(c.name)] for c in chassis}
    # OVN uses GENEVE unless every chassis only offers VXLAN (or STT)
    if not encap_types or "geneve" in encap_types:
        encap = "geneve"
    elif "vxlan" in encap_types:
        encap = "vxlan"
    else:
        encap = "stt" if "stt" in encap_types else "geneve"

    # networks: logical switches, vni = datapath binding tunnel key
    dp_key_by_ls: dict[str, int] = {}
    dp_key_by_name: dict[str, int] = {}
    for dp in sb.get("Datapath_Binding", []):
        ext = dict(dp.external_ids or {})
        if "logical-switch" in ext:
            dp_key_by_ls[str(ext["logical-switch"])] = int(dp.tunnel_key)
        if ext.get("name") and "logical-router" not in ext:
            dp_key_by_name[str(ext["name"])] = int(dp.tunnel_key)
    switches = nb.get("Logical_Switch", [])
    ls_names = unique_names(sorted((str(ls.uuid), str(ls.name or "")) for ls in switches))
    tenants: set[str] = set()
    ls_of_port: dict[Any, str] = {}
    net_tenant: dict[str, str | None] = {}
    for ls in switches:
        name = ls_names[str(ls.uuid)]
        ext = dict(ls.external_ids or {})
        other = dict(ls.other_config or {})
        vni = dp_key_by_ls.get(str(ls.uuid), dp_key_by_name.get(str(ls.name)))
        if vni is None:
            note(f"logical switch {name}: no datapath binding in the SB (is ovn-northd "
                 "running?); no vni")
        subnets = []
        for k in ("subnet", "ipv6_prefix"):
            v = other.get(k)
            if v:
                try:
                    subnets.append(addr.canonical_cidr(v if "/" in v else f"{v}/64"))
                except ValueError:
                    note(f"logical switch {name}: other_config:{k} {v!r} is not a prefix")
        tenant = ext.get("neutron:project_id") or None
        if tenant:
            tenants.add(tenant)
        net_tenant[name] = tenant
        desc = ext.get("neutron:network_name")
        facts.append(Network(name=name, vni=vni, encap=encap, subnets=tuple(subnets),
                             tenant=tenant, external_id=str(ls.uuid),
                             description=f"neutron network {desc}" if desc else None))
        for p in ls.ports or ():
            ls_of_port[p.uuid] = name

    # endpoints: logical switch ports + port bindings
    bindings = {str(pb.logical_port): pb for pb in sb.get("Port_Binding", [])}
    lrps = {str(r.name): r for r in nb.get("Logical_Router_Port", [])}
    for lsp in nb.get("Logical_Switch_Port", []):
        ptype = str(lsp.type or "")
        if ptype not in PORT_KINDS:
            continue
        name = str(lsp.name)
        ext = dict(lsp.external_ids or {})
        kind = PORT_KINDS[ptype]
        if kind == "vm" and _opt(getattr(lsp, "parent_name", None)):
            kind = "container"  # a nested port (container inside a VM, tagged)
        owner = ext.get("neutron:device_owner", "")
        if owner.startswith("network:"):
            kind = "gateway"
        addresses = [str(a) for a in lsp.addresses or ()]
        if any(a.split()[:1] == ["dynamic"] or a.endswith(" dynamic") for a in addresses):
            dyn = _opt(getattr(lsp, "dynamic_addresses", None))
            addresses = [str(dyn)] if dyn else []
        mac, eips = _parse_addresses(addresses)
        if ptype == "router":
            lrp = lrps.get(str(dict(lsp.options or {}).get("router-port", "")))
            if lrp is not None:
                mac, eips = _parse_addresses([" ".join([str(lrp.mac), *map(str, lrp.networks)])])
        pb = bindings.get(name)
        host = None
        key = None
        if pb is not None:
            key = int(pb.tunnel_key)
            ch = _opt(pb.chassis)
            if ch is not None:
                host = by_chassis_uuid.get(ch.uuid)
        network = ls_of_port.get(lsp.uuid)
        tenant = ext.get("neutron:project_id") or (net_tenant.get(network) if network else None)
        if tenant:
            tenants.add(tenant)
        pname = ext.get("neutron:port_name")
        facts.append(Endpoint(name=name, kind=kind, mac=mac, ips=eips, network=network,
                              host=host, tenant=tenant, tunnel_key=key,
                              external_id=str(lsp.uuid),
                              description=f"neutron port {pname}" if pname else None))
    facts += [Tenant(name=t) for t in sorted(tenants)]
    return facts


def endpoint_by_port_key(inventory: Inventory, vni: int, port_key: int,
                         at: datetime | None = None) -> Endpoint | None:
    """The endpoint OVN calls ``port_key`` on the datapath with tunnel key ``vni``: what
    decode's GENEVE OVN option (``ovn_in_port`` / ``ovn_out_port``) refers to. None when
    unknown or ambiguous."""
    net = inventory.network_by_vni(vni, at, encap="geneve") or inventory.network_by_vni(
        vni, at)
    if net is None:
        return None
    hits = [e for e in inventory.facts("endpoints", at)
            if isinstance(e, Endpoint) and e.network == net.name and e.tunnel_key == port_key]
    return hits[0] if len(hits) == 1 else None

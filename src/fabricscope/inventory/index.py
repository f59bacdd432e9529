"""``Inventory``: all facts with their validity, and the time-aware lookups correlation uses.

Every lookup takes ``at`` (an aware datetime; ``None`` means now; a naive datetime is taken
as UTC) and answers with what was true at that instant. Declared facts always win over
learned ones: a learned fact is only returned when no declared fact answers.

Lookups here are per question (a dict hit and a short scan of versions). For whole record
batches use ``fabricscope.inventory.enrich``, which resolves millions of rows at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import NamedTuple, TypeVar

from fabricscope.inventory import addr
from fabricscope.inventory.model import (
    KINDS,
    TIME_MAX,
    TIME_MIN,
    Chain,
    Device,
    Endpoint,
    Fact,
    Host,
    Interface,
    Link,
    LinkEnd,
    Network,
    Tenant,
    Vnf,
    sort_key,
)

F = TypeVar("F", bound=Fact)


class DeviceInterface(NamedTuple):
    """The answer of ``Inventory.interface``: the device and its interface."""

    device: Device
    interface: Interface


def _when(at: datetime | None) -> datetime:
    return datetime.now(UTC) if at is None else addr.utc(at)


def _pick(candidates: Iterable[F], t: datetime) -> list[F]:
    """Versions valid at t; declared ones hide learned ones."""
    valid = [c for c in candidates if c.valid_at(t)]
    declared = [c for c in valid if not c.learned]
    return declared if declared else valid


def _one(candidates: Iterable[F], t: datetime) -> F | None:
    found = _pick(candidates, t)
    return found[0] if len(found) == 1 else None


class Inventory:
    """Every fact of every kind, with validity; immutable once built."""

    def __init__(self, facts: Iterable[Fact] = ()) -> None:
        self._facts: list[Fact] = sorted(facts, key=sort_key)
        self._by_key: dict[tuple[str, str], list[Fact]] = defaultdict(list)
        for f in self._facts:
            self._by_key[(f.KIND, f.key)].append(f)
        self._host_by_tunnel: dict[bytes, list[Host]] = defaultdict(list)
        self._host_by_any_ip: dict[bytes, list[Host]] = defaultdict(list)
        self._ep_by_ip: dict[bytes, list[Endpoint]] = defaultdict(list)
        self._ep_by_mac: dict[int, list[Endpoint]] = defaultdict(list)
        self._ep_by_host: dict[str, list[Endpoint]] = defaultdict(list)
        self._dev_by_agent: dict[bytes, list[Device]] = defaultdict(list)
        self._dev_by_host: dict[str, list[Device]] = defaultdict(list)
        self._net_by_vni: dict[int, list[Network]] = defaultdict(list)
        self._links_by_if: dict[tuple[str, str], list[Link]] = defaultdict(list)
        self._cabling_by_if: dict[tuple[str, str], list[Link]] = defaultdict(list)
        self._cabling: list[Link] = []
        self._vnf_by_port: dict[str, list[Vnf]] = defaultdict(list)
        for f in self._facts:
            if isinstance(f, Host):
                for ip in f.tunnel_ips:
                    self._host_by_tunnel[addr.ip16(ip)].append(f)
                    self._host_by_any_ip[addr.ip16(ip)].append(f)
                others = ([f.mgmt_ip] if f.mgmt_ip else []) + [i for n in f.nics for i in n.ips]
                for ip in others:
                    if f not in self._host_by_any_ip[addr.ip16(ip)]:
                        self._host_by_any_ip[addr.ip16(ip)].append(f)
                for nic in f.nics:
                    if nic.device and nic.interface:
                        link = Link(
                            a=LinkEnd(device=nic.device, interface=nic.interface),
                            b=LinkEnd(host=f.name, nic=nic.name),
                            valid_from=f.valid_from,
                            valid_to=f.valid_to,
                            source=f.source,
                            learned=f.learned,
                            evidence=f.evidence,
                        )
                        self._cabling.append(link)
                        self._cabling_by_if[(nic.device, nic.interface)].append(link)
            elif isinstance(f, Endpoint):
                for ip in f.ips:
                    self._ep_by_ip[addr.ip16(ip)].append(f)
                if f.mac:
                    self._ep_by_mac[addr.mac_to_int(f.mac)].append(f)
                if f.host:
                    self._ep_by_host[f.host].append(f)
            elif isinstance(f, Device):
                if f.agent:
                    self._dev_by_agent[addr.ip16(f.agent)].append(f)
                if f.host:
                    self._dev_by_host[f.host].append(f)
            elif isinstance(f, Network):
                if f.vni is not None:
                    self._net_by_vni[f.vni].append(f)
            elif isinstance(f, Link):
                for end in (f.a, f.b):
                    if end.device and end.interface:
                        self._links_by_if[(end.device, end.interface)].append(f)
            elif isinstance(f, Vnf):
                for p in f.ports:
                    self._vnf_by_port[p.endpoint].append(f)

    # ------------------------------------------------------------------ whole sets

    def __len__(self) -> int:
        return len(self._facts)

    def __iter__(self) -> Iterator[Fact]:
        return iter(self._facts)

    def facts(self, kind: str | None = None, at: datetime | None = None, *,
              all_versions: bool = False) -> list[Fact]:
        """Facts of one kind (or all), valid at ``at``; every version with ``all_versions``."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
        chosen = [f for f in self._facts if kind is None or kind == f.KIND]
        if all_versions:
            return chosen
        t = _when(at)
        return [f for f in chosen if f.valid_at(t)]

    def versions(self, kind: str, key: str) -> list[Fact]:
        """Every version of one fact, oldest first."""
        return list(self._by_key.get((kind, key), ()))

    def get(self, kind: str, key: str, at: datetime | None = None) -> Fact | None:
        t = _when(at)
        found = _pick(self._by_key.get((kind, key), ()), t)
        return found[0] if found else None

    def counts(self, at: datetime | None = None) -> dict[str, int]:
        t = _when(at)
        out = dict.fromkeys(KINDS, 0)
        for f in self._facts:
            if f.valid_at(t):
                out[f.KIND] += 1
        return out

    def change_times(self) -> list[datetime]:
        """Every instant at which some fact starts or stops being valid, sorted."""
        ts = {t for f in self._facts for t in (f.valid_from, f.valid_to) if t is not None}
        return sorted(ts)

    def with_facts(self, extra: Iterable[Fact]) -> Inventory:
        """A new Inventory holding these facts and ``extra`` (e.g. learned facts)."""
        return Inventory([*self._facts, *extra])

    def at(self, t: datetime | None = None) -> InventoryView:
        """A snapshot view: the same lookups, all at time ``t``."""
        return InventoryView(self, _when(t))

    # ------------------------------------------------------------------ by name

    def tenant(self, name: str, at: datetime | None = None) -> Tenant | None:
        f = self.get("tenants", name, at)
        return f if isinstance(f, Tenant) else None

    def network(self, name: str, at: datetime | None = None) -> Network | None:
        f = self.get("networks", name, at)
        return f if isinstance(f, Network) else None

    def host(self, name: str, at: datetime | None = None) -> Host | None:
        f = self.get("hosts", name, at)
        return f if isinstance(f, Host) else None

    def device(self, name: str, at: datetime | None = None) -> Device | None:
        f = self.get("devices", name, at)
        return f if isinstance(f, Device) else None

    def endpoint(self, name: str, at: datetime | None = None) -> Endpoint | None:
        f = self.get("endpoints", name, at)
        return f if isinstance(f, Endpoint) else None

    def vnf(self, name: str, at: datetime | None = None) -> Vnf | None:
        f = self.get("vnfs", name, at)
        return f if isinstance(f, Vnf) else None

    def chain(self, name: str, at: datetime | None = None) -> Chain | None:
        f = self.get("chains", name, at)
        return f if isinstance(f, Chain) else None

    # ------------------------------------------------------------------ by identity

    def host_by_tunnel_ip(self, ip: object, at: datetime | None = None) -> Host | None:
        """The host owning a tunnel endpoint (outer) address at ``at``."""
        return _one(self._host_by_tunnel.get(addr.ip16(ip), ()), _when(at))

    def host_by_ip(self, ip: object, at: datetime | None = None) -> Host | None:
        """A host by any of its addresses: tunnel, management or NIC."""
        return _one(self._host_by_any_ip.get(addr.ip16(ip), ()), _when(at))

    def endpoints_by_ip(self, ip: object, at: datetime | None = None) -> list[Endpoint]:
        """Every endpoint holding ``ip`` at ``at`` (several tenants may reuse an address)."""
        return _pick(self._ep_by_ip.get(addr.ip16(ip), ()), _when(at))

    def endpoint_by_ip(
        self, ip: object, vni: int | None = None, at: datetime | None = None, *,
        encap: str | None = None,
    ) -> Endpoint | None:
        """The endpoint with inner address ``ip`` on the network with segment id ``vni``.

        Without ``vni`` the answer is the endpoint only if exactly one holds the address at
        that time (None when the address is ambiguous across tenants).
        """
        t = _when(at)
        cands = self._ep_by_ip.get(addr.ip16(ip), ())
        if vni is not None:
            cands = [e for e in cands if self._on_segment(e, vni, encap, t)]
        return _one(cands, t)

    def endpoint_by_mac(
        self, mac: str | int, vni: int | None = None, at: datetime | None = None, *,
        encap: str | None = None,
    ) -> Endpoint | None:
        """The endpoint with this MAC (text or the uint64 of the records)."""
        t = _when(at)
        key = mac if isinstance(mac, int) else addr.mac_to_int(mac)
        cands = self._ep_by_mac.get(key, ())
        if vni is not None:
            cands = [e for e in cands if self._on_segment(e, vni, encap, t)]
        return _one(cands, t)

    def _on_segment(self, e: Endpoint, vni: int, encap: str | None, t: datetime) -> bool:
        if e.network is None:
            return False
        net = self.network(e.network, t)
        return net is not None and net.vni == vni and (encap is None or net.encap == encap)

    def endpoints_on_host(self, host: str, at: datetime | None = None) -> list[Endpoint]:
        return _pick(self._ep_by_host.get(host, ()), _when(at))

    def device_by_agent(self, agent_ip: object, at: datetime | None = None) -> Device | None:
        """The device whose sFlow agent address is ``agent_ip``."""
        return _one(self._dev_by_agent.get(addr.ip16(agent_ip), ()), _when(at))

    def vswitch_of_host(self, host: str, at: datetime | None = None) -> Device | None:
        return _one(self._dev_by_host.get(host, ()), _when(at))

    def interface(
        self, agent_ip: object, ifindex: int, at: datetime | None = None
    ) -> DeviceInterface | None:
        """The device and interface an sFlow agent calls ``ifindex``."""
        dev = self.device_by_agent(agent_ip, at)
        if dev is None:
            return None
        itf = dev.interface(int(ifindex))
        return DeviceInterface(dev, itf) if itf is not None else None

    def link_of(
        self, device: str, interface: str | int, at: datetime | None = None
    ) -> Link | None:
        """The link plugged into ``device``'s interface (by name or ifIndex). Declared links
        come first; a host NIC's cabling (``hosts[].nics[].device/interface``) answers
        otherwise."""
        t = _when(at)
        if isinstance(interface, int):
            dev = self.device(device, t)
            itf = dev.interface(interface) if dev is not None else None
            if itf is None:
                return None
            ifname = itf.name
        else:
            ifname = interface
        found = _pick(self._links_by_if.get((device, ifname), ()), t)
        if not found:
            found = _pick(self._cabling_by_if.get((device, ifname), ()), t)
        return found[0] if found else None

    def links(self, at: datetime | None = None) -> list[Link]:
        """Declared links plus the links implied by host NIC cabling, valid at ``at``."""
        t = _when(at)
        out = [f for f in self._facts if isinstance(f, Link) and f.valid_at(t)]
        taken = {(e.device, e.interface) for lk in out for e in (lk.a, lk.b) if e.device}
        out += [c for c in self._cabling if c.valid_at(t) and (c.a.device, c.a.interface)
                not in taken]
        return out

    def network_by_vni(
        self, vni: int, at: datetime | None = None, encap: str | None = None
    ) -> Network | None:
        """The virtual network with segment id ``vni`` (optionally of one encapsulation)."""
        cands: Sequence[Network] = self._net_by_vni.get(int(vni), ())
        if encap is not None:
            cands = [n for n in cands if n.encap == encap]
        return _one(cands, _when(at))

    def tenant_of(self, endpoint: Endpoint, at: datetime | None = None) -> str | None:
        """The endpoint's tenant, or its network's."""
        if endpoint.tenant:
            return endpoint.tenant
        if endpoint.network:
            net = self.network(endpoint.network, at)
            if net is not None:
                return net.tenant
        return None

    def chains(self, at: datetime | None = None) -> list[Chain]:
        """The service chains in force at ``at``."""
        t = _when(at)
        return [f for f in self._facts if isinstance(f, Chain) and f.valid_at(t)]

    def vnf_of_endpoint(self, endpoint: str, at: datetime | None = None) -> Vnf | None:
        """The VNF owning the port ``endpoint`` (an endpoint name)."""
        return _one(self._vnf_by_port.get(endpoint, ()), _when(at))

    def chains_of_vnf(self, vnf: str, at: datetime | None = None) -> list[Chain]:
        return [c for c in self.chains(at) if vnf in c.vnf_names()]


class InventoryView:
    """``Inventory.at(t)``: the inventory as it was at one instant."""

    def __init__(self, inventory: Inventory, at: datetime) -> None:
        self.inventory = inventory
        self.time = at

    def facts(self, kind: str | None = None) -> list[Fact]:
        return self.inventory.facts(kind, self.time)

    def counts(self) -> dict[str, int]:
        return self.inventory.counts(self.time)

    def get(self, kind: str, key: str) -> Fact | None:
        return self.inventory.get(kind, key, self.time)

    def tenant(self, name: str) -> Tenant | None:
        return self.inventory.tenant(name, self.time)

    def network(self, name: str) -> Network | None:
        return self.inventory.network(name, self.time)

    def host(self, name: str) -> Host | None:
        return self.inventory.host(name, self.time)

    def device(self, name: str) -> Device | None:
        return self.inventory.device(name, self.time)

    def endpoint(self, name: str) -> Endpoint | None:
        return self.inventory.endpoint(name, self.time)

    def vnf(self, name: str) -> Vnf | None:
        return self.inventory.vnf(name, self.time)

    def chain(self, name: str) -> Chain | None:
        return self.inventory.chain(name, self.time)

    def host_by_tunnel_ip(self, ip: object) -> Host | None:
        return self.inventory.host_by_tunnel_ip(ip, self.time)

    def host_by_ip(self, ip: object) -> Host | None:
        return self.inventory.host_by_ip(ip, self.time)

    def endpoints_by_ip(self, ip: object) -> list[Endpoint]:
        return self.inventory.endpoints_by_ip(ip, self.time)

    def endpoint_by_ip(self, ip: object, vni: int | None = None, *,
                       encap: str | None = None) -> Endpoint | None:
        return self.inventory.endpoint_by_ip(ip, vni, self.time, encap=encap)

    def endpoint_by_mac(self, mac: str | int, vni: int | None = None, *,
                        encap: str | None = None) -> Endpoint | None:
        return self.inventory.endpoint_by_mac(mac, vni, self.time, encap=encap)

    def endpoints_on_host(self, host: str) -> list[Endpoint]:
        return self.inventory.endpoints_on_host(host, self.time)

    def device_by_agent(self, agent_ip: object) -> Device | None:
        return self.inventory.device_by_agent(agent_ip, self.time)

    def vswitch_of_host(self, host: str) -> Device | None:
        return self.inventory.vswitch_of_host(host, self.time)

    def interface(self, agent_ip: object, ifindex: int) -> DeviceInterface | None:
        return self.inventory.interface(agent_ip, ifindex, self.time)

    def link_of(self, device: str, interface: str | int) -> Link | None:
        return self.inventory.link_of(device, interface, self.time)

    def links(self) -> list[Link]:
        return self.inventory.links(self.time)

    def network_by_vni(self, vni: int, encap: str | None = None) -> Network | None:
        return self.inventory.network_by_vni(vni, self.time, encap)

    def tenant_of(self, endpoint: Endpoint) -> str | None:
        return self.inventory.tenant_of(endpoint, self.time)

    def chains(self) -> list[Chain]:
        return self.inventory.chains(self.time)

    def vnf_of_endpoint(self, endpoint: str) -> Vnf | None:
        return self.inventory.vnf_of_endpoint(endpoint, self.time)

    def chains_of_vnf(self, vnf: str) -> list[Chain]:
        return self.inventory.chains_of_vnf(vnf, self.time)


__all__ = ["TIME_MAX", "TIME_MIN", "DeviceInterface", "Inventory", "InventoryView"]

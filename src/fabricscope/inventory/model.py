"""The inventory model: typed, immutable facts, each with a validity interval.

A fact is true from ``valid_from`` (inclusive) until ``valid_to`` (exclusive); ``None`` on
either side means open (since always / still true). Times are aware UTC datetimes.
The same name may have several versions with disjoint intervals: that is how a VM
migration, a changed IP or a VNF inserted into a chain is written.

Identities are kept in canonical text (IPs via ``addr.canonical_ip``, MACs as
``aa:bb:cc:dd:ee:ff``, prefixes as ``10.1.0.0/24``); the Inventory indexes them in the
16-byte / integer forms the record columns use.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from fabricscope.inventory import addr

KINDS: tuple[str, ...] = (
    "tenants",
    "networks",
    "hosts",
    "devices",
    "links",
    "endpoints",
    "vnfs",
    "chains",
)
ENDPOINT_KINDS = ("vm", "container", "vnf-port", "gateway")
HOST_ROLES = ("hypervisor", "gateway", "network-node", "bare-metal")
DEVICE_ROLES = ("leaf", "spine", "border", "vswitch", "other")
NETWORK_ENCAPS = ("vxlan", "vxlan-gpe", "geneve", "gre", "nvgre", "stt", "vlan", "flat")
VNF_PORT_ROLES = ("ingress", "egress", "both")

# Fields that describe where/when a fact holds rather than what it says.
META_FIELDS = frozenset({"valid_from", "valid_to", "source", "learned", "evidence"})


def _valid_at(valid_from: datetime | None, valid_to: datetime | None, t: datetime) -> bool:
    return (valid_from is None or valid_from <= t) and (valid_to is None or t < valid_to)


@dataclass(frozen=True, kw_only=True)
class Fact:
    """Base of every top-level fact: validity plus provenance.

    ``source`` names where the fact came from (a file, an importer, ``learned``);
    ``learned`` facts were inferred from traffic and carry an ``evidence`` count (samples
    that support them). Provenance is not part of equality.
    """

    KIND: ClassVar[str] = ""

    valid_from: datetime | None = None
    valid_to: datetime | None = None
    description: str | None = None
    external_id: str | None = None
    source: str | None = field(default=None, compare=False)
    learned: bool = field(default=False, compare=False)
    evidence: int = field(default=0, compare=False)

    @property
    def key(self) -> str:
        """The identity of the fact within its kind (its name)."""
        return str(getattr(self, "name"))  # noqa: B009 - every concrete kind has a name

    def valid_at(self, t: datetime) -> bool:
        return _valid_at(self.valid_from, self.valid_to, t)

    def overlaps(self, other: Fact) -> bool:
        return _intervals_overlap(self.valid_from, self.valid_to, other.valid_from, other.valid_to)

    def with_validity(self, valid_from: datetime | None, valid_to: datetime | None) -> Any:
        return dataclasses.replace(self, valid_from=valid_from, valid_to=valid_to)

    def to_dict(self, *, meta: bool = False) -> dict[str, Any]:
        """The file-format form of the fact: canonical, JSON-ready, None/empty omitted.

        Validity is always included when set; ``meta=True`` adds source/learned/evidence.
        """
        out = _to_plain(self)
        assert isinstance(out, dict)
        if meta:
            if self.source is not None:
                out["source"] = self.source
            if self.learned:
                out["learned"] = True
                out["evidence"] = self.evidence
        return out

    def content(self) -> dict[str, Any]:
        """What the fact says, without validity and provenance (used to detect changes)."""
        d = self.to_dict()
        d.pop("valid_from", None)
        d.pop("valid_to", None)
        return d


def _intervals_overlap(
    a_from: datetime | None, a_to: datetime | None, b_from: datetime | None, b_to: datetime | None
) -> bool:
    a_starts_before_b_ends = b_to is None or a_from is None or a_from < b_to
    b_starts_before_a_ends = a_to is None or b_from is None or b_from < a_to
    return a_starts_before_b_ends and b_starts_before_a_ends


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            if f.name in ("source", "learned", "evidence"):
                continue
            v = getattr(value, f.name)
            if v is None or v == ():
                continue
            if f.default is not dataclasses.MISSING and v == f.default and f.name not in (
                "kind",
                "role",
                "encap",
            ):
                continue
            out[f.name] = _to_plain(v)
        return out
    if isinstance(value, tuple | list):
        return [_to_plain(v) for v in value]
    if isinstance(value, datetime):
        return addr.format_time(value)
    return value


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True, kw_only=True)
class Tenant(Fact):
    """A tenant (an OpenStack project, a Kubernetes namespace, a customer)."""

    KIND: ClassVar[str] = "tenants"
    name: str


@dataclass(frozen=True, kw_only=True)
class Network(Fact):
    """A virtual network: its segment id (VNI, VSID, GRE key or VLAN id), encapsulation and
    subnets. ``vni`` is ``None`` for flat networks."""

    KIND: ClassVar[str] = "networks"
    name: str
    tenant: str | None = None
    vni: int | None = None
    encap: str = "vxlan"
    subnets: tuple[str, ...] = ()

    def contains(self, ip: object) -> bool:
        a = addr.ip_address(ip)
        return any(a in ipaddress.ip_network(s) for s in self.subnets)


@dataclass(frozen=True, kw_only=True)
class HostNic:
    """A host's physical NIC and, when known, the switch port it is cabled to."""

    name: str
    mac: str | None = None
    ips: tuple[str, ...] = ()
    device: str | None = None
    interface: str | None = None


@dataclass(frozen=True, kw_only=True)
class Host(Fact):
    """A hypervisor, gateway or network node: the owner of tunnel endpoint (VTEP) IPs."""

    KIND: ClassVar[str] = "hosts"
    name: str
    role: str = "hypervisor"
    tunnel_ips: tuple[str, ...] = ()
    mgmt_ip: str | None = None
    nics: tuple[HostNic, ...] = ()

    def nic(self, name: str) -> HostNic | None:
        return next((n for n in self.nics if n.name == name), None)


@dataclass(frozen=True, kw_only=True)
class Interface:
    """A switch port as sFlow names it: ifIndex, ifName, speed in bits/s."""

    name: str
    ifindex: int | None = None
    speed: int | None = None
    description: str | None = None


@dataclass(frozen=True, kw_only=True)
class Device(Fact):
    """A switch exporting sFlow: physical (leaf, spine, border) or virtual (vswitch, the Open
    vSwitch of a host, named by ``host``)."""

    KIND: ClassVar[str] = "devices"
    name: str
    role: str = "leaf"
    agent: str | None = None
    host: str | None = None
    interfaces: tuple[Interface, ...] = ()

    def interface(self, which: str | int) -> Interface | None:
        """An interface by name (str) or ifIndex (int)."""
        if isinstance(which, int):
            return next((i for i in self.interfaces if i.ifindex == which), None)
        return next((i for i in self.interfaces if i.name == which), None)


@dataclass(frozen=True, kw_only=True)
class LinkEnd:
    """One side of a link: a device interface, or a host NIC."""

    device: str | None = None
    interface: str | None = None
    host: str | None = None
    nic: str | None = None

    @property
    def label(self) -> str:
        if self.device is not None:
            return f"{self.device}:{self.interface}"
        return f"{self.host}:{self.nic}"

    def is_interface(self, device: str, interface: str) -> bool:
        return self.device == device and self.interface == interface


@dataclass(frozen=True, kw_only=True)
class Link(Fact):
    """A cable between two device interfaces, or between a device interface and a host NIC.
    Its identity is its name, or ``a--b`` (ends sorted) when it has none."""

    KIND: ClassVar[str] = "links"
    name: str | None = None
    a: LinkEnd
    b: LinkEnd
    speed: int | None = None

    @property
    def key(self) -> str:
        if self.name:
            return self.name
        return "--".join(sorted((self.a.label, self.b.label)))

    def other(self, device: str, interface: str) -> LinkEnd | None:
        """The far end seen from ``device:interface`` (None if that is not an end)."""
        if self.a.is_interface(device, interface):
            return self.b
        if self.b.is_interface(device, interface):
            return self.a
        return None


@dataclass(frozen=True, kw_only=True)
class Endpoint(Fact):
    """A tenant-facing port: a VM or container vNIC, a VNF port, a gateway port.

    ``tunnel_key`` is the port's key inside its network's tunnel where the encapsulation
    carries one (OVN: the logical port's tunnel key, found in the GENEVE OVN option)."""

    KIND: ClassVar[str] = "endpoints"
    name: str
    kind: str = "vm"
    mac: str | None = None
    ips: tuple[str, ...] = ()
    network: str | None = None
    host: str | None = None
    tenant: str | None = None
    tunnel_key: int | None = None  # OVN logical port key (GENEVE option ingress/egress port)


@dataclass(frozen=True, kw_only=True)
class VnfPort:
    """A VNF port: the endpoint that carries it and its role in a port pair."""

    endpoint: str
    role: str = "both"


@dataclass(frozen=True, kw_only=True)
class Vnf(Fact):
    """A virtual network function (firewall, load balancer, IDS, ...) and its ports."""

    KIND: ClassVar[str] = "vnfs"
    name: str
    kind: str = "other"
    tenant: str | None = None
    stateful: bool | None = None
    ports: tuple[VnfPort, ...] = ()

    def port_endpoints(self, role: str | None = None) -> tuple[str, ...]:
        return tuple(
            p.endpoint for p in self.ports if role is None or p.role in (role, "both")
        )


@dataclass(frozen=True, kw_only=True)
class FlowClassifier:
    """Which traffic a chain takes, in networking-sfc's terms. Unset fields match anything."""

    name: str | None = None
    ethertype: str = "IPv4"
    protocol: int | None = None
    source_ip_prefix: str | None = None
    destination_ip_prefix: str | None = None
    source_port_range_min: int | None = None
    source_port_range_max: int | None = None
    destination_port_range_min: int | None = None
    destination_port_range_max: int | None = None
    logical_source_port: str | None = None
    logical_destination_port: str | None = None

    def matches(
        self,
        src: object,
        dst: object,
        *,
        protocol: int | None = None,
        sport: int | None = None,
        dport: int | None = None,
    ) -> bool:
        """Does a flow match the 5-tuple part of the classifier? (Logical ports are matched
        by the caller, which knows the endpoints.) Unknown values do not match a set field."""
        s = addr.ip_address(src)
        d = addr.ip_address(dst)
        want_v6 = self.ethertype.lower() == "ipv6"
        if (s.version == 6) != want_v6 or (d.version == 6) != want_v6:
            return False
        if self.protocol is not None and protocol != self.protocol:
            return False
        if self.source_ip_prefix and s not in ipaddress.ip_network(self.source_ip_prefix):
            return False
        if self.destination_ip_prefix and d not in ipaddress.ip_network(
            self.destination_ip_prefix
        ):
            return False
        return _in_range(sport, self.source_port_range_min, self.source_port_range_max) and (
            _in_range(dport, self.destination_port_range_min, self.destination_port_range_max)
        )


def _in_range(port: int | None, lo: int | None, hi: int | None) -> bool:
    if lo is None and hi is None:
        return True
    if port is None:
        return False
    return (lo is None or port >= lo) and (hi is None or port <= hi)


@dataclass(frozen=True, kw_only=True)
class PortGroup:
    """One hop of a chain: VNFs that share the load (a networking-sfc port pair group)."""

    vnfs: tuple[str, ...]
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class Chain(Fact):
    """A service chain (networking-sfc port chain): ordered groups of VNFs and the flow
    classifiers that select its traffic. ``chain_id`` is the id networking-sfc puts in the
    MPLS label (chain_id << 8 | service index)."""

    KIND: ClassVar[str] = "chains"
    name: str
    tenant: str | None = None
    chain_id: int | None = None
    symmetric: bool = False
    groups: tuple[PortGroup, ...] = ()
    classifiers: tuple[FlowClassifier, ...] = ()

    def vnf_names(self) -> tuple[str, ...]:
        return tuple(v for g in self.groups for v in g.vnfs)


FACT_TYPES: dict[str, type[Fact]] = {
    "tenants": Tenant,
    "networks": Network,
    "hosts": Host,
    "devices": Device,
    "links": Link,
    "endpoints": Endpoint,
    "vnfs": Vnf,
    "chains": Chain,
}
SINGULAR: dict[str, str] = {
    "tenants": "tenant",
    "networks": "network",
    "hosts": "host",
    "devices": "device",
    "links": "link",
    "endpoints": "endpoint",
    "vnfs": "vnf",
    "chains": "chain",
}


TIME_MIN = datetime.min.replace(tzinfo=UTC)
TIME_MAX = datetime.max.replace(tzinfo=UTC)


def sort_key(fact: Fact) -> tuple[int, str, datetime]:
    """Stable order: kind (file order), key, start of validity (open start first)."""
    return (KINDS.index(fact.KIND), fact.key, fact.valid_from or TIME_MIN)

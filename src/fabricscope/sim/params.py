"""Parameters of a simulated fabric, and the named presets.

Every knob of ``fabricscope sim`` is a field of :class:`SimParams`; a preset is a set of
field values (``SimParams.preset("demo", seed=7)``). All defaults are deterministic: the
start time is fixed (not "now") so that the same parameters give byte-identical output.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fabricscope.errors import UsageError

ENCAPS = ("vxlan", "geneve", "nvgre")
EVENT_NAMES = ("migration", "vnf-insert", "link-errors", "congestion", "sflow-outage")
DEFAULT_START = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SimParams:
    """What to simulate. Times are seconds; speeds bits/s."""

    spines: int = 2
    leaves: int = 4
    hosts_per_leaf: int = 4
    tenants: int = 2
    vms: int = 16
    vnfs: int = 2
    chains: int = 1
    duration: float = 900.0
    flows: int | None = None
    """Conversations started over the run (each gives one or two directional flows);
    None: ``flow_rate`` per second of the run."""
    flow_rate: float = 3.0
    steady_mbps: float = 0.0
    """Average rate per hypervisor of long-lived flows (storage, replication, streams):
    one per VM, to another VM of its tenant, for the whole run."""
    sampling_rate: int = 1000
    encap: str = "vxlan"
    """vxlan, geneve, nvgre, or mixed (networks take them in turn)."""
    underlay: str = "ipv4"
    seed: int = 1
    start: datetime = DEFAULT_START
    mix: tuple[tuple[str, float], ...] = (("tcp", 0.8), ("udp", 0.15), ("icmp", 0.05))
    """Share of conversations per protocol."""
    events: tuple[str, ...] = EVENT_NAMES
    sfc_mpls: bool = True
    """Chained segments carry the networking-sfc MPLS label inside the tunnel."""
    host_speed: int = 25_000_000_000
    uplink_speed: int = 100_000_000_000
    gateways: int = 0
    """Gateway (network) nodes; 0 means one per 8 leaves (at least one)."""
    featured_mbps: float = 8.0
    """Rate of the featured long-lived flows (one per chain tenant, one east-west)."""
    counter_interval: float = 20.0
    flush_interval: float = 1.0
    """An agent sends a flow-sample datagram when it is full or this old (seconds)."""
    host_pcaps: tuple[str, ...] = ()
    """Hosts that get a full capture hosts/<host>.pcap (``("all",)`` for every host)."""
    host_pcap_snaplen: int = 128
    truth_samples: bool = False
    """Also write truth-samples.parquet: every sample with its flow and hop."""
    collector: str = "10.255.255.254"
    preset_name: str | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ derived
    @property
    def n_hosts(self) -> int:
        return self.leaves * self.hosts_per_leaf

    @property
    def n_gateways(self) -> int:
        return self.gateways if self.gateways > 0 else max(1, self.leaves // 8)

    @property
    def n_conversations(self) -> int:
        if self.flows is not None:
            return self.flows
        return round(self.flow_rate * self.duration)

    @property
    def start_ns(self) -> int:
        from fabricscope.timeutil import to_ns

        return to_ns(self.start)

    @property
    def duration_ns(self) -> int:
        return round(self.duration * 1e9)

    def replace(self, **changes: Any) -> SimParams:
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SimParams:
        """A named preset (``small``, ``demo``, ``1k``, ``10k``) with fields overridden."""
        if name not in PRESETS:
            raise UsageError(f"--preset: unknown preset {name!r}; one of {', '.join(PRESETS)}")
        values: dict[str, Any] = dict(PRESETS[name])
        values.update(overrides)
        values["preset_name"] = name
        return cls(**values).validated()

    def validated(self) -> SimParams:
        """Check the values; raises UsageError naming the option at fault."""
        def need(ok: bool, opt: str, msg: str) -> None:
            if not ok:
                raise UsageError(f"{opt}: {msg}")

        need(1 <= self.spines <= 64, "--spines", "must be 1..64")
        need(1 <= self.leaves <= 4000, "--leaves", "must be 1..4000")
        need(1 <= self.hosts_per_leaf <= 200, "--hosts-per-leaf", "must be 1..200")
        need(1 <= self.tenants <= 50000, "--tenants", "must be 1..50000")
        need(self.vms >= 3 * self.tenants, "--vms", "needs at least three VMs per tenant "
             "(web, app, db)")
        need(self.vms <= 60000 * self.tenants, "--vms", "at most 60000 per tenant")
        need(0 <= self.chains <= self.tenants, "--chains", "must be 0..tenants (one per tenant)")
        need(self.vnfs >= 0, "--vnfs", "must not be negative")
        need(self.chains == 0 or self.vnfs >= self.chains, "--vnfs",
             "needs at least one VNF per chain")
        need(self.duration >= self.counter_interval, "--duration",
             f"must be at least {self.counter_interval:g} s (one counter interval)")
        need(self.duration <= 7 * 86400, "--duration", "at most 7 days")
        need(self.flows is None or self.flows >= 0, "--flows", "must not be negative")
        need(self.flow_rate >= 0, "--flow-rate", "must not be negative")
        need(0 <= self.steady_mbps <= self.host_speed / 1e6, "--steady-mbps",
             "must be 0..host speed")
        need(1 <= self.sampling_rate <= 2**31, "--sampling-rate", "must be 1..2^31")
        need(self.encap in (*ENCAPS, "mixed"), "--encap", "one of vxlan, geneve, nvgre, mixed")
        need(self.underlay in ("ipv4", "ipv6"), "--underlay", "ipv4 or ipv6")
        need(0 <= self.seed < 2**63, "--seed", "must be 0..2^63-1")
        for name in self.events:
            need(name in EVENT_NAMES, "--events", f"unknown event {name!r}; one of "
                 f"{', '.join(EVENT_NAMES)}")
        total = sum(w for _, w in self.mix)
        need(total > 0 and all(w >= 0 for _, w in self.mix), "--mix", "weights must be >= 0 "
             "and not all zero")
        for proto, _ in self.mix:
            need(proto in ("tcp", "udp", "icmp"), "--mix", f"unknown protocol {proto!r}")
        need(self.host_speed > 0 and self.uplink_speed > 0, "--speed", "must be positive")
        need(0 < self.flush_interval <= self.counter_interval, "flush_interval",
             "must be in (0, counter_interval]")
        need(1 <= self.host_pcap_snaplen <= 65535, "--host-pcap-snaplen", "must be 1..65535")
        return self

    def to_dict(self) -> dict[str, Any]:
        from fabricscope.timeutil import format_ns

        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "start":
                v = format_ns(self.start_ns, 0)
            elif f.name == "mix":
                v = {k: w for k, w in v}
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """``tcp:80,udp:15,icmp:5`` (or ``tcp=0.8,...``) -> normalised-later weights."""
    out: list[tuple[str, float]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        sep = ":" if ":" in part else "="
        name, _, w = part.partition(sep)
        try:
            weight = float(w)
        except ValueError:
            raise UsageError(f"--mix: cannot read {part!r}; use e.g. tcp:80,udp:15,icmp:5"
                             ) from None
        out.append((name.strip().lower(), weight))
    if not out:
        raise UsageError("--mix: empty")
    return tuple(out)


def parse_events(text: str) -> tuple[str, ...]:
    """``all``, ``none`` or a comma list of event names."""
    t = text.strip().lower()
    if t == "all":
        return EVENT_NAMES
    if t in ("none", ""):
        return ()
    names = tuple(dict.fromkeys(p.strip() for p in t.split(",") if p.strip()))
    for n in names:
        if n not in EVENT_NAMES:
            raise UsageError(f"--events: unknown event {n!r}; one of {', '.join(EVENT_NAMES)}"
                             ", all, none")
    return names


PRESETS: dict[str, dict[str, Any]] = {
    # the CLI defaults
    "small": {"steady_mbps": 5.0},
    # `fabricscope demo`: quick, a few thousand samples, every feature visible
    "demo": {
        "spines": 2, "leaves": 3, "hosts_per_leaf": 3, "tenants": 2, "vms": 12, "vnfs": 2,
        "chains": 1, "duration": 300.0, "flow_rate": 5 / 3, "sampling_rate": 1000,
        "events": ("migration", "vnf-insert", "link-errors", "sflow-outage"),
        "host_speed": 10_000_000_000, "uplink_speed": 40_000_000_000,
        "featured_mbps": 6.0, "steady_mbps": 2.0,
    },
    "1k": {
        "spines": 4, "leaves": 25, "hosts_per_leaf": 40, "tenants": 50, "vms": 4000,
        "vnfs": 30, "chains": 20, "duration": 900.0, "flow_rate": 100.0,
        "steady_mbps": 80.0,
        "sampling_rate": 4096, "encap": "mixed", "featured_mbps": 50.0,
    },
    "10k": {
        "spines": 8, "leaves": 250, "hosts_per_leaf": 40, "tenants": 500, "vms": 40_000,
        "vnfs": 150, "chains": 100, "duration": 900.0, "flow_rate": 1000.0,
        "steady_mbps": 80.0,
        "sampling_rate": 8192, "encap": "mixed", "featured_mbps": 100.0,
    },
}

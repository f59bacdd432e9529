"""Interface names for sFlow ifIndexes, from sFlow's own counter records (port name, 0:1005)
and optionally from SNMP IF-MIB (``ifName``, ``ifHighSpeed``; needs pysnmp).

Where from: the counters of a store (``Store.counters``: ``agent``, ``ifindex``,
``port_name``, ``speed``), or capture files decoded with ``fabricscope.pipeline.FileDecoder``
(its counter batches carry the same columns), or an SNMP walk of an agent.

What it makes, per sFlow agent:

* an agent that a device of another source has (``device_by_agent``): that device, with
  the interfaces it lacks added (a name by ifIndex), an ifIndex filled in where the
  device lists the name without one, and a missing speed filled in. Declared names are
  never changed: a different name for a declared ifIndex is a note;
* an agent nobody declares: a device ``agent-IP`` (role ``other``, the same name the
  traffic learner gives it) with every named port.

Names accumulate: an ifIndex keeps the last name seen for it, even when a later import's
window has no counter record for it (a port that is down sends none).

Exact fields: docs/import/sflow.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fabricscope.inventory import addr
from fabricscope.inventory.importers.base import BaseImporter
from fabricscope.inventory.index import Inventory
from fabricscope.inventory.model import Device, Fact, Interface

IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"  # IF-MIB::ifName
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"  # IF-MIB::ifHighSpeed (Mbit/s)

# (agent, ifindex) -> (name or None, speed in bit/s or None)
Ports = dict[tuple[str, int], tuple[str | None, int | None]]


def ports_from_table(table: Any) -> Ports:
    """Counter rows (``agent``, ``ifindex``, ``port_name``, ``speed``, ``ts``) -> the last
    non-empty name and speed per (agent, ifIndex)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return {}
    cols = {}
    for n in ("agent", "ifindex", "port_name", "speed", "ts"):
        if n in table.schema.names:
            col = table.column(n)
            if pa.types.is_dictionary(col.type):  # the decoders dictionary-encode names
                col = col.cast(col.type.value_type)
            cols[n] = col
    t = pa.table(cols)
    if "ts" in cols:
        t = t.sort_by([("ts", "ascending")])
    if "port_name" in cols:
        name = t.column("port_name")
        t = t.set_column(t.schema.get_field_index("port_name"), "port_name",
                         pc.if_else(pc.equal(name, ""), pa.scalar(None, name.type), name))
    aggs = [(c, "last") for c in ("port_name", "speed") if c in cols]
    g = t.group_by(["agent", "ifindex"], use_threads=False).aggregate(aggs)
    out: Ports = {}
    for row in g.to_pylist():
        if row["agent"] is None or row["ifindex"] is None:
            continue
        ifx = int(row["ifindex"])
        if ifx <= 0 or ifx >= 0x3FFFFFFF:
            continue
        try:
            agent = addr.canonical_ip(row["agent"])
        except ValueError:
            continue
        speed = row.get("speed_last")
        out[(agent, ifx)] = (row.get("port_name_last") or None, int(speed) if speed else None)
    return out


def snmp_ports(target: str, community: str = "public", timeout: float = 5.0) -> Ports:
    """Walk IF-MIB ifName and ifHighSpeed of ``target`` (``HOST[:PORT]``, SNMPv2c) with
    pysnmp; the target's address is taken as the sFlow agent address."""
    import asyncio

    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        walk_cmd,
    )

    host, _, port_text = target.rpartition(":") if target.count(":") == 1 else (target, "", "")
    if not host:
        host, port_text = target, ""
    port = int(port_text) if port_text else 161
    agent = addr.canonical_ip(host)

    async def walk(oid: str) -> dict[int, Any]:
        engine = SnmpEngine()
        tgt = await UdpTransportTarget.create((host, port), timeout=timeout, retries=1)
        got: dict[int, Any] = {}
        async for err, status, _index, binds in walk_cmd(
                engine, CommunityData(community, mpModel=1), tgt, ContextData(),
                ObjectType(ObjectIdentity(oid)), lexicographicMode=False):
            if err:
                raise ConnectionError(f"SNMP {target}: {err}")
            if status:
                raise ConnectionError(f"SNMP {target}: {status.prettyPrint()}")
            for name, value in binds:
                got[int(tuple(name)[-1])] = value
        engine.close_dispatcher()
        return got

    async def both() -> tuple[dict[int, Any], dict[int, Any]]:
        return await walk(IF_NAME), await walk(IF_HIGH_SPEED)

    names, speeds = asyncio.run(both())
    out: Ports = {}
    for ifx, v in names.items():
        text = str(v.prettyPrint() if hasattr(v, "prettyPrint") else v)
        sp = speeds.get(ifx)
        out[(agent, ifx)] = (text or None, int(sp) * 1_000_000 if sp is not None and int(sp)
                             else None)
    return out


class SflowNamesImporter(BaseImporter):
    """Interface names by ifIndex for sFlow agents: from a store (``db``; counter records
    since ``since``, default the last hour), or ``captures`` (pcap/pcapng with sFlow), plus
    ``snmp`` targets. ``name`` labels the source (``sflow:NAME``)."""

    kind = "sflow"

    def __init__(self, *, db: str | None = None, captures: Iterable[Path | str] = (),
                 since: datetime | None = None, snmp: Iterable[str] = (),
                 community: str = "public", timeout: float = 5.0,
                 name: str | None = None) -> None:
        self.db = db
        self.captures = [Path(c) for c in captures]
        self.since = since
        self.snmp = list(snmp)
        self.community = community
        self.timeout = timeout
        if name is None:
            if self.captures:
                name = ",".join(sorted(c.stem for c in self.captures))
            else:
                name = db or "store"
        super().__init__(f"sflow:{name}")

    def _from_captures(self) -> Ports:
        import pyarrow as pa

        from fabricscope.pipeline import FileDecoder

        cols = ["ts", "agent", "ifindex", "port_name", "speed"]
        tables = []
        for path in self.captures:
            for step in FileDecoder(path):  # InputError names the file and offset
                if step.counters is not None and step.counters.num_rows:
                    c = step.counters
                    tables.append(pa.table({n: c.column(n) for n in cols
                                            if n in c.schema.names}))
        if not tables:
            self.note("no sFlow counter records in " + ", ".join(map(str, self.captures)))
            return {}
        return ports_from_table(pa.concat_tables(tables, promote_options="default"))

    def _from_store(self) -> Ports:
        from fabricscope.store import open_store

        since = self.since or datetime.now(UTC) - timedelta(hours=1)
        with open_store(self.db) as store:
            table = store.counters(since=since)
        if table.num_rows == 0:
            self.note(f"no counter records since {addr.format_time(since)} in the store")
        return ports_from_table(table)

    def fetch(self) -> list[Fact]:
        self.notes = []
        ports: Ports = {}
        if self.captures:
            ports.update(self._from_captures())
        elif self.db is not None or not self.snmp:
            ports.update(self._from_store())
        for target in self.snmp:
            try:
                found = snmp_ports(target, self.community, self.timeout)
            except ImportError:
                raise self.fail("--snmp needs pysnmp (pip install pysnmp)") from None
            except Exception as exc:
                raise self.fail(f"SNMP {target}: {type(exc).__name__}: {exc}") from None
            for k, (nm, sp) in found.items():
                old = ports.get(k, (None, None))
                ports[k] = (old[0] or nm, old[1] or sp)
        return build_facts(ports, self.known, self.previous, note=self.note)


def build_facts(ports: Ports, known: Inventory | None = None,
                previous: Iterable[Fact] = (), note: Any = None) -> list[Fact]:
    """Observed ports (plus what this source's last snapshot held) -> devices."""
    note = note or (lambda text: None)
    known = known or Inventory([])
    now = datetime.now(UTC)
    # what this source knew before: names accumulate
    merged: Ports = {}
    for f in previous:
        if isinstance(f, Device) and f.agent:
            for itf in f.interfaces:
                if itf.ifindex is not None:
                    merged[(f.agent, itf.ifindex)] = (itf.name, itf.speed)
    for k, (nm, sp) in ports.items():
        old = merged.get(k, (None, None))
        merged[k] = (nm or old[0], sp or old[1])

    by_agent: dict[str, dict[int, tuple[str | None, int | None]]] = {}
    for (agent, ifx), v in merged.items():
        by_agent.setdefault(agent, {})[ifx] = v
    facts: list[Fact] = []
    for agent in sorted(by_agent, key=addr.ip16):
        seen = by_agent[agent]
        dev = known.device_by_agent(agent, now)
        if dev is None:
            itfs = []
            names: set[str] = set()
            for ifx in sorted(seen):
                nm, sp = seen[ifx]
                if not nm or nm in names:
                    continue
                names.add(nm)
                itfs.append(Interface(name=nm, ifindex=ifx, speed=sp))
            if itfs:
                facts.append(Device(name=f"agent-{agent}", role="other", agent=agent,
                                    interfaces=tuple(itfs)))
            continue
        new = list(dev.interfaces)
        changed = False
        for ifx in sorted(seen):
            nm, sp = seen[ifx]
            have = dev.interface(ifx)
            if have is not None:
                if nm and have.name != nm:
                    note(f"device {dev.name}: ifIndex {ifx} is {have.name!r} in the inventory "
                         f"but the agent calls it {nm!r}; kept {have.name!r}")
                if sp and have.speed is None:
                    new[new.index(have)] = dataclasses.replace(have, speed=sp)
                    changed = True
                continue
            if not nm:
                continue
            by_name = dev.interface(nm)
            if by_name is not None:
                if by_name.ifindex is None:
                    new[new.index(by_name)] = dataclasses.replace(
                        by_name, ifindex=ifx, speed=by_name.speed or sp)
                    changed = True
                continue  # the name is another ifIndex's: keep the declared one
            new.append(Interface(name=nm, ifindex=ifx, speed=sp))
            changed = True
        if changed:
            facts.append(dataclasses.replace(dev, interfaces=tuple(new), valid_from=None,
                                             valid_to=None))
    return facts

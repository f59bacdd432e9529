"""LLDP neighbours (``lldpcli -f json0 show neighbors details``) -> links.

Each neighbour seen on a local port becomes a link ``LOCAL:ifname -- REMOTE:port``:

* the local device is the system the output was taken on (``--device``, the file's stem,
  or lldpd's own system name from ``lldpcli show chassis`` when run here);
* the remote end is the neighbour's system name (``chassis.name``, else its chassis id)
  and port: the port id when its subtype is ``ifname``, else the port description (Linux
  lldpd sends the MAC as port id and the interface name as description), else the id;
* an end whose name is a host that some other source knows, with a NIC of that name, is
  that host NIC; otherwise a device interface. Devices no other source declares are
  added (role ``other``, no interface list, so any port name is accepted); a device that
  another source declares with an interface list must list the port, or the link is left
  out with a note.

Exact fields: docs/import/lldp.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from fabricscope.errors import InputError
from fabricscope.inventory.importers.base import BaseImporter
from fabricscope.inventory.index import Inventory
from fabricscope.inventory.model import Device, Fact, Host, Link, LinkEnd


def _value(items: Any) -> str | None:
    """json0 wraps every value: ``[{"value": "x"}]`` (or ``[{"type": t, "value": x}]``)."""
    if isinstance(items, list) and items and isinstance(items[0], dict):
        v = items[0].get("value")
        return None if v is None else str(v)
    return None


def _typed(items: Any) -> tuple[str | None, str | None]:
    if isinstance(items, list) and items and isinstance(items[0], dict):
        t, v = items[0].get("type"), items[0].get("value")
        return (None if t is None else str(t)), (None if v is None else str(v))
    return None, None


def parse_neighbors(data: Any, where: str) -> list[dict[str, str | None]]:
    """``lldpcli -f json0 show neighbors details`` -> one dict per neighbour: ``local``
    (ifname), ``system`` (name), ``chassis_id``, ``port`` (the remote port's name as
    chosen above), ``port_id``, ``port_id_type``, ``port_descr``, ``mgmt_ip``."""
    if not isinstance(data, dict) or not isinstance(data.get("lldp"), list):
        raise InputError("not `lldpcli -f json0 show neighbors details` output (no \"lldp\" "
                         "list; use -f json0)", path=where)
    out: list[dict[str, str | None]] = []
    for block in data["lldp"]:
        ifaces = block.get("interface") if isinstance(block, dict) else None
        for i, itf in enumerate(ifaces or ()):
            if not isinstance(itf, dict) or not itf.get("name"):
                raise InputError("an interface without a name", path=where,
                                 field=f"lldp.interface[{i}]")
            chassis = (itf.get("chassis") or [{}])[0]
            port = (itf.get("port") or [{}])[0]
            if not isinstance(chassis, dict) or not isinstance(port, dict):
                raise InputError("chassis/port are not objects", path=where,
                                 field=f"lldp.interface[{i}]")
            _, chassis_id = _typed(chassis.get("id"))
            pid_type, pid = _typed(port.get("id"))
            pdescr = _value(port.get("descr"))
            remote_port: str | None
            if pid_type == "ifname" and pid:
                remote_port = pid
            else:
                remote_port = pdescr or pid
            out.append({
                "local": str(itf["name"]),
                "system": _value(chassis.get("name")) or chassis_id,
                "chassis_id": chassis_id,
                "port": remote_port,
                "port_id": pid,
                "port_id_type": pid_type,
                "port_descr": pdescr,
                "mgmt_ip": _value(chassis.get("mgmt-ip")),
            })
    return out


def local_system_name(data: Any) -> str | None:
    """The system name in ``lldpcli -f json0 show chassis`` output."""
    try:
        chassis = data["local-chassis"][0]["chassis"][0]
    except (KeyError, IndexError, TypeError):
        return None
    return _value(chassis.get("name")) or _typed(chassis.get("id"))[1]


class LldpImporter(BaseImporter):
    """Import LLDP neighbours from ``files`` (json0 output; the device is ``device`` for
    one file, else each file's stem), or by running ``lldpcli`` here (``socket``: lldpd's
    control socket, ``lldpcli -u``). ``name`` labels the source (``lldp:NAME``; default
    the device name(s))."""

    kind = "lldp"

    def __init__(self, *, files: list[Path] | None = None, device: str | None = None,
                 socket: str | None = None, name: str | None = None,
                 lldpcli: str = "lldpcli") -> None:
        self.files = [Path(f) for f in files or ()]
        self.device = device
        self.socket = socket
        self.lldpcli = lldpcli
        if name is None:
            if self.files:
                name = device if device and len(self.files) == 1 else ",".join(
                    sorted(f.stem for f in self.files))
            else:
                name = device or "local"
        super().__init__(f"lldp:{name}")

    def _run(self, *args: str) -> Any:
        exe = shutil.which(self.lldpcli)
        if exe is None:
            raise self.fail(f"{self.lldpcli} not found (apt-get install lldpd)")
        argv = [exe, *(["-u", self.socket] if self.socket else []), "-f", "json0", *args]
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise self.fail(f"{' '.join(argv)}: {exc}") from None
        if res.returncode != 0:
            msg = " ".join((res.stderr or res.stdout).split()) or f"exit {res.returncode}"
            raise self.fail(f"{' '.join(argv)}: {msg}")
        try:
            return json.loads(res.stdout)
        except ValueError:
            raise self.fail(f"{' '.join(argv)}: the output is not JSON") from None

    def inputs(self) -> list[tuple[str, list[dict[str, str | None]]]]:
        """(local device, neighbours) per input."""
        out = []
        if self.files:
            for f in self.files:
                try:
                    data = json.loads(f.read_text(encoding="utf-8"))
                except FileNotFoundError:
                    raise InputError("no such file", path=str(f)) from None
                except (OSError, UnicodeDecodeError) as exc:
                    raise InputError(f"cannot read: {exc}", path=str(f)) from None
                except ValueError as exc:
                    raise InputError(f"not JSON: {exc}", path=str(f)) from None
                dev = self.device if self.device and len(self.files) == 1 else f.stem
                out.append((dev, parse_neighbors(data, str(f))))
            return out
        local = self.device or local_system_name(self._run("show", "chassis"))
        if not local:
            raise self.fail("lldpd reports no system name; give --device")
        out.append((local, parse_neighbors(self._run("show", "neighbors", "details"),
                                         "lldpcli")))
        return out

    def fetch(self) -> list[Fact]:
        self.notes = []
        return build_facts(self.inputs(), self.known, note=self.note)


def build_facts(inputs: list[tuple[str, list[dict[str, str | None]]]],
                known: Inventory | None = None, note: Any = None) -> list[Fact]:
    """Neighbours per local device -> links, and the devices nobody else declares."""
    note = note or (lambda text: None)
    known = known or Inventory([])
    declared: dict[str, Device] = {}
    hosts: dict[str, Host] = {}
    for f in known.facts("devices"):
        if isinstance(f, Device) and not (f.source or "").startswith("lldp:"):
            declared[f.name] = f
    for f in known.facts("hosts"):
        if isinstance(f, Host):
            hosts[f.name] = f
    new_devices: set[str] = set()

    def end(name: str, port: str) -> LinkEnd | None:
        h = hosts.get(name)
        if h is not None and name not in declared:
            if h.nic(port) is not None:
                return LinkEnd(host=name, nic=port)
            note(f"host {name} has no NIC {port!r}; link left out")
            return None
        dev = declared.get(name)
        if dev is not None:
            if dev.interfaces and dev.interface(port) is None:
                note(f"device {name} (declared elsewhere) has no interface {port!r}; link "
                     "left out")
                return None
            return LinkEnd(device=name, interface=port)
        new_devices.add(name)
        return LinkEnd(device=name, interface=port)

    links: dict[str, Link] = {}
    claimed: dict[str, str] = {}
    for local, neighbours in inputs:
        seen_ports: set[str] = set()
        for n in neighbours:
            lport, system, rport = n["local"], n["system"], n["port"]
            if not lport or not system or not rport:
                continue
            if lport in seen_ports:
                note(f"{local}:{lport} has several neighbours; kept the first, left out "
                     f"{system}:{rport}")
                continue
            seen_ports.add(lport)
            a = end(local, lport)
            b = end(system, rport)
            if a is None or b is None:
                continue
            if a.device is None and b.device is None:
                continue
            link = Link(a=a, b=b)
            if link.key in links:
                continue  # the same cable seen from its other end
            clash = next((claimed[e.label] for e in (a, b) if e.label in claimed), None)
            if clash is not None:
                note(f"link {link.key} disagrees with {clash} (a port in two links); left out")
                continue
            links[link.key] = link
            for e in (a, b):
                claimed[e.label] = link.key
    facts: list[Fact] = [Device(name=d, role="other") for d in sorted(new_devices)
                         if any(d in (lk.a.device, lk.b.device) for lk in links.values())]
    facts += list(links.values())
    return facts

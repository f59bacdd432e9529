"""The inventory file: YAML (or JSON) validated against ``inventory.schema.json``, then
checked for meaning (times, references over time, overlapping versions, identities claimed
twice at once). Every problem names the file, the line and the field::

    examples/fabric.yaml:42: endpoints[3].ips[0]: 'not-an-ip' is not a valid IP address

The loader keeps YAML line numbers by composing the node tree and building plain values
from it (timestamps stay strings: times are parsed here, as RFC 3339 with a zone).
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fabricscope.errors import InputError
from fabricscope.inventory import addr
from fabricscope.inventory.index import Inventory
from fabricscope.inventory.model import (
    FACT_TYPES,
    KINDS,
    SINGULAR,
    TIME_MAX,
    TIME_MIN,
    Chain,
    Device,
    Endpoint,
    Fact,
    FlowClassifier,
    Host,
    HostNic,
    Interface,
    Link,
    LinkEnd,
    Network,
    PortGroup,
    Tenant,
    Vnf,
    VnfPort,
    sort_key,
)

FORMAT_VERSION = 1
SCHEMA_FILE = "inventory.schema.json"

PathT = tuple[str | int, ...]


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an inventory file."""

    file: str
    line: int | None
    field: str
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        sev = "warning: " if self.severity == "warning" else ""
        return f"{where}: {self.field}: {sev}{self.message}" if self.field else (
            f"{where}: {sev}{self.message}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field,
                "message": self.message, "severity": self.severity}


class InventoryFileError(InputError):
    """An invalid inventory file (exit code 2). ``str()`` is one line: the first problem,
    and how many more there are; ``problems`` holds them all."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"] or list(problems)
        first = errors[0]
        super().__init__(first.message, path=first.file, field=first.field or None)
        self.line = first.line
        self.problems = list(problems)
        more = len(errors) - 1
        self._text = str(first) + (
            f" (and {more} more problem{'s' if more > 1 else ''}; "
            "see `fabricscope inventory validate FILE`)" if more else ""
        )
        self.args = (self._text,)

    def __str__(self) -> str:
        return self._text


def field_name(path: Iterable[str | int]) -> str:
    """``("endpoints", 3, "ips", 0)`` -> ``endpoints[3].ips[0]``."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out


# --------------------------------------------------------------------------- YAML with lines


class _Loader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: times stay text and are checked as
    RFC 3339 (with a zone) by the schema."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_MAX_DEPTH = 64


class LineMap:
    """Line numbers (1-based) of every value and every mapping key, by path."""

    def __init__(self) -> None:
        self.values: dict[PathT, int] = {}
        self.keys: dict[PathT, int] = {}

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of the value at ``path``, or of its nearest enclosing value."""
        p = tuple(path)
        while True:
            if p in self.values:
                return self.values[p]
            if not p:
                return None
            p = p[:-1]

    def key_line(self, path: Sequence[str | int]) -> int | None:
        """The line of the key that names ``path`` (falls back to the value's line)."""
        return self.keys.get(tuple(path)) or self.line(path)


class _Builder:
    def __init__(self, loader: _Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.lines = LineMap()
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: PathT, depth: int = 0) -> Any:
        self.lines.values[path] = node.start_mark.line + 1
        if depth > _MAX_DEPTH:
            raise InventoryFileError([Problem(self.file, node.start_mark.line + 1,
                                              field_name(path), "nesting is too deep")])
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k_node, _ in node.value:
                if k_node.tag == "tag:yaml.org,2002:merge":
                    continue
                k = self.loader.construct_object(k_node) if isinstance(
                    k_node, yaml.ScalarNode) else None
                line = k_node.start_mark.line + 1
                if isinstance(k, str | int) and not isinstance(k, bool) and k in seen:
                    self.problems.append(Problem(
                        self.file, line, field_name((*path, k)),
                        f"duplicate key {k!r} (first at line {seen[k]})"))
                elif isinstance(k, str | int) and not isinstance(k, bool):
                    seen[k] = line
            self.loader.flatten_mapping(node)
            out: dict[str, Any] = {}
            for k_node, v_node in node.value:
                if not isinstance(k_node, yaml.ScalarNode):
                    self.problems.append(Problem(self.file, k_node.start_mark.line + 1,
                                                 field_name(path), "keys must be plain text"))
                    continue
                k = self.loader.construct_object(k_node)
                key = str(k) if not isinstance(k, str) else k
                self.lines.keys[(*path, key)] = k_node.start_mark.line + 1
                out[key] = self.build(v_node, (*path, key), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, (*path, i), depth + 1) for i, v in enumerate(node.value)]
        return self.loader.construct_object(node)


def parse_yaml(text: str, file: str) -> tuple[Any, LineMap]:
    """YAML (or JSON) text -> plain data and the line of every value. Syntax errors and
    duplicate keys raise ``InventoryFileError``."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, LineMap()
        builder = _Builder(loader, file)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise InventoryFileError([Problem(file, line, "", f"YAML syntax error: {msg}")]) from None
    except yaml.YAMLError as exc:
        raise InventoryFileError([Problem(file, None, "", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    if builder.problems:
        raise InventoryFileError(builder.problems)
    return data, builder.lines


# --------------------------------------------------------------------------- schema


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema of the file format (``docs/inventory.schema.json``)."""
    text = resources.files("fabricscope.inventory").joinpath(SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


FORMAT_NAMES = {
    "date-time": "RFC 3339 time with a zone (e.g. 2026-11-25T10:05:00Z)",
    "ip-address": "IP address",
    "ip-prefix": "IP prefix (e.g. 10.1.0.0/24, host bits zero)",
    "mac-address": "MAC address",
    "speed": "speed (bits/s, or e.g. 10G, 400G)",
    "ip-protocol": "IP protocol (tcp, udp, icmp, ... or 0-255)",
}


def _format_checker() -> Any:
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())

    def make(fn: Any, only_str: bool = True) -> Any:
        def check(instance: object) -> bool:
            if only_str and not isinstance(instance, str):
                return True
            try:
                fn(instance)
            except ValueError:
                return False
            return True
        return check

    checker.checks("date-time")(make(addr.parse_rfc3339))
    checker.checks("ip-address")(make(addr.ip_address))
    checker.checks("ip-prefix")(make(addr.canonical_cidr))
    checker.checks("mac-address")(make(addr.canonical_mac))
    checker.checks("speed")(make(addr.parse_speed, only_str=False))
    checker.checks("ip-protocol")(make(addr.parse_protocol, only_str=False))
    return checker


@cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(schema(), format_checker=_format_checker())


_JSON_TYPES = {"object": "a mapping", "array": "a list", "string": "text", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "nothing"}


def _type_of(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _short(value: object) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def _fact_fields() -> set[str]:
    return set(schema()["$defs"]["fact"]["properties"])


def _schema_problems(data: Any, lines: LineMap, file: str) -> list[Problem]:
    out: list[Problem] = []
    for err in _validator().iter_errors(data):
        path: PathT = tuple(err.absolute_path)
        v = err.validator
        inst = err.instance
        if v in ("additionalProperties", "unevaluatedProperties"):
            m = re.search(r"\((.*) (?:was|were) unexpected\)", err.message)
            extras = re.findall(r"'([^']*)'", m.group(1)) if m else []
            allowed = set(err.schema.get("properties", {}))
            if err.schema.get("$ref") == "#/$defs/fact":
                allowed |= _fact_fields()
            what = "section" if not path else "field"
            for key in extras:
                near = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else (
                    f" (expected one of: {', '.join(sorted(allowed))})" if not path else "")
                out.append(Problem(file, lines.key_line((*path, key)),
                                   field_name((*path, key)), f"unknown {what} {key!r}{hint}"))
            continue
        if v == "required":
            m = re.match(r"'([^']*)' is a required property", err.message)
            missing = m.group(1) if m else "?"
            out.append(Problem(file, lines.line(path), field_name((*path, missing)),
                               f"missing required field {missing!r}"))
            continue
        if v == "format":
            what = FORMAT_NAMES.get(err.validator_value, err.validator_value)
            msg = f"{_short(inst)} is not a valid {what}"
        elif v == "type":
            want = err.validator_value if isinstance(err.validator_value, list) else [
                err.validator_value]
            names = " or ".join(str(_JSON_TYPES.get(w, w)) for w in want if w != "null")
            msg = f"expected {names}, got {_type_of(inst)} ({_short(inst)})" if not isinstance(
                inst, dict | list) else f"expected {names}, got {_type_of(inst)}"
        elif v == "enum":
            msg = f"{_short(inst)} is not one of: {', '.join(map(str, err.validator_value))}"
        elif v == "const":
            msg = f"{_short(inst)} is not supported (expected {err.validator_value!r})"
        elif v in ("minimum", "maximum"):
            lo = err.schema.get("minimum")
            hi = err.schema.get("maximum")
            msg = f"{_short(inst)} is out of range ({lo}..{hi})"
        elif v == "minLength":
            msg = "must not be empty"
        elif v == "minItems":
            msg = f"needs at least {err.validator_value} item(s)"
        else:
            msg = err.message if len(err.message) < 200 else err.message[:197] + "..."
        out.append(Problem(file, lines.line(path), field_name(path), msg))
    uniq = list(dict.fromkeys(out))
    return sorted(uniq, key=lambda p: (p.line or 0, p.field))


# --------------------------------------------------------------------------- items -> facts


def _time(d: dict[str, Any], key: str) -> datetime | None:
    v = d.get(key)
    return None if v is None else addr.parse_rfc3339(v)


def _common(d: dict[str, Any], source: str | None) -> dict[str, Any]:
    return {
        "valid_from": _time(d, "valid_from"),
        "valid_to": _time(d, "valid_to"),
        "description": d.get("description"),
        "external_id": d.get("external_id"),
        "source": source,
        "learned": bool(d.get("learned", False)),
        "evidence": int(d.get("evidence", 0)),
    }


def _ips(values: Iterable[Any] | None) -> tuple[str, ...]:
    return tuple(addr.canonical_ip(v) for v in values or ())


def _opt(fn: Any, v: Any) -> Any:
    return None if v is None else fn(v)


def fact_from_dict(kind: str, d: dict[str, Any], source: str | None = None) -> Fact:
    """One item of the file (already schema-valid) -> its fact, in canonical form.
    Raises ValueError on a value the schema could not check."""
    c = _common(d, source)
    if kind == "tenants":
        return Tenant(name=d["name"], **c)
    if kind == "networks":
        return Network(name=d["name"], tenant=d.get("tenant"), vni=d.get("vni"),
                       encap=d.get("encap", "vxlan"),
                       subnets=tuple(addr.canonical_cidr(s) for s in d.get("subnets") or ()),
                       **c)
    if kind == "hosts":
        nics = tuple(
            HostNic(name=n["name"], mac=_opt(addr.canonical_mac, n.get("mac")),
                    ips=_ips(n.get("ips")), device=n.get("device"),
                    interface=n.get("interface"))
            for n in d.get("nics") or ()
        )
        return Host(name=d["name"], role=d.get("role", "hypervisor"),
                    tunnel_ips=_ips(d.get("tunnel_ips")),
                    mgmt_ip=_opt(addr.canonical_ip, d.get("mgmt_ip")), nics=nics, **c)
    if kind == "devices":
        itfs = tuple(
            Interface(name=i["name"], ifindex=i.get("ifindex"),
                      speed=_opt(addr.parse_speed, i.get("speed")),
                      description=i.get("description"))
            for i in d.get("interfaces") or ()
        )
        return Device(name=d["name"], role=d.get("role", "leaf"),
                      agent=_opt(addr.canonical_ip, d.get("agent")), host=d.get("host"),
                      interfaces=itfs, **c)
    if kind == "links":
        def end(e: dict[str, Any]) -> LinkEnd:
            return LinkEnd(device=e.get("device"), interface=e.get("interface"),
                           host=e.get("host"), nic=e.get("nic"))
        return Link(name=d.get("name"), a=end(d["a"]), b=end(d["b"]),
                    speed=_opt(addr.parse_speed, d.get("speed")), **c)
    if kind == "endpoints":
        return Endpoint(name=d["name"], kind=d.get("kind", "vm"),
                        mac=_opt(addr.canonical_mac, d.get("mac")), ips=_ips(d.get("ips")),
                        network=d.get("network"), host=d.get("host"), tenant=d.get("tenant"),
                        tunnel_key=d.get("tunnel_key"), **c)
    if kind == "vnfs":
        return Vnf(name=d["name"], kind=d.get("kind", "other"), tenant=d.get("tenant"),
                   stateful=d.get("stateful"),
                   ports=tuple(VnfPort(endpoint=p["endpoint"], role=p.get("role", "both"))
                               for p in d.get("ports") or ()), **c)
    if kind == "chains":
        groups = tuple(PortGroup(name=g.get("name"), vnfs=tuple(g["vnfs"]))
                       for g in d.get("groups") or ())
        classifiers = tuple(
            FlowClassifier(
                name=fc.get("name"), ethertype=fc.get("ethertype", "IPv4"),
                protocol=_opt(addr.parse_protocol, fc.get("protocol")),
                source_ip_prefix=_opt(addr.canonical_cidr, fc.get("source_ip_prefix")),
                destination_ip_prefix=_opt(addr.canonical_cidr,
                                           fc.get("destination_ip_prefix")),
                source_port_range_min=fc.get("source_port_range_min"),
                source_port_range_max=fc.get("source_port_range_max"),
                destination_port_range_min=fc.get("destination_port_range_min"),
                destination_port_range_max=fc.get("destination_port_range_max"),
                logical_source_port=fc.get("logical_source_port"),
                logical_destination_port=fc.get("logical_destination_port"),
            )
            for fc in d.get("classifiers") or ()
        )
        return Chain(name=d["name"], tenant=d.get("tenant"), chain_id=d.get("chain_id"),
                     symmetric=bool(d.get("symmetric", False)), groups=groups,
                     classifiers=classifiers, **c)
    raise ValueError(f"unknown kind {kind!r}")


def facts_from_document(data: dict[str, Any], source: str | None = None) -> list[Fact]:
    """Every fact of a (valid) document, in file order."""
    out: list[Fact] = []
    for kind in KINDS:
        for item in data.get(kind) or ():
            out.append(fact_from_dict(kind, item, source))
    return out


def document_from_facts(facts: Iterable[Fact], *, meta: bool = False,
                        metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Facts -> a document in the file format (canonical order). Reading it back gives the
    same facts; with ``meta`` it also carries source/learned/evidence (not file format)."""
    doc: dict[str, Any] = {"version": FORMAT_VERSION}
    if metadata:
        doc["metadata"] = metadata
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in sorted(facts, key=sort_key):
        by_kind[f.KIND].append(f.to_dict(meta=meta))
    for kind in KINDS:
        if by_kind.get(kind):
            doc[kind] = by_kind[kind]
    return doc


def canonical_json(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- meaning checks


def _lo(t: datetime | None) -> datetime:
    return TIME_MIN if t is None else t


def _hi(t: datetime | None) -> datetime:
    return TIME_MAX if t is None else t


def _fmt_interval(f: datetime | None, t: datetime | None) -> str:
    return f"{addr.format_time(f) or 'always'} .. {addr.format_time(t) or 'open'}"


def _first_gap(start: datetime, end: datetime,
               cover: Iterable[tuple[datetime, datetime]]) -> datetime | None:
    """The first instant of [start, end) that no interval of ``cover`` contains."""
    t = start
    for lo, hi in sorted(cover):
        if lo > t:
            break
        if hi > t:
            t = hi
        if t >= end:
            return None
    return t if t < end else None


@dataclass
class _Item:
    fact: Fact
    kind: str
    index: int

    @property
    def path(self) -> PathT:
        return (self.kind, self.index)

    @property
    def lo(self) -> datetime:
        return _lo(self.fact.valid_from)

    @property
    def hi(self) -> datetime:
        return _hi(self.fact.valid_to)


class _Checker:
    def __init__(self, file: str, lines: LineMap, items: list[_Item],
                 external: Inventory | None) -> None:
        self.file = file
        self.lines = lines
        self.items = items
        self.external = external
        self.problems: list[Problem] = []
        self.by_key: dict[tuple[str, str], list[_Item]] = defaultdict(list)
        for it in items:
            self.by_key[(it.kind, it.fact.key)].append(it)

    def add(self, path: PathT, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(self.file, self.lines.line(path), field_name(path),
                                     message, severity))

    def where(self, it: _Item) -> str:
        line = self.lines.line(it.path)
        return f"{field_name(it.path)}" + (f", line {line}" if line is not None else "")

    def versions(self, kind: str, key: str) -> list[Fact]:
        local = [it.fact for it in self.by_key.get((kind, key), [])]
        if local or self.external is None:
            return local
        return self.external.versions(kind, key)

    def run(self) -> list[Problem]:
        self.check_times()
        self.check_overlaps()
        for it in self.items:
            self.check_item(it)
        self.check_unique_identities()
        return self.problems

    # -- validity
    def check_times(self) -> None:
        for it in self.items:
            f = it.fact
            if f.valid_from is not None and f.valid_to is not None and f.valid_to <= f.valid_from:
                self.add((*it.path, "valid_to"),
                         f"valid_to ({addr.format_time(f.valid_to)}) must be after valid_from "
                         f"({addr.format_time(f.valid_from)})")

    def check_overlaps(self) -> None:
        for (kind, key), its in self.by_key.items():
            ordered = sorted(its, key=lambda i: (i.lo, i.index))
            for prev, cur in itertools.pairwise(ordered):
                if cur.lo < prev.hi:
                    self.add((*cur.path, "name" if kind != "links" else "a"),
                             f"{SINGULAR[kind]} {key!r} is already defined for part of this "
                             f"time ({self.where(prev)}, valid "
                             f"{_fmt_interval(prev.fact.valid_from, prev.fact.valid_to)}); "
                             "give its versions disjoint valid_from/valid_to")

    # -- references
    def ref(self, it: _Item, path: PathT, kind: str, name: str | None) -> list[Fact]:
        """Check that ``name`` (a fact of ``kind``) exists over the whole validity of ``it``;
        returns its versions overlapping that validity."""
        if name is None:
            return []
        vers = self.versions(kind, name)
        if not vers:
            known = sorted({k for (kd, k) in self.by_key if kd == kind})
            near = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            self.add(path, f"{SINGULAR[kind]} {name!r} is not defined{hint}")
            return []
        cover = [(_lo(v.valid_from), _hi(v.valid_to)) for v in vers]
        gap = _first_gap(it.lo, it.hi, cover)
        if gap is not None:
            if gap == TIME_MIN:
                when = f"before {addr.format_time(min(lo for lo, _ in cover))}"
            else:
                when = f"at {addr.format_time(gap)}"
            self.add(path, f"{SINGULAR[kind]} {name!r} does not exist {when}, but this "
                           f"{SINGULAR[it.kind]} refers to it "
                           f"({_fmt_interval(it.fact.valid_from, it.fact.valid_to)})")
        return [v for v in vers if it.fact.overlaps(v)]

    def check_item(self, it: _Item) -> None:
        f = it.fact
        p = it.path
        if isinstance(f, Network):
            self.ref(it, (*p, "tenant"), "tenants", f.tenant)
            if f.vni is not None:
                limit = {"vlan": 4094, "gre": 2**32 - 1}.get(f.encap, 2**24 - 1)
                if f.vni > limit or (f.encap == "vlan" and f.vni < 1):
                    self.add((*p, "vni"), f"{f.vni} does not fit a {f.encap} segment id "
                                          f"({1 if f.encap == 'vlan' else 0}..{limit})")
            elif f.encap not in ("flat",):
                self.add((*p, "vni"), f"a {f.encap} network needs its segment id (vni)",
                         "warning")
        elif isinstance(f, Endpoint):
            self.ref(it, (*p, "host"), "hosts", f.host)
            self.ref(it, (*p, "tenant"), "tenants", f.tenant)
            nets = self.ref(it, (*p, "network"), "networks", f.network)
            for n in nets:
                assert isinstance(n, Network)
                if not n.subnets:
                    continue
                for i, ip in enumerate(f.ips):
                    if not n.contains(ip):
                        self.add((*p, "ips", i), f"{ip} is outside the subnets of network "
                                 f"{n.name!r} ({', '.join(n.subnets)})", "warning")
        elif isinstance(f, Host):
            seen: dict[str, int] = {}
            for i, nic in enumerate(f.nics):
                if nic.name in seen:
                    self.add((*p, "nics", i, "name"), f"NIC {nic.name!r} is listed twice")
                seen[nic.name] = i
                if (nic.device is None) != (nic.interface is None):
                    self.add((*p, "nics", i), "give both device and interface (the switch "
                                              "port this NIC is cabled to), or neither")
                elif nic.device is not None and nic.interface is not None:
                    for dev in self.ref(it, (*p, "nics", i, "device"), "devices", nic.device):
                        self.check_ifname(dev, nic.interface, (*p, "nics", i, "interface"))
        elif isinstance(f, Device):
            self.ref(it, (*p, "host"), "hosts", f.host)
            names: dict[str, int] = {}
            idx: dict[int, int] = {}
            for i, itf in enumerate(f.interfaces):
                if itf.name in names:
                    self.add((*p, "interfaces", i, "name"),
                             f"interface {itf.name!r} is listed twice "
                             f"(interfaces[{names[itf.name]}])")
                names[itf.name] = i
                if itf.ifindex is not None:
                    if itf.ifindex in idx:
                        self.add((*p, "interfaces", i, "ifindex"),
                                 f"ifIndex {itf.ifindex} is used twice "
                                 f"(interfaces[{idx[itf.ifindex]}])")
                    idx[itf.ifindex] = i
        elif isinstance(f, Link):
            for side, end in (("a", f.a), ("b", f.b)):
                ep: PathT = (*p, side)
                dev_shape = end.device is not None and end.interface is not None
                host_shape = end.host is not None and end.nic is not None
                mixed = (end.device or end.interface) and (end.host or end.nic)
                if mixed or not (dev_shape or host_shape):
                    self.add(ep, "a link end is either device + interface, or host + nic")
                    continue
                if dev_shape:
                    assert end.interface is not None
                    for dev in self.ref(it, (*ep, "device"), "devices", end.device):
                        self.check_ifname(dev, end.interface, (*ep, "interface"))
                else:
                    assert end.nic is not None
                    for h in self.ref(it, (*ep, "host"), "hosts", end.host):
                        assert isinstance(h, Host)
                        if h.nic(end.nic) is None:
                            self.add((*ep, "nic"), f"host {h.name!r} has no NIC {end.nic!r}")
            if f.a.device is None and f.b.device is None:
                self.add(p, "a link needs at least one device interface end")
        elif isinstance(f, Vnf):
            self.ref(it, (*p, "tenant"), "tenants", f.tenant)
            for i, port in enumerate(f.ports):
                for e in self.ref(it, (*p, "ports", i, "endpoint"), "endpoints", port.endpoint):
                    assert isinstance(e, Endpoint)
                    if e.kind != "vnf-port":
                        self.add((*p, "ports", i, "endpoint"),
                                 f"endpoint {e.name!r} is a {e.kind}, not a vnf-port",
                                 "warning")
        elif isinstance(f, Chain):
            self.ref(it, (*p, "tenant"), "tenants", f.tenant)
            for g, grp in enumerate(f.groups):
                for j, vnf in enumerate(grp.vnfs):
                    self.ref(it, (*p, "groups", g, "vnfs", j), "vnfs", vnf)
            for c, fc in enumerate(f.classifiers):
                cp: PathT = (*p, "classifiers", c)
                self.ref(it, (*cp, "logical_source_port"), "endpoints", fc.logical_source_port)
                self.ref(it, (*cp, "logical_destination_port"), "endpoints",
                         fc.logical_destination_port)
                for lo_f, hi_f in (("source_port_range_min", "source_port_range_max"),
                                   ("destination_port_range_min", "destination_port_range_max")):
                    lo, hi = getattr(fc, lo_f), getattr(fc, hi_f)
                    if lo is not None and hi is not None and lo > hi:
                        self.add((*cp, hi_f), f"{hi_f} ({hi}) is below {lo_f} ({lo})")
                want = 6 if fc.ethertype == "IPv6" else 4
                for pf in ("source_ip_prefix", "destination_ip_prefix"):
                    v = getattr(fc, pf)
                    if v is not None and addr.ip_network(v).version != want:
                        self.add((*cp, pf), f"{v} is not an {fc.ethertype} prefix "
                                            f"(ethertype is {fc.ethertype})")

    def check_ifname(self, dev: Fact, ifname: str, path: PathT) -> None:
        assert isinstance(dev, Device)
        if dev.interfaces and dev.interface(ifname) is None:
            names = [i.name for i in dev.interfaces]
            near = difflib.get_close_matches(ifname, names, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            self.add(path, f"device {dev.name!r} has no interface {ifname!r}{hint}")

    # -- identities that two facts may not hold at the same time
    def check_unique_identities(self) -> None:
        claims: dict[tuple[str, Any], list[tuple[_Item, PathT]]] = defaultdict(list)
        for it in self.items:
            f = it.fact
            p = it.path
            if isinstance(f, Host):
                for i, ip in enumerate(f.tunnel_ips):
                    claims[("tunnel IP", ip)].append((it, (*p, "tunnel_ips", i)))
            elif isinstance(f, Device) and f.agent:
                claims[("sFlow agent", f.agent)].append((it, (*p, "agent")))
            elif isinstance(f, Network) and f.vni is not None:
                claims[(f"{f.encap} segment id", f.vni)].append((it, (*p, "vni")))
            elif isinstance(f, Endpoint):
                for i, ip in enumerate(f.ips):
                    claims[(f"IP on network {f.network!r}" if f.network else "IP",
                            (f.network, ip))].append((it, (*p, "ips", i)))
                if f.mac:
                    claims[(f"MAC on network {f.network!r}" if f.network else "MAC",
                            (f.network, f.mac))].append((it, (*p, "mac")))
            elif isinstance(f, Link):
                for side, end in (("a", f.a), ("b", f.b)):
                    if end.device:
                        claims[("interface", f"{end.device}:{end.interface}")].append(
                            (it, (*p, side)))
                    else:
                        claims[("host NIC", f"{end.host}:{end.nic}")].append((it, (*p, side)))
            elif isinstance(f, Vnf):
                for i, port in enumerate(f.ports):
                    claims[("VNF port", port.endpoint)].append((it, (*p, "ports", i)))
        # a host NIC cabled to a switch port claims that port like a link does, unless a
        # link says exactly the same thing
        for it in self.items:
            f = it.fact
            if isinstance(f, Host):
                for i, nic in enumerate(f.nics):
                    if nic.device and nic.interface:
                        key = ("interface", f"{nic.device}:{nic.interface}")
                        same = [c for c in claims.get(key, []) if isinstance(c[0].fact, Link)
                                and _link_is_cabling(c[0].fact, f.name, nic)]
                        if not same:
                            claims[key].append((it, (*it.path, "nics", i)))
        for (what, value), holders in claims.items():
            if len(holders) < 2:
                continue
            ordered = sorted(holders, key=lambda h: (h[0].lo, h[0].index))
            for j, (it, path) in enumerate(ordered):
                for other, _ in ordered[:j]:
                    if other.fact.key == it.fact.key and other.kind == it.kind:
                        continue
                    if it.fact.overlaps(other.fact):
                        shown = value[1] if isinstance(value, tuple) else value
                        self.add(path, f"{what} {shown} is also held by {SINGULAR[other.kind]} "
                                       f"{other.fact.key!r} ({self.where(other)}) at the same "
                                       "time")
                        break


def _link_is_cabling(link: Link, host: str, nic: HostNic) -> bool:
    ends = {(link.a.device, link.a.interface, link.a.host, link.a.nic),
            (link.b.device, link.b.interface, link.b.host, link.b.nic)}
    return ends == {(nic.device, nic.interface, None, None), (None, None, host, nic.name)}


# --------------------------------------------------------------------------- entry points


@dataclass
class Document:
    """A checked inventory file: its data, facts, and the problems found (warnings only
    when ``ok``)."""

    file: str
    data: dict[str, Any]
    facts: list[Fact]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def inventory(self) -> Inventory:
        return Inventory(self.facts)


def check_data(data: Any, lines: LineMap | None, file: str, *, source: str | None = None,
               external: Inventory | None = None) -> Document:
    """Validate already-parsed data (schema, then meaning). Never raises for bad content:
    the problems are in the result. References missing from the data are looked up in
    ``external`` (what is already loaded)."""
    lines = lines or LineMap()
    if data is None:
        return Document(file, {}, [], [Problem(file, 1, "", "the file is empty (expected a "
                                               f"mapping with {', '.join(KINDS)})")])
    if not isinstance(data, dict):
        return Document(file, {}, [], [Problem(
            file, lines.line(()), "",
            f"expected a mapping with {', '.join(KINDS)}, got {_type_of(data)}")])
    problems = _schema_problems(data, lines, file)
    if problems:
        return Document(file, data, [], problems)
    items: list[_Item] = []
    for kind in KINDS:
        for i, d in enumerate(data.get(kind) or ()):
            try:
                items.append(_Item(fact_from_dict(kind, d, source), kind, i))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(Problem(file, lines.line((kind, i)), field_name((kind, i)),
                                        str(exc)))
    if problems:
        return Document(file, data, [], problems)
    problems = _Checker(file, lines, items, external).run()
    problems.sort(key=lambda p: (p.line or 0, p.field))
    return Document(file, data, [it.fact for it in items], problems)


def check_text(text: str, file: str, *, source: str | None = None,
               external: Inventory | None = None) -> Document:
    """Validate YAML/JSON text. YAML syntax errors raise ``InventoryFileError``."""
    data, lines = parse_yaml(text, file)
    return check_data(data, lines, file, source=source, external=external)


def check_file(path: str | Path, *, source: str | None = None,
               external: Inventory | None = None) -> Document:
    """Read and validate an inventory file. An unreadable file raises ``InputError``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", path=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not an inventory file", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", path=str(path),
                         offset=exc.start) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(path)) from None
    return check_text(text, str(path), source=source, external=external)


def read_file(path: str | Path, *, source: str | None = None,
              external: Inventory | None = None) -> Inventory:
    """Read an inventory file into an Inventory; any error raises ``InventoryFileError``
    (one line: ``file:line: field: message``)."""
    doc = check_file(path, source=source if source is not None else str(path),
                     external=external)
    if not doc.ok:
        raise InventoryFileError(doc.problems)
    return doc.inventory()


__all__ = [
    "FACT_TYPES",
    "Document",
    "InventoryFileError",
    "LineMap",
    "Problem",
    "canonical_json",
    "check_data",
    "check_file",
    "check_text",
    "document_from_facts",
    "fact_from_dict",
    "facts_from_document",
    "field_name",
    "parse_yaml",
    "read_file",
    "schema",
]

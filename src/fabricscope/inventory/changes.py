"""What changed between two sets of facts: added, removed and changed facts by kind and
name, with the fields that changed (``host: hv-1 -> hv-3``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fabricscope.inventory import addr
from fabricscope.inventory.index import Inventory
from fabricscope.inventory.model import KINDS, SINGULAR, Fact

OPS = ("added", "removed", "changed")


@dataclass(frozen=True)
class FieldChange:
    """One field that differs; ``field`` is a path like ``host`` or ``interfaces[eth3].speed``
    (list items are named by their ``name``/``endpoint`` when they have one)."""

    field: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.field}: {_show(self.old)} -> {_show(self.new)}"


@dataclass(frozen=True)
class Change:
    """A fact added, removed or changed, and when (a load time, or the instant the
    validity of a version starts/ends)."""

    kind: str
    key: str
    op: str
    at: datetime | None = None
    fields: tuple[FieldChange, ...] = ()

    def __str__(self) -> str:
        head = f"{self.op} {SINGULAR.get(self.kind, self.kind)} {self.key}"
        if self.at is not None:
            head = f"{addr.format_time(self.at)} {head}"
        if self.fields:
            head += ": " + "; ".join(str(f) for f in self.fields)
        return head

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "op": self.op,
            "at": addr.format_time(self.at),
            "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in self.fields],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Change:
        at = d.get("at")
        return cls(
            kind=d["kind"], key=d["key"], op=d["op"],
            at=addr.parse_rfc3339(at) if at else None,
            fields=tuple(FieldChange(f["field"], f.get("old"), f.get("new"))
                         for f in d.get("fields") or ()),
        )


def _show(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, list) and all(isinstance(x, str | int | float) for x in v):
        return "[" + ", ".join(map(str, v)) + "]"
    if isinstance(v, dict | list):
        import json

        text = json.dumps(v, sort_keys=True, separators=(",", ":"))
        return text if len(text) <= 80 else text[:77] + "..."
    return str(v)


def _item_name(v: Any) -> str | None:
    if isinstance(v, dict):
        for k in ("name", "endpoint"):
            if isinstance(v.get(k), str):
                return str(v[k])
    return None


def diff_values(a: Any, b: Any, path: str = "") -> list[FieldChange]:
    """Field-level differences between two plain values (dicts, lists, scalars)."""
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[FieldChange] = []
        for k in sorted(set(a) | set(b)):
            out += diff_values(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    if isinstance(a, list) and isinstance(b, list):
        na = [_item_name(x) for x in a]
        nb = [_item_name(x) for x in b]
        if (na and nb and None not in na and None not in nb and len(set(na)) == len(na)
                and len(set(nb)) == len(nb)):
            da = dict(zip(na, a, strict=True))
            db = dict(zip(nb, b, strict=True))
            out = []
            for name in [*na, *(n for n in nb if n not in da)]:
                out += diff_values(da.get(name), db.get(name), f"{path}[{name}]")
            return out
    return [FieldChange(path or "value", a, b)]


def _group(facts: Iterable[Fact]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for f in facts:
        out[(f.KIND, f.key)].append(f.to_dict())
    return out


def _order(c: Change) -> tuple[int, str, int]:
    return (KINDS.index(c.kind) if c.kind in KINDS else 99, c.key, OPS.index(c.op))


def compare_facts(old: Iterable[Fact], new: Iterable[Fact],
                  at: datetime | None = None) -> list[Change]:
    """Changes from one set of facts (e.g. the previous snapshot) to another. A fact with
    several versions is compared version by version."""
    a = _group(old)
    b = _group(new)
    out: list[Change] = []
    for k in sorted(set(a) | set(b), key=lambda k: (KINDS.index(k[0]), k[1])):
        va, vb = a.get(k), b.get(k)
        if va is None:
            out.append(Change(k[0], k[1], "added", at))
        elif vb is None:
            out.append(Change(k[0], k[1], "removed", at))
        elif va != vb:
            if len(va) == 1 and len(vb) == 1:
                fields = diff_values(va[0], vb[0])
            elif len(va) == len(vb):
                fields = [FieldChange(f"versions[{i}].{fc.field}", fc.old, fc.new)
                          for i, (x, y) in enumerate(zip(va, vb, strict=True))
                          for fc in diff_values(x, y)]
            else:
                fields = [FieldChange("versions", len(va), len(vb))]
            out.append(Change(k[0], k[1], "changed", at, tuple(fields)))
    return sorted(out, key=_order)


def diff_times(inv: Inventory, t1: datetime, t2: datetime) -> list[Change]:
    """What differs between the inventory at ``t1`` and at ``t2``. Each change carries the
    instant it happened (when the new version starts or the old one ends, between t1 and
    t2), so a migration reads ``10:05 changed endpoint web-1: host: hv-1 -> hv-3``."""
    before = {(f.KIND, f.key): f for f in inv.facts(at=t1)}
    after = {(f.KIND, f.key): f for f in inv.facts(at=t2)}
    forward = t1 <= t2
    out: list[Change] = []
    for k in set(before) | set(after):
        fa, fb = before.get(k), after.get(k)
        if fa is not None and fb is not None and fa.content() == fb.content():
            continue
        when = _change_time(fa, fb, forward)
        if fa is None:
            out.append(Change(k[0], k[1], "added", when))
        elif fb is None:
            out.append(Change(k[0], k[1], "removed", when))
        else:
            out.append(Change(k[0], k[1], "changed", when,
                              tuple(diff_values(fa.content(), fb.content()))))
    return sorted(out, key=lambda c: (c.at is None, c.at or t1, *_order(c)))


def _change_time(fa: Fact | None, fb: Fact | None, forward: bool) -> datetime | None:
    if forward:
        if fb is not None and fb.valid_from is not None:
            return fb.valid_from
        return fa.valid_to if fa is not None else None
    # going back in time: the change is where the later version (fa) started
    if fa is not None and fa.valid_from is not None:
        return fa.valid_from
    return fb.valid_to if fb is not None else None

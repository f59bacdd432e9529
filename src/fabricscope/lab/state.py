"""The lab's state file: an append-only journal (JSON lines) in the run directory.

Every object is recorded *before* it is created, so after a crash ``lab down`` still knows
about it (removing something that does not exist is not an error: ``down`` is idempotent).
Later records describe what ``lab traffic`` changed (migrations, chain insertion,
impairments), so the current plan can be rebuilt from the journal alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fabricscope.lab.plan import LabConfig

FORMAT = 1


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.is_file()

    def append(self, rec: Mapping[str, object]) -> None:
        line = json.dumps(dict(rec), separators=(",", ":"), sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:  # a line cut short by a crash
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("kind") == kind]

    def config(self) -> LabConfig | None:
        for r in self.of_kind("lab"):
            cfg = r.get("config")
            if isinstance(cfg, dict):
                return LabConfig.from_dict(cfg)
        return None

    def created_at(self) -> str | None:
        for r in self.of_kind("lab"):
            return str(r.get("at"))
        return None

    def is_up(self) -> bool:
        return bool(self.of_kind("up"))

    def events(self, etype: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.of_kind("event") if etype is None or r.get("type") == etype]

    def placement(self) -> dict[str, str]:
        """Endpoint -> hypervisor, for every endpoint that migrated (last move wins)."""
        out: dict[str, str] = {}
        for e in self.events("migrate"):
            out[str(e["endpoint"])] = str(e["to"])
        return out

    def chains_inserted(self) -> dict[str, str | None]:
        """Chain name -> time it was (last) inserted, or None when it is not in place."""
        out: dict[str, str | None] = {}
        for e in self.events("chain"):
            out[str(e["name"])] = str(e["at"]) if e.get("inserted") else None
        return out

    def impaired(self) -> dict[str, dict[str, Any]]:
        """Link name -> the impairment event currently in effect."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.events("impair"):
            if e.get("on"):
                out[str(e["link"])] = e
            else:
                out.pop(str(e["link"]), None)
        return out

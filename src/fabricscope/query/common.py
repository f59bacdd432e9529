"""What every query shares: the time window, the data source protocol, inventory loading."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from fabricscope.errors import UsageError
from fabricscope.timeutil import parse_time

if TYPE_CHECKING:
    from fabricscope.inventory import Inventory

DEFAULT_WINDOW = timedelta(hours=1)


class Source(Protocol):
    """What queries need from a store (store.Store satisfies it)."""

    def select(self, flt: Any, columns: list[str] | None = None,
               limit: int | None = None) -> pa.Table: ...

    def counters(self, agent: str | None, ifindex: int | None, since: datetime,
                 until: datetime) -> pa.Table: ...


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime

    @classmethod
    def parse(cls, since: str | datetime | None, until: str | datetime | None,
              *, default: timedelta = DEFAULT_WINDOW) -> Window:
        now = datetime.now(UTC)
        u = until if isinstance(until, datetime) else (
            parse_time(until, now=now, field="--until") if until else now)
        s = since if isinstance(since, datetime) else (
            parse_time(since, now=now, field="--since") if since else u - default)
        if s > u:
            raise UsageError(f"--since ({s.isoformat()}) is after --until ({u.isoformat()})")
        return cls(s, u)

    def to_dict(self) -> dict[str, str]:
        return {"since": iso(self.since), "until": iso(self.until)}


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def load_inventory(spec: str | Path | None) -> Inventory | None:
    """``None`` -> the default inventory history if it has any snapshot; a YAML file ->
    that file; a directory -> that inventory history; ``"none"`` -> no inventory."""
    from fabricscope.inventory import InventoryHistory, default_dir

    if spec is not None and str(spec) == "none":
        return None
    if spec is None:
        d = default_dir()
        if not Path(d).exists():
            return None
        inv = InventoryHistory(d).current()
        return inv if len(inv) else None
    p = Path(spec)
    if p.is_dir():
        return InventoryHistory(p).current()
    from fabricscope.inventory.fileformat import read_file

    return read_file(p)

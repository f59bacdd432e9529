"""What the routes share: the store location, the inventory (cached briefly), an optional
in-process collector, and the small helpers that turn request parameters into the query
layer's arguments with the CLI's checks and messages."""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fabricscope.errors import UsageError

if TYPE_CHECKING:
    from fabricscope.inventory import Inventory
    from fabricscope.query.common import Window

INVENTORY_TTL = 5.0
"""Seconds an inventory read from disk is reused before it is read again."""


class LiveCollector(Protocol):
    """A collector running in the same process: ``sflow.collector.Collector`` (its
    ``snapshot()``), or anything with a ``status()`` giving the same JSON-ready dict
    (api/accounting.py)."""


class ApiContext:
    """Per-app state. ``db`` is a store location (``None`` = the default store) or an
    already open store (tests, an in-process collector's store)."""

    def __init__(self, db: Any, inventory: str | Path | Any | None, *,
                 collector: LiveCollector | None = None) -> None:
        self.db = db
        self.inventory_spec = inventory
        self.collector = collector
        self._inv_lock = threading.Lock()
        self._inv_cache: tuple[float, Inventory | None] | None = None
        self._local = threading.local()
        self._opened: list[Any] = []
        self._opened_lock = threading.Lock()
        self._generation = 0  # bumped by close(): the threads' readers are stale then

    # --- store ------------------------------------------------------------------------------

    @contextmanager
    def store(self) -> Iterator[Any]:
        """The store, read-only (an open store passed in is shared). Each worker thread
        keeps its own reader open between requests (opening one costs more than most
        queries); a reader sees every batch committed since, and one that failed is
        dropped and opened again next time."""
        if self.db is not None and not isinstance(self.db, (str, Path)):
            yield self.db
            return
        from fabricscope.store import StoreError, open_store

        cached = getattr(self._local, "store", None)
        st = cached[1] if cached is not None and cached[0] == self._generation else None
        if st is None:
            st = open_store(None if self.db is None else str(self.db), write=False)
            with self._opened_lock:
                self._local.store = (self._generation, st)
                self._opened.append(st)
        try:
            yield st
        except StoreError:
            self._local.store = None
            with self._opened_lock:
                if st in self._opened:
                    self._opened.remove(st)
            st.close()
            raise

    def close(self) -> None:
        """Close every reader the worker threads opened (at shutdown)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
            self._generation += 1
        for st in opened:
            with contextlib.suppress(Exception):  # at shutdown: nothing left to do about it
                st.close()

    def store_location(self) -> str | None:
        if self.db is None or isinstance(self.db, (str, Path)):
            return None if self.db is None else str(self.db)
        return str(getattr(self.db, "location", type(self.db).__name__))

    # --- inventory --------------------------------------------------------------------------

    def inventory(self) -> Inventory | None:
        from fabricscope.inventory import Inventory
        from fabricscope.query.common import load_inventory

        spec = self.inventory_spec
        if isinstance(spec, Inventory):
            return spec
        now = time.monotonic()
        with self._inv_lock:
            if self._inv_cache is not None and now - self._inv_cache[0] < INVENTORY_TTL:
                return self._inv_cache[1]
            inv = load_inventory(spec)
            self._inv_cache = (now, inv)
            return inv


# --- parameter helpers (the CLI's checks, the CLI's messages) --------------------------------


def window(since: str | None, until: str | None, *, default: timedelta | None = None
           ) -> Window:
    """``since``/``until`` as the CLI reads them; absurd values are a 400, not a 500."""
    from fabricscope.query.common import DEFAULT_WINDOW, Window

    try:
        w = Window.parse(since, until, default=default or DEFAULT_WINDOW)
    except (OverflowError, ValueError) as exc:
        raise UsageError(f"time out of range: {exc}") from None
    for name, t in (("since", w.since), ("until", w.until)):
        if not 1970 <= t.year <= 9000:
            raise UsageError(f"{name}: {t.isoformat()} is out of range (1970..9000)")
    return w


def instant(text: str | None, field: str) -> datetime:
    """One time (``at=``), default now."""
    from fabricscope.timeutil import parse_time

    if text is None or not text.strip():
        return datetime.now(UTC)
    try:
        t = parse_time(text, field=field)
    except (OverflowError, ValueError) as exc:
        raise UsageError(f"{field}: time out of range: {exc}") from None
    if not 1970 <= t.year <= 9000:
        raise UsageError(f"{field}: {t.isoformat()} is out of range (1970..9000)")
    return t


def ip(text: str, field: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise UsageError(f"{field} {text!r} is not an IP address") from None


def proto(text: str | None) -> int | None:
    from fabricscope.cli.common import proto_number

    if text is None or text == "":
        return None
    return proto_number(text)


def _health_source(store: Any) -> Any:
    try:
        mod = importlib.import_module("fabricscope.correlate.health")
    except ImportError:
        return None
    return mod.HealthSource(store)


def health_fn(store: Any) -> Callable[..., dict[str, Any]] | None:
    """The per-hop health function (correlate.health), when it is available."""
    hs = _health_source(store)
    if hs is None:
        return None
    fn: Callable[..., dict[str, Any]] = hs.hop
    return fn


def interface_health(store: Any, agent: str, ifindex: int, w: Window) -> dict[str, Any] | None:
    hs = _health_source(store)
    if hs is None:
        return None
    out: dict[str, Any] = hs.interface(agent, ifindex, w.since, w.until)
    return out

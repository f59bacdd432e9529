"""What every importer shares: the ``Importer`` protocol and the runner that records what an
importer fetched as a snapshot of its own source, once or on a schedule.

An importer reads one system (OpenStack, OVN, Kubernetes, LLDP, sFlow counters) and returns
facts in the inventory model, without validity: the history derives validity from the
snapshots (a fact first seen at an import is valid from that import; one that disappears
gets ``valid_to`` = the import that no longer saw it). Every import is a snapshot with its
time; nothing is ever deleted.

The runner:

1. gives the importer what other sources already hold (``known``), for importers that fill
   gaps rather than declare (LLDP, sFlow interface names), and its own last snapshot
   (``previous``), for importers that accumulate (sFlow interface names);
2. calls ``fetch()``; a failure is one line (``ImportFailed``), and records nothing;
3. turns the facts into a document (``document_from_facts``) and records it with
   ``InventoryHistory.record(document, source=importer.source)``: what was added, changed
   and removed since the previous snapshot of that source comes back in the result;
4. with ``watch``: repeats every interval until SIGINT/SIGTERM (or ``stop`` is set), a
   failed round is reported and the next one runs as usual.
"""

from __future__ import annotations

import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, Protocol, runtime_checkable

from fabricscope.errors import FabricscopeError, InputError
from fabricscope.inventory import addr
from fabricscope.inventory.fileformat import InventoryFileError, document_from_facts
from fabricscope.inventory.history import InventoryHistory, LoadResult
from fabricscope.inventory.index import Inventory
from fabricscope.inventory.model import KINDS, SINGULAR, Fact


class ImportFailed(InputError):
    """An importer could not read its source (connection refused, bad credentials, a
    malformed answer). Exit code 2, one line naming the source and what failed."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message, path=source)
        self.source = source


@runtime_checkable
class Importer(Protocol):
    """Reads one system into inventory facts.

    ``source`` names the history the snapshots continue (``openstack:CLOUD``,
    ``ovn:NB-ADDRESS``, ...); ``fetch`` returns the facts as the system has them now (no
    validity) and raises ``ImportFailed`` when it cannot; ``notes`` are one-line remarks
    about what was skipped and why, reset by every fetch."""

    source: str
    notes: list[str]

    def fetch(self) -> list[Fact]: ...


class BaseImporter(ABC):
    """Convenience base: ``source``, ``notes``, ``known`` (set by the runner before each
    fetch: the inventory every other source holds now), ``previous`` (the facts of this
    source's last snapshot, for importers that accumulate) and ``fail``."""

    kind = "base"

    def __init__(self, source: str) -> None:
        self.source = source
        self.notes: list[str] = []
        self.known: Inventory | None = None
        self.previous: list[Fact] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def fail(self, message: str) -> ImportFailed:
        return ImportFailed(self.source, message)

    @abstractmethod
    def fetch(self) -> list[Fact]:
        """The source's facts now (each importer reads its own source)."""


def unique_names(items: list[tuple[str, str]]) -> dict[str, str]:
    """``[(id, wanted name)]`` -> ``{id: name}`` with names unique: a wanted name used by
    several ids becomes ``name~id8`` for each of them (deterministic, whatever the order),
    an empty one the id itself."""
    counts: dict[str, int] = {}
    for _, name in items:
        if name:
            counts[name] = counts.get(name, 0) + 1
    out: dict[str, str] = {}
    for ident, name in items:
        if not name:
            out[ident] = ident
        elif counts[name] > 1:
            out[ident] = f"{name}~{ident[:8]}"
        else:
            out[ident] = name
    return out


# --------------------------------------------------------------------------- results


@dataclass
class ImportOutcome:
    """One round: what was fetched and what the history recorded (or the error)."""

    source: str
    started: datetime
    facts: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    result: LoadResult | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.source,
            "at": addr.format_time(self.started),
            "ok": self.ok,
            "facts": self.facts,
            "counts": self.counts,
            "notes": list(self.notes),
        }
        if self.error is not None:
            d["error"] = self.error
        if self.result is not None:
            r = self.result
            d.update(snapshot=r.snapshot.seq, unchanged=r.unchanged, first=r.first,
                     summary=r.summary(), changes=[c.to_dict() for c in r.changes],
                     warnings=[str(w) for w in r.warnings])
        return d

    def lines(self) -> list[str]:
        """The report for people: one headline, then one line per change."""
        when = addr.format_time(self.started)
        if self.error is not None:
            return [f"{when}  {self.source}: import failed: {self.error}"]
        assert self.result is not None
        r = self.result
        held = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n) or "nothing"
        if r.unchanged:
            out = [f"{when}  {self.source}: unchanged since snapshot {r.snapshot.seq} "
                   f"({held})"]
        else:
            s = r.summary()
            what = "first import" if r.first else (
                f"{s['added']} added, {s['changed']} changed, {s['removed']} removed")
            out = [f"{when}  {self.source}: snapshot {r.snapshot.seq}: {what} ({held})"]
            if not r.first:
                out += [f"  {change_line(c)}" for c in r.changes]
        out += [f"  note: {n}" for n in self.notes]
        return out


@contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Client libraries log connection failures (keystoneauth, ovsdbapp, python-ovs) on
    stderr; the importer reports them in its own one line instead."""
    import logging

    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def change_line(c: Any) -> str:
    sign = {"added": "+", "removed": "-", "changed": "~"}[c.op]
    text = f"{sign} {SINGULAR.get(c.kind, c.kind)} {c.key}"
    if c.fields:
        text += ": " + "; ".join(str(f) for f in c.fields)
    return text


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, FabricscopeError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- runner


class ImportRunner:
    """Records what an importer fetches into an ``InventoryHistory``.

    ``allow_empty=False`` (the default) refuses to record an import that found nothing
    over a previous snapshot that held something: an API answering with empty lists (a
    permission change, a wrong project) would otherwise end every fact at once. History
    is never deleted either way; pass ``allow_empty=True`` when the source is really
    empty now."""

    def __init__(self, importer: Importer, history: InventoryHistory, *,
                 allow_empty: bool = False) -> None:
        self.importer = importer
        self.history = history
        self.allow_empty = allow_empty

    def run_once(self, at: datetime | None = None, *, raise_errors: bool = True
                 ) -> ImportOutcome:
        """Fetch and record one snapshot. ``at`` is when the content was true (default
        now). Errors raise (one-line ``FabricscopeError``) unless ``raise_errors=False``,
        when they come back in ``outcome.error``; either way nothing is recorded."""
        imp = self.importer
        started = addr.utc(at) if at is not None else addr.utc(datetime.now().astimezone())
        out = ImportOutcome(imp.source, started)
        try:
            if hasattr(imp, "known"):
                has_any = self.history.snapshot_dir.is_dir()
                imp.known = (self.history.current(exclude_source=imp.source)
                             if has_any else Inventory([]))
            if hasattr(imp, "previous"):
                last = self.history.latest(imp.source)
                imp.previous = last.facts() if last is not None else []
            facts = imp.fetch()
            out.notes = list(imp.notes)
            out.facts = len(facts)
            counts = dict.fromkeys(KINDS, 0)
            for f in facts:
                counts[f.KIND] += 1
            out.counts = counts
            if not facts and not self.allow_empty:
                prev = self.history.latest(imp.source)
                if prev is not None and any(prev.counts.values()):
                    raise ImportFailed(imp.source, "the source returned nothing, but snapshot "
                                       f"{prev.seq} held {sum(prev.counts.values())} facts; "
                                       "not recording (use --allow-empty if it is really "
                                       "empty now)")
            doc = document_from_facts(facts)
            out.result = self.history.record(doc, source=imp.source, at=at)
        except InventoryFileError as exc:
            err = ImportFailed(imp.source, f"the import does not make a valid inventory: {exc}")
            if raise_errors:
                raise err from None
            out.error = _one_line(err)
        except FabricscopeError as exc:
            if raise_errors:
                raise
            out.error = _one_line(exc)
        except Exception as exc:  # a client library's own error: one line, never a traceback
            err = ImportFailed(imp.source, _one_line(exc))
            if raise_errors:
                raise err from None
            out.error = _one_line(err)
        return out

    def watch(self, interval: timedelta | float, report: Callable[[ImportOutcome], None], *,
              stop: threading.Event | None = None, max_rounds: int | None = None,
              handle_signals: bool = True) -> int:
        """Import every ``interval`` until SIGINT/SIGTERM, ``stop`` or ``max_rounds``;
        ``report`` gets every outcome (failed ones too). Returns the number of failed
        rounds. Rounds start on a fixed schedule (a slow fetch does not drift it; rounds
        missed while fetching are skipped, not run back to back)."""
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else float(
            interval)
        if seconds <= 0:
            raise ValueError("interval must be positive")
        stop = stop or threading.Event()
        failures = 0
        rounds = 0
        with _stop_on_signals(stop, enabled=handle_signals):
            start = time.monotonic()
            while not stop.is_set():
                outcome = self.run_once(raise_errors=False)
                rounds += 1
                failures += 0 if outcome.ok else 1
                report(outcome)
                if max_rounds is not None and rounds >= max_rounds:
                    break
                elapsed = time.monotonic() - start
                wait = seconds - (elapsed % seconds)
                stop.wait(wait)
        return failures


@contextmanager
def _stop_on_signals(stop: threading.Event, *, enabled: bool) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (only in the main thread, where Python delivers them)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def parse_interval(text: str) -> timedelta:
    """``--watch`` values: ``60s``, ``5m``, ``1h`` or a number of seconds (at least 1 s)."""
    from fabricscope.errors import UsageError
    from fabricscope.timeutil import parse_duration

    d = parse_duration(text, field="--watch")
    if d.total_seconds() < 1:
        raise UsageError(f"--watch: {text!r} is too short (at least 1s)")
    return d

"""Versioned inventory: every loaded file or import is kept as a snapshot, append-only, and
the validity of each fact is derived from the snapshots it appears in.

Layout of the directory::

    DIR/snapshots/00000001.json   {"format": 1, "seq", "source", "file", "at", "recorded_at",
    DIR/snapshots/00000002.json    "sha256", "counts", "changes": [...], "content": {...}}

``content`` is the canonical inventory document (the file format, with declared validity
only). A snapshot file is written to a temporary name and hard-linked into place, so a
reader never sees half a snapshot and two writers never take the same number.

Deriving validity (per source: a file path, or an importer name):

* a version that appears at load time L gets ``valid_from = L`` unless the file declares
  ``valid_from``; versions in the *first* snapshot of a source have an open start, since
  nothing is known before it (so telemetry from before the first load still gets names);
* a version that disappears (removed, or changed into another version) at load time L gets
  ``valid_to = min(declared valid_to, L)``;
* where a newer snapshot (of any source) declares a version over a time an older one
  covered, the newer one wins for that time: the older version is cut around it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fabricscope.errors import InputError, UsageError
from fabricscope.inventory import addr
from fabricscope.inventory.changes import Change, compare_facts, diff_times
from fabricscope.inventory.fileformat import (
    InventoryFileError,
    Problem,
    canonical_json,
    check_data,
    check_file,
    document_from_facts,
    facts_from_document,
)
from fabricscope.inventory.index import Inventory, InventoryView
from fabricscope.inventory.model import KINDS, TIME_MAX, TIME_MIN, Fact

SNAPSHOT_FORMAT = 1
_NAME = re.compile(r"^(\d{8,})\.json$")


def default_dir() -> Path:
    """Where the inventory history lives by default: ``$FABRICSCOPE_HOME/inventory``, else
    the user data directory (``~/.local/share/fabricscope/inventory`` on Linux)."""
    home = os.environ.get("FABRICSCOPE_HOME")
    if home:
        return Path(home) / "inventory"
    import platformdirs

    return Path(platformdirs.user_data_dir("fabricscope")) / "inventory"


@dataclass(frozen=True)
class Snapshot:
    """One recorded load/import."""

    seq: int
    source: str
    at: datetime
    recorded_at: datetime
    sha256: str
    file: str | None
    counts: dict[str, int]
    changes: tuple[Change, ...]
    path: Path = field(compare=False)

    def content(self) -> dict[str, Any]:
        """The inventory document this snapshot holds."""
        data = _read_json(self.path)
        content = data.get("content")
        if not isinstance(content, dict):
            raise InputError("snapshot has no content", path=str(self.path), field="content")
        return content

    def facts(self) -> list[Fact]:
        try:
            return facts_from_document(self.content(), source=self.source)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"damaged snapshot: {exc}", path=str(self.path)) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "source": self.source,
            "file": self.file,
            "at": addr.format_time(self.at),
            "recorded_at": addr.format_time(self.recorded_at),
            "sha256": self.sha256,
            "counts": self.counts,
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True)
class LoadResult:
    """What a load did: the snapshot (new, or the unchanged previous one), the changes
    against the previous snapshot of the same source, and warnings from validation."""

    snapshot: Snapshot
    changes: list[Change]
    unchanged: bool
    first: bool
    warnings: list[Problem]

    def summary(self) -> dict[str, int]:
        out = {"added": 0, "changed": 0, "removed": 0}
        for c in self.changes:
            out[c.op] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot.seq,
            "source": self.snapshot.source,
            "at": addr.format_time(self.snapshot.at),
            "unchanged": self.unchanged,
            "first": self.first,
            "summary": self.summary(),
            "counts": self.snapshot.counts,
            "changes": [c.to_dict() for c in self.changes],
            "warnings": [str(w) for w in self.warnings],
        }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read snapshot: {exc}", path=str(path)) from None
    if not isinstance(data, dict):
        raise InputError("snapshot is not a JSON object", path=str(path))
    return data


def _parse_snapshot(path: Path) -> Snapshot:
    d = _read_json(path)
    try:
        if d.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported snapshot format {d.get('format')!r}")
        return Snapshot(
            seq=int(d["seq"]),
            source=str(d["source"]),
            at=addr.parse_rfc3339(d["at"]),
            recorded_at=addr.parse_rfc3339(d["recorded_at"]),
            sha256=str(d["sha256"]),
            file=d.get("file"),
            counts={str(k): int(v) for k, v in (d.get("counts") or {}).items()},
            changes=tuple(Change.from_dict(c) for c in d.get("changes") or ()),
            path=path,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"damaged snapshot: {exc}", path=str(path)) from None


class _Rec:
    """A version of a fact while validity is being derived: its pieces of time."""

    __slots__ = ("fact", "pieces")

    def __init__(self, fact: Fact, lo: datetime, hi: datetime) -> None:
        self.fact = fact
        self.pieces: list[tuple[datetime, datetime]] = [(lo, hi)]

    def clip_end(self, t: datetime) -> None:
        self.pieces = [(lo, min(hi, t)) for lo, hi in self.pieces if lo < min(hi, t)]

    def subtract(self, lo: datetime, hi: datetime) -> None:
        out: list[tuple[datetime, datetime]] = []
        for a, b in self.pieces:
            if b <= lo or a >= hi:
                out.append((a, b))
                continue
            if a < lo:
                out.append((a, lo))
            if b > hi:
                out.append((hi, b))
        self.pieces = out


def merge_snapshots(snapshots: Iterable[tuple[Snapshot, list[Fact]]]) -> Inventory:
    """Derive validity across snapshots (see the module docstring) into one Inventory."""
    by_key: dict[tuple[str, str], list[_Rec]] = defaultdict(list)
    prev: dict[str, dict[tuple[str, str, str], _Rec]] = {}
    for snap, facts in sorted(snapshots, key=lambda s: (s[0].at, s[0].seq)):
        first = snap.source not in prev
        old = prev.get(snap.source, {})
        cur = {(f.KIND, f.key, canonical_json(f.to_dict())): f for f in facts}
        for ident, rec in old.items():
            if ident not in cur:
                rec.clip_end(snap.at)
        new: dict[tuple[str, str, str], _Rec] = {}
        for ident, f in cur.items():
            if ident in old:
                new[ident] = old[ident]
                continue
            if f.valid_from is not None:
                lo = f.valid_from
            else:
                lo = TIME_MIN if first else snap.at
            hi = f.valid_to if f.valid_to is not None else TIME_MAX
            if lo >= hi:
                continue
            siblings = by_key[(f.KIND, f.key)]
            for other in siblings:
                other.subtract(lo, hi)
            rec = _Rec(f, lo, hi)
            siblings.append(rec)
            new[ident] = rec
        prev[snap.source] = new
    out: list[Fact] = []
    for recs in by_key.values():
        for rec in recs:
            for lo, hi in rec.pieces:
                out.append(rec.fact.with_validity(None if lo == TIME_MIN else lo,
                                                  None if hi == TIME_MAX else hi))
    return Inventory(out)


class InventoryHistory:
    """Every snapshot ever loaded into ``directory``, and the inventory they add up to."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.snapshot_dir = self.directory / "snapshots"

    # ------------------------------------------------------------------ reading

    def snapshots(self, source: str | None = None) -> list[Snapshot]:
        """Recorded snapshots, oldest first (by load time, then number)."""
        if not self.snapshot_dir.is_dir():
            return []
        snaps = []
        for p in self.snapshot_dir.iterdir():
            if _NAME.match(p.name):
                snap = _parse_snapshot(p)
                if source is None or snap.source == source:
                    snaps.append(snap)
        return sorted(snaps, key=lambda s: (s.at, s.seq))

    def latest(self, source: str) -> Snapshot | None:
        snaps = self.snapshots(source)
        return snaps[-1] if snaps else None

    def sources(self) -> list[str]:
        return sorted({s.source for s in self.snapshots()})

    def current(self, *, exclude_source: str | None = None) -> Inventory:
        """All facts of all snapshots, with derived validity."""
        return merge_snapshots(
            (s, s.facts()) for s in self.snapshots() if s.source != exclude_source
        )

    def at(self, t: datetime | None = None) -> InventoryView:
        return self.current().at(t)

    def diff(self, t1: datetime, t2: datetime) -> list[Change]:
        """Facts added, removed or changed between the inventory at ``t1`` and at ``t2``."""
        return diff_times(self.current(), addr.utc(t1), addr.utc(t2))

    # ------------------------------------------------------------------ writing

    def load_file(self, path: str | Path, at: datetime | None = None, *,
                  source: str | None = None) -> LoadResult:
        """Validate an inventory file and record it as a snapshot of ``source`` (default:
        ``file:`` + its absolute path) taking effect at ``at`` (default now).

        Raises ``InventoryFileError`` (file:line: field: message) when the file is invalid.
        References to facts the file does not define are looked up in what other sources
        have already loaded."""
        p = Path(path)
        src = source or f"file:{p.resolve()}"
        external = self.current(exclude_source=src) if self.snapshot_dir.is_dir() else None
        doc = check_file(p, source=src, external=external)
        if not doc.ok:
            raise InventoryFileError(doc.problems)
        return self._record(doc.facts, source=src, at=at, file=str(p), warnings=doc.warnings)

    def record(self, document: dict[str, Any], *, source: str, at: datetime | None = None,
               file: str | None = None) -> LoadResult:
        """Record an inventory document built by an importer (same format as the file)
        as a snapshot of ``source`` (e.g. ``openstack``)."""
        external = self.current(exclude_source=source) if self.snapshot_dir.is_dir() else None
        doc = check_data(document, None, file or source, source=source, external=external)
        if not doc.ok:
            raise InventoryFileError(doc.problems)
        return self._record(doc.facts, source=source, at=at, file=file, warnings=doc.warnings)

    def _record(self, facts: list[Fact], *, source: str, at: datetime | None,
                file: str | None, warnings: list[Problem]) -> LoadResult:
        now = datetime.now(UTC)
        when = addr.utc(at) if at is not None else now
        previous = self.latest(source)
        if previous is not None and when < previous.at:
            raise UsageError(
                f"--at {addr.format_time(when)} is before the last load of {source} "
                f"({addr.format_time(previous.at)}); history only moves forward")
        content = document_from_facts(facts)
        text = canonical_json(content)
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if previous is not None and previous.sha256 == sha:
            return LoadResult(previous, [], unchanged=True, first=False, warnings=warnings)
        old_facts = previous.facts() if previous is not None else []
        changes = compare_facts(old_facts, facts, at=when)
        counts = dict.fromkeys(KINDS, 0)
        for f in facts:
            counts[f.KIND] += 1
        header = {
            "format": SNAPSHOT_FORMAT,
            "source": source,
            "file": file,
            "at": addr.format_time(when),
            "recorded_at": addr.format_time(now),
            "sha256": sha,
            "counts": counts,
            "changes": [c.to_dict() for c in changes],
        }
        snap_path, seq = self._write(header, content)
        snap = Snapshot(seq=seq, source=source, at=when, recorded_at=now, sha256=sha,
                        file=file, counts=counts, changes=tuple(changes), path=snap_path)
        return LoadResult(snap, changes, unchanged=False, first=previous is None,
                          warnings=warnings)

    def _next_seq(self) -> int:
        seqs = [int(m.group(1)) for p in self.snapshot_dir.iterdir()
                if (m := _NAME.match(p.name))]
        return max(seqs, default=0) + 1

    def _write(self, header: dict[str, Any], content: dict[str, Any]) -> tuple[Path, int]:
        try:
            self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the inventory directory: {exc.strerror}",
                             path=str(self.snapshot_dir)) from None
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.snapshot_dir)
        try:
            for _ in range(1000):
                seq = self._next_seq()
                body = json.dumps({**header, "seq": seq, "content": content}, indent=1,
                                  sort_keys=True, ensure_ascii=False)
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, body.encode("utf-8"))
                os.fsync(fd)
                final = self.snapshot_dir / f"{seq:08d}.json"
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    continue  # another writer took this number: take the next one
                _fsync_dir(self.snapshot_dir)
                return final, seq
            raise InputError("cannot allocate a snapshot number", path=str(self.snapshot_dir))
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

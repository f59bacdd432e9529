"""Time parsing shared by every command: RFC 3339, relative (-15m, -2h, -1d), and now."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fabricscope.errors import UsageError

_REL = re.compile(r"^-(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, *, now: datetime | None = None, field: str = "time") -> datetime:
    """Parse a user-supplied time into an aware UTC datetime.

    Accepts ``now``, relative offsets into the past (``-15m``, ``-2h``, ``-1d``), an RFC 3339
    timestamp (``2026-11-25T10:07:00Z``, with offset or fraction), or a bare date/time
    taken as UTC.
    """
    base = now if now is not None else datetime.now(UTC)
    t = text.strip()
    if t == "now":
        return base
    m = _REL.match(t)
    if m:
        return base - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    iso = t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise UsageError(
            f"{field}: cannot read {text!r}: use RFC 3339 (2026-11-25T10:07:00Z), "
            "a relative time (-15m, -2h, -1d) or 'now'"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_duration(text: str, *, field: str = "duration") -> timedelta:
    """Parse ``30s``, ``15m``, ``7d``, ``2w`` (or a plain number of seconds)."""
    t = text.strip()
    m = re.match(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)?$", t)
    if not m:
        raise UsageError(f"{field}: cannot read {text!r}: use e.g. 30s, 15m, 2h, 7d")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2) or "s"])


def to_ns(dt: datetime) -> int:
    """Aware datetime -> integer nanoseconds since the epoch."""
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def format_ns(ns: int, precision: int = 9) -> str:
    """Integer nanoseconds -> RFC 3339 UTC with ``precision`` fractional digits (0, 3, 6, 9)."""
    sec, frac = divmod(int(ns), 1_000_000_000)
    base = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if precision <= 0:
        return base + "Z"
    digits = f"{frac:09d}"[:precision]
    return f"{base}.{digits}Z"

"""Canonical forms of the identities the inventory ties together: IP addresses (text and the
16-byte IPv4-mapped form the record columns use), MAC addresses (text and uint64),
prefixes, interface speeds, IP protocols and RFC 3339 times.

Every function raises ``ValueError`` with a short reason on bad input; the file loader turns
that into a message naming file, line and field.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"

PROTOCOLS: dict[str, int] = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
}
PROTOCOL_NAMES: dict[int, str] = {
    1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "icmpv6",
    132: "sctp",
}


def ip_address(value: object) -> IPAddress:
    """Text, 4/16 raw bytes, or an ipaddress object -> an ipaddress object.

    IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) come back as IPv4, so the same host has
    one identity whatever form a record or a file uses.
    """
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        addr: IPAddress = value
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) not in (4, 16):
            raise ValueError(f"{len(raw)} bytes is not an IP address")
        addr = ipaddress.ip_address(raw)
    elif isinstance(value, str):
        try:
            addr = ipaddress.ip_address(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a valid IP address") from None
    else:
        raise ValueError(f"{value!r} is not a valid IP address")
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def canonical_ip(value: object) -> str:
    """The canonical text of an address (``10.0.0.1``, ``2001:db8::1``)."""
    return str(ip_address(value))


def ip16(value: object) -> bytes:
    """The 16-byte form used by the record columns: IPv6, or IPv4 mapped (``::ffff:a.b.c.d``)."""
    addr = ip_address(value)
    if isinstance(addr, ipaddress.IPv4Address):
        return _V4_MAPPED_PREFIX + addr.packed
    return addr.packed


def canonical_cidr(value: str) -> str:
    """``10.1.0.0/24`` (host bits must be zero)."""
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid IP prefix ({exc})") from None
    return str(net)


def ip_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(value, strict=False)


_MAC_HEX = re.compile(r"^[0-9a-f]{12}$")


def canonical_mac(value: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` from colon, dash, dotted (Cisco) or bare hex forms."""
    s = value.strip().lower()
    bare = s.replace(":", "").replace("-", "").replace(".", "")
    groups_ok = (
        re.fullmatch(r"([0-9a-f]{2}[:-]){5}[0-9a-f]{2}", s) is not None
        or re.fullmatch(r"[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}", s) is not None
        or _MAC_HEX.fullmatch(s) is not None
    )
    if not groups_ok or not _MAC_HEX.fullmatch(bare):
        raise ValueError(f"{value!r} is not a valid MAC address")
    return ":".join(bare[i : i + 2] for i in range(0, 12, 2))


def mac_to_int(value: str) -> int:
    """MAC text -> the integer the record columns hold (uint64, 48 bits used)."""
    return int(canonical_mac(value).replace(":", ""), 16)


def int_to_mac(value: int) -> str:
    h = f"{int(value) & 0xFFFFFFFFFFFF:012x}"
    return ":".join(h[i : i + 2] for i in range(0, 12, 2))


_SPEED = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:b(?:ps|it/s)?)?$", re.IGNORECASE)
_SPEED_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_speed(value: object) -> int:
    """Interface speed in bits per second from ``25000000000``, ``"25G"``, ``"100 Gbps"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid speed")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is not a valid speed")
        return value
    if isinstance(value, str):
        m = _SPEED.match(value.strip())
        if m:
            return int(float(m.group(1)) * _SPEED_UNITS[m.group(2).lower()])
    raise ValueError(f"{value!r} is not a valid speed (use bits/s or e.g. 10G, 400G)")


def format_speed(bps: int) -> str:
    for unit, mult in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if bps >= mult and bps % mult == 0:
            return f"{bps // mult}{unit}"
    return str(bps)


def parse_protocol(value: object) -> int:
    """IP protocol number from ``6``, ``"tcp"``, ``"TCP"`` or ``"6"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid IP protocol")
    if isinstance(value, int):
        if 0 <= value <= 255:
            return value
        raise ValueError(f"{value!r} is not a valid IP protocol (0-255)")
    if isinstance(value, str):
        s = value.strip().lower()
        if s in PROTOCOLS:
            return PROTOCOLS[s]
        if s.isdigit() and 0 <= int(s) <= 255:
            return int(s)
    raise ValueError(f"{value!r} is not a valid IP protocol (a name like tcp, or 0-255)")


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})$"
)


def parse_rfc3339(value: object) -> datetime:
    """RFC 3339 text with a zone (``2026-11-25T10:05:00Z``) -> aware UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not isinstance(value, str) or not _RFC3339.match(value.strip()):
        raise ValueError(
            f"{value!r} is not an RFC 3339 time with a zone (e.g. 2026-11-25T10:05:00Z)"
        )
    s = value.strip()
    if s[-1] in "Zz":
        s = s[:-1] + "+00:00"
    # Python < 3.11 rejects more than 6 fraction digits; keep microseconds.
    m = re.match(r"^(.*\.\d{6})\d+(.*)$", s)
    if m:
        s = m.group(1) + m.group(2)
    try:
        return datetime.fromisoformat(s).astimezone(UTC)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid time") from None


def format_time(value: datetime | None) -> str | None:
    """Aware datetime -> ``2026-11-25T10:05:00Z`` (fraction only when there is one)."""
    if value is None:
        return None
    v = value.astimezone(UTC)
    text = v.strftime("%Y-%m-%dT%H:%M:%S")
    if v.microsecond:
        text += f".{v.microsecond:06d}".rstrip("0")
    return text + "Z"


def utc(value: datetime) -> datetime:
    """Aware UTC datetime; a naive datetime is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

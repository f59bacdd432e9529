"""Link-layer header types (LINKTYPE_* values) found in pcap and pcapng files.

Reference: the tcpdump.org link-layer header types registry, as referenced by
draft-ietf-opsawg-pcaplinktype (and used by draft-ietf-opsawg-pcap section 4, the
LinkType field of the file header, and draft-ietf-opsawg-pcapng section 4.2, the
LinkType field of the Interface Description Block).

In a classic pcap file header the 32-bit field holds more than the link type:

```
    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
20 | FCS |f|0 0 0 0 0 0 0 0 0 0 0 0|         LinkType              |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
```

so readers keep the low 16 bits (``LINKTYPE_MASK``). Some old files carry the
platform's DLT_RAW value (12 on most BSDs, 14 on OpenBSD) instead of LINKTYPE_RAW;
:func:`normalize` maps both to :data:`LINKTYPE_RAW`.
"""

from __future__ import annotations

from typing import Final

LINKTYPE_NULL: Final = 0
"""BSD loopback: 4-byte address family in the host byte order of the capturing machine."""
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
"""Raw IP: the frame starts with an IPv4 or IPv6 header (version nibble tells)."""
LINKTYPE_LOOP: Final = 108
"""OpenBSD loopback: 4-byte address family in network byte order."""
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276

DLT_RAW_BSD: Final = 12
DLT_RAW_OPENBSD: Final = 14

LINKTYPE_MASK: Final = 0xFFFF
"""The link type proper in pcap's 32-bit LinkType field (the upper bits carry FCS info)."""

LINKTYPE_NAMES: Final[dict[int, str]] = {
    LINKTYPE_NULL: "NULL",
    LINKTYPE_ETHERNET: "ETHERNET",
    LINKTYPE_RAW: "RAW",
    LINKTYPE_LOOP: "LOOP",
    LINKTYPE_LINUX_SLL: "LINUX_SLL",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
}
"""Names of the link types fabricscope decodes (the registry's names without LINKTYPE_)."""

_ALIASES: Final[dict[int, int]] = {
    DLT_RAW_BSD: LINKTYPE_RAW,
    DLT_RAW_OPENBSD: LINKTYPE_RAW,
}


def normalize(linktype: int) -> int:
    """The LINKTYPE_* value for a header's link type field (low 16 bits, DLT_RAW aliases)."""
    value = linktype & LINKTYPE_MASK
    return _ALIASES.get(value, value)


def linktype_name(linktype: int) -> str:
    """A readable name: ``ETHERNET``, or ``LINKTYPE_147`` for types without a name here."""
    return LINKTYPE_NAMES.get(linktype, f"LINKTYPE_{linktype}")


__all__ = [
    "DLT_RAW_BSD",
    "DLT_RAW_OPENBSD",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_MASK",
    "LINKTYPE_NAMES",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "linktype_name",
    "normalize",
]

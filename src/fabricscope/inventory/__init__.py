"""The overlay/underlay inventory: what was where, when.

Facts (tenants, networks, hosts, devices, links, endpoints, VNFs, chains) carry validity
intervals; ``Inventory`` answers time-aware lookups; ``fileformat`` reads and checks the
YAML file; ``history`` keeps every loaded snapshot and derives validity across them.
Bulk enrichment of record batches (``enrich``) and learning from traffic (``learn``) use
NumPy/Arrow and are imported on demand. See docs/inventory.md.
"""

from __future__ import annotations

from fabricscope.inventory.changes import Change, FieldChange, compare_facts, diff_times
from fabricscope.inventory.fileformat import (
    Document,
    InventoryFileError,
    Problem,
    check_file,
    check_text,
    read_file,
)
from fabricscope.inventory.history import InventoryHistory, LoadResult, Snapshot, default_dir
from fabricscope.inventory.index import DeviceInterface, Inventory, InventoryView
from fabricscope.inventory.model import (
    KINDS,
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
)

__all__ = [
    "KINDS",
    "Chain",
    "Change",
    "Device",
    "DeviceInterface",
    "Document",
    "Endpoint",
    "Fact",
    "FieldChange",
    "FlowClassifier",
    "Host",
    "HostNic",
    "Interface",
    "Inventory",
    "InventoryFileError",
    "InventoryHistory",
    "InventoryView",
    "Link",
    "LinkEnd",
    "LoadResult",
    "Network",
    "PortGroup",
    "Problem",
    "Snapshot",
    "Tenant",
    "Vnf",
    "VnfPort",
    "check_file",
    "check_text",
    "compare_facts",
    "default_dir",
    "diff_times",
    "read_file",
]

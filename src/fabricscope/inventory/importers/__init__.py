"""Importers: read the inventory from where it already lives, so nothing is typed twice.

One module per source, each imported on demand (their client libraries are optional, in
the ``import`` extra):

| source | module | client | reads |
| --- | --- | --- | --- |
| ``openstack`` | ``openstack`` | openstacksdk | Neutron ports, networks, agents; networking-sfc |
| ``ovn`` | ``ovn`` | ovsdbapp | OVN NB switches and ports; SB chassis, port and datapath bindings |
| ``kubernetes`` | ``kubernetes`` | kubernetes | nodes, pods, namespaces; Cilium endpoints and identities |
| ``lldp`` | ``lldp`` | lldpcli (lldpd) | LLDP neighbours -> links |
| ``sflow`` | ``sflow`` | fabricscope's own decoder/store; pysnmp optional | interface names by ifIndex |

Every importer returns facts; ``base.ImportRunner`` records them as a snapshot of the
importer's own source in an ``InventoryHistory`` (see docs/import/).
"""

from __future__ import annotations

from fabricscope.inventory.importers.base import (
    BaseImporter,
    Importer,
    ImportFailed,
    ImportOutcome,
    ImportRunner,
    parse_interval,
)

SOURCES: tuple[str, ...] = ("openstack", "ovn", "kubernetes", "lldp", "sflow")

__all__ = [
    "SOURCES",
    "BaseImporter",
    "ImportFailed",
    "ImportOutcome",
    "ImportRunner",
    "Importer",
    "parse_interval",
]

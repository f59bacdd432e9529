"""Response models for the OpenAPI spec.

* ``Record`` and ``Tunnel`` are **generated** from the column table
  (``records/schema.py``): one field per stored packet column, with its documentation, so
  the API cannot drift from the store or from ``decode --format ndjson``.
* The query results (trace, impact, matrix, predict, check chains) are typed where their
  shape is part of CONTRACTS.md or stable, and allow extra fields everywhere: a field the
  query layer adds later passes through unchanged (the JSON is the CLI's ``--json``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from fabricscope.records.ddl import STORED_PACKET_COLUMNS
from fabricscope.records.schema import TUNNEL_AB_NAMES, TUNNEL_FIELDS, Column, LogicalType

# --- generated from records/schema.py ---------------------------------------------------------

_JSON_TYPES: dict[LogicalType, Any] = {
    "ts": str, "u8": int, "u16": int, "u32": int, "u64": int, "i64": int,
    "ip": str, "mac": str, "bool": bool, "str": str, "bin": str,
}
_JSON_NOTES: dict[LogicalType, str] = {
    "ts": " (RFC 3339, UTC)", "ip": " (text)", "mac": " (aa:bb:cc:dd:ee:ff)",
    "bin": " (hex)",
}


def _tunnel_model() -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, typ, _slot in TUNNEL_FIELDS:
        if name in ("a", "b"):
            continue
        fields[name] = (_JSON_TYPES[typ] | None, Field(None))
    extra = sorted({n for pair in TUNNEL_AB_NAMES.values() for n in pair if n})
    for n in extra:
        fields[n] = (int | None, Field(None, description="per tunnel type (TUNNEL_AB_NAMES)"))
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "Tunnel", __config__=ConfigDict(extra="allow"),
        __doc__="One tunnel layer of a record, outermost first.", **fields)
    return model


Tunnel = _tunnel_model()


def _field_type(c: Column) -> Any:
    if c.type == "tunnels":
        return list[Tunnel] | None  # type: ignore[valid-type]
    return _JSON_TYPES[c.type] | None


def _record_model() -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for c in STORED_PACKET_COLUMNS:
        doc = c.doc + _JSON_NOTES.get(c.type, "")
        fields[c.name] = (_field_type(c), Field(None, description=doc))
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "Record", __config__=ConfigDict(extra="allow"),
        __doc__="A packet or sFlow sample record (CONTRACTS.md, generated from "
                "records/schema.py); absent fields are null or left out.", **fields)
    return model


Record = _record_model()

# --- common ------------------------------------------------------------------------------------


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    """Every error: a one-line message and, where useful, more (the partial result of a
    query that found nothing, the parameter at fault)."""

    error: str
    detail: Any = None


class Health(BaseModel):
    status: str
    version: str


class TimeWindow(Loose):
    since: str
    until: str


# --- trace (CONTRACTS.md "Trace result") ---------------------------------------------------


class HopHealth(Loose):
    status: str | None = None
    flags: list[str] = []
    reason: str | None = None


class TraceEndpoint(Loose):
    ip: str | None = None
    endpoint: str | None = None
    tenant: str | None = None
    host: str | None = None


class Hop(Loose):
    device: str | None = None
    agent: str | None = None
    in_if: str | None = None
    in_ifindex: int | None = None
    out_if: str | None = None
    out_ifindex: int | None = None
    samples: int = 0
    est_packets: int | float = 0
    est_bytes: int | float = 0
    first_seen: str | None = None
    last_seen: str | None = None
    ttl: float | None = None
    inferred: bool = False
    candidates: list[str] | None = None
    health: HopHealth | None = None


class Segment(Loose):
    encap: str | None = None
    vni: int | None = None
    outer_src: str | None = None
    outer_dst: str | None = None
    src_host: str | None = None
    dst_host: str | None = None
    network: str | None = None
    outer_ports: list[list[int | None]] = []
    hops: list[Hop] = []
    samples: int = 0
    first_seen: str | None = None
    last_seen: str | None = None


class TracePath(Loose):
    direction: str | None = None
    vnfs: list[str] = []
    segments: list[Segment] = []
    samples: int = 0
    share: float = 0.0
    est_packets: int | float = 0
    est_bytes: int | float = 0
    first_seen: str | None = None
    last_seen: str | None = None
    flows: int = 0


class TraceResult(Loose):
    query: dict[str, Any]
    src: TraceEndpoint
    dst: TraceEndpoint
    paths: list[TracePath]
    samples: int = 0
    inventory: bool = False
    notes: list[str] = []


# --- impact, matrix, predict, chains ---------------------------------------------------------


class ImpactResult(Loose):
    query: dict[str, Any]
    device: str | None = None
    agent: str | None = None
    interface: str | None = None
    ifindex: int | None = None
    link: dict[str, Any] | None = None
    samples: int = 0
    tenants: list[dict[str, Any]] = []
    endpoints: list[dict[str, Any]] = []
    vnis: list[dict[str, Any]] = []
    flows: list[dict[str, Any]] = []
    health: dict[str, Any] | None = None


class HostPair(Loose):
    src_host: str | None = None
    dst_host: str | None = None
    est_bytes: int | float = 0


class MatrixRow(Loose):
    src: str | None = None
    dst: str | None = None
    samples: int = 0
    est_packets: int | float = 0
    est_bytes: int | float = 0
    flows: int = 0
    share: float = 0.0
    host_pairs: list[HostPair] = []


class MatrixResult(Loose):
    query: dict[str, Any]
    rows: list[MatrixRow]
    total_est_bytes: int | float = 0
    cells: int = Field(0, description="rows in the whole result (before limit/offset)")
    offset: int = 0
    limit: int = 0
    next_offset: int | None = Field(None, description="offset of the next page, if any")


class PredictResult(Loose):
    query: dict[str, Any]
    src: dict[str, Any]
    dst: dict[str, Any]
    chains: list[str] = []
    vnf_groups: list[list[str]] = []
    alternatives: list[dict[str, Any]] = []
    observed: dict[str, Any] | None = None


class ChainCheckResult(Loose):
    query: dict[str, Any]
    chains: list[dict[str, Any]] = []
    flows_checked: int = 0
    ok: bool = True
    violations: list[dict[str, Any]] = []
    unverifiable: list[dict[str, Any]] = []


# --- records, inventory, topology, store, collector ------------------------------------------


class RecordsPage(BaseModel):
    query: dict[str, Any]
    records: list[Record]  # type: ignore[valid-type]
    offset: int
    limit: int
    next_offset: int | None = Field(None, description="offset of the next page, if any")


class InventoryDocument(Loose):
    """The inventory file format (docs/inventory.md), as ``inventory show --json``."""

    version: int


class InventoryChange(Loose):
    kind: str
    key: str
    op: str
    at: str | None = None
    fields: list[dict[str, Any]] = []


class InventoryDiff(Loose):
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    changes: list[InventoryChange] = []


class TopologyNode(Loose):
    id: str
    kind: str
    label: str
    parent: str | None = None


class TopologyEdge(Loose):
    id: str
    kind: str
    source: str
    target: str


class Topology(Loose):
    query: dict[str, Any]
    nodes: list[TopologyNode]
    edges: list[TopologyEdge]
    span: dict[str, Any] | None = None
    inventory: bool = False
    notes: list[str] = []


class StoreInfo(Loose):
    location: str | None = None
    backend: str | None = None
    span: dict[str, Any] | None = None
    info: dict[str, Any] = {}


class CollectorStatus(Loose):
    source: str = Field(description="live (a collector in this process), store (the "
                                    "accounting written with the data) or none")
    live: bool = False
    accounting: dict[str, Any] | None = None

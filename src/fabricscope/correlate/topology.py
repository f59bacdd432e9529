"""The underlay graph (devices, hosts, links) from the inventory, and inferred hops.

Nodes are ``("dev", name)`` and ``("host", name)``; an edge is a link, carrying the
interface (or NIC) name at each end. Between two consecutive known points of a segment
(the source host, each observed hop, the destination host) that are not adjacent, the
hops the topology implies are inserted and marked ``inferred``. Where several equal-cost
ways exist, the one that agrees with the observed neighbours' interfaces is taken (an
observed hop's in_if is cabled to exactly one far end); the others are listed as
``candidates``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx

    from fabricscope.inventory import Inventory

Node = tuple[str, str]
MAX_CANDIDATES = 16


def build_graph(inv: Inventory | None, at: datetime) -> nx.Graph | None:
    """The underlay at ``at`` (devices, hosts, links); ``None`` without an inventory
    (networkx is then not even imported: a quarter of a zero-config trace's start)."""
    if inv is None:
        return None
    import networkx as nx

    g = nx.Graph()
    for d in inv.facts("devices", at):
        g.add_node(("dev", d.key))
    for h in inv.facts("hosts", at):
        g.add_node(("host", h.key))
    for link in inv.links(at):
        ends = []
        for e in (link.a, link.b):
            if e.device is not None:
                ends.append((("dev", e.device), e.interface))
            elif e.host is not None:
                ends.append((("host", e.host), e.nic))
        if len(ends) != 2:
            continue
        (na, ia), (nb, ib) = ends
        g.add_edge(na, nb, ifs={na: ia, nb: ib}, link=link.key)
    return g


@dataclass
class Anchor:
    node: Node | None  # None when the point is not in the graph
    in_if: str | None = None
    out_if: str | None = None


@dataclass
class Filled:
    node: Node
    in_if: str | None
    out_if: str | None
    candidates: list[str] = field(default_factory=list)


def _edge_if(g: nx.Graph, node: Node, other: Node) -> str | None:
    data = g.get_edge_data(node, other)
    return None if data is None else data["ifs"].get(node)


def fill_gap(g: nx.Graph | None, a: Anchor, b: Anchor) -> list[Filled]:
    """Inferred nodes strictly between anchors ``a`` and ``b`` (empty if adjacent/unknown)."""
    if g is None or a.node is None or b.node is None or a.node == b.node:
        return []
    import networkx as nx
    if a.node not in g or b.node not in g or g.has_edge(a.node, b.node):
        return []
    try:
        ways = []
        for p in nx.all_shortest_paths(g, a.node, b.node):
            ways.append(p)
            if len(ways) >= MAX_CANDIDATES:
                break
    except nx.NetworkXNoPath:
        return []
    # paths through hosts are not underlay paths between switches
    ways = [w for w in ways if all(n[0] == "dev" for n in w[1:-1])]
    if not ways:
        return []

    def agrees(w: list[Node]) -> bool:
        if a.out_if is not None and _edge_if(g, a.node, w[1]) not in (None, a.out_if):  # type: ignore[arg-type]
            return False
        return not (b.in_if is not None
                    and _edge_if(g, b.node, w[-2]) not in (None, b.in_if))  # type: ignore[arg-type]

    good = [w for w in ways if agrees(w)] or ways
    chosen = good[0]
    out: list[Filled] = []
    for k in range(1, len(chosen) - 1):
        node = chosen[k]
        cands = sorted({w[k][1] for w in good if len(w) == len(chosen)} - {node[1]})
        out.append(Filled(node=node, in_if=_edge_if(g, node, chosen[k - 1]),
                          out_if=_edge_if(g, node, chosen[k + 1]), candidates=cands))
    return out


def all_paths(g: nx.Graph | None, src: Node, dst: Node, limit: int = 64
              ) -> list[list[Node]]:
    """Every equal-cost underlay path between two nodes (for predict)."""
    if g is None or src not in g or dst not in g:
        return []
    import networkx as nx
    try:
        out = []
        for p in nx.all_shortest_paths(g, src, dst):
            if all(n[0] == "dev" for n in p[1:-1]):
                out.append(p)
            if len(out) >= limit:
                break
        return out
    except nx.NetworkXNoPath:
        return []


def edge_ifs(g: nx.Graph, u: Node, v: Node) -> tuple[str | None, str | None]:
    """Interface names of the link u--v at u and at v."""
    return _edge_if(g, u, v), _edge_if(g, v, u)

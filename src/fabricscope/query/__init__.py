"""Queries over the store and the inventory, as a Python API returning the same structures
as the CLI's ``--json`` output::

    from fabricscope import query
    result = query.trace("10.1.0.5", "10.2.0.9", dport=443, since="-15m", db=None)
    for path in result["paths"]:
        print(path["vnfs"], [h["device"] for s in path["segments"] for h in s["hops"]])

``db`` is a store location (``None`` = the default embedded store; a directory;
``clickhouse://HOST:PORT/DB``) or an open store; ``inventory`` is an ``Inventory``, a YAML
file, an inventory history directory, ``"none"``, or ``None`` (what ``inventory load``
recorded). Times are datetimes or text (RFC 3339, ``-15m``, ``now``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fabricscope.query.common import Window, load_inventory

if TYPE_CHECKING:
    from fabricscope.inventory import Inventory

__all__ = ["Window", "check_chains", "impact", "matrix", "predict", "trace"]

Time = str | datetime | None


@contextmanager
def _source(db: Any) -> Iterator[Any]:
    if db is not None and not isinstance(db, (str, Path)):
        yield db
        return
    from fabricscope.store import open_store

    store = open_store(None if db is None else str(db), write=False)
    try:
        yield store
    finally:
        store.close()


def _inventory(inv: Any) -> Inventory | None:
    from fabricscope.inventory import Inventory

    if isinstance(inv, Inventory):
        return inv
    return load_inventory(inv)


def trace(src: str, dst: str, *, sport: int | None = None, dport: int | None = None,
          proto: int | None = None, vni: int | None = None, both: bool = False,
          since: Time = None, until: Time = None, db: Any = None, inventory: Any = None
          ) -> dict[str, Any]:
    """The path of an overlay flow (CONTRACTS.md "Trace result")."""
    from fabricscope.correlate.health import HealthSource
    from fabricscope.query._trace import TraceQuery
    from fabricscope.query._trace import trace as run

    q = TraceQuery(src=src, dst=dst, window=Window.parse(since, until), sport=sport,
                   dport=dport, proto=proto, vni=vni, both=both)
    with _source(db) as store:
        return run(store, _inventory(inventory), q, health=HealthSource(store).hop)


def impact(device: str, *, interface: str | None = None, since: Time = None,
           until: Time = None, db: Any = None, inventory: Any = None, limit: int = 50
           ) -> dict[str, Any]:
    """Tenants, endpoints, VNIs and flows that crossed a device or interface."""
    from fabricscope.query._impact import ImpactQuery
    from fabricscope.query._impact import impact as run

    q = ImpactQuery(device=device, interface=interface, window=Window.parse(since, until),
                    limit=limit)
    with _source(db) as store:
        return run(store, _inventory(inventory), q)


def matrix(by: str = "tenant", *, since: Time = None, until: Time = None, db: Any = None,
           inventory: Any = None, limit: int = 100) -> dict[str, Any]:
    """Traffic between tenants, endpoints or hosts."""
    from fabricscope.query._matrix import MatrixQuery
    from fabricscope.query._matrix import matrix as run

    q = MatrixQuery(window=Window.parse(since, until), by=by, limit=limit)  # type: ignore[arg-type]
    with _source(db) as store:
        return run(store, _inventory(inventory), q)


def predict(src: str, dst: str, *, dport: int | None = None, sport: int | None = None,
            proto: int | None = None, vni: int | None = None, at: Time = None,
            inventory: Any = None, observed: bool = False, since: Time = None,
            until: Time = None, db: Any = None) -> dict[str, Any]:
    """Predicted paths; with ``observed``, compared with what trace saw."""
    from fabricscope.query._predict import PredictQuery, compare
    from fabricscope.query._predict import predict as run

    w = Window.parse(since, until)
    when = Window.parse(at, at).until if at is not None else w.until
    inv = _inventory(inventory)
    q = PredictQuery(src=src, dst=dst, at=when, dport=dport, sport=sport, proto=proto,
                     vni=vni)
    result = run(inv, q)
    if observed:
        tr = trace(src, dst, sport=sport, dport=dport, proto=proto, vni=vni,
                   since=w.since, until=w.until, db=db, inventory=inv)
        result["observed"] = compare(result, tr) | {"paths": len(tr["paths"])}
    return result


def check_chains(*, chain: str | None = None, since: Time = None, until: Time = None,
                 db: Any = None, inventory: Any = None) -> dict[str, Any]:
    """Chain bypasses and asymmetric paths through stateful VNFs."""
    from fabricscope.query._chains import ChainCheckQuery
    from fabricscope.query._chains import check_chains as run

    with _source(db) as store:
        return run(store, _inventory(inventory),
                   ChainCheckQuery(window=Window.parse(since, until), chain=chain))

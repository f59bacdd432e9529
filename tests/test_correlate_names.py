"""correlate/names.py: answers memoised per inventory epoch stay exact at and around
change times (a cached answer of one instant is never served for another epoch)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fabricscope.correlate.names import Namer
from fabricscope.inventory.fileformat import read_file

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fabric.yaml"
MOVE = datetime(2026, 11, 25, 10, 5, tzinfo=UTC)  # web-1: hv-1 -> hv-3
IDS = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)  # ids-1 ports appear
NS = timedelta(microseconds=1)


def test_a_migration_resolves_by_epoch_in_any_query_order() -> None:
    inv = read_file(EXAMPLE)
    namer = Namer(inv)
    web1 = ipaddress.IPv6Address("::ffff:10.1.0.5").packed  # as stored (16 bytes)
    times = [MOVE + NS, MOVE - NS, MOVE, MOVE - timedelta(hours=1), MOVE + timedelta(hours=1)]
    want = {t: ("hv-1" if t < MOVE else "hv-3") for t in times}
    for t in times:  # after, before, at: the cache must not leak across the change
        got = namer.endpoint(web1, 5001, t)
        assert got["endpoint"] == "web-1" and got["tenant"] == "acme"
        assert got["host"] == want[t], t
        assert got == Namer(inv).endpoint(web1, 5001, t)  # same as an uncached lookup
    assert namer.epoch(MOVE - NS) != namer.epoch(MOVE) == namer.epoch(MOVE + NS)
    # the same address on globex's VNI is another endpoint at every time
    assert namer.endpoint(web1, 6001, MOVE - NS)["tenant"] == "globex"


def test_endpoints_that_appear_later_and_callers_owning_their_dict() -> None:
    namer = Namer(read_file(EXAMPLE))
    ids_in = "10.1.0.252"
    before = namer.endpoint(ids_in, 5001, IDS - NS)
    assert before["endpoint"] is None and before["tenant"] == "acme"  # the network's
    assert namer.endpoint(ids_in, 5001, IDS)["endpoint"] == "ids-1-in"
    before["endpoint"] = "changed by the caller"
    assert namer.endpoint(ids_in, 5001, IDS - NS)["endpoint"] is None


def test_without_inventory_raw_identities() -> None:
    namer = Namer(None)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert namer.epoch(at) == 0
    assert namer.endpoint("10.9.9.9", 7, at) == {
        "ip": "10.9.9.9", "endpoint": None, "tenant": None, "host": None, "network": None}
    assert namer.host("172.16.1.11", at) == "172.16.1.11"

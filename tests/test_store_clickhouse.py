"""ClickHouse specifics: parameter binding, the clickhouse-connect executor, several
writers on one database, deduplication of retried inserts including the aggregates."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from fabricscope.errors import UsageError
from fabricscope.store import RecordFilter, StoreError, open_store, parse_location
from fabricscope.store import synthetic as syn
from fabricscope.store.clickhouse import ClickHouseStore, ClientExecutor, bind

T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


def test_bind_turns_placeholders_into_typed_parameters() -> None:
    sql, params = bind("SELECT * FROM t WHERE a = ? AND b = '?' AND c = ? -- ?\n AND d = ?",
                       [5, "x'y", b"\x00" * 10 + b"\xff\xff" + bytes([10, 0, 0, 1])])
    assert sql == ("SELECT * FROM t WHERE a = {p0:Int64} AND b = '?' AND c = {p1:String} "
                   "-- ?\n AND d = {p2:IPv6}")
    assert params == {"p0": "5", "p1": "x'y", "p2": "::ffff:10.0.0.1"}
    sql, params = bind("SELECT ?, ?, ?, ?", [None, True, 1.5, T0])
    assert sql.startswith("SELECT NULL, {p1:Bool}, {p2:Float64}, {p3:DateTime64(9, 'UTC')}")
    assert params["p3"].endswith(".000000")
    assert bind("SELECT ?", [1 << 63])[0] == "SELECT {p0:UInt64}"
    with pytest.raises(UsageError, match="placeholders"):
        bind("SELECT ?, ?", [1])
    with pytest.raises(UsageError, match="placeholders"):
        bind("SELECT 1", [1])
    with pytest.raises(UsageError, match="time zone"):
        bind("SELECT ?", [datetime(2026, 1, 1)])
    with pytest.raises(UsageError, match="unsupported"):
        bind("SELECT ?", [object()])


class FakeClient:
    """Records what clickhouse-connect would be asked to do."""

    def __init__(self, **kw: Any) -> None:
        self.kw = kw
        self.calls: list[tuple[str, Any, Any]] = []
        self.database: str | None = None

    def command(self, sql: str, parameters: Any = None) -> None:
        self.calls.append(("command", sql, parameters))

    def query_arrow(self, sql: str, parameters: Any = None, settings: Any = None
                    ) -> pa.Table:
        self.calls.append(("query", sql, (parameters, settings)))
        return pa.table({"n": [0]})

    def insert_arrow(self, table: str, data: pa.Table, database: str | None = None,
                     settings: Any = None) -> None:
        self.calls.append(("insert", f"{database}.{table}", settings))

    def close(self) -> None:
        self.calls.append(("close", "", None))


def test_client_executor_uses_clickhouse_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeClient] = []

    def get_client(**kw: Any) -> FakeClient:
        c = FakeClient(**kw)
        made.append(c)
        return c

    fake = types.ModuleType("clickhouse_connect")
    fake.get_client = get_client  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clickhouse_connect", fake)
    loc = parse_location("clickhouses://bob:pw@ch.example:9440/flows")
    ex = ClientExecutor(loc)
    c = made[0]
    assert c.kw["host"] == "ch.example" and c.kw["port"] == 9440 and c.kw["secure"]
    assert c.kw["username"] == "bob" and c.kw["password"] == "pw"
    ex.use("flows")
    assert c.database == "flows"
    ex.insert_arrow('"flows".records', pa.table({"x": [1]}),
                    {"insert_deduplication_token": "b1:records"})
    assert c.calls[-1] == ("insert", "flows.records", {"insert_deduplication_token":
                                                       "b1:records"})
    ex.query_arrow("SELECT 1", {"p0": "1"}, {"readonly": 2})
    assert c.calls[-1][2] == ({"p0": "1"}, {"readonly": 2})


def test_unreachable_server_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("clickhouse_connect")

    def refuse(**kw: Any) -> None:
        raise ConnectionRefusedError("[Errno 111] Connection refused\nmore detail")

    fake.get_client = refuse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clickhouse_connect", fake)
    with pytest.raises(StoreError, match=r"cannot connect to clickhouse://h:8123/db: "
                                         r"\[Errno 111\] Connection refused$"):
        open_store("clickhouse://h/db")


def test_reader_on_empty_server_database(tmp_path: Path) -> None:
    pytest.importorskip("chdb")
    with pytest.raises(StoreError, match="no store at"):
        open_store(f"chdb://{tmp_path / 'ch'}")


def test_retried_insert_is_not_counted_twice_anywhere(tmp_path: Path) -> None:
    pytest.importorskip("chdb")
    loc = f"chdb://{tmp_path / 'ch'}"
    recs = syn.synthetic_records(2000, start_ns=int(T0.timestamp()) * 10**9,
                                 span_ns=3600 * 10**9, flows=30)
    polls = syn.counters([{"ts": T0, "agent": "10.0.0.1", "ifindex": 1, "in_octets": 0},
                          {"ts": T0 + timedelta(seconds=30), "agent": "10.0.0.1",
                           "ifindex": 1, "in_octets": 3000}])
    with open_store(loc, write=True) as st:
        assert isinstance(st, ClickHouseStore)
        for _ in range(3):  # a collector retrying after a timeout
            st.append(recs, polls, batch_id="retry-me")
        assert st.select(columns=["ts"]).num_rows == 2000
        assert st.counters().num_rows == 2
        one_m = st.sql("SELECT sum(samples) AS s FROM records_1m").column("s")[0].as_py()
        assert one_m == 2000
        c1m = st.sql("SELECT sum(polls) AS s FROM counters_1m").column("s")[0].as_py()
        assert c1m == 2


def test_two_writers_on_one_database(tmp_path: Path) -> None:
    """Several collectors write one ClickHouse database: no writer lock there (chDB runs
    one session per process, so the two writers take turns here)."""
    pytest.importorskip("chdb")
    loc = f"chdb://{tmp_path / 'ch'}"
    a = syn.synthetic_records(100, start_ns=int(T0.timestamp()) * 10**9,
                              span_ns=60 * 10**9, seed=1)
    with open_store(loc, write=True) as w1:
        w1.append(a, batch_id="collector-1:0")
    with open_store(loc, write=True) as w2:
        w2.append(a, batch_id="collector-2:0")
        assert w2.select(RecordFilter(), columns=["ts"]).num_rows == 200

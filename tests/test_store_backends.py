"""One suite, two backends: the embedded store (DuckDB over Parquet) and ClickHouse (chDB).

Everything a caller can see through the Store API must be the same on both: appends,
selects with every filter, aggregates at both resolutions, counter rates with wraps and
resets, deduplication by batch id, the SQL views, retention, compaction, bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from fabricscope.errors import UsageError
from fabricscope.records.arrow import IP_TYPE, STR_TYPE, TS_TYPE
from fabricscope.records.ddl import STORED_PACKET_COLUMNS
from fabricscope.records.present import ip_str
from fabricscope.store import RecordFilter, Store, StoreError, open_store
from fabricscope.store import synthetic as syn

BACKENDS = ["embedded", "chdb"]
# recent enough that ClickHouse's TTL (7 days from the wall clock) never interferes
T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def location(kind: str, tmp: Path) -> str:
    return str(tmp / "store") if kind == "embedded" else f"chdb://{tmp / 'chdb'}"


@pytest.fixture(params=BACKENDS)
def loc(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "chdb":
        pytest.importorskip("chdb")
    return location(request.param, tmp_path)


@pytest.fixture
def store(loc: str) -> Iterator[Store]:
    st = open_store(loc, write=True)
    try:
        yield st
    finally:
        st.close()


def rec(**kw: Any) -> dict[str, Any]:
    """A VXLAN flow sample with sensible defaults (override anything)."""
    base: dict[str, Any] = {
        "ts": at(0), "kind": "flow", "frame_len": 1000, "ip_ver": 4,
        "src": "192.168.0.1", "dst": "192.168.0.2", "proto": 17, "ttl": 64,
        "sport": 50000, "dport": 4789, "encap": "vxlan", "vni": 100, "depth": 1,
        "tunnels": [{"type": "vxlan", "vni": 100, "src": "192.168.0.1",
                     "dst": "192.168.0.2", "sport": 50000, "dport": 4789,
                     "a": None, "b": None}],
        "inner_ip_ver": 4, "inner_src": "10.1.0.5", "inner_dst": "10.2.0.9",
        "inner_proto": 6, "inner_sport": 43512, "inner_dport": 443,
        "agent": "10.255.0.1", "in_if": 1, "out_if": 2, "sampling_rate": 1000,
    }
    base.update(kw)
    return base


FORWARD = rec()
REVERSE = rec(ts=at(1), src="192.168.0.2", dst="192.168.0.1", inner_src="10.2.0.9",
              inner_dst="10.1.0.5", inner_sport=443, inner_dport=43512, agent="10.255.0.2",
              in_if=3, out_if=4)
OTHER = rec(ts=at(2), inner_src="10.1.0.6", inner_dport=80, vni=200, encap="geneve",
            tunnels=[{"type": "geneve", "vni": 200, "src": "192.168.0.1",
                      "dst": "192.168.0.3", "sport": 1, "dport": 6081, "a": 5, "b": 7}],
            dst="192.168.0.3")
V6 = rec(ts=at(3), ip_ver=6, src="fd00::1", dst="fd00::2", inner_ip_ver=6,
         inner_src="2001:db8::5", inner_dst="2001:db8::9", agent="fd00:ff::1",
         sampling_rate=None, frame_len=200)
PLAIN = rec(ts=at(4), kind="packet", encap=None, vni=None, depth=0, tunnels=[],
            inner_src=None, inner_dst=None, inner_proto=None, inner_sport=None,
            inner_dport=None, inner_ip_ver=None, agent=None, in_if=None, out_if=None,
            sampling_rate=None, src="10.9.0.1", dst="10.9.0.2", proto=6, sport=1234,
            dport=22, frame_len=60, error="tcp_truncated")
ROWS = [FORWARD, REVERSE, OTHER, V6, PLAIN]


def sample_table() -> pa.Table:
    return syn.records(ROWS)


def times(t: pa.Table) -> list[datetime]:
    return [x.as_py() for x in t.column("ts")]


def ips(t: pa.Table, col: str) -> list[str | None]:
    return [ip_str(v) for v in t.column(col).to_pylist()]


# --- append / select ------------------------------------------------------------------------

def test_roundtrip_keeps_every_stored_column(store: Store) -> None:
    src = sample_table()
    store.append(src, batch_id="b1")
    got = store.select()
    assert got.schema.names == [c.name for c in STORED_PACKET_COLUMNS]
    assert got.schema.field("ts").type == TS_TYPE
    assert got.schema.field("src").type == IP_TYPE
    assert got.schema.field("kind").type == STR_TYPE
    assert got.num_rows == len(ROWS)
    want = src.to_pylist()
    have = got.to_pylist()
    for w, h in zip(want, have, strict=True):
        for k, v in w.items():
            if k == "tunnels":
                assert (h[k] or []) == (v or []), k
            else:
                assert h[k] == v, (k, h[k], v)


def test_select_columns_limit_and_time_order(store: Store) -> None:
    store.append(syn.records(list(reversed(ROWS))))
    t = store.select(columns=["ts", "inner_src"], limit=3)
    assert t.schema.names == ["ts", "inner_src"]
    assert times(t) == [at(0), at(1), at(2)]
    assert store.select(limit=0).num_rows == 0
    with pytest.raises(UsageError, match="unknown record column"):
        store.select(columns=["nope"])


def test_empty_store_gives_empty_typed_tables(store: Store) -> None:
    t = store.select(RecordFilter(inner_src="10.1.0.5"))
    assert t.num_rows == 0 and t.schema.field("inner_src").type == IP_TYPE
    assert store.aggregate(RecordFilter(), ["agent"], resolution="raw").num_rows == 0
    assert store.aggregate(RecordFilter(), [], resolution="raw").num_rows == 0
    assert store.counters().num_rows == 0


@pytest.mark.parametrize(("flt", "expect"), [
    (RecordFilter(inner_src="10.1.0.5", inner_dst="10.2.0.9"), [0]),
    (RecordFilter(inner_src="10.1.0.5", inner_dst="10.2.0.9", either_direction=True), [0, 1]),
    (RecordFilter(inner_src="10.1.0.5", inner_dst="10.2.0.9", inner_sport=43512,
                  inner_dport=443, inner_proto=6, either_direction=True), [0, 1]),
    (RecordFilter(inner_src="10.1.0.5", inner_dport=443, either_direction=True), [0, 1]),
    (RecordFilter(inner_sport=443), [1]),
    (RecordFilter(src="192.168.0.2", dst="192.168.0.1"), [1]),
    (RecordFilter(src="192.168.0.1", dst="192.168.0.2", either_direction=True), [0, 1]),
    (RecordFilter(vni=200), [2]),
    (RecordFilter(encap="geneve"), [2]),
    (RecordFilter(encap="vxlan", vni=100), [0, 1, 3]),
    (RecordFilter(agent="10.255.0.2"), [1]),
    (RecordFilter(in_if=3), [1]),
    (RecordFilter(out_if=2), [0, 2, 3]),
    (RecordFilter(interface=4), [1]),
    (RecordFilter(interface=1), [0, 2, 3]),
    (RecordFilter(kind="packet"), [4]),
    (RecordFilter(inner_src="2001:db8::5"), [3]),
    (RecordFilter(inner_src="2001:DB8:0::5", inner_dst="2001:db8::9",
                  either_direction=True), [3]),
    (RecordFilter(agent="fd00:ff::1"), [3]),
    (RecordFilter(since=at(1), until=at(3)), [1, 2]),
    (RecordFilter(since=at(1)), [1, 2, 3, 4]),
    (RecordFilter(until=at(1)), [0]),
    (RecordFilter(since=at(10)), []),
    (RecordFilter(src="10.9.0.1", inner_src=None), [4]),
])
def test_filters(store: Store, flt: RecordFilter, expect: list[int]) -> None:
    store.append(sample_table())
    t = store.select(flt, columns=["ts"])
    assert times(t) == [at(i) for i in expect]


def test_filter_values_are_parameters_not_sql(store: Store) -> None:
    store.append(sample_table())
    assert store.select(RecordFilter(encap="vxlan' OR '1'='1")).num_rows == 0
    assert store.select(RecordFilter(kind="x'); DROP TABLE records; --")).num_rows == 0
    assert store.select().num_rows == len(ROWS)


@pytest.mark.parametrize("flt", [
    RecordFilter(inner_src="10.1.0.300"),
    RecordFilter(agent="not-an-ip"),
    RecordFilter(inner_dport=70000),
    RecordFilter(vni=-1),
    RecordFilter(since=datetime(2026, 1, 1)),  # naive
])
def test_bad_filter_values_are_usage_errors(store: Store, flt: RecordFilter) -> None:
    with pytest.raises(UsageError):
        store.select(flt)


def test_batch_id_deduplicates(store: Store) -> None:
    t = sample_table()
    store.append(t, batch_id="same")
    store.append(t, batch_id="same")
    assert store.select().num_rows == len(ROWS)
    store.append(t, batch_id="other")
    assert store.select().num_rows == 2 * len(ROWS)
    store.append(t)  # no id: a fresh one each time
    assert store.select().num_rows == 3 * len(ROWS)
    # the aggregates are not double counted either
    agg = store.aggregate(RecordFilter(), [], resolution="1m")
    assert agg.column("samples")[0].as_py() == 3 * len(ROWS)


def test_record_batch_and_extra_columns_accepted(store: Store) -> None:
    t = sample_table()
    extra = t.append_column("file_offset", pa.array(range(t.num_rows), pa.int64()))
    store.append(extra.to_batches()[0])
    assert store.select().num_rows == len(ROWS)
    store.append(t.select(["ts", "inner_src"]))  # missing columns are null
    got = store.select(RecordFilter(inner_src="10.1.0.5"), columns=["frame_len"])
    assert sorted(got.column("frame_len").to_pylist(), key=lambda v: v or 0) == [None, 1000]


def test_reopen_read_only(loc: str) -> None:
    with open_store(loc, write=True) as st:
        st.append(sample_table(), batch_id="b")
    with open_store(loc) as st:
        assert st.select().num_rows == len(ROWS)
        with pytest.raises(StoreError, match="read-only"):
            st.append(sample_table())
    with open_store(loc, write=True) as st:  # the batch id is remembered across opens
        st.append(sample_table(), batch_id="b")
        assert st.select().num_rows == len(ROWS)


def test_closed_store_refuses(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.select()


# --- aggregates -------------------------------------------------------------------------------

def test_aggregate_estimates(store: Store) -> None:
    store.append(sample_table())
    t = store.aggregate(RecordFilter(), ["encap"], resolution="raw")
    rows = {r["encap"]: r for r in t.to_pylist()}
    # sampling_rate null (V6) counts 1 packet of frame_len bytes
    assert rows["vxlan"]["samples"] == 3
    assert rows["vxlan"]["est_packets"] == 1000 + 1000 + 1
    assert rows["vxlan"]["est_bytes"] == 1000 * 1000 * 2 + 200
    assert rows["geneve"]["est_packets"] == 1000
    assert rows[None]["est_packets"] == 1 and rows[None]["est_bytes"] == 60
    assert rows["vxlan"]["first_seen"] == at(0) and rows["vxlan"]["last_seen"] == at(3)
    assert t.column("est_bytes").to_pylist() == sorted(t.column("est_bytes").to_pylist(),
                                                       reverse=True)


def test_aggregate_raw_equals_1m(store: Store) -> None:
    t = syn.synthetic_records(20_000, start_ns=int(T0.timestamp()) * 10**9,
                              span_ns=1800 * 10**9, flows=300, seed=3)
    store.append(t.slice(0, 7000), batch_id="a")
    store.append(t.slice(7000), batch_id="b")
    flt = RecordFilter(since=T0, until=T0 + timedelta(minutes=30))
    for by in (["agent"], ["inner_src", "inner_dst", "vni"], ["minute"], ["agent", "in_if"],
               []):
        raw = store.aggregate(flt, by, resolution="raw")
        agg = store.aggregate(flt, by, resolution="1m")
        key = [*by, "samples"]
        assert raw.select([*by, "samples", "est_packets", "est_bytes", "first_seen",
                           "last_seen"]).sort_by([(k, "ascending") for k in key]).equals(
            agg.select([*by, "samples", "est_packets", "est_bytes", "first_seen",
                        "last_seen"]).sort_by([(k, "ascending") for k in key])), by
    total = store.aggregate(flt, [], resolution="auto")
    assert total.column("samples")[0].as_py() == 20_000
    assert total.column("est_packets")[0].as_py() == 20_000 * 1024


def test_aggregate_minute_buckets_and_filters(store: Store) -> None:
    rows = [rec(ts=at(s)) for s in (0, 10, 59, 60, 61, 185)]
    store.append(syn.records(rows))
    t = store.aggregate(RecordFilter(inner_src="10.1.0.5", since=at(30)), ["minute"],
                        resolution="raw")
    got = {r["minute"]: r["samples"] for r in t.to_pylist()}
    assert got == {at(0): 1, at(60): 2, at(180): 1}
    m = store.aggregate(RecordFilter(inner_src="10.1.0.5", since=at(30)), ["minute"],
                        resolution="1m")
    # the 1-minute aggregate starts at the minute holding `since`
    assert {r["minute"]: r["samples"] for r in m.to_pylist()} == {at(0): 3, at(60): 2,
                                                                   at(180): 1}
    h = store.aggregate(RecordFilter(), ["hour"], resolution="raw")
    assert h.to_pylist()[0]["hour"] == T0 and h.to_pylist()[0]["samples"] == 6


def test_aggregate_resolution_rules(store: Store) -> None:
    store.append(sample_table())
    with pytest.raises(UsageError, match="no column"):
        store.aggregate(RecordFilter(), ["frame_len"], resolution="1m")
    with pytest.raises(UsageError, match="resolution"):
        store.aggregate(RecordFilter(), [], resolution="5m")  # type: ignore[arg-type]
    # a column the aggregate lacks: auto falls back to raw
    t = store.aggregate(RecordFilter(since=T0 - timedelta(days=2)), ["frame_len"])
    assert sorted(t.column("frame_len").to_pylist()) == [60, 200, 1000]


# --- counters ---------------------------------------------------------------------------------

def poll(t: float, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ts": at(t), "agent": "10.255.0.1", "ifindex": 7,
                            "uptime_ms": int(1_000_000 + t * 1000), "speed": 10_000_000_000,
                            "in_octets": 0, "out_octets": 0, "in_ucast": 0, "in_mcast": 0,
                            "in_bcast": 0, "out_ucast": 0, "out_mcast": 0, "out_bcast": 0,
                            "in_errors": 0, "out_errors": 0, "in_discards": 0,
                            "out_discards": 0, "fcs_errors": 0, "port_name": "eth7"}
    base.update(kw)
    return base


def empty_records() -> pa.Table:
    return syn.records([])


def test_counter_rates(store: Store) -> None:
    polls = [poll(30 * k, in_octets=k * 30 * 125_000_000,  # 1 Gb/s in
                  out_octets=k * 30 * 12_500_000, in_ucast=k * 30 * 1000,
                  in_errors=k * 60, out_discards=k * 3) for k in range(5)]
    store.append(empty_records(), syn.counters(polls[:2]))
    store.append(empty_records(), syn.counters(polls[2:]))  # state carries across batches
    t = store.counters("10.255.0.1", 7, T0, T0 + timedelta(hours=1))
    rows = t.to_pylist()
    assert len(rows) == 5
    assert rows[0]["in_bps"] is None and rows[0]["interval_s"] is None
    for r in rows[1:]:
        assert r["interval_s"] == pytest.approx(30.0)
        assert r["in_bps"] == pytest.approx(1e9)
        assert r["out_bps"] == pytest.approx(1e8)
        assert r["in_util"] == pytest.approx(0.1)
        assert r["out_util"] == pytest.approx(0.01)
        assert r["in_pps"] == pytest.approx(1000)
        assert r["in_errors_ps"] == pytest.approx(2.0)
        assert r["out_discards_ps"] == pytest.approx(0.1)
        assert r["reset"] is False and r["wrapped"] == 0
    assert t.schema.field("agent").type == IP_TYPE
    assert ips(t, "agent")[0] == "10.255.0.1"
    assert store.counters(ifindex=8).num_rows == 0
    assert store.counters(since=at(31)).num_rows == 3


def test_counter_wraps_and_resets(store: Store) -> None:
    m32 = 1 << 32
    polls = [
        poll(0, in_ucast=m32 - 1000, in_octets=(1 << 64) - 5000, out_octets=m32 - 100),
        # 32-bit wrap of a packet counter, 64-bit wrap of in_octets, and a 32-bit counter
        # carried in the 64-bit out_octets field wrapping at 2^32
        poll(30, in_ucast=2000, in_octets=5000, out_octets=900),
        # agent restart: uptime went down -> reset, null rates
        poll(60, uptime_ms=5000, in_ucast=10, in_octets=10, out_octets=10),
        poll(90, uptime_ms=35000, in_ucast=3010, in_octets=30010, out_octets=10),
        # counters cleared (no uptime): going down by a lot is a reset, not a wrap
        poll(120, uptime_ms=None, in_ucast=5, in_octets=5, out_octets=5),
        poll(150, uptime_ms=None, in_ucast=305, in_octets=3005, out_octets=5),
    ]
    store.append(empty_records(), syn.counters(polls))
    rows = store.counters().to_pylist()
    assert [r["reset"] for r in rows] == [False, False, True, False, True, False]
    assert rows[1]["wrapped"] == 3  # bit0 32-bit wrap, bit1 64-bit wrap
    assert rows[1]["in_pps"] == pytest.approx(3000 / 30)
    assert rows[1]["in_bps"] == pytest.approx(10000 * 8 / 30)
    assert rows[1]["out_bps"] == pytest.approx(1000 * 8 / 30)
    assert rows[2]["in_pps"] is None and rows[2]["in_bps"] is None
    assert rows[3]["in_pps"] == pytest.approx(100) and rows[3]["interval_s"] == 30
    assert rows[4]["in_pps"] is None
    assert rows[5]["in_pps"] == pytest.approx(10) and rows[5]["interval_s"] == 30


def test_counter_state_survives_reopen(loc: str) -> None:
    with open_store(loc, write=True) as st:
        st.append(empty_records(), syn.counters([poll(0, in_octets=0)]))
    with open_store(loc, write=True) as st:
        st.append(empty_records(), syn.counters([poll(30, in_octets=30_000)]))
        rows = st.counters().to_pylist()
    assert rows[1]["in_bps"] == pytest.approx(8000)


def test_counters_per_minute(store: Store) -> None:
    polls = [poll(20 * k, in_octets=k * 20 * 1_000_000, in_errors=k * 20)
             for k in range(10)]  # 8 Mb/s, 1 error/s, polls every 20 s
    store.append(empty_records(), syn.counters(polls[:4]))
    store.append(empty_records(), syn.counters(polls[4:]))
    t = store.counters("10.255.0.1", 7, T0, T0 + timedelta(hours=1), resolution="1m")
    rows = t.to_pylist()
    assert [r["ts"] for r in rows] == [at(0), at(60), at(120), at(180)]
    assert [r["polls"] for r in rows] == [3, 3, 3, 1]
    assert rows[0]["interval_s"] == pytest.approx(40)  # the first poll has no delta
    for r in rows:
        assert r["in_bps"] == pytest.approx(8e6)
        assert r["in_errors_ps"] == pytest.approx(1.0)
        assert r["in_util"] == pytest.approx(8e6 / 1e10)
        assert r["port_name"] == "eth7"


# --- SQL views ----------------------------------------------------------------------------------

def test_sql_views(store: Store) -> None:
    store.append(sample_table(), syn.counters([poll(0), poll(30, in_octets=300)]))
    t = store.sql("SELECT count(*) AS n FROM records WHERE inner_src = ? AND ts >= ?",
                  [syn._ipb("10.1.0.5"), T0])
    assert t.column("n")[0].as_py() == 1
    assert store.sql("SELECT sum(samples) AS n FROM records_1m").column("n")[0].as_py() == 5
    assert store.sql("SELECT count(*) AS n FROM counters WHERE ifindex = ?",
                     [7]).column("n")[0].as_py() == 2
    assert store.sql("SELECT sum(d_in_octets) AS s FROM counters_1m"
                     ).column("s")[0].as_py() == 300
    assert store.sql("SELECT ? AS s", ["it's ? fine"]).column("s")[0].as_py() == "it's ? fine"
    for bad in ("DELETE FROM records", "DROP TABLE records", "SELECT 1; SELECT 2",
                "INSERT INTO records (ts) VALUES (now())"):
        with pytest.raises(StoreError):
            store.sql(bad)


# --- bookkeeping --------------------------------------------------------------------------------

def test_ingested_registry(store: Store) -> None:
    assert not store.ingested("k1")
    store.mark_ingested("k1", {"path": "/x.pcap", "records": 5})
    assert store.ingested("k1")
    assert store.ingested_summary("k1")["records"] == 5  # type: ignore[index]
    assert not store.ingested("k2")


def test_info(store: Store) -> None:
    store.append(sample_table(), syn.counters([poll(0)]))
    store.seal()  # the embedded store's aggregates of staged records come with sealing
    info = store.info()
    assert info["staged_rows"] == 0
    assert info["rows"] == len(ROWS) and info["counter_rows"] == 1
    assert info["schema_version"] >= 1
    assert info["first_ns"] == int(T0.timestamp()) * 10**9
    assert info["datasets"]["records_1m"]["rows"] >= 1
    assert info["partitions"] >= 1 and info["bytes"] > 0


def test_retention_drops_old_partitions(loc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fabricscope.store import embedded

    now = T0 + timedelta(hours=2)
    old = [rec(ts=now - timedelta(days=10, hours=h)) for h in range(3)]
    mid = [rec(ts=now - timedelta(days=100))]
    new = [rec(ts=now - timedelta(hours=1))]
    with open_store(loc, write=True) as st:
        # the old rows arrived back then (the embedded store also keeps rows for the
        # retention period after they arrive; ClickHouse goes by the record time only)
        for rows, age in ((mid, 100), (old, 10)):
            arrived = int((now - timedelta(days=age)).timestamp()) * 10**9
            monkeypatch.setattr(embedded, "_now_ns", lambda a=arrived: a)
            st.append(syn.records(rows), syn.counters([poll(-age * 86400, uptime_ms=None)]))
        monkeypatch.undo()
        st.append(syn.records(new), syn.counters([poll(0)]))
        dropped = st.apply_retention(now)
        # ClickHouse's TTL may already have dropped expired rows at insert time
        assert dropped.get("records", 0) in (0, 4)
        assert times(st.select(columns=["ts"])) == [new[0]["ts"]]
        assert st.counters().num_rows == 1
        # the 1-minute aggregates are kept longer (90 days)
        agg = st.aggregate(RecordFilter(), ["minute"], resolution="1m")
        assert agg.num_rows == 4
        assert st.apply_retention(now) == {}


def test_retention_setting_is_remembered(loc: str) -> None:
    with open_store(loc, write=True, retention=timedelta(days=1)) as st:
        assert st.info()["retention_s"] == 86400
    with open_store(loc, write=True) as st:
        assert st.info()["retention_s"] == 86400
        assert st.info()["retention_1m_s"] == 90 * 86400


def test_compaction_keeps_results(store: Store) -> None:
    t = syn.synthetic_records(3000, start_ns=int(T0.timestamp()) * 10**9,
                              span_ns=7200 * 10**9, flows=50, seed=1)
    for k in range(10):
        store.append(t.slice(k * 300, 300), batch_id=f"c{k}")
    before = store.select(columns=["ts", "inner_src", "agent"])
    agg_before = store.aggregate(RecordFilter(), ["agent"], resolution="1m")
    store.compact()
    after = store.select(columns=["ts", "inner_src", "agent"])
    assert after.num_rows == 3000
    assert before.sort_by("ts").equals(after.sort_by("ts"))
    agg_after = store.aggregate(RecordFilter(), ["agent"], resolution="1m")
    assert agg_before.sort_by("agent").equals(agg_after.sort_by("agent"))
    info = store.info()
    if info["backend"] == "embedded":
        assert info["datasets"]["records"]["files"] == 2  # two hours
    store.append(t.slice(0, 300), batch_id="c0")  # still deduplicated after compaction
    assert store.select(columns=["ts"]).num_rows == 3000

"""Every route on a real store (frames decoded by fabricscope, on the example fabric): the
same JSON as the CLI's query layer, time windows, pagination, errors as JSON with a clear
message (never a traceback), the rate limit, and the metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fabricscope import query
from fabricscope.api import RateLimit, create_app
from test_api_support import (
    EXAMPLE,
    FLOW,
    PATH_SWITCHES,
    SINCE,
    TOKEN,
    UNTIL,
    auth,
    build_store,
)

W = {"since": SINCE, "until": UNTIL}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_store(tmp_path_factory.mktemp("routes") / "store")


@pytest.fixture(scope="module")
def client(db: str) -> TestClient:
    app = create_app(db, str(EXAMPLE), token=TOKEN, rate_limit=None)
    return TestClient(app, raise_server_exceptions=False, headers=auth())


def same_json(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


# --- queries: the CLI's JSON ------------------------------------------------------------------


def test_trace_is_the_query_layers_json(client: TestClient, db: str) -> None:
    r = client.get("/api/v1/trace", params={**FLOW, **W})
    assert r.status_code == 200, r.text
    got = r.json()
    want = query.trace(FLOW["src"], FLOW["dst"], dport=443, proto=6, since=SINCE, until=UNTIL,
                       db=db, inventory=str(EXAMPLE))
    assert got == same_json(want)
    p = got["paths"][0]
    assert p["vnfs"] == ["fw-1"]
    hops = [h["device"] for s in p["segments"] for h in s["hops"]]
    assert set(hops) == PATH_SWITCHES
    assert [s["src_host"] for s in p["segments"]] == ["gw-1", "hv-4"]


def test_trace_nothing_found_is_404_with_the_result(client: TestClient) -> None:
    r = client.get("/api/v1/trace", params={"src": "10.9.9.9", "dst": "10.1.0.5", **W})
    assert r.status_code == 404
    body = r.json()
    assert body["error"].startswith("no record of 10.9.9.9 -> 10.1.0.5 between")
    assert body["detail"]["paths"] == [] and body["detail"]["query"]["src"] == "10.9.9.9"


def test_trace_outside_the_window_finds_nothing(client: TestClient) -> None:
    r = client.get("/api/v1/trace", params={**FLOW, "since": "2026-11-25T11:00:00Z",
                                            "until": "2026-11-25T12:00:00Z"})
    assert r.status_code == 404


def test_trace_relative_times(client: TestClient) -> None:
    r = client.get("/api/v1/trace", params={**FLOW, "since": "-15m", "until": "now"})
    assert r.status_code == 404  # the data is from 2026-11-25T10:01
    assert r.json()["detail"]["query"]["since"].endswith("Z")


def test_impact_of_a_link(client: TestClient, db: str) -> None:
    r = client.get("/api/v1/impact", params={"device": "spine-2", "interface": "eth2", **W})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["link"]["far_end"] == "leaf-2:eth50"
    assert [t["tenant"] for t in got["tenants"]] == ["acme"]
    assert got["flows"][0]["dport"] == 443
    want = query.impact("spine-2", interface="eth2", since=SINCE, until=UNTIL, db=db,
                        inventory=str(EXAMPLE))
    assert {k: v for k, v in got.items() if k != "health"} == \
        {k: v for k, v in same_json(want).items() if k != "health"}


def test_impact_errors(client: TestClient) -> None:
    r = client.get("/api/v1/impact", params={"device": "no-such-switch", **W})
    assert r.status_code == 400
    assert "no-such-switch" in r.json()["error"]
    r = client.get("/api/v1/impact", params={"device": "spine-1", **W})
    assert r.status_code == 404
    assert r.json()["detail"]["samples"] == 0


def test_matrix_and_pagination(client: TestClient, db: str) -> None:
    full = client.get("/api/v1/matrix", params={"by": "host", **W}).json()
    want = query.matrix("host", since=SINCE, until=UNTIL, db=db, inventory=str(EXAMPLE))
    assert full["rows"] == same_json(want)["rows"]
    assert full["cells"] == 2 and full["next_offset"] is None
    p1 = client.get("/api/v1/matrix", params={"by": "host", "limit": 1, **W}).json()
    assert p1["rows"] == full["rows"][:1] and p1["next_offset"] == 1
    p2 = client.get("/api/v1/matrix",
                    params={"by": "host", "limit": 1, "offset": 1, **W}).json()
    assert p2["rows"] == full["rows"][1:] and p2["next_offset"] is None
    past = client.get("/api/v1/matrix", params={"by": "host", "offset": 10, **W})
    assert past.status_code == 200 and past.json()["rows"] == []
    assert client.get("/api/v1/matrix", params={"by": "vlan"}).status_code == 400
    empty = client.get("/api/v1/matrix", params={"since": "2026-11-26T00:00:00Z",
                                                 "until": "2026-11-26T01:00:00Z"})
    assert empty.status_code == 404 and empty.json()["error"] == "no traffic in the window"


def test_predict(client: TestClient) -> None:
    r = client.get("/api/v1/predict", params={
        "src": "10.1.0.1", "dst": "10.1.0.5", "vni": 5001, "dport": 443, "proto": "tcp",
        "at": "2026-11-25T10:02:00Z", "observed": "true", **W})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["chains"] == ["acme-web-https"]
    assert got["alternatives"][0]["vnfs"] == ["fw-1"]
    assert got["observed"]["paths"] == 1 and got["observed"]["ok"] is True
    amb = client.get("/api/v1/predict", params={"src": "10.1.0.1", "dst": "10.1.0.5"})
    assert amb.status_code == 400 and "several endpoints" in amb.json()["error"]
    unknown = client.get("/api/v1/predict", params={"src": "10.1.0.1", "dst": "10.77.0.1",
                                                    "vni": 5001})
    assert unknown.status_code == 404


def test_check_chains(client: TestClient, db: str) -> None:
    r = client.get("/api/v1/check/chains", params=W)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got == same_json(query.check_chains(since=SINCE, until=UNTIL, db=db,
                                               inventory=str(EXAMPLE)))
    assert got["ok"] is True and got["violations"] == []
    assert got["flows_checked"] == 1  # acme-gw -> web-1 :443 went through fw-1
    assert [c["chain"] for c in got["chains"]] == ["acme-web-https"]
    assert client.get("/api/v1/check/chains", params={"chain": "x" * 300}).status_code == 400


def test_checks_need_an_inventory(db: str) -> None:
    c = TestClient(create_app(db, "none", token=TOKEN, rate_limit=None), headers=auth(),
                   raise_server_exceptions=False)
    r = c.get("/api/v1/check/chains", params=W)
    assert r.status_code == 400 and "inventory" in r.json()["error"]
    r = c.get("/api/v1/inventory")
    assert r.status_code == 404 and "no inventory" in r.json()["error"]
    # zero-config: the trace still works, with raw identities
    r = c.get("/api/v1/trace", params={**FLOW, **W})
    assert r.status_code == 200
    devices = {h["device"] for s in r.json()["paths"][0]["segments"] for h in s["hops"]}
    assert devices == {"10.255.0.12", "10.255.0.2", "10.255.0.11"}
    topo = c.get("/api/v1/topology", params={"at": UNTIL}).json()
    assert {n["id"] for n in topo["nodes"] if n["kind"] == "device"} == {
        "dev:10.255.0.12", "dev:10.255.0.2", "dev:10.255.0.11"}
    assert {e["id"] for e in topo["edges"]} == {"tun:172.16.1.11|172.16.2.14",
                                                "tun:172.16.2.14|172.16.2.20"}


# --- inventory, topology, records, store, collector ----------------------------------------------


def test_inventory_at_a_time(client: TestClient) -> None:
    before = client.get("/api/v1/inventory", params={"at": "2026-11-25T10:01:00Z",
                                                     "kind": "endpoints"}).json()
    after = client.get("/api/v1/inventory", params={"at": "2026-11-25T10:06:00Z",
                                                    "kind": "endpoint"}).json()
    host = {e["name"]: e.get("host") for e in before["endpoints"]}
    assert host["web-1"] == "hv-1"
    assert {e["name"]: e.get("host") for e in after["endpoints"]}["web-1"] == "hv-3"
    assert set(before) == {"version", "metadata", "endpoints"}
    assert client.get("/api/v1/inventory", params={"kind": "switches"}).status_code == 400


def test_inventory_diff(client: TestClient) -> None:
    r = client.get("/api/v1/inventory/diff", params={"t1": "2026-11-25T10:00:00Z",
                                                     "t2": "2026-11-25T11:00:00Z"})
    got = r.json()
    assert got["from"] == "2026-11-25T10:00:00Z"
    moved = [c for c in got["changes"] if c["key"] == "web-1"]
    assert moved[0]["fields"] == [{"field": "host", "old": "hv-1", "new": "hv-3"}]
    assert client.get("/api/v1/inventory/diff", params={"t1": "x", "t2": "now"}
                      ).status_code == 400


def test_topology(client: TestClient) -> None:
    r = client.get("/api/v1/topology", params={"at": UNTIL, "window": 600})
    assert r.status_code == 200
    t = r.json()
    nodes = {n["id"]: n for n in t["nodes"]}
    edges = {e["id"]: e for e in t["edges"]}
    assert nodes["dev:spine-1"]["role"] == "spine"
    assert nodes["dev:ovs-hv-4"]["parent"] == "host:hv-4"
    assert nodes["vnf:fw-1"]["parent"] == "host:hv-4"
    assert nodes["ep:web-1"]["parent"] == "host:hv-1"  # before the 10:05 migration
    assert "ep:fw-1-in" not in nodes  # VNF ports are drawn as their VNF
    hot = edges["link:leaf-2:eth50--spine-2:eth2"]
    assert hot["util"] == pytest.approx(0.95)
    assert hot["errors_ps"] > 0 and hot["level"] == "critical"
    assert edges["link:leaf-1:eth49--spine-1:eth1"]["level"] == "ok"
    assert edges["link:leaf-2:eth49--spine-1:eth2"]["level"] == "unknown"
    tun = edges["tun:gw-1|hv-4"]
    assert tun["kind"] == "tunnel" and tun["tenants"] == ["acme"]
    assert t["span"]["first"].startswith("2026-11-25T10:01:00")
    # after the migration, web-1 is drawn on hv-3
    later = client.get("/api/v1/topology", params={"at": "2026-11-25T10:06:00Z"}).json()
    assert {n["id"]: n for n in later["nodes"]}["ep:web-1"]["parent"] == "host:hv-3"
    assert client.get("/api/v1/topology", params={"window": 1}).status_code == 400


def test_records_pagination_and_filters(client: TestClient) -> None:
    first = client.get("/api/v1/records", params={**W, "limit": 5}).json()
    assert len(first["records"]) == 5 and first["next_offset"] == 5
    rec = first["records"][0]
    assert rec["inner_src"] == "10.1.0.1" and rec["encap"] == "vxlan"
    assert rec["tunnels"][0]["vni"] == 5001 and rec["ts"].endswith("Z")
    last = client.get("/api/v1/records", params={**W, "limit": 5, "offset": 15}).json()
    assert len(last["records"]) == 4 and last["next_offset"] is None
    every = client.get("/api/v1/records", params={**W, "limit": 100}).json()["records"]
    assert every[:5] == first["records"] and every[15:] == last["records"]
    spine = client.get("/api/v1/records", params={**W, "agent": "10.255.0.2"}).json()
    assert len(spine["records"]) == 4
    assert spine["query"]["agent"] == "10.255.0.2"
    both = client.get("/api/v1/records", params={**W, "inner_src": "10.1.0.5",
                                                 "inner_dst": "10.1.0.1", "both": "true"})
    assert len(both.json()["records"]) == 19
    nd = client.get("/api/v1/records", params={**W, "limit": 3, "format": "ndjson"})
    assert nd.headers["content-type"].startswith("application/x-ndjson")
    lines = nd.text.splitlines()
    assert len(lines) == 3 and json.loads(lines[0]) == rec


def test_store_info(client: TestClient, db: str) -> None:
    got = client.get("/api/v1/store/info").json()
    assert got["backend"] == "embedded" and got["location"] == db
    assert got["info"]["rows"] == 19
    assert got["span"]["samples"] == 19


def test_collector_status(client: TestClient, db: str) -> None:
    got = client.get("/api/v1/collector/status").json()
    assert got["source"] == "none" and got["live"] is False

    class Live:
        def status(self) -> dict[str, Any]:
            return ACCOUNTING

    c = TestClient(create_app(db, str(EXAMPLE), token=TOKEN, rate_limit=None,
                              collector=Live()), headers=auth())
    got = c.get("/api/v1/collector/status").json()
    assert got["source"] == "live" and got["live"] is True
    acc = got["accounting"]
    assert acc["totals"]["datagrams"] == 150 and acc["totals"]["gaps"] == 3
    assert acc["totals"]["socket_drops"] == 2
    assert acc["agents"][0] == {"agent": "10.255.0.1", "datagrams": 100, "samples": 700,
                                "gaps": 3, "sample_gaps": 1, "drops": 4}
    assert acc["events"] == {"sflow_unknown_record": 5}
    metrics = c.get("/metrics").text
    assert 'fabricscope_sflow_datagrams_total{agent="10.255.0.1",sub_agent="0"} 100.0' in \
        metrics
    assert 'fabricscope_sflow_decode_events_total{event="sflow_unknown_record"} 5.0' in metrics
    assert "fabricscope_sflow_socket_drops_total 2.0" in metrics


ACCOUNTING: dict[str, Any] = {
    "datagrams": 150, "samples": 1000, "lost_datagrams": 3, "lost_samples": 1,
    "agent_drops": 4, "events": {"sflow_unknown_record": 5},
    "socket": {"drops": 2, "received": 152},
    "agents": [
        {"agent": "10.255.0.1", "sub_agent": 0, "datagrams": 100, "samples": 700, "lost": 3,
         "lost_samples": 1, "agent_drops": 4, "sources": []},
        {"agent": "10.255.0.2", "sub_agent": 0, "datagrams": 50, "samples": 300, "lost": 0,
         "lost_samples": 0, "agent_drops": 0, "sources": []},
    ],
}


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "message"), [
    ({"src": "10.1.0.1", "dst": "not-an-ip"}, "dst 'not-an-ip' is not an IP address"),
    ({"src": "10.1.0.1", "dst": "10.1.0.5", "since": "yesterday"}, "--since: cannot read"),
    ({"src": "10.1.0.1", "dst": "10.1.0.5", "until": "2026-13-45"}, "--until: cannot read"),
    ({"src": "10.1.0.1", "dst": "10.1.0.5", "since": "now", "until": "-1h"}, "is after"),
    ({"src": "10.1.0.1", "dst": "10.1.0.5", "since": "-99999999999999999999d"}, "range"),
    ({"src": "10.1.0.1", "dst": "10.1.0.5", "until": "0001-01-01T00:00:00Z"}, "range"),
    ({"src": "10.1.0.1", "dst": "10.1.0.5", "dport": 70000}, "dport"),
    ({"src": "10.1.0.1", "dst": "10.1.0.5", "proto": "bogus"}, "--proto 'bogus'"),
    ({"src": "10.1.0.1"}, "dst: Field required"),
])
def test_bad_parameters_are_400_json(client: TestClient, params: dict[str, Any],
                                     message: str) -> None:
    r = client.get("/api/v1/trace", params=params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "detail"}
    assert message in body["error"], body
    assert "Traceback" not in r.text


def test_internal_errors_are_json_without_traceback(db: str) -> None:
    class Broken:
        location = "broken"

        def info(self) -> dict[str, Any]:
            raise RuntimeError("secret internals /etc/passwd")

    c = TestClient(create_app(Broken(), "none", token=TOKEN, rate_limit=None),
                   raise_server_exceptions=False, headers=auth())
    r = c.get("/api/v1/store/info")
    assert r.status_code == 500
    assert r.json() == {"error": "internal error (the server log has the details)",
                        "detail": None}
    # /metrics survives a broken store
    m = c.get("/metrics")
    assert m.status_code == 200 and "fabricscope_metrics_source_up 0.0" in m.text


def test_a_missing_store_is_503(tmp_path: Path) -> None:
    c = TestClient(create_app(str(tmp_path / "nothing"), "none", token=TOKEN, rate_limit=None),
                   raise_server_exceptions=False, headers=auth())
    r = c.get("/api/v1/store/info")
    assert r.status_code == 503
    assert r.json()["error"].startswith("store unavailable: no store at")


def test_rate_limit_429(db: str) -> None:
    app = create_app(db, str(EXAMPLE), token=TOKEN, rate_limit=RateLimit(rate=0.5, burst=3))
    c = TestClient(app, headers=auth())
    codes = [c.get("/health").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    r = c.get("/api/v1/store/info")
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"] == "too many requests: slow down"
    # the limit is per client: unauthenticated guessing is limited too
    assert TestClient(app).get("/api/v1/store/info").status_code == 429


def test_token_bucket_refills() -> None:
    from fabricscope.api.security import TokenBucket

    now = [0.0]
    b = TokenBucket(rate=2.0, burst=2, clock=lambda: now[0], max_keys=2)
    assert b.take("a") == 0 and b.take("a") == 0
    assert b.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert b.take("a") == 0
    assert b.take("b") == 0 and b.take("c") == 0
    assert len(b._b) == 2  # bounded: the least recently seen client was forgotten


# --- metrics --------------------------------------------------------------------------------------


def test_metrics(client: TestClient) -> None:
    client.get("/api/v1/trace", params={**FLOW, **W})
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    m = r.text
    assert 'fabricscope_api_requests_total{code="200",method="GET",route="/api/v1/trace"}' in m
    assert 'fabricscope_api_request_duration_seconds_bucket{le="0.005",route="/api/v1/trace"}' \
        in m
    assert 'fabricscope_query_duration_seconds_count{query="trace"}' in m
    assert 'fabricscope_store_rows{dataset="records"} 19.0' in m
    assert 'fabricscope_store_bytes{dataset="counters"}' in m
    assert "fabricscope_collector_accounting_source" in m


def test_interface_metrics_are_named_and_low_cardinality(db: str,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from datetime import UTC, datetime

    from fabricscope.api import metrics as mod

    real = mod.interface_rows
    monkeypatch.setattr(mod, "INTERFACE_WINDOW", mod.timedelta(minutes=10))
    monkeypatch.setattr("fabricscope.api.app.interface_rows", lambda store, inv: real(
        store, inv, now=datetime(2026, 11, 25, 10, 5, tzinfo=UTC)))
    c = TestClient(create_app(db, str(EXAMPLE), token=TOKEN, rate_limit=None), headers=auth())
    c.get(f"/api/v1/records?src=172.16.2.20&since={SINCE}&until={UNTIL}")
    m = c.get("/metrics").text
    assert ('fabricscope_interface_utilisation_ratio{device="leaf-2",direction="in",'
            'interface="eth50"} 0.95') in m
    assert ('fabricscope_interface_errors_per_second{device="spine-2",direction="in",'
            'interface="eth2"}') in m
    # no tenant or tunnel addresses, no 5-tuples, no URLs with query strings as labels
    for leak in ("10.1.0.", "172.16.", "43512", "since="):
        assert leak not in m


def test_accounting_agents_are_capped() -> None:
    from fabricscope.api.metrics import MAX_AGENTS, capped_accounting

    raw = {"agents": [{"agent": f"10.0.{k // 256}.{k % 256}", "sub_agent": 0,
                       "datagrams": k, "samples": 1, "sources": []}
                      for k in range(MAX_AGENTS + 10)]}
    out = capped_accounting(raw)["agents"]
    assert len(out) == MAX_AGENTS and out[-1]["agent"] == "other"
    assert out[-1]["samples"] == 11
    assert sum(a["datagrams"] for a in out) == sum(range(MAX_AGENTS + 10))


# --- the OpenAPI spec -----------------------------------------------------------------------------


def test_openapi_models_come_from_the_column_table(client: TestClient) -> None:
    from fabricscope.records.ddl import STORED_PACKET_COLUMNS

    spec = client.get("/openapi.json").json()
    record = spec["components"]["schemas"]["Record"]["properties"]
    assert list(record) == [c.name for c in STORED_PACKET_COLUMNS]
    assert record["inner_src"]["description"].startswith("innermost source IP address")
    trace = spec["paths"]["/api/v1/trace"]["get"]
    assert set(trace["responses"]) >= {"200", "400", "401", "404", "429"}
    assert "422" not in trace["responses"]
    assert trace["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/health"]["get"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"

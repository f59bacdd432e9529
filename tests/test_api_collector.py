"""Collector accounting through the API: a real collector (sflow.collector.Collector) runs
in this process, receives sFlow datagrams on 127.0.0.1 (one sequence number missing) and
writes to a store; /api/v1/collector/status and /metrics report its live accounting, and,
once it has stopped, the accounting it wrote with the data."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fabricscope.api import create_app
from test_api_support import TOKEN, auth

AGENT = "192.0.2.1"


def datagrams() -> list[bytes]:
    from fabricscope.sflow import encode as E

    out = []
    for seq in (1, 2, 4):  # 3 never arrives
        out.append(E.datagram(agent=AGENT, seq=seq, uptime_ms=1000 * seq, samples=[
            E.counter_sample(seq=seq, source_id_index=3, records=[
                E.generic_interface_counters(ifindex=3), E.port_name("eth3")])]))
    return out


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from fabricscope.sflow.collector import Collector, CollectorOptions, StoreSink

    db = str(Path(tmp_path_factory.mktemp("col")) / "store")
    col = Collector(CollectorOptions(host="127.0.0.1", port=0, flush_interval=0.1),
                    StoreSink(db))
    port = col.bind()
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(col.run()), daemon=True)
    t.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in datagrams():
            s.sendto(d, ("127.0.0.1", port))
    deadline = time.monotonic() + 180  # the first batch compiles the decoder (numba)
    while col.snapshot()["datagrams"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield col, db
    col.stop()
    t.join(timeout=30)


def test_live_accounting(running: Any) -> None:
    col, db = running
    c = TestClient(create_app(db, "none", token=TOKEN, rate_limit=None, collector=col),
                   headers=auth())
    got = c.get("/api/v1/collector/status").json()
    assert got["source"] == "live" and got["live"] is True
    acc = got["accounting"]
    assert acc["totals"]["datagrams"] == 3 and acc["totals"]["gaps"] == 1
    assert [a["agent"] for a in acc["agents"]] == [AGENT]
    assert acc["agents"][0]["gaps"] == 1
    m = c.get("/metrics").text
    assert f'fabricscope_sflow_datagrams_total{{agent="{AGENT}",sub_agent="0"}} 3.0' in m
    assert f'fabricscope_sflow_datagrams_lost_total{{agent="{AGENT}",sub_agent="0"}} 1.0' in m
    assert 'fabricscope_collector_accounting_source{source="live"} 1.0' in m
    assert "source_id" not in m  # no per-source series in the API's metrics


def test_accounting_written_with_the_data(running: Any) -> None:
    col, db = running
    col.stop()
    deadline = time.monotonic() + 30
    c = TestClient(create_app(db, "none", token=TOKEN, rate_limit=None), headers=auth())
    while time.monotonic() < deadline:
        got = c.get("/api/v1/collector/status").json()
        if got["source"] == "store":
            break
        time.sleep(0.1)
    assert got["source"] == "store" and got["live"] is False
    totals = got["accounting"]["totals"]
    assert totals["datagrams"] == 3 and totals["gaps"] == 1
    assert got["raw"]["collector_runs"] == 1
    m = c.get("/metrics").text
    assert 'fabricscope_collector_accounting_source{source="store"} 1.0' in m


def test_serve_with_an_in_process_collector(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve --collect``: the collector runs beside the API, its live accounting is in
    /api/v1/collector/status, and it stops (writing its accounting) when serve stops."""
    import uvicorn
    from typer.testing import CliRunner

    from fabricscope.cli.app import app as cli
    from fabricscope.cli.app import build_app

    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kw: Any) -> None:  # instead of serving: use the app, return
        col = app.state.ctx.collector
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for d in datagrams():
                s.sendto(d, ("127.0.0.1", col.port))
        c = TestClient(app, headers=auth())
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            got = c.get("/api/v1/collector/status").json()
            if got["accounting"]["totals"].get("datagrams") == 3:
                break
            time.sleep(0.1)
        seen.update(got)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setenv("FABRICSCOPE_TOKEN", TOKEN)
    build_app()
    db = str(tmp_path / "store")
    res = CliRunner().invoke(cli, ["serve", "--db", db, "--inventory", "none",
                                   "--collect", "127.0.0.1:0"])
    assert res.exit_code == 0, res.output
    assert seen["source"] == "live" and seen["accounting"]["totals"]["gaps"] == 1
    after = TestClient(create_app(db, "none", token=TOKEN, rate_limit=None),
                       headers=auth()).get("/api/v1/collector/status").json()
    assert after["source"] == "store" and after["accounting"]["totals"]["datagrams"] == 3

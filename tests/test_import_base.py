"""The importers' runner: names, intervals, snapshots per source, the empty-import guard,
and ``--watch`` stopping cleanly on SIGTERM / SIGINT (a real process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fabricscope.errors import UsageError
from fabricscope.inventory import Host, InventoryHistory, Tenant
from fabricscope.inventory.importers.base import (
    BaseImporter,
    ImportFailed,
    ImportRunner,
    parse_interval,
    unique_names,
)
from fabricscope.inventory.model import Fact
from test_import_support import DATA

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class Fake(BaseImporter):
    def __init__(self, source: str = "fake:one") -> None:
        super().__init__(source)
        self.facts: list[Fact] = []
        self.error: Exception | None = None

    def fetch(self) -> list[Fact]:
        if self.error is not None:
            raise self.error
        return list(self.facts)


def test_unique_names() -> None:
    got = unique_names([("aaaa1111", "web"), ("bbbb2222", "web"), ("cccc3333", ""),
                        ("dddd4444", "db")])
    assert got == {"aaaa1111": "web~aaaa1111", "bbbb2222": "web~bbbb2222",
                   "cccc3333": "cccc3333", "dddd4444": "db"}


def test_parse_interval() -> None:
    assert parse_interval("60s") == timedelta(seconds=60)
    assert parse_interval("5m") == timedelta(minutes=5)
    assert parse_interval("90") == timedelta(seconds=90)
    for bad in ("0.5", "soon", "-1m"):
        with pytest.raises(UsageError):
            parse_interval(bad)


def test_sources_keep_separate_histories(tmp_path: Path) -> None:
    hist = InventoryHistory(tmp_path)
    a, b = Fake("fake:a"), Fake("fake:b")
    a.facts = [Tenant(name="acme"), Host(name="hv-1", tunnel_ips=("172.16.0.1",))]
    b.facts = [Tenant(name="globex")]
    ImportRunner(a, hist).run_once(at=T0)
    ImportRunner(b, hist).run_once(at=T0)
    # b's next import without globex ends globex only; a's facts are untouched
    b.facts = [Tenant(name="initech")]
    out = ImportRunner(b, hist).run_once(at=T0 + timedelta(minutes=1))
    assert out.result is not None
    assert sorted((c.op, c.key) for c in out.result.changes) == [("added", "initech"),
                                                                ("removed", "globex")]
    inv = hist.current()
    assert inv.tenant("acme", T0 + timedelta(hours=1)) is not None
    assert inv.tenant("globex", T0 + timedelta(hours=1)) is None
    assert inv.tenant("globex", T0) is not None  # history is kept
    assert sorted(hist.sources()) == ["fake:a", "fake:b"]


def test_errors_are_one_line_and_record_nothing(tmp_path: Path) -> None:
    hist = InventoryHistory(tmp_path)
    f = Fake()
    f.facts = [Tenant(name="acme")]
    runner = ImportRunner(f, hist)
    runner.run_once(at=T0)
    f.error = RuntimeError("socket closed\nwhile reading")
    out = runner.run_once(at=T0 + timedelta(minutes=1), raise_errors=False)
    assert out.error == "fake:one: RuntimeError: socket closed while reading"
    assert out.lines()[0].endswith("fake:one: import failed: " + out.error)
    with pytest.raises(ImportFailed):
        runner.run_once(at=T0 + timedelta(minutes=2))
    f.error = None
    f.facts = []
    with pytest.raises(ImportFailed, match="returned nothing"):
        runner.run_once(at=T0 + timedelta(minutes=3))
    assert len(hist.snapshots()) == 1
    out = ImportRunner(f, hist, allow_empty=True).run_once(at=T0 + timedelta(minutes=4))
    assert out.result is not None and [c.op for c in out.result.changes] == ["removed"]
    # an inconsistent import (a dangling reference) is refused whole, in one line
    from fabricscope.inventory import Endpoint

    f.facts = [Endpoint(name="web-1", host="nowhere")]
    with pytest.raises(ImportFailed, match="host 'nowhere' is not defined") as exc:
        runner.run_once(at=T0 + timedelta(minutes=5))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_watch_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    env = {**os.environ, "FABRICSCOPE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabricscope", "inventory", "import", "lldp", "--file",
         str(DATA / "lldp" / "leaf-2.json"), "--watch", "1s", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # two rounds
        time.sleep(0.2)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    first, second = (json.loads(line) for line in lines)
    assert first["first"] and first["counts"]["links"] == 3
    assert second["unchanged"]
    assert "Traceback" not in err
    assert len(InventoryHistory(tmp_path / "home" / "inventory").snapshots()) == 1

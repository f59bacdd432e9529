"""``fabricscope inventory ...`` through the real app (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fabricscope.cli.app import build_app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fabric.yaml"


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    app = build_app()
    runner = CliRunner(env={"FABRICSCOPE_HOME": str(tmp_path / "home"), "COLUMNS": "200"})

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, ["inventory", *args], catch_exceptions=False)

    return invoke


def test_validate_the_example(run) -> None:  # type: ignore[no-untyped-def]
    r = run("validate", str(EXAMPLE))
    assert r.exit_code == 0, r.output
    assert f"{EXAMPLE}: ok (2 tenants, 3 networks, 5 hosts, 8 devices, 5 links, 12 endpoints, 2 vnfs, 2 chains)" in r.stdout


def test_validate_lists_every_problem_and_exits_2(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoints:\n  - name: a\n    ips: [not-an-ip]\n    hots: x\n")
    r = run("validate", str(bad))
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [
        f"{bad}:3: endpoints[0].ips[0]: 'not-an-ip' is not a valid IP address",
        f"{bad}:4: endpoints[0].hots: unknown field 'hots' (did you mean 'host'?)",
        f"fabricscope: error: {bad}: 2 problems",
    ]
    r = run("validate", str(bad), "--json")
    assert r.exit_code == 2
    data = json.loads(r.stdout)
    assert data["ok"] is False
    assert [(p["line"], p["field"]) for p in data["problems"]] == [
        (3, "endpoints[0].ips[0]"), (4, "endpoints[0].hots")]


def test_load_an_invalid_file_is_one_line_and_exit_2(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants:\n  - name: acme\nendpoints:\n  - name: a\n    tenant: acme\n    host: hv-9\n")
    r = run("load", str(bad))
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr == f"fabricscope: error: {bad}:6: endpoints[0].host: host 'hv-9' is not defined\n"
    # syntax errors too
    bad.write_text("tenants: [\n")
    r = run("load", str(bad))
    assert r.exit_code == 2
    assert r.stderr.startswith(f"fabricscope: error: {bad}:")
    assert len(r.stderr.splitlines()) == 1
    # a missing file
    r = run("load", str(tmp_path / "missing.yaml"))
    assert r.exit_code == 2
    assert "missing.yaml" in r.stderr and "no such file" in r.stderr


def test_load_show_diff_history(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "inv"
    r = run("load", str(EXAMPLE), "--dir", str(d), "--at", "2026-11-25T08:00:00Z")
    assert r.exit_code == 0, r.output
    assert "recorded snapshot 1 at 2026-11-25T08:00:00Z" in r.stdout
    assert "first load of file:" in r.stdout

    r = run("load", str(EXAMPLE), "--dir", str(d), "--at", "2026-11-25T08:30:00Z")
    assert r.exit_code == 0
    assert "unchanged since snapshot 1" in r.stdout

    r = run("show", "--dir", str(d), "--at", "2026-11-25T10:00:00Z", "--kind", "endpoint")
    assert r.exit_code == 0, r.output
    assert "endpoints (9) at 2026-11-25T10:00:00Z" in r.stdout
    web1 = next(line for line in r.stdout.splitlines() if "web-1" in line)
    assert "hv-1" in web1 and "hv-3" not in web1

    r = run("show", "--dir", str(d), "--at", "2026-11-25T10:07:00Z", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    web1s = [e for e in doc["endpoints"] if e["name"] == "web-1"]
    assert len(web1s) == 1 and web1s[0]["host"] == "hv-3"
    assert web1s[0]["valid_from"] == "2026-11-25T10:05:00Z"
    assert doc["metadata"]["at"] == "2026-11-25T10:07:00Z"
    assert [c["groups"] for c in doc["chains"]] == [[{"name": "firewalls", "vnfs": ["fw-1"]}]]

    r = run("show", "--dir", str(d), "--all", "--kind", "endpoints", "--json")
    assert len([e for e in json.loads(r.stdout)["endpoints"] if e["name"] == "web-1"]) == 2

    r = run("diff", "2026-11-25T10:00:00Z", "2026-11-25T10:10:00Z", "--dir", str(d))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["2026-11-25T10:05:00Z  ~ endpoint web-1: host: hv-1 -> hv-3"]

    r = run("diff", "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", "--dir", str(d), "--json")
    data = json.loads(r.stdout)
    assert {(c["op"], c["key"], c["at"]) for c in data["changes"]} >= {
        ("changed", "web-1", "2026-11-25T10:05:00Z"),
        ("added", "ids-1", "2026-11-25T10:30:00Z"),
        ("changed", "acme-web-https", "2026-11-25T10:30:00Z"),
    }

    # change the file: web-2 gets another IP
    changed = tmp_path / "fabric.yaml"
    changed.write_text(EXAMPLE.read_text().replace("ips: [10.1.0.6]}\n  - {name: db-1",
                                                   "ips: [10.1.0.66]}\n  - {name: db-1"))
    r = run("load", str(changed), "--dir", str(d), "--at", "2026-11-25T12:00:00Z",
            "--source", f"file:{EXAMPLE.resolve()}")
    assert r.exit_code == 0, r.output
    assert "0 added, 1 changed, 0 removed" in r.stdout
    assert "~ endpoint web-2: ips: [10.1.0.6] -> [10.1.0.66]" in r.stdout
    r = run("diff", "2026-11-25T11:00:00Z", "2026-11-25T13:00:00Z", "--dir", str(d))
    assert r.stdout.splitlines() == [
        "2026-11-25T12:00:00Z  ~ endpoint web-2: ips: [10.1.0.6] -> [10.1.0.66]"]

    r = run("history", "--dir", str(d))
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and "+0 ~1 -0" in lines[1]
    assert len(json.loads(run("history", "--dir", str(d), "--json").stdout)) == 2


def test_show_uses_fabricscope_home_by_default(run) -> None:  # type: ignore[no-untyped-def]
    r = run("show")
    assert r.exit_code == 1
    assert "no inventory loaded" in r.stderr
    assert run("load", str(EXAMPLE)).exit_code == 0
    r = run("show", "--kind", "hosts,devices", "--at", "2026-11-25T10:00:00Z")
    assert r.exit_code == 0
    assert "hosts (5)" in r.stdout and "devices (8)" in r.stdout and "endpoints" not in r.stdout


def test_show_a_file_without_loading_it(run) -> None:  # type: ignore[no-untyped-def]
    r = run("show", "--file", str(EXAMPLE), "--at", "2026-11-25T10:31:00Z", "--kind", "chains")
    assert r.exit_code == 0, r.output
    assert "fw-1 -> ids-1" in r.stdout
    assert "IPv4 tcp * -> 10.1.0.0/24:443 from acme-gw" in r.stdout


def test_usage_errors_exit_2(run) -> None:  # type: ignore[no-untyped-def]
    r = run("show", "--file", str(EXAMPLE), "--at", "yesterday-ish")
    assert r.exit_code == 2
    assert r.stderr.startswith("fabricscope: error: --at: cannot read 'yesterday-ish'")
    r = run("show", "--file", str(EXAMPLE), "--kind", "vms")
    assert r.exit_code == 2
    assert "unknown kind 'vms'" in r.stderr
    r = run("show", "--file", str(EXAMPLE), "--all", "--at", "now")
    assert r.exit_code == 2


def test_show_json_round_trips_as_an_inventory_file(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("show", "--file", str(EXAMPLE), "--all", "--json")
    out = tmp_path / "dump.json"
    out.write_text(r.stdout)
    r = run("validate", str(out))
    assert r.exit_code == 0, r.output

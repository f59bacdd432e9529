"""`fabricscope demo` end to end: it runs, and what it prints tells the story truthfully."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    d = tmp_path_factory.mktemp("demo") / "out"
    p = subprocess.run([sys.executable, "-m", "fabricscope", "demo", "--dir", str(d)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    return p.stdout, d


def test_demo_walks_through_every_step(demo: tuple[str, Path]) -> None:
    out, d = demo
    for n in range(1, 7):
        assert f"{n}/6" in out
    assert (d / "store").is_dir() and (d / "sim" / "inventory.yaml").is_file()


def test_demo_reports_the_sflow_loss_it_simulated(demo: tuple[str, Path]) -> None:
    out, d = demo
    truth = json.loads((d / "sim" / "truth.json").read_text())
    ev = next(e for e in truth["events"] if e["type"] == "sflow-outage")
    assert ev["datagrams_lost"] > 0
    line = f"{ev['device']} ({ev['agent']}): {ev['datagrams_lost']} datagram(s) missing"
    assert line in out, out.split("2/6")[1][:600]


def test_demo_trace_shows_firewall_migration_and_ids(demo: tuple[str, Path]) -> None:
    out, _ = demo
    trace = out.split("4/6")[1].split("5/6")[0]
    paths = re.findall(r"path \d+ \(forward.*?via ([^:]+):", trace)
    # before the migration, after it, and after the IDS joined the chain
    assert sorted(paths) == sorted(["acme-fw-1", "acme-fw-1", "acme-fw-1 -> acme-ids-1"])
    assert "hv-9" in trace and "hv-3" in trace  # the VM's host before and after
    # the erroring link is flagged on the path that crossed it
    assert re.search(r"spine-1 eth2 -> eth3 .*critical", trace)


def test_demo_impact_names_both_tenants_of_the_bad_link(demo: tuple[str, Path]) -> None:
    out, _ = demo
    impact = out.split("5/6")[1].split("6/6")[0]
    assert "impact spine-1 eth3" in impact
    assert "acme" in impact and "globex" in impact


def test_demo_matrix_and_chain_check(demo: tuple[str, Path]) -> None:
    out, _ = demo
    matrix = out.split("3/6")[1].split("4/6")[0]
    assert re.search(r"acme\s+│\s+acme", matrix) and re.search(r"globex\s+│\s+globex", matrix)
    assert "flow path(s) checked" in out.split("6/6")[1]

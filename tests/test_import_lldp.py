"""LLDP importer: the json0 parser on recorded lldpcli output, the links it builds against
what other sources know, and Debian's lldpd running in two network namespaces created by
the test (root only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fabricscope.cli.app import build_app
from fabricscope.errors import InputError
from fabricscope.inventory import Device, Host, HostNic, Interface, InventoryHistory, Link
from fabricscope.inventory.fileformat import document_from_facts
from fabricscope.inventory.importers.base import ImportRunner
from fabricscope.inventory.importers.lldp import LldpImporter, build_facts, parse_neighbors
from fabricscope.inventory.index import Inventory
from test_import_support import DATA

ROOT = DATA / "lldp"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _links(facts: list[Any]) -> list[str]:
    return sorted(f.key for f in facts if isinstance(f, Link))


def test_parse_real_lldpd_output() -> None:
    (n,) = parse_neighbors(json.loads((ROOT / "leaf-1.json").read_text()), "leaf-1.json")
    # Linux lldpd: the port id is the MAC, the interface name is the port description
    assert (n["local"], n["system"], n["port"], n["port_id_type"]) == ("vA", "spine-1", "vB",
                                                                       "mac")
    assert n["chassis_id"] == "2a:33:73:9c:93:29"


def test_parse_switch_output_prefers_ifname_port_ids() -> None:
    ns = parse_neighbors(json.loads((ROOT / "leaf-2.json").read_text()), "leaf-2.json")
    assert [(n["local"], n["system"], n["port"]) for n in ns] == [
        ("swp51", "spine-1", "swp2"), ("swp52", "spine-2", "swp2"), ("swp1", "hv-3", "eno1"),
        ("swp1", "vm-debug", "ens3")]
    assert ns[0]["mgmt_ip"] == "10.0.0.1"


def test_not_json0_is_an_input_error() -> None:
    with pytest.raises(InputError, match="json0"):
        parse_neighbors({"lldp": {"interface": {"eth0": {}}}}, "x.json")  # -f json


def test_links_use_known_hosts_and_devices() -> None:
    inputs = [("leaf-2", parse_neighbors(json.loads((ROOT / "leaf-2.json").read_text()),
                                         "leaf-2.json"))]
    known = Inventory([
        Host(name="hv-3", nics=(HostNic(name="eno1"),), source="file:/x.yaml"),
        Device(name="spine-2", agent="10.0.0.2", source="file:/x.yaml",
               interfaces=(Interface(name="swp1", ifindex=1),)),
    ])
    notes: list[str] = []
    facts = build_facts(inputs, known, note=notes.append)
    assert _links(facts) == ["hv-3:eno1--leaf-2:swp1", "leaf-2:swp51--spine-1:swp2"]
    host_link = next(f for f in facts if isinstance(f, Link) and f.key.startswith("hv-3"))
    assert {(e.host, e.nic) for e in (host_link.a, host_link.b)} >= {("hv-3", "eno1")}
    # spine-2 is declared elsewhere with an interface list without swp2: left out, noted;
    # devices nobody declares are added; spine-2 and hv-3 are not
    assert sorted(f.name for f in facts if isinstance(f, Device)) == ["leaf-2", "spine-1"]
    assert any("spine-2" in n and "no interface 'swp2'" in n for n in notes)
    assert any("several neighbours" in n and "vm-debug" in n for n in notes)


def test_both_ends_of_a_cable_make_one_link(tmp_path: Path) -> None:
    leaf = json.loads((ROOT / "leaf-1.json").read_text())
    spine = json.loads(json.dumps(leaf).replace('"vA"', '"vB-tmp"').replace(
        '"vB"', '"vA"').replace('"vB-tmp"', '"vB"').replace('"spine-1"', '"leaf-1"'))
    (tmp_path / "leaf-1.json").write_text(json.dumps(leaf))
    (tmp_path / "spine-1.json").write_text(json.dumps(spine))
    imp = LldpImporter(files=[tmp_path / "leaf-1.json", tmp_path / "spine-1.json"])
    assert imp.source == "lldp:leaf-1,spine-1"
    facts = imp.fetch()
    assert _links(facts) == ["leaf-1:vA--spine-1:vB"]
    # and it is a valid inventory document on its own
    hist = InventoryHistory(tmp_path / "inv")
    assert hist.record(document_from_facts(facts), source=imp.source).first


def test_history_of_links(tmp_path: Path) -> None:
    f = tmp_path / "leaf-2.json"
    data = json.loads((ROOT / "leaf-2.json").read_text())
    f.write_text(json.dumps(data))
    hist = InventoryHistory(tmp_path / "inv")
    runner = ImportRunner(LldpImporter(files=[f]), hist)
    first = runner.run_once(at=T0)
    assert first.ok and first.counts["links"] == 3
    # swp52's neighbour goes away (cable pulled)
    data["lldp"][0]["interface"] = [i for i in data["lldp"][0]["interface"]
                                    if i["name"] != "swp52"]
    f.write_text(json.dumps(data))
    t1 = T0 + timedelta(minutes=10)
    out = runner.run_once(at=t1)
    assert out.result is not None
    assert [(c.op, c.kind, c.key) for c in out.result.changes] == [
        ("removed", "devices", "spine-2"), ("removed", "links", "leaf-2:swp52--spine-2:swp2")]
    inv = hist.current()
    assert inv.link_of("leaf-2", "swp52", T0) is not None
    assert inv.link_of("leaf-2", "swp52", t1) is None


def test_cli_import_lldp_files(tmp_path: Path) -> None:
    app = build_app()
    runner = CliRunner(env={"FABRICSCOPE_HOME": str(tmp_path / "home")})
    r = runner.invoke(app, ["inventory", "import", "lldp", "--file", str(ROOT / "leaf-1.json"),
                            "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["source"] == "lldp:leaf-1" and out["counts"]["links"] == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = runner.invoke(app, ["inventory", "import", "lldp", "--file", str(bad)],
                      catch_exceptions=False)
    assert r.exit_code == 2 and str(bad) in r.stderr and "not JSON" in r.stderr
    r = runner.invoke(app, ["inventory", "import", "lldp", "--file", str(bad), "--run"],
                      catch_exceptions=False)
    assert r.exit_code == 2 and "do not go together" in r.stderr


# ---------------------------------------------------------------- real lldpd in netns


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def lldp_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth, lldpd in each (own control socket, 1 s interval),
    system names leaf-9 and spine-9. Yields the two control sockets."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    if shutil.which("lldpd") is None or shutil.which("lldpcli") is None:
        pytest.skip("lldpd is not installed (apt-get install lldpd)")
    tag = f"{os.getpid() % 100000}"
    ns = (f"fsla{tag}", f"fslb{tag}")
    ifs = (f"fsla{tag}", f"fslb{tag}")
    procs: list[subprocess.Popen[bytes]] = []
    # lldpd drops privileges to _lldpd, which must reach its socket: not under tmp_path (0700)
    sockdir = Path(tempfile.mkdtemp(prefix="fabricscope-lldp-"))
    sockdir.chmod(0o755)
    socks = (str(sockdir / "a.sock"), str(sockdir / "b.sock"))
    try:
        for n in ns:
            _sh("ip", "netns", "add", n)
        _sh("ip", "link", "add", ifs[0], "type", "veth", "peer", "name", ifs[1])
        for n, i in zip(ns, ifs, strict=True):
            _sh("ip", "link", "set", i, "netns", n)
            _sh("ip", "-n", n, "link", "set", i, "up")
        for n, i, s in zip(ns, ifs, socks, strict=True):
            procs.append(subprocess.Popen(["ip", "netns", "exec", n, "lldpd", "-d", "-u", s,
                                           "-I", i], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        for s, name in zip(socks, ("leaf-9", "spine-9"), strict=True):
            end = time.monotonic() + 10
            while subprocess.run(["lldpcli", "-u", s, "configure", "system", "hostname",
                                  name], capture_output=True).returncode != 0:
                if time.monotonic() > end:
                    pytest.fail(f"lldpd did not open {s}")
                time.sleep(0.1)
            _sh("lldpcli", "-u", s, "configure", "lldp", "tx-interval", "1")
        yield socks
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        for n in ns:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        shutil.rmtree(sockdir, ignore_errors=True)


def test_real_lldpd_neighbours_become_a_link(lldp_pair: tuple[str, str],
                                             tmp_path: Path) -> None:
    a_sock, _ = lldp_pair
    tag = f"{os.getpid() % 100000}"
    imp = LldpImporter(socket=a_sock)
    want = f"fsla{tag}"
    facts: list[Any] = []
    end = time.monotonic() + 20
    while time.monotonic() < end:  # wait for the neighbour, with its new name
        facts = imp.fetch()
        if [f"leaf-9:{want}--spine-9:fslb{tag}"] == _links(facts):
            break
        time.sleep(0.5)
    assert _links(facts) == [f"leaf-9:{want}--spine-9:fslb{tag}"], facts
    assert imp.source == "lldp:local"
    r = CliRunner(env={"FABRICSCOPE_HOME": str(tmp_path / "home")}).invoke(
        build_app(), ["inventory", "import", "lldp", "--run", "--socket", a_sock,
                      "--name", "leaf-9"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "lldp:leaf-9: snapshot 1: first import (2 devices, 1 links)" in r.stdout

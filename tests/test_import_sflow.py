"""sFlow interface-name importer: port names (counter record 0:1005) by agent and ifIndex,
from a capture decoded by FileDecoder and from a store's counters; optional SNMP IF-MIB
walk (pysnmp + Debian's snmpd on 127.0.0.1, skipped when either is missing)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fabricscope.cli.app import build_app
from fabricscope.inventory import Device, Interface, InventoryHistory
from fabricscope.inventory.fileformat import document_from_facts
from fabricscope.inventory.importers.base import ImportFailed, ImportRunner
from fabricscope.inventory.importers.sflow import SflowNamesImporter, build_facts
from fabricscope.inventory.index import Inventory

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _capture(path: Path, agents: dict[str, list[tuple[int, str, int]]],
             ts: float | None = None) -> Path:
    """A pcap of sFlow datagrams, one per agent, each with one counter sample per port
    (generic interface counters with speed, and the port name record)."""
    scapy = pytest.importorskip("scapy.all")
    from fabricscope.sflow import encode as E

    pkts = []
    for seq, (agent, ports) in enumerate(agents.items(), 1):
        samples = [E.counter_sample(seq=i, source_id_index=ifx, records=[
            E.generic_interface_counters(ifindex=ifx, speed=speed), E.port_name(name)])
            for i, (ifx, name, speed) in enumerate(ports, 1)]
        d = E.datagram(agent=agent, seq=seq, uptime_ms=1000, samples=samples)
        p = (scapy.Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02") / scapy.IP(src=agent, dst="192.0.2.250")
             / scapy.UDP(sport=6343, dport=6343) / scapy.Raw(d))
        p.time = ts if ts is not None else time.time()
        pkts.append(p)
    scapy.wrpcap(str(path), pkts)
    return path


AGENTS = {
    "10.0.0.11": [(1, "swp1", 25 * 10**9), (51, "swp51", 100 * 10**9),
                  (52, "swp52", 100 * 10**9)],
    "10.0.0.99": [(7, "Ethernet7", 10 * 10**9)],
}


def _known() -> Inventory:
    return Inventory([Device(name="leaf-1", agent="10.0.0.11", role="leaf", source="file:/f",
                             interfaces=(Interface(name="swp1", ifindex=1),
                                         Interface(name="uplink-a"),
                                         Interface(name="swp51"),))])


def test_names_from_a_capture(tmp_path: Path) -> None:
    pcap = _capture(tmp_path / "fabric.pcap", AGENTS)
    imp = SflowNamesImporter(captures=[pcap])
    assert imp.source == "sflow:fabric"
    imp.known = _known()
    devs = {d.name: d for d in imp.fetch() if isinstance(d, Device)}
    leaf = devs["leaf-1"]
    # declared facts kept (role, names); speed filled; ifIndex filled for swp51; swp52 added
    assert leaf.role == "leaf" and leaf.agent == "10.0.0.11"
    assert [(i.name, i.ifindex, i.speed) for i in leaf.interfaces] == [
        ("swp1", 1, 25 * 10**9), ("uplink-a", None, None), ("swp51", 51, 100 * 10**9),
        ("swp52", 52, 100 * 10**9)]
    # an agent nobody declares: the learner's name for it
    other = devs["agent-10.0.0.99"]
    assert (other.role, other.agent, [(i.name, i.ifindex) for i in other.interfaces]) == (
        "other", "10.0.0.99", [("Ethernet7", 7)])


def test_declared_names_win_and_names_accumulate() -> None:
    notes: list[str] = []
    facts = build_facts({("10.0.0.11", 1): ("Ethernet1", None)}, _known(), note=notes.append)
    assert facts == []  # nothing to add to the declared device
    assert notes and "ifIndex 1 is 'swp1'" in notes[0] and "'Ethernet1'" in notes[0]
    prev = build_facts({("10.0.0.99", 7): ("Ethernet7", None)})
    # the next window has no record for ifIndex 7 (port down): the name stays
    again = build_facts({("10.0.0.99", 8): ("Ethernet8", None)}, None, prev)
    assert [(i.name, i.ifindex) for i in again[0].interfaces] == [("Ethernet7", 7),
                                                                 ("Ethernet8", 8)]


def test_runner_history_with_a_declared_file(tmp_path: Path) -> None:
    hist = InventoryHistory(tmp_path / "inv")
    hist.record(document_from_facts(list(_known())), source="file:/fabric.yaml",
                at=T0 - timedelta(hours=1))
    pcap = _capture(tmp_path / "a.pcap", AGENTS)
    runner = ImportRunner(SflowNamesImporter(captures=[pcap], name="lab"), hist)
    out = runner.run_once(at=T0)
    assert out.ok and out.result is not None
    inv = hist.current()
    assert inv.interface("10.0.0.11", 52, T0) is not None
    assert inv.interface("10.0.0.11", 52, T0).interface.name == "swp52"  # type: ignore[union-attr]
    assert inv.device("leaf-1", T0).role == "leaf"  # type: ignore[union-attr]
    # the first snapshot of a source reaches back (open start): older telemetry gets names
    before = inv.interface("10.0.0.11", 52, T0 - timedelta(minutes=30))
    assert before is not None and before.device.role == "leaf"
    # the next capture lacks 10.0.0.99 and swp52: nothing is lost
    pcap2 = _capture(tmp_path / "a.pcap", {"10.0.0.11": [(1, "swp1", 25 * 10**9)]})
    assert pcap2 == pcap
    again = runner.run_once(at=T0 + timedelta(minutes=5))
    assert again.result is not None and again.result.unchanged


def test_cli_from_a_store(tmp_path: Path) -> None:
    pcap = _capture(tmp_path / "fabric.pcap", AGENTS)
    app = build_app()
    runner = CliRunner(env={"FABRICSCOPE_HOME": str(tmp_path / "home")})
    db = str(tmp_path / "store")
    r = runner.invoke(app, ["ingest", str(pcap), "--db", db], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["inventory", "import", "sflow", "--db", db, "--since", "-1d",
                            "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["source"] == f"sflow:{db}" and out["counts"]["devices"] == 2
    r = runner.invoke(app, ["inventory", "show", "--kind", "devices", "--json"],
                      catch_exceptions=False)
    devs = {d["name"]: d for d in json.loads(r.stdout)["devices"]}
    assert [i["name"] for i in devs["agent-10.0.0.11"]["interfaces"]] == ["swp1", "swp51",
                                                                         "swp52"]
    r = runner.invoke(app, ["inventory", "import", "sflow", "--capture",
                            str(tmp_path / "nope.pcap")], catch_exceptions=False)
    assert r.exit_code == 2 and "nope.pcap" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- SNMP (optional)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_snmp_ifname_walk(tmp_path: Path) -> None:
    pytest.importorskip("pysnmp", reason="pysnmp is not installed (optional)")
    snmpd = shutil.which("snmpd")
    if snmpd is None:
        pytest.skip("snmpd is not installed (apt-get install snmpd)")
    port = _free_udp_port()
    d = Path(tempfile.mkdtemp(prefix="fabricscope-snmp-"))
    conf = d / "snmpd.conf"
    conf.write_text("rocommunity fabtest 127.0.0.1\n")  # listens where argv says
    proc: subprocess.Popen[Any] = subprocess.Popen(
        [snmpd, "-f", "-Lo", "-C", "-c", str(conf), "-p", str(d / "pid"),
         f"udp:127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        imp = SflowNamesImporter(snmp=[f"127.0.0.1:{port}"], community="fabtest", timeout=1)
        facts: list[Any] = []
        for _ in range(10):  # snmpd takes a moment to open its port
            time.sleep(0.5)
            try:
                facts = imp.fetch()
                break
            except ImportFailed:
                assert proc.poll() is None, "snmpd exited"
        (dev,) = facts
        assert isinstance(dev, Device) and dev.agent == "127.0.0.1"
        names = {i.name for i in dev.interfaces}
        assert "lo" in names  # the loopback interface of this machine, by its ifIndex
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(d, ignore_errors=True)

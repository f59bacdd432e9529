"""OVN importer against a real ovsdb-server (NB and SB databases created from Debian's
ovn-central schemas) with a real ovn-northd filling the SB datapath and port bindings, all
started by the test in a temporary directory (unix socket and 127.0.0.1 TCP only)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("ovsdbapp", reason="ovsdbapp is not installed (the import extra)")

from fabricscope.cli.app import build_app
from fabricscope.inventory import Endpoint, Host, InventoryHistory, Network
from fabricscope.inventory.importers.base import ImportFailed, ImportRunner
from fabricscope.inventory.importers.ovn import OvnImporter, endpoint_by_port_key

SCHEMAS = Path("/usr/share/ovn")
TOOLS = ("ovsdb-server", "ovsdb-tool", "ovn-nbctl", "ovn-sbctl", "ovn-northd")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

missing = [t for t in TOOLS if shutil.which(t) is None]
if missing or not (SCHEMAS / "ovn-nb.ovsschema").is_file():
    pytest.skip(f"OVN is not installed ({', '.join(missing) or 'no schemas in /usr/share/ovn'}"
                "; apt-get install ovn-central openvswitch-common)", allow_module_level=True)


class Ovn:
    """ovsdb-server for NB (unix socket), ovsdb-server for SB (unix + TCP on 127.0.0.1),
    ovn-northd between them."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.procs: list[subprocess.Popen[bytes]] = []
        for db, schema in (("nb", "ovn-nb"), ("sb", "ovn-sb")):
            subprocess.run(["ovsdb-tool", "create", str(d / f"{db}.db"),
                            str(SCHEMAS / f"{schema}.ovsschema")], check=True)
        self.nb_sock = d / "nb.sock"
        self.sb_sock = d / "sb.sock"
        self._server("nb", [f"--remote=punix:{self.nb_sock}"])
        self._server("sb", [f"--remote=punix:{self.sb_sock}", "--remote=ptcp:0:127.0.0.1"])
        self.sb_port = self._listening_port(d / "sb.log")
        self._daemon("northd", ["ovn-northd", f"--ovnnb-db=unix:{self.nb_sock}",
                                f"--ovnsb-db=unix:{self.sb_sock}"])

    def _daemon(self, name: str, argv: list[str]) -> None:
        log = self.d / f"{name}.log"
        self.procs.append(subprocess.Popen(
            [*argv, "--no-chdir", f"--log-file={log}", f"--unixctl={self.d / name}.ctl",
             f"--pidfile={self.d / name}.pid"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def _server(self, db: str, remotes: list[str]) -> None:
        self._daemon(db, ["ovsdb-server", *remotes, str(self.d / f"{db}.db")])
        sock = self.nb_sock if db == "nb" else self.sb_sock
        _wait(lambda: sock.exists(), f"ovsdb-server {db} socket")

    def _listening_port(self, log: Path) -> int:
        found: list[int] = []

        def ready() -> bool:
            m = re.search(r"127\.0\.0\.1: listening on port (\d+)",
                          log.read_text() if log.exists() else "")
            if m:
                found.append(int(m.group(1)))
            return bool(m)

        _wait(ready, "the SB TCP port")
        return found[0]

    @property
    def nb(self) -> str:
        return f"unix:{self.nb_sock}"

    @property
    def sb_tcp(self) -> str:
        return f"tcp:127.0.0.1:{self.sb_port}"

    def nbctl(self, *args: str) -> str:
        return subprocess.run(["ovn-nbctl", f"--db={self.nb}", *args], check=True,
                              capture_output=True, text=True).stdout

    def sbctl(self, *args: str) -> str:
        return subprocess.run(["ovn-sbctl", f"--db=unix:{self.sb_sock}", *args], check=True,
                              capture_output=True, text=True).stdout

    def wait_bindings(self, *ports: str) -> None:
        _wait(lambda: all(p in self.sbctl("--columns=logical_port", "list", "Port_Binding")
                          for p in ports), f"port bindings of {ports}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _wait(cond: Any, what: str, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def ovn(tmp_path: Path) -> Iterator[Ovn]:
    o = Ovn(tmp_path)
    try:
        o.nbctl("ls-add", "acme-web", "--", "set", "Logical_Switch", "acme-web",
                "other_config:subnet=10.1.0.0/24")
        o.nbctl("lsp-add", "acme-web", "web-1", "--", "lsp-set-addresses", "web-1",
                "fa:16:3e:00:01:05 10.1.0.5")
        o.nbctl("lsp-add", "acme-web", "web-2", "--", "lsp-set-addresses", "web-2",
                "fa:16:3e:00:01:06 10.1.0.6 fd00::6")
        o.nbctl("lsp-add", "acme-web", "dyn", "--", "lsp-set-addresses", "dyn", "dynamic")
        o.nbctl("lsp-add", "acme-web", "ln-web", "--", "lsp-set-type", "ln-web", "localnet",
                "--", "lsp-set-addresses", "ln-web", "unknown")
        o.nbctl("ls-add", "acme-db")
        o.nbctl("lsp-add", "acme-db", "db-1", "--", "lsp-set-addresses", "db-1",
                "fa:16:3e:00:02:09 10.2.0.9")
        o.nbctl("lr-add", "r1")
        o.nbctl("lrp-add", "r1", "r1-web", "00:00:00:00:ff:01", "10.1.0.1/24")
        o.nbctl("lsp-add", "acme-web", "web-r1", "--", "lsp-set-type", "web-r1", "router",
                "--", "lsp-set-addresses", "web-r1", "router", "--", "lsp-set-options",
                "web-r1", "router-port=r1-web")
        o.sbctl("chassis-add", "3f1c2b9e-hv1", "geneve", "172.16.1.11")
        o.sbctl("chassis-add", "7a8d0e4c-hv2", "geneve", "172.16.1.12")
        o.sbctl("set", "Chassis", "3f1c2b9e-hv1", "hostname=hv-1")
        o.sbctl("set", "Chassis", "7a8d0e4c-hv2", "hostname=hv-2")
        o.wait_bindings("web-1", "web-2", "db-1", "web-r1")
        o.sbctl("lsp-bind", "web-1", "3f1c2b9e-hv1")
        o.sbctl("lsp-bind", "web-2", "7a8d0e4c-hv2")
        o.sbctl("lsp-bind", "db-1", "7a8d0e4c-hv2")
        yield o
    finally:
        o.stop()


def _by(facts: list[Any], kind: type) -> dict[str, Any]:
    return {f.name: f for f in facts if isinstance(f, kind)}


def _sb_key(o: Ovn, table: str, column: str, value: str) -> int:
    out = o.sbctl("--bare", "--columns=tunnel_key", "find", table, f"{column}={value}")
    return int(out.split()[0])


def test_facts_from_real_ovn_databases(ovn: Ovn) -> None:
    imp = OvnImporter(ovn.nb, ovn.sb_tcp, name="lab")
    facts = imp.fetch()
    assert imp.notes == []
    hosts = _by(facts, Host)
    assert {h: hosts[h].tunnel_ips for h in hosts} == {"hv-1": ("172.16.1.11",),
                                                       "hv-2": ("172.16.1.12",)}
    assert hosts["hv-1"].external_id == "3f1c2b9e-hv1"

    nets = _by(facts, Network)
    web_dp = int(ovn.sbctl("--bare", "--columns=tunnel_key", "find", "Datapath_Binding",
                           "external_ids:name=acme-web").split()[0])
    assert (nets["acme-web"].encap, nets["acme-web"].vni) == ("geneve", web_dp)
    assert nets["acme-web"].subnets == ("10.1.0.0/24",)
    assert nets["acme-db"].vni is not None and nets["acme-db"].vni != web_dp

    eps = _by(facts, Endpoint)
    assert set(eps) == {"web-1", "web-2", "dyn", "db-1", "web-r1"}  # no localnet port
    w1 = eps["web-1"]
    assert (w1.kind, w1.mac, w1.ips, w1.network, w1.host) == (
        "vm", "fa:16:3e:00:01:05", ("10.1.0.5",), "acme-web", "hv-1")
    assert w1.tunnel_key == _sb_key(ovn, "Port_Binding", "logical_port", "web-1")
    assert eps["web-2"].ips == ("10.1.0.6", "fd00::6")
    assert eps["dyn"].ips and eps["dyn"].ips[0].startswith("10.1.0.")  # dynamic_addresses
    assert eps["dyn"].host is None  # not bound to a chassis
    r = eps["web-r1"]
    assert (r.kind, r.mac, r.ips) == ("gateway", "00:00:00:00:ff:01", ("10.1.0.1",))


def test_geneve_ovn_option_port_keys_resolve_to_logical_ports(ovn: Ovn,
                                                              tmp_path: Path) -> None:
    pytest.importorskip("scapy")
    from scapy.all import IP, TCP, UDP, Ether, raw
    from scapy.contrib.geneve import GENEVE

    from fabricscope.decode import PacketDecoder
    from framehelp import frames_from_bytes

    hist = InventoryHistory(tmp_path / "inv")
    ImportRunner(OvnImporter(ovn.nb, ovn.sb_tcp, name="lab"), hist).run_once(at=T0)
    inv = hist.current()
    web = inv.network("acme-web")
    assert web is not None and web.vni is not None
    k1 = _sb_key(ovn, "Port_Binding", "logical_port", "web-1")
    k2 = _sb_key(ovn, "Port_Binding", "logical_port", "web-2")
    # what hv-1 puts on the wire from web-1 to web-2: VNI = datapath key, option 0x0102/0x80
    opt = struct.pack("!HBB", 0x0102, 0x80, 1) + struct.pack("!I", (k1 << 16) | k2)
    frame = (Ether() / IP(src="172.16.1.11", dst="172.16.1.12") / UDP(sport=49152, dport=6081)
             / GENEVE(vni=web.vni, proto=0x6558, options=opt)
             / Ether(src="fa:16:3e:00:01:05", dst="fa:16:3e:00:01:06")
             / IP(src="10.1.0.5", dst="10.1.0.6") / TCP(sport=40000, dport=443))
    rec = PacketDecoder().decode(frames_from_bytes([raw(frame)])).to_pylist()[0]
    layer = rec["tunnels"][0]
    assert (layer["type"], layer["vni"], layer["a"], layer["b"]) == ("geneve", web.vni, k1, k2)
    src = endpoint_by_port_key(inv, layer["vni"], layer["a"])
    dst = endpoint_by_port_key(inv, layer["vni"], layer["b"])
    assert src is not None and dst is not None
    assert (src.name, src.host, dst.name, dst.host) == ("web-1", "hv-1", "web-2", "hv-2")
    assert endpoint_by_port_key(inv, layer["vni"], 999) is None


def test_changes_between_imports(ovn: Ovn, tmp_path: Path) -> None:
    hist = InventoryHistory(tmp_path / "inv")
    runner = ImportRunner(OvnImporter(ovn.nb, ovn.sb_tcp, name="lab"), hist)
    assert runner.run_once(at=T0).ok
    # web-1 moves to hv-2, db-1 is deleted
    ovn.sbctl("lsp-unbind", "web-1")
    ovn.sbctl("lsp-bind", "web-1", "7a8d0e4c-hv2")
    ovn.nbctl("lsp-del", "db-1")
    _wait(lambda: "db-1" not in ovn.sbctl("--columns=logical_port", "list", "Port_Binding"),
          "db-1's binding to go")
    t1 = T0 + timedelta(minutes=5)
    out = runner.run_once(at=t1)
    assert out.result is not None
    got = {(c.op, c.key): [str(f) for f in c.fields] for c in out.result.changes}
    assert got == {("changed", "web-1"): ["host: hv-1 -> hv-2"], ("removed", "db-1"): []}
    inv = hist.current()
    assert inv.endpoint("web-1", T0).host == "hv-1"  # type: ignore[union-attr]
    assert inv.endpoint("web-1", t1).host == "hv-2"  # type: ignore[union-attr]
    assert inv.versions("endpoints", "db-1")[0].valid_to == t1


def test_unreachable_ovn_is_one_line(tmp_path: Path) -> None:
    imp = OvnImporter("tcp:127.0.0.1:1", "tcp:127.0.0.1:1", name="gone", timeout=2)
    with pytest.raises(ImportFailed) as exc:
        imp.fetch()
    assert "\n" not in str(exc.value) and str(exc.value).startswith("ovn:gone: ")
    r = CliRunner(env={"FABRICSCOPE_HOME": str(tmp_path / "home")}).invoke(
        build_app(), ["inventory", "import", "ovn", "--nb", "tcp:127.0.0.1:1", "--sb",
                      "tcp:127.0.0.1:1", "--timeout", "2"], catch_exceptions=False)
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "tcp:127.0.0.1:1" in r.stderr


def test_cli_import_ovn(ovn: Ovn, tmp_path: Path) -> None:
    r = CliRunner(env={"FABRICSCOPE_HOME": str(tmp_path / "home")}).invoke(
        build_app(), ["inventory", "import", "ovn", "--nb", ovn.nb, "--sb", ovn.sb_tcp,
                      "--name", "lab"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "ovn:lab: snapshot 1: first import (2 networks, 2 hosts, 5 endpoints)" in r.stdout

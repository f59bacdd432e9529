"""A real exporter: Open vSwitch (userspace datapath) samples real VXLAN traffic between two
network namespaces and sends sFlow to ``fabricscope collect``; the collector sees the VNI
and the inner addresses, the port names, and loses nothing.

Everything runs inside three namespaces the test creates and removes (two hosts, one
switch), with its own ovsdb-server/ovs-vswitchd whose files live in a temporary run
directory: no system Open vSwitch instance is used or touched.

    ns A: vx0 10.77.0.1 (VXLAN id 4242) over veth 192.168.77.1 ─┐
                                                                 ├─ ns S: OVS bridge
    ns B: vx0 10.77.0.2 (VXLAN id 4242) over veth 192.168.77.2 ─┘   (netdev), sFlow ->
                                                                    collect on 127.0.0.1
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import is_root

ROOT = Path(__file__).resolve().parent.parent
VNI = 4242
SCHEMAS = ("/usr/share/openvswitch/vswitch.ovsschema",
           "/usr/local/share/openvswitch/vswitch.ovsschema")

pytestmark = pytest.mark.root


def _missing() -> str | None:
    if not is_root():
        return "needs root (network namespaces, Open vSwitch)"
    for tool in ("ip", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl",
                 "ovs-appctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install openvswitch-switch iproute2)"
    if shutil.which("ping") is None:
        return "ping is not installed (apt-get install iputils-ping)"
    if not any(Path(s).is_file() for s in SCHEMAS):
        return "the Open vSwitch database schema is not installed"
    return None


def run(*argv: str, ns: str | None = None, check: bool = True,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    cmd = list(argv) if ns is None else ["ip", "netns", "exec", ns, *argv]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


class Lab:
    def __init__(self, tmp: Path) -> None:
        s = secrets.token_hex(2)
        self.s = s
        self.ns_a, self.ns_b, self.ns_s = f"fsA-{s}", f"fsB-{s}", f"fsS-{s}"
        self.port_a, self.port_b = f"fsa{s}", f"fsb{s}"  # switch-side veth ends
        self.dir = tmp / "ovs"
        self.dir.mkdir()
        self.db_sock = self.dir / "db.sock"
        self.procs: list[str] = []
        self.namespaces: list[str] = []

    def vsctl(self, *args: str) -> str:
        return run("ovs-vsctl", f"--db=unix:{self.db_sock}", "--timeout=20", *args).stdout

    def up(self) -> None:
        for ns in (self.ns_a, self.ns_b, self.ns_s):
            run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        for host, port, ip in ((self.ns_a, self.port_a, "192.168.77.1"),
                               (self.ns_b, self.port_b, "192.168.77.2")):
            run("ip", "-n", host, "link", "add", "eth0", "type", "veth", "peer", "name", port,
                "netns", self.ns_s)
            run("ip", "-n", host, "addr", "add", f"{ip}/24", "dev", "eth0")
            run("ip", "-n", host, "link", "set", "eth0", "up")
            run("ip", "-n", self.ns_s, "link", "set", port, "up")
            if shutil.which("ethtool"):
                # the userspace datapath reads frames with AF_PACKET: no partial checksums
                for n, dev in ((host, "eth0"), (self.ns_s, port)):
                    run("ethtool", "-K", dev, "tx", "off", ns=n, check=False)
        for host, local, remote, addr in ((self.ns_a, "192.168.77.1", "192.168.77.2",
                                           "10.77.0.1"),
                                          (self.ns_b, "192.168.77.2", "192.168.77.1",
                                           "10.77.0.2")):
            run("ip", "-n", host, "link", "add", "vx0", "type", "vxlan", "id", str(VNI),
                "local", local, "remote", remote, "dstport", "4789", "dev", "eth0")
            run("ip", "-n", host, "addr", "add", f"{addr}/24", "dev", "vx0")
            run("ip", "-n", host, "link", "set", "vx0", "up")
        schema = next(s for s in SCHEMAS if Path(s).is_file())
        d = self.dir
        common = ["--detach", "--no-chdir", "-vconsole:off", "-vsyslog:off"]
        run("ovsdb-tool", "create", str(d / "conf.db"), schema)
        run("ovsdb-server", str(d / "conf.db"), f"--remote=punix:{self.db_sock}",
            f"--pidfile={d / 'ovsdb-server.pid'}", f"--unixctl={d / 'ovsdb-server.ctl'}",
            f"--log-file={d / 'ovsdb-server.log'}", *common, ns=self.ns_s)
        self.procs.append("ovsdb-server")
        self.vsctl("--no-wait", "init")
        run("ovs-vswitchd", f"unix:{self.db_sock}", f"--pidfile={d / 'ovs-vswitchd.pid'}",
            f"--unixctl={d / 'ovs-vswitchd.ctl'}", f"--log-file={d / 'ovs-vswitchd.log'}",
            *common, ns=self.ns_s, timeout=60)
        self.procs.append("ovs-vswitchd")

    def bridge(self, collector_port: int) -> None:
        self.vsctl("--", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                   "--", "add-port", "br0", self.port_a, "--", "add-port", "br0", self.port_b,
                   "--", "--id=@s", "create", "sflow", "agent=127.0.0.1",
                   f'target="127.0.0.1:{collector_port}"', "sampling=1", "polling=1",
                   "header=128", "--", "set", "bridge", "br0", "sflow=@s")

    def down(self) -> None:
        for name in reversed(self.procs):
            ctl = self.dir / f"{name}.ctl"
            run("ovs-appctl", "-t", str(ctl), "exit", check=False, timeout=20)
            pidfile = self.dir / f"{name}.pid"
            if pidfile.exists():
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        for ns in self.namespaces:
            run("ip", "netns", "del", ns, check=False)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    why = _missing()
    if why:
        pytest.skip(why)
    lab = Lab(tmp_path)
    try:
        try:
            lab.up()
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot build the namespaces/OVS here: {exc.cmd}: {exc.stderr}")
        yield lab
    finally:
        lab.down()


def listening(ns: str, port: int) -> bool:
    out = run("cat", "/proc/net/udp", ns=ns).stdout
    return any(f":{port:04X} " in line.split()[1] + " " for line in out.splitlines()[1:])


def test_ovs_exports_vxlan_samples_to_the_collector(lab: Lab, tmp_path: Path) -> None:
    port = 6343
    out = tmp_path / "ovs.ndjson"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    coll = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns_s, sys.executable, "-m", "fabricscope", "collect",
         "--listen", f"127.0.0.1:{port}", "--out", str(out), "--json", "--flush", "0.5",
         "--no-store"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert coll.stderr is not None
        ready = coll.stderr.readline()  # bound and warmed up (the numba walks loaded)
        if "first run since install" in ready:  # an empty compiled-code cache: compiling
            ready = coll.stderr.readline()
        assert f"listening on 127.0.0.1:{port}" in ready, (ready, coll.poll())
        assert listening(lab.ns_s, port)
        lab.bridge(port)
        time.sleep(1.0)
        ping = run("ping", "-c", "40", "-i", "0.05", "-W", "1", "10.77.0.2", ns=lab.ns_a,
                   check=False, timeout=60)
        assert " 0% packet loss" in ping.stdout or "40 received" in ping.stdout, ping.stdout
        time.sleep(3.0)  # OVS sends what it sampled, and counter polls (every second)
        coll.send_signal(signal.SIGTERM)
        stdout, stderr = coll.communicate(timeout=300)
    finally:
        if coll.poll() is None:
            coll.kill()
            coll.communicate()
    assert coll.returncode == 0, stderr
    final = json.loads(stdout)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    flows = [r for r in rows if r["kind"] == "flow"]
    counters = [r for r in rows if r["kind"] == "counters"]

    # the sampled underlay packets are VXLAN: VNI and inner addresses are seen
    vx = [r for r in flows if r.get("encap") == "vxlan"]
    assert vx, f"no VXLAN samples among {len(flows)} flow samples"
    assert {r["vni"] for r in vx} == {VNI}
    pairs = {(r["inner_src"], r["inner_dst"]) for r in vx if r.get("inner_proto") == 1}
    assert ("10.77.0.1", "10.77.0.2") in pairs and ("10.77.0.2", "10.77.0.1") in pairs
    assert {(r["src"], r["dst"]) for r in vx} <= {("192.168.77.1", "192.168.77.2"),
                                                 ("192.168.77.2", "192.168.77.1")}
    # 40 echo requests and 40 replies each cross the switch once; sampling 1 in 1
    icmp = [r for r in vx if r.get("inner_proto") == 1]
    assert len(icmp) >= 80
    assert all(r["sampling_rate"] == 1 and r["agent"] == "127.0.0.1" for r in flows)
    # counter polls name the switch ports
    names = {c.get("port_name") for c in counters}
    assert {lab.port_a, lab.port_b} <= names
    # nothing lost between OVS and the collector
    assert final["lost_datagrams"] == 0 and final["socket"]["drops"] == 0
    assert final["datagrams"] == final["socket"]["received"] > 0
    assert final["flow_samples"] == len(flows)

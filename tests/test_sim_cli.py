"""``fabricscope sim``, ``sim replay`` and ``sim truth`` from the command line, and replay to
a UDP socket on the loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fabricscope.capture import read_all
from fabricscope.cli.app import build_app
from fabricscope.sim.replay import parse_target, replay

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(build_app(), list(args))


@pytest.fixture(scope="module")
def simdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    r = invoke("sim", "--out", str(out), "--preset", "demo", "--duration", "2m", "-q")
    assert r.exit_code == 0, r.output
    assert "sFlow datagrams" in r.output and "next:" in r.output
    return out


def _payloads(path: Path) -> list[bytes]:
    fb = read_all(path)
    return [fb.frame(i)[42:] for i in range(len(fb))]


class Receiver:
    """A UDP socket on 127.0.0.1 drained by a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.got: list[bytes] = []
        self.times: list[float] = []
        self._stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.got.append(data)
            self.times.append(time.perf_counter())

    def wait(self, n: int, timeout: float = 30.0) -> list[bytes]:
        end = time.time() + timeout
        while len(self.got) < n and time.time() < end:
            time.sleep(0.02)
        self._stop = True
        self.t.join(2)
        self.sock.close()
        return self.got


def test_sim_writes_a_run(simdir: Path) -> None:
    for f in ("inventory.yaml", "sflow.pcap", "truth.json", "truth-flows.parquet"):
        assert (simdir / f).exists()
    r = invoke("inventory", "validate", str(simdir / "inventory.yaml"))
    assert r.exit_code == 0, r.output


def test_sim_json_summary_and_rerun_into_same_dir(simdir: Path) -> None:
    r = invoke("sim", "--out", str(simdir), "--preset", "demo", "--duration", "2m",
               "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["samples"] > 0 and d["datagrams"] > 0 and d["hosts"] == 10


def test_sim_options(tmp_path: Path) -> None:
    out = tmp_path / "o"
    r = invoke("sim", "--out", str(out), "--spines", "3", "--leaves", "2",
               "--hosts-per-leaf", "2", "--tenants", "1", "--vms", "6", "--vnfs", "1",
               "--chains", "1", "--duration", "40s", "--flows", "50", "--sampling-rate",
               "200", "--encap", "geneve", "--underlay", "ipv6", "--seed", "4", "--start",
               "2025-01-02T03:04:05Z", "--mix", "tcp:1", "--events", "none",
               "--no-sfc-mpls", "--host-speed", "10G", "--uplink-speed", "40G",
               "--truth-samples", "--json")
    assert r.exit_code == 0, r.output
    t = json.loads((out / "truth.json").read_text())
    assert t["start"] == "2025-01-02T03:04:05Z" and t["events"] == []
    assert t["params"]["spines"] == 3 and t["underlay"] == "ipv6"
    assert (out / "truth-samples.parquet").exists()


@pytest.mark.parametrize("args,msg", [
    ((), "--out DIR is required"),
    (("--out", "{d}", "--encap", "stt"), "--encap"),
    (("--out", "{d}", "--preset", "huge"), "unknown preset"),
    (("--out", "{d}", "--duration", "soon"), "--duration"),
    (("--out", "{d}", "--pcap-hosts", "hv-1"), "--host-pcaps"),
    (("--out", "{d}", "--host-pcaps", "--pcap-hosts", "hv-99"), "no host"),
    (("--out", "{d}", "--host-speed", "fast"), "--host-speed"),
])
def test_sim_usage_errors(tmp_path: Path, args: tuple[str, ...], msg: str) -> None:
    from fabricscope.errors import UsageError

    a = [x.replace("{d}", str(tmp_path / "new")) for x in args]
    r = invoke("sim", *a, "--duration" if "--duration" not in a else "--seed",
               "1m" if "--duration" not in a else "1")
    assert r.exit_code != 0
    assert isinstance(r.exception, UsageError) or r.exit_code == 2
    assert msg in (str(r.exception) + r.output)


def test_sim_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    r = invoke("sim", "--out", str(tmp_path), "--preset", "demo")
    assert r.exit_code != 0 and "not empty" in str(r.exception)


def test_sim_truth_command(simdir: Path) -> None:
    r = invoke("sim", "truth", str(simdir), "--featured", "0")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["featured"] == "north-south-https" and len(d["path"]) >= 2
    assert d["path"][0]["vnfs"] and d["path"][0]["segments"][0]["hops"]
    r = invoke("sim", "truth", str(simdir), "--src", d["src_ip"], "--dport", "443",
               "--sport", str(d["sport"]), "--at", d["path"][-1]["t_from"])
    assert r.exit_code == 0, r.output
    one = json.loads(r.output)
    assert len(one["path"]) == 1
    r = invoke("sim", "truth", str(simdir), "--events")
    assert r.exit_code == 0 and json.loads(r.output)[0]["type"] == "vm-migration"
    r = invoke("sim", "truth", str(simdir), "--src", "192.0.2.99")
    assert r.exit_code == 1


def test_parse_target() -> None:
    assert parse_target("127.0.0.1:6343") == ("127.0.0.1", 6343)
    assert parse_target("[::1]:9999") == ("::1", 9999)
    from fabricscope.errors import UsageError

    for bad in ("localhost", ":6343", "h:99999", "h:x"):
        with pytest.raises(UsageError):
            parse_target(bad)


def test_replay_delivers_every_datagram_in_order(simdir: Path) -> None:
    want = _payloads(simdir / "sflow.pcap")
    rx = Receiver()
    st = replay(simdir, "127.0.0.1", rx.port, rate=20000)
    got = rx.wait(len(want))
    assert st.sent == len(want) and st.skipped == 0
    assert got == want


def test_replay_accelerated_time(simdir: Path) -> None:
    fb = read_all(simdir / "sflow.pcap")
    span = (int(fb.ts_ns[-1]) - int(fb.ts_ns[0])) / 1e9
    rx = Receiver()
    speed = span / 1.0  # about one second
    st = replay(simdir / "sflow.pcap", "127.0.0.1", rx.port, speed=speed)
    got = rx.wait(len(fb))
    assert len(got) == len(fb)
    assert 0.8 < st.seconds < 5.0
    # the pacing follows the capture: the first half of the capture's time takes about
    # half of the wall time
    mid = next(i for i in range(len(fb)) if fb.ts_ns[i] - fb.ts_ns[0] >= span * 1e9 / 2)
    frac = (rx.times[mid] - rx.times[0]) / (rx.times[-1] - rx.times[0])
    assert 0.3 < frac < 0.7


def test_replay_cli(simdir: Path) -> None:
    rx = Receiver()
    r = invoke("sim", "replay", str(simdir), "--to", f"127.0.0.1:{rx.port}", "--limit", "25",
               "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["sent"] == 25
    assert len(rx.wait(25)) == 25
    r = invoke("sim", "replay", str(simdir), "--to", "127.0.0.1:9", "--rate", "10",
               "--speed", "2")
    assert r.exit_code != 0
    r = invoke("sim", "replay", str(simdir / "nope"), "--to", "127.0.0.1:9")
    assert r.exit_code != 0

"""The real fabric lab, end to end (root, Open vSwitch, tshark; CI runs it as root).

lab up -> capture the switches' sFlow at the collector address -> lab traffic -> check
with tshark that the samples show what OVS's own counters say happened (VXLAN VNIs and
the VMs' inner addresses at several switches, ECMP over both spines by outer UDP source
port, the chain through the firewall, the impaired link, the migration) -> lab down ->
nothing left.

``FABRICSCOPE_LAB_RECORD=1`` also copies the capture, the inventory and the ground truth
to tests/data/lab/ (what test_lab_recorded.py checks without root).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from fabricscope.lab.executor import NETNS_DIR, missing_tools

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "lab"
RECORD = os.environ.get("FABRICSCOPE_LAB_RECORD") == "1"
# the test's own names, so a lab someone left up (fs-, 169.254.250.0/30) does not collide;
# recordings use the defaults, as a user would see them
PREFIX = "fs-" if RECORD else "fse-"
MGMT = "169.254.250.0/30" if RECORD else "169.254.251.0/30"
COLLECTOR_IP = "169.254.250.1" if RECORD else "169.254.251.1"
IP_FREEBIND = 15

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, Open vSwitch); CI runs it as root"
    missing = missing_tools()
    for tool in ("tshark", "tcpdump"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if missing:
        return f"missing: {', '.join(missing)} (.ci/run installs them)"
    return None


def fs(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "fabricscope", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"fabricscope {' '.join(args)} -> {proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def _collector_socket() -> socket.socket:
    """Bound before the address exists (IP_FREEBIND); 6343 unless someone holds it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    try:
        s.bind((COLLECTOR_IP, 6343))
    except OSError:
        s.bind((COLLECTOR_IP, 0))
    s.settimeout(0.2)
    return s


def _lab_names_left(prefix: str) -> list[str]:
    left = [f"netns {n}" for n in os.listdir(NETNS_DIR) if n.startswith(prefix)] \
        if NETNS_DIR.is_dir() else []
    left += [f"link {n}" for n in os.listdir("/sys/class/net") if n.startswith(prefix)]
    return left


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _pids(run_dir: Path) -> dict[str, int]:
    out = {}
    for line in (run_dir / "state.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("kind") == "process":
            with contextlib.suppress(OSError, ValueError, IndexError):
                out[r["name"]] = int(Path(r["pidfile"]).read_text().split()[0])
    return out


def run_lab(tmp: Path) -> dict[str, Any]:
    """up, capture, traffic, status, decode the capture, OVS's own hashing, down."""
    run_dir = tmp / "run"
    pcap = tmp / "lab-sflow.pcap"
    sock = _collector_socket()
    port = sock.getsockname()[1]
    t0 = time.monotonic()
    tcpdump: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = {"run_dir": run_dir, "pcap": pcap, "port": port}
    try:
        up = fs("lab", "up", "--run-dir", str(run_dir), "--prefix", PREFIX, "--mgmt-net", MGMT,
                "--collector-port", str(port), "--sampling", "32", "--polling", "5", "--json")
        info["up"] = json.loads(up.stdout)
        info["up_seconds"] = time.monotonic() - t0
        tcpdump = subprocess.Popen(
            ["tcpdump", "-i", f"{PREFIX}mgmt0", "-n", "-U", "-w", str(pcap),
             "udp", "and", "dst", "port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert tcpdump.stderr is not None
        line = tcpdump.stderr.readline().decode()  # "listening on ..." once it captures
        assert "listening" in line, line
        received = 0
        t1 = time.monotonic()
        traffic = subprocess.Popen(
            [sys.executable, "-m", "fabricscope", "lab", "traffic", "--run-dir", str(run_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while traffic.poll() is None:  # keep the collector socket drained meanwhile
            try:
                sock.recv(65535)
                received += 1
            except TimeoutError:
                pass
        out, err = traffic.communicate()
        assert traffic.returncode == 0, f"lab traffic failed:\n{out}\n{err}"
        info["traffic_seconds"] = time.monotonic() - t1
        deadline = time.monotonic() + 2.5  # the last flow samples (datagrams go out each s)
        while time.monotonic() < deadline:
            try:
                sock.recv(65535)
                received += 1
            except TimeoutError:
                pass
        info["received"] = received
        _stop(tcpdump)
        info["status"] = json.loads(fs("lab", "status", "--run-dir", str(run_dir),
                                       "--json").stdout)
        info["gt"] = json.loads((run_dir / "ground-truth.json").read_text())
        info["inventory"] = Path(info["up"]["inventory"]).read_text()
        info["pids"] = _pids(run_dir)
        from fabricscope.lab.verify import load_capture

        info["capture"] = load_capture(pcap, port)
        info["ovs_buckets"] = _ofproto_trace(run_dir, info["gt"], info["capture"])
    finally:
        _stop(tcpdump)
        sock.close()
        t2 = time.monotonic()
        down = fs("lab", "down", "--run-dir", str(run_dir), "--json", check=False)
        info["down"] = down
        info["down_seconds"] = time.monotonic() - t2
        info["left"] = _lab_names_left(PREFIX)
    return info


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # tcpdump flushes and closes the file
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _ofproto_trace(run_dir: Path, gt: dict[str, Any], cap: Any) -> dict[str, str | None]:
    """For each ECMP probe: the spine OVS itself picks (ofproto/trace) for the outer 5-tuple
    the probe's samples at its first leaf show."""
    from fabricscope.lab.plan import LabConfig, build_plan
    from fabricscope.lab.verify import flow_samples

    plan = build_plan(LabConfig.from_dict(gt["lab"]))
    env = {**os.environ, "OVS_RUNDIR": str(run_dir / "ovs")}
    ctl = str(run_dir / "ovs" / "ovs-vswitchd.ctl")
    out: dict[str, str | None] = {}
    for f in gt["flows"]:
        if not f["id"].startswith("ecmp-"):
            continue
        seg = f["segments"][0]
        hv = plan.hypervisor(seg["src_host"])
        leaf = plan.switch(hv.leaf)
        ports = {s.outer_sport for s in flow_samples(cap, f) if s.agent == leaf.agent}
        if len(ports) != 1:
            continue
        port = leaf.port(hv.leaf_port)
        match = (f"in_port={port.ofport},udp,dl_src={hv.mac},dl_dst={port.mac},"
                 f"nw_src={hv.ip},nw_dst={seg['outer_dst']},nw_ttl=64,"
                 f"udp_src={ports.pop()},udp_dst=4789")
        text = subprocess.run(["ovs-appctl", "-t", ctl, "ofproto/trace", leaf.bridge, match],
                              capture_output=True, text=True, env=env, check=True).stdout
        m = re.search(r"using bucket (\d+)", text)
        bucket = int(m.group(1)) if m else None
        out[f["id"]] = next((b.to for b in leaf.groups[0].buckets if b.bucket_id == bucket),
                            None)
    return out


def check_lab_up_builds_the_fabric(lab_run: dict[str, Any]) -> None:
    up, st = lab_run["up"], lab_run["status"]
    assert len(up["switches"]) == 4 and len(up["hypervisors"]) == 4
    assert up["collector"] == f"{COLLECTOR_IP}:{lab_run['port']}"
    assert lab_run["up_seconds"] < 60
    assert all(n["present"] for n in st["namespaces"])
    assert all(p["alive"] for p in st["processes"]), st["processes"]
    # OVS's own per-bucket counters: both spines carried traffic from both leaves
    for sw in st["switches"]:
        if sw["role"] == "leaf":
            assert set(sw["ecmp"]) == {"spine1", "spine2"}
            assert all(v > 0 for v in sw["ecmp"].values()), sw
    assert st["chains"]["web-chain"], "the chain was inserted"
    assert st["firewall"].get("allowed", 0) >= 1 and st["firewall"].get("blocked", 0) >= 1


def check_ground_truth_from_ovs_counters(lab_run: dict[str, Any]) -> None:
    gt = lab_run["gt"]
    res = gt["results"]
    assert res["ecmp_spines"] == ["spine1", "spine2"]
    probes = [f for f in gt["flows"] if f["id"].startswith("ecmp-")]
    assert len(probes) == 18
    for f in probes:
        (seg,) = f["segments"]
        buckets = seg["bucket_packets"]
        # one probe flow = one outer 5-tuple = one bucket, and all its packets in it
        assert buckets[seg["spine"]] >= f["packets"], f
        assert sum(buckets.values()) - buckets[seg["spine"]] <= 2, f
        # and the per-port counters agree with the hops the plan predicts for that spine
        for hop in seg["hops"]:
            ports = f["counters"]["ports"][hop["device"]]
            assert ports[hop["in_if"]]["rx_packets"] >= f["packets"], (f["id"], hop)
            assert ports[hop["out_if"]]["tx_packets"] >= f["packets"], (f["id"], hop)
    imp = res["impairment"]
    assert imp["tenants"] == ["tenant-a", "tenant-b"]
    assert res["firewall"]["allowed"] >= 1 and res["firewall"]["blocked"] >= 1
    assert [e["type"] for e in gt["events"]] == ["chain", "impair", "impair", "migrate"]
    assert lab_run["traffic_seconds"] < 120


def check_ovs_hashes_the_sampled_outer_tuple_to_the_counted_spine(
        lab_run: dict[str, Any]) -> None:
    """ofproto/trace on the outer 5-tuple seen in the samples picks the bucket whose counter
    went up: samples, group counters and OVS's own hash agree."""
    spines = {f["id"]: f["segments"][0]["spine"] for f in lab_run["gt"]["flows"]}
    traced = lab_run["ovs_buckets"]
    assert len(traced) >= 12, traced
    wrong = {k: (v, spines[k]) for k, v in traced.items() if v != spines[k]}
    assert not wrong, wrong


def check_sflow_capture_matches_the_ground_truth(lab_run: dict[str, Any]) -> None:
    from fabricscope.lab.verify import check_run

    cap = lab_run["capture"]
    assert lab_run["received"] >= cap.datagrams > 50
    rep = check_run(cap, lab_run["gt"])
    assert not rep.problems, "\n".join(rep.problems)
    assert set(rep.facts["samples_by_switch"]) == {"leaf1", "leaf2", "spine1", "spine2"}
    assert rep.facts["probe_ttl_by_switch"]["leaf1"] == [64]
    assert rep.facts["probe_ttl_by_switch"]["leaf2"] == [62]
    if RECORD:
        DATA.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lab_run["pcap"], DATA / "lab-sflow.pcap")
        (DATA / "ground-truth.json").write_text(json.dumps(lab_run["gt"], indent=1) + "\n")
        (DATA / "inventory.yaml").write_text(lab_run["inventory"])
        (DATA / "verify-facts.json").write_text(json.dumps(rep.facts, indent=1) + "\n")


def check_trace_and_impact_on_the_live_run(lab_run: dict[str, Any], tmp_path: Path) -> None:
    """fabricscope's decode -> store -> trace/impact over this run's samples: every probe's
    hops are the ports OVS counted it on, the chained https flow crosses rta and fw1, the
    impaired link's impact names the tenants whose flows crossed it."""
    pytest.importorskip("fabricscope.query._trace")
    from fabricscope.lab.verify import check_queries, ingest

    tmp_path.mkdir(parents=True, exist_ok=True)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(lab_run["inventory"])
    ingest(lab_run["pcap"], tmp_path / "db", lab_run["port"])
    rep = check_queries(tmp_path / "db", lab_run["gt"], inv)
    assert not rep.problems, "\n".join(rep.problems)
    assert rep.facts["probe_traces_exact"] == rep.facts["probe_traces"] > 20
    assert rep.facts["chain_traces"]["https-a1-a3-chained"] == ["rta", "fw1"]
    assert rep.facts["impact_tenants"] == lab_run["gt"]["results"]["impairment"]["tenants"]
    if rep.facts.get("health_errors"):  # not checked here, but say so loudly
        warnings.warn("trace's hop health failed on the lab's real OVS counters (paths were "
                      "checked without it): " + "; ".join(rep.facts["health_errors"]),
                      stacklevel=1)


def check_lab_down_leaves_nothing(lab_run: dict[str, Any]) -> None:
    down = lab_run["down"]
    assert down.returncode == 0, down.stderr
    res = json.loads(down.stdout)
    assert res["found"] and res["namespaces"] == 1 + 4 + 7 and not res["left"]
    assert not lab_run["left"], lab_run["left"]
    assert not lab_run["run_dir"].exists()
    alive = {n: p for n, p in lab_run["pids"].items() if _alive(p)}
    assert not alive, f"still running: {alive}"
    assert {"ovsdb-server", "ovs-vswitchd"} <= set(lab_run["pids"])
    assert lab_run["down_seconds"] < 30
    # idempotent
    again = fs("lab", "down", "--run-dir", str(lab_run["run_dir"]), "--json")
    assert json.loads(again.stdout)["found"] is False


def test_lab_end_to_end(tmp_path: Path) -> None:
    """One test, so that pytest-xdist never builds this lab twice at once. lab down always
    runs (inside run_lab), and its checks come last."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    if _lab_names_left(PREFIX):
        pytest.skip(f"a lab with prefix {PREFIX} is already up: {_lab_names_left(PREFIX)}")
    run = run_lab(tmp_path)
    check_lab_down_leaves_nothing(run)
    check_lab_up_builds_the_fabric(run)
    check_ground_truth_from_ovs_counters(run)
    check_ovs_hashes_the_sampled_outer_tuple_to_the_counted_spine(run)
    check_sflow_capture_matches_the_ground_truth(run)
    check_trace_and_impact_on_the_live_run(run, tmp_path / "queries")


def test_down_after_a_crash_in_the_middle_of_up(tmp_path: Path) -> None:
    """`lab up` killed (SIGKILL) halfway: `lab down` still removes everything."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    prefix, run_dir = "fsc-", tmp_path / "run"
    if _lab_names_left(prefix):
        pytest.skip(f"a lab with prefix {prefix} is already up")
    proc = subprocess.Popen([sys.executable, "-m", "fabricscope", "lab", "up", "--run-dir",
                             str(run_dir), "--prefix", prefix, "--mgmt-net",
                             "169.254.252.0/30"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run_dir / "state.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and '"name":"ovs-vswitchd"' in state.read_text():
            time.sleep(0.3)  # a little further: some fabric links exist by now
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert _lab_names_left(prefix), "nothing was built before the crash"
    pids = _pids(run_dir)
    down = fs("lab", "down", "--run-dir", str(run_dir), "--json")
    assert json.loads(down.stdout)["found"]
    assert not _lab_names_left(prefix)
    assert not run_dir.exists()
    assert not [n for n, p in pids.items() if _alive(p)]


def test_capture_option_records_the_switches_sflow(tmp_path: Path, tshark: str) -> None:
    """`lab up --capture FILE`: the file holds sFlow from every switch and survives
    `lab down`, which stops tcpdump and the collector socket."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    prefix, run_dir = "fsk-", tmp_path / "run"
    if _lab_names_left(prefix):
        pytest.skip(f"a lab with prefix {prefix} is already up")
    pcap, inv = tmp_path / "out" / "lab.pcap", tmp_path / "out" / "inventory.yaml"
    up = fs("lab", "up", "--run-dir", str(run_dir), "--prefix", prefix, "--mgmt-net",
            "169.254.253.0/30", "--spines", "1", "--leaves", "2", "--hosts", "2",
            "--sampling", "1", "--polling", "1", "--capture", str(pcap), "--inventory",
            str(inv), "--json", check=False)
    try:
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["capture"] == str(pcap)
        fs("lab", "traffic", "--run-dir", str(run_dir), "--steps", "ping")
        time.sleep(1.5)
        pids = _pids(run_dir)
        assert {"capture", "capture-sink"} <= set(pids)
    finally:
        fs("lab", "down", "--run-dir", str(run_dir))
    assert not [n for n, p in pids.items() if _alive(p)]
    assert inv.is_file() and not run_dir.exists() and not _lab_names_left(prefix)
    out = subprocess.run([tshark, "-r", str(pcap), "-n", "-T", "fields", "-e",
                          "sflow_245.agent"], capture_output=True, text=True, check=True)
    assert set(out.stdout.split()) == {"172.30.1.1", "172.30.2.1", "172.30.2.2"}

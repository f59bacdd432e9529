"""Runs a plan on this machine: network namespaces, veths, the lab's own ovsdb-server and
ovs-vswitchd, bridges, OpenFlow rules, the overlay; reads back what only the running
system knows (ifIndexes, counters); and tears it all down again from the state file.

Safety: every object carries the lab prefix; the only object in the root namespace is one
end of the collector veth; no route to anywhere outside the lab is ever added, and the
lab's OVS daemons use their own database, sockets and logs in the run directory (they
never talk to a system Open vSwitch).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fabricscope.errors import FabricscopeError, UsageError
from fabricscope.lab.commands import (
    NFT_TABLE,
    RunPaths,
    Step,
    capture_sink_step,
    ofctl,
    up_steps,
    vsctl,
)
from fabricscope.lab.plan import LabConfig, LabPlan, build_plan
from fabricscope.lab.state import FORMAT, Journal, now_rfc3339

REQUIRED_TOOLS = {
    "ip": "iproute2", "bridge": "iproute2", "tc": "iproute2", "sysctl": "procps",
    "ethtool": "ethtool", "nft": "nftables", "iperf3": "iperf3", "ping": "iputils-ping",
    "ovsdb-tool": "openvswitch-switch", "ovsdb-server": "openvswitch-switch",
    "ovs-vswitchd": "openvswitch-switch", "ovs-vsctl": "openvswitch-switch",
    "ovs-ofctl": "openvswitch-switch", "ovs-appctl": "openvswitch-switch",
}
NETNS_DIR = Path("/run/netns")

Log = Callable[[str], None]


class LabError(FabricscopeError):
    """Building or changing the lab failed (exit code 2, one line)."""


def _quiet(_: str) -> None:
    pass


def require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise UsageError(f"lab {action} needs root (it creates network namespaces and runs "
                         "Open vSwitch); run it with sudo")


def missing_tools() -> list[str]:
    out = []
    for tool, pkg in REQUIRED_TOOLS.items():
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            out.append(f"{tool} ({pkg})")
    return out


def require_tools() -> None:
    missing = missing_tools()
    if missing:
        pkgs = sorted({m.split("(")[1].rstrip(")") for m in missing})
        raise UsageError(f"missing tools: {', '.join(missing)}; install with "
                         f"apt-get install {' '.join(pkgs)}")


class Runner:
    """Runs steps; writes each step's state record before running it."""

    def __init__(self, paths: RunPaths, journal: Journal | None, log: Log = _quiet,
                 timeout: float = 60.0) -> None:
        self.paths = paths
        self.journal = journal
        self.log = log
        self.timeout = timeout
        self.count = 0

    def run(self, step: Step) -> str:
        if step.record is not None and self.journal is not None:
            self.journal.append({**step.record, "at": now_rfc3339()})
        self.log(step.shell())
        env = {**os.environ, **self.paths.ovs_env()} if step.ovs else None
        argv = step.full_argv()
        self.count += 1
        # temporary files, not pipes: a daemon that keeps a pipe open would hang us
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(argv, input=step.stdin.encode() if step.stdin else None,
                                      stdout=out, stderr=err, timeout=self.timeout, env=env,
                                      check=False)
            except FileNotFoundError:
                raise LabError(f"{argv[0]}: command not found") from None
            except subprocess.TimeoutExpired:
                raise LabError(f"timed out after {self.timeout:.0f}s: {_short(step)}") from None
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        if proc.returncode != 0 and step.check:
            lines = [ln.strip() for ln in (stderr + "\n" + stdout).splitlines() if ln.strip()]
            msg = lines[-1] if lines else f"exit status {proc.returncode}"
            raise LabError(f"{_short(step)}: {msg}")
        return stdout

    def run_all(self, steps: Iterable[Step]) -> None:
        for s in steps:
            self.run(s)

    def query(self, *argv: str, ns: str | None = None, ovs: bool = False,
              check: bool = True) -> str:
        return self.run(Step(tuple(argv), ns=ns, ovs=ovs, check=check))

    def ok(self, *argv: str, ns: str | None = None) -> bool:
        try:
            self.run(Step(tuple(argv), ns=ns))
        except LabError:
            return False
        return True


def _short(step: Step) -> str:
    text = " ".join(step.full_argv())
    return text if len(text) <= 160 else text[:157] + "..."


# -- preflight ---------------------------------------------------------------------------

def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _root_prefixes() -> list[ipaddress.IPv4Network]:
    out: list[ipaddress.IPv4Network] = []
    try:
        addrs = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True,
                                          text=True, check=False).stdout or "[]")
        routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"],
                                           capture_output=True, text=True,
                                           check=False).stdout or "[]")
    except ValueError:
        return out
    for link in addrs:
        for a in link.get("addr_info", []):
            with contextlib.suppress(KeyError, ValueError):
                out.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
    for r in routes:
        dst = r.get("dst")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                out.append(ipaddress.IPv4Network(dst if "/" in dst else dst + "/32",
                                                 strict=False))
    return out


def preflight(plan: LabPlan) -> None:
    taken = [ns.name for ns in plan.namespaces if netns_exists(ns.name)]
    if taken:
        raise LabError(f"namespace {taken[0]} already exists ({len(taken)} of the lab's "
                       "namespaces do); another lab is up: run `fabricscope lab down` or "
                       "choose another --prefix")
    if link_exists(plan.mgmt.a.name):
        raise LabError(f"interface {plan.mgmt.a.name} already exists in the root namespace; "
                       "run `fabricscope lab down` or choose another --prefix")
    mgmt = ipaddress.IPv4Network(plan.config.mgmt_net)
    for net in _root_prefixes():
        if net.overlaps(mgmt) and net.prefixlen > 0:
            raise LabError(f"--mgmt-net {mgmt} overlaps {net}, already in use in the root "
                           "namespace; choose another --mgmt-net")


# -- up ----------------------------------------------------------------------------------

@dataclass
class UpResult:
    plan: LabPlan
    paths: RunPaths
    inventory: Path
    commands: int
    seconds: float
    geneve: bool
    netem: bool
    steps: list[Step] = field(default_factory=list)  # dry run only


def probe_geneve(runner: Runner, ns: str, prefix: str) -> bool:
    name = f"{prefix}gnprobe"
    if runner.ok("ip", "-n", ns, "link", "add", name, "type", "geneve", "id", "1", "remote",
                 "127.0.0.2"):
        runner.ok("ip", "-n", ns, "link", "del", name)
        return True
    return False


def probe_netem(runner: Runner, ns: str) -> bool:
    if runner.ok("tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"):
        runner.ok("tc", "-n", ns, "qdisc", "del", "dev", "lo", "root")
        return True
    return False


def start_capture(runner: Runner, plan: LabPlan, paths: RunPaths, out: Path,
                  journal: Journal) -> None:
    """``lab up --capture FILE``: a socket on the collector address and tcpdump on the
    collector veth, writing the switches' sFlow datagrams to ``out``; ``lab down`` stops
    both (tcpdump then closes the file, which stays)."""
    runner.run(capture_sink_step(plan, paths))
    pidfile = paths.service_pidfile("capture")
    log = paths.service_log("capture")
    journal.append({"kind": "process", "name": "capture", "ns": None, "pidfile": str(pidfile),
                    "comm": "tcpdump", "output": str(out), "at": now_rfc3339()})
    if out.resolve().is_relative_to(paths.run_dir.resolve()):
        journal.append({"kind": "file", "path": str(out)})
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            ["tcpdump", "-i", plan.mgmt.a.name, "-n", "-U", "-Z", "root", "-w", str(out),
             "udp", "and", "dst", "port", str(plan.config.collector_port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True)
    pidfile.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 10
    while b"listening on" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            text = log.read_text(errors="replace").strip().splitlines()
            raise LabError(f"tcpdump on {plan.mgmt.a.name} did not start: "
                           f"{text[-1] if text else 'no output'}")
        time.sleep(0.05)


def lab_up(config: LabConfig, *, encap_b: str = "auto", inventory: Path | None = None,
           log: Log = _quiet, keep_on_error: bool = False, dry_run: bool = False,
           capture: Path | None = None) -> UpResult:
    t0 = time.monotonic()
    paths = RunPaths(Path(config.run_dir))
    if encap_b not in ("auto", "vxlan", "geneve"):
        raise UsageError(f"--encap-b {encap_b!r}: expected auto, vxlan or geneve")
    first = replace(config, encap_b="geneve" if encap_b == "geneve" else "vxlan")
    plan = build_plan(first)
    inv_path = inventory or paths.inventory
    if dry_run:
        steps = [s for _, group in up_steps(plan, paths) for s in group]
        return UpResult(plan, paths, inv_path, len(steps), 0.0, encap_b == "geneve", False,
                        steps)
    require_root("up")
    require_tools()
    journal = Journal(paths.state)
    if journal.exists() and journal.records():
        raise LabError(f"a lab is already set up in {paths.run_dir} (state file "
                       f"{paths.state}); run `fabricscope lab down --run-dir {paths.run_dir}` "
                       "first")
    if paths.run_dir.exists() and any(paths.run_dir.iterdir()):
        raise LabError(f"run directory {paths.run_dir} is not empty and holds no lab state; "
                       "choose another --run-dir")
    preflight(plan)
    created = not paths.run_dir.exists()
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    journal.append({"kind": "lab", "format": FORMAT, "config": first.to_dict(),
                    "at": now_rfc3339(), "pid": os.getpid(), "run_dir_created": created})
    runner = Runner(paths, journal, log)
    try:
        for d in (paths.ovs_dir, paths.log_dir):
            journal.append({"kind": "dir", "path": str(d)})
            d.mkdir(exist_ok=True)
        phases = list(up_steps(plan, paths))
        log("# namespaces")
        runner.run_all(phases[0][1])
        geneve = probe_geneve(runner, plan.sw_ns, config.prefix)
        netem = probe_netem(runner, plan.sw_ns)
        if encap_b == "geneve" and not geneve:
            raise LabError("--encap-b geneve: this kernel has no GENEVE support")
        final = replace(first, encap_b="geneve" if geneve and encap_b != "vxlan" else "vxlan")
        journal.append({"kind": "caps", "geneve": geneve, "netem": netem, "at": now_rfc3339()})
        if final != first:
            journal.append({"kind": "lab", "format": FORMAT, "config": final.to_dict(),
                            "at": now_rfc3339(), "pid": os.getpid(),
                            "run_dir_created": created})
            plan = build_plan(final)
            phases = list(up_steps(plan, paths))
        for name, steps in phases[1:]:
            log(f"# {name}")
            runner.run_all(steps)
            if name == "collector link" and capture is not None:
                start_capture(runner, plan, paths, capture, journal)
            if name == "switches":
                check_ports(runner, plan, paths)
        wait_fabric(runner, plan)
        write_inventory(runner, plan, paths, inv_path, journal)
        journal.append({"kind": "up", "at": now_rfc3339()})
    except BaseException:
        if not keep_on_error:
            lab_down(paths.run_dir, log=log)
        raise
    return UpResult(plan, paths, inv_path, runner.count, time.monotonic() - t0, geneve, netem)


def check_ports(runner: Runner, plan: LabPlan, paths: RunPaths) -> None:
    for name, row in interfaces(runner, paths).items():
        if row.get("error"):
            raise LabError(f"Open vSwitch could not open port {name}: {row['error']}")
    want = {p.name for s in plan.switches for p in s.ports}
    have = set(interfaces(runner, paths))
    if want - have:
        raise LabError(f"Open vSwitch is missing ports: {', '.join(sorted(want - have))}")


def wait_fabric(runner: Runner, plan: LabPlan, timeout: float = 10.0) -> None:
    """Underlay reachability: the first hypervisor pings every other one."""
    first = plan.hypervisors[0]
    for other in plan.hypervisors[1:]:
        deadline = time.monotonic() + timeout
        while not runner.ok("ping", "-c", "1", "-W", "1", "-q", other.ip, ns=first.ns):
            if time.monotonic() > deadline:
                raise LabError(f"underlay check failed: {first.name} ({first.ip}) cannot "
                               f"reach {other.name} ({other.ip}) through the fabric")


def _ovs_json_rows(text: str) -> list[dict[str, Any]]:
    doc = json.loads(text)
    heads = doc["headings"]
    rows = []
    for data in doc["data"]:
        row: dict[str, Any] = {}
        for h, v in zip(heads, data, strict=False):
            row[h] = _ovs_value(v)
        rows.append(row)
    return rows


def _ovs_value(v: Any) -> Any:
    """OVSDB JSON: ["set", [...]], ["map", [[k, v], ...]], ["uuid", "..."], or an atom."""
    if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
        tag, val = v
        if tag == "set":
            items = [_ovs_value(x) for x in val]
            return items[0] if len(items) == 1 else (items or None)
        if tag == "map":
            return {k: _ovs_value(x) for k, x in val}
        return val
    return v


def interfaces(runner: Runner, paths: RunPaths) -> dict[str, dict[str, Any]]:
    """name -> {ofport, ifindex, error, mac_in_use} for every OVS interface of the lab."""
    text = runner.run(vsctl(paths, "--format=json", "--columns=name,ofport,ifindex,error,"
                            "mac_in_use", "list", "Interface"))
    return {str(r["name"]): r for r in _ovs_json_rows(text)}


def write_inventory(runner: Runner, plan: LabPlan, paths: RunPaths, path: Path,
                    journal: Journal) -> None:
    from fabricscope.lab.inventory import inventory_document, to_yaml

    ifaces = interfaces(runner, paths)
    ifindex = {n: int(r["ifindex"]) for n, r in ifaces.items()
               if isinstance(r.get("ifindex"), int)}
    doc = inventory_document(plan, ifindex, created=journal.created_at() or now_rfc3339(),
                             events=journal.events(), now=now_rfc3339())
    inside = path.resolve().is_relative_to(paths.run_dir.resolve())
    if inside and not any(r.get("path") == str(path) for r in journal.of_kind("file")):
        journal.append({"kind": "file", "path": str(path)})
    journal.append({"kind": "inventory", "path": str(path), "ifindex": ifindex,
                    "at": now_rfc3339()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(to_yaml(doc, path=str(path)), encoding="utf-8")
    tmp.replace(path)


# -- down --------------------------------------------------------------------------------

@dataclass
class DownResult:
    found: bool
    processes: int = 0
    namespaces: int = 0
    links: int = 0
    files: int = 0
    left: list[str] = field(default_factory=list)


def _pid_from(pidfile: str) -> int | None:
    try:
        return int(Path(pidfile).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _netns_inode(name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(NETNS_DIR / name)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _pid_netns(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids_in_netns(name: str) -> list[int]:
    """Processes whose network namespace is ``name`` (what `ip netns pids` does)."""
    ino = _netns_inode(name)
    if ino is None:
        return []
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and _pid_netns(int(d)) == ino and _alive(int(d)):
            out.append(int(d))
    return out


def _terminate(pids: Iterable[int], grace: float = 3.0) -> int:
    pids = [p for p in set(pids) if p != os.getpid() and _alive(p)]
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for p in pids:
        if _alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    return len(pids)


def lab_down(run_dir: Path | str, *, log: Log = _quiet) -> DownResult:
    """Remove everything the state file in ``run_dir`` lists. Idempotent."""
    paths = RunPaths(Path(run_dir))
    journal = Journal(paths.state)
    recs = journal.records()
    if not recs:
        return DownResult(found=False)
    res = DownResult(found=True)
    run = Runner(paths, None, log)
    ns_names = [str(r["name"]) for r in recs if r.get("kind") == "netns"]

    # 1. processes we started (pidfile), only if they still live in the lab's namespace
    victims: list[int] = []
    for r in recs:
        if r.get("kind") != "process":
            continue
        pid = _pid_from(str(r.get("pidfile")))
        ns = r.get("ns")
        if pid is None or not _alive(pid):
            continue
        if ns is not None and _pid_netns(pid) != _netns_inode(str(ns)):
            continue  # pid reused by someone else
        if r.get("comm") and not _comm(pid).startswith(str(r["comm"])):
            continue  # a root-namespace helper whose pid was reused
        log(f"kill {pid} ({r.get('name')})")
        victims.append(pid)
    res.processes += _terminate(victims)
    # 2. anything else still running inside the lab's namespaces
    stragglers = [p for ns in ns_names for p in pids_in_netns(ns)]
    if stragglers:
        log(f"kill {' '.join(map(str, stragglers))} (left in the lab's namespaces)")
    res.processes += _terminate(stragglers)
    # 3. our links in the root namespace (the other ends go with their namespaces)
    for r in recs:
        if r.get("kind") in ("link", "veth"):
            ns = r.get("ns") if r.get("kind") == "link" else r.get("a_ns")
            name = str(r.get("name") if r.get("kind") == "link" else r.get("a"))
            if ns is None and link_exists(name):
                run.ok("ip", "link", "del", name)
                res.links += 1
    # 4. namespaces
    for name in reversed(ns_names):
        if netns_exists(name):
            for _ in range(5):
                if run.ok("ip", "netns", "del", name) or not netns_exists(name):
                    break
                time.sleep(0.2)
            res.namespaces += 1
    # 5. files and directories (only inside the run directory)
    root = paths.run_dir.resolve()
    for r in reversed(recs):
        p = r.get("path")
        if r.get("kind") not in ("file", "dir") or not isinstance(p, str):
            continue
        path = Path(p)
        if not path.resolve().is_relative_to(root):
            continue
        if r["kind"] == "dir" and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            res.files += 1
        elif path.exists() or path.is_symlink():
            path.unlink(missing_ok=True)
            res.files += 1
    for name in ns_names:
        if netns_exists(name):
            res.left.append(f"namespace {name}")
    for r in recs:
        if r.get("kind") == "link" and link_exists(str(r.get("name"))):
            res.left.append(f"link {r.get('name')}")
    if not res.left:
        paths.state.unlink(missing_ok=True)
        created = any(r.get("run_dir_created") for r in recs if r.get("kind") == "lab")
        if created:
            try:
                paths.run_dir.rmdir()
            except OSError:
                res.left.append(f"directory {paths.run_dir} (not empty)")
    return res


# -- reading a running lab -----------------------------------------------------------------

@dataclass
class Lab:
    """A lab that is up: its plan (as changed by `lab traffic`), paths, journal."""

    plan: LabPlan
    paths: RunPaths
    journal: Journal
    runner: Runner

    @property
    def netem(self) -> bool:
        caps = self.journal.of_kind("caps")
        return bool(caps and caps[-1].get("netem"))


def open_lab(run_dir: Path | str, log: Log = _quiet) -> Lab:
    paths = RunPaths(Path(run_dir))
    journal = Journal(paths.state)
    config = journal.config()
    if config is None:
        raise LabError(f"no lab in {paths.run_dir} (no state file); run `fabricscope lab up`")
    if not journal.is_up():
        raise LabError(f"the lab in {paths.run_dir} did not finish coming up; run "
                       "`fabricscope lab down` and `lab up` again")
    plan = build_plan(config, journal.placement())
    return Lab(plan, paths, journal, Runner(paths, journal, log))


_BUCKET_RE = re.compile(r"bucket(\d+):packet_count=(\d+),byte_count=(\d+)")
_PORT_RE = re.compile(
    r"port\s+(\S+?):\s+rx pkts=(\d+|\?), bytes=(\d+|\?), drop=(\d+|\?), errs=(\d+|\?).*?"
    r"tx pkts=(\d+|\?), bytes=(\d+|\?), drop=(\d+|\?), errs=(\d+|\?)", re.S)


def group_stats(runner: Runner, paths: RunPaths, bridge: str) -> dict[int, dict[int, int]]:
    """group id -> bucket id -> packets (OVS's own per-bucket counters)."""
    text = runner.run(ofctl(paths, "dump-group-stats", bridge))
    out: dict[int, dict[int, int]] = {}
    for line in text.splitlines():
        m = re.search(r"group_id=(\d+)", line)
        if not m:
            continue
        out[int(m.group(1))] = {int(b): int(p) for b, p, _ in _BUCKET_RE.findall(line)}
    return out


def port_stats(runner: Runner, paths: RunPaths, sw_bridge: str,
               names: dict[int, str]) -> dict[str, dict[str, int]]:
    """port name -> rx/tx packets, drops, errors (OVS's per-port counters)."""
    text = runner.run(Step(("ovs-ofctl", "-O", "OpenFlow15", "--no-names", "dump-ports",
                            paths.mgmt(sw_bridge)), ovs=True))
    out: dict[str, dict[str, int]] = {}
    for m in _PORT_RE.finditer(text):
        port = m.group(1).strip('"')
        name = names.get(int(port), port) if port.isdigit() else port
        vals = [int(v) if v.isdigit() else 0 for v in m.groups()[1:]]
        out[name] = dict(zip(("rx_packets", "rx_bytes", "rx_dropped", "rx_errors",
                              "tx_packets", "tx_bytes", "tx_dropped", "tx_errors"), vals,
                             strict=True))
    return out


def firewall_counters(runner: Runner, ns: str) -> dict[str, int]:
    text = runner.query("nft", "-j", "list", "counters", "table", "inet", NFT_TABLE, ns=ns,
                        check=False)
    out: dict[str, int] = {}
    try:
        for item in json.loads(text or "{}").get("nftables", []):
            c = item.get("counter")
            if c:
                out[str(c["name"])] = int(c.get("packets", 0))
    except (ValueError, AttributeError, KeyError):
        pass
    return out


def lab_status(run_dir: Path | str) -> dict[str, Any]:
    lab = open_lab(run_dir)
    plan, paths, runner = lab.plan, lab.paths, lab.runner
    runner.journal = None  # status writes nothing
    procs = []
    for r in lab.journal.of_kind("process"):
        pid = _pid_from(str(r.get("pidfile")))
        procs.append({"name": r.get("name"), "ns": r.get("ns"), "pid": pid,
                      "alive": bool(pid and _alive(pid))})
    daemons_up = all(p["alive"] for p in procs if str(p["name"]).startswith("ovs"))
    switches = []
    for sw in plan.switches:
        entry: dict[str, Any] = {"name": sw.name, "bridge": sw.bridge, "role": sw.role,
                                 "agent": sw.agent, "ports": [p.name for p in sw.ports]}
        if daemons_up and sw.groups:
            stats = group_stats(runner, paths, sw.bridge)
            g = sw.groups[0]
            entry["ecmp"] = {b.to: stats.get(g.group_id, {}).get(b.bucket_id, 0)
                             for b in g.buckets}
        switches.append(entry)
    fw = plan.endpoint(plan.chains[0].vnfs[0])
    return {
        "run_dir": str(paths.run_dir),
        "up_since": lab.journal.created_at(),
        "config": plan.config.to_dict(),
        "collector": plan.collector,
        "inventory": next((str(r["path"]) for r in reversed(lab.journal.of_kind("inventory"))),
                          None),
        "namespaces": [{"name": n.name, "role": n.role, "present": netns_exists(n.name)}
                       for n in plan.namespaces],
        "processes": procs,
        "switches": switches,
        "hypervisors": [{"name": h.name, "ns": h.ns, "ip": h.ip, "leaf": h.leaf}
                        for h in plan.hypervisors],
        "endpoints": [{"name": e.name, "kind": e.kind, "tenant": e.tenant, "host": e.host,
                       "ips": [n.ip for n in e.nics], "vnis": [plan.network(n.network).vni
                                                              for n in e.nics]}
                      for e in plan.endpoints],
        "chains": {c.name: lab.journal.chains_inserted().get(c.name) for c in plan.chains},
        "impairments": lab.journal.impaired(),
        "firewall": firewall_counters(runner, fw.ns) if netns_exists(fw.ns) else {},
    }

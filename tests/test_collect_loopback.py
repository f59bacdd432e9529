"""The live collector on loopback, with a sender in the test: every datagram sent is
received and decoded, or counted as a kernel drop; graceful stop flushes everything."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fabricscope.capture.udp import (
    UdpListener,
    UdpSender,
    parse_hostport,
    socket_stats,
)
from fabricscope.sflow.collector import Collector, CollectorOptions, FileSink
from fabricscope.sflow.encode import synthetic_datagrams

ROOT = Path(__file__).resolve().parent.parent


class MemorySink:
    def __init__(self, delay: float = 0.0) -> None:
        self.records: list[pa.RecordBatch] = []
        self.counters: list[pa.RecordBatch] = []
        self.accounting: list[dict[str, Any]] = []
        self.closed: dict[str, Any] | None = None
        self.delay = delay

    def __call__(self, records: pa.RecordBatch, counters: pa.RecordBatch,
                 accounting: dict[str, Any]) -> None:
        self.records.append(records)
        self.counters.append(counters)
        self.accounting.append(accounting)
        if self.delay:
            time.sleep(self.delay)

    def close(self, accounting: dict[str, Any]) -> None:
        self.closed = accounting

    @property
    def n_records(self) -> int:
        return sum(b.num_rows for b in self.records)

    @property
    def n_counters(self) -> int:
        return sum(b.num_rows for b in self.counters)


def start(col: Collector) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    col.bind()

    def run() -> None:
        out["final"] = col.run()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def wait_ready(col: Collector, timeout: float = 600.0) -> None:
    """Until the worker runs (warm-up done): snapshots have a socket section. On an empty
    compiled-code cache the warm-up compiles the packet and sFlow walks: two to four
    minutes on two busy vCPUs (the other test worker compiling too)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if col.snapshot().get("socket"):
            return
        time.sleep(0.05)
    raise AssertionError("collector did not start")


def send(port: int, count: int, host: str = "127.0.0.1", **kw: Any) -> tuple[int, int]:
    buf, off, ln = synthetic_datagrams(count, **kw)
    s = UdpSender(host, port)
    try:
        left = s.send(buf, off, ln)
    finally:
        s.close()
    assert left == 0
    return count, count * kw.get("samples", 7)


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:9") == ("127.0.0.1", 9)
    assert parse_hostport("[::1]:6343") == ("::1", 6343)
    assert parse_hostport("::") == ("::", 6343)
    assert parse_hostport(":7") == ("0.0.0.0", 7)
    with pytest.raises(ValueError):
        parse_hostport("h:99999")


def test_listener_batches_and_peers() -> None:
    lst = UdpListener("127.0.0.1", 0, batch=64)
    try:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.bind(("127.0.0.1", 0))
        for k in range(10):
            tx.sendto(bytes([k]) * (k + 1), ("127.0.0.1", lst.port))
        n = lst.recv(timeout=1.0)
        assert n == 10
        assert list(lst.lengths[:n]) == list(range(1, 11))
        assert lst.msgs.buf[lst.msgs.slot * 3] == 3
        ver, hi, lo = lst.msgs.peers(n)
        assert set(ver) == {4} and set(hi) == {0}
        assert set(lo) == {(0xFFFF << 32) | 0x7F000001}
        st = socket_stats(lst.sock)
        assert st is not None and st.drops == 0
        tx.close()
    finally:
        lst.close()


def test_collect_everything_sent_is_decoded() -> None:
    sink = MemorySink()
    col = Collector(CollectorOptions(host="127.0.0.1", port=0, batch_datagrams=500,
                                     flush_interval=0.2), sink)
    t, out = start(col)
    wait_ready(col)
    dgrams, samples = send(col.port or 0, 3000)
    time.sleep(0.5)
    col.stop()
    t.join(60)
    final = out["final"]
    assert final["socket"]["received"] == dgrams
    assert final["socket"]["drops"] == 0
    assert final["datagrams"] == dgrams
    assert sink.n_records == samples == final["flow_samples"]
    assert sink.n_counters == dgrams // 10 == final["counter_samples"]
    assert final["lost_datagrams"] == 0 and final["lost_samples"] == 0
    assert sink.closed is not None and sink.closed["datagrams"] == dgrams
    rec = sink.records[0].to_pylist()[0]
    assert rec["encap"] == "vxlan" and rec["kind"] == "flow"


def test_collect_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    sink = MemorySink()
    col = Collector(CollectorOptions(host="::1", port=0, flush_interval=0.1), sink)
    try:
        t, out = start(col)
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    wait_ready(col)
    send(col.port or 0, 200, host="::1")
    time.sleep(0.3)
    col.stop()
    t.join(60)
    assert out["final"]["socket"]["received"] == 200
    assert sink.n_records == 1400


def _read(path: str | Path) -> pa.Table:
    if str(path).endswith(".arrow"):
        import pyarrow.ipc as ipc

        return ipc.open_file(path).read_all()
    return pq.read_table(path)


@pytest.mark.parametrize("suffix", ["parquet", "arrow"])
def test_duration_stops_and_flushes(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"o.{suffix}"
    col = Collector(CollectorOptions(host="127.0.0.1", port=0, duration=3.0,
                                     flush_interval=30.0, batch_datagrams=10**6),
                    FileSink(path))
    t, _out = start(col)
    wait_ready(col)
    send(col.port or 0, 700)
    t.join(120)
    assert not t.is_alive()
    records = _read(path)
    assert records.num_rows == 4900
    assert records.column("agent").null_count == 0 and records.column("vni").null_count == 0
    counters = _read(f"{path}.counters.{suffix}")
    assert counters.num_rows == 70
    assert counters.column("port_name").null_count == 0
    acc = json.loads(Path(str(path) + ".accounting.json").read_text())
    assert acc["datagrams"] == 700 and acc["output"] == {"records": 4900, "counters": 70}


def test_kernel_drops_are_counted_exactly() -> None:
    """A small receive buffer and a slow sink: the kernel drops datagrams; sent ==
    received + socket drops, and the sequence gaps say the same."""
    sink = MemorySink(delay=0.5)
    col = Collector(CollectorOptions(host="127.0.0.1", port=0, rcvbuf=64 << 10,
                                     batch_datagrams=50, flush_interval=0.05), sink)
    t, out = start(col)
    wait_ready(col)
    port = col.port or 0
    buf, off, ln = synthetic_datagrams(3000)
    s = UdpSender("127.0.0.1", port)
    s.send(buf[: off[-1]], off[:-1], ln[:-1])
    time.sleep(2.0)  # let the collector get through what its buffer kept
    s.send(buf, off[-1:], ln[-1:])  # the last one: the gaps before it become visible
    s.close()
    time.sleep(1.5)
    col.stop()
    t.join(120)
    f = out["final"]
    sock = f["socket"]
    assert sock["drops"] > 0
    assert sock["received"] + sock["drops"] == 3000
    assert f["lost_datagrams"] == sock["drops"]
    assert sink.n_records == 7 * sock["received"]


def test_forward_to_another_collector() -> None:
    b_sink = MemorySink()
    b = Collector(CollectorOptions(host="127.0.0.1", port=0, flush_interval=0.1), b_sink)
    tb, outb = start(b)
    wait_ready(b)
    a = Collector(CollectorOptions(host="127.0.0.1", port=0, flush_interval=0.1,
                                   forward=("127.0.0.1", b.port or 0)), None)
    ta, outa = start(a)
    wait_ready(a)
    send(a.port or 0, 500)
    time.sleep(1.0)
    a.stop()
    ta.join(60)
    time.sleep(0.5)
    b.stop()
    tb.join(60)
    assert outa["final"]["socket"]["forwarded"] == 500
    assert outb["final"]["datagrams"] == 500
    assert b_sink.n_records == 3500


def test_several_workers() -> None:
    sink = MemorySink()
    col = Collector(CollectorOptions(host="127.0.0.1", port=0, workers=2,
                                     flush_interval=0.2), sink)
    t, out = start(col)
    time.sleep(0.2)
    # wait until both workers report
    t0 = time.monotonic()
    while len(col._snapshots) < 2 and time.monotonic() - t0 < 120:
        time.sleep(0.1)
    port = col.port or 0
    total = 0
    for k in range(8):  # eight senders (source ports) -> spread over the two sockets
        buf, off, ln = synthetic_datagrams(250, agents=1)
        buf = buf.copy()
        buf[off + 11] = k + 1  # a distinct agent address per sender
        s = UdpSender("127.0.0.1", port)
        s.send(buf, off, ln)
        s.close()
        total += 250
    time.sleep(1.0)
    col.stop()
    t.join(120)
    f = out["final"]
    assert f["datagrams"] == total
    assert f["socket"]["received"] == total and f["socket"]["drops"] == 0
    assert sink.n_records == 7 * total
    assert len(f["agents"]) == 8 and f["lost_datagrams"] == 0
    assert f["collector"]["workers"] == 2


def test_prometheus_live() -> None:
    from prometheus_client import generate_latest

    col = Collector(CollectorOptions(host="127.0.0.1", port=0, flush_interval=0.1), None)
    t, _ = start(col)
    wait_ready(col)
    send(col.port or 0, 100)
    time.sleep(0.8)
    text = generate_latest(col.registry()).decode()
    col.stop()
    t.join(60)
    assert 'fabricscope_sflow_datagrams_total{agent="10.0.0.1",sub_agent="0"} 100.0' in text
    assert "fabricscope_sflow_socket_drops_total 0.0" in text


# -- the command --------------------------------------------------------------------------

def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = int(s.getsockname()[1])
    s.close()
    return p


def fabricscope(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "fabricscope", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_listening(p: subprocess.Popen[str], port: int, timeout: float = 300) -> None:
    """Until the command says it is ready (bound and warmed up)."""
    assert p.stderr is not None
    line = p.stderr.readline()  # "... listening on HOST:PORT ..."
    if "first run since install" in line:  # an empty compiled-code cache: compiling first
        line = p.stderr.readline()
    assert f"listening on 127.0.0.1:{port}" in line, (line, p.poll())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_command_graceful_stop_flushes(tmp_path: Path, sig: int) -> None:
    port = free_port()
    out = tmp_path / "s.parquet"
    p = fabricscope("collect", "--listen", f"127.0.0.1:{port}", "--out", str(out), "--json",
                    "--flush", "60", "--batch", "1000000", "--no-store")
    try:
        wait_listening(p, port)
        send(port, 400)
        time.sleep(1.0)
        p.send_signal(sig)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, stderr
    final = json.loads(stdout)
    assert final["datagrams"] == 400 and final["socket"]["drops"] == 0
    assert pq.read_table(out).num_rows == 2800  # nothing was decoded before the signal


def test_command_ndjson_and_table(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "s.ndjson"
    p = fabricscope("collect", "--listen", f"127.0.0.1:{port}", "--out", str(out),
                    "--duration", "6", "--no-store")
    try:
        wait_listening(p, port)
        send(port, 20)
        _stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sum(1 for x in lines if x["kind"] == "flow") == 140
    assert sum(1 for x in lines if x["kind"] == "counters") == 2
    assert lines[0]["agent"] == "10.0.0.1" and lines[0]["encap"] == "vxlan"
    assert "20 datagrams, 142 samples" in stderr
    assert "10.0.0.1" in stderr


def scrape_until(url: str, line: str, seconds: float) -> str:
    """The metrics page once it holds ``line`` (or the last one read)."""
    deadline = time.monotonic() + seconds
    text = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=5) as r:
                text = r.read().decode()
            if line in text:
                break
        time.sleep(0.2)
    return text


def test_command_store(tmp_path: Path) -> None:
    """Batches go to the store, and --metrics shows its writer's work as it goes."""
    from fabricscope.store import open_store

    port = free_port()
    with socket.socket() as t:
        t.bind(("127.0.0.1", 0))
        mport = t.getsockname()[1]
    db = tmp_path / "db"
    p = fabricscope("collect", "--listen", f"127.0.0.1:{port}", "--db", str(db),
                    "--duration", "12", "--metrics", f"127.0.0.1:{mport}", "--flush", "0.5")
    try:
        wait_listening(p, port)
        send(port, 30)
        staged = 'fabricscope_store_writer_records_total{stage="staged"} 210.0'
        text = scrape_until(f"http://127.0.0.1:{mport}/metrics", staged, 8)
        _, stderr = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, stderr
    with open_store(db) as st:
        n = st.sql("SELECT count(*) AS n FROM records").column("n")[0].as_py()
        c = st.sql("SELECT count(*) AS n FROM counters").column("n")[0].as_py()
    assert (n, c) == (210, 3)
    assert staged in text, text[-2000:]
    assert 'fabricscope_store_writer_cpu_seconds_total{step="stage_write"}' in text
    assert 'fabricscope_store_writer_page_faults_total{step="gather"}' in text
    assert "fabricscope_store_staged_records" in text


def test_command_default_store(tmp_path: Path) -> None:
    """Without --db the batches go to the default store ($FABRICSCOPE_DB here)."""
    from fabricscope.store import open_store

    port = free_port()
    db = tmp_path / "default-db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FABRICSCOPE_DB": str(db)}
    p = subprocess.Popen([sys.executable, "-m", "fabricscope", "collect", "--listen",
                          f"127.0.0.1:{port}", "--duration", "6"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(p, port)
        send(port, 10)
        _, stderr = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, stderr
    with open_store(db) as st:
        assert st.sql("SELECT count(*) AS n FROM records").column("n")[0].as_py() == 70


def test_command_bad_listen() -> None:
    p = fabricscope("collect", "--listen", "127.0.0.1:notaport", "--duration", "1",
                    "--no-store")
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 2
    assert "--listen" in stderr and "Traceback" not in stderr


def test_command_port_in_use() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    try:
        p = fabricscope("collect", "--listen", f"127.0.0.1:{port}", "--duration", "1",
                        "--no-store")
        _, stderr = p.communicate(timeout=120)
    finally:
        s.close()
    assert p.returncode == 2
    assert "cannot listen" in stderr and "Traceback" not in stderr


def test_numpy_peers_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    lst = UdpListener("::1", 0, batch=8)
    try:
        tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        tx.sendto(b"x", ("::1", lst.port))
        assert lst.recv(timeout=1.0) == 1
        ver, hi, lo = lst.msgs.peers(1)
        assert (int(ver[0]), int(hi[0]), int(lo[0])) == (6, 0, 1)
        tx.close()
    finally:
        lst.close()
    assert np.int64  # keep numpy imported for the type


def test_datagram_larger_than_a_slot_is_counted_truncated() -> None:
    from fabricscope.sflow import encode as E

    big = E.datagram(agent="192.0.2.7", seq=1, uptime_ms=1, samples=[
        E.flow_sample(seq=k, source_id_index=1, sampling_rate=1, sample_pool=k,
                      input_if=1, output_if=2, records=[E.raw_header(bytes(1400))])
        for k in range(14)])
    assert len(big) > 16384  # > DEFAULT_SLOT (9,216)
    sink = MemorySink()
    col = Collector(CollectorOptions(host="127.0.0.1", port=0, flush_interval=0.1), sink)
    t, out = start(col)
    wait_ready(col)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.sendto(big, ("127.0.0.1", col.port or 0))
    tx.close()
    time.sleep(0.5)
    col.stop()
    t.join(60)
    f = out["final"]
    assert f["socket"]["received"] == 1 and f["socket"]["truncated"] == 1
    assert f["events"].get("sflow_truncated_datagram") == 1
    assert 0 < sink.n_records < 14  # what fitted in the slot was decoded


@pytest.mark.parametrize("suffix", ["parquet", "arrow"])
def test_an_empty_run_leaves_a_readable_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"o.{suffix}"
    sink = FileSink(path)
    sink.close({"datagrams": 0})
    assert _read(path).num_rows == 0
    assert "vni" in _read(path).column_names
    assert json.loads(Path(f"{path}.accounting.json").read_text())["output"] == {
        "records": 0, "counters": 0}


def test_an_unknown_out_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end in \.ndjson, \.parquet or \.arrow"):
        FileSink(tmp_path / "o.csv")


@pytest.mark.parametrize("suffix", ["parquet", "arrow"])
def test_a_full_disk_is_one_line(tmp_path: Path, suffix: str) -> None:
    """``--out`` on a disk that fills up: the sink raises ``OutputError`` (one line naming
    the file, exit code 2), not a traceback from pyarrow."""
    from fabricscope.errors import OutputError
    from fabricscope.sflow.decoder import SflowDecoder
    from tmpfs import tiny_tmpfs

    with tiny_tmpfs(tmp_path, "128k") as mnt:
        buf, off, ln = synthetic_datagrams(3000)
        recs, cnts = SflowDecoder().decode_payloads(buf, off, ln,
                                                    np.arange(3000, dtype=np.int64))
        sink = FileSink(mnt / f"o.{suffix}")
        try:
            with pytest.raises(OutputError,
                               match=r"cannot write .*: No space left on device"):
                for _ in range(50):
                    sink(recs, cnts, {})
        finally:
            with contextlib.suppress(OutputError):
                sink.close({})  # (the collector closes its sinks when it stops)

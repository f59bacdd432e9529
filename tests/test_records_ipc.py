"""records/ipc.py and ``decode -f arrow``: an Arrow IPC file holds exactly the decoded
batches (the same table as ``-f parquet``), across batches whose dictionaries grow, with
the writer on its own thread; memory.arrow_pool picks jemalloc before pyarrow loads."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fabricscope.capture.writer import PcapWriter
from fabricscope.cli.app import build_app
from fabricscope.errors import UsageError
from fabricscope.records.ipc import ArrowSink

STR = pa.dictionary(pa.int16(), pa.string())


def _batch(names: list[str | None], start: int) -> pa.RecordBatch:
    return pa.record_batch([pa.array(names, pa.string()).dictionary_encode().cast(STR),
                            pa.array(range(start, start + len(names)), pa.int64())],
                           names=["port_name", "n"])


@pytest.mark.parametrize("background", [False, True])
def test_growing_dictionaries_are_recoded_onto_one(tmp_path: Path, background: bool) -> None:
    """Each batch's dictionary differs (new names, another order, nulls): an IPC file
    refuses a replaced dictionary, so the sink re-codes every batch onto one vocabulary
    that only grows; the values read back are the ones written."""
    batches = [_batch(["eth0", "eth0"], 0), _batch(["eth1", None, "eth0"], 2),
               _batch(["eth2", "eth1", "eth0"], 5), _batch([None], 8),
               _batch(["eth2"], 9)]
    path = tmp_path / "x.arrow"
    sink = ArrowSink(str(path), batches[0].schema, background=background)
    assert sum(sink.write(b) for b in batches) == 10
    sink.close()
    t = ipc.open_file(path).read_all()
    assert t.column("port_name").to_pylist() == [
        "eth0", "eth0", "eth1", None, "eth0", "eth2", "eth1", "eth0", None, "eth2"]
    assert t.column("n").to_pylist() == list(range(10))
    assert t.schema.field("port_name").type == STR


def test_a_write_error_on_the_thread_reaches_the_caller(tmp_path: Path) -> None:
    """A batch the IPC writer refuses (a nested dictionary replaced: not re-coded) fails
    on the writer's thread; the caller sees the error at its next call, not silence."""
    typ = pa.struct([pa.field("t", STR)])

    def nested(names: list[str]) -> pa.RecordBatch:
        inner = pa.array(names).dictionary_encode().cast(STR)
        return pa.record_batch([pa.StructArray.from_arrays([inner], fields=list(typ))],
                               names=["s"])

    sink = ArrowSink(str(tmp_path / "x.arrow"), nested(["a"]).schema, background=True)
    sink.write(nested(["a"]))
    sink.write(nested(["b"]))  # another dictionary for the same nested field
    try:
        with pytest.raises(pa.ArrowInvalid, match=r"[Dd]ictionary"):
            sink.write(nested(["a"]))
            sink.close()
    finally:
        with contextlib.suppress(pa.ArrowException):
            sink.close()  # the thread has stopped: this does not hang


def _capture(path: Path, frames: int) -> None:
    """VXLAN, GENEVE and plain frames, more than two decoder batches (16,384 frames)."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    inner = Ether(dst="02:00:00:00:00:02") / IP(src="10.1.0.5", dst="10.2.0.9") / TCP(sport=40000, dport=443)
    kinds = [
        bytes(Ether(dst="02:00:00:00:00:02") / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=50000, dport=4789)
              / VXLAN(vni=100) / inner),
        bytes(Ether(dst="02:00:00:00:00:02") / IP(src="192.0.2.3", dst="192.0.2.4") / UDP(sport=50001, dport=53)),
        bytes(Ether(dst="02:00:00:00:00:02") / IP(src="192.0.2.5", dst="192.0.2.6") / TCP(sport=1, dport=2))[:40],
    ]
    with PcapWriter(path, nanosecond=True) as w:
        for i in range(frames):
            w.write(kinds[i % 3], 1_700_000_000_000_000_000 + i * 1000)


def test_decode_arrow_equals_decode_parquet(tmp_path: Path) -> None:
    pcap = tmp_path / "mix.pcap"
    _capture(pcap, 40_000)
    outs = {}
    for fmt in ("arrow", "parquet"):
        out = tmp_path / f"o.{fmt}"
        res = CliRunner().invoke(build_app(), ["decode", str(pcap), "-f", fmt, "-o", str(out),
                                               "--summary-json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stderr.strip().splitlines()[-1])["written"] == 40_000
        outs[fmt] = out
    a = ipc.open_file(outs["arrow"]).read_all()
    p = pq.read_table(outs["parquet"])
    assert a.num_rows == 40_000 and a.column_names == p.column_names
    assert ipc.open_file(outs["arrow"]).num_record_batches >= 3  # several batches
    for name in a.column_names:  # (Parquet reads dictionaries back as their type too)
        assert a.column(name).to_pylist() == p.column(name).to_pylist(), name
    assert a.column("vni").to_pylist()[:3] == [100, None, None]
    assert a.column("error").to_pylist()[2] is not None  # the cut TCP header is marked


def test_decode_arrow_needs_an_output_file(tmp_path: Path) -> None:
    pcap = tmp_path / "mix.pcap"
    _capture(pcap, 3)
    res = CliRunner().invoke(build_app(), ["decode", str(pcap), "-f", "arrow"])
    assert isinstance(res.exception, UsageError)  # (main() prints it, exit code 2)
    assert str(res.exception) == "--format arrow needs -o FILE"


def test_decode_arrow_puts_counters_in_their_own_file(shared_captures: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "o.arrow"
    res = CliRunner().invoke(build_app(), [
        "decode", str(shared_captures / "tcpdump" / "sflow_multiple_counter_30_pdus.pcap"),
        "-f", "arrow", "-o", str(out)])
    assert res.exit_code == 0, res.output
    counters = ipc.open_file(str(out) + ".counters.arrow").read_all()
    assert counters.num_rows == 144
    expected = pq.read_table(_parquet_counters(shared_captures, tmp_path))
    assert counters.column("in_octets").to_pylist() == expected.column("in_octets").to_pylist()


def _parquet_counters(shared: Path, tmp_path: Path) -> str:
    out = tmp_path / "p.parquet"
    res = CliRunner().invoke(build_app(), [
        "decode", str(shared / "tcpdump" / "sflow_multiple_counter_30_pdus.pcap"),
        "-f", "parquet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    return str(out) + ".counters.parquet"


POOL = ("import sys; from fabricscope.memory import arrow_pool; {pre}arrow_pool(); "
        "import pyarrow as pa; print(pa.default_memory_pool().backend_name)")


def _pool(pre: str = "", **env: str) -> str:
    e = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    e.update(env)
    return subprocess.run([sys.executable, "-c", POOL.format(pre=pre)], env=e, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_arrow_pool_is_jemalloc_unless_the_user_chose() -> None:
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow is built without jemalloc")
    assert _pool() == "jemalloc"  # before pyarrow loads: the C++ default is set
    assert _pool("import pyarrow; ") == "jemalloc"  # after: the Python side is switched
    assert _pool(ARROW_DEFAULT_MEMORY_POOL="system") == "system"  # the user's choice stays


def test_background_keeps_order_and_never_blocks_after_an_error() -> None:
    """Items run in order on the thread; after a failure the caller gets the error at
    its next call, and puts after that do not hang (the thread keeps draining)."""
    from fabricscope.records.background import Background

    seen: list[int] = []

    def fn(x: int) -> None:
        if x == 50:
            raise OSError(28, "No space left on device")
        seen.append(x)

    bg = Background(fn, name="t")
    with pytest.raises(OSError, match="No space left"):
        for x in range(200):
            bg.put(x)
    bg.close()  # does not hang, and the error was raised once
    assert seen == list(range(50))  # nothing after the failure was written

"""``fabricscope ingest``: captures into the store, summaries, re-ingest, bad input."""

from __future__ import annotations

import errno
import gzip
import io
import json
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from fabricscope.capture.writer import PcapWriter
from fabricscope.store import RecordFilter, open_store
from fabricscope.store import embedded as emb

scapy = pytest.importorskip("scapy.all")
from scapy.all import IP, TCP, UDP, VXLAN, Ether, Raw  # noqa: E402

from fabricscope.sflow import encode as E  # noqa: E402

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9
N_VXLAN = 40
AGENT = "10.255.0.1"


def vxlan_frame(i: int) -> bytes:
    inner = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
             / IP(src="10.1.0.5", dst="10.2.0.9", ttl=64)
             / TCP(sport=43512 + i % 2, dport=443) / Raw(b"x" * 20))
    return bytes(Ether() / IP(src="192.168.0.1", dst="192.168.0.2", ttl=62)
                 / UDP(sport=50000, dport=4789) / VXLAN(vni=100) / inner)


def sflow_frame(seq: int, octets: int, uptime: int) -> bytes:
    dgram = E.datagram(agent=AGENT, seq=seq, uptime_ms=uptime, samples=[
        E.flow_sample(seq=seq, source_id_index=3, sampling_rate=1000, sample_pool=1000 * seq,
                      input_if=3, output_if=4, records=[E.raw_header(vxlan_frame(seq))]),
        E.counter_sample(seq=seq, source_id_index=3, records=[
            E.generic_interface_counters(ifindex=3, speed=10**9, in_octets=octets,
                                         out_octets=octets // 2),
            E.port_name("swp3")]),
    ])
    return bytes(Ether() / IP(src=AGENT, dst="10.0.0.100") / UDP(sport=50000, dport=6343)
                 / Raw(dgram))


def write_capture(path: Path, *, sflow: bool = True, n: int = N_VXLAN) -> int:
    """VXLAN frames, then (optionally) two sFlow datagrams 30 s apart; returns records."""
    with PcapWriter(path, nanosecond=True) as w:
        for i in range(n):
            w.write(vxlan_frame(i), T0_NS + i * 10**9)
        if sflow:
            w.write(sflow_frame(1, 0, 1000), T0_NS + 60 * 10**9)
            w.write(sflow_frame(2, 30 * 125_000_000, 31_000), T0_NS + 90 * 10**9)
    return n + (2 if sflow else 0)


def run(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
        ) -> tuple[int, str, str]:
    from fabricscope.cli.app import main

    monkeypatch.setattr(sys, "argv", ["fabricscope", *args])
    with pytest.raises(SystemExit) as ex:
        main()
    out = capsys.readouterr()
    code = ex.value.code if isinstance(ex.value.code, int) else (0 if ex.value.code is None
                                                                   else 2)
    return code, out.out, out.err


@pytest.fixture
def cap(tmp_path: Path) -> Path:
    p = tmp_path / "fabric.pcap"
    write_capture(p)
    return p


def test_ingest_and_summary(tmp_path: Path, cap: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "db"
    code, out, err = run(["ingest", str(cap), "--db", str(db), "--json"], capsys, monkeypatch)
    assert code == 0, err
    res = json.loads(out)
    t = res["totals"]
    assert t["ingested"] == 1 and t["records"] == N_VXLAN + 2 and t["counters"] == 2
    assert t["first_ts"].startswith("2026-11-25T10:00:00") and t["span_s"] == 90
    assert res["files"][0]["status"] == "ingested" and res["files"][0]["sflow_datagrams"] == 2
    with open_store(db) as st:
        recs = st.select(RecordFilter(inner_src="10.1.0.5", inner_dst="10.2.0.9"))
        assert recs.num_rows == N_VXLAN + 2
        assert set(recs.column("encap").to_pylist()) == {"vxlan"}
        sampled = st.select(RecordFilter(agent=AGENT))
        assert sampled.num_rows == 2
        assert sampled.column("sampling_rate").to_pylist() == [1000, 1000]
        polls = st.counters(AGENT, 3).to_pylist()
        assert len(polls) == 2 and polls[1]["in_bps"] == pytest.approx(1e9)
        assert polls[1]["in_util"] == pytest.approx(1.0)
        assert polls[1]["port_name"] == "swp3"
        agg = st.aggregate(RecordFilter(agent=AGENT), [], resolution="raw").to_pylist()[0]
        assert agg["est_packets"] == 2000
    # the human summary
    code, out, err = run(["ingest", str(cap), "--db", str(db), "--force"], capsys,
                         monkeypatch)
    assert code == 0
    assert "records" in err and "records/s" in err and "2026-11-25T10:00:00" in err


def test_ingest_seals_unless_told_not_to(tmp_path: Path, cap: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the command returns with everything sealed (sorted Parquet files and
    their aggregates); with --no-seal once the records are committed (staged), which
    queries read as well."""
    db = tmp_path / "db"
    code, out, err = run(["ingest", str(cap), "--db", str(db), "--json", "--no-seal"],
                         capsys, monkeypatch)
    assert code == 0, err
    t = json.loads(out)["totals"]
    assert t["seal_s"] is None and t["committed_s"] <= t["seconds"]
    with open_store(db) as st:
        assert st.info()["staged_rows"] == N_VXLAN + 2
        assert st.select(RecordFilter(inner_src="10.1.0.5")).num_rows == N_VXLAN + 2
        agg = st.aggregate(RecordFilter(), [], resolution="1m").to_pylist()[0]
        assert agg["samples"] == N_VXLAN + 2  # staged records in the aggregates too
    code, out, err = run(["ingest", str(cap), "--db", str(db), "--json", "--force"],
                         capsys, monkeypatch)
    assert code == 0, err
    t = json.loads(out)["totals"]
    assert t["seal_s"] is not None and t["seal_s"] >= 0
    # where the store's CPU went: this run staged its records, then sealed them and
    # the first run's (staged by a writer before it)
    cpu = t["store_cpu"]
    assert cpu["rows"] == {"staged": N_VXLAN + 2, "sealed": 2 * (N_VXLAN + 2)}
    assert cpu["cpu_s"]["stage_write"] > 0 and cpu["cpu_s"]["encode_records"] > 0
    assert cpu["us_per_record_total"] >= cpu["seal_us_per_record"] > 0
    with open_store(db) as st:
        assert st.info()["staged_rows"] == 0  # the earlier run's staged records too
        assert st.info()["rows"] == 2 * (N_VXLAN + 2)
        agg = st.aggregate(RecordFilter(), [], resolution="1m").to_pylist()[0]
        assert agg["samples"] == 2 * (N_VXLAN + 2)


def test_reingest_is_skipped_unless_forced(tmp_path: Path, cap: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "db")
    assert run(["ingest", str(cap), "--db", db, "-q"], capsys, monkeypatch)[0] == 0
    code, out, err = run(["ingest", str(cap), "--db", db, "--json"], capsys, monkeypatch)
    assert code == 0
    assert json.loads(out)["files"][0]["status"] == "skipped"
    copy = tmp_path / "renamed.pcap"  # same content under another name: still the same file
    shutil.copy(cap, copy)
    code, _out, err = run(["ingest", str(copy), "--db", db], capsys, monkeypatch)
    assert code == 0 and "skipped, already ingested" in err and "--force" in err
    with open_store(db) as st:
        assert st.select(columns=["ts"]).num_rows == N_VXLAN + 2
    assert run(["ingest", str(cap), "--db", db, "--force", "-q"], capsys, monkeypatch)[0] == 0
    with open_store(db) as st:
        assert st.select(columns=["ts"]).num_rows == 2 * (N_VXLAN + 2)


def test_gzip_and_pcapng_and_several_files(tmp_path: Path, cap: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    gz = tmp_path / "other.pcap.gz"
    plain = tmp_path / "other.pcap"
    write_capture(plain, sflow=False, n=10)
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    from fabricscope.capture.writer import PcapngWriter

    ng = tmp_path / "x.pcapng"
    with PcapngWriter(ng) as w:
        w.add_interface(1, tsresol=9)
        for i in range(5):
            w.write(vxlan_frame(i), T0_NS + (200 + i) * 10**9)
    db = str(tmp_path / "db")
    code, out, err = run(["ingest", str(cap), str(gz), str(ng), "--db", db, "--json"],
                         capsys, monkeypatch)
    assert code == 0, err
    t = json.loads(out)["totals"]
    assert t["files"] == 3 and t["ingested"] == 3 and t["records"] == N_VXLAN + 2 + 10 + 5


def test_bad_input_is_one_line_and_keeps_what_was_decoded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.pcap"
    write_capture(good, sflow=False, n=30)
    raw = good.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[:-30])  # the last record is cut short
    text = tmp_path / "notes.txt"
    text.write_text("this is not a capture\n" * 10)
    db = str(tmp_path / "db")
    code, out, err = run(["ingest", str(cut), "--db", db], capsys, monkeypatch)
    assert code == 2
    assert err.count("\n") >= 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("fabricscope: error:") and "cut.pcap" in last
    with open_store(db) as st:
        assert st.select(columns=["ts"]).num_rows == 29  # the frames before the cut
        assert st.info()["ingested_files"] == 0  # not marked: it can be ingested again
    code, out, err = run(["ingest", str(text), "--db", db], capsys, monkeypatch)
    assert code == 2 and "notes.txt" in err.strip().splitlines()[-1]
    code, out, err = run(["ingest", str(tmp_path / "missing.pcap"), "--db", db], capsys,
                         monkeypatch)
    assert code == 2 and "no such file" in err
    # a bad file among good ones: the good ones go in, the exit code says something failed
    code, out, err = run(["ingest", str(text), str(good), "--db", db, "--json"], capsys,
                         monkeypatch)
    assert code == 2
    files = json.loads(out)["files"]
    assert [f["status"] for f in files] == ["failed", "ingested"]


def test_bad_store_location_is_one_line(tmp_path: Path, cap: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x").write_text("x")
    code, _out, err = run(["ingest", str(cap), "--db", str(junk)], capsys, monkeypatch)
    assert code == 2 and "not a fabricscope store" in err and "Traceback" not in err


def test_disk_full_stops_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cap = tmp_path / "big.pcap"
    write_capture(cap, sflow=False, n=200)
    db = tmp_path / "db"
    real = emb.write_staged
    calls = {"n": 0}

    def full(table: pa.Table, path: Path) -> int:
        calls["n"] += 1
        if calls["n"] > 2:  # two batches (a staged file each) fit, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, path)

    monkeypatch.setattr(emb, "write_staged", full)
    code, _out, err = run(["ingest", str(cap), "--db", str(db), "--batch-records", "50"],
                         capsys, monkeypatch)
    assert code == 2
    assert "no space left" in err and "Traceback" not in err
    monkeypatch.setattr(emb, "write_staged", real)
    with open_store(db) as st:
        assert st.select(columns=["ts"]).num_rows == 100  # the two committed batches
    # once there is room, ingesting again completes the file without duplicates
    code, _out, err = run(["ingest", str(cap), "--db", str(db), "--batch-records", "50",
                          "--json"], capsys, monkeypatch)
    assert code == 0, err
    with open_store(db) as st:
        assert st.select(columns=["ts"]).num_rows == 200
        assert st.info()["ingested_files"] == 1


def test_progress_bar_renders(tmp_path: Path, cap: Path) -> None:
    from rich.console import Console

    from fabricscope.cli.commands import ingest as ing
    from fabricscope.decode.tables import DecodeConfig

    buf = io.StringIO()
    progress = ing._progress(Console(file=buf, force_terminal=True, width=160))
    with open_store(tmp_path / "db", write=True) as st:
        progress.start()
        res = ing.ingest_file(st, cap, DecodeConfig(), sflow=False, force=False, digest="d",
                          batch_records=10, progress=progress)
        progress.stop()
    assert res.status == "ingested" and res.batches == 5
    text = buf.getvalue()
    assert "fabric.pcap" in text and "records" in text


def test_ingest_into_clickhouse(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("chdb")
    # recent timestamps: ClickHouse's TTL is measured from the wall clock
    p = tmp_path / "recent.pcap"
    now_ns = int((datetime.now(UTC) - timedelta(hours=1)).timestamp()) * 10**9
    with PcapWriter(p, nanosecond=True) as w:
        for i in range(20):
            w.write(vxlan_frame(i), now_ns + i * 10**9)
    db = f"chdb://{tmp_path / 'ch'}"
    code, out, err = run(["ingest", str(p), "--db", db, "--json"], capsys, monkeypatch)
    assert code == 0, err
    code, out, err = run(["ingest", str(p), "--db", db, "--json"], capsys, monkeypatch)
    assert json.loads(out)["files"][0]["status"] == "skipped"
    with open_store(db) as st:
        assert st.select(RecordFilter(inner_src="10.1.0.5")).num_rows == 20

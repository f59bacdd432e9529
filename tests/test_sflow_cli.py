"""``fabricscope decode`` on captures of sFlow datagrams prints their samples."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fabricscope.cli.app import build_app


def test_decode_prints_samples_as_ndjson(shared_captures: Path) -> None:
    res = CliRunner().invoke(build_app(), [
        "decode", str(shared_captures / "akvorado-sflow" / "data-encap-vxlan.pcap"),
        "--summary-json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{\"ts")]
    assert len(lines) == 1
    r = lines[0]
    assert (r["kind"], r["agent"], r["sub_agent"], r["seq"], r["sample_seq"]) == (
        "flow", "127.0.0.1", 1402, 36, 40)
    assert (r["encap"], r["vni"], r["inner_src"], r["inner_dst"]) == (
        "vxlan", 100, "2001:db8:4::1", "2001:db8:4::3")
    assert r["in_if"] == 0x3FFFFFFF and r["out_if"] == 0x3FFFFFFF


def test_decode_table_with_counters(shared_captures: Path) -> None:
    res = CliRunner().invoke(build_app(), [
        "decode", str(shared_captures / "tcpdump" / "sflow_multiple_counter_30_pdus.pcap"),
        "--format", "table"])
    assert res.exit_code == 0, res.output
    assert "15.184.8.4 counters: in 820721 B" in res.stdout
    assert "144 counter records" in res.output


def test_decode_segv_capture_is_a_clean_result(shared_captures: Path) -> None:
    res = CliRunner().invoke(build_app(), [
        "decode", str(shared_captures / "tcpdump" / "sflow_print-segv.pcap"),
        "--summary-json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stderr.strip().splitlines()[-1])
    assert summary["records"] == 0 and summary["sflow_datagrams"] == 1
    assert summary["events"] == {"sflow_truncated_datagram": 1}


def test_decode_parquet_puts_counters_in_their_own_file(shared_captures: Path,
                                                         tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "o.parquet"
    res = CliRunner().invoke(build_app(), [
        "decode", str(shared_captures / "tcpdump" / "sflow_multiple_counter_30_pdus.pcap"),
        "-f", "parquet", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert pq.read_table(str(out) + ".counters.parquet").num_rows == 144
    # the five other datagrams to port 6343 are not sFlow (sflow_bad_version): no records
    assert not out.exists() or pq.read_table(out).num_rows == 0

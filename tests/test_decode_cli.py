"""``fabricscope decode``'s progress bar: on when asked (or writing a file to a terminal),
showing the file and the records written; off by default when not on a terminal."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fabricscope.capture.writer import PcapWriter
from fabricscope.cli.app import build_app


def _capture(path: Path, frames: int) -> None:
    frame = bytes.fromhex("020000000002020000000001080045000028000100004006f97cc0000201"
                          "c000020204d2005000000000000000005002200000000000")
    with PcapWriter(path, nanosecond=True) as w:
        for i in range(frames):
            w.write(frame, 1_700_000_000_000_000_000 + i)


def test_progress_bar_shows_the_file_and_the_records(tmp_path: Path) -> None:
    pcap = tmp_path / "cap.pcap"
    _capture(pcap, 20_000)
    res = CliRunner().invoke(build_app(), ["decode", str(pcap), "-f", "arrow", "-o",
                                           str(tmp_path / "o.arrow"), "--progress"])
    assert res.exit_code == 0, res.output
    bar = [ln for ln in res.stderr.splitlines() if ln.startswith("cap.pcap")]
    assert bar, res.stderr
    assert "20,000 records" in bar[-1]
    size = pcap.stat().st_size / 1e6
    assert f"{size:.1f}/{size:.1f} MB" in bar[-1]


def test_no_progress_bar_when_not_on_a_terminal(tmp_path: Path) -> None:
    pcap = tmp_path / "cap.pcap"
    _capture(pcap, 10)
    res = CliRunner().invoke(build_app(), ["decode", str(pcap), "-f", "arrow", "-o",
                                           str(tmp_path / "o.arrow")])
    assert res.exit_code == 0, res.output
    assert "records written" in res.stderr
    assert not any(ln.startswith("cap.pcap") for ln in res.stderr.splitlines())

"""``fabricscope decode``'s progress bar (on when asked, or writing a file to a terminal;
showing the file and the records written) and its output errors (one line naming the
file: a missing directory, a full disk)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fabricscope.capture.writer import PcapWriter
from fabricscope.cli.app import build_app
from fabricscope.errors import OutputError
from tmpfs import tiny_tmpfs


def _capture(path: Path, frames: int) -> None:
    frame = bytes.fromhex("020000000002020000000001080045000028000100004006f97cc0000201"
                          "c000020204d2005000000000000000005002200000000000")
    with PcapWriter(path, nanosecond=True) as w:
        for i in range(frames):  # source address and ports differ from frame to frame
            f = (frame[:26] + (0x0A000000 + i * 7919).to_bytes(4, "big") + frame[30:34]
                 + (i * 31 & 0xFFFF).to_bytes(2, "big") + frame[36:])
            w.write(f, 1_700_000_000_000_000_000 + i * 1_000_003)


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


@pytest.mark.parametrize("fmt", ["arrow", "parquet", "ndjson"])
def test_an_output_that_cannot_be_written_is_one_line(tmp_path: Path, fmt: str) -> None:
    pcap = tmp_path / "cap.pcap"
    _capture(pcap, 10)
    out = tmp_path / "missing" / f"o.{fmt}"
    res = CliRunner().invoke(build_app(), ["decode", str(pcap), "-f", fmt, "-o", str(out)])
    assert isinstance(res.exception, OutputError)  # main() prints it, exit code 2
    assert str(res.exception) == f"cannot write {out}: No such file or directory"


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_a_full_disk_is_one_line(tmp_path: Path, fmt: str) -> None:
    """The disk fills up while the file is written (for Arrow, on the sink's own
    thread): the error reaches the command as one line, not a traceback."""
    pcap = tmp_path / "cap.pcap"
    _capture(pcap, 60_000)
    with tiny_tmpfs(tmp_path, "256k") as mnt:
        out = mnt / f"o.{fmt}"
        res = CliRunner().invoke(build_app(), ["decode", str(pcap), "-f", fmt, "-o",
                                               str(out)])
        assert isinstance(res.exception, OutputError), res.exception
        assert str(res.exception) == f"cannot write {out}: No space left on device"

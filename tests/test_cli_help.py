"""Every command and subcommand answers --help (exit 0, a usage line); --version works;
a bad option is a usage error (exit 2), never a traceback."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fabricscope import __version__
from fabricscope.cli.app import build_app

runner = CliRunner()


def _paths() -> list[list[str]]:
    cmd = typer.main.get_command(build_app())
    out: list[list[str]] = []

    def walk(c: Any, prefix: list[str]) -> None:
        out.append(prefix)
        for name, sub in (getattr(c, "commands", None) or {}).items():
            walk(sub, [*prefix, name])

    walk(cmd, [])
    return out


PATHS = _paths()


def test_the_contract_commands_exist() -> None:
    names = {" ".join(p) for p in PATHS}
    for c in ("decode", "ingest", "collect", "inventory load", "inventory show",
              "inventory diff", "inventory import", "trace", "impact", "predict", "matrix",
              "check chains", "serve", "sim", "sim replay", "demo", "lab up", "lab down",
              "lab status", "lab traffic"):
        assert c in names, c


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "(root)")
def test_help(path: list[str]) -> None:
    r = runner.invoke(build_app(), [*path, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage" in r.output


def test_version() -> None:
    r = runner.invoke(build_app(), ["--version"])
    assert r.exit_code == 0
    assert r.output.strip() == f"fabricscope {__version__}"


def test_unknown_option_is_a_usage_error() -> None:
    r = runner.invoke(build_app(), ["trace", "--no-such-option"])
    assert r.exit_code == 2
    assert "Traceback" not in r.output

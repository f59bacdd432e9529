from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_CAPTURES = Path(os.environ.get("FABRICSCOPE_SHARED_CAPTURES", ROOT.parent / "shared" / "captures"))


@pytest.fixture(scope="session")
def shared_captures() -> Path:
    """The folder of other projects' captures (../shared/captures); skips when absent."""
    if not SHARED_CAPTURES.is_dir():
        pytest.skip(f"shared captures not found at {SHARED_CAPTURES}")
    return SHARED_CAPTURES


@pytest.fixture(scope="session")
def tshark() -> str:
    """Path of tshark; skips when not installed (CI installs it)."""
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
    return path


def is_root() -> bool:
    return os.geteuid() == 0

"""Runs a bench/ script the way its smoke test needs: this interpreter, the project root
as the working directory, ``--json`` last; a failed run fails with the script's stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_bench(script: str, *args: str, timeout: float = 600) -> Any:
    """The parsed JSON that ``bench/<script> ARGS --json`` prints."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--json"],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)

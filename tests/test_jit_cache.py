"""fabricscope/__init__.py: numba's cache directory is keyed by the kernel sources, and a
process knows when it starts with an empty one (the demo then says it compiles once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CODE = ("import json, os, fabricscope; print(json.dumps({'dir': os.environ['NUMBA_CACHE_DIR'],"
        " 'fresh': fabricscope.JIT_CACHE_FRESH}))")


def _start(cache_home: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(cache_home)
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True, check=True, timeout=60)
    got: dict[str, object] = json.loads(out.stdout)
    return got


def test_fresh_cache_is_detected_then_reused(tmp_path: Path) -> None:
    first = _start(tmp_path)
    assert first["fresh"] is True
    d = Path(str(first["dir"]))
    assert d.is_dir() and d.is_relative_to(tmp_path / "fabricscope" / "numba")
    (d / "kernel.nbi").write_bytes(b"compiled")  # what numba leaves after compiling
    second = _start(tmp_path)
    assert second == {"dir": str(d), "fresh": False}  # same sources: same directory

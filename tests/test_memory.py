"""memory.py: the collector's malloc settings make batch-sized buffers reused, not
page-faulted in anew for every batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, resource, sys
import numpy as np
from fabricscope.memory import tune_malloc
getattr(np, "_core", None).multiarray._set_madvise_hugepage(False)  # 4 KiB pages, not huge ones
ok = tune_malloc()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    a = np.ones(40 << 20, np.uint8)  # above glibc's largest dynamic mmap threshold
    del a
r1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"ok": ok, "faults": r1 - r0}))
"""


def _probe(mode: str) -> dict[str, int]:
    env = dict(os.environ, FABRICSCOPE_MALLOC=mode)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt: Linux only")
def test_tuned_malloc_reuses_large_buffers() -> None:
    default = _probe("default")
    tuned = _probe("tuned")
    if not tuned["ok"]:
        pytest.skip("this C library has no mallopt (not glibc)")
    assert default["ok"] is False  # FABRICSCOPE_MALLOC=default turns it off
    pages = (40 << 20) // 4096
    # glibc's defaults map every 40 MiB array afresh: a fault per page, each time
    assert default["faults"] >= 6 * pages
    # tuned: the first array's pages are reused by the next ones
    assert tuned["faults"] < 3 * pages


def test_freeze_gc_hides_startup_objects_from_the_collector() -> None:
    """After ``freeze_gc`` the objects alive at the call are in the permanent generation
    (a full collection no longer walks them); objects made later are collected as
    before (a cycle made afterwards is freed)."""
    code = (
        "import gc, weakref\n"
        "import fabricscope.memory as m\n"
        "assert gc.get_freeze_count() == 0\n"
        "m.freeze_gc()\n"
        "frozen = gc.get_freeze_count()\n"
        "junk = [[] for _ in range(5000)]\n"
        "m.freeze_gc()\n"  # a second call freezes nothing more
        "assert gc.get_freeze_count() == frozen\n"
        "class C: pass\n"
        "a = C(); b = C(); a.b = b; b.a = a\n"
        "r = weakref.ref(a)\n"
        "del a, b\n"
        "gc.collect()\n"
        "print(frozen, r() is None)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert int(out[0]) > 1000
    assert out[1] == "True"

"""fabricscope: trace tenant overlay flows hop by hop across the physical fabric.

Data flow: capture -> decode/sflow -> records -> store -> correlate (+inventory)
-> query -> cli/api/web. See docs/architecture.md.
"""

#: the package version (pyproject.toml reads it from here)
__version__ = "0.1.0"

__all__ = ["__version__"]

#: True when this process started with an empty compiled-code cache (first run after an
#: install or upgrade): the first decode compiles numba's kernels, a few minutes, once.
JIT_CACHE_FRESH = False


# where the numba kernels (and everything they inline) live
_KERNEL_DIRS = ("capture", "decode", "records", "sflow", "sim")
_KERNEL_FILES = ("store/rollup.py", "inventory/enrich_kernels.py")


def _numba_cache_dir() -> None:
    """Compiled numba kernels go to a cache directory named after a hash of the package's
    kernel sources. numba's own cache is keyed on the file holding each jitted function only, so
    a kernel that inlines a function from another module would keep running stale code
    after that module changed (an upgrade, or an edit in a source tree); a new hash means a
    fresh directory. Older directories are pruned (the 3 most recent are kept). Skipped
    when NUMBA_CACHE_DIR is set."""
    import os
    import sys

    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    import hashlib
    import shutil
    from pathlib import Path

    try:
        import platformdirs

        pkg = Path(__file__).resolve().parent
        h = hashlib.sha1(__version__.encode())
        sources = [p for d in _KERNEL_DIRS for p in (pkg / d).rglob("*.py")]
        sources += [pkg / f for f in _KERNEL_FILES]
        for p in sorted(sources):
            h.update(p.relative_to(pkg).as_posix().encode())
            h.update(p.read_bytes())
        base = Path(platformdirs.user_cache_dir("fabricscope")) / "numba"
        d = base / h.hexdigest()[:16]
        d.mkdir(parents=True, exist_ok=True)
        global JIT_CACHE_FRESH
        JIT_CACHE_FRESH = not any(d.iterdir())
        os.utime(d)
        olds = sorted((x for x in base.iterdir() if x.is_dir() and x != d),
                      key=lambda x: x.stat().st_mtime, reverse=True)
        for old in olds[2:]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        return  # no writable cache dir: numba falls back to its own choice
    os.environ["NUMBA_CACHE_DIR"] = str(d)
    if "numba" in sys.modules:  # imported before us: set its config directly
        sys.modules["numba"].config.CACHE_DIR = str(d)


_numba_cache_dir()

"""Process-wide memory settings for the bulk commands: the allocator (the live collector,
``decode -f arrow``), pyarrow's memory pool (decode, ingest) and the garbage collector
(decode, ingest, collect).

Decoding allocates its column buffers afresh for every batch (the Arrow arrays handed
on keep them alive, so they cannot be reused). glibc's ``malloc`` serves an allocation
above its mmap threshold (at most 32 MiB, raised dynamically from 128 KiB) with a fresh
``mmap`` and gives it back with ``munmap`` when freed; memory freed at the top of the heap
beyond the trim threshold goes back to the kernel too. Every batch then touches new
pages: one page fault per 4 KiB, and ``munmap``'s TLB flush. The live collector's batches
(8,192 datagrams, 57,344 records) vary in size and cross the threshold; measured on
``bench/sflow_decode.py`` (150,000 datagrams, see docs/sflow.md): 1.37 M samples/s with
glibc's defaults, 1.80 M with the settings below, and the collector's kernel time per
datagram went from about 6 us to 2 us.

``tune_malloc()`` sets (through ``mallopt(3)``):

* ``M_MMAP_THRESHOLD`` = 256 MiB: batch buffers come from the heap and are reused;
* ``M_TRIM_THRESHOLD`` = 512 MiB: freed memory stays in the process for the next batch
  instead of going back to the kernel (the peak RSS is what it was: the memory is
  reused, not added to).

It does nothing where the C library has no ``mallopt`` (musl, macOS), and nothing when
``FABRICSCOPE_MALLOC=default`` is set (to compare, or if it ever misbehaves).
``fabricscope collect`` calls it before it starts; its worker processes are forked and
inherit it. So does ``decode -f arrow``: since a batch's columns are one block of C
memory that the Arrow sink's thread frees (``records/cdata.py``), glibc's defaults gave
the heap's top back and faulted it in again; on bench/decode.py's 5,000,000 frames,
three interleaved pairs of whole-process runs: 4.60-5.56 s wall against 4.83-6.25 s,
system CPU 1.00-1.10 s against 1.35-1.72 s, peak RSS 249-254 MiB against 248-250 MiB.
The other commands do not: ``decode -f parquet`` ran no faster with it in an earlier
session (15.6 s without, 17.4 s with, whole process; 14.70 and 16.53 against 16.02 and
16.98 s in two pairs of the sixth) and its peak RSS grows by 3-9 MB, against a 300 MB
budget. A library user decides for their own process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 512 << 20

_done = False
_frozen = False


def tune_malloc() -> bool:
    """Apply the settings above once per process; True if they are in effect."""
    global _done
    if _done:
        return True
    if os.environ.get("FABRICSCOPE_MALLOC", "") == "default":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _done = ok
    return ok


def freeze_gc() -> None:
    """Move every object alive now out of the garbage collector's sight (``gc.freeze``).

    A bulk command has imported numba, pyarrow, typer and rich before its first batch:
    a few hundred thousand container objects that live as long as the process. Each
    batch creates a few hundred Arrow wrappers, which keep triggering collections, and
    every full collection walked all of the imported objects again. Frozen, they are
    never examined; what the batches create is collected as before. Measured on
    ``fabricscope decode -f parquet`` over bench/decode.py's 1,000,000 frames (whole
    process, five interleaved pairs): 7% less CPU time with the collector off, the same
    with the startup objects frozen. Call it once the command's modules are imported,
    before its loop; objects frozen are never freed by the cycle collector (they stay
    anyway: modules, classes, compiled kernels). Only the first call in a process
    freezes (``ingest`` calls it per file: a cycle of garbage the previous file left for
    the collector must not be frozen with the rest)."""
    global _frozen
    if _frozen:
        return
    import gc

    gc.freeze()
    _frozen = True


def arrow_pool() -> None:
    """Make jemalloc the memory pool of pyarrow, where this pyarrow has it.

    pyarrow's wheels pick mimalloc by default. On the decode path (a batch of Arrow
    buffers made, written and freed every 16k frames) mimalloc keeps more freed memory
    in the process than jemalloc does: ``fabricscope decode`` of bench/decode.py's
    5,000,000 frames (whole process, three interleaved pairs) peaked at 275-288 MiB
    with mimalloc and 242-243 MiB with jemalloc for ``-f arrow``, 277-279 against
    264-265 MiB for ``-f parquet``, in the same time (within the machine's noise).

    The pool is chosen by pyarrow's C++ library when it first allocates, from
    ``ARROW_DEFAULT_MEMORY_POOL``: called before pyarrow is imported, this sets that
    variable (unless the user did); afterwards only the Python side can be switched
    (``pyarrow.set_memory_pool``), which leaves the writers' own buffers where they
    were. ``decode`` and ``ingest`` call it first thing. ``fabricscope ingest`` of
    bench/decode.py's 1,000,000 frames into a new embedded store (four interleaved
    pairs, whole process): 5.2-6.6 s with jemalloc against 5.6-9.6 s, system time
    1.1-1.3 s against 1.4-1.9 s, the same peak (1.23-1.32 GiB: million-record store
    batches). ``collect`` (8,192-datagram batches, its own malloc settings) was not
    measured with it and keeps pyarrow's default."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    if "pyarrow" not in sys.modules:
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"
        return
    import pyarrow as pa

    # (a pyarrow built without jemalloc: its default stays)
    with contextlib.suppress(NotImplementedError, pa.ArrowException):
        pa.set_memory_pool(pa.jemalloc_memory_pool())


__all__ = ["arrow_pool", "freeze_gc", "tune_malloc"]

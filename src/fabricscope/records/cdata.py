# mypy: disable-error-code="misc,no-any-return,attr-defined,no-untyped-call,call-arg,arg-type"
"""A record batch from the packers' column buffers in one import (the Arrow C data
interface, https://arrow.apache.org/docs/format/CDataInterface.html).

Wrapping each of a batch's ~110 columns with ``pa.Array.from_buffers`` took a few
microseconds a column in Python; this module describes the whole batch as C structs
instead, written with a few NumPy operations, and hands them to Arrow in one call
(``pa.RecordBatch._import_from_c``, the entry point other libraries use for the same
interface). Each array of the batch is one ``ArrowArray``, ten 64-bit words:

```
    word  field          here
    0     length         records (a tunnel field: tunnel layers)
    1     null_count     from the packers' counts
    2     offset         0
    3     n_buffers      2 (validity, values); 1 for a struct; 3 for binary
    4     n_children     columns of the batch (the root), 1 (a list), fields (a struct)
    5     buffers        -> n_buffers addresses (validity may be 0: no nulls)
    6     children       -> n_children addresses of child ArrowArrays
    7     dictionary     -> the ArrowArray of a name table (string columns), else 0
    8     release        the release callback (below); 0 once released
    9     private_data   the root: its table block; a child: 0
```

Ownership. The column buffers live in blocks allocated with the C library's ``malloc``
(:class:`Block`), the structs in one more (the table). Until a batch is imported the
blocks belong to Python: a block is freed when the NumPy views of it are gone. From the
import on they belong to Arrow: Arrow calls the root's release callback when the last
array of the batch is gone (on any thread), and the callback (compiled C, it needs no
Python lock) frees the table and the blocks it lists. The name tables' arrays are
exported once per process and never released; every batch points at them.

Garbage never reaches a file: a column with no value at all points at a shared block of
zeros (its values were never written), and the packers write 0 under every other null.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

if TYPE_CHECKING:
    from fabricscope.records.arrow import PacketColumns, _Plan

WORDS = 10  # an ArrowArray
NBUF = 3  # buffer addresses kept per array (at most 3: validity, offsets, data)
HEADER = 8  # words before the structs in a table: block count, block addresses
ALIGN = 64

_libc = ctypes.CDLL(None)
_malloc = _libc.malloc
_malloc.argtypes = [ctypes.c_size_t]
_malloc.restype = ctypes.c_void_p
_free = _libc.free
_free.argtypes = [ctypes.c_void_p]
_free.restype = None

_madvise = _libc.madvise
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_madvise.restype = ctypes.c_int
MADV_HUGEPAGE = 14
PAGE = 1 << 21  # a huge page
HUGE = 4 << 20  # blocks from this size on are offered huge pages

_c_free = types.ExternalFunction("free", types.void(types.voidptr))


@intrinsic
def _pointer(typingctx: Any, address: Any) -> Any:
    """An int64 address as a ``void*`` (numba has no cast for it)."""
    sig = types.voidptr(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


@cfunc(types.void(types.CPointer(types.int64)), cache=True)
def _release(array: Any) -> None:
    """``ArrowArray.release``: mark released; the root (private data: its table) frees
    the blocks its table lists, then the table."""
    a = carray(array, WORDS)
    table = a[9]
    a[8] = 0
    if table != 0:
        head = carray(_pointer(table), HEADER, np.int64)
        for k in range(1, min(head[0], HEADER - 1) + 1):
            if head[k] != 0:
                _c_free(_pointer(head[k]))
        _c_free(_pointer(table))


RELEASE: int = int(_release.address)


class _Memory:
    """The NumPy array interface over a ``malloc``'d block: the base of every view of
    it. Frees the block when the last view is gone, unless Arrow owns it by then."""

    def __init__(self, address: int, size: int) -> None:
        self.address = address
        self.handed = False
        self.__array_interface__ = {"data": (address, False), "shape": (size,),
                                    "typestr": "|u1", "version": 3}

    def __del__(self) -> None:
        if not self.handed:
            _free(self.address)


class Block:
    """``size`` bytes from ``malloc``, seen as the uint8 array ``mem`` (starting at a
    multiple of 64 bytes unless ``aligned=False``: a struct table, whose root's private
    data is the address ``free`` takes)."""

    def __init__(self, size: int, *, aligned: bool = True) -> None:
        size = max(int(size), ALIGN)
        address = _malloc(size + ALIGN)
        if not address:
            raise MemoryError(f"cannot allocate {size} bytes for a record batch")
        self._memory = _Memory(address, size + ALIGN)
        if size >= HUGE:  # as NumPy does for its arrays: fewer TLB misses and faults
            start = -address % PAGE
            if size - start >= PAGE:
                _madvise(address + start, (size - start) // PAGE * PAGE, MADV_HUGEPAGE)
        skip = -address % ALIGN if aligned else 0
        self.mem: np.ndarray = np.asarray(self._memory)[skip:skip + size]
        self.address: int = address + skip
        self.freed_by = address  # what free() takes

    def hand_over(self) -> int:
        """From now on Arrow frees the block (through a table): the address to free."""
        self._memory.handed = True
        return self.freed_by


_zeros: list[Block] = []
_lock = threading.Lock()


def zeros(size: int) -> int:
    """The address of at least ``size`` bytes of zeros that live as long as the process
    (the values and validity of all-null columns). Grows by doubling; earlier blocks
    stay (batches point at them). Safe from several threads (one decoder each)."""
    block = _zeros[-1] if _zeros else None
    if block is None or block.mem.shape[0] < size:
        with _lock:
            block = _zeros[-1] if _zeros else None
            if block is None or block.mem.shape[0] < size:
                block = Block(max(size, 2 * (block.mem.shape[0] if block else 1 << 16)))
                block.mem[:] = 0
                block.hand_over()  # never freed
                _zeros.append(block)
    return block.address


_exported: dict[int, tuple[pa.Array, np.ndarray]] = {}


def dictionary(names: pa.Array) -> int:
    """The ArrowArray of a name table, exported once (never released, never dropped:
    every batch's string columns point at it)."""
    with _lock:
        got = _exported.get(id(names))
        if got is None:
            struct = np.zeros(WORDS, np.int64)
            names._export_to_c(struct.ctypes.data)
            got = _exported[id(names)] = (names, struct)
    return int(got[1].ctypes.data)


class Layout:
    """The static part of a plan's struct table: which words hold addresses inside the
    table (relative until a batch adds its table's address), the dictionaries, and
    a recipe per column set (the batch's columns; the tunnel list's fields) for
    :func:`_fill`: rows of (struct index, group, row in the group, position in the null
    counts, boolean)."""

    def __init__(self, plan: _Plan, tunnel_plan: _Plan | None) -> None:
        ncol = len(plan.columns)
        nested = tunnel_plan is not None and plan.tunnels
        nfield = len(tunnel_plan.columns) if nested and tunnel_plan is not None else 0
        self.nstructs = 1 + ncol + (1 + nfield if nested else 0)
        self.struct_at = HEADER
        self.buffers_at = self.struct_at + WORDS * self.nstructs
        kids_at = self.buffers_at + NBUF * self.nstructs
        self.words = kids_at + ncol + (1 + nfield if nested else 0)
        t = np.zeros(self.words, np.int64)
        rel = np.zeros(self.words, bool)
        st = t[self.struct_at:self.buffers_at].reshape(self.nstructs, WORDS)
        srel = rel[self.struct_at:self.buffers_at].reshape(self.nstructs, WORDS)
        st[:, 3] = 2
        st[:, 5] = 8 * (self.buffers_at + NBUF * np.arange(self.nstructs))
        srel[:, 5] = True
        st[:, 8] = RELEASE
        # the root: a struct of the columns
        st[0, 3] = 1
        st[0, 4] = ncol
        st[0, 6] = 8 * kids_at
        srel[0, 6] = True
        t[kids_at:kids_at + ncol] = 8 * (self.struct_at + WORDS * np.arange(1, ncol + 1))
        rel[kids_at:kids_at + ncol] = True
        self.columns = _recipe(plan, 1, st)
        self.fields = np.zeros((0, 5), np.int64)
        self.list_index = self.struct_index = self.binary_index = -1
        for p, c in enumerate(plan.columns):
            if c.type == "bin":
                self.binary_index = 1 + p
                st[1 + p, 3] = 3
        if nested and tunnel_plan is not None:
            p = next(p for p, c in enumerate(plan.columns) if c.type == "tunnels")
            self.list_index = 1 + p
            self.struct_index = 1 + ncol
            k = kids_at + ncol
            st[self.list_index, 4] = 1
            st[self.list_index, 6] = 8 * k
            srel[self.list_index, 6] = True
            t[k] = 8 * (self.struct_at + WORDS * self.struct_index)
            rel[k] = True
            st[self.struct_index, 3] = 1
            st[self.struct_index, 4] = nfield
            st[self.struct_index, 6] = 8 * (k + 1)
            srel[self.struct_index, 6] = True
            first = self.struct_index + 1
            t[k + 1:k + 1 + nfield] = 8 * (self.struct_at + WORDS * np.arange(
                first, first + nfield))
            rel[k + 1:k + 1 + nfield] = True
            self.fields = _recipe(tunnel_plan, first, st)
        self.template = t
        self.relative = np.nonzero(rel)[0]


def _recipe(plan: _Plan, first: int, st: np.ndarray) -> np.ndarray:
    """The rows of :func:`_fill` for ``plan``'s scalar and IP columns, their structs
    numbered from ``first``; writes the dictionary pointers into ``st``. Groups are
    numbered in ``PacketColumns.groups`` order: the value widths, then the IPs."""
    from fabricscope.records.arrow import _BOOL

    rows: list[tuple[int, int, int, int, int]] = []
    at = 0
    for g, specs in enumerate(plan.specs.values()):
        for j, (p, kind, _t, names) in enumerate(specs):
            if names is not None:
                st[first + p, 7] = dictionary(names)
            rows.append((first + p, g, j, at + j, int(kind == _BOOL)))
        at += len(specs)
    g = len(plan.specs)
    rows += [(first + p, g, j, at + j, 0) for j, p in enumerate(plan.ips)]
    return np.array(rows, np.int64).reshape(-1, 5)


@njit(cache=True)
def _fill(st: np.ndarray, bufs: np.ndarray, recipe: np.ndarray, groups: np.ndarray,
          nulls: np.ndarray, n: int, zero: int) -> None:
    """Length, null count and buffers of the structs in ``recipe`` (see :class:`Layout`);
    ``groups[g]`` = (values address, row stride, bitmaps address, row stride)."""
    for r in range(recipe.shape[0]):
        i, g, j, k, boolean = recipe[r]
        vaddr = groups[g, 0] + j * groups[g, 1]
        baddr = groups[g, 2] + j * groups[g, 3]
        st[i, 0] = n
        if boolean:  # the bitmap is the data; no validity
            st[i, 1] = 0
            bufs[i, 0] = 0
            bufs[i, 1] = baddr
        elif nulls[k] >= n:  # no value: shared zeros (nothing was written there)
            st[i, 1] = n
            bufs[i, 0] = zero
            bufs[i, 1] = zero
        else:
            st[i, 1] = nulls[k]
            bufs[i, 0] = baddr
            bufs[i, 1] = vaddr


def record_batch(pc: PacketColumns, layout: Layout, schema: pa.Schema,
                 tunnels: PacketColumns | None, binary: tuple[int, int, Block | None],
                 blocks: Sequence[Block]) -> pa.RecordBatch:
    """Import ``pc``'s columns (and ``tunnels``' as the fields of its tunnel list; the
    binary column's (null count, total bytes, block)) as one record batch. ``blocks``
    (column memory) and the table become Arrow's, whatever happens."""
    n = pc.n
    if len(blocks) > HEADER - 1:
        raise ValueError("too many blocks for one record batch")
    table = Block(8 * layout.words, aligned=False)
    w = table.mem[:8 * layout.words].view(np.int64)
    w[:] = layout.template
    w[layout.relative] += table.address
    st = w[layout.struct_at:layout.buffers_at].reshape(layout.nstructs, WORDS)
    bufs = w[layout.buffers_at:layout.buffers_at + NBUF * layout.nstructs].reshape(
        layout.nstructs, NBUF)
    zero = zeros(16 * max(n, tunnels.n if tunnels is not None else 0) + ALIGN)
    st[0, 0] = n
    _fill(st, bufs, layout.columns, pc.groups(), pc.null_counts, n, zero)
    if layout.list_index >= 0 and tunnels is not None:
        li, si = layout.list_index, layout.struct_index
        st[li, 0] = n
        bufs[li, 1] = pc.offsets.ctypes.data
        st[si, 0] = tunnels.n
        _fill(st, bufs, layout.fields, tunnels.groups(), tunnels.null_counts, tunnels.n,
              zero)
    if layout.binary_index >= 0:
        bi = layout.binary_index
        nulls, _size, block = binary
        st[bi, 0] = n
        st[bi, 1] = nulls
        if block is None:
            bufs[bi] = zero
        else:
            nb = (n + 7) >> 3
            offsets = block.address + round_up(nb)
            bufs[bi] = (block.address, offsets, offsets + round_up(4 * (n + 1)))
    w[0] = len(blocks)
    w[1:1 + len(blocks)] = [b.hand_over() for b in blocks]
    st[0, 9] = table.hand_over()
    return pa.RecordBatch._import_from_c(table.address + 8 * layout.struct_at, schema)


def round_up(size: int) -> int:
    """``size`` rounded up to a multiple of 64 bytes (where the next buffer starts)."""
    return (size + ALIGN - 1) // ALIGN * ALIGN


def binary_block(n: int, size: int) -> tuple[Block, np.ndarray, np.ndarray, np.ndarray]:
    """A block for a binary column of ``n`` values and ``size`` bytes: (block, validity
    bitmap (zeroed), int32 offsets, data)."""
    nb = (n + 7) >> 3
    b = Block(round_up(nb) + round_up(4 * (n + 1)) + round_up(max(size, 1)))
    valid = b.mem[:nb]
    valid[:] = 0
    offsets = b.mem[round_up(nb):round_up(nb) + 4 * (n + 1)].view(np.int32)
    data = b.mem[round_up(nb) + round_up(4 * (n + 1)):][:size]
    return b, valid, offsets, data

# mypy: disable-error-code="return-value,assignment,arg-type"
# (numba kernels: NumPy int64 scalars stand for int; numba checks the types when it compiles)
"""Small numba helpers shared by the layer decoders: bounded big-endian reads, events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numba import njit

from fabricscope.decode.events import EV_SEVERITY, INFO, TRUNC
from fabricscope.decode.slots import M_ERROR, M_TRUNC

_SEV = EV_SEVERITY  # frozen into the compiled code as a constant array
_F = TypeVar("_F", bound=Callable[..., Any])

#: The decorator of every function the walk calls per frame: numba-compiled, cached,
#: without reference counting of its array arguments (they never allocate; counting took
#: half the walk's time, see walk.py), and inlined into its caller: a call passes every
#: array as a 7-9 word struct on the stack, about 45 words a layer decoder; inlined, the
#: walk takes half the time.
per_frame: Callable[[_F], _F] = njit(cache=True, _nrt=False, inline="always")  # type: ignore[call-overload]
#: Compiled and cached, without reference counting, not inlined: the kernels that never
#: allocate (the batch walk, the packers) and the rare paths (events). (Not ``nogil``:
#: releasing and taking back the GIL cost 10 us a call, and nothing runs meanwhile.)
no_refcount: Callable[[_F], _F] = njit(cache=True, _nrt=False)  # type: ignore[call-overload]

IPV4_MAPPED_PREFIX = np.int64(0xFFFF) << np.int64(32)


# Reads index with unsigned integers: a signed index makes numba add a wraparound
# (negative index) adjustment to every byte read; the callers have checked the bounds.
@njit(inline="always", cache=True)
def rd8(buf: np.ndarray, p: int) -> int:
    return np.int64(buf[np.uint64(p)])


@njit(inline="always", cache=True)
def rd16(buf: np.ndarray, p: int) -> int:
    q = np.uint64(p)
    return (np.int64(buf[q]) << 8) | np.int64(buf[q + np.uint64(1)])


@njit(inline="always", cache=True)
def rd24(buf: np.ndarray, p: int) -> int:
    q = np.uint64(p)
    return ((np.int64(buf[q]) << 16) | (np.int64(buf[q + np.uint64(1)]) << 8)
            | np.int64(buf[q + np.uint64(2)]))


@njit(inline="always", cache=True)
def rd32(buf: np.ndarray, p: int) -> int:
    q = np.uint64(p)
    return (
        (np.int64(buf[q]) << 24)
        | (np.int64(buf[q + np.uint64(1)]) << 16)
        | (np.int64(buf[q + np.uint64(2)]) << 8)
        | np.int64(buf[q + np.uint64(3)])
    )


@njit(inline="always", cache=True)
def rd64(buf: np.ndarray, p: int) -> int:
    q = np.uint64(p)
    v = np.int64(0)
    for k in range(8):
        v = (v << np.int64(8)) | np.int64(buf[q + np.uint64(k)])
    return v


@njit(inline="always", cache=True)
def rd48(buf: np.ndarray, p: int) -> int:
    q = np.uint64(p)
    v = np.int64(0)
    for k in range(6):
        v = (v << np.int64(8)) | np.int64(buf[q + np.uint64(k)])
    return v


@no_refcount
def event(ev: np.ndarray, m: np.ndarray, i: int, code: int) -> None:
    """Count event ``code``; mark record ``i`` with it if it is its first error."""
    ev[code] += 1
    sev = _SEV[code]
    if sev != INFO:
        if m[M_ERROR, i] < 0:
            m[M_ERROR, i] = code
        if sev == TRUNC:
            m[M_TRUNC, i] = 1

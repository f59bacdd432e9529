"""Build FrameBatch objects from raw frames in tests (no capture file needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fabricscope.capture.frames import FrameBatch


def frames_from_bytes(frames: Sequence[bytes], linktype: int = 1,
                      ts_ns: Sequence[int] | None = None,
                      wirelen: Sequence[int] | None = None) -> FrameBatch:
    n = len(frames)
    lens = np.array([len(f) for f in frames], dtype=np.int64)
    off = np.zeros(n, dtype=np.int64)
    if n:
        off[1:] = np.cumsum(lens)[:-1]
    buf = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
    return FrameBatch(
        buf=buf,
        offset=off,
        caplen=lens,
        wirelen=np.array(wirelen if wirelen is not None else lens, dtype=np.int64),
        ts_ns=np.array(ts_ns if ts_ns is not None else [1_700_000_000_000_000_000 + i for i in range(n)],
                       dtype=np.int64),
        linktype=np.full(n, linktype, dtype=np.int32),
        iface=np.zeros(n, dtype=np.int32),
        ts_prec=np.full(n, 9, dtype=np.int8),
        file_offset=np.arange(n, dtype=np.int64),
    )

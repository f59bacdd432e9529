"""Random slot matrices for the packer and Arrow tests: every slot present or absent at
random, with values across the int64 range, and the slots that must stay in range (depth,
tunnel types, IP versions, kind, error) drawn from their valid values."""

from __future__ import annotations

import numpy as np

from fabricscope.decode import slots as S


def random_matrix(rng: np.random.Generator, n: int) -> np.ndarray:
    m = np.full((S.NSLOTS, n + 5), -1, np.int64)
    for s in range(S.NSLOTS):
        pick = rng.random(n) < rng.random()
        vals = rng.integers(-3, 2**40, n)
        vals[rng.random(n) < 0.1] = rng.integers(-(2**63), 2**63 - 1, 1)[0]
        m[s, :n] = np.where(pick, vals, -1)
    m[S.M_DEPTH, :n] = rng.integers(-1, 6, n)
    m[S.M_GENEVE_OFF, :n] = -1
    for k in range(S.MAX_DEPTH):
        m[S.tun_slot(k, S.T_TYPE), :n] = rng.integers(0, 10, n)
        m[S.tun_slot(k, S.T_IPVER), :n] = rng.choice([-1, 4, 6], n)
    for slot in (S.WIRE + S.H_IPVER, S.INNER + S.H_IPVER, S.S_AGENT_VER):
        m[slot, :n] = rng.choice([-1, 0, 4, 6], n)
    m[S.M_KIND, :n] = rng.integers(-1, 3, n)
    m[S.M_ERROR, :n] = rng.integers(-1, 70, n)
    return m

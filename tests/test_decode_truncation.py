"""Truncation: every round-trip frame cut at every length from 0 to its full size.

For a cut at ``L`` bytes the record must

* keep every field of every header that was captured whole (the model's segments with
  ``need <= L``),
* invent nothing: any field it does hold equals the value in the whole frame, at the
  same nesting level (a VNI only once the tunnel header was complete, no tunnel layer
  before its header was),
* say ``truncated`` exactly when a header the whole frame needs was cut, with the
  truncation event of that header as ``error`` (``frame_too_short`` for 0 bytes).
"""

from __future__ import annotations

from typing import Any

import pytest

from fabricscope.decode.events import EV_NAMES, EV_SEVERITY, TRUNC
from test_decode_cases import (
    CASES,
    HEADER_FIELDS,
    Case,
    Expect,
    Seg,
    decode_records,
)


def _first_cut(x: Expect, n: int) -> Seg | None:
    return next((s for s in x.segs if s.need > n), None)


def _check_level(rec: dict[str, Any], prefix: str, x: Expect, level: int, n: int,
                 where: str) -> None:
    want = x.levels[level]
    for f in HEADER_FIELDS:
        got = rec[prefix + f]
        if got is not None:
            assert f in want and got == want[f], f"{where}: {prefix}{f}={got!r} invented"
    for s in x.segs:
        if s.where == "level" and s.index == level and s.need <= n:
            for f, v in s.fields.items():
                assert rec[prefix + f] == v, f"{where}: {prefix}{f} lost"


def check_cut(case: Case, x: Expect, rec: dict[str, Any], n: int) -> None:
    where = f"{case.name} cut at {n}"
    size = len(case.frame)
    assert rec["caplen"] == n and rec["frame_len"] == size, where
    cut = _first_cut(x, n)
    # truncated exactly when a needed header was cut, with that header's event
    if n == 0:
        assert rec["error"] == "frame_too_short", where
        assert rec["truncated"] is True, where
    elif cut is not None:
        assert rec["truncated"] is True, where
        assert rec["error"] == cut.trunc, f"{where}: error {rec['error']} (cut in {cut})"
    else:
        assert rec["truncated"] is False, where
        assert rec["error"] == x.error, where
    if rec["error"] is not None:
        assert rec["error"] in EV_NAMES
        assert (EV_SEVERITY[EV_NAMES.index(rec["error"])] == TRUNC) == rec["truncated"]
    # tunnel layers: exactly those whose header was captured
    depth = sum(1 for s in x.segs if s.where == "tunnel" and s.need <= n
                and s is next(t for t in x.segs if t.where == "tunnel" and t.index == s.index))
    assert rec["depth"] == depth, f"{where}: depth {rec['depth']} != {depth}"
    assert len(rec["tunnels"]) == depth, where
    for j, t in enumerate(rec["tunnels"]):
        want = x.tunnels[j]
        for k, v in t.items():
            if v is not None:
                assert want.get(k) == v, f"{where}: tunnel {j} {k}={v!r} invented"
        for s in x.segs:
            if s.where == "tunnel" and s.index == j and s.need <= n:
                for k, v in s.fields.items():
                    assert t.get(k) == v, f"{where}: tunnel {j} {k} lost"
        for k in ("src", "dst", "sport", "dport"):  # the enclosing headers were complete
            assert t[k] == want[k], f"{where}: tunnel {j} {k}"
    assert rec["encap"] == (rec["tunnels"][0]["type"] if depth else None), where
    assert rec["vni"] == (rec["tunnels"][0]["vni"] if depth else None), where
    # headers: wire = level 0, inner = level ``depth``
    _check_level(rec, "", x, 0, n, where)
    if depth:
        _check_level(rec, "inner_", x, depth, n, where)
    else:
        assert all(rec["inner_" + f] is None for f in HEADER_FIELDS), where
    opts = rec["geneve_options"]
    if opts is not None:
        assert x.geneve_options is not None
        assert x.geneve_options.startswith(bytes.fromhex(opts)), where


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cut_at_every_length(case: Case) -> None:
    frame = case.frame
    x = case.expect()
    cuts = [frame[:n] for n in range(len(frame) + 1)]
    recs, _ = decode_records(cuts, linktype=case.linktype, config=case.config(),
                             wirelen=[len(frame)] * len(cuts))
    for n, rec in enumerate(recs):
        check_cut(case, x, rec, n)

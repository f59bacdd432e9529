"""The counters batch's port names: dictionary-encoded in one compiled pass
(``sflow.batch.name_codes``), checked against Arrow's own dictionary encoding."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from fabricscope.sflow.batch import _names, name_codes
from fabricscope.sflow.layout import C_NAME_LEN, C_NAME_OFF, NCSLOTS


def _matrix(names: list[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """A counters matrix whose rows name ``names`` (None: no port name record) and the
    buffer the names sit in, in order, with a byte of padding between them."""
    buf = bytearray(b"\xaa")
    cm = np.full((NCSLOTS, max(len(names), 1)), -1, np.int64)
    for i, name in enumerate(names):
        if name is not None:
            cm[C_NAME_OFF, i] = len(buf)
            cm[C_NAME_LEN, i] = len(name)
            buf += name + b"\xaa"
    return cm, np.frombuffer(bytes(buf), np.uint8)


def test_codes_number_the_distinct_names_in_order_of_first_row() -> None:
    names: list[bytes | None] = [b"eth0", b"eth1", None, b"eth0", b"", b"eth1", b""]
    cm, buf = _matrix(names)
    n = len(names)
    codes = np.empty(n, np.int16)
    first = np.empty(n, np.int64)
    u, left_out = name_codes(cm[C_NAME_OFF], cm[C_NAME_LEN], n, buf, codes, first,
                             np.full(16, -1, np.int64))
    assert (u, left_out) == (3, 0)
    assert codes.tolist() == [0, 1, -1, 0, 2, 1, 2]
    assert first[:u].tolist() == [0, 1, 4]


def test_a_name_past_the_buffer_counts_as_none() -> None:
    cm, buf = _matrix([b"eth0", b"eth1"])
    cm[C_NAME_LEN, 1] = 1000
    codes = np.empty(2, np.int16)
    u, left_out = name_codes(cm[C_NAME_OFF], cm[C_NAME_LEN], 2, buf, codes,
                             np.empty(2, np.int64), np.full(8, -1, np.int64))
    assert (u, left_out) == (1, 0) and codes.tolist() == [0, -1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=6)), max_size=60))
def test_same_strings_as_arrow_dictionary_encoding(names: list[bytes | None]) -> None:
    cm, buf = _matrix(names)
    got = _names(cm, len(names), buf)
    want = [None if v is None else v.decode("utf-8", errors="replace") for v in names]
    assert got.to_pylist() == want
    assert got.type == pa.dictionary(pa.int16(), pa.string())
    # one dictionary entry per distinct byte string
    assert len(got.dictionary) == len({v for v in names if v is not None})



def test_names_beyond_the_dictionary_limit_are_null_and_counted() -> None:
    """More distinct names in one batch than an int16 dictionary holds (a spoofed feed):
    the further ones are null and counted by the event; every row is kept."""
    from fabricscope.decode.events import NEVENTS_MAX
    from fabricscope.sflow.batch import MAX_NAMES
    from fabricscope.sflow.events import EV_TOO_MANY_PORT_NAMES

    extra = 5
    names: list[bytes | None] = [b"p%d" % k for k in range(MAX_NAMES + extra)]
    names += [b"p0", None, b"p%d" % (MAX_NAMES + 1)]  # a known name, none, a further one
    cm, buf = _matrix(names)
    ev = np.zeros(NEVENTS_MAX, np.int64)
    got = _names(cm, len(names), buf, ev).to_pylist()
    assert len(got) == len(names)
    assert got[:MAX_NAMES] == [v.decode() for v in names[:MAX_NAMES] if v is not None]
    assert got[MAX_NAMES:] == [None] * extra + ["p0", None, None]
    assert ev[EV_TOO_MANY_PORT_NAMES] == extra + 1

"""Bad input: mutated and random frames decode to clean records, never an exception.

Every frame of every round-trip case (``test_decode_cases``) is damaged: every header
byte set to 0x00 and 0xFF, every header 16-bit word (length fields among them) set to 0
and 0xFFFF, random byte flips and cuts (hypothesis), random bytes on every link type.
For each damaged frame, checked on the decoder's slot matrix (before any cast, so a
value out of its column's range cannot hide):

* decoding finishes; ``error`` is null or a documented event name (decode/events.py)
  of error or truncation severity; ``truncated`` goes with a truncation event;
* every field is absent or within its type and domain (ports < 2**16, VLAN < 4096,
  VNI < 2**24, MPLS label < 2**20, depth <= 4, one tunnel type per layer, none beyond);
* the decode stopped inside the frame (payload offsets and GENEVE options in bounds);
* its neighbours in the batch decode exactly as they do alone.

The crash regressions gre-heapoverflow-1/2.pcap and broken capture files go through
``fabricscope decode`` too: exit 0, or 2 with a one-line message, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabricscope.decode import DecodeConfig, PacketDecoder
from fabricscope.decode import slots as S
from fabricscope.decode.events import EV_SEVERITY, EVENTS, INFO, TRUNC
from fabricscope.decode.protocols import TUNNEL_NAMES
from fabricscope.records.arrow import packet_batch
from fabricscope.records.schema import PACKET_COLUMNS
from framehelp import frames_from_bytes
from test_decode_cases import CASES, Case

PACKET_EVENT_CODES = {code for code, _n, _s, _d in EVENTS}
TYPE_MAX = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFFFFFF}
# domain limits of header slots (relative to a header block)
HEADER_MAX = {S.H_VLAN: 4095, S.H_VLAN2: 4095, S.H_ETHERTYPE: 0xFFFF, S.H_MPLS: (1 << 20) - 1,
              S.H_MPLS_N: 16, S.H_PROTO: 255, S.H_TTL: 255, S.H_TOS: 255, S.H_FRAG: 7,
              S.H_IPLEN: 0xFFFF + 40, S.H_SPORT: 0xFFFF, S.H_DPORT: 0xFFFF,
              S.H_TCP_FLAGS: 0x1FF, S.H_ICMP_TYPE: 255, S.H_ICMP_CODE: 255,
              S.H_ETH_SRC: (1 << 48) - 1, S.H_ETH_DST: (1 << 48) - 1}
VNI_24 = {TUNNEL_NAMES.index(n) for n in ("vxlan", "vxlan-gpe", "geneve", "nvgre")}
# slots whose value depends on where the frame sits in the batch buffer
POSITIONAL = [S.M_TS, S.M_FILE_OFF, S.M_PAYLOAD, S.M_PAYLOAD_END, S.M_GENEVE_OFF,
              # the walk's working slots: a pending GENEVE tunnel's options offset
              S.WIRE + S.X_PT_GOFF, S.INNER + S.X_PT_GOFF]


_DECODERS: dict[tuple[object, ...], PacketDecoder] = {}


def decode(frames: list[bytes], linktype: int, config: DecodeConfig | None = None, *,
           arrow: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matrix, frame offsets, caplens) for frames decoded in one batch."""
    cfg = config or DecodeConfig()
    key = (cfg.max_depth, cfg.gre_teb_as_nvgre, tuple(sorted(cfg.udp_ports.items())),
           tuple(sorted(cfg.tcp_ports.items())))
    dec = _DECODERS.get(key)
    if dec is None:
        dec = _DECODERS[key] = PacketDecoder(cfg)
    fb = frames_from_bytes(frames, linktype=linktype, ts_ns=[0] * len(frames))
    m = dec.decode_matrix(fb)
    if arrow:
        packet_batch(m, len(frames), fb.buf)  # the Arrow builder copes too
    return m[:, : len(frames)], fb.offset, fb.caplen


def check_invariants(m: np.ndarray, offset: np.ndarray, caplen: np.ndarray,
                     what: str = "") -> None:
    n = m.shape[1]
    err = m[S.M_ERROR]
    assert set(err[err >= 0].tolist()) <= PACKET_EVENT_CODES, what
    assert (EV_SEVERITY[err[err >= 0]] != INFO).all(), f"{what}: an INFO event as error"
    trunc = m[S.M_TRUNC] == 1
    assert np.isin(m[S.M_TRUNC], (-1, 1)).all()
    assert (err[trunc] >= 0).all(), f"{what}: truncated without an error"
    sev = np.where(err >= 0, EV_SEVERITY[np.maximum(err, 0)], -1)
    assert (trunc[sev == TRUNC]).all(), f"{what}: a truncation event but not truncated"
    for c in PACKET_COLUMNS:  # every scalar column within its type
        if c.slot >= 0 and c.type in TYPE_MAX and c.group != "sflow":
            v = m[c.slot]
            assert ((v == -1) | ((v >= 0) & (v <= TYPE_MAX[c.type]))).all(), f"{what}: {c.name}"
    for block in (S.WIRE, S.INNER):
        for slot, hi in HEADER_MAX.items():
            v = m[block + slot]
            assert ((v == -1) | ((v >= 0) & (v <= hi))).all(), f"{what}: slot {slot}"
        assert np.isin(m[block + S.H_IPVER], (-1, 4, 6)).all()
    depth = m[S.M_DEPTH]
    assert ((depth >= 0) & (depth <= S.MAX_DEPTH)).all(), what
    for k in range(S.MAX_DEPTH):
        typ = m[S.tun_slot(k, S.T_TYPE)]
        inside = k < depth
        assert ((typ[inside] >= 1) & (typ[inside] < len(TUNNEL_NAMES))).all(), what
        assert (typ[~inside] == -1).all(), f"{what}: a tunnel layer beyond the depth"
        vni = m[S.tun_slot(k, S.T_VNI)]
        narrow = np.isin(typ, list(VNI_24))
        assert ((vni[narrow] >= -1) & (vni[narrow] < 1 << 24)).all(), f"{what}: VNI"
        assert np.isin(m[S.tun_slot(k, S.T_IPVER)][inside], (-1, 4, 6)).all()
    assert (m[S.M_KIND] == 0).all()
    end = offset + caplen
    pay = m[S.M_PAYLOAD]
    inside = (pay >= offset) & (pay <= end)
    assert (inside | ((pay == -1) & (caplen == 0))).all(), f"{what}: decoding left the frame"
    assert (m[S.M_PAYLOAD_END] <= end).all(), what
    goff = m[S.M_GENEVE_OFF]
    g = goff >= 0
    assert ((goff[g] >= offset[g]) & (goff[g] + m[S.M_GENEVE_LEN][g] <= end[g])).all(), what
    assert n == len(offset)


def _alone(frames: list[bytes], linktype: int, config: DecodeConfig) -> np.ndarray:
    cols = [decode([f], linktype, config, arrow=False)[0][:, 0] for f in frames]
    return np.stack(cols, axis=1)


def _same_but_positions(a: np.ndarray, b: np.ndarray) -> bool:
    keep = np.ones(a.shape[0], bool)
    keep[POSITIONAL] = False
    return bool((a[keep] == b[keep]).all())


def header_bytes(case: Case) -> range:
    return range(0, min(case.expect().need, len(case.frame)))


def damaged(case: Case) -> list[bytes]:
    """Every header byte at 0x00 and 0xFF, every header word at 0x0000 and 0xFFFF."""
    f = case.frame
    out = []
    for p in header_bytes(case):
        for v in (b"\x00", b"\xff"):
            out.append(f[:p] + v + f[p + 1:])
        if p + 2 <= len(f):
            for v in (b"\x00\x00", b"\xff\xff"):
                out.append(f[:p] + v + f[p + 2:])
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_header_byte_and_word_at_extremes(case: Case) -> None:
    frames = damaged(case)
    good = case.frame
    batch = [good, *frames, good]  # a good frame on each side of the damage
    m, off, cap = decode(batch, case.linktype, case.config())
    check_invariants(m, off, cap, case.name)
    alone = decode([good], case.linktype, case.config())[0][:, 0]
    for col in (0, len(batch) - 1):
        assert _same_but_positions(m[:, col:col + 1], alone[:, None]), case.name


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Case, bytes]:
    case = draw(st.sampled_from(CASES))
    f = bytearray(case.frame)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "word", "cut", "insert", "delete"]))
        if not f:
            break
        p = draw(st.integers(0, len(f) - 1))
        if kind == "flip":
            f[p] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            f[p] = draw(st.integers(0, 255))
        elif kind == "word" and p + 2 <= len(f):
            f[p:p + 2] = draw(st.sampled_from([b"\x00\x00", b"\xff\xff", b"\x00\x08",
                                               b"\x7f\xff"]))
        elif kind == "cut":
            del f[p:]
        elif kind == "insert":
            f[p:p] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del f[p:p + draw(st.integers(1, 8))]
    return case, bytes(f)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_random_damage_keeps_the_batch_clean(items: list[tuple[Case, bytes]]) -> None:
    """Random flips, sets, cuts, inserts and deletes, several damaged frames per batch."""
    by_lt: dict[int, list[bytes]] = {}
    for case, frame in items:
        by_lt.setdefault(case.linktype, []).append(frame)
    for lt, frames in by_lt.items():
        for cfg in (DecodeConfig(), DecodeConfig(gre_teb_as_nvgre=False, max_depth=2)):
            m, off, cap = decode(frames, lt, cfg)
            check_invariants(m, off, cap)
            assert _same_but_positions(m, _alone(frames, lt, cfg))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([1, 0, 101, 108, 113, 228, 229, 276, 147]),
       st.lists(st.binary(max_size=200), min_size=1, max_size=8))
def test_random_bytes_on_every_link_type(linktype: int, frames: list[bytes]) -> None:
    m, off, cap = decode(frames, linktype)
    check_invariants(m, off, cap)
    if linktype == 147:  # a link type we do not decode
        assert (m[S.M_ERROR][cap > 0] == EVENTS[34][0]).all()


def test_nesting_and_loops_are_bounded() -> None:
    """Frames built to loop: VLAN tags, MPLS labels, IPv6 extensions and IP-in-IP without
    end, each stops at its cap with its event."""
    eth = b"\x02" * 12
    vlans = eth + b"\x81\x00\x00\x01" * 40 + b"\x08\x00"
    mpls = eth + b"\x88\x47" + b"\x00\x01\x00\x40" * 40
    ext = (eth + b"\x86\xdd" + bytes([0x60, 0, 0, 0, 0x01, 0x40, 0, 64]) + b"\x00" * 32
           + b"\x00\x00" + b"\x00" * 6) + b"\x00\x00" + b"\x00" * 6 * 1 + b"".join(
        b"\x00\x00" + b"\x00" * 6 for _ in range(30))
    ipip = eth + b"\x08\x00" + b"".join(
        bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 4, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
        for _ in range(30))
    m, off, cap = decode([vlans, mpls, ext, ipip], 1)
    check_invariants(m, off, cap)
    names = [EVENTS[c][1] if c >= 0 else None for c in m[S.M_ERROR]]
    assert names == ["vlan_stack_too_deep", "mpls_stack_too_deep", "ipv6_ext_chain_too_long",
                     "tunnel_depth_exceeded"]
    assert m[S.M_DEPTH][3] == 4


# --- crash regressions and broken files through the command -------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``fabricscope ARGS`` as a user runs it (its own process)."""
    exe = Path(sys.executable).with_name("fabricscope")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The same entry point in this process (fast): (exit code, stdout, stderr). Any
    exception other than the exit is a traceback the user would have seen."""
    from fabricscope.cli.app import main

    old = sys.argv
    sys.argv = ["fabricscope", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_exit(code: int, out: str, err: str) -> None:
    assert "Traceback" not in err and "Traceback" not in out
    assert code in (0, 2), err
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert lines and lines[-1].startswith("fabricscope: error: "), err


@pytest.mark.parametrize("name", ["gre-heapoverflow-1.pcap", "gre-heapoverflow-2.pcap"])
def test_crash_regressions(shared_captures: Path, tmp_path: Path, name: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    from fabricscope.capture import read_all
    from fabricscope.records.present import record_dicts

    path = shared_captures / "tcpdump" / name
    recs = list(record_dicts(PacketDecoder().decode(read_all(path))))
    assert len(recs) == 2
    assert recs[1]["error"] in ("ipv4_bad_version", "truncated_gre")
    proc = run_cli("decode", str(path), "-f", "ndjson", "--summary-json")
    assert_clean_exit(proc.returncode, proc.stdout, proc.stderr)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2
    for fmt in ("table", "parquet"):
        code, out, err = run_main(["decode", str(path), "-f", fmt, "-o",
                                   str(tmp_path / f"out.{fmt}")], capsys)
        assert_clean_exit(code, out, err)
        assert code == 0


def test_broken_files_give_one_line_errors(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from fabricscope.capture import PcapWriter

    good = tmp_path / "good.pcap"
    with PcapWriter(good) as w:
        for k in range(5):
            w.write(CASES[0].frame, k)
    data = good.read_bytes()
    files = {
        "cut-record.pcap": data[:-7],  # the last record runs past the end
        "cut-header.pcap": data[:30],
        "garbage.pcap": b"not a capture at all, just words" * 4,
        "lying-length.pcap": data[:24] + b"\x00" * 8 + b"\xff\xff\xff\x7f" * 2 + data[40:],
        "empty.pcap": b"",
    }
    for name, content in files.items():
        p = tmp_path / name
        p.write_bytes(content)
        code, out, err = run_main(["decode", str(p), "-f", "ndjson"], capsys)
        assert_clean_exit(code, out, err)
        if name != "empty.pcap":
            assert code == 2, name
            assert str(p) in err.splitlines()[-1], name
        if name == "cut-record.pcap":  # the good records before a bad tail are written
            assert len(out.splitlines()) == 4
    for args in (["decode", str(tmp_path / "missing.pcap")],
                 ["decode", str(good), "--decode-as", "udp:99999=vxlan"],
                 ["decode", str(good), "-f", "parquet"]):
        code, out, err = run_main(args, capsys)
        assert_clean_exit(code, out, err)
        assert code == 2, args
    # and once as its own process: exit status 2, one line, no traceback
    proc = run_cli("decode", str(tmp_path / "cut-record.pcap"), "-q")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


_BOUNDS_SCRIPT = """
import random, sys
sys.path.insert(0, sys.argv[1])
from framehelp import frames_from_bytes
from test_decode_cases import CASES
from test_decode_fuzz import damaged
from fabricscope.decode import PacketDecoder
rng = random.Random(1)
n = 0
for c in CASES:
    dec = PacketDecoder(c.config())
    f = c.frame
    frames = damaged(c) + [f[:k] for k in range(len(f) + 1)]
    for _ in range(100):
        b = bytearray(f)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        frames.append(bytes(b[: rng.randint(0, len(b))]))
    for fr in frames:  # alone: the buffer ends where the frame ends
        dec.decode(frames_from_bytes([fr], linktype=c.linktype))
        n += 1
print(n)
"""


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("FABRICSCOPE_SLOW_TESTS") != "1",
                    reason="compiles the decoder again with bounds checks (minutes); "
                           "set FABRICSCOPE_SLOW_TESTS=1")
def test_no_read_outside_the_frame(tmp_path: Path) -> None:
    """Every damaged frame decoded alone, in a buffer that ends where the frame ends, with
    numba's bounds checking on: a read past the frame would raise IndexError."""
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", _BOUNDS_SCRIPT,
                           str(Path(__file__).resolve().parent)],
                          capture_output=True, text=True, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) > 30_000

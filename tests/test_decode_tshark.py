"""Differential tests against tshark: every frame of tcpdump's tunnel captures and of the
round-trip frames (``test_decode_cases``), decoded by tshark (``-T json``) and by us,
compared field by field: outermost and innermost addresses, ports, protocol, VLAN ids,
MPLS labels, every tunnel layer (type, VNI/VSID/key, NSH SPI/SI, ERSPAN session),
GENEVE option classes and types, the number of tunnel layers.

Where we differ from tshark on purpose, the test asserts the documented mapping instead
(see ``docs/decoding.md``):

* GRE carrying Ethernet with only the K flag is ``nvgre`` for us (``vni`` = key >> 8,
  ``flow_id`` = key & 0xFF, decode/gre.py); tshark shows GRE with the whole key;
* GRE + ERSPAN is one ``erspan`` layer for us (``vni`` = session id); two for tshark;
* GRE v1 (PPTP) carries PPP, which we do not decode; tshark goes on into it;
* a tunnel port whose payload is not the tunnel (no VXLAN I flag, GENEVE version != 0,
  too short) stays plain UDP for us; tshark decodes it as the tunnel anyway;
* we stop at 4 nested tunnels (``tunnel_depth_exceeded``); tshark goes on.

tshark is told what we are told: ``-d udp.port==8472,vxlan`` (and each ``--decode-as``),
IP defragmentation off (we report first fragments as they are), STT tried on TCP 7471.
Skips with a reason when tshark is absent; CI installs it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fabricscope.capture import PcapngWriter, read_all
from fabricscope.decode import DecodeConfig, PacketDecoder
from fabricscope.records.present import record_dicts
from test_decode_cases import CASE_BY_NAME, CASES, Case, decode_records

TSHARK_OPTS = ("-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
               "-o", "ip.try_heuristic_first:TRUE", "-o", "stt.reassemble:FALSE",
               "-d", "udp.port==8472,vxlan")
SHARED = ["vxlan.pcap", "vxlan_port_8472.pcap", "geneve.pcap", "various_gre.pcap",
          "gso-ipv4-vxlan-ipv4.pcap", "mpls-over-udp.pcap", "802.1ad_QinQ.pcap"]
# our frames that tshark reads differently on purpose: a tunnel port without the tunnel
NOT_THE_TUNNEL = {"decode-as-none", "vxlan-port-not-vxlan", "vxlan-port-short",
                  "vxlan-port-empty", "geneve-port-bad-version", "gpe-port-bad-version",
                  "mpls-udp-port-short"}
# GRE protocol types we decode the payload of (decode/gre.py, the ethertype table)
GRE_DECODED = {0x6558, 0x0800, 0x86DD, 0x8847, 0x8848, 0x0806, 0x894F, 0x88BE, 0x22EB}
TSHARK_READS_A_TUNNEL = {"decode-as-none", "vxlan-port-not-vxlan", "vxlan-port-short",
                         "geneve-port-bad-version"}
TRANSPORT = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "gre": 47}


# --- tshark's view -----------------------------------------------------------------------------

def _flat(content: Any, out: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every leaf field of a layer (nested trees included), values in order."""
    if isinstance(content, list):
        for k, v in content:
            if isinstance(v, list) and v and isinstance(v[0], tuple):
                _flat(v, out)
            elif isinstance(v, str):
                out.setdefault(k, []).append(v)
    return out


def run_tshark(tshark: str, path: Path, extra: Sequence[str] = ()
               ) -> list[list[tuple[str, dict[str, list[str]]]]]:
    """Per frame, its layers in order: (protocol, {field: [values]})."""
    proc = subprocess.run([tshark, "-n", "-r", str(path), "-T", "json", *TSHARK_OPTS, *extra],
                          capture_output=True, text=True, check=True)
    return _layers(proc.stdout)


def _layers(text: str) -> list[list[tuple[str, dict[str, list[str]]]]]:
    data = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    frames = []
    for pkt in data:
        layers = dict(dict(pkt)["_source"])["layers"]
        frames.append([(name, _flat(content, {})) for name, content in layers])
    return frames


def _int(v: str) -> int:
    return int(v, 0)


def tshark_model(layers: list[tuple[str, dict[str, list[str]]]]) -> dict[str, Any]:
    """tshark's layers -> header fields per nesting level and the tunnel layers."""
    levels: list[dict[str, Any]] = [{}]
    tunnels: list[dict[str, Any]] = []
    prev = ""
    dport = None
    for name, f in layers:
        lv = levels[-1]

        def first(key: str, f: dict[str, list[str]] = f) -> str | None:
            return f[key][0] if key in f else None

        def tunnel(t: dict[str, Any], lv: dict[str, Any] = lv) -> None:
            t.update({k: lv.get(k) for k in ("src", "dst", "sport", "dport")})
            tunnels.append(t)
            levels.append({})

        if name == "eth":
            lv.setdefault("eth_src", first("eth.src"))
            lv.setdefault("eth_dst", first("eth.dst"))
        elif name == "sll" and "sll.src.eth" in f:
            lv["eth_src"] = first("sll.src.eth")
        elif name in ("vlan", "ieee8021ad"):
            lv.setdefault("vlans", []).append(_int(first(name + ".id") or "-1"))
        elif name == "mpls":
            label = _int(first("mpls.label") or "-1")
            if prev == "udp":
                tunnel({"type": "mpls-udp", "vni": label, "labels": [label]})
            elif prev == "mpls" and tunnels and tunnels[-1].get("labels") and not lv:
                tunnels[-1]["labels"].append(label)
            else:
                lv.setdefault("mpls", []).append(label)
        elif name in ("ip", "ipv6"):
            if prev in ("ip", "ipv6"):
                tunnel({"type": "ipip", "vni": None})
                lv = levels[-1]
            if lv.get("src") is None:  # an ICMP error's embedded header is not ours
                if name == "ip":
                    lv.update(src=first("ip.src"), dst=first("ip.dst"),
                              proto=_int(first("ip.proto") or "-1"),
                              ttl=_int(first("ip.ttl") or "-1"))
                else:
                    lv.update(src=first("ipv6.src"), dst=first("ipv6.dst"),
                              ttl=_int(first("ipv6.hlim") or "-1"))
        elif name in ("udp", "tcp"):
            if lv.get("sport") is None:
                lv.update(sport=_int(first(name + ".srcport") or "-1"),
                          dport=_int(first(name + ".dstport") or "-1"))
                dport = lv["dport"]
            if "proto" not in lv:
                lv["proto"] = TRANSPORT[name]
        elif name in ("icmp", "icmpv6"):
            lv.setdefault("proto", TRANSPORT[name])
            lv.setdefault("icmp_type", _int(first(name + ".type") or "-1"))
        elif name == "arp":
            lv.update(src=first("arp.src.proto_ipv4"), dst=first("arp.dst.proto_ipv4"))
        elif name == "vxlan":
            gpe = "vxlan.next_proto" in f or "vxlan.ver" in f
            t = {"type": "vxlan-gpe" if gpe else "vxlan", "vni": _int(first("vxlan.vni") or "-1")}
            if "vxlan.gbp" in f and not gpe:
                t["gbp"] = _int(first("vxlan.gbp") or "-1")
            tunnel(t)
        elif name == "geneve":
            tunnel({"type": "geneve", "vni": _int(first("geneve.vni") or "-1"),
                    "options": list(zip(map(_int, f.get("geneve.option.class", [])),
                                        map(_int, f.get("geneve.option.type", [])),
                                        strict=True))})
        elif name == "gre":
            fv = _int(first("gre.flags_and_version") or "0")
            key = first("gre.key.call_id") if fv & 7 == 1 else first("gre.key")
            tunnel({"type": "gre", "vni": _int(key) if key is not None else None,
                    "gre_flags": fv, "gre_proto": _int(first("gre.proto") or "-1")})
        elif name == "erspan" and tunnels:
            tunnels[-1]["erspan"] = _int(first("erspan.spanid") or "-1") \
                if "erspan.spanid" in f else None
        elif name == "nsh" and tunnels and tunnels[-1]["type"] == "vxlan-gpe":
            tunnels[-1].update(spi=_int(first("nsh.spi") or "-1"),
                               si=_int(first("nsh.si") or "-1"))
        elif name == "stt":  # tshark's STT layer replaces TCP: its ports are STT fields
            lv.update(sport=_int(first("stt.stream_id") or "-1"),
                      dport=_int(first("stt.dport") or "-1"))
            seg = _int(first("stt.seg_off") or "0")
            ctx = first("stt.context_id")
            tunnel({"type": "stt", "vni": _int(ctx) if ctx is not None and seg == 0 else None})
        prev = name
    del dport
    return {"levels": levels, "tunnels": tunnels}


# --- comparison ----------------------------------------------------------------------------------

def expected_tunnel(t: dict[str, Any], teb_nvgre: bool) -> dict[str, Any]:
    """tshark's tunnel layer as we name it (the documented mappings)."""
    out = {k: t[k] for k in ("type", "vni", "src", "dst", "sport", "dport")}
    if t["type"] == "gre":
        flags, proto = t["gre_flags"], t["gre_proto"]
        if "erspan" in t or proto in (0x88BE, 0x22EB):  # GRE + ERSPAN: one layer
            out.update(type="erspan", vni=t.get("erspan"))
        elif proto == 0x6558 and flags & 0xF000 == 0x2000 and flags & 7 == 0 and teb_nvgre:
            out.update(type="nvgre", vni=t["vni"] >> 8, flow_id=t["vni"] & 0xFF)
    return out


def compare(rec: dict[str, Any], ts: dict[str, Any], where: str, *,
            teb_nvgre: bool = True, max_depth: int = 4) -> None:
    tunnels = ts["tunnels"]
    levels = ts["levels"]
    stop = len(tunnels)
    for k, t in enumerate(tunnels):  # GRE payloads we do not decode (PPP, Cisco CMD...)
        if t["type"] == "gre" and (t["gre_flags"] & 7 == 1 or t["gre_proto"] not in GRE_DECODED):
            stop = k + 1
            break
    ours = rec["tunnels"]
    want_depth = min(stop, max_depth)
    assert len(ours) == want_depth, f"{where}: {len(ours)} tunnel layers, tshark {stop}"
    if stop > max_depth:
        assert rec["error"] == "tunnel_depth_exceeded", where
    for j in range(want_depth):
        want = expected_tunnel(tunnels[j], teb_nvgre)
        got = ours[j]
        for k, v in want.items():
            assert got.get(k) == v, f"{where}: tunnel {j} {k}: ours {got.get(k)!r}, tshark {v!r}"
        t = tunnels[j]
        if "spi" in t:
            assert (got.get("nsh_spi"), got.get("nsh_si")) == (t["spi"], t["si"]), where
        if "gbp" in t and got["type"] == "vxlan" and got.get("group_policy_id") is not None:
            assert got["group_policy_id"] == t["gbp"], where
    geneve = next((t for t in tunnels[:want_depth] if t["type"] == "geneve"), None)
    if geneve is not None:
        raw = bytes.fromhex(rec["geneve_options"])
        opts = []
        k = 0
        while k + 4 <= len(raw):
            opts.append((int.from_bytes(raw[k:k + 2], "big"), raw[k + 2]))
            k += 4 + (raw[k + 3] & 0x1F) * 4
        assert opts == geneve["options"], f"{where}: GENEVE options"
    _compare_level(rec, "", levels[0], where)
    if want_depth:
        inner = levels[want_depth]
        if stop < len(tunnels) or (stop and tunnels[stop - 1]["type"] == "gre"
                                   and tunnels[stop - 1]["gre_proto"] not in GRE_DECODED):
            inner = {}  # a GRE payload we do not decode: nothing inside
        _compare_level(rec, "inner_", inner, where)


def _compare_level(rec: dict[str, Any], prefix: str, lv: dict[str, Any], where: str) -> None:
    for k in ("eth_src", "eth_dst", "src", "dst", "sport", "dport", "ttl", "icmp_type"):
        if lv.get(k) is not None:
            assert rec[prefix + k] == lv[k], \
                f"{where}: {prefix}{k}: ours {rec[prefix + k]!r}, tshark {lv[k]!r}"
    if lv.get("proto") is not None and lv.get("src") is not None:
        assert rec[prefix + "proto"] == lv["proto"], f"{where}: {prefix}proto"
    vlans = lv.get("vlans", [])
    assert rec[prefix + "vlan"] == (vlans[0] if vlans else None), f"{where}: {prefix}vlan"
    assert rec[prefix + "vlan2"] == (vlans[1] if len(vlans) > 1 else None), where
    labels = lv.get("mpls", [])
    assert rec[prefix + "mpls_label"] == (labels[0] if labels else None), where
    assert rec[prefix + "mpls_labels"] == (len(labels) if labels else None), where


# --- the tests ---------------------------------------------------------------------------------------

def _ours(path: Path, config: DecodeConfig | None = None) -> list[dict[str, Any]]:
    return list(record_dicts(PacketDecoder(config).decode(read_all(path)), all_fields=True))


@pytest.fixture(scope="module")
def shared_tshark(tshark: str, shared_captures: Path) -> dict[str, list[Any]]:
    """tshark's layers for every frame of the shared captures (run side by side)."""
    folder = shared_captures / "tcpdump"
    procs = {c: subprocess.Popen([tshark, "-n", "-r", str(folder / c), "-T", "json",
                                  *TSHARK_OPTS], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True) for c in SHARED}
    return {c: _layers(p.communicate()[0]) for c, p in procs.items()}


@pytest.mark.parametrize("capture", SHARED)
def test_shared_captures_agree_with_tshark(shared_tshark: dict[str, list[Any]],
                                           shared_captures: Path, capture: str) -> None:
    theirs = shared_tshark[capture]
    ours = _ours(shared_captures / "tcpdump" / capture)
    assert len(ours) == len(theirs)
    tunnelled = 0
    for k, (rec, layers) in enumerate(zip(ours, theirs, strict=True)):
        ts = tshark_model(layers)
        compare(rec, ts, f"{capture} frame {k + 1}")
        tunnelled += bool(ts["tunnels"])
    if capture != "802.1ad_QinQ.pcap":
        assert tunnelled, "no tunnel in a tunnel capture: tshark options wrong?"


def _decode_as_args() -> list[str]:
    args = []
    for spec in sorted({s for c in CASES for s in c.decode_as}):
        left, name = spec.split("=")
        proto, port = left.split(":")
        if name != "none":  # the decode-as-none frame is one tshark reads as VXLAN
            args += ["-d", f"{proto}.port=={port},{name}"]
    return args


@pytest.fixture(scope="module")
def built_tshark(tshark: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> dict[str, dict[str, Any]]:
    """Every round-trip frame in one pcapng (an interface per link type), read by tshark
    once: case name -> tshark's model of it."""
    path = tmp_path_factory.mktemp("tshark") / "cases.pcapng"
    with PcapngWriter(path) as w:
        ifaces: dict[int, int] = {}
        for k, c in enumerate(CASES):
            if c.linktype not in ifaces:
                ifaces[c.linktype] = w.add_interface(c.linktype, tsresol=9)
            w.write(c.frame, 1_700_000_000_000_000_000 + k, iface=ifaces[c.linktype])
    theirs = run_tshark(tshark, path, _decode_as_args())
    assert len(theirs) == len(CASES)
    return {c.name: tshark_model(layers) for c, layers in zip(CASES, theirs, strict=True)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_built_frames_agree_with_tshark(built_tshark: dict[str, dict[str, Any]],
                                        case: Case) -> None:
    ts = built_tshark[case.name]
    recs, _ = decode_records([case.frame], linktype=case.linktype, config=case.config())
    rec = recs[0]
    if case.name in NOT_THE_TUNNEL:
        # tshark trusts the port; we keep UDP and say why (no invented VNI)
        if case.name in TSHARK_READS_A_TUNNEL:
            assert ts["tunnels"], "tshark was expected to read a tunnel here"
        assert rec["tunnels"] == [] and rec["vni"] is None
        assert rec["error"] is None and rec["truncated"] is False
        _compare_level(rec, "", ts["levels"][0], case.name)
        return
    compare(rec, ts, case.name, teb_nvgre=case.gre_teb_as_nvgre)


def test_nvgre_mapping_is_what_gre_py_documents(built_tshark: dict[str, dict[str, Any]]
                                                ) -> None:
    """The one naming difference spelled out: same frame, both settings of gre_teb."""
    key = built_tshark["nvgre"]["tunnels"][0]["vni"]
    frame = CASE_BY_NAME["nvgre"].frame
    as_nvgre = decode_records([frame])[0][0]["tunnels"][0]
    as_gre = decode_records([frame], config=DecodeConfig(gre_teb_as_nvgre=False))[0][0]
    assert (as_nvgre["type"], as_nvgre["vni"], as_nvgre["flow_id"]) == ("nvgre", key >> 8,
                                                                        key & 0xFF)
    assert (as_gre["tunnels"][0]["type"], as_gre["vni"], as_gre["tunnels"][0]["gre_flags"]) \
        == ("gre", key, 0x2000)

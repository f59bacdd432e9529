"""Golden tests against tcpdump: the captures of tcpdump's own test suite
(``../shared/captures/tcpdump``, BSD licence) decode, frame by frame, to what tcpdump
prints in the expected ``.out`` files for them.

The ``.out`` text is turned into tokens by one regular expression per line shape
(Ethernet with ``-e``, VLAN tags, the ``-v`` IPv4 line, a flow ``a.b.c.d.port > ...:``,
VXLAN, Geneve with its options, GRE, MPLS, ARP). Tokens are read in order: a tunnel
token starts the next nesting level. The record's wire headers must match the first
level, its inner headers the last, its ``tunnels`` the tunnel tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fabricscope.capture import read_all
from fabricscope.decode import PacketDecoder
from fabricscope.records.present import record_dicts

# (test name in TESTLIST.subset, capture, expected output) for the packet captures
GOLDEN = [
    ("vxlan", "vxlan.pcap", "vxlan.out"),
    ("vxlan_port_8472", "vxlan_port_8472.pcap", "vxlan_port_8472.out"),
    ("geneve-vv", "geneve.pcap", "geneve-vv.out"),
    ("various_gre", "various_gre.pcap", "various_gre.out"),
    ("gso-ipv4-vxlan-ipv4", "gso-ipv4-vxlan-ipv4.pcap", "gso-ipv4-vxlan-ipv4.out"),
    ("mpls-over-udp-v", "mpls-over-udp.pcap", "mpls-over-udp-v.out"),
    ("802.1ad_QinQv", "802.1ad_QinQ.pcap", "802.1ad_QinQv.out"),
]

FRAME_START = re.compile(r"^\s*(\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ ", re.M)
_MAC = r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}"
_IP4 = r"\d{1,3}(?:\.\d{1,3}){3}"
TOKEN = re.compile("|".join([
    # -e: "src > dst, ethertype NAME (0x0800), length 148: "
    rf"(?P<eth>(?P<eth_src>{_MAC}) > (?P<eth_dst>{_MAC}), ethertype [^(]*"
    rf"\((?P<eth_type>0x[0-9a-f]{{4}})\), length (?P<eth_len>\d+))",
    # -e, VLAN tags: "vlan 200, p 0, ethertype 802.1Q (0x8100)"
    r"(?P<vlan>vlan (?P<vlan_id>\d+), p \d+, ethertype [^(]*\((?P<vlan_type>0x[0-9a-f]{4})\))",
    # -v: "IP (tos 0x0, ttl 64, id 1, offset 0, flags [DF], proto UDP (17), length 142"
    r"(?P<ip>IP \(tos (?P<ip_tos>0x[0-9a-f]+), ttl (?P<ip_ttl>\d+), id \d+, offset \d+, "
    r"flags \[[^\]]*\], proto [^(]*\((?P<ip_proto>\d+)\), length (?P<ip_len>\d+))",
    # "a.b.c.d.port > e.f.g.h.port:" then "a.b.c.d > e.f.g.h:"
    rf"(?<![\d.])(?P<flow4>(?P<f4_src>{_IP4})\.(?P<f4_sport>\d+) > "
    rf"(?P<f4_dst>{_IP4})\.(?P<f4_dport>\d+):)",
    rf"(?<![\d.])(?P<flow3>(?P<f3_src>{_IP4}) > (?P<f3_dst>{_IP4}):)",
    r"(?P<vxlan>VXLAN, flags \[[^\]]*\] \(0x[0-9a-f]+\), vni (?P<vxlan_vni>\d+))",
    r"(?P<geneve>Geneve, Flags \[[^\]]*\], vni (?P<geneve_vni>0x[0-9a-f]+)"
    r"(?:, options \[(?P<geneve_opts>[^\]]*)\])?)",
    r"(?P<gre>GREv(?P<gre_ver>\d), Flags \[[^\]]*\](?:, key=(?P<gre_key>0x[0-9a-f]+))?)",
    r"(?P<mpls>MPLS \(label (?P<mpls_label>\d+), tc \d+, (?:\[S\], )?ttl \d+\))",
    rf"(?P<arpq>Request who-has (?P<arpq_tpa>{_IP4}) tell (?P<arpq_spa>{_IP4}))",
    rf"(?P<arpr>Reply (?P<arpr_spa>{_IP4}) is-at {_MAC})",
    r"(?P<icmp>ICMP echo (?:request|reply))",
]))
KINDS = ("eth", "vlan", "ip", "flow4", "flow3", "vxlan", "geneve", "gre", "mpls", "arpq",
         "arpr", "icmp")
GENEVE_OPT = re.compile(r"class [^(]*\((?P<cls>0x[0-9a-f]+)\) type (?P<type>0x[0-9a-f]+)"
                        r"(?:\(C\))? len (?P<len>\d+) data (?P<data>[0-9a-f]*)")


@dataclass
class Golden:
    """What tcpdump says about one frame: header fields per level, tunnel layers."""

    number: int
    text: str
    levels: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    tunnels: list[dict[str, Any]] = field(default_factory=list)
    geneve_options: list[tuple[int, int, int, str]] | None = None
    has_ip: bool = False


def parse_out(text: str) -> list[Golden]:
    starts = list(FRAME_START.finditer(text))
    out = []
    for k, mt in enumerate(starts):
        body = text[mt.end(): starts[k + 1].start() if k + 1 < len(starts) else len(text)]
        g = Golden(int(mt.group(1)), body)
        tags = 0
        for t in TOKEN.finditer(body):
            lv = g.levels[-1]
            kind = next(n for n in KINDS if t.group(n) is not None)
            if kind == "eth":
                lv.update(eth_src=t["eth_src"], eth_dst=t["eth_dst"])
                if len(g.levels) == 1:
                    lv["frame_len"] = int(t["eth_len"])
                et = int(t["eth_type"], 16)
                if et not in (0x8100, 0x88A8, 0x9100):
                    lv["ethertype"] = et
            elif kind == "vlan":
                lv["vlan" if tags == 0 else "vlan2"] = int(t["vlan_id"])
                tags += 1
                et = int(t["vlan_type"], 16)
                if et not in (0x8100, 0x88A8, 0x9100):
                    lv["ethertype"] = et
            elif kind == "ip":
                lv.update(ip_ver=4, tos=int(t["ip_tos"], 16), ttl=int(t["ip_ttl"]),
                          proto=int(t["ip_proto"]), ip_len=int(t["ip_len"]))
            elif kind == "flow4":
                g.has_ip = True
                lv.update(src=t["f4_src"], dst=t["f4_dst"], sport=int(t["f4_sport"]),
                          dport=int(t["f4_dport"]))
            elif kind == "flow3":
                g.has_ip = True
                lv.update(src=t["f3_src"], dst=t["f3_dst"])
            elif kind == "icmp":
                lv["proto"] = 1
            elif kind == "arpq":
                lv.update(src=t["arpq_spa"], dst=t["arpq_tpa"])
            elif kind == "arpr":
                lv["src"] = t["arpr_spa"]
            else:  # a tunnel: the next tokens describe the next level
                if kind == "vxlan":
                    tun = {"type": "vxlan", "vni": int(t["vxlan_vni"])}
                elif kind == "geneve":
                    tun = {"type": "geneve", "vni": int(t["geneve_vni"], 16)}
                    if g.geneve_options is None:
                        g.geneve_options = [
                            (int(o["cls"], 16), int(o["type"], 16), int(o["len"]), o["data"])
                            for o in GENEVE_OPT.finditer(t["geneve_opts"] or "")]
                elif kind == "gre":
                    key = t["gre_key"]
                    tun = {"type": "gre", "vni": int(key, 16) if key else None}
                else:
                    tun = {"type": "mpls-udp", "vni": int(t["mpls_label"])}
                for k2 in ("src", "dst", "sport", "dport"):
                    tun[k2] = lv.get(k2)
                g.tunnels.append(tun)
                g.levels.append({})
                tags = 0
        out.append(g)
    return out


def geneve_options(raw: bytes) -> list[tuple[int, int, int, str]]:
    """Our raw GENEVE options -> tcpdump's (class, type, total length, data hex)."""
    opts = []
    k = 0
    while k + 4 <= len(raw):
        cls, typ, ln = int.from_bytes(raw[k:k + 2], "big"), raw[k + 2], (raw[k + 3] & 0x1F) * 4
        opts.append((cls, typ, ln + 4, raw[k + 4: k + 4 + ln].hex()))
        k += 4 + ln
    return opts


def decode_file(path: Path) -> list[dict[str, Any]]:
    frames = read_all(path)
    return list(record_dicts(PacketDecoder().decode(frames), all_fields=True))


def _compare(g: Golden, rec: dict[str, Any], where: str) -> None:
    for k, v in g.levels[0].items():
        assert rec[k] == v, f"{where}: wire {k}: ours {rec[k]!r}, tcpdump {v!r}"
    got_tunnels = [{k: t[k] for k in ("type", "vni", "src", "dst", "sport", "dport")}
                   for t in rec["tunnels"]]
    assert got_tunnels == g.tunnels, f"{where}: tunnels"
    if g.tunnels:
        for k, v in g.levels[-1].items():
            assert rec["inner_" + k] == v, f"{where}: inner {k}: ours {rec['inner_' + k]!r}, " \
                                           f"tcpdump {v!r}"
    if not g.has_ip and "src" not in g.levels[0]:
        assert rec["src"] is None and rec["encap"] is None, f"{where}: tcpdump saw no IP"
    if g.geneve_options is not None:
        assert geneve_options(bytes.fromhex(rec["geneve_options"])) == g.geneve_options, where


@pytest.mark.parametrize(("name", "capture", "out"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_matches_tcpdump(shared_captures: Path, name: str, capture: str, out: str) -> None:
    folder = shared_captures / "tcpdump"
    listed = (folder / "TESTLIST.subset").read_text()
    assert re.search(rf"^{re.escape(name)}\s+{re.escape(capture)}\s+{re.escape(out)}\s", listed,
                     re.M), f"{name} is not in TESTLIST.subset"
    golden = parse_out((folder / out).read_text())
    recs = decode_file(folder / capture)
    assert [g.number for g in golden] == list(range(1, len(recs) + 1)), \
        "tcpdump printed a different number of frames"
    for g, rec in zip(golden, recs, strict=True):
        _compare(g, rec, f"{capture} frame {g.number}")
        assert rec["error"] is None, f"{capture} frame {g.number}: {rec['error']}"
        if g.tunnels and g.levels[-1].get("src"):
            assert rec["inner_src"] is not None


def test_golden_parser_reads_what_matters(shared_captures: Path) -> None:
    """The .out parser itself: it finds the fields these captures are about."""
    folder = shared_captures / "tcpdump"
    vx = parse_out((folder / "vxlan.out").read_text())
    assert len(vx) == 10
    assert vx[0].levels[0] == {"eth_src": "36:dc:85:1e:b3:40", "eth_dst": "00:16:3e:08:71:cf",
                               "frame_len": 148, "ethertype": 0x0800, "src": "192.168.203.1",
                               "dst": "192.168.202.1", "sport": 45149, "dport": 4789}
    assert vx[0].tunnels[0]["vni"] == 100
    assert vx[1].levels[1]["ethertype"] == 0x0806  # an ARP inside
    gn = parse_out((folder / "geneve-vv.out").read_text())
    assert gn[0].geneve_options == [(0, 0x80, 8, "0000000c")]
    assert gn[1].geneve_options == []
    assert gn[2].levels[1]["sport"] == 51225
    gre = parse_out((folder / "various_gre.out").read_text())
    assert sum(1 for g in gre if g.tunnels) == 30
    assert {g.tunnels[0]["vni"] for g in gre if g.tunnels} == {0x28}
    qq = parse_out((folder / "802.1ad_QinQv.out").read_text())
    assert qq[0].levels[0]["vlan"] == 200 and qq[0].levels[0]["vlan2"] == 2001
    assert qq[0].levels[0]["src"] == "172.21.79.97"
    mp = parse_out((folder / "mpls-over-udp-v.out").read_text())
    assert mp[0].tunnels[0] == {"type": "mpls-udp", "vni": 21, "src": "10.100.12.170",
                                "dst": "10.100.13.157", "sport": 58699, "dport": 6635}


@pytest.mark.parametrize(("capture", "frame", "error"), [
    ("gre-heapoverflow-1.pcap", 2, "ipv4_bad_version"),  # tcpdump: IP [version 0 != 4]
    ("gre-heapoverflow-2.pcap", 2, "truncated_gre"),  # tcpdump: ... [|gre]
])
def test_crash_regressions_match_tcpdump(shared_captures: Path, capture: str, frame: int,
                                         error: str) -> None:
    recs = decode_file(shared_captures / "tcpdump" / capture)
    assert len(recs) == 2
    assert recs[0]["error"] is None and recs[0]["ethertype"] == 0x3030  # unknown ethertype
    assert recs[frame - 1]["error"] == error

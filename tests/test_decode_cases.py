"""Round trips: frames built with scapy for every layer and tunnel decode to exactly what
was built: wire headers, every tunnel layer (``tunnels``), innermost headers, error, events.

The expected record is not hand-written per case. :func:`expect` walks the scapy layer
chain of the built frame (the test's own model of the protocols, independent of the
decoder) and lists, for every header, the bytes the decoder needs for it and the record
fields it provides: its *segments*. The full record must equal the union of the segments;
the truncation tests (``test_decode_truncation.py``) cut each frame at every length and
check the record against the segments that survive; the fuzz tests
(``test_decode_fuzz.py``) mutate these frames.

Other modules import ``CASES``, ``expect``, ``decode_records`` and friends from here.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from scapy.contrib.erspan import (
    ERSPAN_II,
    ERSPAN_III,
    ERSPAN_PlatformSpecific,
)
from scapy.contrib.geneve import GENEVE
from scapy.contrib.mpls import MPLS
from scapy.contrib.nsh import NSH
from scapy.fields import (
    BitField,
    ByteField,
    LongField,
    ShortField,
    XByteField,
)
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_Router_Alert
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import (
    ARP,
    GRE,
    GRE_PPTP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Ether,
    GRErouting,
)
from scapy.layers.ppp import PPP
from scapy.layers.vxlan import VXLAN
from scapy.packet import NoPayload, Packet, Padding, Raw

from fabricscope.decode import DecodeConfig, PacketDecoder
from fabricscope.records.present import record_dicts
from framehelp import frames_from_bytes


class STT(Packet):
    """STT frame header (draft-davie-stt section 3.1), 18 octets; scapy has none."""

    name = "STT"
    fields_desc = [  # noqa: RUF012
        ByteField("version", 0),
        XByteField("flags", 0),
        ByteField("l4_offset", 0),
        ByteField("reserved", 0),
        ShortField("mss", 1448),
        BitField("pcp", 0, 3),
        BitField("v", 0, 1),
        BitField("vlan", 0, 12),
        LongField("context", 0),
        ShortField("padding", 0),
    ]


# --- the test's own model of the record -------------------------------------------------

HEADER_FIELDS = (
    "eth_src", "eth_dst", "vlan", "vlan2", "ethertype", "mpls_label", "mpls_labels",
    "ip_ver", "src", "dst", "proto", "ttl", "tos", "frag", "ip_len", "sport", "dport",
    "tcp_flags", "icmp_type", "icmp_code",
)
TUNNEL_KEYS = ("type", "vni", "src", "dst", "sport", "dport")

DEFAULT_UDP = {4789: "vxlan", 8472: "vxlan", 4790: "vxlan-gpe", 6081: "geneve",
               6635: "mpls-udp"}
DEFAULT_TCP = {7471: "stt"}
FALLBACK_EVENT = {"vxlan": "vxlan_fallback_udp", "vxlan-gpe": "vxlan_gpe_fallback_udp",
                  "geneve": "geneve_fallback_udp", "mpls-udp": "mpls_udp_fallback"}
TRUNC_EVENT = {"vxlan": "truncated_vxlan", "vxlan-gpe": "truncated_vxlan",
               "geneve": "truncated_geneve", "mpls-udp": "truncated_mpls"}


@dataclass
class Seg:
    """A header: ``frame[start:need]`` must be captured for the decoder to have all of it.

    ``where``: ``level`` (headers at nesting level ``index``: 0 = wire), ``tunnel``
    (fields of tunnel layer ``index``), ``over`` (a tunnel beyond the depth cap: decoded,
    then the walk stops) or ``probe`` (bytes the decoder reads to decide a tunnel port's
    payload is not the tunnel).
    """

    where: str
    index: int
    start: int
    need: int
    fields: dict[str, Any]
    trunc: str


@dataclass
class Expect:
    segs: list[Seg] = field(default_factory=list)
    levels: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    tunnels: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    events: set[str] = field(default_factory=set)
    geneve_options: bytes | None = None

    @property
    def depth(self) -> int:
        return len(self.tunnels)

    @property
    def need(self) -> int:
        """Bytes needed for a complete decode (beyond: payload only)."""
        return max((s.need for s in self.segs), default=0)


def mac_text(mac: str | bytes) -> str:
    """A MAC as the record shows it (lower-case, colon-separated)."""
    if isinstance(mac, bytes):
        return ":".join(f"{b:02x}" for b in mac[:6])
    return mac.lower()


def ip_text(text: str) -> str:
    return str(ipaddress.ip_address(text))


class _Walker:
    """Walks a scapy packet like the decoder should, building the expectation."""

    def __init__(self, raw: bytes, udp: dict[int, str], tcp: dict[int, str],
                 max_depth: int, teb_nvgre: bool) -> None:
        self.raw = raw
        self.udp = udp
        self.tcp = tcp
        self.max_depth = max_depth
        self.teb_nvgre = teb_nvgre
        self.x = Expect()
        self.level = 0
        self.tags = 0  # VLAN tags seen at this level
        self.stopped = False

    # the three kinds of segment
    def header(self, start: int, need: int, fields: dict[str, Any], trunc: str) -> None:
        self.x.segs.append(Seg("level", self.level, start, need, fields, trunc))
        self.x.levels[self.level].update(fields)

    def tunnel(self, start: int, need: int, fields: dict[str, Any], trunc: str) -> None:
        """A new tunnel layer whose own header is frame[start:need]."""
        idx = len(self.x.tunnels)
        if idx >= self.max_depth:
            self.x.segs.append(Seg("over", idx, start, need, {}, trunc))
            self.x.error = "tunnel_depth_exceeded"
            self.x.events.add("tunnel_depth_exceeded")
            self.stopped = True
            return
        lv = self.x.levels[self.level]
        t = {"type": fields["type"], "vni": None}
        for k in ("src", "dst", "sport", "dport"):
            t[k] = lv.get(k)
        t.update(fields)
        self.x.segs.append(Seg("tunnel", idx, start, need, dict(fields), trunc))
        self.x.tunnels.append(t)
        self.level += 1
        self.tags = 0
        self.x.levels.append({})

    def tunnel_more(self, start: int, need: int, fields: dict[str, Any], trunc: str) -> None:
        """More fields of the current (last) tunnel layer, from a later header."""
        idx = len(self.x.tunnels) - 1
        self.x.segs.append(Seg("tunnel", idx, start, need, dict(fields), trunc))
        self.x.tunnels[idx].update(fields)

    def event(self, name: str) -> None:
        self.x.events.add(name)

    def stop(self) -> None:
        self.stopped = True

    # helpers
    def off(self, layer: Packet) -> int:
        return len(self.raw) - len(layer)

    def hlen(self, layer: Packet) -> int:
        return len(layer) - len(layer.payload)

    def u16(self, at: int) -> int:
        return int(struct.unpack_from(">H", self.raw, at)[0])

    # the walk
    def run(self, pkt: Packet) -> Expect:
        layer: Packet = pkt
        while not self.stopped and not isinstance(layer, NoPayload | Raw | Padding):
            layer = self.step(layer)
        return self.x

    def step(self, p: Packet) -> Packet:
        o = self.off(p)
        h = self.hlen(p)
        nxt = p.payload
        if isinstance(p, Ether):
            f = {"eth_dst": mac_text(p.dst), "eth_src": mac_text(p.src)}
            et = self.u16(o + 12)
            if not isinstance(nxt, Dot1Q | Dot1AD) and et >= 0x600:
                f["ethertype"] = et
            self.header(o, o + 14, f, "truncated_link")
            return nxt
        if isinstance(p, CookedLinux | CookedLinuxV2):
            f = {}
            if p.lladdrtype == 1 and p.lladdrlen == 6:
                f["eth_src"] = mac_text(p.src if isinstance(p.src, bytes)
                                        else bytes.fromhex(p.src.replace(":", "")))
            if not isinstance(nxt, Dot1Q | Dot1AD):
                f["ethertype"] = p.proto
            self.header(o, o + h, f, "truncated_link")
            return nxt
        if isinstance(p, Dot1Q | Dot1AD):
            f = {"vlan" if self.tags == 0 else "vlan2": p.vlan}
            self.tags += 1
            if not isinstance(nxt, Dot1Q | Dot1AD):
                f["ethertype"] = self.u16(o + 2)
            self.header(o, o + 4, f, "truncated_vlan")
            return nxt
        if isinstance(p, MPLS):
            labels = [p]
            q = nxt
            while isinstance(q, MPLS) and not labels[-1].s:
                labels.append(q)
                q = q.payload
            need = o + 4 * len(labels)
            if self._udp_tunnel == "mpls-udp":
                # the top label names the layer; bottom and count need the whole stack
                self._udp_tunnel = None
                self.tunnel(o, o + 4, {"type": "mpls-udp", "vni": labels[0].label},
                            "truncated_mpls")
                if not self.stopped:
                    self.tunnel_more(o, need, {"bottom_label": labels[-1].label,
                                               "labels": len(labels)}, "truncated_mpls")
                    # MPLS names no payload type: its first nibble is read to guess it
                    self.tunnel_more(need, need + 1, {}, "truncated_mpls")
            else:
                self.header(o, need, {"mpls_label": labels[0].label,
                                      "mpls_labels": len(labels)}, "truncated_mpls")
                self.header(need, need + 1, {}, "truncated_mpls")
            return q
        if isinstance(p, IP):
            if self._pending_ipip():
                self.tunnel(o, o, {"type": "ipip"}, "truncated_ipv4")
            flags = self.u16(o + 6)
            frag = (1 if flags & 0x2000 else 0) | (2 if flags & 0x1FFF else 0) \
                | (4 if flags & 0x4000 else 0)
            f = {"ip_ver": 4, "src": ip_text(p.src), "dst": ip_text(p.dst), "proto": p.proto,
                 "ttl": p.ttl, "tos": p.tos, "frag": frag, "ip_len": self.u16(o + 2)}
            self.header(o, o + (self.raw[o] & 0xF) * 4, f, "truncated_ipv4")
            if frag & 3:
                self.event("ipv4_fragment")
            if frag & 2:
                self.stop()
            self._ipip = p.proto in (4, 41)
            return nxt
        if isinstance(p, IPv6):
            if self._pending_ipip():
                self.tunnel(o, o, {"type": "ipip"}, "truncated_ipv6")
            f = {"ip_ver": 6, "src": ip_text(p.src), "dst": ip_text(p.dst), "ttl": p.hlim,
                 "tos": p.tc, "ip_len": self.u16(o + 4) + 40}
            self.header(o, o + 40, f, "truncated_ipv6")
            q = nxt
            frag = 0
            last = self.x.segs[-1]
            nh = p.nh
            while isinstance(q, IPv6ExtHdrHopByHop | IPv6ExtHdrRouting | IPv6ExtHdrDestOpt
                             | IPv6ExtHdrFragment | AH):
                qo = self.off(q)
                self.header(qo, qo + self.hlen(q), {}, "truncated_ipv6_ext")
                last = self.x.segs[-1]
                nh = q.nh
                if isinstance(q, IPv6ExtHdrFragment):
                    self.event("ipv6_fragment")
                    frag |= (1 if q.m else 0) | (2 if q.offset else 0)
                    if q.offset:
                        last.fields.update({"proto": nh, "frag": frag})
                        self.x.levels[self.level].update(last.fields)
                        self.stop()
                        return q.payload
                q = q.payload
            last.fields.update({"proto": nh, "frag": frag})
            self.x.levels[self.level].update(last.fields)
            self._ipip = nh in (4, 41)
            return q
        if isinstance(p, UDP):
            self.header(o, o + 8, {"sport": p.sport, "dport": p.dport}, "truncated_udp")
            kind = self.udp.get(p.dport)
            if kind is None:
                self.stop()
                return nxt
            self._udp_tunnel = kind
            if isinstance(nxt, NoPayload | Raw | Padding):  # not the tunnel: stays UDP
                ulen = self.u16(o + 4)
                data = self.raw[o + 8: o + ulen] if ulen >= 8 else self.raw[o + 8:]
                self.x.segs.append(Seg("probe", 0, o + 8, o + 8 + self._probe(kind, data), {},
                                       TRUNC_EVENT[kind]))
                self.event(FALLBACK_EVENT[kind])
                self.stop()
            return nxt
        if isinstance(p, TCP):
            self.header(o, o + p.dataofs * 4 if p.dataofs else o + h,
                        {"sport": p.sport, "dport": p.dport, "tcp_flags": int(p.flags)},
                        "truncated_tcp")
            if self.tcp.get(p.dport) == "stt":
                if p.seq & 0xFFFF:  # not the first segment of the STT frame
                    self.tunnel(o + h, o + h, {"type": "stt"}, "truncated_stt")
                    self.stop()
                return nxt
            self.stop()
            return nxt
        if isinstance(p, STT):
            self.tunnel(o, o + 18, {"type": "stt", "vni": p.context}, "truncated_stt")
            return nxt
        if isinstance(p, ICMP | ICMPv6EchoRequest):
            self.header(o, o + 4, {"icmp_type": p.type, "icmp_code": p.code}, "truncated_icmp")
            self.stop()
            return nxt
        if isinstance(p, ARP):
            self.header(o, o + 28, {"ip_ver": 4, "src": ip_text(p.psrc),
                                    "dst": ip_text(p.pdst)}, "truncated_arp")
            self.stop()
            return nxt
        if isinstance(p, VXLAN):
            kind = self._udp_tunnel
            self._udp_tunnel = None
            assert kind in ("vxlan", "vxlan-gpe"), "VXLAN header on a non-VXLAN port"
            f: dict[str, Any] = {"type": kind, "vni": p.vni}
            if kind == "vxlan" and p.flags & 0x80:
                f["group_policy_id"] = p.gpid
            self.tunnel(o, o + 8, f, "truncated_vxlan")
            return nxt
        if isinstance(p, NSH):
            if isinstance(p.underlayer, VXLAN):  # SPI and SI name the tunnel's chain and hop
                self.tunnel_more(o, o + 8, {"nsh_spi": p.spi, "nsh_si": p.si},
                                 "truncated_nsh")
            # all of it (context headers too) is needed to find the payload
            self.header(o, o + p.length * 4, {}, "truncated_nsh")
            return nxt
        if isinstance(p, GENEVE):
            self._udp_tunnel = None
            self.tunnel(o, o + 8, {"type": "geneve", "vni": p.vni}, "truncated_geneve")
            opts = self.raw[o + 8: o + 8 + (self.raw[o] & 0x3F) * 4]
            self.x.geneve_options = opts if self.x.geneve_options is None else \
                self.x.geneve_options
            f = {}
            k = 0
            while k + 4 <= len(opts):
                cls, typ, ln = struct.unpack_from(">HBB", opts, k)
                ln = (ln & 0x1F) * 4
                if cls == 0x0102 and typ == 0x80 and ln >= 4:
                    v = int.from_bytes(opts[k + 4: k + 8], "big")
                    f = {"ovn_in_port": (v >> 16) & 0x7FFF, "ovn_out_port": v & 0xFFFF}
                k += 4 + ln
            if not self.stopped:
                self.tunnel_more(o, o + 8 + len(opts), f, "truncated_geneve")
            return nxt
        if isinstance(p, GRE_PPTP):
            self.tunnel(o, o + h, {"type": "gre", "vni": p.call_id,
                                   "gre_flags": self.u16(o)}, "truncated_gre")
            self.event("gre_unknown_payload")
            self.stop()
            return nxt
        if isinstance(p, GRE):
            q = nxt
            need = o + h
            while isinstance(q, GRErouting):
                need = self.off(q) + self.hlen(q)
                last_sre = q
                q = q.payload
                if last_sre.address_family == 0 and last_sre.SRE_len == 0:
                    break
            fl = self.u16(o)
            key = p.key if p.key_present else None
            if p.proto == 0x6558 and fl & 0xF000 == 0x2000 and self.teb_nvgre:
                f = {"type": "nvgre", "vni": key >> 8, "flow_id": key & 0xFF}
            elif p.proto in (0x88BE, 0x22EB):
                f = {"type": "erspan"}
                if p.proto == 0x88BE and not p.seqnum_present:
                    f["erspan_version"] = 0  # type I: no ERSPAN header
            else:
                f = {"type": "gre", "vni": key, "gre_flags": fl}
            self.tunnel(o, need, f, "truncated_gre")
            if p.proto not in (0x6558, 0x0800, 0x86DD, 0x8847, 0x88BE, 0x22EB, 0x0806):
                self.event("gre_unknown_payload")
                self.stop()
            return q
        if isinstance(p, ERSPAN_II | ERSPAN_III):
            f = {"vni": p.session_id, "session_id": p.session_id,
                 "erspan_version": 1 if isinstance(p, ERSPAN_II) else 2}
            self.tunnel_more(o, o + (8 if isinstance(p, ERSPAN_II) else 12), f,
                             "truncated_erspan")
            if isinstance(p, ERSPAN_III) and p.o:
                assert isinstance(nxt, ERSPAN_PlatformSpecific)
                self.x.segs.append(Seg("tunnel", len(self.x.tunnels) - 1, o, o + 20, {},
                                       "truncated_erspan"))
                return nxt.payload
            return nxt
        raise AssertionError(f"the test model does not know {type(p).__name__}")

    _udp_tunnel: str | None = None
    _ipip = False

    def _pending_ipip(self) -> bool:
        was = self._ipip
        self._ipip = False
        return was and self.x.levels[self.level].get("ip_ver") is not None

    @staticmethod
    def _probe(kind: str, data: bytes) -> int:
        """Payload bytes the decoder reads before it knows a tunnel port carries no tunnel."""
        if kind == "mpls-udp":
            return min(len(data), 4)
        if not data:
            return 0
        b0 = data[0]
        if kind == "vxlan" and not b0 & 0x08:
            return 1
        if kind == "vxlan-gpe" and ((b0 >> 4) & 3 or not b0 & 0x08):
            return 1
        if kind == "geneve" and b0 >> 6:
            return 1
        return min(len(data), 8)


def expect(pkt: Packet, *, decode_as: Sequence[str] = (), max_depth: int = 4,
           gre_teb_as_nvgre: bool = True) -> Expect:
    udp = dict(DEFAULT_UDP)
    tcp = dict(DEFAULT_TCP)
    for spec in decode_as:
        left, name = spec.split("=")
        proto, port = left.split(":")
        table = udp if proto == "udp" else tcp
        if name == "none":
            table.pop(int(port), None)
        else:
            table[int(port)] = "mpls-udp" if name == "mpls" else name
    return _Walker(bytes(pkt), udp, tcp, max_depth, gre_teb_as_nvgre).run(pkt)


# --- cases ---------------------------------------------------------------------------------

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
MAC_C, MAC_D = "0a:00:00:00:00:0c", "0a:00:00:00:00:0d"
PAY = b"payload-" * 6


def eth(**kw: Any) -> Ether:
    return Ether(**{"src": MAC_A, "dst": MAC_B, **kw})


def ieth(**kw: Any) -> Ether:
    return Ether(**{"src": MAC_C, "dst": MAC_D, **kw})


def ip4(src: str = "192.0.2.1", dst: str = "192.0.2.2", **kw: Any) -> IP:
    return IP(src=src, dst=dst, ttl=kw.pop("ttl", 61), tos=kw.pop("tos", 0x28), **kw)


def ip6(src: str = "2001:db8::1", dst: str = "2001:db8::2", **kw: Any) -> IPv6:
    return IPv6(src=src, dst=dst, hlim=kw.pop("hlim", 62), tc=kw.pop("tc", 0xB8), **kw)


def inner_tcp() -> Packet:
    return (ieth() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64)
            / TCP(sport=33000, dport=443, flags="PA", seq=1000) / PAY)


def inner_udp6() -> Packet:
    return (ieth() / IPv6(src="fd00::1", dst="fd00::2", hlim=63)
            / UDP(sport=5000, dport=5001) / PAY)


def gre_key(vsid: int, flow: int) -> int:
    return (vsid << 8) | flow


def stt_tcp(seq_off: int = 0, flen: int = 200) -> TCP:
    return TCP(sport=49999, dport=7471, flags="PA", seq=(flen << 16) | seq_off)


def udp_sport(sport: int = 51000, dport: int = 4789) -> UDP:
    return UDP(sport=sport, dport=dport)


OVN_OPT = struct.pack(">HBBI", 0x0102, 0x80, 1, (0x15 << 16) | 0x2A)  # ingress 21, egress 42
EXP_OPT = struct.pack(">HBB", 0xFFFF, 0x01, 2) + b"\x00\x00\x00\x07\x00\x00\x00\x08"


def _five_levels() -> Packet:
    return (eth() / ip4() / udp_sport() / VXLAN(vni=1)
            / ieth() / IP(src="10.1.0.1", dst="10.1.0.2") / UDP(sport=1, dport=6081)
            / GENEVE(vni=2, proto=0x6558) / ieth() / IP(src="10.2.0.1", dst="10.2.0.2")
            / GRE(key_present=1, key=gre_key(3, 9), proto=0x6558) / ieth()
            / IP(src="10.3.0.1", dst="10.3.0.2") / IP(src="10.4.0.1", dst="10.4.0.2")
            / UDP(sport=2, dport=4789) / VXLAN(vni=5) / ieth()
            / IP(src="10.5.0.1", dst="10.5.0.2") / TCP(sport=3, dport=4) / PAY)


@dataclass
class Case:
    name: str
    pkt: Packet
    linktype: int = 1
    decode_as: tuple[str, ...] = ()
    gre_teb_as_nvgre: bool = True
    prefix: bytes = b""  # raw link header scapy does not build (BSD null/loopback)
    _expect: Expect | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def frame(self) -> bytes:
        return self.prefix + bytes(self.pkt)

    def config(self) -> DecodeConfig:
        cfg = DecodeConfig(gre_teb_as_nvgre=self.gre_teb_as_nvgre)
        for spec in self.decode_as:
            cfg.decode_as(spec)
        return cfg

    def expect(self) -> Expect:
        """The model's expectation (computed once: scapy rebuilds a layer per ``len``)."""
        if self._expect is None:
            self._expect = self._model()
        return self._expect

    def _model(self) -> Expect:
        x = expect(self.pkt, decode_as=self.decode_as, gre_teb_as_nvgre=self.gre_teb_as_nvgre)
        if self.prefix:  # shift every segment by the link header's length
            n = len(self.prefix)
            x.segs.insert(0, Seg("level", 0, 0, 0, {}, "truncated_link"))
            for s in x.segs:
                s.start += n
                s.need += n
            x.segs[0].need = n
        return x


def _cases() -> list[Case]:
    c: list[Case] = []
    add = c.append
    # Ethernet, VLANs, link types
    add(Case("eth-ipv4-tcp", eth() / ip4() / TCP(sport=1234, dport=80, flags="S") / PAY))
    add(Case("eth-ipv4-udp", eth() / ip4() / UDP(sport=5353, dport=53) / PAY))
    add(Case("eth-ipv4-icmp", eth() / ip4() / ICMP(type=8, code=0, id=7, seq=1) / PAY))
    add(Case("eth-ipv6-icmpv6", eth() / ip6() / ICMPv6EchoRequest(id=3, seq=4) / PAY))
    add(Case("eth-arp", eth(dst="ff:ff:ff:ff:ff:ff")
             / ARP(op=1, hwsrc=MAC_A, psrc="192.0.2.9", pdst="192.0.2.10")))
    add(Case("dot1q", eth() / Dot1Q(vlan=100, prio=5) / ip4() / UDP(sport=1, dport=2) / PAY))
    add(Case("qinq-88a8", eth() / Dot1AD(vlan=200) / Dot1Q(vlan=2001) / ip4()
             / TCP(sport=5, dport=6) / PAY))
    add(Case("qinq-9100", eth(type=0x9100) / Dot1Q(vlan=300) / Dot1Q(vlan=301) / ip6()
             / UDP(sport=7, dport=8) / PAY))
    add(Case("mpls-eth", eth() / MPLS(label=100, s=0, ttl=9) / MPLS(label=200, s=1, ttl=9)
             / ip4() / UDP(sport=9, dport=10) / PAY))
    add(Case("ipv4-options", eth() / ip4(options=[IPOption_Router_Alert(), IPOption_NOP(),
                                                    IPOption_NOP(), IPOption_NOP(),
                                                    IPOption_NOP()])
             / TCP(sport=11, dport=12, flags="A") / PAY))
    add(Case("ipv4-frag-first", eth() / ip4(flags="MF", frag=0, id=77)
             / UDP(sport=13, dport=14, len=1000) / PAY))
    add(Case("ipv4-frag-nonfirst", eth() / ip4(frag=100, proto=17, id=77) / PAY))
    add(Case("ipv4-df", eth() / ip4(flags="DF") / TCP(sport=15, dport=16, flags="F") / PAY))
    add(Case("ipv6-ext-chain", eth() / ip6() / IPv6ExtHdrHopByHop()
             / IPv6ExtHdrRouting(addresses=["2001:db8::99"]) / IPv6ExtHdrDestOpt()
             / TCP(sport=17, dport=18, flags="R") / PAY))
    add(Case("ipv6-frag-first", eth() / ip6() / IPv6ExtHdrFragment(m=1, offset=0, id=5)
             / UDP(sport=19, dport=20) / PAY))
    add(Case("ipv6-frag-nonfirst", eth() / ip6() / IPv6ExtHdrFragment(m=0, offset=10, id=5,
                                                                       nh=17) / PAY))
    add(Case("ipv6-ah", eth() / ip6() / AH(spi=0x100, seq=1, icv=b"\x00" * 12, nh=6, payloadlen=4)
             / TCP(sport=21, dport=22, flags="S") / PAY))
    add(Case("tcp-all-flags", eth() / ip4() / TCP(sport=23, dport=24, flags="FSRPAUECN")
             / PAY))
    add(Case("tcp-options", eth() / ip4() / TCP(sport=25, dport=26, flags="S",
                                                options=[("MSS", 1460), ("SAckOK", b""),
                                                         ("Timestamp", (1, 0)),
                                                         ("WScale", 7)])))
    add(Case("raw-ipv4", ip4() / UDP(sport=27, dport=28) / PAY, linktype=101))
    add(Case("raw-ipv6", ip6() / TCP(sport=29, dport=30, flags="S") / PAY, linktype=101))
    add(Case("linktype-ipv4", ip4() / UDP(sport=31, dport=32) / PAY, linktype=228))
    add(Case("linktype-ipv6", ip6() / UDP(sport=33, dport=34) / PAY, linktype=229))
    add(Case("sll", CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6,
                                src=bytes.fromhex("020000000099") + b"\x00\x00", proto=0x0800)
             / ip4() / TCP(sport=35, dport=36, flags="S") / PAY, linktype=113))
    add(Case("sll-vlan", CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6,
                                     src=bytes.fromhex("020000000098") + b"\x00\x00",
                                     proto=0x8100)
             / Dot1Q(vlan=42) / ip4() / UDP(sport=37, dport=38) / PAY, linktype=113))
    add(Case("sll2", CookedLinuxV2(proto=0x86DD, ifindex=3, lladdrtype=1, pkttype=0,
                                   lladdrlen=6,
                                   src=bytes.fromhex("020000000097") + b"\x00\x00")
             / ip6() / UDP(sport=39, dport=40) / PAY, linktype=276))
    add(Case("null-ipv4", ip4() / UDP(sport=41, dport=42) / PAY, linktype=0,
             prefix=struct.pack("<I", 2)))
    add(Case("loop-ipv6", ip6() / UDP(sport=43, dport=44) / PAY, linktype=108,
             prefix=struct.pack(">I", 30)))
    # UDP tunnels
    add(Case("vxlan-4789", eth() / ip4() / udp_sport() / VXLAN(vni=4242) / inner_tcp()))
    add(Case("vxlan-8472-arp", eth() / ip4() / udp_sport(dport=8472) / VXLAN(vni=1)
             / ieth(dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=MAC_C, psrc="10.244.0.5",
                                                   pdst="10.244.0.6")))
    add(Case("vxlan-gbp", eth() / ip4() / udp_sport() / VXLAN(flags=0x88, gpid=0x1234,
                                                              vni=77) / inner_tcp()))
    add(Case("vxlan-inner-vlan", eth() / ip4() / udp_sport() / VXLAN(vni=5)
             / ieth() / Dot1Q(vlan=33) / IP(src="10.0.9.1", dst="10.0.9.2")
             / UDP(sport=45, dport=46) / PAY))
    add(Case("vxlan-gpe-nsh", eth() / ip4() / udp_sport(dport=4790)
             / VXLAN(flags=0x0C, NextProtocol=4, vni=600)
             / NSH(mdtype=1, nextproto=1, spi=0x1234, si=254, length=6,
                   context_header=b"\x00" * 16)
             / IP(src="10.6.0.1", dst="10.6.0.2") / ICMP() / PAY))
    add(Case("vxlan-gpe-nsh-md2-eth", eth() / ip4() / udp_sport(dport=4790)
             / VXLAN(flags=0x0C, NextProtocol=4, vni=601)
             / NSH(mdtype=2, nextproto=3, spi=77, si=255, length=2) / inner_tcp()))
    add(Case("vxlan-gpe-ipv6", eth() / ip4() / udp_sport(dport=4790)
             / VXLAN(flags=0x0C, NextProtocol=2, vni=602)
             / IPv6(src="fd00::a", dst="fd00::b") / UDP(sport=47, dport=48) / PAY))
    add(Case("vxlan-gpe-eth-no-p", eth() / ip4() / udp_sport(dport=4790)
             / VXLAN(flags=0x08, vni=603) / inner_tcp()))
    add(Case("geneve-ovn", eth() / ip4() / udp_sport(dport=6081)
             / GENEVE(vni=0x0A, proto=0x6558, options=OVN_OPT + EXP_OPT) / inner_tcp()))
    add(Case("geneve-ip", eth() / ip4() / udp_sport(dport=6081)
             / GENEVE(vni=0xB, proto=0x0800) / IP(src="30.0.0.1", dst="30.0.0.2")
             / ICMP() / PAY))
    add(Case("mpls-udp", eth() / ip4() / udp_sport(dport=6635) / MPLS(label=21, s=0)
             / MPLS(label=22, s=1) / IP(src="10.3.0.10", dst="10.1.0.10") / ICMP() / PAY))
    add(Case("decode-as-vxlan", eth() / ip4() / udp_sport(dport=9999) / VXLAN(vni=9)
             / inner_tcp(), decode_as=("udp:9999=vxlan",)))
    add(Case("decode-as-geneve", eth() / ip4() / udp_sport(dport=7000)
             / GENEVE(vni=70, proto=0x6558) / inner_tcp(), decode_as=("udp:7000=geneve",)))
    add(Case("decode-as-none", eth() / ip4() / udp_sport(dport=4789) / PAY,
             decode_as=("udp:4789=none",)))
    add(Case("vxlan-port-not-vxlan", eth() / ip4() / udp_sport(dport=4789)
             / (b"\x00\x01\x02\x03" + PAY)))
    add(Case("vxlan-port-short", eth() / ip4() / udp_sport(dport=4789) / b"\x08\x00\x00"))
    add(Case("vxlan-port-empty", eth() / ip4() / udp_sport(dport=4789)))
    add(Case("geneve-port-bad-version", eth() / ip4() / udp_sport(dport=6081)
             / (b"\x40\x00\x65\x58" + PAY)))
    add(Case("gpe-port-bad-version", eth() / ip4() / udp_sport(dport=4790)
             / (b"\x28\x00\x00\x03" + PAY)))
    add(Case("mpls-udp-port-short", eth() / ip4() / udp_sport(dport=6635) / b"\x00\x01"))
    # GRE family
    add(Case("gre-ip", eth() / ip4(proto=47) / GRE(proto=0x0800)
             / IP(src="10.9.0.1", dst="10.9.0.2") / UDP(sport=49, dport=50) / PAY))
    add(Case("gre-csum-key-seq", eth() / ip4() / GRE(chksum_present=1, key_present=1,
                                                   seqnum_present=1, key=0xDEADBEEF,
                                                   sequence_number=5, proto=0x86DD)
             / IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=51, dport=52) / PAY))
    add(Case("gre-routing", eth() / ip4() / GRE(routing_present=1, proto=0x0800)
             / GRErouting(address_family=0x0800, SRE_offset=0, routing_info=b"\x0a\x00\x00\x01")
             / GRErouting() / IP(src="10.9.1.1", dst="10.9.1.2") / UDP(sport=53, dport=54)
             / PAY))
    add(Case("nvgre", eth() / ip4() / GRE(key_present=1, key=gre_key(0x123456, 0x78),
                                         proto=0x6558) / inner_tcp()))
    add(Case("gre-teb-as-gre", eth() / ip4() / GRE(key_present=1, key=gre_key(0x123456, 0x78),
                                                  proto=0x6558) / inner_tcp(),
             gre_teb_as_nvgre=False))
    add(Case("gre-teb-key-seq", eth() / ip4() / GRE(key_present=1, seqnum_present=1, key=99,
                                                   proto=0x6558) / inner_tcp()))
    add(Case("gre-mpls", eth() / ip4() / GRE(proto=0x8847) / MPLS(label=0x1FF, s=1)
             / IP(src="10.9.2.1", dst="10.9.2.2") / UDP(sport=55, dport=56) / PAY))
    add(Case("gre-keepalive", eth() / ip4() / GRE(key_present=1, key=0x28, proto=0)
             / (b"\x00" * 4)))
    add(Case("gre-v1-pptp", eth() / ip4() / GRE_PPTP(seqnum_present=1, acknum_present=1,
                                                    call_id=0x4D2, payload_len=len(PAY) + 2)
             / PPP(proto=0x0021) / PAY))
    add(Case("erspan-1", eth() / ip4() / GRE(proto=0x88BE) / inner_tcp()))
    add(Case("erspan-2", eth() / ip4() / GRE(seqnum_present=1, proto=0x88BE, sequence_number=3)
             / ERSPAN_II(ver=1, session_id=0x3FF, vlan=10) / inner_tcp()))
    add(Case("erspan-3", eth() / ip4() / GRE(seqnum_present=1, proto=0x22EB)
             / ERSPAN_III(ver=2, session_id=9, ft=0, o=1) / ERSPAN_PlatformSpecific()
             / inner_tcp()))
    add(Case("erspan-3-no-platform", eth() / ip4() / GRE(seqnum_present=1, proto=0x22EB)
             / ERSPAN_III(ver=2, session_id=10, ft=0, o=0) / inner_tcp()))
    # STT, IP in IP
    add(Case("stt-first", eth() / ip4() / stt_tcp() / STT(context=0x1122334455667788)
             / inner_tcp()))
    add(Case("stt-high-context", eth() / ip4() / stt_tcp() / STT(context=0xFEDCBA9876543210)
             / inner_tcp()))
    add(Case("stt-nonfirst", eth() / ip4() / stt_tcp(seq_off=1448) / PAY))
    add(Case("ipip", eth() / ip4() / IP(src="10.7.0.1", dst="10.7.0.2")
             / UDP(sport=57, dport=58) / PAY))
    add(Case("ip6-in-ip4", eth() / ip4() / IPv6(src="fd00::7", dst="fd00::8")
             / TCP(sport=59, dport=60) / PAY))
    add(Case("ip4-in-ip6", eth() / ip6() / IP(src="10.7.1.1", dst="10.7.1.2")
             / UDP(sport=61, dport=62) / PAY))
    add(Case("ip6-in-ip6", eth() / ip6() / IPv6(src="fd00::9", dst="fd00::a")
             / UDP(sport=63, dport=64) / PAY))
    # underlays and nesting
    add(Case("ipv6-vxlan-ipv4", eth() / ip6() / udp_sport() / VXLAN(vni=100) / inner_tcp()))
    add(Case("ipv6-vxlan-ipv6", eth() / ip6() / udp_sport() / VXLAN(vni=101) / inner_udp6()))
    add(Case("ipv6-geneve-icmpv6", eth() / ip6() / udp_sport(dport=6081)
             / GENEVE(vni=102, proto=0x6558, options=OVN_OPT) / ieth()
             / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest() / PAY))
    add(Case("vlan-vxlan", eth() / Dot1Q(vlan=10) / ip4() / udp_sport() / VXLAN(vni=103)
             / inner_tcp()))
    add(Case("vxlan-in-gre", eth() / ip4() / GRE(proto=0x0800)
             / IP(src="10.8.0.1", dst="10.8.0.2") / udp_sport() / VXLAN(vni=104)
             / inner_tcp()))
    add(Case("geneve-in-vxlan", eth() / ip4() / udp_sport() / VXLAN(vni=105) / ieth()
             / IP(src="10.8.1.1", dst="10.8.1.2") / udp_sport(dport=6081)
             / GENEVE(vni=106, proto=0x6558, options=OVN_OPT) / inner_tcp()))
    add(Case("four-levels", eth() / ip4() / udp_sport() / VXLAN(vni=1) / ieth()
             / IP(src="10.1.0.1", dst="10.1.0.2") / UDP(sport=1, dport=6081)
             / GENEVE(vni=2, proto=0x6558) / ieth() / IP(src="10.2.0.1", dst="10.2.0.2")
             / GRE(key_present=1, key=gre_key(3, 9), proto=0x6558) / ieth()
             / IP(src="10.3.0.1", dst="10.3.0.2") / IP(src="10.4.0.1", dst="10.4.0.2")
             / TCP(sport=3, dport=4) / PAY))
    add(Case("five-levels", _five_levels()))
    # the middle level has a VLAN tag, IPv6 and UDP ports; the innermost none of them: the
    # inner header block is cleared between levels (nothing of the middle one is left)
    add(Case("vlan-ipv6-middle-icmp-inner", eth() / ip4() / udp_sport() / VXLAN(vni=108)
             / ieth() / Dot1Q(vlan=77) / ip6(src="2001:db8:8::1", dst="2001:db8:8::2")
             / udp_sport(sport=52000) / VXLAN(vni=109) / ieth()
             / IP(src="10.8.3.1", dst="10.8.3.2", ttl=9) / ICMP(type=8, id=3) / PAY))
    add(Case("networking-sfc-mpls", eth() / ip4() / udp_sport() / VXLAN(vni=107) / ieth()
             / MPLS(label=(5 << 8) | 254, s=1) / IP(src="10.8.2.1", dst="10.8.2.2")
             / TCP(sport=65, dport=66) / PAY))
    add(Case("nsh-on-ethernet", eth(type=0x894F) / NSH(mdtype=2, nextproto=1, spi=9, si=200,
                                                      length=2)
             / IP(src="10.8.3.1", dst="10.8.3.2") / UDP(sport=67, dport=68) / PAY))
    return c


CASES: list[Case] = _cases()
CASE_BY_NAME = {c.name: c for c in CASES}


# --- decoding and comparing ------------------------------------------------------------------

def decode_records(frames: Sequence[bytes], *, linktype: int = 1,
                   config: DecodeConfig | None = None,
                   wirelen: Sequence[int] | None = None
                   ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    dec = PacketDecoder(config)
    batch = dec.decode(frames_from_bytes(list(frames), linktype=linktype, wirelen=wirelen))
    return list(record_dicts(batch, all_fields=True)), dec.events


def level_of(rec: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f: rec[prefix + f] for f in HEADER_FIELDS}


def full_level(x: Expect, k: int) -> dict[str, Any]:
    return {f: x.levels[k].get(f) for f in HEADER_FIELDS}


def assert_record(rec: dict[str, Any], x: Expect, name: str) -> None:
    assert level_of(rec, "") == full_level(x, 0), f"{name}: wire headers"
    inner = full_level(x, x.depth) if x.depth else dict.fromkeys(HEADER_FIELDS)
    assert level_of(rec, "inner_") == inner, f"{name}: inner headers"
    assert rec["tunnels"] == x.tunnels, f"{name}: tunnel layers"
    assert rec["depth"] == x.depth
    assert rec["encap"] == (x.tunnels[0]["type"] if x.tunnels else None)
    assert rec["vni"] == (x.tunnels[0]["vni"] if x.tunnels else None)
    assert rec["error"] == x.error, f"{name}: error"
    assert rec["truncated"] is False
    opts = rec["geneve_options"]
    assert (bytes.fromhex(opts) if opts is not None else None) == x.geneve_options


# --- the tests of this module ----------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_round_trip(case: Case) -> None:
    """Every layer and tunnel decodes to exactly what scapy built."""
    x = case.expect()
    recs, events = decode_records([case.frame], linktype=case.linktype, config=case.config())
    assert len(recs) == 1
    assert_record(recs[0], x, case.name)
    assert set(events) == x.events, case.name
    assert recs[0]["frame_len"] == len(case.frame)
    assert recs[0]["caplen"] == len(case.frame)
    assert recs[0]["kind"] == "packet"
    assert recs[0]["linktype"] == case.linktype


def test_all_cases_in_one_batch() -> None:
    """The same frames decoded together give the same records as one by one (no state leaks
    from one frame to the next), for each link type."""
    by_lt: dict[tuple[int, tuple[str, ...], bool], list[Case]] = {}
    for c in CASES:
        by_lt.setdefault((c.linktype, c.decode_as, c.gre_teb_as_nvgre), []).append(c)
    for group in by_lt.values():
        frames = [c.frame for c in group] * 3
        recs, _ = decode_records(frames, linktype=group[0].linktype, config=group[0].config())
        for k, rec in enumerate(recs):
            c = group[k % len(group)]
            assert_record(rec, c.expect(), c.name)


def test_model_covers_every_tunnel_type() -> None:
    types = {t["type"] for c in CASES for t in c.expect().tunnels}
    assert types == {"vxlan", "vxlan-gpe", "geneve", "gre", "nvgre", "stt", "ipip",
                     "mpls-udp", "erspan"}


def test_depth_cap_is_configurable() -> None:
    case = CASE_BY_NAME["four-levels"]
    for depth in range(0, 5):
        x = expect(case.pkt, max_depth=depth)
        recs, _ = decode_records([case.frame], config=DecodeConfig(max_depth=depth))
        assert recs[0]["depth"] == depth == x.depth
        assert recs[0]["tunnels"] == x.tunnels
        assert recs[0]["error"] == ("tunnel_depth_exceeded" if depth < 4 else None)
        assert level_of(recs[0], "") == full_level(x, 0)


def test_decode_as_rejects_nonsense() -> None:
    from fabricscope.errors import UsageError

    for spec in ("udp:0=vxlan", "udp:65536=vxlan", "udp:x=vxlan", "udp:4789=nope",
                 "sctp:1=vxlan", "udp:7471=stt", "tcp:1=vxlan", "vxlan"):
        with pytest.raises(UsageError):
            DecodeConfig().decode_as(spec)


def test_fast_decode_equals_the_matrix_path() -> None:
    """PacketDecoder.decode (chunked walk + pack, no full matrix) gives exactly the batch
    and the events of decode_matrix + packet_batch, across chunk boundaries (2 500 frames:
    every case, cut and whole, in one batch)."""
    import pyarrow as pa

    from fabricscope.records.arrow import packet_batch

    frames: list[bytes] = []
    for c in CASES:
        if c.linktype == 1 and not c.decode_as and c.gre_teb_as_nvgre:
            frames += [c.frame[:n] for n in range(0, len(c.frame) + 1, 3)]
    assert len(frames) > 2 * 1024 + 8
    # reversed too: each case's cuts then go from the deepest to no tunnel at all, so a
    # reused chunk matrix meets records shallower than the ones before them (its tunnel
    # rows are not reset between chunks: slots.reset_rows)
    for order in (frames[::-1], frames):
        fb = frames_from_bytes(order)
        fast, slow = PacketDecoder(), PacketDecoder()
        a = fast.decode(fb)
        b = packet_batch(slow.decode_matrix(fb), len(fb), fb.buf)
        assert a.schema.equals(b.schema)
        for name in a.schema.names:
            assert a.column(name).equals(b.column(name)), name
        assert fast.events == slow.events and fast.frames == slow.frames == len(frames)
    # the matrix a second look takes (count=False) counts nothing twice
    slow.decode_matrix(fb, count=False)
    assert slow.events == fast.events and slow.frames == len(frames)
    assert isinstance(a, pa.RecordBatch) and a.num_rows == len(frames)

"""Checks a lab run's sFlow capture against its ground truth, with tshark as the decoder.

Independent of fabricscope's own decoders on purpose: this is what the lab's end-to-end
test (with root) and the recorded-capture test (without root) use to prove that the
switches really sampled what ``lab traffic`` sent, along the paths OVS's counters say.

tshark runs twice: once over the capture (sFlow only, sampled headers kept as bytes), then
over a small pcap holding one sampled header per frame, so every sample's outer and inner
headers are decoded together (tshark's JSON would otherwise hoist the tunnel layers of all
samples of a datagram to the top level).
"""

from __future__ import annotations

import json
import struct
import subprocess
import tempfile
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROTO = {"icmp": 1, "tcp": 6, "udp": 17}


@dataclass(frozen=True)
class Sample:
    """One sFlow flow sample, its sampled header decoded by tshark."""

    time: float
    agent: str
    rate: int
    in_if: int
    out_if: int
    header: bytes
    outer_src: str | None = None
    outer_dst: str | None = None
    outer_proto: int | None = None
    outer_sport: int | None = None
    outer_dport: int | None = None
    ttl: int | None = None
    encap: str | None = None
    vni: int | None = None
    inner_src: str | None = None
    inner_dst: str | None = None
    inner_proto: int | None = None
    inner_sport: int | None = None
    inner_dport: int | None = None


@dataclass
class Capture:
    samples: list[Sample]
    counters: dict[str, set[int]]  # agent -> ifIndexes with counter samples
    datagrams: int


def _items(node: Any, prefix: str) -> Iterable[Any]:
    """Children of a tshark JSON node whose key starts with ``prefix`` (lists flattened)."""
    if not isinstance(node, dict):
        return
    for k, v in node.items():
        if k.startswith(prefix):
            if isinstance(v, list):
                yield from v
            else:
                yield v


def _first(node: Any, key: str) -> Any:
    v = node.get(key) if isinstance(node, dict) else None
    return v[0] if isinstance(v, list) else v


def counter_sources(pcap: Path, port: int = 6343) -> dict[str, set[int]]:
    """agent -> source ifIndexes of its counter samples, from the sFlow framing alone.

    tshark 4.0 mis-dissects Open vSwitch's counter records (0:1004, 0:1005, 0:2203,
    0:2207) and then loses later samples of the same datagram, so counter samples are
    counted here, with a bounded walk over the (classic pcap, Ethernet/IPv4/UDP) frames and
    the datagrams' sample list; the records themselves are not interpreted.
    """
    data = pcap.read_bytes()
    out: dict[str, set[int]] = defaultdict(set)
    if len(data) < 24 or data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return dict(out)  # not a classic little-endian pcap
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + max(incl, 0)
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = 14 + ihl
        if len(frame) < udp + 8 or struct.unpack_from("!H", frame, udp + 2)[0] != port:
            continue
        dg = frame[udp + 8:]
        if len(dg) < 28 or struct.unpack_from("!II", dg, 0) != (5, 1):
            continue
        agent = ".".join(map(str, dg[8:12]))
        n = struct.unpack_from("!I", dg, 24)[0]
        q = 28
        for _ in range(min(n, 1000)):
            if q + 8 > len(dg):
                break
            fmt, ln = struct.unpack_from("!II", dg, q)
            if fmt in (2, 4) and q + 8 + 8 <= len(dg):  # counters / expanded counters
                if fmt == 2:
                    src = struct.unpack_from("!I", dg, q + 12)[0] & 0xFFFFFF
                else:
                    src = struct.unpack_from("!I", dg, q + 16)[0]
                out[agent].add(src)
            q += 8 + ln
    return dict(out)


def read_sflow(pcap: Path, port: int = 6343, tshark: str = "tshark") -> tuple[
        list[tuple[float, str, int, int, int, bytes]], int]:
    """(time, agent, rate, in_if, out_if, header) per flow sample (tshark), and the number
    of sFlow datagrams."""
    proc = subprocess.run(
        [tshark, "-r", str(pcap), "-n", "-d", f"udp.port=={port},sflow",
         "-o", "sflow.enable_dissection:FALSE", "-Y", "sflow", "-T", "json",
         "--no-duplicate-keys", "-J", "frame sflow"],
        capture_output=True, text=True, check=True)
    frames = json.loads(proc.stdout or "[]")
    out = []
    for fr in frames:
        layers = fr["_source"]["layers"]
        t = float(_first(layers.get("frame", {}), "frame.time_epoch") or 0)
        sf = layers.get("sflow", {})
        if isinstance(sf, list):
            sf = sf[0]
        agent = str(_first(sf, "sflow_245.agent"))
        for s in _items(sf, "Flow sample"):
            rate = int(_first(s, "sflow.flow_sample.sampling_rate") or 0)
            in_if = int(_first(s, "sflow.flow_sample.input_interface") or 0)
            tree = _first(s, "sflow.flow_sample.output_interface_tree") or {}
            out_if = int(_first(tree, "sflow.flow_sample.output_interface_value") or 0)
            if int(_first(tree, "sflow.flow_sample.output_interface_format") or 0):
                out_if = -1  # "multiple" or "discarded": not a single interface
            for rec in _items(s, "Raw packet header"):
                hexs = str(_first(rec, "sflow_245.header") or "")
                out.append((t, agent, rate, in_if, out_if,
                            bytes.fromhex(hexs.replace(":", ""))))
    return out, len(frames)


def _pcap(frames: Sequence[bytes]) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    body = b"".join(struct.pack("<IIII", i, 0, len(f), len(f)) + f
                    for i, f in enumerate(frames))
    return head + body


_FIELDS = ("frame.number", "ip.src", "ip.dst", "ip.ttl", "ip.proto", "udp.srcport",
           "udp.dstport", "tcp.srcport", "tcp.dstport", "vxlan.vni", "geneve.vni")


def decode_headers(headers: Sequence[bytes], tshark: str = "tshark") -> list[dict[str, list[str]]]:
    """tshark's fields for each sampled header (one dict of field -> all occurrences)."""
    if not headers:
        return []
    with tempfile.NamedTemporaryFile(suffix=".pcap") as f:
        f.write(_pcap(headers))
        f.flush()
        cmd = [tshark, "-r", f.name, "-n", "-T", "fields", "-E", "separator=\t",
               "-E", "occurrence=a", "-E", "aggregator=,"]
        for fld in _FIELDS:
            cmd += ["-e", fld]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows: list[dict[str, list[str]]] = [{} for _ in headers]
    for line in proc.stdout.splitlines():
        vals = line.split("\t")
        row = {k: [x for x in v.split(",") if x] for k, v in zip(_FIELDS, vals, strict=False)}
        n = int(row["frame.number"][0]) - 1
        if 0 <= n < len(rows):
            rows[n] = row
    return rows


def _int(vals: list[str], i: int) -> int | None:
    try:
        v = vals[i]
    except IndexError:
        return None
    return int(v, 0)


def load_capture(pcap: Path, port: int = 6343, tshark: str = "tshark") -> Capture:
    raw, datagrams = read_sflow(pcap, port, tshark)
    counters = counter_sources(pcap, port)
    rows = decode_headers([r[5] for r in raw], tshark)
    samples = []
    for (t, agent, rate, i, o, hdr), row in zip(raw, rows, strict=True):
        ips_s, ips_d = row.get("ip.src", []), row.get("ip.dst", [])
        protos, ttls = row.get("ip.proto", []), row.get("ip.ttl", [])
        vni_x, vni_g = row.get("vxlan.vni", []), row.get("geneve.vni", [])
        encap = "vxlan" if vni_x else "geneve" if vni_g else None
        tunneled = encap is not None and len(ips_s) >= 2
        usp, udp_ = row.get("udp.srcport", []), row.get("udp.dstport", [])
        tsp, tdp = row.get("tcp.srcport", []), row.get("tcp.dstport", [])
        inner_proto = _int(protos, -1) if tunneled else None
        if inner_proto == 17:
            isp, idp = _int(usp, -1), _int(udp_, -1)
        elif inner_proto == 6:
            isp, idp = _int(tsp, -1), _int(tdp, -1)
        else:
            isp = idp = None
        samples.append(Sample(
            time=t, agent=agent, rate=rate, in_if=i, out_if=o, header=hdr,
            outer_src=ips_s[0] if ips_s else None, outer_dst=ips_d[0] if ips_d else None,
            outer_proto=_int(protos, 0), outer_sport=_int(usp, 0) if usp else None,
            outer_dport=_int(udp_, 0) if udp_ else None, ttl=_int(ttls, 0), encap=encap,
            vni=_int(vni_x or vni_g, 0),
            inner_src=ips_s[-1] if tunneled else None,
            inner_dst=ips_d[-1] if tunneled else None,
            inner_proto=inner_proto, inner_sport=isp, inner_dport=idp))
    return Capture(samples, counters, datagrams)


# -- checks ---------------------------------------------------------------------------------

@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.problems.append(message)


def _ts(rfc: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(rfc.replace("Z", "+00:00")).timestamp()


def flow_samples(cap: Capture, flow: Mapping[str, Any], after: float = 2.0) -> list[Sample]:
    """Samples of a ground-truth flow: tunnelled, its VNI, inner addresses/ports, in time.

    ``after``: how long after the flow its samples may still arrive (an OVS agent sends a
    datagram when it is full or once a second)."""
    t0, t1 = _ts(flow["start"]) - 0.2, _ts(flow["end"]) + after
    proto = PROTO.get(str(flow["proto"]))
    vnis = {int(s["vni"]) for s in flow["segments"]}
    out = []
    for s in cap.samples:
        if not (t0 <= s.time <= t1) or s.vni not in vnis or s.inner_proto != proto:
            continue
        if s.inner_src != flow["src"] or s.inner_dst != flow["dst"]:
            continue
        if flow.get("sport") is not None and s.inner_sport != flow["sport"]:
            continue
        if flow.get("dport") is not None and s.inner_dport != flow["dport"]:
            continue
        out.append(s)
    return out


def check_run(cap: Capture, gt: Mapping[str, Any]) -> Report:
    """Everything the lab's proof rests on; each failed check is one line in ``problems``."""
    rep = Report()
    agents = {s["agent"]: s["name"] for s in gt["switches"]}
    names = {a: n for a, n in agents.items()}
    ifindex_owner = {p["ifindex"]: (s["name"], p["name"]) for s in gt["switches"]
                     for p in s["ports"] if p.get("ifindex") is not None}
    by_agent = Counter(names.get(s.agent, s.agent) for s in cap.samples)
    rep.facts["datagrams"] = cap.datagrams
    rep.facts["samples_by_switch"] = dict(sorted(by_agent.items()))
    rep.check(set(by_agent) >= set(agents.values()),
              f"flow samples missing from switches: {sorted(set(agents.values()) - set(by_agent))}")
    rate = gt["lab"]["sampling"]
    rep.check(all(s.rate == rate for s in cap.samples),
              f"sampling rates {sorted({s.rate for s in cap.samples})} != configured {rate}")
    # every switch port is polled for counters
    for sw in gt["switches"]:
        have = cap.counters.get(sw["agent"], set())
        want = {p["ifindex"] for p in sw["ports"] if p.get("ifindex") is not None}
        rep.check(want <= have, f"{sw['name']}: no counter samples for ifIndex "
                                f"{sorted(want - have)}")
    # samples' interfaces are the switches' own ports
    for s in cap.samples:
        sw = names.get(s.agent)
        for idx in (s.in_if, s.out_if):
            if idx > 0 and idx in ifindex_owner and ifindex_owner[idx][0] != sw:
                rep.problems.append(f"sample from {sw} names ifIndex {idx}, a port of "
                                    f"{ifindex_owner[idx][0]}")
                break

    flows = {f["id"]: f for f in gt["flows"]}
    # 1. VXLAN samples with the VNI and the VMs' inner addresses, from several switches;
    #    the two tenants use the same inner addresses on different VNIs
    for fid in ("ecmp-a-01", "ecmp-b-01", "iperf-a1-a2", "iperf-b1-b2"):
        f = flows.get(fid)
        if f is None:
            continue
        seen = flow_samples(cap, f)
        sws = sorted({names.get(s.agent, s.agent) for s in seen})
        rep.facts.setdefault("flow_switches", {})[fid] = sws
        rep.check(len(sws) >= 2, f"{fid}: tunnelled samples (VNI {f['vni']}, {f['src']} -> "
                                 f"{f['dst']}) from {len(sws)} switch(es) {sws}, want >= 2")
        rep.check(all(s.encap == f["encap"] for s in seen),
                  f"{fid}: encapsulation is not {f['encap']}")
    # 2. ECMP: every probe flow's samples at the spines come from the spine OVS's group
    #    counters say it took; both spines carry some; outer source ports differ per flow
    probes = [f for f in gt["flows"] if f["kind"] == "udp-probe"
              and not f["id"].startswith("migrated")]
    spines = {s["name"] for s in gt["switches"] if s["role"] == "spine"}
    used: set[str] = set()
    sport_by_flow: dict[str, set[int]] = {}
    agreed = 0
    for f in probes:
        seg = f["segments"][0]
        want = seg.get("spine")
        seen = flow_samples(cap, f)
        at_spines = {names.get(s.agent, s.agent) for s in seen} & spines
        sport_by_flow[f["id"]] = {s.outer_sport for s in seen if s.outer_sport}
        if want:
            used.add(want)
        if not at_spines:
            continue  # sampling missed it at the spine: nothing to compare
        rep.check(at_spines == {want}, f"{f['id']}: sampled at {sorted(at_spines)}, but OVS's "
                                       f"group counters say {want}")
        agreed += at_spines == {want}
        # the hops' interfaces: leaf ingress from the hypervisor, egress to that spine
        for s in seen:
            hop = next((h for h in seg["hops"] if h.get("agent") == s.agent), None)
            if hop and hop.get("in_ifindex") is not None:
                rep.check(s.in_if == hop["in_ifindex"] and s.out_if == hop["out_ifindex"],
                          f"{f['id']} at {hop['device']}: ifIndex {s.in_if}->{s.out_if}, "
                          f"expected {hop['in_if']}->{hop['out_if']}")
    rep.facts["ecmp_spines"] = sorted(used)
    rep.facts["ecmp_flows_confirmed_by_samples"] = agreed
    rep.check(len(used) >= min(2, len(spines)), f"ECMP used only {sorted(used)}")
    rep.check(agreed >= len(probes) // 2,
              f"only {agreed} of {len(probes)} probe flows sampled at a spine")
    multi = [fid for fid, sp in sport_by_flow.items() if len(sp) > 1]
    rep.check(not multi, f"probe flows with several outer source ports: {multi}")
    distinct = {next(iter(sp)) for sp in sport_by_flow.values() if sp}
    rep.check(len(distinct) >= min(3, len(probes)),
              f"outer source ports do not vary per flow: {sorted(distinct)}")
    # 3. TTL: the outer TTL drops by one per routed hop (leaf 64, spine 63, leaf 62)
    ttl: dict[str, set[int]] = defaultdict(set)
    for f in probes:
        for s in flow_samples(cap, f):
            ttl[names.get(s.agent, s.agent)].add(s.ttl or 0)
    rep.facts["probe_ttl_by_switch"] = {k: sorted(v) for k, v in sorted(ttl.items())}
    for sw, vals in ttl.items():
        want_ttl = {"spine": 63}.get(next(x["role"] for x in gt["switches"]
                                           if x["name"] == sw))
        if want_ttl:
            rep.check(vals == {want_ttl}, f"outer TTL at {sw} is {sorted(vals)}, want 63")
    # 4. the chain: after insertion, the https flow's samples show its tunnel to the
    #    firewall's hypervisor; before, none of them do
    fw_host = next((e["host"] for e in gt["endpoints"] if e["kind"] == "vnf"), None)
    fw_ip = next((h["ip"] for h in gt["hypervisors"] if h["name"] == fw_host), None)
    for fid, via_fw in (("https-a1-a3-direct", False), ("https-a1-a3-chained", True)):
        f = flows.get(fid)
        if f is None:
            continue
        seen = flow_samples(cap, f)
        to_fw = [s for s in seen if s.outer_dst == fw_ip or s.outer_src == fw_ip]
        rep.facts.setdefault("chain", {})[fid] = {"samples": len(seen), "fw_tunnel": len(to_fw)}
        if via_fw:
            rep.check(bool(to_fw), f"{fid}: no sample on a tunnel to/from the firewall's "
                                   f"hypervisor {fw_host} ({fw_ip})")
        else:
            rep.check(not to_fw, f"{fid}: samples on the firewall's tunnel before insertion")
    # 5. the impaired link: samples at its leaf leaving through its port, both tenants
    imp = gt.get("results", {}).get("impairment")
    if imp:
        leaf, spine = imp["devices"]
        port_idx = {p["name"]: p["ifindex"] for s in gt["switches"] for p in s["ports"]}
        leaf_if, spine_if = (port_idx[n] for n in imp["interfaces"])
        tenants = set()
        for fid in imp["flows"]:
            f = flows[fid]
            if any((names.get(s.agent) == leaf and s.out_if == leaf_if)
                   or (names.get(s.agent) == spine and s.in_if == spine_if)
                   for s in flow_samples(cap, f)):
                tenants.add(f["tenant"])
        rep.facts["impaired_link_tenants_sampled"] = sorted(tenants)
        rep.check(tenants == set(imp["tenants"]),
                  f"tenants sampled on {imp['link']}: {sorted(tenants)}, counters say "
                  f"{imp['tenants']}")
    # 6. migration: afterwards the VM's traffic goes to its new hypervisor's tunnel address
    mig = [e for e in gt["events"] if e["type"] == "migrate"]
    f = flows.get(f"migrated-a1-{mig[-1]['endpoint']}") if mig else None
    if mig and f:
        new_ip = next(h["ip"] for h in gt["hypervisors"] if h["name"] == mig[-1]["to"])
        old_ip = next(h["ip"] for h in gt["hypervisors"] if h["name"] == mig[-1]["from"])
        dsts = {s.outer_dst for s in flow_samples(cap, f)}
        rep.facts["migrated_outer_dst"] = sorted(d for d in dsts if d)
        rep.check(new_ip in dsts and old_ip not in dsts,
                  f"after migration, outer destinations {sorted(d for d in dsts if d)}; "
                  f"want {new_ip} (new host), not {old_ip}")
    return rep


# -- fabricscope's own answers ---------------------------------------------------------------

def _shift(rfc: str, seconds: float) -> str:
    from datetime import UTC, datetime

    t = datetime.fromtimestamp(_ts(rfc) + seconds, UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tracer(db: Path, inventory: Path, errors: list[str]) -> Any:
    """``fabricscope.query.trace``. The path is what is checked here: when the hop-health
    source is missing or fails, the same engine runs without it and the failure is noted
    in ``errors`` (so it is reported, not hidden)."""
    def run(src: str, dst: str, **kw: Any) -> dict[str, Any]:
        from fabricscope import query

        try:
            return query.trace(src, dst, db=str(db), inventory=str(inventory), **kw)
        except Exception as exc:
            frames = traceback.extract_tb(exc.__traceback__)
            in_health = "health" in str(exc) if isinstance(exc, ModuleNotFoundError) else \
                any("correlate/health" in fr.filename for fr in frames)
            if not in_health:
                raise
            msg = f"{type(exc).__name__}: {exc}"
            if msg not in errors:
                errors.append(msg)
        from fabricscope.query._trace import TraceQuery
        from fabricscope.query._trace import trace as engine
        from fabricscope.query.common import Window, load_inventory
        from fabricscope.store import open_store

        since, until = kw.pop("since"), kw.pop("until")
        q = TraceQuery(src=src, dst=dst, window=Window.parse(since, until), **kw)
        store = open_store(str(db))
        try:
            return engine(store, load_inventory(str(inventory)), q)
        finally:
            store.close()
    return run


def ingest(pcap: Path, db: Path, port: int = 6343) -> None:
    """Decode the capture into an embedded store (what ``fabricscope ingest`` will do)."""
    from fabricscope.pipeline import FileDecoder
    from fabricscope.store import open_store

    store = open_store(str(db), write=True)
    try:
        for d in FileDecoder(pcap, sflow=port != 6343):
            store.append(d.records, d.counters)
        store.seal()
    finally:
        store.close()


def _hops(seg: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    return [(h["device"], h["in_if"], h["out_if"]) for h in seg["hops"]]


def check_queries(db: Path, gt: Mapping[str, Any], inventory: Path) -> Report:
    """fabricscope's trace and impact over the lab's samples, against the ground truth:
    each probe's hops are the switches and ports OVS counted it on, the https flow crosses
    the VNFs it really crossed, the impaired link's impact names the tenants that used it."""
    from fabricscope import query

    rep = Report()
    health_errors: list[str] = []
    trace = _tracer(db, inventory, health_errors)
    flows = {f["id"]: f for f in gt["flows"]}

    def run(f: Mapping[str, Any], **kw: Any) -> dict[str, Any]:
        vnis = {s["vni"] for s in f["segments"]}  # a routed flow changes VNI on the way
        res: dict[str, Any] = trace(f["src"], f["dst"], proto=PROTO[f["proto"]],
                                    vni=vnis.pop() if len(vnis) == 1 else None,
                                    since=_shift(f["start"], -0.2),
                                    until=_shift(f["end"], 2.0), **kw)
        return res

    probes = [f for f in gt["flows"] if f["kind"] == "udp-probe"]
    exact = 0
    for f in probes:
        res = run(f, sport=f["sport"], dport=f["dport"])
        if len(res["paths"]) != 1:
            rep.problems.append(f"trace {f['id']}: {len(res['paths'])} paths, want 1")
            continue
        (path,) = res["paths"]
        want = f["segments"][0]
        got = path["segments"]
        if len(got) != 1:
            rep.problems.append(f"trace {f['id']}: {len(got)} segments, want 1")
            continue
        hops = _hops(got[0])
        rep.check(hops == _hops(want), f"trace {f['id']}: hops {hops}, OVS counted "
                                       f"{_hops(want)}")
        exact += hops == _hops(want)
        rep.check((got[0]["src_host"], got[0]["dst_host"]) == (want["src_host"],
                                                               want["dst_host"]),
                  f"trace {f['id']}: hosts {got[0]['src_host']}->{got[0]['dst_host']}")
        ep = {e["name"]: e for e in gt["endpoints"]}
        rep.check(res["src"].get("endpoint") == f["src_endpoint"]
                  and res["dst"].get("endpoint") == f["dst_endpoint"]
                  and res["src"].get("tenant") == ep[f["src_endpoint"]]["tenant"],
                  f"trace {f['id']}: endpoints {res['src']} -> {res['dst']}")
        rep.check(path["vnfs"] == [], f"trace {f['id']}: VNFs {path['vnfs']}, want none")
    rep.facts["probe_traces_exact"] = exact
    rep.facts["probe_traces"] = len(probes)

    for fid in ("https-a1-a3-direct", "https-a1-a3-chained"):
        f = flows.get(fid)
        if f is None:
            continue
        res = run(f, sport=f.get("sport"), dport=f["dport"])
        paths = res["paths"]
        if not paths:
            rep.problems.append(f"trace {fid}: no path")
            continue
        best = max(paths, key=lambda p: p["samples"])
        rep.facts.setdefault("chain_traces", {})[fid] = best["vnfs"]
        rep.check(best["vnfs"] == f["vnfs"], f"trace {fid}: VNFs {best['vnfs']}, the packets "
                                             f"crossed {f['vnfs']}")
        hosts = [(s["src_host"], s["dst_host"]) for s in best["segments"]]
        want_hosts = [(s["src_host"], s["dst_host"]) for s in f["segments"] if not s["local"]]
        rep.check(hosts == want_hosts, f"trace {fid}: segments {hosts}, want {want_hosts}")

    mig = [e for e in gt["events"] if e["type"] == "migrate"]
    f = flows.get(f"migrated-a1-{mig[-1]['endpoint']}") if mig else None
    if f is not None:
        res = run(f, sport=f["sport"], dport=f["dport"])
        rep.check(res["dst"].get("host") == mig[-1]["to"],
                  f"trace after migration: destination host {res['dst'].get('host')}, "
                  f"want {mig[-1]['to']}")
        seen_hops = [_hops(s) for p in res["paths"] for s in p["segments"]]
        rep.check(seen_hops == [_hops(f["segments"][0])],
                  f"trace after migration: hops {seen_hops}, want {[_hops(f['segments'][0])]}")

    imp = gt.get("results", {}).get("impairment")
    if imp:
        on = [e for e in gt["events"] if e["type"] == "impair"]
        since, until = on[0]["at"], _shift(on[-1]["at"], 2.0)
        res = query.impact(imp["devices"][0], interface=imp["interfaces"][0], since=since,
                           until=until, db=str(db), inventory=str(inventory))
        tenants = sorted(t["tenant"] for t in res.get("tenants", []))
        rep.facts["impact_tenants"] = tenants
        rep.check(tenants == imp["tenants"], f"impact {imp['link']}: tenants {tenants}, "
                                             f"OVS counters say {imp['tenants']}")
        link = res.get("link") or {}
        rep.check(link.get("link") == imp["link"], f"impact {imp['link']}: link {link}")
    if health_errors:
        rep.facts["health_errors"] = health_errors
    return rep

"""A simulated run checked against itself: the datagrams (parsed here with an independent
sFlow/packet parser, and with fabricscope's own decoder and tshark), the truth tables,
the counters, the events, and determinism."""

from __future__ import annotations

import hashlib
import itertools
import struct
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from fabricscope.capture import read_all
from fabricscope.sim import SimParams, load_truth, simulate
from fabricscope.sim import hashing as H

PARAMS = SimParams.preset(
    "demo", leaves=3, hosts_per_leaf=3, vnfs=3, duration=200.0, flows=400,
    events=("migration", "vnf-insert", "link-errors", "congestion", "sflow-outage"),
    host_speed=1_000_000_000, uplink_speed=2_000_000_000, truth_samples=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sim")
    res = simulate(out, PARAMS)
    truth = load_truth(out)
    return {"dir": out, "res": res, "truth": truth, "dgs": parse_pcap(out / "sflow.pcap")}


# --------------------------------------------------------------------------- a parser
# Written from the sFlow v5 spec, independent of sim/sflow_render.py.


def _u32(b: bytes, o: int) -> int:
    return int(struct.unpack_from(">I", b, o)[0])


def parse_packet(h: bytes) -> dict[str, Any]:
    """Ethernet / IPv4|IPv6 / (UDP VXLAN|GENEVE) | (GRE NVGRE) / Ethernet / [MPLS] / IPv4 /
    TCP|UDP|ICMP."""
    out: dict[str, Any] = {}
    et = struct.unpack_from(">H", h, 12)[0]
    p = 14
    if et == 0x0800:
        out["ttl"] = h[p + 8]
        proto = h[p + 9]
        out["src"] = ".".join(str(x) for x in h[p + 12: p + 16])
        out["dst"] = ".".join(str(x) for x in h[p + 16: p + 20])
        p += (h[p] & 0xF) * 4
    else:
        assert et == 0x86DD
        import ipaddress
        proto = h[p + 6]
        out["ttl"] = h[p + 7]
        out["src"] = str(ipaddress.IPv6Address(h[p + 8: p + 24]))
        out["dst"] = str(ipaddress.IPv6Address(h[p + 24: p + 40]))
        p += 40
    if proto == 17:
        sport, dport = struct.unpack_from(">HH", h, p)
        out["tsport"] = sport
        p += 8
        out["encap"] = {4789: "vxlan", 6081: "geneve"}[dport]
        if dport == 4789:
            assert h[p] == 0x08
        else:
            assert h[p] >> 6 == 0 and struct.unpack_from(">H", h, p + 2)[0] == 0x6558
        out["vni"] = _u32(h, p + 4) >> 8
        p += 8
    else:
        assert proto == 47
        flags, ptype = struct.unpack_from(">HH", h, p)
        assert flags == 0x2000 and ptype == 0x6558
        key = _u32(h, p + 4)
        out["encap"], out["vni"], out["flow_id"] = "nvgre", key >> 8, key & 0xFF
        p += 8
    out["inner_dst_mac"] = h[p: p + 6].hex(":")
    out["inner_src_mac"] = h[p + 6: p + 12].hex(":")
    iet = struct.unpack_from(">H", h, p + 12)[0]
    p += 14
    out["mpls"] = None
    if iet == 0x8847:
        lse = _u32(h, p)
        out["mpls"] = lse >> 12
        assert (lse >> 8) & 1 == 1
        p += 4
    out["inner_src"] = ".".join(str(x) for x in h[p + 12: p + 16])
    out["inner_dst"] = ".".join(str(x) for x in h[p + 16: p + 20])
    out["inner_proto"] = h[p + 9]
    p += 20
    if out["inner_proto"] in (6, 17):
        out["sport"], out["dport"] = struct.unpack_from(">HH", h, p)
    else:
        out["sport"] = out["dport"] = 0
        out["icmp_type"] = h[p]
    return out


def parse_datagram(b: bytes) -> dict[str, Any]:
    assert _u32(b, 0) == 5 and _u32(b, 4) == 1
    dg: dict[str, Any] = {"agent": ".".join(str(x) for x in b[8:12]), "sub": _u32(b, 12),
                          "seq": _u32(b, 16), "uptime": _u32(b, 20), "flows": [],
                          "counters": []}
    n = _u32(b, 24)
    p = 28
    for _ in range(n):
        fmt, length = _u32(b, p), _u32(b, p + 4)
        q, end = p + 8, p + 8 + length
        if fmt in (1, 3):
            s: dict[str, Any] = {"seq": _u32(b, q), "format": fmt}
            if fmt == 1:
                s["source"] = _u32(b, q + 4) & 0xFFFFFF
                q += 8
            else:
                assert _u32(b, q + 4) == 0
                s["source"] = _u32(b, q + 8)
                q += 12
            s["rate"], s["pool"], s["drops"] = _u32(b, q), _u32(b, q + 4), _u32(b, q + 8)
            q += 12
            if fmt == 1:
                s["in"], s["out"] = _u32(b, q) & 0x3FFFFFFF, _u32(b, q + 4) & 0x3FFFFFFF
                q += 8
            else:
                s["in"], s["out"] = _u32(b, q + 4), _u32(b, q + 12)
                q += 16
            nrec = _u32(b, q)
            q += 4
            for _ in range(nrec):
                rf, rl = _u32(b, q), _u32(b, q + 4)
                if rf == 1:
                    assert _u32(b, q + 8) == 1  # Ethernet
                    s["frame_length"] = _u32(b, q + 12)
                    assert _u32(b, q + 16) == 4
                    hl = _u32(b, q + 20)
                    s["header"] = b[q + 24: q + 24 + hl]
                    assert rl == 16 + ((hl + 3) & ~3)
                elif rf == 1001:
                    assert rl == 16
                    s["ext_switch"] = True
                q += 8 + rl
            assert q == end
            dg["flows"].append(s)
        elif fmt in (2, 4):
            c: dict[str, Any] = {"seq": _u32(b, q)}
            if fmt == 2:
                c["source"] = _u32(b, q + 4) & 0xFFFFFF
                q += 8
            else:
                c["source"] = _u32(b, q + 8)
                q += 12
            nrec = _u32(b, q)
            q += 4
            for _ in range(nrec):
                rf, rl = _u32(b, q), _u32(b, q + 4)
                if rf == 1:
                    assert rl == 88
                    g = struct.unpack_from(">IIQIIQIIIIIIQIIIIII", b, q + 8)
                    c.update(ifindex=g[0], speed=g[2], in_octets=g[5], in_pkts=g[6],
                             in_discards=g[9], in_errors=g[10], out_octets=g[12],
                             out_pkts=g[13], out_discards=g[16], out_errors=g[17])
                elif rf == 1005:
                    nl = _u32(b, q + 8)
                    c["name"] = b[q + 12: q + 12 + nl].decode()
                q += 8 + rl
            assert q == end
            dg["counters"].append(c)
        else:
            raise AssertionError(f"unexpected sample format {fmt}")
        p = end
    assert p == len(b)
    return dg


def parse_pcap(path: Path) -> list[dict[str, Any]]:
    fb = read_all(path)
    out = []
    for i in range(len(fb)):
        f = fb.frame(i)
        assert struct.unpack_from(">H", f, 12)[0] == 0x0800
        assert f[23] == 17 and struct.unpack_from(">H", f, 36)[0] == 6343
        assert struct.unpack_from(">H", f, 16)[0] == len(f) - 14
        dg = parse_datagram(f[42:])
        assert dg["agent"] == ".".join(str(x) for x in f[26:30])
        dg["ts"] = int(fb.ts_ns[i])
        out.append(dg)
    return out


# --------------------------------------------------------------------------- helpers


def _cum(P: np.ndarray, s: np.ndarray, e: np.ndarray, t: np.ndarray) -> np.ndarray:
    tt = np.clip(t, s, e)
    return np.floor(P * ((tt - s) / (e - s))).astype(np.int64)


def _hop_table(truth: Any) -> dict[str, np.ndarray]:
    """Every hop with its flow's pacing and its segment's window."""
    fl = truth.flows.select(["flow_id", "start_ns", "end_ns", "packets"])
    sg = truth.segments.select(["flow_id", "span", "seg", "t_from_ns", "t_to_ns",
                                "frame_length"])
    hp = truth.hops.select(["flow_id", "span", "seg", "hop", "device", "in_if", "out_if"])
    j = hp.join(sg, ["flow_id", "span", "seg"]).join(fl, "flow_id")
    out = {c: j[c].to_numpy() for c in ("start_ns", "end_ns", "packets", "t_from_ns",
                                         "t_to_ns", "frame_length", "in_if", "out_if")}
    out["device"] = np.array(j["device"].to_pylist())
    return out


# --------------------------------------------------------------------------- tests


def test_files_written(run: dict[str, Any]) -> None:
    d = run["dir"]
    for name in ("inventory.yaml", "sflow.pcap", "truth.json", "truth-flows.parquet",
                 "truth-segments.parquet", "truth-hops.parquet", "truth-counters.parquet",
                 "truth-samples.parquet"):
        assert (d / name).stat().st_size > 0, name
    res = run["res"]
    assert res.samples > 1000 and res.datagrams == len(run["dgs"])
    assert res.flows == run["truth"].flows.num_rows


def test_inventory_validates(run: dict[str, Any]) -> None:
    from fabricscope.inventory.fileformat import check_file

    doc = check_file(run["dir"] / "inventory.yaml")
    assert doc.ok and not doc.problems, [str(p) for p in doc.problems[:3]]


def test_datagrams_are_ordered_and_numbered(run: dict[str, Any]) -> None:
    dgs = run["dgs"]
    ts = [d["ts"] for d in dgs]
    assert ts == sorted(ts)
    truth = run["truth"]
    outage = next(e for e in truth.events if e["type"] == "sflow-outage")
    by_agent: dict[str, list[int]] = defaultdict(list)
    for d in dgs:
        by_agent[d["agent"]].append(d["seq"])
        assert d["sub"] == 0
    agents = {dev["agent"] for dev in truth.meta["devices"]}
    assert set(by_agent) == agents
    for agent, seqs in by_agent.items():
        assert seqs[0] == 1
        gaps = [(a, b) for a, b in itertools.pairwise(seqs) if b != a + 1]
        if agent == outage["agent"]:
            assert len(gaps) == 1
            a, b = gaps[0]
            assert b - a - 1 == outage["datagrams_lost"] > 0
            assert (a + 1, b - 1) == (outage["seq_first_lost"], outage["seq_last_lost"])
        else:
            assert gaps == []
    # nothing from the silent agent during the outage
    from fabricscope.timeutil import parse_time, to_ns

    t0, t1 = to_ns(parse_time(outage["time"])), to_ns(parse_time(outage["until"]))
    assert not [d for d in dgs if d["agent"] == outage["agent"] and t0 <= d["ts"] < t1]


def test_flow_samples_match_truth(run: dict[str, Any]) -> None:
    """Every decoded flow sample is the truth's sample: agent, ports, sequence, and the
    headers (outer VTEPs, TTL, tunnel, VNI, MPLS label, inner 5-tuple) of its flow."""
    truth = run["truth"]
    smp = truth.table("samples").filter(pa.compute.invert(truth.table("samples")["lost"]))
    flows = {r["flow_id"]: r for r in truth.flows.to_pylist()}
    segs = {(r["flow_id"], r["span"], r["seg"]): r for r in truth.segments.to_pylist()}
    agent_of = {d["agent"]: d["name"] for d in truth.meta["devices"]}
    key = {(r["device"], r["in_if"], r["sample_seq"]): r for r in smp.to_pylist()}
    n = 0
    seen_formats = set()
    for dg in run["dgs"]:
        dev = agent_of[dg["agent"]]
        for s in dg["flows"]:
            t = key[(dev, s["source"], s["seq"])]
            assert s["in"] == t["in_if"] == s["source"] and s["out"] == t["out_if"]
            assert s["rate"] == PARAMS.sampling_rate and s["drops"] == 0
            assert s.get("ext_switch")
            seen_formats.add(s["format"])
            f = flows[t["flow_id"]]
            sg = segs[(t["flow_id"], t["span"], t["seg"])]
            h = parse_packet(s["header"])
            assert s["frame_length"] == sg["frame_length"]
            assert len(s["header"]) == min(128, sg["frame_length"] - 4)
            assert (h["src"], h["dst"]) == (sg["outer_src"], sg["outer_dst"])
            assert h["ttl"] == 64 - t["hop"]
            assert h["encap"] == sg["encap"] and h["vni"] == sg["vni"] == f["vni"]
            assert h["mpls"] == sg["mpls_label"]
            if h["encap"] == "nvgre":
                assert h["flow_id"] == f["tunnel_hash"] & 0xFF
            else:
                assert h["tsport"] == sg["tunnel_sport"] == f["tunnel_sport"]
            assert (h["inner_src"], h["inner_dst"], h["inner_proto"]) == (
                f["src_ip"], f["dst_ip"], f["proto"])
            if f["proto"] != 1:
                assert (h["sport"], h["dport"]) == (f["sport"], f["dport"])
            n += 1
    assert n == smp.num_rows
    assert seen_formats == {1, 3}, "leaves compact, spines expanded"


def test_sample_sequence_and_pool_per_source(run: dict[str, Any]) -> None:
    truth = run["truth"]
    outage = next(e for e in truth.events if e["type"] == "sflow-outage")
    last: dict[tuple[str, int], tuple[int, int]] = {}
    for dg in run["dgs"]:
        for s in dg["flows"]:
            k = (dg["agent"], s["source"])
            if k in last:
                seq, pool = last[k]
                if dg["agent"] != outage["agent"]:
                    assert s["seq"] == seq + 1
                else:
                    assert s["seq"] > seq
                assert (s["pool"] - pool) % 2**32 < 2**31  # non-decreasing, mod 2^32
            last[k] = (s["seq"], s["pool"])


def test_counter_samples_every_interval(run: dict[str, Any]) -> None:
    truth = run["truth"]
    ct = truth.counters
    polls = sorted(set(ct["ts_ns"].to_pylist()))
    assert len(polls) == int(PARAMS.duration // PARAMS.counter_interval) + 1
    outage = next(e for e in truth.events if e["type"] == "sflow-outage")
    per_if: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for dg in run["dgs"]:
        for c in dg["counters"]:
            per_if[(dg["agent"], c["source"])].append(c)
            assert c["ifindex"] == c["source"] and c["name"] == f"eth{c['source']}"
    rows = {(r["device"], r["ifindex"], r["ts_ns"]): r for r in ct.to_pylist()}
    agent_of = {d["agent"]: d["name"] for d in truth.meta["devices"]}
    lost = outage["counter_samples_lost"]
    n_if = len({(dev, ifx) for dev, ifx, _ in rows})
    assert sum(len(v) for v in per_if.values()) == n_if * len(polls) - lost
    for (agent, ifx), cs in per_if.items():
        dev = agent_of[agent]
        for c in cs:
            r = rows[(dev, ifx, polls[c["seq"] - 1])]
            assert c["in_octets"] == r["in_octets"] and c["out_octets"] == r["out_octets"]
            assert c["in_pkts"] == r["in_pkts"] % 2**32
            assert c["in_errors"] == r["in_errors"] and c["out_discards"] == r["out_discards"]
            assert c["speed"] == r["speed"]


def test_counters_consistent_with_traffic(run: dict[str, Any]) -> None:
    """The true octet/packet deltas of every interface in every poll interval equal the
    packets x frame length of the flows' hops crossing it then (ingress and egress)."""
    truth = run["truth"]
    h = _hop_table(truth)
    ct = truth.counters
    polls = sorted(set(ct["ts_ns"].to_pylist()))
    c = {(r["device"], r["ifindex"], r["ts_ns"]): r for r in ct.to_pylist()}
    checked = 0
    for a, b in itertools.pairwise(polls):
        lo = np.maximum(a, h["t_from_ns"])
        hi = np.minimum(b, h["t_to_ns"])
        pk = np.where(lo < hi, _cum(h["packets"], h["start_ns"], h["end_ns"], hi)
                      - _cum(h["packets"], h["start_ns"], h["end_ns"], lo), 0)
        octs = pk * h["frame_length"]
        exp_in: Counter[tuple[str, int]] = Counter()
        exp_out: Counter[tuple[str, int]] = Counter()
        exp_in_p: Counter[tuple[str, int]] = Counter()
        for dev, i, o, n, p in zip(h["device"], h["in_if"], h["out_if"], octs, pk,
                                   strict=True):
            exp_in[(dev, int(i))] += int(n)
            exp_out[(dev, int(o))] += int(n)
            exp_in_p[(dev, int(i))] += int(p)
        for (dev, ifx, t), r in c.items():
            if t != b:
                continue
            prev = c[(dev, ifx, a)]
            assert r["in_octets"] - prev["in_octets"] == exp_in[(dev, ifx)], (dev, ifx, b)
            assert r["out_octets"] - prev["out_octets"] == exp_out[(dev, ifx)]
            assert r["in_pkts"] - prev["in_pkts"] == exp_in_p[(dev, ifx)]
            checked += 1
    assert checked > 100


def test_sampling_rate_is_statistically_right(run: dict[str, Any]) -> None:
    truth = run["truth"]
    h = _hop_table(truth)
    lo, hi = h["t_from_ns"], h["t_to_ns"]
    pk = _cum(h["packets"], h["start_ns"], h["end_ns"], hi) - _cum(
        h["packets"], h["start_ns"], h["end_ns"], lo)
    smp = truth.table("samples")
    got = Counter(smp["device"].to_pylist())
    for dev in set(h["device"].tolist()):
        exp = pk[h["device"] == dev].sum() / PARAMS.sampling_rate
        assert abs(got[dev] - exp) < 5 * np.sqrt(exp) + 5, (dev, got[dev], exp)
    total = pk.sum() / PARAMS.sampling_rate
    assert abs(smp.num_rows - total) < 4 * np.sqrt(total)


def test_ecmp_is_deterministic_and_diverse(run: dict[str, Any]) -> None:
    truth = run["truth"]
    sg = truth.segments.filter(pa.compute.equal(truth.segments["nhops"], 3)).to_pylist()
    assert len(sg) > 100
    leaf_index = {d["name"]: d["index"] for d in truth.meta["devices"] if d["role"] == "leaf"}
    host_leaf = {}
    hops = truth.hops.filter(pa.compute.equal(truth.hops["hop"], 0)).to_pylist()
    first_dev = {(r["flow_id"], r["span"], r["seg"]): r["device"] for r in hops}
    spines = Counter()
    for r in sg:
        leaf = first_dev[(r["flow_id"], r["span"], r["seg"])]
        host_leaf[r["src_host"]] = leaf
        x = (r["tunnel_sport"] << 16 | {"vxlan": 4789, "geneve": 6081}[r["encap"]]
             ) if r["encap"] != "nvgre" else r["gre_key"]
        proto = 47 if r["encap"] == "nvgre" else 17
        want = H.ecmp_member_scalar(leaf_index[leaf], PARAMS.spines, r["outer_src"],
                                    r["outer_dst"], proto, x)
        assert r["spine"] == f"spine-{want + 1}"
        spines[r["spine"]] += 1
    # balanced: each of two spines carries 30-70 % of the distinct inter-leaf tunnels
    distinct = Counter({(r["outer_src"], r["outer_dst"], r["tunnel_sport"]): r["spine"]
                        for r in sg}.values())
    tot = sum(distinct.values())
    assert len(distinct) == PARAMS.spines
    for v in distinct.values():
        assert 0.3 < v / tot < 0.7, distinct
    # the tunnel source port is the hash of the inner 5-tuple
    for f in truth.flows.to_pylist()[:300]:
        th = H.tunnel_hash_scalar(f["src_ip"], f["dst_ip"], f["proto"], f["sport"],
                                  f["dport"])
        assert th == f["tunnel_hash"]
        if f["encap"] != "nvgre":
            assert f["tunnel_sport"] == 49152 + th % 16384


def test_hops_follow_the_fabric(run: dict[str, Any]) -> None:
    truth = run["truth"]
    by_seg: dict[tuple[int, int, int], list[dict[str, Any]]] = defaultdict(list)
    for r in truth.hops.to_pylist():
        by_seg[(r["flow_id"], r["span"], r["seg"])].append(r)
    for s in truth.segments.to_pylist():
        hs = sorted(by_seg.get((s["flow_id"], s["span"], s["seg"]), []),
                    key=lambda r: r["hop"])
        assert len(hs) == s["nhops"]
        if s["nhops"] == 0:
            assert s["local"] and s["src_host"] == s["dst_host"]
        elif s["nhops"] == 1:
            assert hs[0]["device"].startswith("leaf-") and s["spine"] is None
        else:
            assert [h["device"].split("-")[0] for h in hs] == ["leaf", "spine", "leaf"]
            assert hs[1]["device"] == s["spine"]
            assert hs[0]["out_if"] == 49 + int(s["spine"].split("-")[1]) - 1
            assert hs[2]["in_if"] == hs[0]["out_if"]
            assert hs[1]["in_if"] == int(hs[0]["device"].split("-")[1])
            assert hs[1]["out_if"] == int(hs[2]["device"].split("-")[1])
        assert [h["ttl"] for h in hs] == [64, 63, 62][: len(hs)]


def _chain_vnfs(groups: list[list[str]], fwd: dict[str, Any]) -> list[str]:
    """The VNF each group gives this conversation (hash of the canonical 5-tuple)."""
    return [g[H.vnf_member_scalar(len(g), fwd["src_ip"], fwd["dst_ip"], fwd["proto"],
                                  fwd["sport"], fwd["dport"])] for g in groups]


def test_chain_steering(run: dict[str, Any]) -> None:
    """Classified flows (tenant 0's tcp/443 from its gateway) cross the firewall (and the
    IDS once inserted), their replies cross them backwards; nothing else crosses a VNF."""
    truth = run["truth"]
    chain = truth.meta["chains"][0]
    ins = next(e for e in truth.events if e["type"] == "vnf-insertion")
    from fabricscope.timeutil import parse_time, to_ns

    t_ins = to_ns(parse_time(ins["time"]))
    flows = {r["flow_id"]: r for r in truth.flows.to_pylist()}
    spans: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for s in truth.segments.to_pylist():
        spans[(s["flow_id"], s["span"])].append(s)
    n_chained = n_other = 0
    for (fid, _), segs in spans.items():
        f = flows[fid]
        segs.sort(key=lambda s: s["seg"])
        vnfs = [s["to_vnf"] for s in segs if s["to_vnf"] is not None]
        fwd = flows[f["reverse_of"]] if f["reverse_of"] is not None else f
        classified = (fwd["chain"] == chain["name"] and fwd["dport"] == 443
                      and fwd["src_external"])
        if not classified:
            assert vnfs == [] and len(segs) == 1, f
            n_other += 1
            continue
        n_chained += 1
        version = chain["versions"][0 if segs[0]["t_from_ns"] < t_ins else 1]
        want = _chain_vnfs(version["groups"], fwd)
        if f["reverse_of"] is not None:
            want = want[::-1]
        assert vnfs == want, (fid, vnfs, want)
        # tunnels chain host -> VNF host -> ... -> destination host
        for a, b in itertools.pairwise(segs):
            assert a["dst_host"] == b["src_host"]
        # networking-sfc label on the segments towards a VNF: chain_id << 8 | (255 - hop)
        for k, s in enumerate(segs):
            want_label = (chain["chain_id"] << 8 | (255 - k)) if k < len(vnfs) else None
            assert s["mpls_label"] == want_label
    assert n_chained > 5 and n_other > 100
    # what a chain carries matches its classifier (tcp/443 from the gateway to the web
    # subnet); inbound web traffic lands on web VMs
    gw = f"{chain['tenant']}-gw"
    for f in flows.values():
        fwd = flows[f["reverse_of"]] if f["reverse_of"] is not None else f
        if f["chain"] is not None:
            assert (fwd["proto"], fwd["dport"], fwd["src_endpoint"]) == (6, 443, gw)
            assert fwd["dst_ip"].startswith("10.1.")
        if fwd["kind"] in ("https", "http"):
            assert fwd["dst_endpoint"].split("-")[1] == "web", fwd
            assert fwd["src_endpoint"].endswith("-gw") and fwd["src_external"]
    # plain http from the same gateway is not classified
    http = [f for f in flows.values() if f["kind"] == "http"]
    assert http and all(f["chain"] is None for f in http)


def test_featured_flow_path_over_time(run: dict[str, Any]) -> None:
    truth = run["truth"]
    ft = truth.featured[0]
    path = truth.path(ft["flow_id"])
    mig = next(e for e in truth.events if e["type"] == "vm-migration")
    ins = next(e for e in truth.events if e["type"] == "vnf-insertion")
    assert [p["t_to"][:19] for p in path[:-1]] == [mig["time"][:19], ins["time"][:19]]
    f = truth.flow(ft["flow_id"])
    assert path[0]["vnfs"] == path[1]["vnfs"] == _chain_vnfs(ins["vnfs_before"], f)
    assert path[2]["vnfs"] == _chain_vnfs(ins["vnfs_after"], f)
    assert ins["vnf"] in path[2]["vnfs"] and ins["vnf"] not in path[1]["vnfs"]
    assert path[0]["segments"][-1]["dst_host"] == mig["from_host"]
    assert path[1]["segments"][-1]["dst_host"] == mig["to_host"]
    assert path[1]["segments"][-1]["outer_dst"] == mig["to_vtep"]
    one = truth.path(ft["flow_id"], at=mig["time"])
    assert len(one) == 1 and one[0]["span"] == 1


def test_migration_shows_in_the_datagrams(run: dict[str, Any]) -> None:
    """Samples of the migrated VM's replies leave from its old VTEP before the migration
    and from the new one after."""
    truth = run["truth"]
    mig = next(e for e in truth.events if e["type"] == "vm-migration")
    from fabricscope.timeutil import parse_time, to_ns

    t = to_ns(parse_time(mig["time"]))
    vnf_hosts = {v["host"] for v in truth.meta["vnfs"]}
    assert not {mig["from_host"], mig["to_host"]} & vnf_hosts
    before, after = set(), set()
    for dg in run["dgs"]:
        for s in dg["flows"]:
            h = parse_packet(s["header"])
            if h["inner_src"] == mig["ip"] and h["vni"] == mig["vni"] and h["src"] in (
                    mig["from_vtep"], mig["to_vtep"]):
                if dg["ts"] < t:
                    before.add(h["src"])
                elif dg["ts"] > t + PARAMS.flush_interval * 1e9:
                    after.add(h["src"])
    assert before == {mig["from_vtep"]}
    assert after == {mig["to_vtep"]}


def test_link_errors_rise(run: dict[str, Any]) -> None:
    truth = run["truth"]
    ev = next(e for e in truth.events if e["type"] == "link-errors")
    a = ev["link"]["a"]
    deltas = truth.counter_deltas(a["device"], a["interface"])
    errs = [d["in_errors"] for d in deltas]
    assert sum(errs) == sum(
        d["in_errors"] for d in truth.counter_deltas(a["device"], a["interface"]))
    assert errs[0] == 0 and errs[-1] > 0
    nonzero = [e for e in errs if e]
    assert nonzero[-1] > nonzero[0]
    assert ev["in_errors"] > 0 and ev["in_discards"] > 0
    # no errors anywhere else
    ct = truth.counters
    ifs = {(ev["link"][s]["device"], ev["link"][s]["interface"]) for s in ("a", "b")}
    for r in ct.to_pylist():
        if (r["device"], r["ifname"]) not in ifs:
            assert r["in_errors"] == 0 and r["in_discards"] == 0


def test_congested_uplink(run: dict[str, Any]) -> None:
    truth = run["truth"]
    ev = next(e for e in truth.events if e["type"] == "congestion")
    assert 0.9 <= ev["peak_utilisation"] <= 1.0
    assert ev["out_discards"] > 0 and len(ev["flows"]) >= 1
    deltas = truth.counter_deltas(ev["device"], ev["interface"])
    util = [d["out_octets"] * 8 / ((d["to_ns"] - d["from_ns"]) / 1e9) / 2e9 for d in deltas]
    assert max(util) >= 0.9 and max(util) <= 1.0
    assert sorted(util)[len(util) // 2] < 0.2  # only during the event
    # the transfers really cross that uplink
    segs = truth.segments.to_pylist()
    for fid in ev["flows"]:
        s = next(x for x in segs if x["flow_id"] == fid)
        assert s["spine"] == ev["peer"]


def test_truth_json(run: dict[str, Any]) -> None:
    m = run["truth"].meta
    assert m["format"] == 1 and m["params"]["seed"] == PARAMS.seed
    assert m["hash"]["tunnel_seed"] == H.TUNNEL_SEED
    assert {e["type"] for e in m["events"]} == {
        "vm-migration", "vnf-insertion", "link-errors", "congestion", "sflow-outage"}
    assert m["counts"]["samples"] == run["res"].samples
    assert sum(d["datagrams"] for d in m["devices"]) == (
        run["res"].datagrams + run["res"].datagrams_lost)
    assert run["truth"].find_flows(src=m["featured"][0]["src"], dport=443)


def test_tshark_reads_every_datagram(run: dict[str, Any], tshark: str) -> None:
    out = subprocess.run(
        [tshark, "-r", str(run["dir"] / "sflow.pcap"), "-d", "udp.port==6343,sflow",
         "-T", "fields", "-e", "frame.number", "-e", "sflow_245.numsamples", "-e",
         "_ws.malformed"], capture_output=True, text=True, check=True, timeout=300)
    lines = [ln.split("\t") for ln in out.stdout.splitlines() if ln]
    assert len(lines) == len(run["dgs"])
    assert not [ln for ln in lines if len(ln) > 2 and ln[2]]
    assert sum(int(ln[1]) for ln in lines) == sum(
        len(d["flows"]) + len(d["counters"]) for d in run["dgs"])
    vx = subprocess.run(
        [tshark, "-r", str(run["dir"] / "sflow.pcap"), "-d", "udp.port==6343,sflow",
         "-Y", "vxlan", "-T", "fields", "-e", "vxlan.vni"], capture_output=True, text=True,
        check=True, timeout=300)
    assert vx.stdout.strip()


def test_fabricscope_decoder_agrees(run: dict[str, Any]) -> None:
    """fabricscope's own sFlow decoder reads the same samples."""
    pytest.importorskip("fabricscope.sflow")
    from fabricscope.pipeline import FileDecoder
    from fabricscope.records.present import ip_str

    fd = FileDecoder(run["dir"] / "sflow.pcap")
    recs = []
    ncounters = 0
    for step in fd:
        recs.extend(step.records.to_pylist())
        if step.counters is not None:
            ncounters += step.counters.num_rows
    flows = [s for d in run["dgs"] for s in d["flows"]]
    assert len(recs) == len(flows)
    assert ncounters == sum(len(d["counters"]) for d in run["dgs"])
    for r, s in zip(recs, flows, strict=True):
        h = parse_packet(s["header"])
        assert r["in_if"] == s["in"] and r["out_if"] == s["out"]
        assert r["sample_seq"] == s["seq"] and r["sampling_rate"] == s["rate"]
        assert ip_str(r["src"]) == h["src"] and ip_str(r["dst"]) == h["dst"]
        assert ip_str(r["inner_src"]) == h["inner_src"]
        assert ip_str(r["inner_dst"]) == h["inner_dst"]
        assert r["vni"] == h["vni"] and r["encap"] == h["encap"]
        assert r["ttl"] == h["ttl"]


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    p = PARAMS.replace(duration=60.0, flows=100, truth_samples=False)
    simulate(tmp_path / "a", p)
    simulate(tmp_path / "b", p)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b and len(a) == 7
    simulate(tmp_path / "c", p.replace(seed=2))
    c = _digest(tmp_path / "c")
    assert c["sflow.pcap"] != a["sflow.pcap"]


@pytest.mark.parametrize("encap,underlay", [("geneve", "ipv6"), ("nvgre", "ipv4"),
                                            ("mixed", "ipv6")])
def test_other_encapsulations(tmp_path: Path, encap: str, underlay: str) -> None:
    p = PARAMS.replace(duration=60.0, flows=150, encap=encap, underlay=underlay,
                       events=("migration",), truth_samples=True)
    simulate(tmp_path, p)
    truth = load_truth(tmp_path)
    dgs = parse_pcap(tmp_path / "sflow.pcap")
    smp = {(r["device"], r["in_if"], r["sample_seq"]): r
           for r in truth.table("samples").to_pylist()}
    segs = {(r["flow_id"], r["span"], r["seg"]): r for r in truth.segments.to_pylist()}
    agent_of = {d["agent"]: d["name"] for d in truth.meta["devices"]}
    encs = set()
    n = 0
    for dg in dgs:
        for s in dg["flows"]:
            t = smp[(agent_of[dg["agent"]], s["source"], s["seq"])]
            sg = segs[(t["flow_id"], t["span"], t["seg"])]
            h = parse_packet(s["header"])
            assert (h["src"], h["dst"], h["encap"], h["vni"]) == (
                sg["outer_src"], sg["outer_dst"], sg["encap"], sg["vni"])
            encs.add(h["encap"])
            n += 1
    assert n > 50
    assert encs == ({"vxlan", "geneve", "nvgre"} if encap == "mixed" else {encap})
    from fabricscope.inventory.fileformat import check_file

    assert check_file(tmp_path / "inventory.yaml").ok


def test_host_captures(tmp_path: Path) -> None:
    """hosts/<host>.pcap holds every tunnel packet the host sends or receives: as many as
    the truth's segments carry, with the outer TTL and VTEPs right, in time order."""
    p = PARAMS.replace(duration=60.0, flows=120, events=("migration",), truth_samples=False,
                       featured_mbps=0.5, steady_mbps=0.5, host_pcaps=("all",))
    simulate(tmp_path, p)
    from fabricscope.sim.fabric import build_fabric

    fab = build_fabric(p)
    truth = load_truth(tmp_path)
    segs = truth.segments.filter(pa.compute.invert(truth.segments["local"])).to_pylist()
    assert sorted(f.name for f in (tmp_path / "hosts").iterdir()) == sorted(
        f"{h}.pcap" for h in fab.host_name)
    busy = Counter(s["src_host"] for s in segs)
    for host in ["gw-1", *[h for h, _ in busy.most_common(2)]]:
        vtep = fab.host_vtep_text[fab.host_name.index(host)]
        fb = read_all(tmp_path / "hosts" / f"{host}.pcap")
        want_tx = sum(s["packets"] for s in segs if s["src_host"] == host)
        want_rx = sum(s["packets"] for s in segs if s["dst_host"] == host)
        assert len(fb) == want_tx + want_rx > 0
        ts = fb.ts_ns.tolist()
        assert ts == sorted(ts)
        tx = rx = 0
        for i in range(0, len(fb), max(1, len(fb) // 2000)):
            h = parse_packet(fb.frame(i))
            assert int(fb.wirelen[i]) >= int(fb.caplen[i])
            if h["src"] == vtep:
                assert h["ttl"] == 64
                tx += 1
            else:
                assert h["dst"] == vtep and h["ttl"] in (61, 63)
                rx += 1
        assert tx and rx

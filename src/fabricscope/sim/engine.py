"""Run a simulation: epochs of one counter interval, streamed to disk.

Per epoch ``[a, b)`` (20 s by default):

1. draw the conversations that start in it (plus the featured flows at the start and the
   congestion event's transfers), turn them into flows, spans, segments and hops, and
   append them to the truth files;
2. count the packets every active segment sends in ``[a, b)`` (exact, from each flow's
   even pacing) and add ``packets x frame_length`` to the in/out counters of every
   interface it crosses;
3. sample: at every hop, ``Binomial(packets, 1/N)`` samples (each switch samples its
   ingress independently), at uniform times within the segment's part of the epoch;
4. render the samples into sFlow datagrams per agent (and the counter samples of the poll
   at ``a``), number them, drop those of an agent in an outage, write them in time order;
5. poll the counters at ``b``.

Memory holds one epoch's samples and the flows still active: bounded whatever the
duration and, for a given traffic density, proportional to the fabric.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fabricscope.sim import hashing as Hh
from fabricscope.sim.fabric import Fabric, build_fabric, ipv4_str
from fabricscope.sim.inventory_out import write_inventory
from fabricscope.sim.params import SimParams
from fabricscope.sim.sflow_render import (
    DATAGRAM_BUDGET,
    HDR,
    SFLOW_PORT,
    build_headers,
    counter_sample_size,
    flow_sample_size,
    group_datagrams,
    render_datagrams,
)
from fabricscope.sim.traffic import (
    ENCAP_NAMES,
    KIND_NAMES,
    NS,
    Table,
    TrafficGen,
    concat,
    cum_packets,
    hops,
    nrows,
    take,
)
from fabricscope.sim.truth import FILES, TRUTH_FORMAT, TableWriter

I64 = NDArray[np.int64]
ProgressFn = Callable[[int, int, int], None]
"""progress(epochs_done, epochs_total, samples_so_far)"""

COLLECTOR_MAC = np.uint64(0x02C011EC7002)
# counter matrix columns
SLICE_SAMPLES = 200_000
"""Samples are drawn and rendered in time slices of about this many (bounds memory)."""
C_IN_OCT, C_IN_PKT, C_IN_DISC, C_IN_ERR, C_OUT_OCT, C_OUT_PKT, C_OUT_DISC, C_OUT_ERR = range(8)


@dataclass
class SimResult:
    """What a run wrote, and how much."""

    out_dir: Path
    files: dict[str, Path]
    hosts: int = 0
    devices: int = 0
    endpoints: int = 0
    flows: int = 0
    segments: int = 0
    samples: int = 0
    samples_lost: int = 0
    counter_samples: int = 0
    datagrams: int = 0
    datagrams_lost: int = 0
    host_packets: int = 0
    sflow_bytes: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir), "files": {k: str(v) for k, v in self.files.items()},
            "hosts": self.hosts, "devices": self.devices, "endpoints": self.endpoints,
            "flows": self.flows, "segments": self.segments, "samples": self.samples,
            "samples_lost": self.samples_lost, "counter_samples": self.counter_samples,
            "datagrams": self.datagrams, "datagrams_lost": self.datagrams_lost,
            "host_packets": self.host_packets, "sflow_bytes": self.sflow_bytes,
            "bytes_written": self.bytes_written,
            "seconds": round(self.seconds, 3),
        }


def _ipv4_strings(v: NDArray[np.uint32]) -> Any:
    """uint32 addresses -> pyarrow strings (vectorised in Arrow's C++)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    v = np.asarray(v, np.uint32)
    parts = [pc.cast(pa.array(((v >> np.uint32(s)) & np.uint32(0xFF)).astype(np.uint8)),
                     pa.string()) for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*parts, ".")


class _Run:
    def __init__(self, out: Path, p: SimParams, progress: ProgressFn | None) -> None:
        import pyarrow as pa

        from fabricscope.capture.writer import PcapWriter

        self.out = out
        self.p = p
        self.progress = progress
        self.fab: Fabric = build_fabric(p)
        fab = self.fab
        self.gen = TrafficGen(fab)
        self.I = round(p.counter_interval * NS)
        self.t_start = p.start_ns
        self.t_end = p.start_ns + p.duration_ns
        self.n_epochs = math.ceil(p.duration_ns / self.I)
        lens = np.array([min(self.I, p.duration_ns - e * self.I) for e in range(self.n_epochs)],
                        np.float64)
        rng0 = np.random.default_rng([p.seed, 3])
        self.conv_counts = rng0.multinomial(p.n_conversations, lens / lens.sum())
        nif, ndev = fab.n_ifs, fab.n_devices
        self.cnt = np.zeros((nif, 8), np.uint64)
        self.cnt[:, C_IN_OCT] = rng0.integers(0, 2**40, nif).astype(np.uint64)
        self.cnt[:, C_IN_PKT] = rng0.integers(0, 2**31, nif).astype(np.uint64)
        self.cnt[:, C_OUT_OCT] = rng0.integers(0, 2**40, nif).astype(np.uint64)
        self.cnt[:, C_OUT_PKT] = rng0.integers(0, 2**31, nif).astype(np.uint64)
        self.fseq = np.zeros(nif, np.int64)
        self.cseq = np.zeros(nif, np.int64)
        self.dseq = np.zeros(ndev, np.int64)
        self.boot = self.t_start - rng0.integers(86400, 200 * 86400, ndev) * NS
        self.dev_expanded = np.array([r == "spine" for r in fab.dev_role], np.bool_)
        self.dev_offset = (1 + (np.arange(ndev) * 7919) % 797) * 1_000_000  # poll send delay
        names = [n.encode() for n in fab.if_name]
        width = max(len(n) for n in names)
        self.if_name_bytes = np.zeros((nif, width), np.uint8)
        for i, nb in enumerate(names):
            self.if_name_bytes[i, : len(nb)] = np.frombuffer(nb, np.uint8)
        self.if_name_len = np.array([len(n) for n in names], np.int64)
        self.if_order = np.lexsort((fab.if_index, fab.if_dev))
        uniq = sorted(set(fab.if_name), key=lambda s: (len(s), s))
        pos = {n: i for i, n in enumerate(uniq)}
        self.ifname_dict = pa.array(uniq, pa.string())
        self.if_name_idx = np.array([pos[n] for n in fab.if_name], np.int64)
        self.d_dev = pa.array(fab.dev_name, pa.string())
        self.d_host = pa.array(fab.host_name, pa.string())
        self.d_vtep = pa.array(fab.host_vtep_text, pa.string())
        self.d_ep = pa.array(fab.ep_name, pa.string())
        self.d_tenant = pa.array(fab.tenant_name, pa.string())
        self.d_net = pa.array(fab.net_name, pa.string())
        self.d_vnf = pa.array([v.name for v in fab.vnfs] or [""], pa.string())
        self.d_chain = pa.array([c.name for c in fab.chains] or [""], pa.string())
        self.d_kind = pa.array(list(KIND_NAMES), pa.string())
        self.d_encap = pa.array([ENCAP_NAMES[i] for i in range(3)], pa.string())
        self.d_featured = pa.array([""] + [f["name"] for f in fab.featured], pa.string())
        self.collector = int(np.uint32(int.from_bytes(
            bytes(int(x) for x in p.collector.split(".")), "big")))
        # outputs
        self.files = {"inventory": out / "inventory.yaml", "sflow": out / "sflow.pcap",
                      "truth": out / "truth.json"}
        for k in ("flows", "segments", "hops", "counters"):
            self.files[k] = out / FILES[k]
        if p.truth_samples:
            self.files["samples"] = out / FILES["samples"]
        self.pcap = PcapWriter(self.files["sflow"], linktype=1, nanosecond=False)
        self.w = {k: TableWriter(self.files[k]) for k in
                  ("flows", "segments", "hops", "counters", "samples") if k in self.files}
        self.hostcap: Any = None
        if p.host_pcaps:
            from fabricscope.sim.hostpcap import HostCaptures

            self.hostcap = HostCaptures(fab, out / "hosts", p.host_pcaps, p.host_pcap_snaplen)
            self.files["hosts"] = out / "hosts"
        self.active: Table = {}
        self.pending: dict[str, Any] | None = None
        self.res = SimResult(out, self.files)
        self.ev_stats: dict[int, dict[str, Any]] = {i: {} for i in range(len(fab.events))}
        self.outage = [(i, ev) for i, ev in enumerate(fab.events) if ev.kind == "sflow-outage"]
        self.lost_seq: dict[int, list[int]] = {}

    # ------------------------------------------------------------------ truth rows
    def _truth_flows(self, f: Table) -> None:
        import pyarrow as pa

        fab = self.fab
        n = nrows(f)
        if n == 0:
            return
        ns = (f["kind"] <= 1)
        enc = fab.net_encap[f["net"]]
        tsport = Hh.tunnel_sport(f["th"])
        self.w["flows"].write({
            "flow_id": f["fid"], "conv_id": f["conv"],
            "reverse_of": pa.array(f["rev_of"], pa.int64(), mask=f["rev_of"] < 0),
            "kind": (f["kind"], self.d_kind), "tenant": (f["tenant"], self.d_tenant),
            "featured": (np.where(f["featured"] > 0, f["featured"], -1), self.d_featured),
            "src_endpoint": (f["src_ep"], self.d_ep), "dst_endpoint": (f["dst_ep"], self.d_ep),
            "src_external": ns & (f["reverse"] == 0), "dst_external": ns & (f["reverse"] == 1),
            "src_ip": _ipv4_strings(f["src_ip"]), "dst_ip": _ipv4_strings(f["dst_ip"]),
            "proto": f["proto"], "sport": f["sport"], "dport": f["dport"],
            "vni": fab.net_vni[f["net"]], "network": (f["net"], self.d_net),
            "encap": (enc, self.d_encap),
            "start_ns": f["start"], "end_ns": f["end"], "packets": f["packets"],
            "frame_len": f["frame"], "bytes": f["packets"] * f["frame"],
            "chain": (f["chain"], self.d_chain),
            "tunnel_hash": f["th"].astype(np.int64),
            "tunnel_sport": pa.array(tsport, pa.int64(), mask=enc == 2),
            "src_host": (fab.host_at(f["src_ep"], f["start"]), self.d_host),
            "dst_host": (fab.host_at(f["dst_ep"], f["start"]), self.d_host),
        })

    def _truth_segments(self, sg: Table) -> None:
        import pyarrow as pa

        fab = self.fab
        n = nrows(sg)
        if n == 0:
            return
        pk = cum_packets(sg, sg["t1"]) - cum_packets(sg, sg["t0"])
        flen = sg["wire"] + 4
        gre = sg["encap"] == 2
        self.w["segments"].write({
            "flow_id": sg["fid"], "span": sg["span"], "seg": sg["seg"],
            "t_from_ns": sg["t0"], "t_to_ns": sg["t1"],
            "src_host": (sg["from_host"], self.d_host), "dst_host": (sg["to_host"], self.d_host),
            "outer_src": (sg["from_host"], self.d_vtep),
            "outer_dst": (sg["to_host"], self.d_vtep),
            "encap": (sg["encap"], self.d_encap), "vni": sg["vni"],
            "tunnel_sport": pa.array(Hh.tunnel_sport(sg["th"]), pa.int64(), mask=gre),
            "gre_key": pa.array(sg["ox"], pa.int64(), mask=~gre),
            "mpls_label": pa.array(sg["mpls"], pa.int64(), mask=sg["mpls"] < 0),
            "from_vnf": (sg["from_vnf"], self.d_vnf), "to_vnf": (sg["to_vnf"], self.d_vnf),
            "local": sg["nhops"] == 0, "spine": (sg["spine"], self.d_dev),
            "nhops": sg["nhops"], "packets": pk, "frame_length": flen, "bytes": pk * flen,
        })
        h = hops(fab, sg)
        r = h["seg_row"]
        self.w["hops"].write({
            "flow_id": sg["fid"][r], "span": sg["span"][r], "seg": sg["seg"][r],
            "hop": h["hop"], "device": (h["dev"], self.d_dev),
            "in_if": fab.if_index[h["in_if"]], "out_if": fab.if_index[h["out_if"]],
            "in_ifname": (self.if_name_idx[h["in_if"]], self.ifname_dict),
            "out_ifname": (self.if_name_idx[h["out_if"]], self.ifname_dict),
            "ttl": h["ttl"],
        })
        self.res.segments += n

    # ------------------------------------------------------------------ counters
    def _poll(self, t: int) -> None:
        """Counters at ``t``: a truth row per interface and the counter samples the agents
        send shortly after (rendered with the next epoch)."""
        fab = self.fab
        vals = self.cnt.copy()
        nif = fab.n_ifs
        self.w["counters"].write({
            "ts_ns": np.full(nif, t, np.int64), "device": (fab.if_dev, self.d_dev),
            "ifindex": fab.if_index, "ifname": (self.if_name_idx, self.ifname_dict),
            "speed": fab.if_speed.astype(np.int64),
            "in_octets": vals[:, C_IN_OCT].astype(np.int64),
            "in_pkts": vals[:, C_IN_PKT].astype(np.int64),
            "in_discards": vals[:, C_IN_DISC].astype(np.int64),
            "in_errors": vals[:, C_IN_ERR].astype(np.int64),
            "out_octets": vals[:, C_OUT_OCT].astype(np.int64),
            "out_pkts": vals[:, C_OUT_PKT].astype(np.int64),
            "out_discards": vals[:, C_OUT_DISC].astype(np.int64),
            "out_errors": vals[:, C_OUT_ERR].astype(np.int64),
        })
        self.cseq += 1
        o = self.if_order
        dev = fab.if_dev[o]
        size = counter_sample_size(self.if_name_len[o], self.dev_expanded[dev])
        g = group_datagrams(dev, np.zeros(o.shape[0], np.int64), size,
                            DATAGRAM_BUDGET - 28, 1 << 62)
        first = np.concatenate([[0], np.nonzero(np.diff(g))[0] + 1]).astype(np.int64)
        count = np.diff(np.concatenate([first, [o.shape[0]]])).astype(np.int64)
        ddev = dev[first]
        # j-th datagram of its agent
        dstart = np.concatenate([[0], np.nonzero(np.diff(ddev))[0] + 1])
        j = np.arange(first.shape[0]) - np.repeat(dstart, np.diff(np.concatenate(
            [dstart, [first.shape[0]]])))
        self.pending = {
            "dev": ddev, "ts": t + self.dev_offset[ddev] + j * 50_000, "first": first,
            "count": count, "seq": self.cseq[o].copy(), "ifindex": fab.if_index[o],
            "speed": fab.if_speed[o], "vals": vals[o], "name": self.if_name_bytes[o],
            "name_len": self.if_name_len[o],
        }
        self.res.counter_samples += o.shape[0]

    def _event_counters(self, rng: np.random.Generator, a: int, b: int, din: I64,
                        dout: I64, dout_oct: I64) -> None:
        fab = self.fab
        for i, ev in enumerate(fab.events):
            t1 = ev.t_to if ev.t_to is not None else self.t_end
            lo, hi = max(a, ev.t_from), min(b, t1)
            if hi <= lo:
                continue
            f = (hi - lo) / (b - a)
            st = self.ev_stats[i]
            if ev.kind == "link-errors":
                frac = (hi - ev.t_from) / max(1, t1 - ev.t_from)
                r0, r1 = ev.info["error_rate_start"], ev.info["error_rate_end"]
                rate = r0 * (r1 / r0) ** frac
                for ifid in ev.info["interfaces"]:
                    err = int(rng.poisson(rate * din[ifid] * f + 3.0 * f * (1 + 20 * frac)))
                    disc = int(rng.poisson(0.25 * err + f))
                    self.cnt[ifid, C_IN_ERR] += np.uint64(err)
                    self.cnt[ifid, C_IN_DISC] += np.uint64(disc)
                    st["in_errors"] = st.get("in_errors", 0) + err
                    st["in_discards"] = st.get("in_discards", 0) + disc
            elif ev.kind == "congestion":
                up = int(fab.leaf_up_if[0, ev.info["spine"]])
                drops = int(rng.poisson(0.002 * dout[up] * f))
                self.cnt[up, C_OUT_DISC] += np.uint64(drops)
                st["out_discards"] = st.get("out_discards", 0) + drops
                util = float(dout_oct[up]) * 8 / ((b - a) / NS) / float(fab.if_speed[up])
                st["peak_utilisation"] = round(max(st.get("peak_utilisation", 0.0), util), 4)

    # ------------------------------------------------------------------ epochs
    def epoch(self, e: int) -> None:
        p, fab, gen = self.p, self.fab, self.gen
        a = self.t_start + e * self.I
        b = min(a + self.I, self.t_end)
        rng = np.random.default_rng([p.seed, 1, e])
        parts = []
        if e == 0:
            parts.append(gen.featured_flows())
            if p.steady_mbps > 0:
                parts.append(gen.steady_flows(np.random.default_rng([p.seed, 7])))
        parts.append(gen.conversations(rng, int(self.conv_counts[e]), a, b))
        for i, ev in enumerate(fab.events):
            if ev.kind == "congestion" and a <= ev.t_from < b and ev.t_to is not None:
                bf = gen.backup_flows(ev.t_from, ev.t_to, ev.info["spine"])
                if nrows(bf):
                    parts.append(bf)
                    self.ev_stats[i]["flows"] = [int(x) for x in bf["fid"][bf["rev_of"] < 0]]
        flows = concat(parts)
        self._truth_flows(flows)
        self.res.flows += nrows(flows)
        segs = gen.segments(flows)
        self._truth_segments(segs)
        self.active = concat([self.active, segs])

        # ---- traffic in [a, b): counters for the whole interval
        act = self.active
        nif = fab.n_ifs
        din = np.zeros(nif, np.int64)
        dout = np.zeros(nif, np.int64)
        din_oct = np.zeros(nif, np.int64)
        dout_oct = np.zeros(nif, np.int64)
        srng = np.random.default_rng([p.seed, 2, e])
        ao: Table = {}
        if nrows(act):
            lo = np.maximum(a, act["t0"])
            hi = np.minimum(b, act["t1"])
            on = (lo < hi) & (act["nhops"] > 0)
            idx = np.nonzero(on)[0]
            ao = take(act, idx)
            lo, hi = lo[idx], hi[idx]
            pk = cum_packets(ao, hi) - cum_packets(ao, lo)
            if self.hostcap is not None:
                self.res.host_packets += self.hostcap.epoch(
                    ao, lo, hi, np.random.default_rng([p.seed, 6, e]))
            hp = hops(fab, ao)
            r = hp["seg_row"]
            hpk = pk[r]
            flen = ao["wire"][r] + 4
            octs = (hpk * flen).astype(np.float64)
            din = np.bincount(hp["in_if"], weights=hpk.astype(np.float64),
                              minlength=nif).astype(np.int64)
            dout = np.bincount(hp["out_if"], weights=hpk.astype(np.float64),
                               minlength=nif).astype(np.int64)
            din_oct = np.rint(np.bincount(hp["in_if"], weights=octs, minlength=nif)).astype(
                np.int64)
            dout_oct = np.rint(np.bincount(hp["out_if"], weights=octs, minlength=nif)
                               ).astype(np.int64)
        pool_before = self.cnt[:, C_IN_PKT].copy()
        self.cnt[:, C_IN_PKT] += din.astype(np.uint64)
        self.cnt[:, C_OUT_PKT] += dout.astype(np.uint64)
        self.cnt[:, C_IN_OCT] += din_oct.astype(np.uint64)
        self.cnt[:, C_OUT_OCT] += dout_oct.astype(np.uint64)
        self._event_counters(np.random.default_rng([p.seed, 5, e]), a, b, din, dout, dout_oct)

        # ---- samples -> datagrams, in time slices of at most ~SLICE_SAMPLES samples
        if nrows(ao):
            expected = float(hpk.sum()) / p.sampling_rate
            n_sl = max(1, min(math.ceil(expected / SLICE_SAMPLES), (b - a) // 1_000_000))
        else:
            n_sl = 1
        for k in range(n_sl):
            s0 = a + (b - a) * k // n_sl
            s1 = a + (b - a) * (k + 1) // n_sl
            samples: Table = {}
            if nrows(ao):
                lo_s = np.maximum(lo, s0)
                hi_s = np.minimum(hi, s1)
                pk_s = np.where(lo_s < hi_s, cum_packets(ao, hi_s) - cum_packets(ao, lo_s), 0)
                nsamp = srng.binomial(pk_s[r], 1.0 / p.sampling_rate)
                si = np.repeat(np.arange(r.shape[0]), nsamp)
                sr = r[si]
                ts = lo_s[sr] + np.floor(srng.random(si.shape[0]) * (hi_s[sr] - lo_s[sr])
                                         ).astype(np.int64)
                samples = {"ts": ts, "seg": sr, "dev": hp["dev"][si],
                           "in_if": hp["in_if"][si], "out_if": hp["out_if"][si],
                           "ttl": hp["ttl"][si], "eth_src": hp["eth_src"][si],
                           "eth_dst": hp["eth_dst"][si], "hop": hp["hop"][si]}
            self._render(samples if nrows(samples) else {}, ao, srng, s0, s1, a, b,
                         pool_before, din)
        self.active = take(act, np.nonzero(act["t1"] > b)[0]) if nrows(act) else {}
        if (b - self.t_start) % self.I == 0:
            self._poll(b)

    def _render(self, s: Table, ao: Table, rng: np.random.Generator, s0: int, s1: int,
                a: int, b: int, pool_before: NDArray[np.uint64], din: I64) -> None:
        """Samples of the slice ``[s0, s1)`` of the interval ``[a, b)`` (and the counter
        datagrams due before ``s1``) -> datagrams in the pcap."""
        p, fab = self.p, self.fab
        n = nrows(s)
        hdr = np.zeros((n, HDR), np.uint8)
        hl = np.zeros(n, np.int64)
        fs: dict[str, Any] = {}
        if n:
            # one int64 key (agent, time in the slice) sorts faster than a lexsort
            rel = s["ts"] - s0
            o = np.argsort((s["dev"] << 42) | rel, kind="stable")
            s = take(s, o)
            sr = s["seg"]
            # sample sequence numbers per data source (the ingress interface)
            o2 = np.argsort((s["in_if"] << 42) | (s["ts"] - s0), kind="stable")
            src_sorted = s["in_if"][o2]
            starts = np.concatenate([[0], np.nonzero(np.diff(src_sorted))[0] + 1])
            rank = np.arange(n) - np.repeat(starts, np.diff(np.concatenate([starts, [n]])))
            seq = np.empty(n, np.int64)
            seq[o2] = self.fseq[src_sorted] + rank + 1
            self.fseq += np.bincount(s["in_if"], minlength=fab.n_ifs)
            frac = (s["ts"] - a) / max(1, b - a)
            pool = (pool_before[s["in_if"]].astype(np.int64)
                    + np.floor(din[s["in_if"]] * frac).astype(np.int64))
            fh, th = ao["from_host"][sr], ao["to_host"][sr]
            wire = np.zeros(n, np.int64)
            proto = ao["proto"][sr]
            sport = np.where(proto == 1, ao["conv"][sr] & 0xFFFF, ao["sport"][sr])
            build_headers(
                hdr, hl, wire, s["eth_src"], s["eth_dst"], fab.ipv6,
                fab.host_vtep[fh], fab.host_vtep[th], s["ttl"], ao["encap"][sr],
                Hh.tunnel_sport(ao["th"][sr]), ao["vni"][sr], ao["th"][sr],
                rng.integers(0, 65536, n), ao["mpls"][sr], ao["seg_src_mac"][sr],
                ao["seg_dst_mac"][sr], ao["src_ip"][sr], ao["dst_ip"][sr], proto, sport,
                ao["dport"][sr], np.where(ao["reverse"][sr] == 1, 0, 8),
                ao["frame"][sr], rng.integers(0, 2**32, n), rng.integers(0, 65536, n),
                np.zeros(n, np.int64))
            fs = {"seq": seq, "src": fab.if_index[s["in_if"]],
                  "rate": np.full(n, p.sampling_rate, np.int64), "pool": pool,
                  "in": fab.if_index[s["in_if"]], "out": fab.if_index[s["out_if"]],
                  "flen": wire + 4, "hl": hl}
            size = flow_sample_size(hl, self.dev_expanded[s["dev"]])
            g = group_datagrams(s["dev"], s["ts"], size, DATAGRAM_BUDGET - 28,
                                round(p.flush_interval * NS))
            first = np.concatenate([[0], np.nonzero(np.diff(g))[0] + 1]).astype(np.int64)
            last = np.concatenate([first[1:], [n]]) - 1
            f_dg = {"dev": s["dev"][first], "ts": np.minimum(s["ts"][last] + 100_000, s1 - 1),
                    "first": first, "count": last - first + 1,
                    "kind": np.zeros(first.shape[0], np.int64)}
        else:
            f_dg = {"dev": np.zeros(0, np.int64), "ts": np.zeros(0, np.int64),
                    "first": np.zeros(0, np.int64), "count": np.zeros(0, np.int64),
                    "kind": np.zeros(0, np.int64)}
            fs = {k: np.zeros(0, np.int64) for k in ("seq", "src", "rate", "pool", "in", "out",
                                                    "flen", "hl")}
        cs = self.pending
        due = cs["ts"] < s1 if cs is not None else None
        if cs is not None and due is not None and due.any():
            c_dg = {"dev": cs["dev"][due], "ts": cs["ts"][due], "first": cs["first"][due],
                    "count": cs["count"][due], "kind": np.ones(int(due.sum()), np.int64)}
            dg = concat([f_dg, c_dg])
            if due.all():
                self.pending = None
            else:
                rest = ~due
                self.pending = dict(cs, dev=cs["dev"][rest], ts=cs["ts"][rest],
                                    first=cs["first"][rest], count=cs["count"][rest])
        else:
            dg = f_dg
        if cs is None or due is None or not due.any():
            cs = {"seq": np.zeros(0, np.int64), "ifindex": np.zeros(0, np.int64),
                  "speed": np.zeros(0, np.uint64), "vals": np.zeros((0, 8), np.uint64),
                  "name": np.zeros((0, self.if_name_bytes.shape[1]), np.uint8),
                  "name_len": np.zeros(0, np.int64)}
        nd = nrows(dg)
        # datagram sequence numbers per agent, in time order
        o = np.lexsort((dg["kind"], dg["ts"], dg["dev"]))
        dev_sorted = dg["dev"][o]
        starts = np.concatenate([[0], np.nonzero(np.diff(dev_sorted))[0] + 1]).astype(np.int64)
        rank = np.arange(nd) - np.repeat(starts, np.diff(np.concatenate([starts, [nd]])))
        seq = np.empty(nd, np.int64)
        seq[o] = self.dseq[dev_sorted] + rank + 1
        self.dseq += np.bincount(dg["dev"], minlength=fab.n_devices)
        dg["seq"] = seq
        keep = np.ones(nd, np.bool_)
        for i, ev in self.outage:
            dv = ev.info["dev"]
            assert ev.t_to is not None
            lost = (dg["dev"] == dv) & (dg["ts"] >= ev.t_from) & (dg["ts"] < ev.t_to)
            if lost.any():
                st = self.ev_stats[i]
                st["datagrams_lost"] = st.get("datagrams_lost", 0) + int(lost.sum())
                fl = lost & (dg["kind"] == 0)
                cl = lost & (dg["kind"] == 1)
                st["flow_samples_lost"] = st.get("flow_samples_lost", 0) + int(
                    dg["count"][fl].sum())
                st["counter_samples_lost"] = st.get("counter_samples_lost", 0) + int(
                    dg["count"][cl].sum())
                ls = dg["seq"][lost]
                st["seq_first_lost"] = min(st.get("seq_first_lost", 1 << 62), int(ls.min()))
                st["seq_last_lost"] = max(st.get("seq_last_lost", 0), int(ls.max()))
                keep &= ~lost
                self.res.datagrams_lost += int(lost.sum())
                self.res.samples_lost += int(dg["count"][fl].sum())
        if self.p.truth_samples and n:
            dg_of = np.repeat(np.arange(nrows(f_dg)), f_dg["count"])
            self.w["samples"].write({
                "ts_ns": s["ts"], "device": (s["dev"], self.d_dev),
                "in_if": fab.if_index[s["in_if"]], "out_if": fab.if_index[s["out_if"]],
                "flow_id": ao["fid"][s["seg"]], "span": ao["span"][s["seg"]],
                "seg": ao["seg"][s["seg"]], "hop": s["hop"], "sample_seq": fs["seq"],
                "datagram_seq": dg["seq"][dg_of], "lost": ~keep[dg_of],
            })
        dg = take(dg, np.nonzero(keep)[0])
        nd = nrows(dg)
        if nd == 0:
            self.res.samples += n
            return
        o = np.lexsort((dg["dev"], dg["ts"]))
        dg = take(dg, o)
        is_flow = dg["kind"] == 0
        ssize = np.zeros(nd, np.int64)
        if n:
            fsz = flow_sample_size(fs["hl"], self.dev_expanded[s["dev"]])
            cf = np.concatenate([[0], np.cumsum(fsz)])
            fsum = cf[dg["first"] + dg["count"]] - cf[dg["first"]]
            ssize = np.where(is_flow, fsum, 0)
        if cs["seq"].shape[0]:
            csz = counter_sample_size(cs["name_len"], self.dev_expanded[
                self.fab.if_dev[self.if_order]])
            cc = np.concatenate([[0], np.cumsum(csz)])
            fi = np.where(is_flow, 0, dg["first"])
            ci = np.where(is_flow, 0, dg["first"] + dg["count"])
            ssize = np.where(is_flow, ssize, cc[ci] - cc[fi])
        total = int((ssize + 28 + 42).sum())
        buf = np.zeros(total, np.uint8)
        off = np.zeros(nd, np.int64)
        flen_out = np.zeros(nd, np.int64)
        uptime = (dg["ts"] - self.boot[dg["dev"]]) // 1_000_000
        used = render_datagrams(
            buf, off, flen_out, dg["dev"], dg["seq"], uptime, dg["kind"], dg["first"],
            dg["count"], fab.dev_agent, fab.dev_mac, self.dev_expanded, self.collector,
            COLLECTOR_MAC, fs["seq"], fs["src"], fs["rate"], fs["pool"], fs["in"], fs["out"],
            fs["flen"], fs["hl"], hdr, cs["seq"], cs["ifindex"], cs["speed"], cs["vals"],
            cs["name"], cs["name_len"])
        assert used == total, (used, total)
        self.pcap.write_batch(buf, off, flen_out, None, dg["ts"])
        self.res.datagrams += nd
        self.res.samples += n
        self.res.sflow_bytes += total + 16 * nd

    def finish(self) -> None:
        if self.pending is not None:
            end = int(self.pending["ts"].max()) + 1
            self._render({}, {}, np.random.default_rng([self.p.seed, 9]), self.t_end,
                         end, self.t_end, end, self.cnt[:, C_IN_PKT].copy(),
                         np.zeros(self.fab.n_ifs, np.int64))
        self.pcap.close()
        for w in self.w.values():
            w.close()
        if self.hostcap is not None:
            self.hostcap.close()

    # ------------------------------------------------------------------ truth.json
    def truth_json(self) -> dict[str, Any]:
        from fabricscope.timeutil import format_ns

        fab, p = self.fab, self.p
        events = []
        for i, ev in enumerate(fab.events):
            info = {k: v for k, v in ev.info.items() if k not in ("interfaces", "dev")}
            d: dict[str, Any] = {"type": ev.kind, "time": format_ns(ev.t_from, 0)}
            if ev.t_to is not None:
                d["until"] = format_ns(ev.t_to, 0)
            d.update(info)
            d.update(self.ev_stats[i])
            events.append(d)
        featured = []
        for k, fx in enumerate(fab.featured):
            src = ipv4_str(fx.get("client_ip", int(fab.ep_ip[fx["src_ep"]])))
            dst = ipv4_str(int(fab.ep_ip[fx["dst_ep"]]))
            featured.append({
                "name": fx["name"], "flow_id": 2 * k, "reverse_flow_id": 2 * k + 1,
                "src": src, "dst": dst, "sport": fx["sport"], "dport": fx["dport"],
                "proto": fx["proto"], "tenant": fab.tenant_name[int(fab.ep_tenant[
                    fx["dst_ep"]])], "vni": int(fab.net_vni[fab.ep_net[fx["dst_ep"]]]),
                "src_endpoint": fab.ep_name[fx["src_ep"]],
                "dst_endpoint": fab.ep_name[fx["dst_ep"]],
            })
        return {
            "format": TRUTH_FORMAT,
            "generator": "fabricscope sim",
            "params": p.to_dict(),
            "start": format_ns(self.t_start, 0),
            "end": format_ns(self.t_end, 0),
            "collector": {"ip": p.collector, "port": SFLOW_PORT},
            "sampling_rate": p.sampling_rate,
            "counter_interval": p.counter_interval,
            "underlay": p.underlay,
            "hash": {
                "function": "hash_words(seed, words): h = seed; for w in words: "
                            "h = fmix32(h ^ w) (MurmurHash3 finaliser, mod 2^32)",
                "tunnel_seed": Hh.TUNNEL_SEED,
                "tunnel_words": "inner src, inner dst, proto, sport << 16 | dport "
                                "(ICMP: 0)",
                "tunnel_sport": f"{Hh.TUNNEL_PORT_BASE} + hash % {Hh.TUNNEL_PORT_SPAN}",
                "nvgre_flow_id": "hash & 0xFF",
                "ecmp_seed": Hh.ECMP_SEED,
                "ecmp": "spine = hash_words(ecmp_seed ^ leaf_index, outer src words, "
                        "outer dst words, ip proto, sport << 16 | dport or GRE key) "
                        "% spines",
                "vnf_seed": Hh.VNF_SEED,
                "vnf": "member = hash_words(vnf_seed, lo ip, hi ip, proto, "
                       "lo port << 16 | hi port) % group size",
            },
            "devices": [
                {"name": fab.dev_name[d], "role": fab.dev_role[d], "index": d if d <
                 fab.n_spines else d - fab.n_spines,
                 "agent": ipv4_str(int(fab.dev_agent[d])),
                 "flow_sample_format": "expanded" if self.dev_expanded[d] else "compact",
                 "datagrams": int(self.dseq[d])}
                for d in range(fab.n_devices)],
            "chains": [
                {"name": c.name, "chain_id": c.chain_id, "tenant": fab.tenant_name[c.tenant],
                 "versions": [{"from": format_ns(v.t_from, 0) if v.t_from else None,
                               "to": format_ns(v.t_to, 0) if v.t_to else None,
                               "groups": [[fab.vnfs[i].name for i in g] for g in v.groups]}
                              for v in c.versions]} for c in fab.chains],
            "vnfs": [{"name": v.name, "kind": v.kind, "host": fab.host_name[v.host],
                      "tenant": fab.tenant_name[v.tenant]} for v in fab.vnfs],
            "featured": featured,
            "events": events,
            "counts": {k: v for k, v in self.res.to_dict().items()
                       if k not in ("out_dir", "files", "seconds", "bytes_written",
                                    "sflow_bytes")},
            "files": {k: v.name for k, v in self.files.items()},
        }


def simulate(out_dir: str | Path, params: SimParams | None = None, *,
             progress: ProgressFn | None = None) -> SimResult:
    """Write a simulated fabric to ``out_dir``: inventory.yaml, sflow.pcap, truth.json and
    the truth tables (see docs/sim.md). Deterministic for ``params.seed``."""
    t0 = time.perf_counter()
    p = (params or SimParams()).validated()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(out, p, progress)
    write_inventory(run.fab, run.files["inventory"])
    run._poll(run.t_start)
    try:
        for e in range(run.n_epochs):
            run.epoch(e)
            if progress is not None:
                progress(e + 1, run.n_epochs, run.res.samples)
    finally:
        run.finish()
    res = run.res
    res.hosts = run.fab.n_hosts
    res.devices = run.fab.n_devices
    res.endpoints = len(run.fab.ep_name)
    res.params = p.to_dict()
    run.files["truth"].write_text(json.dumps(run.truth_json(), indent=1) + "\n", "utf-8")
    res.bytes_written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and (
        f in run.files.values() or f.parent == run.files.get("hosts")))
    res.seconds = time.perf_counter() - t0
    return res

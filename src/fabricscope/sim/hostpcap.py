"""Full packet captures at the hosts' NICs (``--host-pcaps``): every tunnel packet the host
sends (outer TTL 64, to its leaf) or receives (after the fabric's routers), one pcap per
host, cut to the snap length (the payload is zeros).

Packet k (0-based) of a flow leaves at ``start + ceil((k + 1) * (end - start) / packets)``:
the same even pacing the counters and the sampling use. Big: every packet, not a sample;
meant for small fabrics, a few hosts, or short runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fabricscope.errors import UsageError
from fabricscope.sim import hashing as Hh
from fabricscope.sim.fabric import Fabric
from fabricscope.sim.sflow_render import HDR, build_headers
from fabricscope.sim.traffic import Table, cum_packets

MAX_HOST_FILES = 512


class HostCaptures:
    def __init__(self, fab: Fabric, directory: Path, hosts: tuple[str, ...],
                 snaplen: int) -> None:
        from fabricscope.capture.writer import PcapWriter

        self.fab = fab
        names = fab.host_name
        if "all" in hosts:
            sel = list(range(len(names)))
        else:
            pos = {n: i for i, n in enumerate(names)}
            sel = []
            for h in hosts:
                if h not in pos:
                    raise UsageError(f"--pcap-hosts: no host {h!r} in this fabric "
                                     f"(hosts are {names[0]} .. {names[-1]})")
                sel.append(pos[h])
        if len(sel) > MAX_HOST_FILES:
            raise UsageError(f"--host-pcaps: {len(sel)} hosts; at most {MAX_HOST_FILES} "
                             "capture files (name some with --pcap-hosts)")
        directory.mkdir(parents=True, exist_ok=True)
        self.snaplen = min(snaplen, HDR)
        self.selected = np.zeros(len(names), np.bool_)
        self.selected[sel] = True
        self.writers: dict[int, Any] = {
            h: PcapWriter(directory / f"{names[h]}.pcap", linktype=1, nanosecond=True,
                          snaplen=self.snaplen) for h in sorted(sel)}

    def epoch(self, ao: Table, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator
              ) -> int:
        """Write the packets of segments ``ao`` in their windows ``[lo, hi)``; returns the
        number of frames written."""
        fab = self.fab
        fh, th = ao["from_host"], ao["to_host"]
        rows = np.nonzero(self.selected[fh] | self.selected[th])[0]
        if rows.shape[0] == 0:
            return 0
        c0 = cum_packets(ao, lo)[rows]
        c1 = cum_packets(ao, hi)[rows]
        n = c1 - c0
        r = np.repeat(rows, n)
        k = np.repeat(c0, n) + (np.arange(r.shape[0]) - np.repeat(np.cumsum(n) - n, n))
        s, e, pk = ao["start"][r], ao["end"][r], ao["packets"][r]
        ts = s + np.ceil((k + 1) * ((e - s) / pk)).astype(np.int64)
        # one copy as sent (at the source host) and one as received (at the destination)
        side_tx = np.concatenate([np.ones(r.shape[0], np.bool_), np.zeros(r.shape[0], np.bool_)])
        r2 = np.concatenate([r, r])
        k2 = np.concatenate([k, k])
        ts2 = np.concatenate([ts, ts])
        host = np.where(side_tx, fh[r2], th[r2])
        keep = self.selected[host]
        r2, ts2, host, side_tx, k2 = r2[keep], ts2[keep], host[keep], side_tx[keep], k2[keep]
        m = r2.shape[0]
        if m == 0:
            return 0
        leaf_mac_src = fab.dev_mac[fab.n_spines + fab.host_leaf[fh[r2]]]
        leaf_mac_dst = fab.dev_mac[fab.n_spines + fab.host_leaf[th[r2]]]
        eth_src = np.where(side_tx, fab.host_mac[fh[r2]], leaf_mac_dst).astype(np.uint64)
        eth_dst = np.where(side_tx, leaf_mac_src, fab.host_mac[th[r2]]).astype(np.uint64)
        routers = np.where(ao["nhops"][r2] == 3, 3, 1)
        ttl = np.where(side_tx, 64, 64 - routers).astype(np.int64)
        hdr = np.zeros((m, HDR), np.uint8)
        hl = np.zeros(m, np.int64)
        wire = np.zeros(m, np.int64)
        proto = ao["proto"][r2]
        sport = np.where(proto == 1, ao["conv"][r2] & 0xFFFF, ao["sport"][r2])
        build_headers(
            hdr, hl, wire, eth_src, eth_dst, fab.ipv6, fab.host_vtep[fh[r2]],
            fab.host_vtep[th[r2]], ttl, ao["encap"][r2], Hh.tunnel_sport(ao["th"][r2]),
            ao["vni"][r2], ao["th"][r2], rng.integers(0, 65536, m), ao["mpls"][r2],
            ao["seg_src_mac"][r2], ao["seg_dst_mac"][r2], ao["src_ip"][r2], ao["dst_ip"][r2],
            proto, sport, ao["dport"][r2], np.where(ao["reverse"][r2] == 1, 0, 8),
            ao["frame"][r2],
            (ao["th"][r2].astype(np.int64) * 7919 + k2 * np.maximum(ao["frame"][r2] - 54, 1)),
            (ao["th"][r2].astype(np.int64) + k2) & 0xFFFF,
            np.zeros(m, np.int64))
        order = np.lexsort((ts2, host))
        host_s = host[order]
        bounds = np.concatenate([[0], np.nonzero(np.diff(host_s))[0] + 1, [m]])
        flat = hdr.reshape(-1)
        for j in range(bounds.shape[0] - 1):
            idx = order[bounds[j]: bounds[j + 1]]
            w = self.writers[int(host_s[bounds[j]])]
            w.write_batch(flat, idx * HDR, np.minimum(hl[idx], self.snaplen), wire[idx],
                          ts2[idx])
        return int(m)

    def close(self) -> None:
        for w in self.writers.values():
            w.close()

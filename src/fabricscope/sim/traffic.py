"""Tenant traffic: conversations -> directional flows -> spans -> tunnel segments -> hops.

Everything is NumPy columns (a :data:`Table` is a dict of equal-length arrays); nothing
here makes a Python object per flow.

- A **conversation** starts at a uniform time in its epoch. Kinds (``KIND_NAMES``):
  inbound ``https``/``http`` from an external client through the tenant's gateway to a web
  VM, ``east-west`` (web -> app tcp/8080, app -> db tcp/5432), ``bulk`` replication
  (tcp/873), ``dns`` (udp/53), ``stream`` (udp/5004, one way), ``ping`` (ICMP echo), and
  the events' ``backup`` transfers. TCP, DNS and ping conversations have a reverse flow.
- **Sizes** are heavy-tailed: Pareto payload bytes (shape 1.05..1.5, capped), lognormal
  durations, at least what the flow's rate cap needs. A flow sends ``packets`` frames of
  ``frame`` bytes (inner Ethernet frame, no FCS) evenly over ``[start, end)``: by time t it
  has sent ``floor(packets * (t - start) / (end - start))``.
- A flow's **spans** split it where its path changes (the VM migration, the VNF
  insertion); each span has ``len(vnfs) + 1`` **segments** (host -> VNF host -> ... ->
  destination host) and each segment 0 (same host), 1 (same leaf) or 3 hops.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from fabricscope.sim import hashing as H
from fabricscope.sim.fabric import ENCAP_CODE, Fabric, ipv4, outer_proto_x

Table = dict[str, NDArray]  # type: ignore[type-arg]
I64 = NDArray[np.int64]

KIND_NAMES = ("https", "http", "east-west", "bulk", "dns", "stream", "ping", "backup",
              "steady")
K_HTTPS, K_HTTP, K_EW, K_BULK, K_DNS, K_STREAM, K_PING, K_BACKUP, K_STEADY = range(9)
NS = 1_000_000_000
INF = np.iinfo(np.int64).max

# outer overhead (bytes added to the inner frame) by (encap, ipv6)
OVERHEAD = {(0, False): 50, (1, False): 50, (2, False): 42,
            (0, True): 70, (1, True): 70, (2, True): 62}


def take(t: Table, idx: NDArray) -> Table:  # type: ignore[type-arg]
    return {k: v[idx] for k, v in t.items()}


def concat(tables: list[Table]) -> Table:
    tables = [t for t in tables if t]
    if not tables:
        return {}
    if len(tables) == 1:
        return tables[0]
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


def nrows(t: Table) -> int:
    return 0 if not t else len(next(iter(t.values())))


def _pareto(rng: np.random.Generator, n: int, alpha: float, xm: float,
            cap: float) -> NDArray[np.float64]:
    return np.minimum((rng.pareto(alpha, n) + 1.0) * xm, cap)


def _tcp_shape(payload: NDArray[np.float64]) -> tuple[I64, I64]:
    pk = np.maximum(1, np.ceil(payload / 1460.0)).astype(np.int64)
    frame = 54 + np.minimum(1460, np.ceil(payload / pk)).astype(np.int64)
    return pk, frame


class FlowIds:
    def __init__(self) -> None:
        self.next_flow = 0
        self.next_conv = 0

    def take(self, n: int) -> I64:
        out = np.arange(self.next_flow, self.next_flow + n, dtype=np.int64)
        self.next_flow += n
        return out

    def convs(self, n: int) -> I64:
        out = np.arange(self.next_conv, self.next_conv + n, dtype=np.int64)
        self.next_conv += n
        return out


class TrafficGen:
    """Draws the conversations of each epoch and turns them into flows and segments."""

    def __init__(self, fab: Fabric) -> None:
        self.fab = fab
        p = fab.params
        self.p = p
        self.ids = FlowIds()
        self.t_start = p.start_ns
        self.t_end = p.start_ns + p.duration_ns
        T = p.tenants
        # flattened role lists: role_eps[off[t, r] : off[t, r] + cnt[t, r]]
        self.role_cnt = np.array([[len(fab.tenant_role_eps[t][r]) for r in range(3)]
                                  for t in range(T)], np.int64)
        flat = [fab.tenant_role_eps[t][r] for t in range(T) for r in range(3)]
        self.role_eps = np.concatenate(flat) if flat else np.zeros(0, np.int64)
        self.role_off = (np.cumsum(self.role_cnt.reshape(-1)) - self.role_cnt.reshape(-1)
                         ).reshape(T, 3)
        names, weights = zip(*p.mix, strict=True)
        w = np.array(weights, np.float64)
        self.mix_names = names
        self.mix_p = w / w.sum()
        # VNF lookups
        nv = len(fab.vnfs)
        self.vnf_host = np.array([v.host for v in fab.vnfs] or [0], np.int64)[:max(nv, 1)]
        self.vnf_in_mac = np.array([fab.ep_mac[v.ep_in] for v in fab.vnfs] or [0], np.uint64)
        self.vnf_out_mac = np.array([fab.ep_mac[v.ep_out] for v in fab.vnfs] or [0],
                                    np.uint64)
        self.max_groups = max([len(v.groups) for c in fab.chains for v in c.versions] or [0])

    # ------------------------------------------------------------------ conversations
    def _pick(self, rng: np.random.Generator, tenant: I64, role: I64) -> I64:
        cnt = self.role_cnt[tenant, role]
        off = self.role_off[tenant, role]
        k = np.floor(rng.random(tenant.shape[0]) * cnt).astype(np.int64)
        out: I64 = self.role_eps[off + np.minimum(k, cnt - 1)]
        return out

    def conversations(self, rng: np.random.Generator, n: int, a: int, b: int) -> Table:
        """``n`` conversations starting in [a, b): both directions as flow rows."""
        fab, p = self.fab, self.p
        if n == 0:
            return {}
        proto_name = np.array(self.mix_names)[rng.choice(len(self.mix_p), n, p=self.mix_p)]
        u = rng.random(n)
        kind = np.full(n, K_EW, np.int64)
        tcp = proto_name == "tcp"
        udp = proto_name == "udp"
        icmp = proto_name == "icmp"
        kind[tcp & (u < 0.22)] = K_HTTPS
        kind[tcp & (u >= 0.22) & (u < 0.30)] = K_HTTP
        kind[tcp & (u >= 0.30) & (u < 0.92)] = K_EW
        kind[tcp & (u >= 0.92)] = K_BULK
        kind[udp & (u < 0.6)] = K_DNS
        kind[udp & (u >= 0.6)] = K_STREAM
        kind[icmp] = K_PING
        tenant = rng.integers(0, p.tenants, n)
        start = a + np.floor(rng.random(n) * (b - a)).astype(np.int64)

        src_role = np.zeros(n, np.int64)
        dst_role = np.zeros(n, np.int64)
        ew_up = rng.random(n) < 0.5
        src_role[kind == K_EW] = np.where(ew_up[kind == K_EW], 0, 1)
        dst_role[kind == K_EW] = src_role[kind == K_EW] + 1
        src_role[kind == K_BULK] = 2
        dst_role[kind == K_BULK] = 2
        r = rng.integers(0, 3, n)
        src_role[kind == K_DNS] = r[kind == K_DNS]
        dst_role[kind == K_DNS] = 1
        src_role[kind == K_STREAM] = 1
        dst_role[kind == K_STREAM] = 0
        src_role[kind == K_PING] = r[kind == K_PING]
        dst_role[kind == K_PING] = (r[kind == K_PING] + 1) % 3
        src_ep = self._pick(rng, tenant, src_role)
        dst_ep = self._pick(rng, tenant, dst_role)
        ns = (kind == K_HTTPS) | (kind == K_HTTP)
        src_ep[ns] = fab.tenant_gw[tenant[ns]]
        # bulk replication between two different VMs (db -> app when there is one db)
        same = dst_ep == src_ep
        if same.any():
            dst_ep[same] = self._pick(rng, tenant[same], np.ones(int(same.sum()), np.int64))
        src_ip = fab.ep_ip[src_ep].astype(np.uint32)
        client_net = np.where(rng.random(n) < 0.5, ipv4("198.51.100.0"), ipv4("203.0.113.0"))
        client = (client_net + rng.integers(2, 255, n)).astype(np.uint32)
        src_ip[ns] = client[ns]
        dst_ip = fab.ep_ip[dst_ep].astype(np.uint32)
        proto = np.where(tcp, 6, np.where(udp, 17, 1)).astype(np.int64)
        sport = rng.integers(32768, 61000, n).astype(np.int64)
        dport = np.select(
            [kind == K_HTTPS, kind == K_HTTP, (kind == K_EW) & (dst_role == 1),
             (kind == K_EW) & (dst_role == 2), kind == K_BULK, kind == K_DNS,
             kind == K_STREAM],
            [443, 80, 8080, 5432, 873, 53, 5004], 0).astype(np.int64)
        sport[icmp] = 0

        # sizes (payload bytes) and shapes
        fwd_pk = np.ones(n, np.int64)
        fwd_fr = np.full(n, 98, np.int64)
        rev_pk = np.zeros(n, np.int64)
        rev_fr = np.full(n, 66, np.int64)
        dur = np.exp(rng.normal(np.log(0.5), 1.6, n))
        rate_cap = np.minimum(p.host_speed * 0.4, 10 ** rng.uniform(7.0, 9.3, n))

        def tcp_conv(mask: NDArray[np.bool_], req: tuple[float, float, float],
                     resp: tuple[float, float, float]) -> None:
            m = int(mask.sum())
            if not m:
                return
            a1, b1 = _tcp_shape(_pareto(rng, m, *req))
            a2, b2 = _tcp_shape(_pareto(rng, m, *resp))
            fwd_pk[mask], fwd_fr[mask], rev_pk[mask], rev_fr[mask] = a1, b1, a2, b2

        tcp_conv(ns, (1.5, 400.0, 1e6), (1.1, 4000.0, 1e9))
        tcp_conv(kind == K_EW, (1.5, 300.0, 1e6), (1.15, 2000.0, 5e8))
        bulk = kind == K_BULK
        if bulk.any():
            a1, b1 = _tcp_shape(_pareto(rng, int(bulk.sum()), 1.1, 1e6, 8e9))
            fwd_pk[bulk], fwd_fr[bulk] = a1, b1
            rev_pk[bulk] = np.maximum(1, a1 // 2)
            rev_fr[bulk] = 66
        dns = kind == K_DNS
        m = int(dns.sum())
        if m:
            fwd_pk[dns] = 1
            fwd_fr[dns] = rng.integers(72, 110, m)
            rev_pk[dns] = 1
            rev_fr[dns] = rng.integers(90, 400, m)
            dur[dns] = 0.002
        st = kind == K_STREAM
        m = int(st.sum())
        if m:
            by = _pareto(rng, m, 1.2, 2e5, 2e9)
            fwd_pk[st] = np.maximum(1, np.ceil(by / 1200.0)).astype(np.int64)
            fwd_fr[st] = 1242
            rate = 10 ** rng.uniform(6.0, 7.3, m)
            dur[st] = fwd_pk[st] * 1242 * 8 / rate
        pg = kind == K_PING
        m = int(pg.sum())
        if m:
            k = rng.integers(1, 30, m)
            fwd_pk[pg] = k
            rev_pk[pg] = k
            fwd_fr[pg] = 98
            rev_fr[pg] = 98
            dur[pg] = k.astype(np.float64)
        bits = np.maximum(fwd_pk * fwd_fr, rev_pk * rev_fr) * 8.0
        tcpish = tcp | st
        dur = np.where(tcpish & ~st, np.maximum(dur, bits / rate_cap), dur)
        dur = np.maximum(dur, np.maximum(fwd_pk, rev_pk) * 1e-5)
        dur = np.maximum(dur, 1e-3)
        end = start + np.ceil(dur * NS).astype(np.int64)
        chain = np.where((kind == K_HTTPS), fab.tenant_chain[tenant], -1).astype(np.int64)
        conv = self.ids.convs(n)
        return self._flows(conv, kind, tenant, src_ep, dst_ep, src_ip, dst_ip, proto, sport,
                           dport, start, end, fwd_pk, fwd_fr, rev_pk, rev_fr, chain,
                           np.zeros(n, np.int64))

    def _flows(self, conv: I64, kind: I64, tenant: I64, src_ep: I64, dst_ep: I64,
               src_ip: NDArray[np.uint32], dst_ip: NDArray[np.uint32], proto: I64,
               sport: I64, dport: I64, start: I64, end: I64, fwd_pk: I64, fwd_fr: I64,
               rev_pk: I64, rev_fr: I64, chain: I64, featured: I64) -> Table:
        """Forward flows, and reverse flows where ``rev_pk > 0``, clipped to the run."""
        fab = self.fab
        n = conv.shape[0]
        has_rev = rev_pk > 0
        ri = np.nonzero(has_rev)[0]
        nr = ri.shape[0]
        fid_f = self.ids.take(n)
        fid_r = self.ids.take(nr)
        rtt = 200_000
        f: Table = {
            "fid": np.concatenate([fid_f, fid_r]),
            "conv": np.concatenate([conv, conv[ri]]),
            "rev_of": np.concatenate([np.full(n, -1, np.int64), fid_f[ri]]),
            "kind": np.concatenate([kind, kind[ri]]),
            "tenant": np.concatenate([tenant, tenant[ri]]),
            "src_ep": np.concatenate([src_ep, dst_ep[ri]]),
            "dst_ep": np.concatenate([dst_ep, src_ep[ri]]),
            "src_ip": np.concatenate([src_ip, dst_ip[ri]]).astype(np.uint32),
            "dst_ip": np.concatenate([dst_ip, src_ip[ri]]).astype(np.uint32),
            "proto": np.concatenate([proto, proto[ri]]),
            "sport": np.concatenate([sport, dport[ri]]),
            "dport": np.concatenate([dport, sport[ri]]),
            "start": np.concatenate([start, start[ri] + rtt]),
            "end": np.concatenate([end, end[ri] + rtt]),
            "packets": np.concatenate([fwd_pk, rev_pk[ri]]),
            "frame": np.concatenate([fwd_fr, rev_fr[ri]]),
            "chain": np.concatenate([chain, chain[ri]]),
            "reverse": np.concatenate([np.zeros(n, np.int64), np.ones(nr, np.int64)]),
            "featured": np.concatenate([featured, featured[ri]]),
        }
        f["src_mac"] = fab.ep_mac[f["src_ep"]]
        f["dst_mac"] = fab.ep_mac[f["dst_ep"]]
        # DVR: the tunnel carries the destination network's VNI (north-south replies: the
        # gateway's network)
        f["net"] = fab.ep_net[f["dst_ep"]]
        f["th"] = H.tunnel_hash(f["src_ip"], f["dst_ip"], f["proto"], f["sport"], f["dport"])
        # clip to the run: keep the rate, drop what falls after the end
        s, e, pk = f["start"], f["end"], f["packets"]
        e2 = np.minimum(e, self.t_end)
        keep = s < self.t_end
        frac = (e2 - s) / np.maximum(e - s, 1)
        f["packets"] = np.maximum(1, np.floor(pk * frac)).astype(np.int64)
        f["end"] = np.maximum(e2, s + 1)
        if not keep.all():
            f = take(f, np.nonzero(keep)[0])
        return f

    def featured_flows(self) -> Table:
        """The long-lived flows that make the demo readable (flag ``featured``)."""
        fab, p = self.fab, self.p
        out = []
        s = self.t_start + NS // 2
        e = self.t_end
        dur_s = (e - s) / NS
        for i, fx in enumerate(fab.featured):
            rate = p.featured_mbps * 1e6 / (1 if i == 0 else 2)
            pk = max(1, int(rate * dur_s / (1514 * 8)))
            rev = max(1, pk // 4)
            src_ip = fx.get("client_ip", int(fab.ep_ip[fx["src_ep"]]))
            t = int(fab.ep_tenant[fx["dst_ep"]])
            chain = int(fab.tenant_chain[t]) if fx["dport"] == 443 else -1
            one = np.ones(1, np.int64)
            out.append(self._flows(
                self.ids.convs(1), one * (K_HTTPS if fx["dport"] == 443 else K_EW), one * t,
                one * fx["src_ep"], one * fx["dst_ep"], np.array([src_ip], np.uint32),
                np.array([fab.ep_ip[fx["dst_ep"]]], np.uint32), one * fx["proto"],
                one * fx["sport"], one * fx["dport"], one * s, one * e, one * pk,
                one * 1514, one * rev, one * 1514, one * chain, one * (i + 1)))
        return concat(out)

    def steady_flows(self, rng: np.random.Generator) -> Table:
        """One long-lived flow per VM for the whole run (web -> app, app -> db, db -> db
        replication), lognormal rates averaging ``steady_mbps`` per hypervisor; the
        replies are ACKs (one 66-byte frame per two data frames)."""
        fab, p = self.fab, self.p
        T = p.tenants
        src = np.concatenate([fab.tenant_role_eps[t][r] for t in range(T) for r in range(3)])
        n = src.shape[0]
        if n == 0:
            return {}
        tenant = fab.ep_tenant[src]
        role = fab.net_role[fab.ep_net[src]]
        dst_role = np.minimum(role + 1, 2)
        dst = self._pick(rng, tenant, dst_role)
        same = dst == src
        if same.any():
            dst[same] = self._pick(rng, tenant[same], np.ones(int(same.sum()), np.int64))
        still = dst == src
        if still.any():
            dst[still] = self._pick(rng, tenant[still], np.zeros(int(still.sum()), np.int64))
        n_hv = p.leaves * p.hosts_per_leaf
        mean = p.steady_mbps * 1e6 * n_hv / n
        sigma = 1.0
        rate = mean * np.exp(rng.normal(-sigma**2 / 2, sigma, n))
        rate = np.minimum(rate, 0.5 * p.host_speed)
        start = self.t_start + np.floor(rng.random(n) * 2 * NS).astype(np.int64)
        end = np.full(n, self.t_end, np.int64)
        dur = (end - start) / NS
        pk = np.maximum(1, (rate * dur / (1514 * 8)).astype(np.int64))
        one = np.ones(n, np.int64)
        dport = np.where(dst_role == 2, 5432, 8080).astype(np.int64)
        dport[(role == 2) & (dst_role == 2)] = 873
        return self._flows(
            self.ids.convs(n), one * K_STEADY, tenant, src, dst,
            fab.ep_ip[src].astype(np.uint32), fab.ep_ip[dst].astype(np.uint32), one * 6,
            np.asarray(rng.integers(32768, 61000, n), np.int64), dport, start, end, pk,
            one * 1514, np.maximum(1, pk // 2), one * 66, -one, np.zeros(n, np.int64))

    def backup_flows(self, t0: int, t1: int, spine: int) -> Table:
        """The congestion event's bulk transfers: one per (source, sink) pair, with a source
        port chosen so that the source leaf hashes it onto ``spine``."""
        fab = self.fab
        pairs = fab.backup_pairs
        if not pairs:
            return {}
        cand = np.arange(32768, 61000, dtype=np.int64)
        sports = []
        for a, b in pairs:
            m = cand.shape[0]
            th = H.tunnel_hash(np.full(m, fab.ep_ip[a], np.uint32),
                               np.full(m, fab.ep_ip[b], np.uint32), np.full(m, 6, np.int64),
                               cand, np.full(m, 873, np.int64))
            net = int(fab.ep_net[b])
            oproto, ox = outer_proto_x(np.full(m, fab.net_encap[net], np.int64),
                                       np.full(m, fab.net_vni[net], np.int64), th)
            sp = fab.ecmp(np.full(m, fab.ep_host[a], np.int64),
                          np.full(m, fab.ep_host[b], np.int64), oproto, ox)
            hit = np.nonzero(sp == spine)[0]
            sports.append(int(cand[hit[0]]) if hit.shape[0] else 40000)
        n = len(pairs)
        src = np.array([a for a, _ in pairs], np.int64)
        dst = np.array([b for _, b in pairs], np.int64)
        s, e = t0 + NS // 5, t1 - NS // 5
        enc = int(fab.net_encap[fab.ep_net[dst[0]]])
        flen = 1514 + OVERHEAD[(enc, fab.ipv6)] + 4
        pk = max(1, int(fab.backup_rate * (e - s) / NS / (flen * 8)))
        t = int(fab.ep_tenant[src[0]])
        one = np.ones(n, np.int64)
        return self._flows(
            self.ids.convs(n), one * K_BACKUP, one * t, src, dst,
            fab.ep_ip[src].astype(np.uint32), fab.ep_ip[dst].astype(np.uint32), one * 6,
            np.array(sports, np.int64), one * 873, one * s, one * e, one * pk, one * 1514,
            one * max(1, pk // 2), one * 66, -one, np.zeros(n, np.int64))

    # ------------------------------------------------------------------ paths
    def segments(self, f: Table) -> Table:
        """Flows -> one row per (flow, span, segment) with everything rendering needs."""
        fab = self.fab
        n = nrows(f)
        if n == 0:
            return {}
        start, end = f["start"], f["end"]
        # span boundaries: the migration and the VNF insertion, where they concern the flow
        b = np.full((n, 2), INF, np.int64)
        if fab.mig_ep >= 0:
            m = ((f["src_ep"] == fab.mig_ep) | (f["dst_ep"] == fab.mig_ep)) & (
                start < fab.mig_time) & (fab.mig_time < end)
            b[m, 0] = fab.mig_time
        for ch in fab.chains:
            for v in ch.versions[1:]:
                assert v.t_from is not None
                m = (f["chain"] == ch.index) & (start < v.t_from) & (v.t_from < end)
                b[m, 1] = np.minimum(b[m, 1], v.t_from)
        b.sort(axis=1)
        nspan = 1 + (b < INF).sum(axis=1)
        fi = np.repeat(np.arange(n), nspan)
        span = np.arange(fi.shape[0]) - np.repeat(np.cumsum(nspan) - nspan, nspan)
        bounds = np.concatenate([start[:, None], b, end[:, None]], axis=1)
        # span k of flow i: [bounds[i, k], next bound that is not INF)
        t0 = bounds[fi, span]
        nxt = bounds[fi, span + 1]
        t1 = np.where(nxt == INF, end[fi], nxt)
        sp = take(f, fi)
        sp["span"] = span.astype(np.int64)
        sp["t0"] = t0
        sp["t1"] = t1
        sp["src_host"] = fab.host_at(sp["src_ep"], t0)
        sp["dst_host"] = fab.host_at(sp["dst_ep"], t0)
        ns = fi.shape[0]
        # the VNFs of each span, in the order the flow crosses them
        G = max(self.max_groups, 1)
        vl = np.full((ns, G), -1, np.int64)
        for ch in fab.chains:
            rows = sp["chain"] == ch.index
            if not rows.any():
                continue
            for v in ch.versions:
                r = rows & ((v.t_from is None) | (t0 >= (v.t_from or 0))) & (
                    (v.t_to is None) | (t0 < (v.t_to or 0)))
                idx = np.nonzero(r)[0]
                if idx.shape[0] == 0:
                    continue
                for g, members in enumerate(v.groups):
                    mem = np.array(members, np.int64)
                    k = H.vnf_member(np.full(idx.shape[0], len(members), np.int64),
                                     sp["src_ip"][idx], sp["dst_ip"][idx], sp["proto"][idx],
                                     sp["sport"][idx], sp["dport"][idx])
                    vl[idx, g] = mem[k]
        nv = (vl >= 0).sum(axis=1)
        rev = sp["reverse"] == 1
        if (rev & (nv > 1)).any():
            # the reverse direction crosses the VNFs backwards (symmetric chains)
            j = np.arange(G)[None, :]
            k = np.where(rev, nv, 0)[:, None]
            src_col = np.where(j < k, k - 1 - j, j)
            vl = np.take_along_axis(vl, src_col, axis=1)
        nseg = nv + 1
        si = np.repeat(np.arange(ns), nseg)
        seg = np.arange(si.shape[0]) - np.repeat(np.cumsum(nseg) - nseg, nseg)
        sg = take(sp, si)
        sg["seg"] = seg.astype(np.int64)
        nvs = nv[si]
        vls = vl[si]
        vpad = np.concatenate([vls, np.full((si.shape[0], 1), -1, np.int64)], axis=1)
        rows = np.arange(si.shape[0])
        from_vnf = np.where(seg > 0, vpad[rows, np.maximum(seg - 1, 0)], -1)
        to_vnf = np.where(seg < nvs, vpad[rows, np.minimum(seg, G)], -1)
        vh = self.vnf_host
        sg["from_host"] = np.where(from_vnf >= 0, vh[np.maximum(from_vnf, 0)], sg["src_host"])
        sg["to_host"] = np.where(to_vnf >= 0, vh[np.maximum(to_vnf, 0)], sg["dst_host"])
        rv = sg["reverse"] == 1
        fv = np.maximum(from_vnf, 0)
        tv = np.maximum(to_vnf, 0)
        sg["seg_src_mac"] = np.where(
            from_vnf >= 0, np.where(rv, self.vnf_in_mac[fv], self.vnf_out_mac[fv]),
            sg["src_mac"]).astype(np.uint64)
        sg["seg_dst_mac"] = np.where(
            to_vnf >= 0, np.where(rv, self.vnf_out_mac[tv], self.vnf_in_mac[tv]),
            sg["dst_mac"]).astype(np.uint64)
        sg["from_vnf"] = from_vnf
        sg["to_vnf"] = to_vnf
        chain_id = np.array([c.chain_id for c in fab.chains] or [0], np.int64)
        mpls = np.full(si.shape[0], -1, np.int64)
        if self.p.sfc_mpls and fab.chains:
            m = to_vnf >= 0
            cid = chain_id[np.maximum(sg["chain"], 0)]
            mpls[m] = (cid[m] << 8) | (255 - seg[m])
        sg["mpls"] = mpls
        sg["vni"] = fab.net_vni[sg["net"]]
        sg["encap"] = fab.net_encap[sg["net"]]
        oproto, ox = outer_proto_x(sg["encap"], sg["vni"], sg["th"])
        sg["oproto"] = oproto
        sg["ox"] = ox
        fh, th_ = sg["from_host"], sg["to_host"]
        lf, lt = fab.host_leaf[fh], fab.host_leaf[th_]
        spine = np.full(si.shape[0], -1, np.int64)
        cross = lf != lt
        if cross.any():
            spine[cross] = fab.ecmp(fh[cross], th_[cross], oproto[cross], ox[cross])
        sg["spine"] = spine
        sg["nhops"] = np.where(fh == th_, 0, np.where(cross, 3, 1)).astype(np.int64)
        sg["local"] = (fh == th_).astype(np.int64)
        ovh = np.array([OVERHEAD[(e, fab.ipv6)] for e in range(3)], np.int64)
        inner = sg["frame"] + np.where(mpls >= 0, 4, 0)
        sg["wire"] = inner + ovh[sg["encap"]]  # outer frame, no FCS
        return sg


def cum_packets(sg: Table, t: I64) -> I64:
    """Packets the flow of each row has sent by time ``t``."""
    s, e, pk = sg["start"], sg["end"], sg["packets"]
    tt = np.clip(t, s, e)
    out: I64 = np.floor(pk * ((tt - s) / (e - s))).astype(np.int64)
    return out


def hops(fab: Fabric, sg: Table) -> Table:
    """Segments -> physical hops (ingress sampling points): device, in/out interface
    (global ids), the outer TTL as received, the MACs of the outer Ethernet header."""
    nh = sg["nhops"]
    si = np.repeat(np.arange(nh.shape[0]), nh)
    j = np.arange(si.shape[0]) - np.repeat(np.cumsum(nh) - nh, nh)
    fh = sg["from_host"][si]
    th = sg["to_host"][si]
    lf = fab.host_leaf[fh]
    lt = fab.host_leaf[th]
    sp = np.maximum(sg["spine"][si], 0)
    three = nh[si] == 3
    S = fab.n_spines
    dev = np.where(three & (j == 1), sp, np.where(three & (j == 2), S + lt, S + lf))
    in_if = np.select(
        [j == 0, j == 1, j == 2],
        [fab.host_if[fh], fab.spine_down_if[sp, lf], fab.leaf_up_if[lt, sp]])
    out_if = np.select(
        [(j == 0) & three, (j == 0) & ~three, j == 1, j == 2],
        [fab.leaf_up_if[lf, sp], fab.host_if[th], fab.spine_down_if[sp, lt], fab.host_if[th]])
    prev_mac = np.select(
        [j == 0, j == 1, j == 2],
        [fab.host_mac[fh], fab.dev_mac[S + lf], fab.dev_mac[sp]])
    return {
        "seg_row": si, "hop": j.astype(np.int64), "dev": dev.astype(np.int64),
        "in_if": in_if.astype(np.int64), "out_if": out_if.astype(np.int64),
        "ttl": (64 - j).astype(np.int64), "eth_src": prev_mac.astype(np.uint64),
        "eth_dst": fab.dev_mac[dev].astype(np.uint64),
    }


ENCAP_NAMES = {v: k for k, v in ENCAP_CODE.items()}

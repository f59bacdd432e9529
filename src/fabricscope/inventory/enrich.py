"""Vectorised, time-aware enrichment of whole record batches with inventory names.

For a batch of records (Arrow, columns of ``records/schema.py``) it adds, without a Python
step per record:

* ``src_host``, ``dst_host``: the hosts owning the outer (wire) addresses;
* ``src_endpoint``/``src_tenant``/``src_network``/``src_vnf`` and the ``dst_`` ones: the
  endpoint behind the innermost address on the record's VNI (the wire address for a frame
  without tunnel), its tenant, network and the VNF it is a port of;
* ``network``, ``tenant``: the virtual network of the VNI (and encapsulation);
* ``device``, ``in_if_name``, ``out_if_name``, ``in_link``, ``out_link``, ``in_peer``,
  ``out_peer``: the sFlow agent's device, the interfaces its ifIndexes name, the links
  plugged into them and what is at their far end (``spine-1:eth1``, ``hv-3:eth0``).

How: the inventory is constant between two of its change times (``epochs``). Each record
gets its epoch with ``np.searchsorted`` over the change times. The key columns of the batch
(addresses, VNI, encapsulation, agent, ifIndex) plus the epoch are factorised with Arrow's
hash-based ``dictionary_encode``, so only the *distinct* keys are resolved: against NumPy
key tables built per epoch (an open-addressing hash table on a 64-bit mix of the key,
verified component by component, so the answer is exact). The answers are gathered back to every
record. The per-epoch key arrays are built by asking the Inventory's own lookups for every
identity it knows, so the vectorised answers are the scalar lookups' answers (declared
facts first, nothing for ambiguous keys).

Output columns are dictionary-encoded strings, null where the inventory knows nothing
(presenters fall back to the raw identity).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fabricscope.inventory import addr
from fabricscope.inventory.columns import (
    ENCAP_ANY,
    ENCAP_ID,
    Col,
    as_array,
    choose,
    combine,
    encap_col,
    epoch_col,
    int32_with_nulls,
    int_col,
    ip_col,
)
from fabricscope.inventory.index import Inventory
from fabricscope.inventory.model import Device, Endpoint, Host, Link, Network

HOST_FIELDS = ("src_host", "dst_host")
ENDPOINT_FIELDS = tuple(f"{side}_{what}" for side in ("src", "dst")
                        for what in ("endpoint", "tenant", "network", "vnf"))
NETWORK_FIELDS = ("network", "tenant")
SFLOW_FIELDS = ("device", "in_if_name", "out_if_name", "in_link", "out_link", "in_peer",
                "out_peer")
FIELDS: tuple[str, ...] = (*HOST_FIELDS, *ENDPOINT_FIELDS, *NETWORK_FIELDS, *SFLOW_FIELDS)


_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F),
        np.uint64(0x165667B19E3779F9), np.uint64(0xD6E8FEB86659FD93))

A = TypeVar("A")

_EPOCH_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)


def _ns_to_dt(ns: int) -> datetime:
    return _EPOCH_ORIGIN + timedelta(microseconds=ns // 1000)


def _mix(comps: Sequence[np.ndarray], k: np.uint64) -> np.ndarray:
    h = comps[0].astype(np.uint64, copy=True)
    for c in comps[1:]:
        h = (h * k) ^ c.astype(np.uint64, copy=False)
    return h


_FIB = np.uint64(0x9E3779B97F4A7C15)


def _slots(mixed: np.ndarray, bits: int) -> np.ndarray:
    """Home slot of each mixed key in a table of ``2**bits`` (multiply-shift hashing)."""
    out: np.ndarray = ((mixed * _FIB) >> np.uint64(64 - bits)).astype(np.int64)
    return out


class KeyIndex:
    """Exact lookup of composite unsigned 64-bit keys in an open-addressing hash table
    of NumPy arrays.

    Keys are mixed into one uint64 (a mixer is chosen so that no two stored keys share a
    mix) and placed by linear probing in a table at most a quarter full; a query probes
    with NumPy, a few rounds over the keys not settled yet, then compares every
    component, so a hash collision can never give a wrong answer.
    """

    def __init__(self, comps: Sequence[np.ndarray], values: np.ndarray) -> None:
        self.width = len(comps)
        n = len(values)
        self.values = np.asarray(values, dtype=np.int32)
        self.comps = [np.asarray(c, dtype=np.uint64) for c in comps]
        self.bits = max(4, int(4 * max(n, 1) - 1).bit_length())
        size = 1 << self.bits
        for k in _MIX:
            mixed = _mix(self.comps, k) if n else np.empty(0, np.uint64)
            if n >= 2 and len(np.unique(mixed)) != n:
                continue
            self.k = k
            self.mixed = mixed
            break
        else:  # pragma: no cover
            raise ValueError("cannot build a collision-free key index")
        # linear probing, a round per probe distance: a key lands on the first free slot
        # from its home slot (every slot before it stays taken), ties go to one key
        home = _slots(self.mixed, self.bits)
        table = np.full(size, -1, dtype=np.int32)
        pending = np.arange(n, dtype=np.int64)
        probe = 0
        while len(pending):
            s = (home[pending] + probe) & (size - 1)
            free = table[s] < 0
            slot, first = np.unique(s[free], return_index=True)
            winners = pending[free][first]
            table[slot] = winners
            placed = np.zeros(n, dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            probe += 1
        self.probes = max(probe, 1)  # the longest distance from a home slot, plus one
        self.table = table
        self.table_mixed = np.where(table >= 0, self.mixed[table], np.uint64(0)) if n \
            else np.zeros(size, np.uint64)

    def __len__(self) -> int:
        return len(self.values)

    def lookup(self, comps: Sequence[np.ndarray]) -> np.ndarray:
        """The stored value of each queried key, -1 where absent."""
        n = len(comps[0])
        out = np.full(n, -1, dtype=np.int32)
        if not len(self.values) or n == 0:
            return out
        qc = [np.asarray(c, dtype=np.uint64) for c in comps]
        q = _mix(qc, self.k)
        mask = len(self.table) - 1
        s = _slots(q, self.bits)
        r = self.table[s]
        hit = (self.table_mixed[s] == q) & (r >= 0)
        row = np.where(hit, r, -1)
        # the few keys whose home slot holds another key: probe on, over them only
        todo = np.flatnonzero((r >= 0) & ~hit)
        s = s[todo]
        for _ in range(self.probes - 1):
            if not len(todo):
                break
            s = (s + 1) & mask
            r = self.table[s]
            hit = (self.table_mixed[s] == q[todo]) & (r >= 0)
            row[todo[hit]] = r[hit]
            go_on = (r >= 0) & ~hit
            todo, s = todo[go_on], s[go_on]
        found = np.flatnonzero(row >= 0)
        rf = row[found]
        ok = np.ones(len(found), dtype=bool)
        for stored, c in zip(self.comps, qc, strict=True):
            ok &= stored[rf] == c[found]
        out[found[ok]] = self.values[rf[ok]]
        return out


def _build_index(entries: dict[tuple[int, ...], int], width: int) -> KeyIndex:
    if not entries:
        return KeyIndex([np.empty(0, np.uint64) for _ in range(width)], np.empty(0, np.int32))
    keys = np.array(list(entries.keys()), dtype=np.uint64).reshape(-1, width)
    vals = np.fromiter(entries.values(), dtype=np.int32, count=len(entries))
    return KeyIndex([keys[:, j] for j in range(width)], vals)


def _ip_parts(ip: str) -> tuple[int, int]:
    raw = addr.ip16(ip)
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


class _Answers:
    """Interned answer tuples (e.g. endpoint, tenant, network, vnf) and their names.

    Per output column, the names are kept as an Arrow dictionary (in order of first
    appearance) with a NumPy table from answer id to dictionary code; both are extended
    only for answers interned since the last call, so a batch costs one NumPy gather per
    column, whatever the number of answers.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self.ids: dict[tuple[str | None, ...], int] = {}
        self.rows: list[tuple[str | None, ...]] = []
        self._names: list[dict[str, int]] = [{} for _ in range(width)]
        # code of answer id i at [i + 1]; [0] (answer id -1, no answer) is -1
        self._codes: list[np.ndarray] = [np.full(1, -1, np.int32) for _ in range(width)]
        self._dicts: list[pa.Array] = [pa.array([], pa.string()) for _ in range(width)]

    def intern(self, row: tuple[str | None, ...]) -> int:
        got = self.ids.get(row)
        if got is None:
            got = len(self.rows)
            self.ids[row] = got
            self.rows.append(row)
        return got

    def _table(self, j: int) -> tuple[np.ndarray, pa.Array]:
        codes = self._codes[j]
        done = len(codes) - 1
        if done < len(self.rows):
            names = self._names[j]
            before = len(names)
            new = np.empty(len(self.rows) - done, np.int32)
            for k, r in enumerate(self.rows[done:]):
                v = r[j]
                new[k] = -1 if v is None else names.setdefault(v, len(names))
            codes = self._codes[j] = np.concatenate([codes, new])
            if len(names) > before:
                self._dicts[j] = pa.array(list(names), pa.string())
        return codes, self._dicts[j]

    def column(self, j: int, answer_ids: np.ndarray) -> pa.DictionaryArray:
        """Column ``j`` of the answers for every record (null where no answer)."""
        codes, names = self._table(j)
        idx = codes[answer_ids + 1]
        return pa.DictionaryArray.from_arrays(int32_with_nulls(idx), names)


@dataclass
class _Epoch:
    """Key arrays of the inventory valid during one epoch."""

    at: datetime
    built: dict[str, KeyIndex] = field(default_factory=dict)


# --------------------------------------------------------------------------- the enricher


class Enricher:
    """Resolves record batches against one Inventory (build once, reuse for many
    batches: the per-epoch key arrays are cached)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        times = inventory.change_times()
        self.boundaries = np.array([_to_ns(t) for t in times], dtype=np.int64)
        self._epochs: dict[int, _Epoch] = {}
        self.hosts = _Answers(1)
        self.endpoints = _Answers(4)  # endpoint, tenant, network, vnf
        self.networks = _Answers(2)  # network, tenant
        self.devices = _Answers(1)
        self.interfaces = _Answers(4)  # interface, link, peer, device
        self._collect_identities()

    # -- identities the inventory knows (over all time)
    def _collect_identities(self) -> None:
        inv = self.inventory
        host_ips: set[str] = set()
        for h in inv.facts("hosts", all_versions=True):
            assert isinstance(h, Host)
            host_ips.update(h.tunnel_ips)
            if h.mgmt_ip:
                host_ips.add(h.mgmt_ip)
            for nic in h.nics:
                host_ips.update(nic.ips)
        self._host_ips = sorted(host_ips)
        segments: set[tuple[str, int]] = set()
        for n in inv.facts("networks", all_versions=True):
            assert isinstance(n, Network)
            if n.vni is not None:
                segments.add((n.encap, n.vni))
        self._segments = sorted(segments)
        ep_ips: set[str] = set()
        ep_keys: set[tuple[str, int, str]] = set()
        net_by_name: dict[str, list[Network]] = {}
        for n in inv.facts("networks", all_versions=True):
            assert isinstance(n, Network)
            net_by_name.setdefault(n.name, []).append(n)
        for e in inv.facts("endpoints", all_versions=True):
            assert isinstance(e, Endpoint)
            ep_ips.update(e.ips)
            for n in net_by_name.get(e.network or "", []):
                if n.vni is not None:
                    for ip in e.ips:
                        ep_keys.add((n.encap, n.vni, ip))
        self._ep_ips = sorted(ep_ips)
        self._ep_keys = sorted(ep_keys)
        agents: set[str] = set()
        ports: set[tuple[str, int]] = set()
        for d in inv.facts("devices", all_versions=True):
            assert isinstance(d, Device)
            if d.agent:
                agents.add(d.agent)
                for itf in d.interfaces:
                    if itf.ifindex is not None:
                        ports.add((d.agent, itf.ifindex))
        self._agents = sorted(agents)
        self._ports = sorted(ports)

    # -- epochs
    def epoch_of(self, ts_ns: np.ndarray) -> np.ndarray:
        """The epoch (index of the constant stretch of the inventory) of each time."""
        return np.searchsorted(self.boundaries, ts_ns, side="right").astype(np.int64)

    def _epoch(self, e: int) -> _Epoch:
        got = self._epochs.get(e)
        if got is None:
            if len(self.boundaries) == 0:
                at = datetime.now(UTC)
            elif e == 0:
                at = _ns_to_dt(int(self.boundaries[0]) - 1000)
            else:
                at = _ns_to_dt(int(self.boundaries[e - 1]))
            got = self._epochs[e] = _Epoch(at)
        return got

    def _index(self, e: int, name: str, build: Callable[[datetime], KeyIndex]) -> KeyIndex:
        ep = self._epoch(e)
        idx = ep.built.get(name)
        if idx is None:
            idx = ep.built[name] = build(ep.at)
        return idx

    # -- per-epoch key arrays, from the scalar lookups
    def _hosts_at(self, t: datetime) -> KeyIndex:
        inv = self.inventory
        entries: dict[tuple[int, ...], int] = {}
        for ip in self._host_ips:
            h = inv.host_by_tunnel_ip(ip, t) or inv.host_by_ip(ip, t)
            if h is not None:
                entries[_ip_parts(ip)] = self.hosts.intern((h.name,))
        return _build_index(entries, 2)

    def _endpoint_row(self, e: Endpoint, t: datetime) -> int:
        inv = self.inventory
        vnf = inv.vnf_of_endpoint(e.name, t)
        return self.endpoints.intern((e.name, inv.tenant_of(e, t), e.network,
                                      vnf.name if vnf is not None else None))

    def _endpoints_by_segment_at(self, t: datetime) -> KeyIndex:
        inv = self.inventory
        entries: dict[tuple[int, ...], int] = {}
        for encap, vni, ip in self._ep_keys:
            hi, lo = _ip_parts(ip)
            e = inv.endpoint_by_ip(ip, vni, t, encap=encap)
            if e is not None:
                entries[(ENCAP_ID[encap], vni, hi, lo)] = self._endpoint_row(e, t)
            e = inv.endpoint_by_ip(ip, vni, t)
            if e is not None:
                entries[(ENCAP_ANY, vni, hi, lo)] = self._endpoint_row(e, t)
        return _build_index(entries, 4)

    def _endpoints_by_ip_at(self, t: datetime) -> KeyIndex:
        inv = self.inventory
        entries: dict[tuple[int, ...], int] = {}
        for ip in self._ep_ips:
            e = inv.endpoint_by_ip(ip, None, t)
            if e is not None:
                entries[_ip_parts(ip)] = self._endpoint_row(e, t)
        return _build_index(entries, 2)

    def _networks_at(self, t: datetime) -> KeyIndex:
        inv = self.inventory
        entries: dict[tuple[int, ...], int] = {}
        for encap, vni in self._segments:
            n = inv.network_by_vni(vni, t, encap)
            if n is not None:
                entries[(ENCAP_ID[encap], vni)] = self.networks.intern((n.name, n.tenant))
            n = inv.network_by_vni(vni, t)
            if n is not None:
                entries[(ENCAP_ANY, vni)] = self.networks.intern((n.name, n.tenant))
        return _build_index(entries, 2)

    def _devices_at(self, t: datetime) -> KeyIndex:
        inv = self.inventory
        entries: dict[tuple[int, ...], int] = {}
        for agent in self._agents:
            d = inv.device_by_agent(agent, t)
            if d is not None:
                entries[_ip_parts(agent)] = self.devices.intern((d.name,))
        return _build_index(entries, 2)

    def _interfaces_at(self, t: datetime) -> KeyIndex:
        inv = self.inventory
        entries: dict[tuple[int, ...], int] = {}
        for agent, ifindex in self._ports:
            found = inv.interface(agent, ifindex, t)
            if found is None:
                continue
            dev, itf = found.device.name, found.interface.name
            link = inv.link_of(dev, itf, t)
            peer = _far_label(link, dev, itf) if link is not None else None
            entries[(*_ip_parts(agent), ifindex)] = self.interfaces.intern(
                (itf, link.key if link is not None else None, peer, dev))
        return _build_index(entries, 3)

    # -- resolution of distinct keys, then gather
    def _resolve(self, cols: Sequence[Col], ep: Col,
                 resolve: Callable[[int, list[np.ndarray]], np.ndarray]) -> np.ndarray:
        """Answer ids for every record: ``resolve(epoch, codes)`` answers the distinct key
        combinations of one epoch (``codes``: the code of each column, per combination)."""
        n = len(ep.codes)
        if n == 0:
            return np.empty(0, np.int32)
        if ep.size == 1:  # the whole batch lies in one epoch
            e0 = int(ep.parts[0][0])
            if len(cols) == 1:
                c = cols[0]
                table = resolve(e0, [np.arange(c.size + 1)])
                out: np.ndarray = table[c.codes]
                return out
            inverse, parts = combine(cols)
            out = resolve(e0, parts)[inverse]
            return out
        inverse, parts = combine([*cols, ep])
        result = np.full(len(parts[0]), -1, dtype=np.int32)
        epochs = ep.parts[0][parts[-1]]
        for e in np.unique(epochs):
            sel = epochs == e
            result[sel] = resolve(int(e), [p[sel] for p in parts[:-1]])
        out = result[inverse]
        return out

    def _ep(self, ep: np.ndarray | Col) -> Col:
        return ep if isinstance(ep, Col) else epoch_col(np.asarray(ep, dtype=np.int64))

    def host_ids(self, ips: pa.Array | Col, epoch: np.ndarray | Col) -> np.ndarray:
        """Host answer ids (``self.hosts``) for outer addresses."""
        ipc = ips if isinstance(ips, Col) else ip_col(ips)

        def resolve(e: int, p: list[np.ndarray]) -> np.ndarray:
            index = self._index(e, "hosts", self._hosts_at)
            r = index.lookup([ipc.part(0, p[0]), ipc.part(1, p[0])])
            return np.where(ipc.valid(p[0]), r, -1)

        return self._resolve([ipc], self._ep(epoch), resolve)

    def endpoint_ids(self, ips: pa.Array | Col, vni: pa.Array | Col, encap: pa.Array | Col,
                     epoch: np.ndarray | Col) -> np.ndarray:
        """Endpoint answer ids (``self.endpoints``) by (encapsulation, VNI, address), then
        (VNI, address); by the address alone where the record has no VNI or one that no
        network has at that time (and only if one endpoint holds the address)."""
        ipc = ips if isinstance(ips, Col) else ip_col(ips)
        vnic = vni if isinstance(vni, Col) else int_col(vni)
        encc = encap if isinstance(encap, Col) else encap_col(encap)

        def resolve(e: int, p: list[np.ndarray]) -> np.ndarray:
            seg = self._index(e, "ep_seg", self._endpoints_by_segment_at)
            alone = self._index(e, "ep_ip", self._endpoints_by_ip_at)
            nets = self._index(e, "networks", self._networks_at)
            hi, lo = ipc.part(0, p[0]), ipc.part(1, p[0])
            v = vnic.part(0, p[1])
            valid = ipc.valid(p[0])
            has_vni = vnic.valid(p[1])
            r = np.full(len(v), -1, dtype=np.int32)
            # (encapsulation, VNI, address), then (VNI, address) for the misses only
            sel = np.flatnonzero(valid & has_vni)
            r[sel] = seg.lookup([encc.part(0, p[2][sel]), v[sel], hi[sel], lo[sel]])
            sel = sel[r[sel] < 0]
            r[sel] = seg.lookup([np.zeros(len(sel), np.uint64), v[sel], hi[sel], lo[sel]])
            # the address alone: no VNI, or one that no network has at that time
            vni_known = nets.lookup([np.zeros(vnic.size, np.uint64), vnic.parts[0][:-1]]) >= 0
            known = np.append(vni_known, False)[p[1]]
            sel = np.flatnonzero(valid & (r < 0) & ~known)
            r[sel] = alone.lookup([hi[sel], lo[sel]])
            return r

        return self._resolve([ipc, vnic, encc], self._ep(epoch), resolve)

    def network_ids(self, vni: pa.Array | Col, encap: pa.Array | Col,
                    epoch: np.ndarray | Col) -> np.ndarray:
        """Network answer ids (``self.networks``) by (encapsulation, VNI), then VNI."""
        vnic = vni if isinstance(vni, Col) else int_col(vni)
        encc = encap if isinstance(encap, Col) else encap_col(encap)

        def resolve(e: int, p: list[np.ndarray]) -> np.ndarray:
            nets = self._index(e, "networks", self._networks_at)
            v = vnic.part(0, p[0])
            r = nets.lookup([encc.part(0, p[1]), v])
            miss = np.flatnonzero(r < 0)
            r[miss] = nets.lookup([np.zeros(len(miss), np.uint64), v[miss]])
            return np.where(vnic.valid(p[0]), r, -1)

        return self._resolve([vnic, encc], self._ep(epoch), resolve)

    def device_ids(self, agents: pa.Array | Col, epoch: np.ndarray | Col) -> np.ndarray:
        """Device answer ids (``self.devices``) for sFlow agent addresses."""
        ac = agents if isinstance(agents, Col) else ip_col(agents)

        def resolve(e: int, p: list[np.ndarray]) -> np.ndarray:
            index = self._index(e, "devices", self._devices_at)
            r = index.lookup([ac.part(0, p[0]), ac.part(1, p[0])])
            return np.where(ac.valid(p[0]), r, -1)

        return self._resolve([ac], self._ep(epoch), resolve)

    def interface_ids(self, agents: pa.Array | Col, ifindex: pa.Array | Col,
                      epoch: np.ndarray | Col) -> np.ndarray:
        """Interface answer ids (``self.interfaces``: interface, link, far end, device) for
        (agent, ifIndex)."""
        ac = agents if isinstance(agents, Col) else ip_col(agents)
        ic = ifindex if isinstance(ifindex, Col) else int_col(ifindex)

        def resolve(e: int, p: list[np.ndarray]) -> np.ndarray:
            index = self._index(e, "interfaces", self._interfaces_at)
            r = index.lookup([ac.part(0, p[0]), ac.part(1, p[0]), ic.part(0, p[1])])
            return np.where(ac.valid(p[0]) & ic.valid(p[1]), r, -1)

        return self._resolve([ac, ic], self._ep(epoch), resolve)

    # -- the batch API
    def enrich(self, batch: A, fields: Iterable[str] | None = None) -> A:
        """``batch`` (a pyarrow Table or RecordBatch) with the enrichment columns appended
        (``FIELDS``, or the subset named in ``fields``). Key columns that are absent from
        the batch give null answers."""
        want = list(FIELDS if fields is None else fields)
        unknown = [f for f in want if f not in FIELDS]
        if unknown:
            raise ValueError(f"unknown enrichment field(s) {unknown}; known: {FIELDS}")
        cols = self.columns(batch, want)
        out: Any = batch
        for name in want:
            col = cols[name]
            if isinstance(out, pa.Table):
                out = out.append_column(name, col)
            else:
                out = pa.RecordBatch.from_arrays([*out.columns, col],
                                                 names=[*out.schema.names, name])
        return out  # type: ignore[no-any-return]

    def columns(self, batch: Any, fields: Sequence[str] = FIELDS) -> dict[str, pa.Array]:
        """The enrichment columns for ``batch`` by name (dictionary-encoded strings)."""
        names = set(batch.schema.names)
        n = batch.num_rows

        def col(name: str, typ: pa.DataType) -> pa.Array:
            if name in names:
                return as_array(batch.column(name))
            return pa.nulls(n, typ)

        ip_t = pa.binary(16)
        if "ts" in names:
            ts = as_array(batch.column("ts")).cast(pa.int64())
            now = _to_ns(datetime.now(UTC))
            ts_ns = ts.fill_null(now).to_numpy(zero_copy_only=False).astype(np.int64)
        else:
            ts_ns = np.full(n, _to_ns(datetime.now(UTC)), dtype=np.int64)
        epoch = epoch_col(self.epoch_of(ts_ns))
        want = set(fields)
        cache: dict[str, Col] = {}

        def ipc(name: str) -> Col:
            if name not in cache:
                cache[name] = ip_col(col(name, ip_t))
            return cache[name]

        def intc(name: str, arr: pa.Array) -> Col:
            if name not in cache:
                cache[name] = int_col(arr)
            return cache[name]

        encap_arr = col("encap", pa.string())
        encc = encap_col(encap_arr)
        out: dict[str, pa.Array] = {}
        if want & set(HOST_FIELDS):
            for side in ("src", "dst"):
                ids = self.host_ids(ipc(side), epoch)
                out[f"{side}_host"] = self.hosts.column(0, ids)
        if want & (set(ENDPOINT_FIELDS) | set(NETWORK_FIELDS)):
            vnic = intc("vni", col("vni", pa.uint64()))
        if want & set(ENDPOINT_FIELDS):
            no_tunnel = encc.codes == encc.size  # null encapsulation
            for side in ("src", "dst"):
                if no_tunnel.any():
                    key = choose(no_tunnel, ipc(side), ipc(f"inner_{side}"))
                else:
                    key = ipc(f"inner_{side}")
                ids = self.endpoint_ids(key, vnic, encc, epoch)
                for j, what in enumerate(("endpoint", "tenant", "network", "vnf")):
                    out[f"{side}_{what}"] = self.endpoints.column(j, ids)
        if want & set(NETWORK_FIELDS):
            ids = self.network_ids(vnic, encc, epoch)
            out["network"] = self.networks.column(0, ids)
            out["tenant"] = self.networks.column(1, ids)
        if want & set(SFLOW_FIELDS):
            agent = ipc("agent")
            out["device"] = self.devices.column(0, self.device_ids(agent, epoch))
            for side in ("in", "out"):
                ifx = col(f"{side}_if", pa.uint32())
                if side == "out" and "out_if_format" in names:
                    # format 1 = discarded (the value is a reason), 2 = multiple: no port
                    fmt = as_array(batch.column("out_if_format"))
                    ifx = as_array(pc.if_else(pc.fill_null(pc.greater(fmt, 0), False),
                                               pa.nulls(n, ifx.type), ifx))
                ids = self.interface_ids(agent, int_col(ifx), epoch)
                out[f"{side}_if_name"] = self.interfaces.column(0, ids)
                out[f"{side}_link"] = self.interfaces.column(1, ids)
                out[f"{side}_peer"] = self.interfaces.column(2, ids)
        return {f: out[f] for f in fields}


def _far_label(link: Link, device: str, interface: str) -> str | None:
    far = link.other(device, interface)
    return far.label if far is not None else None


def _to_ns(t: datetime) -> int:
    from fabricscope.timeutil import to_ns

    return to_ns(addr.utc(t))


def enrich(inventory: Inventory, batch: A, fields: Iterable[str] | None = None) -> A:
    """One-shot helper: ``Enricher(inventory).enrich(batch, fields)``."""
    return Enricher(inventory).enrich(batch, fields)


__all__ = ["FIELDS", "Enricher", "KeyIndex", "enrich"]

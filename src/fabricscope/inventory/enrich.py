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

How: the inventory is constant between two of its change times (``epochs``). Per epoch and
kind of key, a ``KeyIndex`` is built by asking the Inventory's own lookups for every
identity it knows, so the answers are the scalar lookups' answers (declared facts first,
nothing for ambiguous keys); its keys are packed into open-addressing slot tables. The
numba kernels of ``enrich_kernels`` then walk the records: each record's epoch (a running
pointer over the change times), its key components read straight from the Arrow buffers,
probes with every component compared (exact), the scalar lookups' fallback order. The
answer ids become dictionary codes with one gather per output column.

Output columns are dictionary-encoded strings, null where the inventory knows nothing
(presenters fall back to the raw identity).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fabricscope.inventory import addr
from fabricscope.inventory import enrich_kernels as K
from fabricscope.inventory.columns import (
    ENCAP_ANY,
    ENCAP_ID,
    ENCAP_UNKNOWN,
    Col,
    as_array,
    int32_with_nulls,
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
    """The two key components of an address: its 16 bytes as two native 64-bit words
    (what the kernels read from an Arrow buffer)."""
    raw = addr.ip16(ip)
    return int.from_bytes(raw[:8], sys.byteorder), int.from_bytes(raw[8:], sys.byteorder)


_EMPTY = KeyIndex([np.empty(0, np.uint64)], np.empty(0, np.int32))  # 16 free slots


class _Packed:
    """The keys of every built epoch's ``KeyIndex`` of one kind, in one table for the
    kernels (``enrich_kernels``: ``(rows, offset, bits, mixer)``, the key words and value
    in each slot); an epoch not built yet has an empty table."""

    def __init__(self, width: int, epochs: int) -> None:
        self.width = width
        self.built: dict[int, KeyIndex] = {}
        self._rows: dict[int, np.ndarray] = {}  # the slots of each built epoch
        self.epochs = epochs
        self.arrays: tuple[np.ndarray, ...] = ()
        self._pack()

    def add(self, e: int, index: KeyIndex) -> None:
        self.built[e] = index
        self._pack()

    def _pack(self) -> None:
        tables, offs, bits, mixers = [], [], [], []
        start = 0
        for e in range(self.epochs):
            ix = self.built.get(e, _EMPTY)
            b = max(4, (2 * max(len(ix), 1) - 1).bit_length())  # at most half full
            rows = self._rows.get(e)
            if rows is None:
                rows = np.zeros((1 << b, self.width + 1), np.uint64)
                rows[:, self.width] = K.EMPTY
                if len(ix):
                    K.place(np.ascontiguousarray(np.stack(ix.comps, axis=1)), ix.values,
                            ix.k, b, rows)
                if e in self.built:
                    self._rows[e] = rows
            tables.append(rows)
            offs.append(start)
            bits.append(b)
            mixers.append(ix.k)
            start += len(rows)
        self.arrays = tuple(_ro(a) for a in (
            np.concatenate(tables), np.array(offs, np.int64), np.array(bits, np.int64),
            np.array(mixers, np.uint64)))


def _ro(a: np.ndarray) -> np.ndarray:
    """``a``, read-only (the kernels are compiled for read-only inputs, like the arrays
    over Arrow buffers)."""
    v = a.view()
    v.flags.writeable = False
    return v


_NOBITS = _ro(np.empty(0, np.uint8))
KeyCol = tuple[np.ndarray, np.ndarray, int]  # a kernel key column: data, bitmap, bit offset


def _absent(n: int, dtype: Any, width: int = 1) -> KeyCol:
    """A key column of ``n`` nulls."""
    shape = (n, width) if width > 1 else (n,)
    return _ro(np.zeros(shape, dtype)), _ro(np.zeros((n + 7) // 8, np.uint8)), 0


def _buffers(arr: pa.Array, dtype: Any, width: int = 1) -> KeyCol:
    """A kernel key column over the buffers of ``arr`` (no copy)."""
    n = len(arr)
    if arr.null_count == n and n:
        return _absent(n, dtype, width)
    bufs = arr.buffers()
    off = arr.offset
    if bufs[1] is None:
        return _absent(n, dtype, width)
    data = np.frombuffer(bufs[1], dtype=dtype, count=(off + n) * width)[off * width:]
    if width > 1:
        data = data.reshape(n, width)
    bm = _NOBITS if arr.null_count == 0 or bufs[0] is None else np.frombuffer(bufs[0], np.uint8)
    return _ro(data), _ro(bm), off


def _from_mask(data: np.ndarray, valid: np.ndarray) -> KeyCol:
    bm = _NOBITS if valid.all() else _ro(np.packbits(valid, bitorder="little"))
    return _ro(np.ascontiguousarray(data)), bm, 0


def _ip_key(ips: pa.Array | Col) -> KeyCol:
    if isinstance(ips, Col):  # parts: the big-endian halves
        hi, lo = (ips.part(j, ips.codes).astype(">u8") for j in (0, 1))
        return _from_mask(np.stack([hi, lo], axis=1).view(np.uint64), ips.valid(ips.codes))
    if not (pa.types.is_fixed_size_binary(ips.type) and ips.type.byte_width == 16):
        raise TypeError(f"expected fixed_size_binary(16) addresses, got {ips.type}")
    return _buffers(ips, np.uint64, 2)


def _int_key(vals: pa.Array | Col, typ: pa.DataType = pa.uint64()) -> KeyCol:
    """An integer key column: its buffers if of type ``typ``, else as uint64."""
    if isinstance(vals, Col):
        return _from_mask(vals.part(0, vals.codes).astype(np.uint64), vals.valid(vals.codes))
    if vals.type != typ:
        typ = pa.uint64()
        if vals.type != typ:
            vals = vals.cast(typ, safe=False)
    return _buffers(vals, typ.to_pandas_dtype())


def _encap_key(encap: pa.Array | Col) -> tuple[KeyCol, np.ndarray]:
    """(per record: an index into the map, null without encapsulation; the map from index
    to the encapsulation key component)."""
    if isinstance(encap, Col):
        return _from_mask(encap.codes.astype(np.int64), encap.valid(encap.codes)), \
            _ro(encap.parts[0].astype(np.uint64))
    if not pa.types.is_dictionary(encap.type):
        if not pa.types.is_string(encap.type):
            encap = encap.cast(pa.string())
        encap = pc.dictionary_encode(encap)
    names = encap.dictionary.to_pylist()
    emap = np.array([ENCAP_ID.get(str(s), ENCAP_UNKNOWN) for s in names], dtype=np.uint64)
    idx = encap.indices
    if idx.type.bit_width < 16:
        idx = idx.cast(pa.int16())
    return _buffers(idx, idx.type.to_pandas_dtype()), _ro(emap)


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
        self._bounds = _ro(self.boundaries.copy())
        self._epochs: dict[int, _Epoch] = {}
        self._tables: dict[str, _Packed] = {}
        self._builders: dict[str, tuple[Callable[[datetime], KeyIndex], int]] = {
            "hosts": (self._hosts_at, 2), "ep_seg": (self._endpoints_by_segment_at, 4),
            "ep_ip": (self._endpoints_by_ip_at, 2), "networks": (self._networks_at, 2),
            "devices": (self._devices_at, 2), "interfaces": (self._interfaces_at, 3)}
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
        return self._epochs_of(ts_ns)[0]

    def _epochs_of(self, ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the epoch of each time, the number of times per epoch)."""
        ts = np.ascontiguousarray(ts_ns, dtype=np.int64)
        out = np.empty(len(ts), np.int64)
        counts = np.zeros(len(self.boundaries) + 1, np.int64)
        K.epochs(_ro(ts), self._bounds, out, counts)
        return out, counts

    def _epoch_arg(self, epoch: np.ndarray | Col) -> tuple[np.ndarray, np.ndarray]:
        ep = epoch.parts[0][epoch.codes] if isinstance(epoch, Col) else epoch
        ep = np.ascontiguousarray(ep, dtype=np.int64)
        return ep, np.bincount(ep, minlength=len(self.boundaries) + 1)

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

    def _packed(self, name: str, counts: np.ndarray) -> tuple[np.ndarray, ...]:
        """The kernels' table ``name`` with every epoch that has records (``counts``)."""
        build, width = self._builders[name]
        packed = self._tables.get(name)
        if packed is None:
            packed = self._tables[name] = _Packed(width, len(self.boundaries) + 1)
        for e in np.flatnonzero(counts).tolist():
            if e not in packed.built:
                packed.add(e, self._index(e, name, build))
        return packed.arrays

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

    # -- answer ids per record, by the kernels
    def host_ids(self, ips: pa.Array | Col, epoch: np.ndarray | Col) -> np.ndarray:
        """Host answer ids (``self.hosts``) for outer addresses."""
        ep, counts = self._epoch_arg(epoch)
        return self._address_ids("hosts", _ip_key(ips), ep, counts)

    def _address_ids(self, name: str, ip: KeyCol, ep: np.ndarray,
                     counts: np.ndarray) -> np.ndarray:
        out = np.empty(len(ep), np.int32)
        K.address_ids(ep, ip, self._packed(name, counts), out)
        return out

    def endpoint_ids(self, ips: pa.Array | Col, vni: pa.Array | Col, encap: pa.Array | Col,
                     epoch: np.ndarray | Col) -> np.ndarray:
        """Endpoint answer ids (``self.endpoints``) by (encapsulation, VNI, address), then
        (VNI, address); by the address alone where the record has no VNI or one that no
        network has at that time (and only if one endpoint holds the address)."""
        ep, counts = self._epoch_arg(epoch)
        key = _ip_key(ips)
        enc, emap = _encap_key(encap)
        # the same addresses with or without encapsulation
        return self._endpoint_ids(key, key, enc, emap, _int_key(vni), ep, counts)

    def _endpoint_ids(self, wire: KeyCol, inner: KeyCol, enc: KeyCol, emap: np.ndarray,
                      vni: KeyCol, ep: np.ndarray, counts: np.ndarray) -> np.ndarray:
        out = np.empty(len(ep), np.int32)
        K.endpoint_ids(ep, wire, inner, enc, emap, vni, self._packed("ep_seg", counts),
                       self._packed("ep_ip", counts), self._packed("networks", counts), out)
        return out

    def network_ids(self, vni: pa.Array | Col, encap: pa.Array | Col,
                    epoch: np.ndarray | Col) -> np.ndarray:
        """Network answer ids (``self.networks``) by (encapsulation, VNI), then VNI."""
        ep, counts = self._epoch_arg(epoch)
        enc, emap = _encap_key(encap)
        return self._network_ids(enc, emap, _int_key(vni), ep, counts)

    def _network_ids(self, enc: KeyCol, emap: np.ndarray, vni: KeyCol, ep: np.ndarray,
                     counts: np.ndarray) -> np.ndarray:
        out = np.empty(len(ep), np.int32)
        K.network_ids(ep, enc, emap, vni, self._packed("networks", counts), out)
        return out

    def device_ids(self, agents: pa.Array | Col, epoch: np.ndarray | Col) -> np.ndarray:
        """Device answer ids (``self.devices``) for sFlow agent addresses."""
        ep, counts = self._epoch_arg(epoch)
        return self._address_ids("devices", _ip_key(agents), ep, counts)

    def interface_ids(self, agents: pa.Array | Col, ifindex: pa.Array | Col,
                      epoch: np.ndarray | Col) -> np.ndarray:
        """Interface answer ids (``self.interfaces``: interface, link, far end, device) for
        (agent, ifIndex)."""
        ep, counts = self._epoch_arg(epoch)
        return self._interface_ids(_ip_key(agents), _int_key(ifindex, pa.uint32()),
                                   _absent(len(ep), np.uint8), ep, counts)

    def _interface_ids(self, agent: KeyCol, ifx: KeyCol, fmt: KeyCol, ep: np.ndarray,
                       counts: np.ndarray) -> np.ndarray:
        out = np.empty(len(ep), np.int32)
        K.interface_ids(ep, agent, ifx, fmt, self._packed("interfaces", counts), out)
        return out

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

        def col(name: str) -> pa.Array | None:
            return as_array(batch.column(name)) if name in names else None

        def ipc(name: str) -> KeyCol:
            a = col(name)
            return _absent(n, np.uint64, 2) if a is None else _ip_key(a)

        def intc(name: str, typ: pa.DataType) -> KeyCol:
            a = col(name)
            return _absent(n, typ.to_pandas_dtype()) if a is None else _int_key(a, typ)

        ts = col("ts")
        if ts is not None:
            ts = ts.cast(pa.int64())
            if ts.null_count:
                ts = ts.fill_null(_to_ns(datetime.now(UTC)))
            ts_ns = ts.to_numpy(zero_copy_only=False)
        else:
            ts_ns = np.full(n, _to_ns(datetime.now(UTC)), dtype=np.int64)
        ep, counts = self._epochs_of(ts_ns)
        want = set(fields)
        out: dict[str, pa.Array] = {}
        if want & set(HOST_FIELDS):
            for side in ("src", "dst"):
                ids = self._address_ids("hosts", ipc(side), ep, counts)
                out[f"{side}_host"] = self.hosts.column(0, ids)
        if want & (set(ENDPOINT_FIELDS) | set(NETWORK_FIELDS)):
            encap = col("encap")
            enc, emap = (_absent(n, np.int16), _ro(np.zeros(1, np.uint64))) if encap is None \
                else _encap_key(encap)
            vni = intc("vni", pa.uint64())
        if want & set(ENDPOINT_FIELDS):
            for side in ("src", "dst"):
                ids = self._endpoint_ids(ipc(side), ipc(f"inner_{side}"), enc, emap, vni, ep,
                                         counts)
                for j, what in enumerate(("endpoint", "tenant", "network", "vnf")):
                    out[f"{side}_{what}"] = self.endpoints.column(j, ids)
        if want & set(NETWORK_FIELDS):
            ids = self._network_ids(enc, emap, vni, ep, counts)
            out["network"] = self.networks.column(0, ids)
            out["tenant"] = self.networks.column(1, ids)
        if want & set(SFLOW_FIELDS):
            agent = ipc("agent")
            out["device"] = self.devices.column(0, self._address_ids("devices", agent, ep,
                                                                     counts))
            for side in ("in", "out"):
                # out_if_format 1 = discarded (the value is a reason), 2 = multiple: no port
                fmt = _absent(n, np.uint8)
                if side == "out" and "out_if_format" in names:
                    f = as_array(batch.column("out_if_format"))
                    if f.type != pa.uint8():
                        f = pc.greater(f, 0).cast(pa.uint8())
                    fmt = _int_key(f, pa.uint8())
                ids = self._interface_ids(agent, intc(f"{side}_if", pa.uint32()), fmt, ep,
                                          counts)
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

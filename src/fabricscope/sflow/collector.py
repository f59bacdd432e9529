"""The live sFlow collector: receive, decode in batches, hand batches to a sink, account.

One worker = one UDP socket (``capture/udp.py``) read with ``recvmmsg`` straight into the
slots of a decode buffer (no copy); every ``batch_datagrams`` datagrams or
``flush_interval`` seconds the buffer is decoded (``SflowDecoder``) and the
record and counter batches go to the **sink**, a callable ``sink(records, counters,
accounting)``. While a batch decodes the socket is not read: the (large) kernel receive
buffer holds what arrives meanwhile, and its overflow is counted exactly (``/proc/net/udp``
drops of that socket).

With ``workers > 1`` each worker is a process with its own ``SO_REUSEPORT`` socket on the
same port (the kernel hashes each sender to one of them), its own decoder and accounting;
batches travel to the parent as Arrow IPC streams when there is a sink, and the
accountings are merged (``accounting.merge_dicts``).

Stop: ``stop()`` (the CLI calls it on SIGINT/SIGTERM) or the end of ``duration``. A worker
then reads what is still queued in its socket (until empty, at most ``drain_seconds``),
decodes and hands over everything, reads its socket's drop counter, and only then closes
the socket: nothing received is lost, and what the kernel dropped is counted.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pyarrow as pa

from fabricscope.capture.udp import UdpListener, UdpSender, open_udp_socket, slot_buffer
from fabricscope.decode.tables import DecodeConfig
from fabricscope.sflow.accounting import Accounting, merge_dicts
from fabricscope.sflow.decoder import SflowDecoder


class Sink(Protocol):
    """Where decoded batches go: ``sink(records, counters, accounting)``; ``close`` (if it
    has one) is called once at the end with the final accounting."""

    def __call__(self, records: pa.RecordBatch, counters: pa.RecordBatch,
                 accounting: dict[str, Any]) -> None: ...


@dataclass
class CollectorOptions:
    host: str = "127.0.0.1"
    port: int = 6343
    workers: int = 1
    duration: float | None = None
    forward: tuple[str, int] | None = None
    # decode this many datagrams at a time (a batch has fixed costs, ~2.5 ms of Arrow
    # arrays and counter rows: bench/sflow_decode.py's datagrams decoded 8% faster in
    # batches of 8,192 than of 4,096, and slower again in batches of 16,384)...
    batch_datagrams: int = 8192
    flush_interval: float = 1.0  # ...or what arrived in this many seconds
    recv_batch: int = 1024  # datagrams per recvmmsg call
    rcvbuf: int = 256 << 20
    drain_seconds: float = 5.0
    max_agents: int = 4096
    max_sources: int = 65536
    decode: DecodeConfig = field(default_factory=DecodeConfig)


def warm_up() -> None:
    """Load (or compile) the numba walks and build one Arrow batch, so that the first
    real batch is not slow while datagrams queue up."""
    from fabricscope.sflow import encode as E

    d = E.datagram(agent="192.0.2.1", seq=1, uptime_ms=1, samples=[
        E.flow_sample(seq=1, source_id_index=1, sampling_rate=1, sample_pool=1, input_if=1,
                      output_if=2, records=[E.raw_header(E.vxlan_frame(0, 128))]),
        E.counter_sample(seq=1, source_id_index=1, records=[E.port_name("x")])])
    buf = np.frombuffer(d, np.uint8).copy()
    SflowDecoder().decode_payloads(buf, np.array([0]), np.array([len(d)]), np.array([0]))


class _Worker:
    """The receive/decode loop of one socket (in this process or a worker process)."""

    def __init__(self, opts: CollectorOptions, listener: UdpListener,
                 emit: Callable[[pa.RecordBatch, pa.RecordBatch], None] | None) -> None:
        self.opts = opts
        self.listener = listener
        self.emit = emit
        self.decoder = SflowDecoder(opts.decode, accounting=Accounting(
            max_agents=opts.max_agents, max_sources=opts.max_sources))
        warm_up()
        self.forwarder: UdpSender | None = None
        if opts.forward is not None:
            self.forwarder = UdpSender(*opts.forward)
        # the decode buffer: datagrams are received straight into its slots (no copy);
        # a batch is decoded when batch_datagrams have arrived or the slots run out
        cap = max(opts.batch_datagrams, opts.recv_batch)
        self._cap = cap
        self._slot = listener.msgs.slot
        self._buf = slot_buffer(cap * self._slot)
        self._off = np.arange(cap, dtype=np.int64) * self._slot
        self._len = np.zeros(cap, np.int64)
        self._trunc = np.zeros(cap, np.int64)
        self._ts = np.zeros(cap, np.int64)
        self._pver = np.zeros(cap, np.int64)
        self._phi = np.zeros(cap, np.int64)
        self._plo = np.zeros(cap, np.int64)
        self._n = 0
        self.truncated = 0
        self.batches = 0
        self.stopped_by_drain_limit = False

    def _receive(self, timeout: float) -> int:
        """Receive into the free slots of the decode buffer (decoding first when full)."""
        if self._n >= self._cap:
            self.flush()
        lst = self.listener
        k = self._n
        n = lst.recv(timeout, into=self._buf, slot=k)
        if n == 0:
            return 0
        self._len[k:k + n] = lst.lengths[:n]
        self._trunc[k:k + n] = lst.truncated[:n]
        self._ts[k:k + n] = lst.ts_ns
        v, hi, lo = lst.msgs.peers(n)
        self._pver[k:k + n] = v
        self._phi[k:k + n] = hi
        self._plo[k:k + n] = lo
        self.truncated += int(lst.truncated[:n].sum())
        if self.forwarder is not None:
            self.forwarder.send(self._buf, self._off[k:k + n], self._len[k:k + n],
                                block=False)
        self._n += n
        return n

    def flush(self) -> None:
        n = self._n
        if n == 0:
            return
        recs, cnts = self.decoder.decode_payloads(
            self._buf, self._off[:n], self._len[:n], self._ts[:n], self._phi[:n],
            self._plo[:n], self._pver[:n], truncated=self._trunc[:n])
        self._n = 0
        self.batches += 1
        if self.emit is not None and (recs.num_rows or cnts.num_rows):
            self.emit(recs, cnts)

    def run(self, should_stop: Callable[[], bool], deadline: float | None,
            on_tick: Callable[[], None] | None = None) -> None:
        opts = self.opts
        last = time.monotonic()
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            if drain_until is None and (should_stop() or (deadline is not None
                                                          and now >= deadline)):
                drain_until = now + opts.drain_seconds
            n = self._receive(0.0 if drain_until is not None else 0.05)
            now = time.monotonic()
            if self._n >= opts.batch_datagrams or (self._n and now - last >= opts.flush_interval):
                self.flush()
                last = now
            if on_tick is not None:
                on_tick()
            if drain_until is not None:
                if n == 0:
                    break
                if now >= drain_until:
                    self.stopped_by_drain_limit = True
                    break
        self.flush()

    def socket_section(self) -> dict[str, Any]:
        lst = self.listener
        st = lst.stats()
        sec: dict[str, Any] = {
            "received": lst.received, "bytes": lst.bytes, "drops": st.drops if st else None,
            "rx_queue_bytes": st.rx_queue if st else None, "truncated": self.truncated,
            "rcvbuf": lst.rcvbuf, "recv_calls": lst.calls, "decode_batches": self.batches,
        }
        if self.stopped_by_drain_limit:
            sec["left_in_queue"] = True
        if self.forwarder is not None:
            sec["forwarded"] = self.forwarder.sent
            sec["forward_failed"] = self.forwarder.failed
        return sec

    def snapshot(self) -> dict[str, Any]:
        d = self.decoder.accounting.to_dict()
        d["socket"] = self.socket_section()
        return d

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()
        self.listener.close()


def _ipc(batch: pa.RecordBatch) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue()


def _unipc(data: bytes) -> pa.RecordBatch:
    with pa.ipc.open_stream(data) as r:
        return r.read_next_batch()


def _worker_main(opts: CollectorOptions, sock_fd: int, other_fds: list[int], conn: Any,
                 stop_ev: Any, deadline: float | None, with_data: bool) -> None:
    """Entry point of a worker process (forked: inherits the bound sockets)."""
    import socket as _socket

    for fd in other_fds:  # the other workers' sockets must close when those workers do
        with contextlib.suppress(OSError):
            os.close(fd)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sock = _socket.socket(fileno=sock_fd)
    lst = UdpListener("", 0, batch=opts.recv_batch, sock=sock)

    def emit(recs: pa.RecordBatch, cnts: pa.RecordBatch) -> None:
        conn.send(("data", _ipc(recs), _ipc(cnts)))

    w = _Worker(opts, lst, emit if with_data else None)
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            conn.send(("snapshot", w.snapshot()))

    try:
        w.run(lambda: stop.is_set() or stop_ev.is_set(), deadline, tick)
        conn.send(("final", w.snapshot()))
    finally:
        w.close()
        conn.close()


class Collector:
    """``Collector(options, sink).run()`` -> the final accounting (a dict).

    ``bind()`` may be called first to learn the port (port 0 = any free port);
    ``stop()`` is safe from signal handlers and other threads; ``snapshot()`` and
    ``registry()`` give the live accounting (for Prometheus).
    """

    def __init__(self, options: CollectorOptions | None = None,
                 sink: Sink | None = None) -> None:
        self.opts = options or CollectorOptions()
        self.sink = sink
        self._stop = threading.Event()
        self._socks: list[Any] = []
        self._snapshots: dict[int, dict[str, Any]] = {}
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        self.port: int | None = None
        self.workers = 0
        self.started_ns = 0
        self.ended_ns = 0

    # -- control -------------------------------------------------------------------------
    def bind(self) -> int:
        if self.port is not None:
            return self.port
        o = self.opts
        n = max(1, o.workers)
        first = open_udp_socket(o.host, o.port, rcvbuf=o.rcvbuf, reuseport=n > 1)
        port = int(first.getsockname()[1])
        self._socks = [first]
        for _ in range(n - 1):
            self._socks.append(open_udp_socket(o.host, port, rcvbuf=o.rcvbuf,
                                               reuseport=True))
        self.port = port
        self.workers = n
        return port

    def stop(self) -> None:
        self._stop.set()

    def snapshot(self) -> dict[str, Any]:
        """The live accounting (merged over workers)."""
        with self._lock:
            if self._worker is not None:
                return self._worker.snapshot()
            parts = list(self._snapshots.values())
        return merge_dicts(parts) if parts else merge_dicts([])

    def registry(self) -> Any:
        """A prometheus_client registry exposing :meth:`snapshot` (per-source series
        included)."""
        from fabricscope.sflow.accounting import registry

        return registry(self.snapshot)

    # -- running -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.bind()
        o = self.opts
        self.started_ns = time.time_ns()
        deadline = None if o.duration is None else time.monotonic() + o.duration
        try:
            if len(self._socks) == 1:
                final = self._run_here(deadline)
            else:
                final = self._run_workers(deadline)
        finally:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()
        self.ended_ns = time.time_ns()
        final["collector"] = {
            "listen": f"{o.host}:{self.port}", "workers": self.workers,
            "started_ns": self.started_ns, "ended_ns": self.ended_ns,
            "seconds": round((self.ended_ns - self.started_ns) / 1e9, 3),
        }
        close = getattr(self.sink, "close", None)
        if close is not None:
            close(final)
        return final

    def _run_here(self, deadline: float | None) -> dict[str, Any]:
        lst = UdpListener("", 0, batch=self.opts.recv_batch, sock=self._socks[0])
        snap_cache: list[Any] = [0.0, None]

        def accounting() -> dict[str, Any]:
            now = time.monotonic()
            if snap_cache[1] is None or now - snap_cache[0] >= self.opts.flush_interval:
                snap_cache[0] = now
                snap_cache[1] = w.snapshot()
            return snap_cache[1]  # type: ignore[no-any-return]

        def emit(recs: pa.RecordBatch, cnts: pa.RecordBatch) -> None:
            assert self.sink is not None
            self.sink(recs, cnts, accounting())

        w = _Worker(self.opts, lst, emit if self.sink is not None else None)
        with self._lock:
            self._worker = w
        try:
            w.run(self._stop.is_set, deadline)
            final = w.snapshot()
        finally:
            with self._lock:
                self._worker = None
            w.close()
        self._socks = []
        return final

    def _run_workers(self, deadline: float | None) -> dict[str, Any]:
        from multiprocessing.connection import wait

        ctx = mp.get_context("fork")
        stop_ev = ctx.Event()
        procs = []
        conns = []
        fds = [s.fileno() for s in self._socks]
        for k, s in enumerate(self._socks):
            parent, child = ctx.Pipe(duplex=False)
            others = [fd for fd in fds if fd != s.fileno()]
            p = ctx.Process(target=_worker_main, name=f"fabricscope-collect-{k}",
                            args=(self.opts, s.fileno(), others, child, stop_ev, deadline,
                                  self.sink is not None), daemon=True)
            p.start()
            child.close()
            procs.append(p)
            conns.append(parent)
        for s in self._socks:  # the workers own them now
            s.close()
        self._socks = []
        finals: dict[int, dict[str, Any]] = {}
        live = {id(c): k for k, c in enumerate(conns)}
        signalled = False
        while live:
            if self._stop.is_set() and not signalled:
                stop_ev.set()
                signalled = True
            ready = wait([c for c in conns if id(c) in live], timeout=0.2)
            for c in ready:
                conn: Any = c
                k = live[id(conn)]
                try:
                    msg: tuple[Any, ...] = conn.recv()
                except EOFError:
                    del live[id(conn)]
                    continue
                if msg[0] == "data":
                    assert self.sink is not None
                    self.sink(_unipc(msg[1]), _unipc(msg[2]), self.snapshot())
                elif msg[0] == "snapshot":
                    with self._lock:
                        self._snapshots[k] = msg[1]
                elif msg[0] == "final":
                    finals[k] = msg[1]
                    with self._lock:
                        self._snapshots[k] = msg[1]
        for p in procs:
            p.join(timeout=10)
        missing = [k for k in range(len(procs)) if k not in finals]
        final = merge_dicts([finals[k] for k in sorted(finals)])
        if missing:
            final["workers_lost"] = missing
        return final


# -- sinks ----------------------------------------------------------------------------------

class FileSink:
    """``--out FILE``: NDJSON (``.ndjson``/``.jsonl``/``.json``: records and counter rows,
    one object per line), Parquet (``.parquet``: records in FILE, counter rows in
    ``FILE.counters.parquet``, written as ``decode -f parquet`` writes them) or an Arrow
    IPC file (``.arrow``: counter rows in ``FILE.counters.arrow``; LZ4, written on a
    thread of its own, a fifth of Parquet's cost: the output for high rates); the final
    accounting in ``FILE.accounting.json``."""

    FORMATS: ClassVar[dict[str, str]] = {
        ".parquet": "parquet", ".arrow": "arrow", ".ndjson": "ndjson", ".jsonl": "ndjson",
        ".json": "ndjson"}

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fmt = self.FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise ValueError(f"{path}: --out must end in .ndjson, .parquet or .arrow")
        self.format = fmt
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = 0
        self.counters = 0
        self._pq: Any = None
        self._pqc: Any = None
        self._fh: Any = open(self.path, "w") if self.format == "ndjson" else None  # noqa: SIM115

    @property
    def counters_path(self) -> Path:
        return self.path.with_name(f"{self.path.name}.counters.{self.format}")

    @property
    def accounting_path(self) -> Path:
        return self.path.with_name(self.path.name + ".accounting.json")

    def _open(self, path: Path, schema: pa.Schema) -> Any:
        from fabricscope.records.sinks import open_sink

        return open_sink(self.format, str(path), schema)

    def __call__(self, records: pa.RecordBatch, counters: pa.RecordBatch,
                 accounting: dict[str, Any]) -> None:
        """Write a batch; a file that cannot be written (a full disk) raises a one-line
        ``OutputError`` naming it (the collector then stops)."""
        from fabricscope.errors import OutputError

        try:
            self._write(records, counters)
        except OSError as exc:
            raise OutputError(str(self.path), exc) from None

    def _write(self, records: pa.RecordBatch, counters: pa.RecordBatch) -> None:
        if self.format == "ndjson":
            from fabricscope.records.present import write_ndjson

            self.records += write_ndjson(records, self._fh)
            self.counters += write_ndjson(counters, self._fh)
            self._fh.flush()
            return
        if records.num_rows:
            if self._pq is None:
                self._pq = self._open(self.path, records.schema)
            self.records += self._pq.write(records)
        if counters.num_rows:
            if self._pqc is None:
                self._pqc = self._open(self.counters_path, counters.schema)
            self.counters += self._pqc.write(counters)

    def close(self, accounting: dict[str, Any]) -> None:
        from fabricscope.errors import OutputError

        try:
            self._close(accounting)
        except OSError as exc:
            raise OutputError(str(self.path), exc) from None

    def _close(self, accounting: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._pq is None and self.format != "ndjson":
            # an empty run still leaves a readable (empty) records file
            from fabricscope.records.arrow import PACKET_SCHEMA

            self._pq = self._open(self.path, PACKET_SCHEMA)
        from fabricscope.records.sinks import close_sinks

        close_sinks(self._pq, self._pqc)
        out = {**accounting, "output": {"records": self.records, "counters": self.counters}}
        self.accounting_path.write_text(json.dumps(out, indent=1) + "\n")


class StoreSink:
    """``--db LOCATION``: append every batch to the store (``fabricscope.store``; the
    embedded store stages them and seals them in the background, and at close); the
    final accounting is recorded with ``mark_ingested`` under the key ``collect:...``."""

    def __init__(self, location: str | None) -> None:
        from fabricscope.store import new_batch_id, open_store

        self.store = open_store(location, write=True)
        self._prefix = "collect-" + new_batch_id()
        self._n = 0
        self.records = 0
        self.counters = 0

    def __call__(self, records: pa.RecordBatch, counters: pa.RecordBatch,
                 accounting: dict[str, Any]) -> None:
        self.store.append(records, counters if counters.num_rows else None,
                          batch_id=f"{self._prefix}:{self._n}")
        self._n += 1
        self.records += records.num_rows
        self.counters += counters.num_rows

    def close(self, accounting: dict[str, Any]) -> None:
        try:
            self.store.seal()  # what is still staged: sorted and aggregated before exit
            summary = {k: v for k, v in accounting.items() if k != "agents"}
            summary["agents"] = len(accounting.get("agents", []))
            summary["records"] = self.records
            summary["counter_records"] = self.counters
            self.store.mark_ingested(self._prefix, summary)
        finally:
            self.store.close()


class TeeSink:
    """Several sinks at once."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def __call__(self, records: pa.RecordBatch, counters: pa.RecordBatch,
                 accounting: dict[str, Any]) -> None:
        for s in self.sinks:
            s(records, counters, accounting)

    def close(self, accounting: dict[str, Any]) -> None:
        for s in self.sinks:
            close = getattr(s, "close", None)
            if close is not None:
                close(accounting)


def install_signal_handlers(collector: Collector) -> Callable[[], None]:
    """SIGINT/SIGTERM -> ``collector.stop()``; returns a function restoring the old ones."""
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, lambda *_: collector.stop())

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    return restore


__all__ = ["Collector", "CollectorOptions", "FileSink", "Sink", "StoreSink", "TeeSink",
           "install_signal_handlers"]

"""Load test of the live collector on loopback: the highest lossless rate, and exact
accounting of every loss beyond it.

A sender process replays synthetic sFlow datagrams (``SyntheticStream``: 7 expanded flow
samples of 104..128-byte VXLAN headers each, extended switch on half, a counter sample
in every 10th datagram; sequence numbers renumbered on the fly, so any duration works)
at a fixed rate to ``fabricscope collect`` (a separate process, started fresh for every
run, ``--json`` accounting at the end). Sender and collector are pinned to different
CPUs when there are at least two.

1. Search: the rate doubles from ``--start`` (datagrams/s) while a ``--trial``-second run
   is lossless with less than a quarter second of traffic queued when the sender stops
   (the collector keeps up; a 256 MiB buffer would hide a slow collector for seconds) and
   the sender keeps up, then bisects between the last good and the first bad rate.
2. Confirm: the found rate for ``--duration`` seconds (default 10; the full test is
   ``--duration 60``) must lose nothing (else the rate steps down 5% and retries).
3. Overload: 3x that rate for ``--duration`` seconds, and the books must balance:
   ``sent == received + kernel socket drops`` exactly (plus, if any, the loopback
   backlog drops of /proc/net/softnet_stat, measured around the run: system-wide), and
   the collector's sequence-gap count must agree.

    .venv/bin/python bench/collector_load.py [--duration 10] [--trial 3] [--start 20000]
                                             [--workers 1] [--out parquet] [--json]

Rates are reported in datagrams/s and flow samples/s (7 per datagram). Not a test.
Target: >= 1,000,000 samples/s without loss, sender on the same machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES_PER_DATAGRAM = 7


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def sender(port: int, rate: float, duration: float, cpu: int | None, out: Any) -> None:
    """Send at ``rate`` datagrams/s for ``duration`` s; report what was sent."""
    from fabricscope.capture.udp import UdpSender
    from fabricscope.sflow.encode import SyntheticStream

    _pin(cpu)
    block = 4000
    st = SyntheticStream(block)
    tx = UdpSender("127.0.0.1", port, batch=256)
    sent = 0
    pos = 0
    first = 0
    tick = 0.0005
    t0 = time.perf_counter()
    while True:
        now = time.perf_counter() - t0
        if now >= duration:
            break
        due = int(rate * now) - sent
        if due <= 0:
            time.sleep(tick)
            continue
        k = min(due, 256, block - pos)
        tx.send(st.buf, st.offset[pos:pos + k], st.length[pos:pos + k], block=True)
        sent += k
        pos += k
        if pos == block:
            first += block
            st.renumber(first)
            pos = 0
    elapsed = time.perf_counter() - t0
    out.send({"sent": tx.sent, "failed": tx.failed, "seconds": elapsed})
    tx.close()


def queued_bytes(port: int) -> int:
    """Bytes waiting in the receive queue of the socket bound to ``port`` (/proc/net/udp)."""
    total = 0
    with open("/proc/net/udp") as fh:
        next(fh)
        for line in fh:
            parts = line.split()
            if parts[1].endswith(f":{port:04X}"):
                total += int(parts[4].split(":")[1], 16)
    return total


def softnet_drops() -> int:
    from fabricscope.capture.udp import softnet_drops as sd

    return sd()


def run(rate: float, duration: float, *, workers: int, out_fmt: str | None,
        cpus: tuple[int | None, int | None], stall: float = 0.0,
        rcvbuf_mib: int | None = None) -> dict[str, Any]:
    """One run: a fresh collector, a sender at ``rate`` for ``duration`` seconds. With
    ``stall``, the collector is stopped (SIGSTOP) for that many seconds mid-run."""
    port = free_port()
    args = [sys.executable, "-m", "fabricscope", "collect", "--listen", f"127.0.0.1:{port}",
            "--json", "--workers", str(workers), "--no-store"]
    if rcvbuf_mib is not None:
        args += ["--rcvbuf", str(rcvbuf_mib)]
    tmp = None
    if out_fmt:
        tmp = tempfile.mkdtemp(prefix="collect-load-")
        args += ["--out", str(Path(tmp) / f"out.{out_fmt}")]
    col_cpu = cpus[1]

    def pin() -> None:
        _pin(col_cpu)

    coll = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=pin if workers == 1 else None)
    assert coll.stderr is not None
    ready = coll.stderr.readline()
    if "compiling" in ready:  # a first run compiles the decoders first (minutes)
        ready = coll.stderr.readline()
    if "listening" not in ready:
        coll.kill()
        raise SystemExit(f"collector did not start: {ready}{coll.communicate()[1][-800:]}")
    soft0 = softnet_drops()
    parent, child = mp.get_context("fork").Pipe(duplex=False)
    p = mp.get_context("fork").Process(target=sender,
                                       args=(port, rate, duration, cpus[0], child))
    p.start()
    if stall:
        time.sleep(max(0.0, (duration - stall) / 2))
        coll.send_signal(signal.SIGSTOP)
        time.sleep(stall)
        coll.send_signal(signal.SIGCONT)
    res = parent.recv()
    queued = queued_bytes(port)  # how far behind the collector is when the sender stops
    p.join()
    time.sleep(1.0)  # the collector reads what is still queued
    coll.send_signal(signal.SIGTERM)
    stdout, stderr = coll.communicate(timeout=600)
    soft1 = softnet_drops()
    if coll.returncode != 0:
        raise SystemExit(f"collector failed: {stderr[-1000:]}")
    final = json.loads(stdout)
    sock = final["socket"]
    sent = int(res["sent"])
    received = int(sock["received"])
    drops = int(sock["drops"] or 0)
    backlog = soft1 - soft0
    r = {
        "target_rate": round(rate), "seconds": round(res["seconds"], 2),
        "sent": sent, "sender_failed": int(res["failed"]),
        "achieved_rate": round(sent / res["seconds"]),
        "received": received, "socket_drops": drops, "backlog_drops": backlog,
        "unaccounted": sent - received - drops - backlog,
        "lost_by_sequence": int(final["lost_datagrams"]),
        "decoded_flow_samples": int(final["flow_samples"]),
        "decode_events": final["events"],
        "collector_seconds": final["collector"]["seconds"],
    }
    r["queued_at_end_bytes"] = queued
    r["lossless"] = received == sent
    # keeping up: nothing lost, and less than a quarter second of traffic still queued
    # when the sender stopped (a large receive buffer hides a slow collector for a while)
    per_s = max(1.0, rate) * max(1.0, float(received and sock["bytes"] / received))
    r["keeps_up"] = r["lossless"] and queued < 0.25 * per_s
    r["samples_per_s"] = round(r["achieved_rate"] * SAMPLES_PER_DATAGRAM)
    if tmp:
        for f in Path(tmp).iterdir():
            f.unlink()
        os.rmdir(tmp)
    return r


def show(tag: str, r: dict[str, Any]) -> None:
    print(f"{tag:9s} target {r['target_rate']:>9,} dgram/s  sent {r['sent']:>10,} "
          f"({r['achieved_rate']:>9,}/s = {r['samples_per_s']:>10,} samples/s)  "
          f"received {r['received']:>10,}  socket drops {r['socket_drops']:>9,}  "
          f"backlog drops {r['backlog_drops']:>6,}  unaccounted {r['unaccounted']}  "
          f"seq gaps {r['lost_by_sequence']:,}  queued at end "
          f"{r['queued_at_end_bytes'] / 1e6:.1f} MB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0,
                    help="seconds of the confirm and overload runs (the full test: 60)")
    ap.add_argument("--trial", type=float, default=3.0, help="seconds of each search run")
    ap.add_argument("--start", type=float, default=20_000, help="first rate, datagrams/s")
    ap.add_argument("--max-rate", type=float, default=2_000_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", choices=["arrow", "parquet", "ndjson"], default=None,
                    help="also have the collector write its batches")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    cpus: tuple[int | None, int | None] = (None, None)
    if ncpu >= 2:
        cs = sorted(os.sched_getaffinity(0))
        cpus = (cs[0], cs[1])
    runs: list[dict[str, Any]] = []

    def trial(rate: float, secs: float, tag: str) -> dict[str, Any]:
        r = run(rate, secs, workers=a.workers, out_fmt=a.out, cpus=cpus)
        r["tag"] = tag
        runs.append(r)
        if not a.json:
            show(tag, r)
        return r

    good, bad = 0.0, 0.0
    rate = a.start
    while rate <= a.max_rate:
        r = trial(rate, a.trial, "search")
        keeps_up = r["achieved_rate"] >= 0.95 * rate
        if r["keeps_up"] and keeps_up:
            good = rate
            rate *= 2
        else:
            bad = rate
            break
    if bad:
        for _ in range(4):
            mid = (good + bad) / 2
            r = trial(mid, a.trial, "bisect")
            if r["keeps_up"] and r["achieved_rate"] >= 0.95 * mid:
                good = mid
            else:
                bad = mid
    confirmed = None
    rate = good
    for _ in range(8):
        if rate <= 0:
            break
        r = trial(rate, a.duration, "confirm")
        if r["lossless"]:
            confirmed = r
            break
        rate *= 0.95
    over = trial(3 * (confirmed["achieved_rate"] if confirmed else a.start), a.duration,
                 "overload")
    stalled = None
    if over["socket_drops"] == 0 and confirmed:
        # the sender could not outrun the collector here: show the accounting of real
        # losses by stalling the collector (SIGSTOP) behind a 4 MiB receive buffer
        r = run(confirmed["achieved_rate"], a.duration, workers=a.workers,
                out_fmt=a.out, cpus=cpus, stall=a.duration / 3, rcvbuf_mib=4)
        r["tag"] = "stall"
        runs.append(r)
        stalled = r
        if not a.json:
            show("stall", r)
    summary = {
        "lossless_rate_datagrams": confirmed["achieved_rate"] if confirmed else 0,
        "lossless_rate_samples": confirmed["samples_per_s"] if confirmed else 0,
        "lossless_run": confirmed, "overload_run": over,
        "stall_run": stalled,
        "books_balance": over["unaccounted"] == 0 and (stalled is None
                                                      or stalled["unaccounted"] == 0),
        "gaps_match_drops": over["lost_by_sequence"] == over["socket_drops"]
        + over["backlog_drops"],
        "runs": runs, "workers": a.workers, "cpus": ncpu, "loadavg": os.getloadavg(),
    }
    if a.json:
        print(json.dumps(summary, indent=1))
        return
    print()
    if confirmed:
        print(f"highest lossless rate: {confirmed['achieved_rate']:,} datagrams/s = "
              f"{confirmed['samples_per_s']:,} samples/s for {confirmed['seconds']:.0f} s "
              f"({confirmed['sent']:,} sent, {confirmed['received']:,} received)")
    else:
        print("no lossless rate found")
    print(f"at 3x: sent {over['sent']:,} = received {over['received']:,} + socket drops "
          f"{over['socket_drops']:,} + backlog drops {over['backlog_drops']:,} "
          f"(unaccounted: {over['unaccounted']}); sequence gaps seen by the collector: "
          f"{over['lost_by_sequence']:,}")
    if over["achieved_rate"] < 0.95 * over["target_rate"]:
        print(f"(the sender reached only {over['achieved_rate']:,}/s of the 3x target "
              f"{over['target_rate']:,}/s on this machine)")
    if stalled:
        print(f"collector stalled {a.duration / 3:.1f} s behind a 4 MiB buffer: sent "
              f"{stalled['sent']:,} = received {stalled['received']:,} + socket drops "
              f"{stalled['socket_drops']:,} + backlog drops {stalled['backlog_drops']:,} "
              f"(unaccounted: {stalled['unaccounted']}); sequence gaps "
              f"{stalled['lost_by_sequence']:,}")
    print(f"load average {summary['loadavg'][0]:.1f} on {ncpu} CPUs")


if __name__ == "__main__":
    main()

"""sFlow accounting: datagram and sample sequence gaps, wrap, restarts, duplicates,
reordering, agent drops, capped state, Prometheus exposition, merging workers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from fabricscope.sflow import Accounting, SflowDecoder
from fabricscope.sflow import encode as E
from fabricscope.sflow.accounting import merge_dicts, registry
from test_sflow_decode import decode

U32 = 1 << 32


def d(seq: int, *, agent: str = "192.0.2.1", sub: int = 0, up: int | None = None,
      samples: Sequence[bytes] = ()) -> bytes:
    return E.datagram(agent=agent, sub_agent=sub, seq=seq % U32,
                      uptime_ms=(1000 + seq if up is None else up) % U32, samples=samples)


def fs(seq: int, src: int = 1, drops: int = 0) -> bytes:
    return E.flow_sample(seq=seq % U32, source_id_index=src, sampling_rate=100,
                         sample_pool=seq * 100, input_if=1, output_if=2, drops=drops,
                         records=[])


def cs(seq: int, src: int = 1) -> bytes:
    return E.counter_sample(seq=seq, source_id_index=src,
                            records=[E.generic_interface_counters(ifindex=src)])


def run(*batches: Sequence[bytes], acc: Accounting | None = None) -> dict[str, Any]:
    dec = SflowDecoder(accounting=acc)
    for b in batches:
        decode(list(b), decoder=dec)
    return dec.accounting.to_dict()


def agent(res: dict[str, Any], name: str = "192.0.2.1", sub: int = 0) -> dict[str, Any]:
    return next(a for a in res["agents"] if a["agent"] == name and a["sub_agent"] == sub)


def test_contiguous() -> None:
    res = run([d(s) for s in range(1, 101)])
    a = agent(res)
    assert (a["datagrams"], a["lost"], a["duplicates"], a["reordered"], a["resets"]) == (
        100, 0, 0, 0, 0)
    assert res["datagrams"] == 100 and res["lost_datagrams"] == 0


def test_gaps() -> None:
    a = agent(run([d(1), d(2), d(5), d(6), d(10)]))
    assert a["lost"] == 2 + 3


def test_wrap_at_2_32() -> None:
    a = agent(run([d(U32 - 2), d(U32 - 1), d(U32), d(U32 + 1)]))
    assert (a["lost"], a["resets"]) == (0, 0)
    a = agent(run([d(U32 - 2), d(U32 + 1)]))  # 0xFFFFFFFE -> 1: 0xFFFFFFFF and 0 lost
    assert (a["lost"], a["resets"]) == (2, 0)


def test_restart_uptime_goes_down() -> None:
    batch = [d(1000, up=3_600_000), d(1001, up=3_601_000), d(1, up=500), d(2, up=1500),
             d(4, up=3500)]
    a = agent(run(batch))
    assert a["resets"] == 1
    assert a["lost"] == 1  # seq 3 after the restart; nothing counted across it
    assert a["datagrams"] == 5


def test_uptime_wrap_is_not_a_restart() -> None:
    a = agent(run([d(7, up=U32 - 1000), d(8, up=U32 - 10), d(9, up=50)]))
    assert (a["resets"], a["lost"]) == (0, 0)


def test_sequence_jump_back_beyond_the_window_is_a_reset() -> None:
    a = agent(run([d(50_000), d(50_001, up=1000 + 50_000), d(3, up=1000 + 50_002)]))
    assert (a["resets"], a["lost"]) == (1, 0)


def test_duplicates() -> None:
    a = agent(run([d(1), d(2), d(2), d(3), d(1)]))
    assert (a["duplicates"], a["lost"], a["reordered"]) == (2, 0, 0)


def test_reordering_fills_gaps() -> None:
    a = agent(run([d(1), d(3), d(2), d(6), d(4)], [d(5), d(7)]))
    assert (a["lost"], a["reordered"], a["duplicates"]) == (0, 3, 0)


def test_late_arrival_older_than_the_first_seen() -> None:
    a = agent(run([d(10), d(11), d(9), d(12)]))
    assert (a["lost"], a["reordered"]) == (0, 1)


def test_sub_agents_and_agents_count_separately() -> None:
    res = run([d(1, sub=0), d(1, sub=1), d(2, sub=0), d(3, sub=1),
               d(1, agent="2001:db8::1"), d(2, agent="2001:db8::1")])
    assert agent(res, sub=0)["lost"] == 0
    assert agent(res, sub=1)["lost"] == 1
    assert agent(res, "2001:db8::1")["datagrams"] == 2
    assert res["lost_datagrams"] == 1


def test_sample_sequences_per_source_and_kind() -> None:
    batch = [
        d(1, samples=[fs(1, src=1), fs(1, src=2), cs(1, src=1)]),
        d(2, samples=[fs(2, src=1), fs(4, src=2), cs(2, src=1)]),   # src 2: 2, 3 lost
        d(3, samples=[fs(5, src=1), cs(4, src=1)]),                  # src 1: 3, 4 lost
    ]
    res = run(batch)
    a = agent(res)
    by = {(s["kind"], s["source_id_index"]): s for s in a["sources"]}
    assert by[("flow", 1)]["lost"] == 2
    assert by[("flow", 2)]["lost"] == 2
    assert by[("counters", 1)]["lost"] == 1
    assert a["lost_samples"] == 5 and res["lost_samples"] == 5
    assert (res["samples"], res["flow_samples"], res["counter_samples"]) == (8, 5, 3)
    assert a["samples"] == 8


def test_agent_drops() -> None:
    batch = [d(1, samples=[fs(1, drops=10)]), d(2, samples=[fs(2, drops=15)]),
             d(3, samples=[fs(3, drops=15)]), d(4, samples=[fs(4, drops=22)])]
    res = run(batch)
    assert res["agent_drops"] == 12  # counted from the first value seen
    wrap = [d(1, samples=[fs(1, drops=U32 - 2)]), d(2, samples=[fs(2, drops=3)])]
    assert run(wrap)["agent_drops"] == 5


def test_samples_of_a_restarted_agent_start_over() -> None:
    batch = [d(500, up=900_000, samples=[fs(7000, drops=4)]),
             d(1, up=10, samples=[fs(1, drops=2)]),
             d(2, up=20, samples=[fs(2, drops=3)])]
    a = agent(run(batch))
    src = a["sources"][0]
    assert (src["lost"], src["resets"], src["agent_drops"]) == (0, 1, 3)


def test_agent_cap_and_overflow() -> None:
    acc = Accounting(max_agents=4, max_sources=3)
    batch = [d(1, agent=f"10.0.0.{i}", samples=[fs(1, src=i)]) for i in range(1, 11)]
    res = run(batch, batch, acc=acc)
    assert len(res["agents"]) == 4
    ov = res["overflow"]
    assert (ov["agents_tracked"], ov["untracked_datagrams"]) == (4, 12)
    assert (ov["sources_tracked"], ov["untracked_samples"]) == (3, 2 + 12)
    assert res["datagrams"] == 20 and res["samples"] == 20


def test_spoofed_agents_do_not_grow_memory() -> None:
    acc = Accounting(max_agents=16, max_sources=16)
    before = sum(a.nbytes for a in vars(acc).values() if hasattr(a, "nbytes"))
    batch = [d(1, agent=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", samples=[fs(1)])
             for i in range(5000)]
    res = run(batch, acc=acc)
    after = sum(a.nbytes for a in vars(acc).values() if hasattr(a, "nbytes"))
    assert after == before
    assert res["overflow"]["untracked_datagrams"] == 5000 - 16


def test_unattributed_datagrams_name_their_sender() -> None:
    import numpy as np

    dec = SflowDecoder()
    bad = b"\0\0\0\x04junk"
    buf = np.frombuffer(bad * 3, np.uint8).copy()
    dec.decode_payloads(buf, np.array([0, 8, 16]), np.array([8, 8, 8]), np.array([1, 2, 3]),
                        peer_hi=np.zeros(3, np.int64),
                        peer_lo=np.full(3, (0xFFFF << 32) | 0xC0000201, np.int64),
                        peer_ver=np.full(3, 4, np.int64))
    res = dec.accounting.to_dict()
    assert res["unattributed_datagrams"] == 3
    assert res["unattributed_peers"] == {"192.0.2.1": 3}
    assert res["events"] == {"sflow_bad_version": 3}


def test_prometheus_registry() -> None:
    from prometheus_client import generate_latest

    dec = SflowDecoder()
    decode([d(1, samples=[fs(1)]), d(3, samples=[fs(2)])], decoder=dec)
    text = generate_latest(registry(dec.accounting.to_dict)).decode()
    assert 'fabricscope_sflow_datagrams_total{agent="192.0.2.1",sub_agent="0"} 2.0' in text
    assert 'fabricscope_sflow_datagrams_lost_total{agent="192.0.2.1",sub_agent="0"} 1.0' in text
    assert ('fabricscope_sflow_source_samples_total{agent="192.0.2.1",kind="flow",'
            'source_id="0:1",sub_agent="0"} 2.0') in text
    assert 'fabricscope_sflow_untracked_total{table="agents"} 0.0' in text


def test_merge_workers() -> None:
    one = run([d(1, agent="10.0.0.1"), d(3, agent="10.0.0.1")])
    two = run([d(1, agent="10.0.0.2", samples=[fs(1)]), d(2, agent="10.0.0.2")])
    one["socket"] = {"received": 2, "drops": 1}
    two["socket"] = {"received": 2, "drops": 0}
    m = merge_dicts([one, two])
    assert (m["datagrams"], m["lost_datagrams"], m["samples"]) == (4, 1, 1)
    assert m["socket"] == {"received": 4, "drops": 1}
    assert {a["agent"] for a in m["agents"]} == {"10.0.0.1", "10.0.0.2"}


def test_window_is_a_power_of_two() -> None:
    """Bit positions are taken modulo the window with a mask, so the window must be a
    power of two (at least 64 bits: one word)."""
    for bad in (0, 32, 96, 1000):
        with pytest.raises(ValueError):
            Accounting(window=bad)
    assert Accounting(window=64).window == 64
    assert Accounting(window=4096).window == 4096

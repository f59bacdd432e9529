"""Trace accuracy against the simulator's ground truth (issue 7's proof): every sampled hop
of every sampled flow is found, no false hop, VNF sequences true; the impact of the
erroring link names exactly the tenants whose flows crossed it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow.compute as pc
import pytest

from fabricscope import query
from fabricscope.inventory.fileformat import read_file
from fabricscope.pipeline import FileDecoder
from fabricscope.query.accuracy import evaluate
from fabricscope.sim import SimParams, load_truth, simulate
from fabricscope.store import open_store


@pytest.fixture(scope="module")
def fabric(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("acc")
    simulate(d / "sim", SimParams.preset("demo", seed=3, truth_samples=True))
    db = str(d / "store")
    with open_store(db, write=True) as st:
        for step in FileDecoder(d / "sim" / "sflow.pcap"):
            st.append(step.records, step.counters)
    truth = load_truth(d / "sim")
    start = datetime.fromisoformat(truth.meta["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(truth.meta["end"].replace("Z", "+00:00")) + timedelta(seconds=1)
    return {"dir": d, "db": db, "truth": truth, "inv": read_file(d / "sim" / "inventory.yaml"),
            "start": start, "end": end}


def test_every_sampled_hop_found_and_no_false_hop(fabric: dict[str, Any]) -> None:
    with open_store(fabric["db"]) as st:
        r = evaluate(st, fabric["inv"], fabric["truth"], fabric["start"], fabric["end"])
    assert r["flows_sampled"] > 30
    assert r["flows_traced"] == r["flows_sampled"]
    assert r["hop_recall"] == 1.0, r["examples"]["missed_hops"]
    assert r["hop_precision"] == 1.0, r["examples"]["false_hops"]
    assert r["vnf_false"] == 0, r["examples"]["vnf_false"]
    assert r["unmatched_flows"] == 0


def test_impact_of_the_erroring_link_is_the_true_tenants(fabric: dict[str, Any]) -> None:
    truth = fabric["truth"]
    ev = next(e for e in truth.events if e["type"] == "link-errors")
    dev, ifname = ev["link"]["b"]["device"], ev["link"]["b"]["interface"]
    # true tenants: flows with a sample (that reached the collector) at either end of the link
    a_dev, a_if = ev["link"]["a"]["device"], ev["link"]["a"]["interface"]
    hops = truth.hops.to_pylist()
    crossing = {h["flow_id"] for h in hops
                if (h["device"], h["in_ifname"]) == (dev, ifname)
                or (h["device"], h["out_ifname"]) == (dev, ifname)
                or (h["device"], h["in_ifname"]) == (a_dev, a_if)
                or (h["device"], h["out_ifname"]) == (a_dev, a_if)}
    s = truth.table("samples")
    s = s.filter(pc.invert(s["lost"]))
    sampled = {r["flow_id"] for r in s.select(["flow_id"]).to_pylist()} & crossing
    tenants = {r["tenant"] for r in truth.flows.to_pylist() if r["flow_id"] in sampled}
    r = query.impact(dev, interface=ifname, since=fabric["start"], until=fabric["end"],
                     db=fabric["db"], inventory=fabric["inv"])
    assert {t["tenant"] for t in r["tenants"]} == tenants

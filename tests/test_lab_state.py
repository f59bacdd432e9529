"""The lab's state journal, its inventory, its verifier's sFlow framing walk and its CLI
without root."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fabricscope.lab.inventory import inventory_document, to_yaml
from fabricscope.lab.plan import LabConfig, build_plan
from fabricscope.lab.state import Journal
from fabricscope.lab.verify import counter_sources

T0 = "2026-11-25T10:00:00.000Z"
T1 = "2026-11-25T10:05:00.000Z"
T2 = "2026-11-25T10:07:00.000Z"


def test_journal_survives_a_torn_last_line(tmp_path: Path) -> None:
    j = Journal(tmp_path / "state.jsonl")
    assert not j.exists() and j.records() == [] and j.config() is None
    cfg = LabConfig(spines=3, run_dir=str(tmp_path))
    j.append({"kind": "lab", "config": cfg.to_dict(), "at": T0})
    j.append({"kind": "netns", "name": "fs-sw"})
    with open(j.path, "a") as f:
        f.write('{"kind": "netns", "na')  # crash mid-write
    assert [r["kind"] for r in j.records()] == ["lab", "netns"]
    assert j.config() == cfg and j.created_at() == T0 and not j.is_up()


def test_journal_events(tmp_path: Path) -> None:
    j = Journal(tmp_path / "state.jsonl")
    j.append({"kind": "event", "type": "migrate", "endpoint": "a2", "from": "hv3",
              "to": "hv2", "at": T1})
    j.append({"kind": "event", "type": "migrate", "endpoint": "a2", "from": "hv2",
              "to": "hv4", "at": T2})
    j.append({"kind": "event", "type": "chain", "name": "web-chain", "inserted": True,
              "at": T1})
    j.append({"kind": "event", "type": "impair", "link": "leaf1-spine1", "on": True, "at": T1})
    assert j.placement() == {"a2": "hv4"}
    assert j.chains_inserted() == {"web-chain": T1}
    assert list(j.impaired()) == ["leaf1-spine1"]
    j.append({"kind": "event", "type": "impair", "link": "leaf1-spine1", "on": False,
              "at": T2})
    j.append({"kind": "event", "type": "chain", "name": "web-chain", "inserted": False,
              "at": T2})
    assert j.impaired() == {} and j.chains_inserted() == {"web-chain": None}


def _events() -> list[dict[str, object]]:
    return [
        {"type": "chain", "name": "web-chain", "inserted": True, "at": T1},
        {"type": "migrate", "endpoint": "a2", "from": "hv3", "to": "hv2", "at": T2},
    ]


def test_inventory_versions_follow_the_events() -> None:
    plan = build_plan(LabConfig(), {"a2": "hv2"})
    ifindex = {p.name: 10 + i for i, p in enumerate(p for s in plan.switches for p in s.ports)}
    doc = inventory_document(plan, ifindex, created=T0, events=_events(), now=T2)
    a2 = [e for e in doc["endpoints"] if e["name"] == "a2"]
    assert [(e["host"], e.get("valid_from"), e.get("valid_to")) for e in a2] == [
        ("hv3", T0, T2), ("hv2", T2, None)]
    (chain,) = doc["chains"]
    assert chain["valid_from"] == T1 and "valid_to" not in chain
    assert chain["groups"] == [{"name": "firewalls", "vnfs": ["fw1"]}]
    assert {v["name"] for v in doc["vnfs"]} == {"fw1", "rta"}
    leaf1 = next(d for d in doc["devices"] if d["name"] == "leaf1")
    assert leaf1["agent"] == "172.30.2.1"
    assert all("ifindex" in i for i in leaf1["interfaces"])
    # overlapping tenants: same IPs, different networks
    a1 = next(e for e in doc["endpoints"] if e["name"] == "a1")
    b1 = next(e for e in doc["endpoints"] if e["name"] == "b1")
    assert a1["ips"] == b1["ips"] and a1["network"] != b1["network"]
    text = to_yaml(doc)
    assert text.startswith("# The fabricscope lab's inventory")
    assert yaml.safe_load(text) == doc


def test_inventory_validates_against_the_inventory_format() -> None:
    ff = pytest.importorskip("fabricscope.inventory.fileformat")
    plan = build_plan(LabConfig(), {"a2": "hv2"})
    ifindex = {p.name: 10 + i for i, p in enumerate(p for s in plan.switches for p in s.ports)}
    doc = inventory_document(plan, ifindex, created=T0, events=_events(), now=T2)
    res = ff.check_text(to_yaml(doc), "lab.yaml")
    assert res.ok, [str(p) for p in res.problems]


def _frame(payload: bytes) -> bytes:
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0, 64, 17, 0,
                     bytes([169, 254, 250, 2]), bytes([169, 254, 250, 1]))
    udp = struct.pack("!HHHH", 40000, 6343, 8 + len(payload), 0)
    return eth + ip + udp + payload


def _pcap(frames: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for f in frames:
        out += struct.pack("<IIII", 0, 0, len(f), len(f)) + f
    return out


def test_counter_sources_walks_the_sample_list(tmp_path: Path) -> None:
    counters = struct.pack("!III", 1, 7, 0)  # seq, source (class 0, index 7), 0 records
    flow = b"\x00" * 32
    dg = struct.pack("!II4sIIII", 5, 1, bytes([172, 30, 2, 1]), 0, 1, 100, 3)
    dg += struct.pack("!II", 1, len(flow)) + flow
    dg += struct.pack("!II", 2, len(counters)) + counters
    dg += struct.pack("!II", 2, 1000)  # a sample that claims more bytes than there are
    p = tmp_path / "c.pcap"
    p.write_bytes(_pcap([_frame(dg), _frame(b"junk"), b"short"]))
    assert counter_sources(p) == {"172.30.2.1": {7}}
    p.write_bytes(b"not a pcap")
    assert counter_sources(p) == {}


def _cli(args: list[str]) -> tuple[int, str]:
    from fabricscope.cli.app import build_app

    app = build_app()
    res = CliRunner().invoke(app, args)
    msg = res.output
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        from fabricscope.errors import FabricscopeError

        assert isinstance(res.exception, FabricscopeError), res.exception
        return res.exception.exit_code, str(res.exception)
    return res.exit_code, msg


def test_cli_dry_run_prints_the_commands(tmp_path: Path) -> None:
    code, out = _cli(["lab", "up", "--dry-run", "--run-dir", str(tmp_path / "r"),
                      "--hosts", "2", "--leaves", "1", "--spines", "1"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "ip netns add fs-sw"
    assert any(ln.startswith("ip netns exec fs-sw ovs-vswitchd") for ln in lines)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("cmd", [["up"], ["down"], ["status"], ["traffic"]])
def test_cli_needs_root(cmd: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, msg = _cli(["lab", *cmd])
    assert code == 2
    assert "needs root" in msg and "\n" not in msg.strip()


def test_cli_bad_option_is_a_usage_error() -> None:
    code, msg = _cli(["lab", "up", "--dry-run", "--prefix", "Bad"])
    assert code == 2 and "--prefix" in msg

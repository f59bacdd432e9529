"""Inventory history: snapshots, derived validity, what changed and when."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fabricscope.errors import InputError, UsageError
from fabricscope.inventory.fileformat import InventoryFileError
from fabricscope.inventory.history import InventoryHistory, default_dir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fabric.yaml"


def T(hhmm: str, day: int = 25) -> datetime:
    return datetime.fromisoformat(f"2026-11-{day:02d}T{hhmm}:00+00:00")


V1 = """\
tenants:
  - name: acme
networks:
  - {name: web, tenant: acme, vni: 5001, subnets: [10.1.0.0/24]}
hosts:
  - {name: hv-1, tunnel_ips: [172.16.1.11]}
  - {name: hv-2, tunnel_ips: [172.16.1.12]}
endpoints:
  - {name: web-1, tenant: acme, network: web, host: hv-1, ips: [10.1.0.5]}
  - {name: web-2, tenant: acme, network: web, host: hv-1, ips: [10.1.0.6]}
"""
# web-1 moved to hv-2, web-2 was deleted, web-3 was created
V2 = """\
tenants:
  - name: acme
networks:
  - {name: web, tenant: acme, vni: 5001, subnets: [10.1.0.0/24]}
hosts:
  - {name: hv-1, tunnel_ips: [172.16.1.11]}
  - {name: hv-2, tunnel_ips: [172.16.1.12]}
endpoints:
  - {name: web-1, tenant: acme, network: web, host: hv-2, ips: [10.1.0.5]}
  - {name: web-3, tenant: acme, network: web, host: hv-2, ips: [10.1.0.7]}
"""


@pytest.fixture
def hist(tmp_path: Path) -> InventoryHistory:
    return InventoryHistory(tmp_path / "inv")


def write(tmp_path: Path, text: str, name: str = "fabric.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_change_load_again_diff_shows_the_change_with_its_time(
    hist: InventoryHistory, tmp_path: Path
) -> None:
    f = write(tmp_path, V1)
    first = hist.load_file(f, at=T("09:00"))
    assert first.first and not first.unchanged
    assert first.snapshot.seq == 1
    assert first.summary() == {"added": 6, "changed": 0, "removed": 0}

    f.write_text(V2)
    second = hist.load_file(f, at=T("10:05"))
    assert not second.first and second.snapshot.seq == 2
    assert [str(c) for c in second.changes] == [
        "2026-11-25T10:05:00Z changed endpoint web-1: host: hv-1 -> hv-2",
        "2026-11-25T10:05:00Z removed endpoint web-2",
        "2026-11-25T10:05:00Z added endpoint web-3",
    ]

    changes = hist.diff(T("10:00"), T("10:10"))
    assert [str(c) for c in changes] == [
        "2026-11-25T10:05:00Z changed endpoint web-1: host: hv-1 -> hv-2",
        "2026-11-25T10:05:00Z removed endpoint web-2",
        "2026-11-25T10:05:00Z added endpoint web-3",
    ]
    # nothing changed within either side of the load
    assert hist.diff(T("09:10"), T("10:00")) == []
    assert hist.diff(T("10:06"), T("12:00")) == []
    # and backwards: the same change, reversed
    back = hist.diff(T("10:10"), T("10:00"))
    assert [(c.op, c.key) for c in back] == [
        ("changed", "web-1"), ("added", "web-2"), ("removed", "web-3")]
    assert back[0].fields[0].old == "hv-2" and back[0].fields[0].new == "hv-1"


def test_validity_is_derived_from_the_snapshots(hist: InventoryHistory, tmp_path: Path) -> None:
    f = write(tmp_path, V1)
    hist.load_file(f, at=T("09:00"))
    f.write_text(V2)
    hist.load_file(f, at=T("10:05"))
    inv = hist.current()
    # in the first snapshot: open start (what was true before the first load is unknown,
    # the first snapshot stands for it)
    w1 = inv.versions("endpoints", "web-1")
    assert [(v.valid_from, v.valid_to, v.host) for v in w1] == [  # type: ignore[attr-defined]
        (None, T("10:05"), "hv-1"),
        (T("10:05"), None, "hv-2"),
    ]
    assert [(v.valid_from, v.valid_to) for v in inv.versions("endpoints", "web-2")] == [
        (None, T("10:05"))]
    assert [(v.valid_from, v.valid_to) for v in inv.versions("endpoints", "web-3")] == [
        (T("10:05"), None)]
    # a question about the past uses the past
    assert inv.endpoint_by_ip("10.1.0.5", 5001, T("08:00")).host == "hv-1"  # type: ignore[union-attr]
    assert inv.endpoint_by_ip("10.1.0.5", 5001, T("10:04")).host == "hv-1"  # type: ignore[union-attr]
    assert inv.endpoint_by_ip("10.1.0.5", 5001, T("10:05")).host == "hv-2"  # type: ignore[union-attr]
    assert inv.endpoint_by_ip("10.1.0.6", 5001, T("10:30")) is None
    assert inv.endpoint_by_ip("10.1.0.7", 5001, T("10:00")) is None
    # facts that never changed have one open version
    assert [(v.valid_from, v.valid_to) for v in inv.versions("hosts", "hv-1")] == [(None, None)]
    # provenance
    assert all(v.source == f"file:{f.resolve()}" for v in inv)


def test_a_fact_that_comes_back_gets_a_new_version(hist: InventoryHistory, tmp_path: Path) -> None:
    f = write(tmp_path, V1)
    hist.load_file(f, at=T("09:00"))
    f.write_text(V2)
    hist.load_file(f, at=T("10:00"))
    f.write_text(V1)
    hist.load_file(f, at=T("11:00"))
    inv = hist.current()
    assert [(v.valid_from, v.valid_to) for v in inv.versions("endpoints", "web-2")] == [
        (None, T("10:00")), (T("11:00"), None)]
    assert inv.endpoint("web-2", T("10:30")) is None


def test_declared_validity_is_kept_through_history(hist: InventoryHistory) -> None:
    hist.load_file(EXAMPLE, at=T("08:00"))
    inv = hist.current()
    assert inv.endpoint_by_ip("10.1.0.5", 5001, T("10:04")).host == "hv-1"  # type: ignore[union-attr]
    assert inv.endpoint_by_ip("10.1.0.5", 5001, T("10:07")).host == "hv-3"  # type: ignore[union-attr]
    assert [str(c) for c in hist.diff(T("10:00"), T("10:10"))] == [
        "2026-11-25T10:05:00Z changed endpoint web-1: host: hv-1 -> hv-3"]


def test_a_newer_file_that_rewrites_the_past_wins_for_that_time(
    hist: InventoryHistory, tmp_path: Path
) -> None:
    f = write(tmp_path, V1)
    hist.load_file(f, at=T("09:00"))
    # at 12:00 someone writes down that web-1 really moved at 10:05
    corrected = V1.replace(
        "  - {name: web-1, tenant: acme, network: web, host: hv-1, ips: [10.1.0.5]}\n",
        "  - {name: web-1, tenant: acme, network: web, host: hv-1, ips: [10.1.0.5],"
        " valid_to: 2026-11-25T10:05:00Z}\n"
        "  - {name: web-1, tenant: acme, network: web, host: hv-2, ips: [10.1.0.5],"
        " valid_from: 2026-11-25T10:05:00Z}\n",
    )
    f.write_text(corrected)
    res = hist.load_file(f, at=T("12:00"))
    assert [c.op for c in res.changes] == ["changed"]
    inv = hist.current()
    assert inv.endpoint("web-1", T("10:00")).host == "hv-1"  # type: ignore[union-attr]
    assert inv.endpoint("web-1", T("10:30")).host == "hv-2"  # type: ignore[union-attr]
    assert inv.endpoint("web-1", T("13:00")).host == "hv-2"  # type: ignore[union-attr]
    # never two versions at once
    for t in (T("09:00"), T("10:05"), T("11:59"), T("12:00"), T("12:01")):
        assert len([v for v in inv.versions("endpoints", "web-1") if v.valid_at(t)]) == 1


def test_loading_the_same_content_records_nothing(hist: InventoryHistory, tmp_path: Path) -> None:
    f = write(tmp_path, V1)
    hist.load_file(f, at=T("09:00"))
    # same facts, different spelling (flow style, comments, IPv4-mapped form)
    f.write_text("# same\n" + V1.replace("[172.16.1.11]", "['::ffff:172.16.1.11']"))
    res = hist.load_file(f, at=T("10:00"))
    assert res.unchanged and res.changes == [] and res.snapshot.seq == 1
    assert len(hist.snapshots()) == 1


def test_history_only_moves_forward(hist: InventoryHistory, tmp_path: Path) -> None:
    f = write(tmp_path, V1)
    hist.load_file(f, at=T("10:00"))
    f.write_text(V2)
    with pytest.raises(UsageError, match="before the last load"):
        hist.load_file(f, at=T("09:00"))


def test_an_invalid_file_records_nothing(hist: InventoryHistory, tmp_path: Path) -> None:
    f = write(tmp_path, V1.replace("host: hv-1, ips: [10.1.0.5]", "host: hv-9, ips: [10.1.0.5]"))
    with pytest.raises(InventoryFileError, match=r"fabric\.yaml:9: endpoints\[0\]\.host: host 'hv-9'"):
        hist.load_file(f, at=T("10:00"))
    assert hist.snapshots() == []


def test_snapshots_are_append_only_files(hist: InventoryHistory, tmp_path: Path) -> None:
    f = write(tmp_path, V1)
    hist.load_file(f, at=T("09:00"))
    snap1 = hist.snapshot_dir / "00000001.json"
    before = snap1.read_bytes()
    f.write_text(V2)
    hist.load_file(f, at=T("10:05"))
    assert snap1.read_bytes() == before
    assert sorted(p.name for p in hist.snapshot_dir.iterdir()) == ["00000001.json", "00000002.json"]
    data = json.loads((hist.snapshot_dir / "00000002.json").read_text())
    assert data["at"] == "2026-11-25T10:05:00Z"
    assert data["source"] == f"file:{f.resolve()}"
    assert data["content"]["version"] == 1
    assert {c["key"] for c in data["changes"]} == {"web-1", "web-2", "web-3"}
    # another process sees the same thing
    again = InventoryHistory(hist.directory)
    assert [s.seq for s in again.snapshots()] == [1, 2]
    assert str(again.snapshots()[1].changes[0]).endswith("host: hv-1 -> hv-2")


def test_sources_are_separate_histories(hist: InventoryHistory, tmp_path: Path) -> None:
    underlay = write(tmp_path, "hosts:\n  - {name: hv-1, tunnel_ips: [172.16.1.11]}\n", "u.yaml")
    overlay = write(tmp_path, "tenants: [{name: acme}]\n"
                    "endpoints:\n  - {name: web-1, tenant: acme, host: hv-1, ips: [10.1.0.5]}\n",
                    "o.yaml")
    # the overlay alone refers to a host nobody declared
    with pytest.raises(InventoryFileError, match="host 'hv-1' is not defined"):
        InventoryHistory(tmp_path / "other").load_file(overlay, at=T("09:00"))
    hist.load_file(underlay, at=T("09:00"))
    res = hist.load_file(overlay, at=T("09:30"))
    assert res.first  # first load of that source: nothing "removed" from the underlay
    inv = hist.current()
    assert inv.host("hv-1", T("10:00")) is not None
    assert inv.endpoint("web-1", T("10:00")) is not None
    assert len(hist.sources()) == 2
    # reloading the overlay without the endpoint removes only the endpoint
    overlay.write_text("tenants: [{name: acme}]\n")
    res = hist.load_file(overlay, at=T("11:00"))
    assert [(c.op, c.key) for c in res.changes] == [("removed", "web-1")]
    inv = hist.current()
    assert inv.endpoint("web-1", T("12:00")) is None
    assert inv.host("hv-1", T("12:00")) is not None


def test_importers_record_documents(hist: InventoryHistory) -> None:
    doc = {"tenants": [{"name": "acme", "external_id": "6c1f"}],
           "networks": [{"name": "web", "tenant": "acme", "vni": 77}]}
    res = hist.record(doc, source="openstack", at=T("09:00"))
    assert res.first and res.snapshot.source == "openstack"
    net = hist.current().network_by_vni(77, T("10:00"))
    assert net is not None and net.source == "openstack"
    with pytest.raises(InventoryFileError, match=r"openstack: networks\[0\]\.vni"):
        hist.record({"networks": [{"name": "web", "vni": "x"}]}, source="openstack")


def test_concurrent_loads_get_distinct_numbers(hist: InventoryHistory, tmp_path: Path) -> None:
    files = [write(tmp_path, f"tenants: [{{name: t{i}}}]\n", f"f{i}.yaml") for i in range(8)]
    errors: list[BaseException] = []

    def load(p: Path) -> None:
        try:
            InventoryHistory(hist.directory).load_file(p, at=T("09:00"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(p,)) for p in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(s.seq for s in hist.snapshots()) == list(range(1, 9))
    assert {t.key for t in hist.current().facts("tenants", T("10:00"))} == {f"t{i}" for i in range(8)}
    assert not [p for p in hist.snapshot_dir.iterdir() if p.name.startswith(".tmp")]


def test_a_damaged_snapshot_is_named(hist: InventoryHistory, tmp_path: Path) -> None:
    hist.load_file(write(tmp_path, V1), at=T("09:00"))
    (hist.snapshot_dir / "00000002.json").write_text("{not json")
    with pytest.raises(InputError, match=r"00000002\.json"):
        hist.current()


def test_default_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FABRICSCOPE_HOME", str(tmp_path))
    assert default_dir() == tmp_path / "inventory"
    monkeypatch.delenv("FABRICSCOPE_HOME")
    assert default_dir().name == "inventory"
    assert "fabricscope" in str(default_dir())


def test_empty_history(hist: InventoryHistory) -> None:
    assert hist.snapshots() == []
    assert len(hist.current()) == 0
    assert hist.diff(T("09:00"), T("10:00")) == []
    assert datetime.now(UTC) > T("00:00", day=1)

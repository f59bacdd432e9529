"""OpenStack importer against recorded Keystone/Neutron/networking-sfc/Nova JSON served on
127.0.0.1 (tests/data/import/openstack/), through the real openstacksdk."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from test_import_support import DATA, RecordedApi

pytest.importorskip("openstack", reason="openstacksdk is not installed (the import extra)")

from fabricscope.cli.app import build_app
from fabricscope.inventory import Chain, Endpoint, Host, InventoryHistory, Network, Vnf
from fabricscope.inventory.importers.base import ImportFailed, ImportRunner
from fabricscope.inventory.importers.openstack import OpenStackImporter

ROOT = DATA / "openstack"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _load(name: str) -> Any:
    return json.loads((ROOT / name).read_text())


class Cloud:
    """The recorded cloud; tests may edit ``data`` (file name -> JSON) between imports."""

    def __init__(self) -> None:
        self.data = {p.name: _load(p.name) for p in ROOT.glob("*.json")}
        routes: dict[tuple[str, str], Any] = {
            ("GET", "/identity"): self._file("identity_root.json"),
            ("GET", "/identity/v3"): self._file("identity_versions.json"),
            ("POST", "/identity/v3/auth/tokens"): self._token,
            ("GET", "/identity/v3/projects"): self._file("projects.json"),
            ("GET", "/networking"): self._file("network_versions.json"),
            ("GET", "/compute/v2.1"): self._file("compute_versions.json"),
            ("GET", "/compute/v2.1/servers/detail"): self._file("servers.json"),
        }
        for n in ("ports", "networks", "subnets", "agents"):
            routes[("GET", f"/networking/v2.0/{n}")] = self._file(f"{n}.json")
        for n in ("port_pairs", "port_pair_groups", "port_chains", "flow_classifiers"):
            routes[("GET", f"/networking/v2.0/sfc/{n}")] = self._file(f"{n}.json")
        self.api = RecordedApi(routes)

    def _file(self, name: str) -> Any:
        def answer(query: str, body: bytes) -> tuple[int, dict[str, str], Any]:
            if name not in self.data:
                return 404, {}, {"NeutronError": {"type": "HTTPNotFound", "message":
                                                  "The resource could not be found.",
                                                  "detail": ""}}
            return 200, {}, self.data[name]
        return answer

    def _token(self, query: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        req = json.loads(body)
        ident = req["auth"]["identity"]
        assert ident["methods"] == ["password"]
        if ident["password"]["user"]["password"] != "secret":
            return 401, {}, {"error": {"code": 401, "title": "Unauthorized",
                                       "message": "The request you have made requires "
                                       "authentication."}}
        return 201, {"X-Subject-Token": "gAAAAABrecorded"}, self.data["token.json"]

    def auth(self) -> dict[str, Any]:
        return {"auth_url": f"{self.api.base}/identity/v3", "username": "fabricscope-reader",
                "password": "secret", "project_name": "admin", "user_domain_name": "Default",
                "project_domain_name": "Default"}

    def port(self, name: str) -> dict[str, Any]:
        return next(p for p in self.data["ports.json"]["ports"] if p["name"] == name)


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    c = Cloud()
    with c.api:
        yield c


def _by(facts: list[Any], kind: type) -> dict[str, Any]:
    return {f.name: f for f in facts if isinstance(f, kind)}


def test_facts_from_the_recorded_cloud(cloud: Cloud) -> None:
    imp = OpenStackImporter(auth=cloud.auth(), name="lab")
    assert imp.source == "openstack:lab"
    facts = imp.fetch()
    assert imp.notes == []
    nets = _by(facts, Network)
    assert (nets["acme-web"].encap, nets["acme-web"].vni) == ("vxlan", 5001)
    assert nets["acme-web"].subnets == ("10.1.0.0/24",)
    assert nets["acme-web"].tenant == "acme"  # project name from Keystone
    assert (nets["public"].encap, nets["public"].vni) == ("flat", None)
    # multi-segment network: the tunnelled segment, the others in the description
    assert (nets["globex-app"].encap, nets["globex-app"].vni) == ("geneve", 6001)
    assert nets["globex-app"].description == "segments: vlan 301, geneve 6001"
    # a project Keystone did not list keeps its id as the tenant name
    assert nets["globex-app"].tenant == "f1e2d3c4b5a697887766554433221100"

    hosts = _by(facts, Host)
    assert hosts["hv-1"].tunnel_ips == ("172.16.1.11",)
    assert hosts["net-1"].tunnel_ips == ("172.16.1.21",)
    assert hosts["net-1"].role == "network-node"
    assert hosts["hv-3"].tunnel_ips == ()  # a binding host without an agent listed

    eps = _by(facts, Endpoint)
    web = eps["web-1"]
    assert (web.kind, web.mac, web.ips, web.network, web.host, web.tenant) == (
        "vm", "fa:16:3e:00:01:05", ("10.1.0.5",), "acme-web", "hv-1", "acme")
    assert web.external_id == "c0ffee00-0000-4000-8000-000000000001"
    router = eps["c0ffee00-0000-4000-8000-000000000006"]  # unnamed port: named by its id
    assert (router.kind, router.host, router.description) == (
        "gateway", "net-1", "device_owner network:router_interface")
    assert eps["fw-1-in"].kind == "vnf-port"
    assert eps["spare"].host is None  # unbound

    vnfs = _by(facts, Vnf)
    assert [(p.endpoint, p.role) for p in vnfs["fw-1"].ports] == [
        ("fw-1-in", "ingress"), ("fw-1-out", "egress")]
    assert [(p.endpoint, p.role) for p in vnfs["ids-1"].ports] == [
        ("c0ffee00-0000-4000-8000-000000000005", "both")]
    chain = _by(facts, Chain)["web-db"]
    assert chain.chain_id == 7  # from the raw JSON: openstacksdk's resource drops it
    assert [(g.name, g.vnfs) for g in chain.groups] == [("firewalls", ("fw-1",)),
                                                        ("sensors", ("ids-1",))]
    mysql, dns = chain.classifiers
    assert (mysql.protocol, mysql.source_ip_prefix, mysql.destination_ip_prefix,
            mysql.destination_port_range_min, mysql.destination_port_range_max,
            mysql.logical_source_port) == (6, "10.1.0.0/24", "10.2.0.0/24", 3306, 3306, "web-1")
    assert mysql.matches("10.1.0.5", "10.2.0.9", protocol=6, dport=3306)
    assert (dns.protocol, dns.source_port_range_min, dns.destination_port_range_min) == (
        17, 1024, 53)


def test_imports_make_snapshots_with_changes_and_validity(cloud: Cloud,
                                                          tmp_path: Path) -> None:
    hist = InventoryHistory(tmp_path / "inv")
    runner = ImportRunner(OpenStackImporter(auth=cloud.auth(), name="lab"), hist)
    first = runner.run_once(at=T0)
    assert first.ok and first.result is not None and first.result.first
    assert first.counts["endpoints"] == 11

    # nothing changed: nothing recorded
    again = runner.run_once(at=T0 + timedelta(minutes=1))
    assert again.result is not None and again.result.unchanged

    # web-1 migrates to hv-2, the spare port is deleted, the chain loses its IDS
    cloud.port("web-1")["binding:host_id"] = "hv-2"
    ports = cloud.data["ports.json"]["ports"]
    ports.remove(cloud.port("spare"))
    pc = cloud.data["port_chains.json"]["port_chains"][0]
    pc["port_pair_groups"] = pc["port_pair_groups"][:1]
    t1 = T0 + timedelta(minutes=5)
    out = runner.run_once(at=t1)
    assert out.result is not None
    changes = {(c.op, c.kind, c.key): c for c in out.result.changes}
    assert set(changes) == {("changed", "endpoints", "web-1"), ("removed", "endpoints", "spare"),
                            ("changed", "chains", "web-db")}
    assert [str(f) for f in changes[("changed", "endpoints", "web-1")].fields] == [
        "host: hv-1 -> hv-2"]
    text = "\n".join(out.lines())
    assert "1 added" not in text and "0 added, 2 changed, 1 removed" in text
    assert "~ endpoint web-1: host: hv-1 -> hv-2" in text

    inv = hist.current()
    assert inv.endpoint("web-1", T0 + timedelta(minutes=1)).host == "hv-1"  # type: ignore[union-attr]
    assert inv.endpoint("web-1", t1).host == "hv-2"  # type: ignore[union-attr]
    (spare,) = inv.versions("endpoints", "spare")
    assert spare.valid_to == t1  # ended, not deleted
    assert len(hist.snapshots("openstack:lab")) == 2


def test_a_failed_import_records_nothing(cloud: Cloud, tmp_path: Path) -> None:
    hist = InventoryHistory(tmp_path / "inv")
    runner = ImportRunner(OpenStackImporter(auth=cloud.auth(), name="lab"), hist)
    assert runner.run_once(at=T0).ok
    cloud.api.fail = True
    out = runner.run_once(at=T0 + timedelta(minutes=1), raise_errors=False)
    assert not out.ok and out.error is not None and "\n" not in out.error
    assert out.error.startswith("openstack:lab: ")
    assert len(hist.snapshots()) == 1
    with pytest.raises(ImportFailed):
        runner.run_once(at=T0 + timedelta(minutes=2))
    cloud.api.fail = False
    # an API that suddenly answers with nothing does not end every fact
    for key in ("ports", "networks", "agents", "subnets"):
        cloud.data[f"{key}.json"][key] = []
    for key in ("port_pairs", "port_pair_groups", "port_chains", "flow_classifiers"):
        cloud.data[f"{key}.json"][key] = []
    with pytest.raises(ImportFailed, match="returned nothing"):
        runner.run_once(at=T0 + timedelta(minutes=3))
    assert len(hist.snapshots()) == 1


def test_without_networking_sfc_or_admin_rights(cloud: Cloud) -> None:
    for key in ("port_pairs", "port_pair_groups", "port_chains", "flow_classifiers",
                "projects", "servers"):
        del cloud.data[f"{key}.json"]
    imp = OpenStackImporter(auth=cloud.auth(), name="lab")
    facts = imp.fetch()
    assert not _by(facts, Chain) and not _by(facts, Vnf)
    assert any("networking-sfc is not available" in n for n in imp.notes)
    assert any("tenants named by project id" in n for n in imp.notes)
    assert _by(facts, Network)["acme-web"].tenant == "8c5e1f7a2b3d4c6e9f0a1b2c3d4e5f60"
    assert _by(facts, Endpoint)["fw-1-in"].kind == "vm"


def test_same_vlan_on_two_physnets_keeps_one_segment_id(cloud: Cloud) -> None:
    nets = cloud.data["networks.json"]["networks"]
    twin = copy.deepcopy(nets[2])
    twin.update({"id": "3d1c5e7a-9b2f-4c8d-a6e1-0f2b4d6c8a99", "name": "storage",
                 "subnets": [], "provider:network_type": "vlan",
                 "provider:physical_network": "physnet3", "provider:segmentation_id": 301})
    nets.append(twin)
    nets.append({**copy.deepcopy(twin), "id": "3d1c5e7a-9b2f-4c8d-a6e1-0f2b4d6c8a98",
                 "name": "backup", "provider:physical_network": "physnet4"})
    imp = OpenStackImporter(auth=cloud.auth(), name="lab")
    got = _by(imp.fetch(), Network)
    assert (got["backup"].vni, got["storage"].vni) == (301, None)
    assert any("segment id" in n and "storage" in n for n in imp.notes)


def test_cli_import_openstack(cloud: Cloud, tmp_path: Path) -> None:
    app = build_app()
    runner = CliRunner(env={"FABRICSCOPE_HOME": str(tmp_path / "home"), "COLUMNS": "200",
                            "OS_PASSWORD": "secret"})
    args = ["inventory", "import", "openstack", "--auth-url", f"{cloud.api.base}/identity/v3",
            "--username", "fabricscope-reader", "--project", "admin", "--name", "lab"]
    r = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["source"] == "openstack:lab" and out["first"] and out["counts"]["chains"] == 1
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "openstack:lab: unchanged since snapshot 1" in r.stdout
    r = runner.invoke(app, ["inventory", "show", "--kind", "chains", "--json"],
                      catch_exceptions=False)
    assert json.loads(r.stdout)["chains"][0]["chain_id"] == 7

    # wrong password, and a cloud nobody answers: exit 2, one line, no traceback
    bad = CliRunner(env={"FABRICSCOPE_HOME": str(tmp_path / "home"), "OS_PASSWORD": "nope"})
    r = bad.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "openstack:lab" in r.stderr
    r = bad.invoke(app, ["inventory", "import", "openstack", "--auth-url",
                         "http://127.0.0.1:9/identity/v3", "--username", "u", "--project",
                         "p", "--password", "x"], catch_exceptions=False)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "openstack:127.0.0.1:9" in r.stderr
    r = bad.invoke(app, ["inventory", "import", "openstack", "--nb", "tcp:127.0.0.1:1"],
                   catch_exceptions=False)
    assert r.exit_code == 2 and "--nb does not apply to openstack" in r.stderr
    r = bad.invoke(app, ["inventory", "import", "nova"], catch_exceptions=False)
    assert r.exit_code == 2 and "unknown source 'nova'" in r.stderr


def test_watch_repeats_and_survives_a_failed_round(cloud: Cloud, tmp_path: Path) -> None:
    hist = InventoryHistory(tmp_path / "inv")
    runner = ImportRunner(OpenStackImporter(auth=cloud.auth(), name="lab"), hist)
    seen: list[Any] = []
    stop = threading.Event()

    def report(outcome: Any) -> None:
        seen.append(outcome)
        if len(seen) == 1:
            cloud.api.fail = True
        elif len(seen) == 2:
            cloud.api.fail = False
            cloud.port("web-1")["binding:host_id"] = "hv-3"
        else:
            stop.set()

    failures = runner.watch(0.05, report, stop=stop, handle_signals=False)
    assert failures == 1
    assert [o.ok for o in seen] == [True, False, True]
    assert seen[2].result is not None and [c.key for c in seen[2].result.changes] == ["web-1"]
    assert len(hist.snapshots()) == 2

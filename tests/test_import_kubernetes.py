"""Kubernetes importer against recorded API JSON (nodes, namespaces, pods, Cilium CRDs and
cilium-config) served on 127.0.0.1, through the real kubernetes client: flannel, Calico
VXLAN and Cilium clusters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from typer.testing import CliRunner

from test_import_support import DATA, RecordedApi

pytest.importorskip("kubernetes", reason="the kubernetes client is not installed (the import "
                    "extra)")

from fabricscope.cli.app import build_app
from fabricscope.inventory import Endpoint, Host, InventoryHistory, Network, Tenant
from fabricscope.inventory.importers.base import ImportFailed, ImportRunner
from fabricscope.inventory.importers.kubernetes import KubernetesImporter

ROOT = DATA / "kubernetes"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class Cluster:
    """One recorded cluster; ``cni`` picks the nodes file; Cilium CRDs only for cilium.
    Pods are served in pages of 3 (``limit``/``continue``) like a real API server."""

    def __init__(self, cni: str) -> None:
        self.cni = cni
        self.data = {p.name: json.loads(p.read_text()) for p in ROOT.glob("*.json")}
        routes: dict[tuple[str, str], Any] = {
            ("GET", "/api/v1/nodes"): self._file(f"{cni}-nodes.json"),
            ("GET", "/api/v1/namespaces"): self._file("namespaces.json"),
            ("GET", "/api/v1/pods"): self._pods,
        }
        if cni == "cilium":
            routes.update({
                ("GET", "/apis/cilium.io/v2/ciliumendpoints"): self._file("ciliumendpoints.json"),
                ("GET", "/apis/cilium.io/v2/ciliumidentities"):
                    self._file("ciliumidentities.json"),
                ("GET", "/api/v1/namespaces/kube-system/configmaps/cilium-config"):
                    self._file("cilium-config.json"),
            })
        self.api = RecordedApi(routes)

    def _file(self, name: str) -> Any:
        def answer(query: str, body: bytes) -> tuple[int, dict[str, str], Any]:
            return 200, {}, self.data[name]
        return answer

    def _pods(self, query: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        q = parse_qs(query)
        start = int(q.get("continue", ["0"])[0])
        items = self.data["pods.json"]["items"]
        page = items[start:start + 3]
        more = start + 3 < len(items)
        return 200, {}, {"kind": "PodList", "apiVersion": "v1", "items": page,
                         "metadata": {"resourceVersion": "81240",
                                      **({"continue": str(start + 3)} if more else {})}}

    def pod(self, name: str) -> dict[str, Any]:
        return next(p for p in self.data["pods.json"]["items"]
                    if p["metadata"]["name"] == name)


@pytest.fixture(params=["flannel", "calico", "cilium"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(request.param)
    with c.api:
        yield c


@pytest.fixture
def flannel() -> Iterator[Cluster]:
    c = Cluster("flannel")
    with c.api:
        yield c


def _by(facts: list[Any], kind: type) -> dict[str, Any]:
    return {f.name: f for f in facts if isinstance(f, kind)}


def test_nodes_pods_and_tenants(cluster: Cluster) -> None:
    imp = KubernetesImporter(server=cluster.api.base, name="lab")
    facts = imp.fetch()
    assert imp.source == "kubernetes:lab"
    hosts = _by(facts, Host)
    assert sorted(hosts) == ["k8s-cp1", "k8s-w1", "k8s-w2"]
    w1 = hosts["k8s-w1"]
    assert (w1.mgmt_ip, w1.tunnel_ips) == ("192.168.50.11", ("192.168.50.11",))
    assert w1.description == "pod CIDRs 10.244.1.0/24"
    assert {t for t in _by(facts, Tenant)} >= {"default", "kube-system", "shop", "payments"}

    eps = _by(facts, Endpoint)
    web = eps["shop/web-7d9f8b6c5-x2k4p"]
    assert (web.kind, web.ips, web.host, web.tenant) == (
        "container", ("10.244.1.23",), "k8s-w1", "shop")
    assert "kube-system/kube-proxy-h7j8k" not in eps  # host network: the node's address
    assert "shop/migrate-db-28912345-zz9xq" not in eps  # finished
    pending = eps["shop/web-7d9f8b6c5-pend1"]
    assert (pending.ips, pending.host) == ((), None)
    assert any("1 host-network pods skipped" in n for n in imp.notes)
    # pages were followed
    assert sum(1 for m, p in cluster.api.requests if p.startswith("/api/v1/pods")) == 3

    nets = _by(facts, Network)
    if cluster.cni == "flannel":
        assert (nets["flannel"].encap, nets["flannel"].vni) == ("vxlan", 1)
        assert nets["flannel"].subnets == ("10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24")
        assert web.network == "flannel"
        assert [(n.name, n.mac) for n in w1.nics] == [("flannel.1", "6a:52:0b:7e:21:02")]
    elif cluster.cni == "calico":
        assert (nets["calico-vxlan"].encap, nets["calico-vxlan"].vni) == ("vxlan", 4096)
        assert web.network == "calico-vxlan"
        assert [(n.name, n.ips) for n in w1.nics] == [("vxlan.calico", ("10.244.1.1",))]
    else:
        ident = nets["cilium-identity-48213"]
        assert (ident.encap, ident.vni, ident.tenant) == ("vxlan", 48213, "shop")
        assert nets["cilium-identity-20551"].tenant == "payments"
        assert nets["cilium-reserved-world"].vni == 2
        assert web.network == "cilium-identity-48213"
        assert eps["payments/api-5c6d7e8f9-m3n4b"].network == "cilium-identity-20551"
        assert [(n.name, n.ips) for n in w1.nics] == [("cilium_host", ("10.244.1.187",))]


def test_cilium_geneve_from_cilium_config() -> None:
    c = Cluster("cilium")
    c.data["cilium-config.json"]["data"].update({"tunnel-protocol": "geneve", "tunnel-port": ""})
    with c.api:
        nets = _by(KubernetesImporter(server=c.api.base).fetch(), Network)
    assert nets["cilium-identity-48213"].encap == "geneve"
    assert "GENEVE" in (nets["cilium-identity-48213"].description or "").upper()


def test_pod_moves_and_goes_between_imports(flannel: Cluster, tmp_path: Path) -> None:
    hist = InventoryHistory(tmp_path / "inv")
    runner = ImportRunner(KubernetesImporter(server=flannel.api.base, name="lab"), hist)
    assert runner.run_once(at=T0).ok
    # the web pod is rescheduled (same name kept by a StatefulSet) and the api pod deleted
    p = flannel.pod("web-7d9f8b6c5-x2k4p")
    p["spec"]["nodeName"] = "k8s-w2"
    p["status"]["podIP"] = "10.244.2.31"
    p["status"]["podIPs"] = [{"ip": "10.244.2.31"}]
    items = flannel.data["pods.json"]["items"]
    items.remove(flannel.pod("api-5c6d7e8f9-m3n4b"))
    t1 = T0 + timedelta(minutes=5)
    out = runner.run_once(at=t1)
    assert out.result is not None
    got = {(c.op, c.key): sorted(str(f) for f in c.fields) for c in out.result.changes}
    assert got == {
        ("changed", "shop/web-7d9f8b6c5-x2k4p"): ["host: k8s-w1 -> k8s-w2",
                                                  "ips: [10.244.1.23] -> [10.244.2.31]"],
        ("removed", "payments/api-5c6d7e8f9-m3n4b"): [],
    }
    inv = hist.current()
    assert inv.endpoint_by_ip("10.244.1.23", 1, T0 + timedelta(minutes=1)).name == (  # type: ignore[union-attr]
        "shop/web-7d9f8b6c5-x2k4p")
    assert inv.endpoint_by_ip("10.244.1.23", 1, t1) is None
    assert inv.host_by_tunnel_ip("192.168.50.12").name == "k8s-w2"  # type: ignore[union-attr]


def test_kubeconfig_and_cli(flannel: Cluster, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab-admin",
        "clusters": [{"name": "lab", "cluster": {"server": flannel.api.base}}],
        "users": [{"name": "admin", "user": {"token": "recorded-token"}}],
        "contexts": [{"name": "lab-admin", "context": {"cluster": "lab", "user": "admin"}}],
    }))
    imp = KubernetesImporter(kubeconfig=str(kubeconfig))
    assert imp.source == "kubernetes:lab-admin"
    assert len(_by(imp.fetch(), Host)) == 3

    app = build_app()
    runner = CliRunner(env={"FABRICSCOPE_HOME": str(tmp_path / "home")})
    r = runner.invoke(app, ["inventory", "import", "kubernetes", "--kubeconfig",
                            str(kubeconfig), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["source"] == "kubernetes:lab-admin" and out["counts"]["endpoints"] == 5
    r = runner.invoke(app, ["inventory", "import", "kubernetes", "--server",
                            "http://127.0.0.1:9", "--timeout", "2"], catch_exceptions=False)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "kubernetes:127.0.0.1:9: listing nodes" in r.stderr


def test_api_errors_are_one_line(flannel: Cluster) -> None:
    flannel.api.fail = True
    with pytest.raises(ImportFailed, match=r"^kubernetes:lab: listing nodes: HTTP 503"):
        KubernetesImporter(server=flannel.api.base, name="lab", timeout=5).fetch()

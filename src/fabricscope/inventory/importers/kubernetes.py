"""Kubernetes (and its CNI: flannel, Calico VXLAN, Cilium) -> inventory facts, with the
kubernetes client.

* namespaces -> tenants (a pod's tenant is its namespace);
* nodes -> hosts: ``mgmt_ip`` = the ``InternalIP``; the tunnel IP is the node address
  the CNI encapsulates from (flannel ``flannel.alpha.coreos.com/public-ip``, Calico
  ``projectcalico.org/IPv4Address``, else the ``InternalIP``); the CNI's tunnel device is a
  NIC (``flannel.1`` with its VtepMAC, ``vxlan.calico`` with
  ``projectcalico.org/IPv4VXLANTunnelAddr``, ``cilium_host``);
* the overlay as networks: flannel (VNI from ``backend-data``, default 1, VXLAN UDP 8472),
  Calico VXLAN (VNI 4096, UDP 4789), Cilium: one network per security identity, whose
  ``vni`` is the identity, because Cilium's VNI carries the *source identity*, not a
  network (VXLAN UDP 8472 or GENEVE 6081 per ``cilium-config``);
* pods -> endpoints (kind container, ``status.podIPs``, host = ``spec.nodeName``, tenant =
  namespace, network = the CNI's, or with Cilium the pod's identity from its
  CiliumEndpoint).

Exact fields: docs/import/kubernetes.md.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from fabricscope.inventory import addr
from fabricscope.inventory.importers.base import BaseImporter
from fabricscope.inventory.model import Endpoint, Fact, Host, HostNic, Network, Tenant

FLANNEL = "flannel.alpha.coreos.com/"
CALICO = "projectcalico.org/"
CILIUM_NODE_KEYS = ("network.cilium.io/ipv4-pod-cidr", "io.cilium.network.ipv4-pod-cidr")
CILIUM_HOST_KEYS = ("network.cilium.io/ipv4-cilium-host", "io.cilium.network.ipv4-cilium-host")
CALICO_VNI = 4096
FLANNEL_DEFAULT_VNI = 1
# Cilium's reserved identities (pkg/identity/numericidentity.go): what a VNI below 256 means
CILIUM_RESERVED = {1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init",
                   6: "remote-node", 7: "kube-apiserver", 8: "ingress"}
TUNNEL_PORTS = {"vxlan": 8472, "geneve": 6081}


def _ann(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _meta(obj: dict[str, Any], key: str) -> str:
    return str((obj.get("metadata") or {}).get(key) or "")


def _ip(text: Any) -> str | None:
    if not text:
        return None
    try:
        return addr.canonical_ip(str(text).split("/")[0])
    except ValueError:
        return None


class KubernetesImporter(BaseImporter):
    """Import from one cluster: a kubeconfig (``kubeconfig`` file, ``context``; default
    ``KUBECONFIG`` / ``~/.kube/config``, else the in-cluster service account), or a
    ``server`` URL (with an optional bearer ``token``), or a ready ``api_client``.
    ``name`` labels the source (``kubernetes:NAME``; default the context or the server's
    host:port)."""

    kind = "kubernetes"

    def __init__(self, *, kubeconfig: str | None = None, context: str | None = None,
                 server: str | None = None, token: str | None = None,
                 api_client: Any = None, name: str | None = None,
                 timeout: float = 10.0, verify_ssl: bool = True) -> None:
        if name is None:
            if server:
                name = urlsplit(server).netloc or server
            else:
                name = context or _current_context(kubeconfig) or "default"
        super().__init__(f"kubernetes:{name}")
        self.kubeconfig = kubeconfig
        self.context = context
        self.server = server
        self.token = token
        self.api_client = api_client
        self.timeout = timeout
        self.verify_ssl = verify_ssl

    def _client(self) -> Any:
        if self.api_client is not None:
            return self.api_client
        try:
            client, config = _modules()
        except ImportError:
            raise self.fail("the kubernetes client is not installed (pip install "
                            "'fabricscope[import]')") from None
        try:
            if self.server:
                cfg = client.Configuration()
                cfg.host = self.server.rstrip("/")
                cfg.verify_ssl = self.verify_ssl
                if self.token:
                    cfg.api_key = {"authorization": f"Bearer {self.token}"}
                self.api_client = client.ApiClient(cfg)
            else:
                import os

                path = self.kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser(
                    "~/.kube/config")
                if self.kubeconfig is None and not os.path.exists(path.split(os.pathsep)[0]):
                    config.load_incluster_config()
                    self.api_client = client.ApiClient()
                else:
                    self.api_client = config.new_client_from_config(
                        config_file=path, context=self.context)
        except Exception as exc:
            raise self.fail(f"cannot configure the client: {_line(exc)}") from None
        return self.api_client

    def _list(self, what: str, call: Any, *, missing_ok: bool = False
              ) -> list[dict[str, Any]] | None:
        """Every item of a list call (following ``metadata.continue``), as raw JSON."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(100000):
            kwargs: dict[str, Any] = {"limit": 500, "_preload_content": False,
                                      "_request_timeout": self.timeout}
            if token:
                kwargs["_continue"] = token
            try:
                resp = call(**kwargs)
                body = json.loads(resp.data)
            except Exception as exc:
                status = getattr(exc, "status", None)
                if missing_ok and status == 404:
                    return None
                raise self.fail(f"listing {what}: {_line(exc)}") from None
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise self.fail(f"listing {what}: the answer has no items list")
            items.extend(i for i in body["items"] if isinstance(i, dict))
            token = (body.get("metadata") or {}).get("continue") or None
            if not token:
                break
        return items

    def fetch(self) -> list[Fact]:
        self.notes = []
        client, _ = _modules()
        api_client = self._client()
        core = client.CoreV1Api(api_client)
        custom = client.CustomObjectsApi(api_client)
        nodes = self._list("nodes", core.list_node) or []
        namespaces = self._list("namespaces", core.list_namespace) or []
        pods = self._list("pods", core.list_pod_for_all_namespaces) or []
        ceps = self._list("CiliumEndpoints", lambda **kw: custom.list_cluster_custom_object(
            "cilium.io", "v2", "ciliumendpoints", **kw), missing_ok=True)
        ids = None
        cilium_cfg: dict[str, str] = {}
        if ceps is not None:
            ids = self._list("CiliumIdentities", lambda **kw: custom.list_cluster_custom_object(
                "cilium.io", "v2", "ciliumidentities", **kw), missing_ok=True)
            try:
                resp: Any = core.read_namespaced_config_map(
                    "cilium-config", "kube-system", _preload_content=False,
                    _request_timeout=self.timeout)
                cilium_cfg = dict(json.loads(resp.data).get("data") or {})
            except Exception as exc:
                self.note(f"cilium-config not read ({_line(exc)}): assuming VXLAN")
        return build_facts(nodes=nodes, namespaces=namespaces, pods=pods,
                           cilium_endpoints=ceps, cilium_identities=ids,
                           cilium_config=cilium_cfg, note=self.note)


def _current_context(kubeconfig: str | None) -> str | None:
    try:
        _, config = _modules()
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        return str(active["name"]) if active else None
    except Exception:
        return None


def _modules() -> tuple[Any, Any]:
    """The kubernetes client's ``client`` and ``config`` modules (untyped here: the
    client's own annotations are partial)."""
    from kubernetes import client, config

    return client, config


def _line(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status is not None and reason is not None:  # ApiException: its str() is multi-line
        return f"HTTP {status} {reason}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def cilium_encap(config: dict[str, str]) -> str:
    """Cilium's tunnel protocol from cilium-config (``tunnel-protocol``, or the older
    ``tunnel``); VXLAN by default."""
    proto = (config.get("tunnel-protocol") or config.get("tunnel") or "vxlan").lower()
    return "geneve" if proto == "geneve" else "vxlan"


def build_facts(*, nodes: list[dict[str, Any]], namespaces: list[dict[str, Any]],
                pods: list[dict[str, Any]], cilium_endpoints: list[dict[str, Any]] | None,
                cilium_identities: list[dict[str, Any]] | None,
                cilium_config: dict[str, str] | None = None, note: Any = None) -> list[Fact]:
    """Raw Kubernetes API objects -> facts."""
    note = note or (lambda text: None)
    facts: list[Fact] = []
    tenants = {_meta(ns, "name") for ns in namespaces if _meta(ns, "name")}
    tenants |= {_meta(p, "namespace") for p in pods if _meta(p, "namespace")}

    # nodes and the CNI they show
    flannel_vni: int | None = None
    flannel_cidrs: list[str] = []
    calico_cidrs: list[str] = []
    calico = False
    node_net: dict[str, str] = {}
    hosts: list[Host] = []
    seen_tips: dict[str, str] = {}
    for n in sorted(nodes, key=lambda n: _meta(n, "name")):
        name = _meta(n, "name")
        ann = _ann(n)
        addresses = {a.get("type"): a.get("address")
                     for a in (n.get("status") or {}).get("addresses") or ()
                     if isinstance(a, dict)}
        internal = _ip(addresses.get("InternalIP"))
        spec = n.get("spec") or {}
        cidrs = []
        for c in spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []):
            try:
                cidrs.append(addr.canonical_cidr(str(c)))
            except ValueError:
                note(f"node {name}: pod CIDR {c!r} is not a prefix")
        nics: list[HostNic] = []
        tunnel = internal
        if any(k.startswith(FLANNEL) for k in ann):
            data: dict[str, Any] = {}
            try:
                data = json.loads(ann.get(FLANNEL + "backend-data") or "{}") or {}
            except ValueError:
                note(f"node {name}: {FLANNEL}backend-data is not JSON")
            vni = int(data.get("VNI") or data.get("vni") or FLANNEL_DEFAULT_VNI)
            if flannel_vni is not None and vni != flannel_vni:
                note(f"node {name}: flannel VNI {vni} differs from {flannel_vni}; using "
                     f"{flannel_vni}")
            flannel_vni = flannel_vni if flannel_vni is not None else vni
            tunnel = _ip(ann.get(FLANNEL + "public-ip-overwrite")) or _ip(
                ann.get(FLANNEL + "public-ip")) or internal
            mac = data.get("VtepMAC")
            try:
                vtep_mac = addr.canonical_mac(str(mac)) if mac else None
            except ValueError:
                vtep_mac = None
            nics.append(HostNic(name=f"flannel.{vni}", mac=vtep_mac))
            flannel_cidrs += cidrs
            node_net[name] = "flannel"
        elif ann.get(CALICO + "IPv4VXLANTunnelAddr"):
            calico = True
            tunnel = _ip(ann.get(CALICO + "IPv4Address")) or internal
            vx = _ip(ann.get(CALICO + "IPv4VXLANTunnelAddr"))
            nics.append(HostNic(name="vxlan.calico", ips=(vx,) if vx else ()))
            calico_cidrs += cidrs
            node_net[name] = "calico-vxlan"
        elif any(k in ann for k in CILIUM_NODE_KEYS + CILIUM_HOST_KEYS):
            ch = next((_ip(ann[k]) for k in CILIUM_HOST_KEYS if k in ann), None)
            nics.append(HostNic(name="cilium_host", ips=(ch,) if ch else ()))
        tips: tuple[str, ...] = ()
        if tunnel is not None:
            if tunnel in seen_tips:
                note(f"node {name}: tunnel IP {tunnel} is also {seen_tips[tunnel]}'s; kept "
                     "there only")
            else:
                seen_tips[tunnel] = name
                tips = (tunnel,)
        hosts.append(Host(name=name, tunnel_ips=tips, mgmt_ip=internal, nics=tuple(nics),
                          external_id=_meta(n, "uid") or None,
                          description=("pod CIDRs " + ", ".join(cidrs)) if cidrs else None))
    facts += hosts
    node_names = {h.name for h in hosts}

    if flannel_vni is not None:
        facts.append(Network(name="flannel", vni=flannel_vni, encap="vxlan",
                             subnets=tuple(sorted(set(flannel_cidrs))),
                             description="flannel VXLAN (UDP 8472); tenants by pod namespace"))
    if calico:
        facts.append(Network(name="calico-vxlan", vni=CALICO_VNI, encap="vxlan",
                             subnets=tuple(sorted(set(calico_cidrs))),
                             description="Calico VXLAN (UDP 4789); tenants by pod namespace"))

    # Cilium: one network per security identity
    pod_identity: dict[tuple[str, str], int] = {}
    if cilium_endpoints is not None:
        encap = cilium_encap(cilium_config or {})
        port = (cilium_config or {}).get("tunnel-port") or TUNNEL_PORTS[encap]
        ident_ns: dict[int, str | None] = {}
        for ident in cilium_identities or ():
            try:
                num = int(_meta(ident, "name"))
            except ValueError:
                continue
            labels = dict((ident.get("metadata") or {}).get("labels") or {})
            sec = dict(ident.get("security-labels") or {})
            ident_ns[num] = labels.get("io.kubernetes.pod.namespace") or sec.get(
                "k8s:io.kubernetes.pod.namespace")
        for cep in cilium_endpoints:
            status = cep.get("status") or {}
            ident = status.get("identity") or {}
            if ident.get("id") is None:
                continue
            num = int(ident["id"])
            pod_identity[(_meta(cep, "namespace"), _meta(cep, "name"))] = num
            if num not in ident_ns:
                ns = next((lab.split("=", 1)[1] for lab in ident.get("labels") or ()
                           if str(lab).startswith("k8s:io.kubernetes.pod.namespace=")), None)
                ident_ns[num] = ns or _meta(cep, "namespace") or None
        for num, label in CILIUM_RESERVED.items():
            facts.append(Network(name=f"cilium-reserved-{label}", vni=num, encap=encap,
                                 description=f"Cilium reserved identity {num} ({label}): "
                                 f"the VNI of traffic from a {label} source ({encap} UDP "
                                 f"{port})"))
        for num in sorted(ident_ns):
            if num in CILIUM_RESERVED:
                continue
            ns = ident_ns[num]
            if ns:
                tenants.add(ns)
            facts.append(Network(name=f"cilium-identity-{num}", vni=num, encap=encap,
                                 tenant=ns or None,
                                 description=f"Cilium security identity {num}: the VNI "
                                 f"Cilium puts on traffic from pods with this identity "
                                 f"({encap} UDP {port})"))

    # pods
    skipped = {"hostNetwork": 0, "finished": 0}
    cilium_nets = {f.name for f in facts if isinstance(f, Network)
                   and f.name.startswith("cilium-")}
    for p in sorted(pods, key=lambda p: (_meta(p, "namespace"), _meta(p, "name"))):
        spec = p.get("spec") or {}
        status = p.get("status") or {}
        if spec.get("hostNetwork"):
            skipped["hostNetwork"] += 1
            continue
        if status.get("phase") in ("Succeeded", "Failed"):
            skipped["finished"] += 1
            continue
        ns, pname = _meta(p, "namespace"), _meta(p, "name")
        ips = [_ip(i.get("ip")) for i in status.get("podIPs") or () if isinstance(i, dict)]
        if not ips and status.get("podIP"):
            ips = [_ip(status["podIP"])]
        node = str(spec.get("nodeName") or "")
        network = node_net.get(node)
        pod_ident = pod_identity.get((ns, pname))
        if pod_ident is not None:
            net = (f"cilium-reserved-{CILIUM_RESERVED[pod_ident]}"
                   if pod_ident in CILIUM_RESERVED else f"cilium-identity-{pod_ident}")
            network = net if net in cilium_nets else network
        facts.append(Endpoint(name=f"{ns}/{pname}", kind="container",
                              ips=tuple(dict.fromkeys(i for i in ips if i)),
                              network=network, host=node if node in node_names else None,
                              tenant=ns or None, external_id=_meta(p, "uid") or None))
    if skipped["hostNetwork"]:
        note(f"{skipped['hostNetwork']} host-network pods skipped (they use their node's "
             "address)")
    facts += [Tenant(name=t) for t in sorted(tenants)]
    return facts


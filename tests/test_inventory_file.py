"""The inventory file: schema validation and meaning checks, each naming file, line and
field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fabricscope.errors import InputError
from fabricscope.inventory.fileformat import (
    InventoryFileError,
    Problem,
    check_file,
    check_text,
    document_from_facts,
    read_file,
    schema,
)
from fabricscope.inventory.index import Inventory

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fabric.yaml"

BASE = """\
tenants:
  - name: acme
networks:
  - name: acme-web
    tenant: acme
    vni: 5001
    subnets: [10.1.0.0/24]
devices:
  - name: leaf-1
    agent: 10.255.0.11
    interfaces:
      - {name: eth1, ifindex: 1}
hosts:
  - name: hv-1
    tunnel_ips: [172.16.1.11]
    nics: [{name: eth0, device: leaf-1, interface: eth1}]
"""


def ln(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the nth line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[nth - 1]


def problems(text: str, file: str = "inv.yaml") -> list[Problem]:
    return check_text(text, file).problems


def errors(text: str, file: str = "inv.yaml") -> list[str]:
    return [str(p) for p in problems(text, file) if p.severity == "error"]


def test_example_fabric_validates_cleanly() -> None:
    doc = check_file(EXAMPLE)
    assert doc.problems == []
    assert doc.ok
    kinds = {f.KIND for f in doc.facts}
    assert kinds == {"tenants", "networks", "hosts", "devices", "links", "endpoints", "vnfs", "chains"}


def test_published_schema_is_the_packaged_one_and_is_valid() -> None:
    import jsonschema

    docs = json.loads((ROOT / "docs" / "inventory.schema.json").read_text())
    pkg = json.loads((ROOT / "src" / "fabricscope" / "inventory" / "inventory.schema.json").read_text())
    assert docs == pkg == schema()
    jsonschema.Draft202012Validator.check_schema(docs)


def test_base_document_is_valid() -> None:
    assert problems(BASE) == []


# ------------------------------------------------------------------ schema errors

EP = BASE + "endpoints:\n  - name: web-1\n"


@pytest.mark.parametrize(
    ("text", "needle", "field", "message"),
    [
        pytest.param(EP + "    ips: [10.1.0.5, not-an-ip]\n", "not-an-ip", "endpoints[0].ips[1]",
                     "'not-an-ip' is not a valid IP address", id="bad-ip"),
        pytest.param(EP + "    hots: hv-1\n", "hots", "endpoints[0].hots",
                     "unknown field 'hots' (did you mean 'host'?)", id="unknown-field"),
        pytest.param(BASE + "endpoints:\n  - ips: [10.1.0.5]\n", "- ips:", "endpoints[0].name",
                     "missing required field 'name'", id="missing-name"),
        pytest.param(EP + "    valid_from: 2026-11-25 10:05\n", "valid_from",
                     "endpoints[0].valid_from",
                     "'2026-11-25 10:05' is not a valid RFC 3339 time with a zone "
                     "(e.g. 2026-11-25T10:05:00Z)", id="time-without-zone"),
        pytest.param(EP + "    kind: virtual-machine\n", "kind:", "endpoints[0].kind",
                     "'virtual-machine' is not one of: vm, container, vnf-port, gateway",
                     id="bad-enum"),
        pytest.param(BASE.replace("vni: 5001", "vni: five"), "vni:", "networks[0].vni",
                     "expected an integer, got text ('five')", id="wrong-type"),
        pytest.param(BASE.replace("vni: 5001", "vni: -3"), "vni:", "networks[0].vni",
                     "-3 is out of range (0..4294967295)", id="out-of-range"),
        pytest.param(EP + "    mac: 00:11:22:33:44\n", "mac:", "endpoints[0].mac",
                     "'00:11:22:33:44' is not a valid MAC address", id="bad-mac"),
        pytest.param(BASE.replace("[10.1.0.0/24]", "[10.1.0.1/24]"), "subnets",
                     "networks[0].subnets[0]",
                     "'10.1.0.1/24' is not a valid IP prefix (e.g. 10.1.0.0/24, host bits zero)",
                     id="prefix-host-bits"),
        pytest.param(BASE.replace("ifindex: 1}", "ifindex: 1, speed: fast}"), "fast",
                     "devices[0].interfaces[0].speed",
                     "'fast' is not a valid speed (bits/s, or e.g. 10G, 400G)", id="bad-speed"),
        pytest.param("hots:\n  - name: hv-1\n", "hots", "hots",
                     "unknown section 'hots' (did you mean 'hosts'?)", id="unknown-section"),
        pytest.param("tenants:\n  name: acme\n", "name: acme", "tenants",
                     "expected a list, got a mapping", id="section-not-a-list"),
        pytest.param("version: 2\n", "version", "version",
                     "2 is not supported (expected 1)", id="future-version"),
        pytest.param(BASE + "chains:\n  - name: c\n    groups: []\n", "groups", "chains[0].groups",
                     "needs at least 1 item(s)", id="empty-chain"),
        pytest.param(BASE + "chains:\n  - name: c\n    groups: [{vnfs: [x]}]\n"
                     "    classifiers: [{protocol: tcpp}]\n", "tcpp",
                     "chains[0].classifiers[0].protocol",
                     "'tcpp' is not a valid IP protocol (tcp, udp, icmp, ... or 0-255)",
                     id="bad-protocol"),
        pytest.param(EP + "    ips: 10.1.0.5\n", "ips: 10.1.0.5", "endpoints[0].ips",
                     "expected a list, got text ('10.1.0.5')", id="scalar-for-list"),
    ],
)
def test_schema_errors_name_file_line_and_field(text: str, needle: str, field: str,
                                                message: str) -> None:
    assert f"inv.yaml:{ln(text, needle)}: {field}: {message}" in errors(text)


def test_error_raised_by_read_file_is_one_line_input_error(tmp_path: Path) -> None:
    p = tmp_path / "fabric.yaml"
    p.write_text(BASE + "endpoints:\n  - name: web-1\n    ips: [not-an-ip]\n    hots: x\n")
    with pytest.raises(InventoryFileError) as ei:
        read_file(p)
    exc = ei.value
    assert isinstance(exc, InputError)
    assert exc.exit_code == 2
    text = str(exc)
    assert "\n" not in text
    line = ln(p.read_text(), "not-an-ip")
    assert text.startswith(f"{p}:{line}: endpoints[0].ips[0]: 'not-an-ip' is not a valid IP address")
    assert "(and 1 more problem;" in text
    assert exc.path == str(p) and exc.line == line and exc.field == "endpoints[0].ips[0]"
    assert len(exc.problems) == 2


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(InventoryFileError) as ei:
        check_text("tenants:\n  - name: acme\n  - name: [oops\n", "inv.yaml")
    assert str(ei.value).startswith("inv.yaml:")
    assert "YAML syntax error" in str(ei.value)
    assert ei.value.line is not None and ei.value.line >= 3


def test_duplicate_key_is_an_error() -> None:
    with pytest.raises(InventoryFileError) as ei:
        check_text("tenants:\n  - name: acme\n    name: globex\n", "inv.yaml")
    assert str(ei.value) == "inv.yaml:3: tenants[0].name: duplicate key 'name' (first at line 2)"


def test_empty_and_non_mapping_files() -> None:
    assert errors("") == ["inv.yaml:1: the file is empty (expected a mapping with tenants, "
                          "networks, hosts, devices, links, endpoints, vnfs, chains)"]
    assert "got a list" in errors("- a\n- b\n")[0]


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as ei:
        check_file(tmp_path / "nope.yaml")
    assert "no such file" in str(ei.value)


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = BASE + ("endpoints:\n  - &vm {name: a, network: acme-web, host: hv-1, tenant: acme}\n"
                   "  - {<<: *vm, name: b}\n")
    doc = check_text(text, "inv.yaml")
    assert doc.ok, doc.problems
    assert [f.key for f in doc.facts if f.KIND == "endpoints"] == ["a", "b"]


def test_unquoted_times_stay_rfc3339_text() -> None:
    doc = check_text("tenants:\n  - {name: a, valid_from: 2026-11-25T10:05:00Z}\n", "inv.yaml")
    assert doc.ok
    assert doc.facts[0].valid_from is not None
    assert doc.facts[0].valid_from.isoformat() == "2026-11-25T10:05:00+00:00"


# ------------------------------------------------------------------ meaning errors


def test_reference_to_undefined_name() -> None:
    text = BASE + "endpoints:\n  - name: web-1\n    network: acme-web\n    host: hv-9\n"
    assert errors(text) == [
        f"inv.yaml:{ln(text, 'hv-9')}: endpoints[0].host: host 'hv-9' is not defined "
        "(did you mean 'hv-1'?)"
    ]
    text = BASE + "endpoints:\n  - name: web-1\n    tenant: nobody\n"
    assert errors(text) == [
        f"inv.yaml:{ln(text, 'nobody')}: endpoints[0].tenant: tenant 'nobody' is not defined"
    ]


def test_reference_with_a_suggestion() -> None:
    text = BASE + "endpoints:\n  - name: web-1\n    network: acme-wbe\n"
    assert errors(text) == [
        f"inv.yaml:{ln(text, 'acme-wbe')}: endpoints[0].network: network 'acme-wbe' is not "
        "defined (did you mean 'acme-web'?)"
    ]


def test_reference_must_hold_over_the_whole_validity() -> None:
    hv3 = "  - name: hv-3\n    valid_from: 2026-11-25T10:05:00Z\n"
    text = BASE + hv3 + (
        "endpoints:\n  - name: web-1\n    host: hv-3\n    valid_from: 2026-11-25T10:00:00Z\n"
    )
    assert errors(text) == [
        f"inv.yaml:{ln(text, 'host: hv-3')}: endpoints[0].host: host 'hv-3' does not exist at "
        "2026-11-25T10:00:00Z, but this endpoint refers to it (2026-11-25T10:00:00Z .. open)"
    ]
    # an open start needs an open start
    text2 = BASE + hv3 + "endpoints:\n  - name: web-1\n    host: hv-3\n"
    assert errors(text2) == [
        f"inv.yaml:{ln(text2, 'host: hv-3')}: endpoints[0].host: host 'hv-3' does not exist "
        "before 2026-11-25T10:05:00Z, but this endpoint refers to it (always .. open)"
    ]
    # a host that stops existing while the endpoint still refers to it
    text3 = BASE.replace("  - name: hv-1\n", "  - name: hv-1\n    valid_to: 2026-11-25T11:00:00Z\n") + (
        "endpoints:\n  - {name: web-1, host: hv-1}\n")
    errs = errors(text3)
    assert any("endpoints[0].host: host 'hv-1' does not exist at 2026-11-25T11:00:00Z" in e
               for e in errs), errs
    # two versions that together cover the validity are fine (a migration of the host)
    text4 = BASE.replace("  - name: hv-1\n", "  - name: hv-1\n    valid_to: 2026-11-25T11:00:00Z\n") + (
        "  - {name: hv-1, valid_from: 2026-11-25T11:00:00Z, tunnel_ips: [172.16.1.99]}\n"
        "endpoints:\n  - {name: web-1, host: hv-1}\n")
    assert errors(text4) == []


def test_reference_to_a_missing_interface() -> None:
    text = BASE.replace("interface: eth1}", "interface: eth7}")
    assert errors(text) == [
        f"inv.yaml:{ln(text, 'eth7')}: hosts[0].nics[0].interface: device 'leaf-1' has no "
        "interface 'eth7' (did you mean 'eth1'?)"
    ]


def test_link_references_and_shapes() -> None:
    text = BASE + (
        "links:\n"
        "  - {a: {device: leaf-1, interface: eth1}, b: {device: spine-9, interface: eth1}}\n"
        "  - {a: {device: leaf-1, interface: eth1}, b: {host: hv-1}}\n"
        "  - {a: {host: hv-1, nic: eth0}, b: {host: hv-1, nic: eth9}}\n"
    )
    errs = errors(text)
    assert f"inv.yaml:{ln(text, 'spine-9')}: links[0].b.device: device 'spine-9' is not defined" in errs
    assert (f"inv.yaml:{ln(text, 'b: {host: hv-1}}')}: links[1].b: a link end is either "
            "device + interface, or host + nic") in errs
    assert f"inv.yaml:{ln(text, 'eth9')}: links[2].b.nic: host 'hv-1' has no NIC 'eth9'" in errs
    assert (f"inv.yaml:{ln(text, 'eth9')}: links[2]: a link needs at least one device "
            "interface end") in errs


def test_chain_references_vnfs_and_ports() -> None:
    text = BASE + (
        "endpoints:\n  - {name: gw, network: acme-web}\n"
        "chains:\n  - name: c\n    groups: [{vnfs: [fw-9]}]\n"
        "    classifiers:\n"
        "      - {logical_source_port: gw, destination_port_range_min: 500,\n"
        "         destination_port_range_max: 400, destination_ip_prefix: 2001:db8::/32,\n"
        "         logical_destination_port: nowhere}\n"
    )
    errs = errors(text)
    assert f"inv.yaml:{ln(text, 'fw-9')}: chains[0].groups[0].vnfs[0]: vnf 'fw-9' is not defined" in errs
    assert (f"inv.yaml:{ln(text, 'range_max: 400')}: chains[0].classifiers[0]."
            "destination_port_range_max: destination_port_range_max (400) is below "
            "destination_port_range_min (500)") in errs
    assert (f"inv.yaml:{ln(text, '2001:db8::/32')}: chains[0].classifiers[0].destination_ip_prefix: "
            "2001:db8::/32 is not an IPv4 prefix (ethertype is IPv4)") in errs
    assert (f"inv.yaml:{ln(text, 'nowhere')}: chains[0].classifiers[0].logical_destination_port: "
            "endpoint 'nowhere' is not defined") in errs
    assert not any("logical_source_port" in e for e in errs)


def test_overlapping_versions_of_the_same_name() -> None:
    text = BASE + (
        "endpoints:\n"
        "  - {name: web-1, host: hv-1, valid_to: 2026-11-25T10:05:00Z}\n"
        "  - {name: web-1, host: hv-1, valid_from: 2026-11-25T10:04:00Z}\n"
    )
    assert errors(text) == [
        f"inv.yaml:{ln(text, 'web-1', 2)}: endpoints[1].name: endpoint 'web-1' is already "
        f"defined for part of this time (endpoints[0], line {ln(text, 'web-1')}, valid always .. "
        "2026-11-25T10:05:00Z); give its versions disjoint valid_from/valid_to"
    ]


def test_valid_to_must_follow_valid_from() -> None:
    text = "tenants:\n  - {name: a, valid_from: 2026-11-25T10:05:00Z, valid_to: 2026-11-25T10:00:00Z}\n"
    assert errors(text) == [
        "inv.yaml:2: tenants[0].valid_to: valid_to (2026-11-25T10:00:00Z) must be after "
        "valid_from (2026-11-25T10:05:00Z)"
    ]


def test_identity_claimed_twice_at_the_same_time() -> None:
    text = BASE + (
        "  - {name: hv-2, tunnel_ips: ['::ffff:172.16.1.11']}\n"
        "endpoints:\n"
        "  - {name: a, network: acme-web, ips: [10.1.0.5]}\n"
        "  - {name: b, network: acme-web, ips: [10.1.0.5], valid_from: 2026-11-25T10:00:00Z}\n"
    )
    errs = errors(text)
    assert (f"inv.yaml:{ln(text, 'hv-2')}: hosts[1].tunnel_ips[0]: tunnel IP 172.16.1.11 is also "
            f"held by host 'hv-1' (hosts[0], line {ln(text, 'hv-1')}) at the same time") in errs
    assert (f"inv.yaml:{ln(text, 'name: b')}: endpoints[1].ips[0]: IP on network 'acme-web' "
            f"10.1.0.5 is also held by endpoint 'a' (endpoints[0], line {ln(text, '{name: a,')}) at "
            "the same time") in errs
    assert len(errs) == 2


def test_two_devices_with_one_sflow_agent() -> None:
    text = BASE.replace("hosts:\n", "  - {name: leaf-2, agent: 10.255.0.11}\nhosts:\n")
    assert errors(text) == [
        f"inv.yaml:{ln(text, 'leaf-2')}: devices[1].agent: sFlow agent 10.255.0.11 is also held "
        f"by device 'leaf-1' (devices[0], line {ln(text, 'name: leaf-1')}) at the same time"
    ]


def test_reused_ip_at_different_times_is_fine() -> None:
    text = BASE + (
        "endpoints:\n"
        "  - {name: a, network: acme-web, ips: [10.1.0.5], valid_to: 2026-11-25T10:00:00Z}\n"
        "  - {name: b, network: acme-web, ips: [10.1.0.5], valid_from: 2026-11-25T10:00:00Z}\n"
    )
    assert errors(text) == []


def test_same_ip_in_two_tenants_on_different_vnis_is_fine() -> None:
    text = BASE.replace("devices:\n", "  - {name: n2, vni: 6001, subnets: [10.1.0.0/24]}\ndevices:\n") + (
        "endpoints:\n"
        "  - {name: a, network: acme-web, ips: [10.1.0.5]}\n"
        "  - {name: b, network: n2, ips: [10.1.0.5]}\n"
    )
    assert errors(text) == []


def test_two_networks_with_one_vni_conflict() -> None:
    text = BASE.replace("devices:\n", "  - {name: n2, vni: 5001}\ndevices:\n")
    assert errors(text) == [
        f"inv.yaml:{ln(text, 'n2')}: networks[1].vni: vxlan segment id 5001 is also held by "
        f"network 'acme-web' (networks[0], line {ln(text, 'name: acme-web')}) at the same time"
    ]
    # the same number on another encapsulation is another segment
    other = BASE.replace("devices:\n", "  - {name: n2, vni: 5001, encap: geneve}\ndevices:\n")
    assert errors(other) == []


def test_vni_must_fit_its_encapsulation() -> None:
    text = BASE.replace("vni: 5001", "vni: 16777216")
    assert errors(text) == [
        f"inv.yaml:{ln(text, 'vni')}: networks[0].vni: 16777216 does not fit a vxlan segment id "
        "(0..16777215)"
    ]


def test_cabling_conflicts_with_a_link() -> None:
    text = BASE + (
        "  - {name: hv-2, nics: [{name: eth0}]}\n"
        "links:\n  - {a: {device: leaf-1, interface: eth1}, b: {host: hv-2, nic: eth0}}\n"
    )
    errs = errors(text)
    assert any("interface leaf-1:eth1 is also held by" in e for e in errs), errs


def test_cabling_repeated_as_a_link_is_fine() -> None:
    text = BASE + "links:\n  - {a: {device: leaf-1, interface: eth1}, b: {host: hv-1, nic: eth0}}\n"
    assert errors(text) == []


def test_warnings_do_not_fail_validation() -> None:
    text = BASE + "endpoints:\n  - {name: a, network: acme-web, ips: [10.9.0.5]}\n"
    doc = check_text(text, "inv.yaml")
    assert doc.ok
    assert [str(w) for w in doc.warnings] == [
        f"inv.yaml:{ln(text, '10.9.0.5')}: endpoints[0].ips[0]: warning: 10.9.0.5 is outside "
        "the subnets of network 'acme-web' (10.1.0.0/24)"
    ]


def test_external_inventory_satisfies_references() -> None:
    underlay = check_text(BASE, "underlay.yaml").inventory()
    overlay = "endpoints:\n  - {name: a, network: acme-web, host: hv-1, tenant: acme}\n"
    assert check_text(overlay, "overlay.yaml").errors  # alone, the references dangle
    doc = check_text(overlay, "overlay.yaml", external=underlay)
    assert doc.ok, doc.problems


def test_json_is_accepted_too(tmp_path: Path) -> None:
    inv = read_file(EXAMPLE)
    p = tmp_path / "fabric.json"
    p.write_text(json.dumps(document_from_facts(list(inv))))
    again = read_file(p)
    assert isinstance(again, Inventory)
    assert len(again) == len(inv)

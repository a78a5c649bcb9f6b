"""The site model: each bad input gets its own problem, naming the field path and the fix."""

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.site.model import (
    SiteError,
    load_site,
    normalise_site,
    parse_site,
    secret_values,
    site_plan,
    validate_site,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import SITE_SCHEMA

REPO = Path(__file__).resolve().parents[5]
SITES = sorted(p.parent.name for p in (REPO / "inventory").glob("*/site.yml"))
CANARY = "CANARY-7f3e9b1c-do-not-print"


def _site(name="example-proxmox"):
    return yaml.safe_load((REPO / "inventory" / name / "site.yml").read_text())


def _metal():
    return _site("example-baremetal")


def _apps():
    """example-proxmox with a second app beside its podinfo."""
    data = _site()
    data["apps"].append({"name": "wiki", "repository": "oci://ghcr.io/example/charts", "chart": "wiki",
                         "version": "1.2.3", "ingress": {"host": "wiki", "port": 80}})  # fmt: skip
    return data


def _errors(data):
    return validate_site(data).errors


def _find(problems, path):
    found = [p for p in problems if p.path == path]
    assert found, f"no problem at {path}; got: {[str(p) for p in problems]}"
    return found[0]


def _set(data, path, value):
    """Set data[a][b][0]... from a dotted path with [i] indexes; value DELETE removes the key."""
    keys = path.replace("[", ".").replace("]", "").split(".")
    node = data
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    last = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()


@pytest.mark.parametrize("name", SITES)
def test_every_shipped_site_is_valid(name):
    report = validate_site(_site(name))
    assert report.errors == []
    assert report.warnings == []


def test_shipped_sites_include_the_three_the_docs_name():
    assert {"demo", "example-proxmox", "example-baremetal"} <= set(SITES)


# (site, edits, problem path, fragment of the message, fragment of the fix)
CASES = [
    ("unknown key", _site, {"hosts[0].nmae": "x"}, "hosts[0].nmae", "is not a known key", "did you mean 'name'"),
    ("unknown section", _site, {"netwrok": {}}, "netwrok", "is not a known key", "did you mean 'network'"),
    ("missing field", _site, {"network.gateway": DELETE}, "network.gateway", "required but missing", "add gateway"),
    ("missing section", _site, {"flux": DELETE}, "flux", "required but missing", "add flux"),
    ("duplicate name", _site, {"hosts[1].name": "cp1"}, "hosts[1].name", "already used by hosts[0].name", "own name"),
    ("duplicate vmid", _site, {"hosts[2].vmid": 201}, "hosts[2].vmid", "already used by hosts[0].vmid", "own vmid"),
    ("vmid of template", _site, {"hosts[1].vmid": 9000}, "hosts[1].vmid", "already used by template.vmid", "vmid"),
    ("duplicate ip", _site, {"hosts[2].ip": "192.168.10.21/24"}, "hosts[2].ip", "already used by hosts[0].ip", "ip"),
    ("duplicate mac", _metal, {"hosts[2].mac": "58:47:CA:71:00:01"}, "hosts[2].mac", "already used by hosts[0]", ""),
    ("ip outside", _site, {"hosts[0].ip": "192.168.20.5/24"}, "hosts[0].ip", "outside network.cidr", "inside"),
    ("network address", _site, {"hosts[0].ip": "192.168.10.0/24"}, "hosts[0].ip", "the network address", "free"),
    ("broadcast", _site, {"hosts[0].ip": "192.168.10.255/24"}, "hosts[0].ip", "the broadcast address", "free"),
    ("gateway", _site, {"hosts[0].ip": "192.168.10.1/24"}, "hosts[0].ip", "the gateway", "free host address"),
    ("ip no prefix", _site, {"hosts[0].ip": "192.168.10.21"}, "hosts[0].ip", "has no /prefix", "address/prefix"),
    ("prefix differs", _site, {"hosts[0].ip": "192.168.10.21/16"}, "hosts[0].ip", "prefix /16", "192.168.10.21/24"),
    (
        "metallb outside",
        _site,
        {"metallb.addresses": ["192.168.11.10-192.168.11.20"]},
        "metallb.addresses[0]",
        "not inside network.cidr",
        "inside network.cidr",
    ),
    (
        "metallb covers host",
        _site,
        {"metallb.addresses": ["192.168.10.20-192.168.10.25"]},
        "metallb.addresses[0]",
        "contains 192.168.10.21, the address of hosts[0] (cp1)",
        "leaves 192.168.10.21 out",
    ),
    (
        "metallb covers gateway",
        _site,
        {"metallb.addresses": ["192.168.10.1-192.168.10.9"]},
        "metallb.addresses[0]",
        "contains 192.168.10.1, the gateway",
        "leaves 192.168.10.1 out",
    ),
    (
        "metallb ranges overlap",
        _site,
        {"metallb.addresses": ["192.168.10.200-192.168.10.210", "192.168.10.205-192.168.10.215"]},
        "metallb.addresses[1]",
        "overlaps metallb.addresses[0]",
        "disjoint",
    ),
    ("metallb garbage", _site, {"metallb.addresses": ["lots"]}, "metallb.addresses[0]", "not an address range", ""),
    ("no control-plane", _site, {"hosts[0].role": "worker"}, "hosts", "no host has role control-plane", "role"),
    ("role typo", _site, {"hosts[0].role": "master"}, "hosts[0].role", "not one of control-plane, worker", "one of"),
    ("name not a label", _site, {"hosts[1].name": "Worker_1"}, "hosts[1].name", "'Worker_1'", "no underscores"),
    ("name with dot", _site, {"hosts[1].name": "w1.lab"}, "hosts[1].name", "'w1.lab'", "no dots"),
    ("metal without mac", _metal, {"hosts[1].mac": DELETE}, "hosts[1].mac", "required for a baremetal", "MAC"),
    ("metal no disk", _metal, {"hosts[1].disk_id": DELETE}, "hosts[1].disk_id", "baremetal host", "by-id"),
    (
        "metal disk not by-id",
        _metal,
        {"hosts[1].disk_id": "/dev/nvme0n1"},
        "hosts[1].disk_id",
        "not in the expected form",
        "/dev/disk/by-id",
    ),
    ("vm without vmid", _site, {"hosts[1].vmid": DELETE}, "hosts[1].vmid", "required for a vm host", "add vmid"),
    ("vm without node", _site, {"hosts[1].node": DELETE}, "hosts[1].node", "required for a vm host", "add node"),
    ("vm unknown node", _site, {"hosts[1].node": "pve9"}, "hosts[1].node", "not in proxmox.nodes", "pve1, pve2"),
    ("vm with disk_id", _site, {"hosts[1].disk_id": "/dev/disk/by-id/x"}, "hosts[1].disk_id", "does not apply", ""),
    ("vmid too low", _site, {"hosts[0].vmid": 99}, "hosts[0].vmid", "is 99, must be from 100 to 999999999", "100"),
    ("vmid too high", _site, {"hosts[0].vmid": 1000000000}, "hosts[0].vmid", "must be from 100", "999999999"),
    ("vmid a string", _site, {"hosts[0].vmid": "201"}, "hosts[0].vmid", "must be an integer, not a string", ""),
    ("vm no proxmox", _site, {"proxmox": DELETE}, "proxmox", "required because hosts[0] is a vm", "add the proxmox"),
    ("disk shrinks", _site, {"hosts[0].disk": 10}, "hosts[0].disk", "smaller than the template disk", "at least 20"),
    (
        "ssh key body",
        _site,
        {"admin_ssh_keys[0]": "ssh-ed25519 AAAA!!notbase64 me@laptop"},
        "admin_ssh_keys[0]",
        "not valid base64 SSH key data",
        ".pub",
    ),
    (
        "ssh key label",
        _site,
        {"admin_ssh_keys[0]": "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAINU9pb4AcSwRvvlx7xnotXk8P/jB2vMcsoOo2WrkuQWN me"},
        "admin_ssh_keys[0]",
        "does not match its label 'ssh-rsa'",
        "TYPE BASE64",
    ),
    ("ssh key type", _site, {"admin_ssh_keys[0]": "ssh-dss AAAAB3 me"}, "admin_ssh_keys[0]", "key type 'ssh-dss'", ""),
    ("ssh key alone", _site, {"admin_ssh_keys[0]": "ssh-ed25519"}, "admin_ssh_keys[0]", "not an SSH public key", ""),
    (
        "age checksum",
        _site,
        {"sops.admin_recipients[0]": "age1pya4cp2rnpjdn5cq02flau85thavutn4v4m5z3kcgcucyl7j3ewqsfcd3n"},
        "sops.admin_recipients[0]",
        "bad checksum",
        "age-keygen -y",
    ),
    (
        "age not bech32",
        _site,
        {"sops.admin_recipients[0]": "age1-not-a-key"},
        "sops.admin_recipients[0]",
        "is not an age recipient",
        "age-keygen -y",
    ),
    ("http url", _site, {"proxmox.url": "http://pve1:8006"}, "proxmox.url", "'http://pve1:8006'", "https://"),
    ("token id form", _site, {"proxmox.token_id": "automation"}, "proxmox.token_id", "expected form", "USER@REALM!"),
    ("gateway outside", _site, {"network.gateway": "10.0.0.1"}, "network.gateway", "not a usable address", ""),
    ("cidr host bits", _site, {"network.cidr": "192.168.10.1/24"}, "network.cidr", "not an IPv4 network", ""),
    ("pod cidr clash", _site, {"k3s.cluster_cidr": "192.168.0.0/16"}, "k3s.cluster_cidr", "overlaps network", ""),
    ("k3s version", _site, {"k3s.version": "1.31"}, "k3s.version", "expected form", "v1.31.4+k3s1"),
    ("flux path", _site, {"flux.path": "/clusters/home/"}, "flux.path", "expected form", "without leading"),
    ("bios", _site, {"template.bios": "uefi"}, "template.bios", "not one of ovmf, seabios", "ovmf"),
    (
        "chart range",
        _site,
        {"platform.versions.traefik": "^37.1"},
        "platform.versions.traefik",
        "expected form",
        "one exact chart version",
    ),
    (
        "chart two parts",
        _site,
        {"platform.versions.longhorn": "1.9"},
        "platform.versions.longhorn",
        "expected form",
        "e.g. 1.9.1",
    ),
    (
        "chart leading zero",
        _site,
        {"platform.versions.metallb": "0.015.2"},
        "platform.versions.metallb",
        "expected form",
        "0.15.2",
    ),
    (
        "flux without v",
        _site,
        {"platform.versions.flux": "2.6.1"},
        "platform.versions.flux",
        "expected form",
        "with its v, e.g. v2.6.1",
    ),
    (
        "unknown chart",
        _site,
        {"platform.versions.grafana": "1.0.0"},
        "platform.versions.grafana",
        "not a known key",
        "kube_prometheus_stack",
    ),
    ("app name twice", _apps, {"apps[1].name": "podinfo"}, "apps[1].name", "already used by apps[0]", "own name"),
    ("app name long", _site, {"apps[0].name": "a" * 54}, "apps[0].name", "expected form", "at most 53"),
    ("app name form", _site, {"apps[0].name": "Pod_Info"}, "apps[0].name", "expected form", "lower-case"),
    ("app key typo", _site, {"apps[0].chrat": "x"}, "apps[0].chrat", "not a known key", "did you mean 'chart'"),
    ("app no chart", _site, {"apps[0].chart": DELETE}, "apps[0].chart", "required but missing", "add chart"),
    (
        "app http repo",
        _site,
        {"apps[0].repository": "http://charts.x"},
        "apps[0].repository",
        "expected form",
        "https://",
    ),  # fmt: skip
    ("app version range", _site, {"apps[0].version": "^6.9"}, "apps[0].version", "expected form", "no range"),
    (
        "app platform ns",
        _site,
        {"apps[0].namespace": "traefik"},
        "apps[0].namespace",
        "namespace of the platform",
        "namespace of the app's own",
    ),  # fmt: skip
    (
        "app named as platform ns",
        _site,
        {"apps[0].name": "monitoring"},
        "apps[0].name",
        "namespace of the platform",
        "set namespace:",
    ),  # fmt: skip
    ("app ns form", _site, {"apps[0].namespace": "My NS"}, "apps[0].namespace", "expected form", "DNS label"),
    ("app values list", _site, {"apps[0].values": [1]}, "apps[0].values", "must be a mapping", "mapping"),
    ("app port", _site, {"apps[0].ingress.port": 0}, "apps[0].ingress.port", "must be from 1 to 65535", "port"),
    ("app no port", _site, {"apps[0].ingress.port": DELETE}, "apps[0].ingress.port", "required", "add port"),
    ("app host form", _site, {"apps[0].ingress.host": "Pod_Info"}, "apps[0].ingress.host", "expected form", "label"),
    (
        "app host dashboard",
        _site,
        {"apps[0].ingress.host": "traefik"},
        "apps[0].ingress.host",
        "traefik.home.lab.example is already served by the traefik dashboard",
        "another host",
    ),  # fmt: skip
    (
        "app host twice",
        _apps,
        {"apps[1].ingress.host": "podinfo.home.lab.example"},
        "apps[1].ingress.host",
        "already served by apps[0]",
        "another host",
    ),  # fmt: skip
    (
        "app service form",
        _site,
        {"apps[0].ingress.service": "Svc_1"},
        "apps[0].ingress.service",
        "expected form",
        "kubectl get svc",
    ),  # fmt: skip
    (
        "app sops path",
        _site,
        {"apps[0].values_sops": "/abs/values.yaml"},
        "apps[0].values_sops",
        "expected form",
        "relative path to a sops YAML",
    ),  # fmt: skip
    (
        "app values password",
        _site,
        {"apps[0].values.auth": {"adminPassword": "x"}},
        "apps[0].values.auth.adminPassword",
        "password is written inline",
        "values_sops",
    ),  # fmt: skip
    ("retention unit", _site, {"monitoring.retention": "15 days"}, "monitoring.retention", "expected form", "15d"),
    ("retention order", _site, {"monitoring.retention": "3d1w"}, "monitoring.retention", "expected form", "1w3d"),
    ("retention empty", _site, {"monitoring.retention": ""}, "monitoring.retention", "expected form", "duration"),
    ("size unit", _site, {"monitoring.prometheus_storage": "20GB"}, "monitoring.prometheus_storage", "expected form",
     "Mi, Gi or Ti, e.g. 20Gi"),
    ("size zero", _site, {"monitoring.grafana_storage": "0Gi"}, "monitoring.grafana_storage", "expected form", "5Gi"),
    ("size number", _site, {"monitoring.alertmanager_storage": 2}, "monitoring.alertmanager_storage",
     "must be a string, not an integer", "2Gi"),
    ("storage class", _site, {"monitoring.storage_class": "Fast_SSD"}, "monitoring.storage_class", "expected form",
     "kubectl get storageclass"),
    ("grafana host", _site, {"monitoring.grafana_host": "https://grafana.lab"}, "monitoring.grafana_host",
     "expected form", "grafana.lab.example"),
    ("alert percent", _site, {"monitoring.alerts.volume_full_percent": 100}, "monitoring.alerts.volume_full_percent",
     "must be from 50 to 99", "85"),
    ("alert typo", _site, {"monitoring.alerts.node_ready": True}, "monitoring.alerts.node_ready", "not a known key",
     "node_not_ready"),
    ("monitoring null", _site, {"monitoring": None}, "monitoring", "must be a mapping, not null", "monitoring"),
    ("app host grafana", _site, {"apps[0].ingress.host": "grafana"}, "apps[0].ingress.host",
     "grafana.home.lab.example is already served by Grafana (monitoring.grafana_host)", "another host"),
    ("grafana host app", _site, {"monitoring.grafana_host": "podinfo.home.lab.example"}, "apps[0].ingress.host",
     "already served by Grafana", "another host"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "edits", "path", "message", "fix"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_the_field_and_the_fix(base, edits, path, message, fix):
    data = base()
    for where, value in edits.items():
        _set(data, where, value)
    problem = _find(_errors(data), path)
    assert message in problem.message
    assert fix in problem.fix
    assert problem.fix, "every problem says how to fix it"


def test_even_control_plane_count_is_a_warning_not_an_error():
    data = _site()
    data["hosts"][1]["role"] = "control-plane"
    report = validate_site(data)
    assert report.errors == []
    warning = _find(report.warnings, "hosts")
    assert "2 control-plane hosts" in warning.message
    assert "1, 3 or 5" in warning.fix


@pytest.mark.parametrize(
    ("where", "value", "belongs"),
    [
        ("proxmox.token_secret", CANARY, "token_secret_env"),
        ("proxmox.password", CANARY, "token_secret_env"),
        ("flux.github_token", CANARY, "token_secret_env"),
        ("hosts[0].root_password", CANARY, "token_secret_env"),
        ("sops.admin_recipients[0]", "AGE-SECRET-KEY-1" + CANARY.upper(), "SOPS_AGE_KEY_FILE"),
        (
            "admin_ssh_keys[0]",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n" + CANARY + "\n-----END OPENSSH PRIVATE KEY-----",
            ".pub line",
        ),
        ("site.description", "PVEAPIToken=root@pam!x=" + CANARY, "token_secret_env"),
    ],
)
def test_inline_secret_is_an_error_that_never_shows_the_value(where, value, belongs):
    data = _set(_site(), where, value)
    with pytest.raises(SiteError) as caught:
        parse_site(data)
    problem = _find(caught.value.problems, where)
    assert "secret is written inline" in problem.message
    assert belongs in problem.fix
    shown = str(caught.value) + json.dumps([p.as_dict() for p in caught.value.problems])
    assert CANARY not in shown
    assert CANARY.upper() not in shown


def test_every_problem_is_reported_at_once():
    data = _site()
    _set(data, "hosts[0].nmae", "x")
    _set(data, "hosts[1].ip", "10.9.9.9/24")
    _set(data, "proxmox.url", "http://pve")
    _set(data, "template.vmid", 5)
    with pytest.raises(SiteError) as caught:
        parse_site(data)
    paths = {p.path for p in caught.value.problems}
    assert {"hosts[0].nmae", "hosts[1].ip", "proxmox.url", "template.vmid"} <= paths
    lines = str(caught.value).splitlines()
    assert lines[0] == f"site file has {len(caught.value.problems)} problems:"
    assert all(". Fix: " in line for line in lines[1:])


def test_chart_values_take_any_keys_and_refuse_only_passwords():
    data = _site()
    data["apps"][0]["values"] = {
        "auth": {"existingSecret": "podinfo-auth", "adminPassword": ""},
        "serviceAccount": {"automountServiceAccountToken": False},
        "any-Key_1": [{"x": 1}],
    }
    assert validate_site(data).errors == []
    data["apps"][0]["values"]["tls"] = ["-----BEGIN EC PRIVATE KEY-----\n" + CANARY]
    with pytest.raises(SiteError) as caught:
        parse_site(data)
    assert [p.path for p in caught.value.problems] == ["apps[0].values.tls[0]"]
    assert CANARY not in str(caught.value)
    data["apps"][0]["values"]["tls"] = []
    data["apps"][0]["values"]["auth"]["adminPassword"] = CANARY
    with pytest.raises(SiteError) as caught:
        parse_site(data)
    assert CANARY not in str(caught.value) + json.dumps([p.as_dict() for p in caught.value.problems])
    assert CANARY in secret_values(data), "site_validate masks it in its own output too"


def test_an_app_host_outside_the_domain_is_a_warning():
    data = _site()
    data["apps"][0]["ingress"]["host"] = "podinfo.example.org"
    report = validate_site(data)
    assert report.errors == []
    warning = _find(report.warnings, "apps[0].ingress.host")
    assert "outside the site's domain home.lab.example" in warning.message
    assert "podinfo means podinfo.home.lab.example" in warning.fix


def test_app_defaults_namespace_service_and_host():
    data = _apps()
    data["apps"][1]["namespace"] = "docs"
    apps = parse_site(data)["apps"]
    assert (apps[0]["namespace"], apps[0]["values"]["replicaCount"]) == ("podinfo", 2)
    assert apps[0]["ingress"] == {"host": "podinfo.home.lab.example", "service": "podinfo", "port": 9898}
    assert (apps[1]["namespace"], apps[1]["values"], apps[1]["ingress"]["service"]) == ("docs", {}, "wiki")
    data["apps"][1]["ingress"]["host"] = "wiki.example.org"
    assert parse_site(data)["apps"][1]["ingress"]["host"] == "wiki.example.org", "a full name is kept"
    assert parse_site(_site("demo")).get("apps") == [], "no apps: an empty list"


def test_a_values_sops_file_must_exist_next_to_the_site_file(tmp_path):
    data = _site()
    data["apps"][0]["values_sops"] = "secrets/podinfo.sops.yaml"
    site_file = tmp_path / "site.yml"
    site_file.write_text(yaml.safe_dump(data))
    with pytest.raises(SiteError) as caught:
        load_site(str(site_file))
    problem = _find(caught.value.problems, "apps[0].values_sops")
    assert "secrets/podinfo.sops.yaml does not exist next to the site file" in problem.message
    assert "create it with sops" in problem.fix
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "podinfo.sops.yaml").write_text("x: 1\n")
    assert load_site(str(site_file))["apps"][0]["values_sops"] == "secrets/podinfo.sops.yaml"
    assert validate_site(data).errors == [], "without the site file's directory no file is looked for"


def test_not_a_mapping():
    problem = _find(_errors(["hosts"]), "")
    assert problem.message == "must be a mapping, not a list"


def test_defaults_are_filled_in_and_vm_sizes_come_from_the_template():
    data = _site("demo")
    site = normalise_site(data)
    assert site["proxmox"]["validate_certs"] is True
    assert site["flux"]["branch"] == "main"
    assert site["flux"]["token_env"] == "GITHUB_TOKEN"
    assert site["k3s"]["disable"] == ["servicelb", "traefik"]
    cp1 = site["hosts"][0]
    assert (cp1["cores"], cp1["memory"], cp1["disk"]) == (2, 2048, 16)
    assert cp1["address"] == "10.77.0.11"
    assert "cores" not in site["hosts"][3], "bare metal has no VM size"
    assert "cores" not in data["hosts"][0], "the input is left as it was"


def test_platform_versions_default_to_the_collections_and_a_pin_is_kept():
    site = normalise_site(_site())
    assert site["platform"]["versions"] == {
        "flux": "v2.6.1",
        "metallb": "0.15.2",
        "traefik": "37.1.1",
        "cert_manager": "v1.18.2",
        "longhorn": "1.9.1",
        "csi_driver_nfs": "4.11.0",
        "kube_prometheus_stack": "75.15.0",
        "capacitor": "v0.4.8",
    }
    data = _site()
    data["platform"] = {"versions": {"traefik": "36.3.0", "cert_manager": "v1.17.4-rc.1"}}
    assert _errors(data) == []
    versions = normalise_site(data)["platform"]["versions"]
    assert versions["traefik"] == "36.3.0" and versions["cert_manager"] == "v1.17.4-rc.1"
    assert versions["metallb"] == "0.15.2"


def test_load_site_reports_unreadable_and_broken_files(tmp_path):
    with pytest.raises(SiteError, match="cannot be read"):
        load_site(str(tmp_path / "missing.yml"))
    broken = tmp_path / "site.yml"
    broken.write_text("network: [unclosed\n")
    with pytest.raises(SiteError, match="is not valid YAML at line"):
        load_site(str(broken))


def test_a_yaml_syntax_error_keeps_the_parsers_reason_and_place(tmp_path):
    broken = tmp_path / "site.yml"
    broken.write_text("hosts:\n  - name: a\n   role: worker\n")
    with pytest.raises(SiteError) as raised:
        load_site(str(broken))
    message = str(raised.value.problems[0].message)
    # libyaml's words when PyYAML has it ("did not find expected '-' indicator"), else PyYAML's ("expected <block end>")
    assert message.startswith("is not valid YAML at line 3, column 4: "), message
    assert "expected" in message, message
    assert "(while parsing a block collection)" in message, "the parser's own words are kept"


def test_plan_lists_only_the_phases_the_site_needs():
    metal = [step["phase"] for step in site_plan(normalise_site(_metal()))]
    assert metal == ["validate", "keys", "install", "bootstrap"]
    plan = site_plan(normalise_site(_site()))
    assert [step["phase"] for step in plan] == ["validate", "keys", "template", "vms", "install", "bootstrap"]
    assert plan[3]["targets"] == ["cp1", "worker1", "worker2"]
    assert all(s["implemented"] for s in plan)


def test_published_schema_file_matches_the_code():
    published = json.loads((REPO / "docs" / "site.schema.json").read_text())
    assert published == json.loads(json.dumps(SITE_SCHEMA)), "run python3 hacking/write_site_schema.py"


def test_field_reference_in_docs_matches_the_schema():
    spec = importlib.util.spec_from_file_location("write_site_schema", REPO / "hacking" / "write_site_schema.py")
    writer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writer)
    text = (REPO / "docs" / "site.md").read_text()
    assert writer.render_doc(text) == text, "run python3 hacking/write_site_schema.py"
    assert "| `hosts[].disk_id` |" in text


def test_schema_is_a_real_json_schema_that_accepts_the_examples_and_rejects_typos():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(SITE_SCHEMA)
    jsonschema.Draft202012Validator.check_schema(SITE_SCHEMA)
    for name in SITES:
        assert list(validator.iter_errors(_site(name))) == []
    broken = copy.deepcopy(_site())
    broken["hosts"][0]["nmae"] = "x"
    assert [e.validator for e in validator.iter_errors(broken)] == ["additionalProperties"]


def test_secret_values_finds_what_the_validator_refuses():
    data = _site()
    _set(data, "proxmox.token_secret", CANARY)
    _set(data, "hosts[0].root_password", 1234)
    _set(data, "site.description", "AGE-SECRET-KEY-1" + CANARY.upper())
    assert secret_values(data) == {CANARY, "1234", "AGE-SECRET-KEY-1" + CANARY.upper()}
    assert secret_values(_site()) == set()
    assert secret_values(None) == set()


def test_monitoring_is_off_unless_present_and_an_empty_section_gets_every_default():
    data = _metal()
    assert "monitoring" not in data and "monitoring" not in normalise_site(data)
    data["monitoring"] = {}
    monitoring = parse_site(data)["monitoring"]
    assert monitoring == {
        "retention": "15d",
        "prometheus_storage": "20Gi",
        "alertmanager_storage": "2Gi",
        "grafana_storage": "5Gi",
        "alerts": {
            "node_not_ready": True,
            "flux_not_ready": True,
            "volume_filling_up": True,
            "volume_full_percent": 85,
        },
    }

"""hosts[].services: what each host runs (site/services.py), the local DNS records built from the same data the
cluster renders from (site/endpoints.py), and every bad input refused with the field and the fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops import render
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.monitoring import host_exporter_targets
from ansible_collections.nerv.homelab.plugins.module_utils.site.endpoints import ingress_hosts, traefik_address
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import parse_site, validate_site
from ansible_collections.nerv.homelab.plugins.module_utils.site.services import dns_records, host_services

REPO = Path(__file__).resolve().parents[5]


def _data(name="example-proxmox") -> dict:
    return yaml.safe_load((REPO / "inventory" / name / "site.yml").read_text())


def _with(data: dict, **services) -> dict:
    """data with hosts[i].services = value for h<i>=value (the example's own services replaced)."""
    data = copy.deepcopy(data)
    for host in data["hosts"]:
        host.pop("services", None)
    for key, value in services.items():
        data["hosts"][int(key[1:])]["services"] = value
    return data


def _errors(data: dict) -> list:
    return [(p.path, p.message, p.fix) for p in validate_site(data).errors]


def _only_error(data: dict):
    errors = _errors(data)
    assert len(errors) == 1, errors
    return errors[0]


# ---------------------------------------------------------------------------------------------------- resolved


def test_the_example_runs_dns_on_cp1_and_caddy_on_worker1():
    site = parse_site(_data())
    cp1, worker1, worker2 = (host_services(site, h) for h in site["hosts"])
    records = {
        "cp1.home.lab.example": "192.168.10.21",
        "worker1.home.lab.example": "192.168.10.31",
        "worker2.home.lab.example": "192.168.10.32",
        # the cluster's ingress hosts at Traefik's pinned address, the first of metallb.addresses
        "traefik.home.lab.example": "192.168.10.200",
        "longhorn.home.lab.example": "192.168.10.200",
        "flux.home.lab.example": "192.168.10.200",
        "grafana.home.lab.example": "192.168.10.200",
        "podinfo.home.lab.example": "192.168.10.200",
        # the Caddy proxy name at its Caddy host
        "nas.home.lab.example": "192.168.10.31",
    }
    assert cp1 == {
        "dns": {"engine": "blocky", "upstreams": ["1.1.1.1", "9.9.9.9"], "records": dict(sorted(records.items()))},
        "caddy": None,
        "node_exporter": None,
    }
    assert worker1 == {
        "dns": None,
        "caddy": {"proxies": {"nas.home.lab.example": "http://192.168.10.4:5000"}},
        "node_exporter": None,
    }
    assert worker2 == {"dns": None, "caddy": None, "node_exporter": None}


def test_the_records_use_the_renderers_own_hosts_and_address():
    site = parse_site(_data())
    records = dns_records(site)
    rendered = render.render(site, "clusters/home")
    hosts = set()
    for docs in rendered.values():
        for doc in docs:
            if doc.get("kind") == "Ingress":
                hosts.update(rule["host"] for rule in doc["spec"]["rules"])
    (release,) = rendered["platform/home/infrastructure-config/traefik.yaml"]
    # Traefik's dashboard: the chart's IngressRoute, Host(`traefik.<domain>`)
    hosts.add(release["spec"]["values"]["ingressRoute"]["dashboard"]["matchRule"].split("`")[1])
    assert hosts == set(ingress_hosts(site)) and hosts <= set(records)
    traefik = release["spec"]["values"]["service"]
    assert traefik["annotations"] == {"metallb.io/loadBalancerIPs": "192.168.10.200"}
    assert {records[h] for h in hosts} == {traefik_address(site)} == {"192.168.10.200"}


def test_true_turns_a_service_on_with_its_defaults_and_false_leaves_it_off():
    site = parse_site(_with(_data(), h0={"dns": True, "node_exporter": {"port": 9101}}, h1={"dns": False}))
    cp1 = host_services(site, site["hosts"][0])
    assert cp1["dns"]["engine"] == "blocky" and cp1["dns"]["upstreams"] == ["1.1.1.1", "9.9.9.9"]
    assert cp1["node_exporter"] == {"port": 9101}
    assert host_services(site, site["hosts"][1]) == {"dns": None, "caddy": None, "node_exporter": None}
    assert host_exporter_targets(site) == [("cp1", "192.168.10.21:9101")]


def test_records_the_site_adds_are_served_by_every_dns_host():
    extra = {"dns": {"engine": "adguardhome", "records": [{"name": "printer", "address": "192.168.10.5"}]}}
    site = parse_site(_with(_data(), h0=extra, h2={"dns": True}))
    first, other = host_services(site, site["hosts"][0]), host_services(site, site["hosts"][2])
    assert first["dns"]["engine"] == "adguardhome" and other["dns"]["engine"] == "blocky"
    assert first["dns"]["records"] == other["dns"]["records"]
    assert first["dns"]["records"]["printer.home.lab.example"] == "192.168.10.5"


def test_a_site_without_monitoring_has_no_grafana_record():
    data = _with(_data(), h0={"dns": True})
    del data["monitoring"]
    records = dns_records(parse_site(data))
    assert "grafana.home.lab.example" not in records and "traefik.home.lab.example" in records


# ---------------------------------------------------------------------------------------------------- refused


def test_the_example_is_valid():
    assert _errors(_data()) == []


SCHEMA_BAD = [
    ("unknown engine", {"dns": {"engine": "bind"}}, "hosts[0].services.dns.engine", "use one of: blocky, adguardhome"),
    ("upstream name", {"dns": {"upstreams": ["dns.google"]}}, "hosts[0].services.dns.upstreams[0]", "IPv4"),
    ("no upstreams", {"dns": {"upstreams": []}}, "hosts[0].services.dns.upstreams", "list IPv4 addresses"),
    ("record address", {"dns": {"records": [{"name": "x", "address": "x"}]}}, "records[0].address", "IPv4"),
    ("no proxies", {"caddy": {}}, "hosts[0].services.caddy.proxies", "add proxies"),
    ("empty proxies", {"caddy": {"proxies": []}}, "hosts[0].services.caddy.proxies", "list mappings"),
    ("upstream not a URL", {"caddy": {"proxies": [{"name": "a", "upstream": "192.168.10.4:80"}]}}, "upstream",
     "write a URL"),
    ("ftp upstream", {"caddy": {"proxies": [{"name": "a", "upstream": "ftp://nas"}]}}, "upstream", "write a URL"),
    ("upper-case name", {"caddy": {"proxies": [{"name": "NAS", "upstream": "http://nas"}]}}, "proxies[0].name",
     "lower-case"),
    ("caddy true", {"caddy": True}, "hosts[0].services.caddy", "write a mapping with proxies"),
    ("port too low", {"node_exporter": {"port": 100}}, "hosts[0].services.node_exporter.port", "from 1024"),
    ("port too high", {"node_exporter": {"port": 70000}}, "hosts[0].services.node_exporter.port", "from 1024"),
    ("unknown service", {"samba": True}, "hosts[0].services.samba", "Known keys here: dns, caddy, node_exporter"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "services", "path", "fix"), SCHEMA_BAD, ids=[c[0] for c in SCHEMA_BAD])
def test_bad_services_are_refused_by_the_schema(case, services, path, fix):
    where, _message, advice = _only_error(_with(_data(), h0=services))
    assert where.endswith(path) and fix in advice, (where, advice)


def _proxy(name, upstream="http://192.168.10.4:5000"):
    return {"caddy": {"proxies": [{"name": name, "upstream": upstream}]}}


def test_a_proxy_name_outside_the_domain_is_refused():
    path, message, fix = _only_error(_with(_data(), h1=_proxy("nas.elsewhere.example")))
    assert path == "hosts[1].services.caddy.proxies[0].name"
    assert "outside the site's domain home.lab.example" in message and "bare label" in fix


def test_proxy_names_are_unique_across_hosts():
    path, message, fix = _only_error(_with(_data(), h1=_proxy("nas"), h2=_proxy("nas.home.lab.example")))
    assert path == "hosts[2].services.caddy.proxies[0].name"
    assert "nas.home.lab.example is already proxied by hosts[1]" in message and fix == "choose another name"


@pytest.mark.parametrize(("name", "taken"), [("grafana", "a cluster ingress"), ("podinfo", "a cluster ingress"),
                                             ("worker2", "hosts[2] itself")])  # fmt: skip
def test_a_proxy_may_not_take_a_cluster_or_host_name(name, taken):
    path, message, _fix = _only_error(_with(_data(), h1=_proxy(name)))
    assert path == "hosts[1].services.caddy.proxies[0].name" and taken in message


def test_a_record_may_not_take_a_name_the_site_already_answers():
    data = _with(_data(), h0={"dns": {"records": [{"name": "flux", "address": "192.168.10.9"}]}}, h1=_proxy("nas"))
    data["hosts"][0]["services"]["dns"]["records"].append({"name": "nas", "address": "192.168.10.9"})
    errors = _errors(data)
    assert [e[0] for e in errors] == ["hosts[0].services.dns.records[0].name", "hosts[0].services.dns.records[1].name"]
    assert "a cluster ingress" in errors[0][1] and "proxied by hosts[1]" in errors[1][1]


def test_two_dns_hosts_may_not_give_one_name_two_addresses():
    printer = {"name": "printer", "address": "192.168.10.5"}
    again = {"name": "printer.home.lab.example", "address": "192.168.10.6"}
    ok = _with(_data(), h0={"dns": {"records": [printer]}}, h2={"dns": {"records": [dict(printer)]}})
    assert _errors(ok) == []
    path, message, _fix = _only_error(
        _with(_data(), h0={"dns": {"records": [printer]}}, h2={"dns": {"records": [again]}})
    )
    assert path == "hosts[2].services.dns.records[0].name" and "already has the address 192.168.10.5" in message


def test_dns_on_two_hosts_is_fine_but_not_forwarding_to_each_other():
    assert _errors(_with(_data(), h0={"dns": True}, h1={"dns": True})) == []
    path, message, fix = _only_error(_with(_data(), h0={"dns": True}, h1={"dns": {"upstreams": ["192.168.10.21"]}}))
    assert path == "hosts[1].services.dns.upstreams[0]" and "loop" in message and "1.1.1.1" in fix


@pytest.mark.parametrize("port", [6443, 10250, 2379, 2380])
def test_the_exporter_may_not_take_a_port_the_host_uses(port):
    data = _with(_data(), h0={"node_exporter": {"port": port}})
    path, message, _fix = _only_error(data)
    assert path == "hosts[0].services.node_exporter.port" and f"port {port} is taken" in message


def test_with_monitoring_port_9100_is_the_clusters_own_exporter():
    path, message, fix = _only_error(_with(_data(), h0={"node_exporter": True}))
    assert path == "hosts[0].services.node_exporter" and "kube-prometheus-stack" in message and "9101" in fix
    data = _with(_data(), h0={"node_exporter": True})
    del data["monitoring"]
    assert _errors(data) == []

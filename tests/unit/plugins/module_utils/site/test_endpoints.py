"""Where the cluster answers (site/endpoints.py): the ingress hosts in order, Grafana's only with monitoring, and
Traefik's address pinned to the first of MetalLB's pool."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.site.endpoints import ingress_hosts, traefik_address
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import parse_site

REPO = Path(__file__).resolve().parents[5]


def _data() -> dict:
    return yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())


def test_the_dashboards_come_first_then_the_apps_joined_to_the_domain():
    hosts = ["traefik", "longhorn", "flux", "grafana", "podinfo"]
    assert ingress_hosts(parse_site(_data())) == [f"{host}.home.lab.example" for host in hosts]


def test_grafana_is_served_only_with_monitoring_and_on_its_own_host():
    data = _data()
    data["monitoring"]["grafana_host"] = "metrics.example.org"
    assert "metrics.example.org" in ingress_hosts(parse_site(data))
    del data["monitoring"]
    assert not any(host.startswith(("grafana.", "metrics.")) for host in ingress_hosts(parse_site(data)))


@pytest.mark.parametrize(
    ("addresses", "first"),
    [(["192.168.10.224/28"], "192.168.10.224"), (["192.168.10.200 - 192.168.10.220"], "192.168.10.200")],
)
def test_traefik_takes_the_first_address_of_the_pool(addresses, first):
    data = _data()
    data["metallb"]["addresses"] = addresses
    assert traefik_address(parse_site(data)) == first

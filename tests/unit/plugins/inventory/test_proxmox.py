"""nerv.homelab.proxmox fills a real InventoryData, and what came from Proxmox stays unsafe (never templated)."""

from __future__ import annotations

import pytest
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.nerv.homelab.plugins.inventory.proxmox import InventoryModule
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery import proxmox as logic

try:  # ansible-core 2.19+: data tags; a string is templated only when tagged TrustedAsTemplate
    from ansible._internal._datatag._tags import TrustedAsTemplate
except ImportError:  # pragma: no cover - ansible-core 2.17/2.18: plain str is templated, AnsibleUnsafe is not
    TrustedAsTemplate = None


def trusted(value: str) -> str:
    """The string as a source Ansible trusts would hand it over: templated unless the plugin marks it unsafe."""
    return TrustedAsTemplate().tag(value) if TrustedAsTemplate else value


def is_unsafe(value) -> bool:
    if TrustedAsTemplate:
        return not TrustedAsTemplate.is_tagged_on(value)
    from ansible.utils.unsafe_proxy import AnsibleUnsafe  # pragma: no cover

    return isinstance(value, AnsibleUnsafe)  # pragma: no cover


# As _read_config_data hands them over: the inventory source's own expressions are trusted.
OPTIONS = {
    "compose": {"copied_name": trusted("proxmox_name")},
    "groups": {"tagged": trusted("proxmox_tags | length > 0")},
    "keyed_groups": [{"key": trusted("proxmox_tags"), "prefix": "kg"}],
    "strict": True,
    "use_extra_vars": False,
    "leading_separator": True,
}


@pytest.fixture
def plugin():
    module = InventoryModule()
    module._options = dict(OPTIONS)
    module.inventory = InventoryData()
    module.loader = DataLoader()
    module._vars = {}
    return module


def raw_with(name, tags, description, address="10.0.0.5"):
    resources = [
        {"type": "qemu", "vmid": 101, "name": name, "node": "pve1", "status": "running", "tags": tags, "pool": "p"}
    ]
    interfaces = [{"name": "eth0", "ip-addresses": [{"ip-address": address, "ip-address-type": "ipv4"}]}]
    details = {"101": {"vmid": 101, "interfaces": {"result": interfaces}, "config": {"description": description}}}
    return {"format": 1, "resources": resources, "cluster_status": [], "guests": details}


def test_populate_adds_hosts_groups_vars_and_constructed_features(plugin):
    plugin._populate(logic.build(raw_with("cp1", "k8s-control-plane;web", "plain"), cidr=["10.0.0.0/24"]))
    inventory = plugin.inventory
    host = inventory.get_host("cp1")
    hostvars = host.get_vars()
    assert hostvars["ansible_host"] == "10.0.0.5"
    assert hostvars["proxmox_vmid"] == 101
    assert hostvars["proxmox_tags"] == ["k8s-control-plane", "web"]
    assert hostvars["copied_name"] == "cp1"
    groups = {g.name for g in host.get_groups()}
    assert {"control_plane", "proxmox_tag_web", "proxmox_node_pve1", "proxmox_pool_p", "tagged"} <= groups
    assert {"kg_k8s_control_plane", "kg_web"} <= groups


def test_without_cidr_a_guest_is_reached_at_its_own_nic_not_a_container_bridge(plugin):
    raw = raw_with("worker1", "k8s-worker", "plain", address="10.42.1.1")
    nics = raw["guests"]["101"]["interfaces"]["result"]
    nics[0]["name"] = "cni0"
    nics.append({"name": "ens18", "ip-addresses": [{"ip-address": "10.0.0.21", "ip-address-type": "ipv4"}]})
    plugin._populate(logic.build(raw))
    hostvars = plugin.inventory.get_host("worker1").get_vars()
    assert hostvars["ansible_host"] == "10.0.0.21", "the bridge reported first, yet the guest's own NIC wins"
    assert hostvars["proxmox_addresses"] == ["10.42.1.1", "10.0.0.21"], "every address, in the order reported"


def test_remote_strings_stay_unsafe_and_are_never_templated(plugin, tmp_path):
    canary = tmp_path / "templated"
    evil = "{{ lookup('pipe', 'touch " + str(canary) + "') }}"
    raw = raw_with(trusted(evil.replace(" ", "")), trusted("evil;" + evil.replace(" ", "")), trusted(evil))
    plugin._populate(logic.build(raw))

    (name,) = [h for h in plugin.inventory.hosts if h != "localhost"]
    assert is_unsafe(name)
    hostvars = plugin.inventory.get_host(name).get_vars()
    values = [hostvars["proxmox_name"], hostvars["copied_name"], hostvars["proxmox_config"]["description"]]
    values += hostvars["proxmox_tags"]
    assert all(is_unsafe(v) for v in values), values

    templar = Templar(loader=plugin.loader, variables=hostvars)
    for value in values:
        assert templar.template(value) == value
    assert templar.template(trusted("{{ proxmox_config.description }}")) == evil
    assert not canary.exists(), "a string from Proxmox was templated"

"""The pure logic of the nerv.homelab.proxmox inventory plugin: parsing, address choice, groups, requests."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.guest import networks
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery import proxmox as inv

# a guest agent's interface, as the address rule's own tests write it
from ...module_utils.proxmox.test_guest import iface


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pve1", "pve1"),
        ("k8s-control-plane", "k8s_control_plane"),
        ("proxmox_tag_a.b", "proxmox_tag_a_b"),
        ("9lives", "_9lives"),
        ("", "_"),
        ("{{ lookup('pipe','id') }}", "___lookup__pipe___id_____"),
        ("ümlaut", "_mlaut"),
    ],
)
def test_safe_group_name(name, expected):
    assert inv.safe_group_name(name) == expected


@pytest.mark.parametrize(
    ("tags", "mapping", "expected"),
    [
        ("k8s-control-plane", None, ["control_plane"]),
        ("k8s-worker;web", None, ["workers"]),
        ("worker;k8s-worker", None, ["workers"]),
        ("web;db", None, []),
        ("web", {"web": "frontends"}, ["frontends"]),
        ("k8s-worker", {"web": "frontends"}, []),
        ("edge", {"edge": "edge-nodes"}, ["edge_nodes"]),
        ("k8s-control-plane", {}, []),
    ],
)
def test_role_groups(tags, mapping, expected):
    assert inv.role_groups(tags, mapping) == expected


@pytest.mark.parametrize(
    ("addresses", "netconfig", "cidr", "expected"),
    [
        (["10.42.0.1", "10.0.0.5"], None, "10.0.0.0/24", "10.0.0.5"),
        (["10.42.0.1"], "ip=10.0.0.9/24,gw=10.0.0.1", "10.0.0.0/24", "10.0.0.9"),
        (["10.42.0.1"], "ip=dhcp", "10.0.0.0/24", None),
        ([], None, "10.0.0.0/24", None),
        ([], "ip=10.0.0.9/24", "10.0.0.0/24", "10.0.0.9"),
        (["2001:db8::5", "10.42.0.1"], None, None, "10.42.0.1"),
        (["2001:db8::5"], None, None, "2001:db8::5"),
        (["2001:db8::5", "10.0.0.5"], None, ["192.168.0.0/16", "2001:db8::/64"], "2001:db8::5"),
        (["10.0.0.5"], None, ["10.0.0.0/24"], "10.0.0.5"),
    ],
)
def test_pick_ansible_host(addresses, netconfig, cidr, expected):
    found = [{"interface": "eth0", "address": address} for address in addresses]
    assert inv.pick_ansible_host(found, netconfig, networks(cidr)) == expected


@pytest.mark.parametrize(
    ("status", "message", "down"),
    [
        (500, "No QEMU guest agent configured", True),
        (500, "QEMU guest agent is not running", True),
        (500, "VM 101 is not running", True),
        (500, "VM 101 qmp command 'guest-ping' failed - got timeout", True),
        (500, "internal error", False),
        (403, "Permission check failed (/vms/101, VM.Monitor)", False),
        (596, "Connection timed out", False),
        (None, "QEMU guest agent is not running", False),
    ],
)
def test_agent_is_down(status, message, down):
    assert inv.agent_is_down(status, message) is down


@pytest.mark.parametrize(
    ("config", "enabled"),
    [
        ({"agent": "1"}, True),
        ({"agent": 1}, True),
        ({"agent": "enabled=1,fstrim_cloned_disks=1"}, True),
        ({"agent": "1,type=virtio"}, True),
        ({"agent": "0"}, False),
        ({"agent": "enabled=0"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_agent_enabled(config, enabled):
    assert inv.agent_enabled(config) is enabled


@pytest.mark.parametrize(
    ("guests", "expected"),
    [
        ([{"vmid": 101, "name": "a"}, {"vmid": 102, "name": "b"}], {101: "a", 102: "b"}),
        ([{"vmid": 101, "name": "a"}, {"vmid": 102, "name": "a"}], {101: "a-101", 102: "a-102"}),
        ([{"vmid": 101}], {101: "vm101"}),
    ],
)
def test_host_names(guests, expected):
    assert inv.host_names(guests) == expected


# ---------------------------------------------------------------- collect() against a scripted API


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(f"{status} {message}")
        self.status, self.message = status, message


class Api:
    """Answers GETs from a dict path -> data or ApiError; records every path asked, thread-safe."""

    def __init__(self, answers):
        self.answers, self.asked, self.lock = answers, [], threading.Lock()

    def __call__(self, path, **params):
        with self.lock:
            self.asked.append(path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""))
        answer = self.answers.get(path)
        if isinstance(answer, ApiError):
            raise answer
        if answer is None:
            raise ApiError(500, f"no answer scripted for {path}")
        return answer


def vm(vmid, name, node="pve1", status="running", kind="qemu", **extra):
    return dict(id=f"{kind}/{vmid}", type=kind, vmid=vmid, name=name, node=node, status=status, template=0, **extra)


NODES = [
    {"type": "cluster", "name": "c"},
    {"type": "node", "name": "pve1", "online": 1},
    {"type": "node", "name": "pve2", "online": 0},
]
RESOURCES = [
    vm(101, "cp1", tags="k8s-control-plane", pool="k3s"),
    vm(102, "w1", tags="k8s-worker"),
    vm(103, "off", status="stopped"),
    vm(104, "ct", kind="lxc"),
    vm(105, "gone", node="pve2", status="unknown"),
    dict(vm(9000, "tpl", status="stopped"), template=1),
]


def agent(vmid):
    return f"/nodes/pve1/qemu/{vmid}/agent/network-get-interfaces"


def serial_map(fn, items):
    return [fn(i) for i in items]


def scripted(**extra):
    answers = {"/cluster/resources": RESOURCES, "/cluster/status": NODES}
    answers[agent(101)] = {"result": [iface("lo", "127.0.0.1"), iface("eth0", "10.0.0.11")]}
    answers[agent(102)] = ApiError(500, "QEMU guest agent is not running")
    answers.update(extra)
    return Api(answers)


def test_collect_asks_two_listings_and_the_agent_of_running_qemu_guests_on_online_nodes():
    api = scripted()
    raw = inv.collect(api, serial_map, api_errors=(ApiError,))
    assert api.asked == ["/cluster/resources?type=vm", "/cluster/status", agent(101), agent(102)]
    assert raw["guests"]["101"]["interfaces"]["result"][1]["name"] == "eth0"
    assert "error" not in raw["guests"]["102"]


def test_collect_with_config_skips_the_agent_when_the_config_turns_it_off():
    configs = {f"/nodes/pve1/{k}/{i}/config": c for k, i, c in [("qemu", 101, {"agent": "1"}), ("qemu", 102, {})]}
    configs.update({"/nodes/pve1/qemu/103/config": {"ipconfig0": "ip=10.0.0.13/24"}, "/nodes/pve1/lxc/104/config": {}})
    api = scripted(**configs)
    raw = inv.collect(api, serial_map, want_config=True, api_errors=(ApiError,))
    asked = set(api.asked[2:])
    assert asked == set(configs) | {agent(101)}
    assert raw["guests"]["103"]["config"] == {"ipconfig0": "ip=10.0.0.13/24"}


def test_collect_keeps_other_agent_errors_as_data():
    api = scripted(**{agent(102): ApiError(403, "Permission check failed (/vms/102, VM.Monitor)")})
    raw = inv.collect(api, serial_map, api_errors=(ApiError,))
    assert raw["guests"]["102"]["error"] == "403 Permission check failed (/vms/102, VM.Monitor)"


def test_collect_lets_a_listing_error_through():
    api = Api({"/cluster/resources": ApiError(401, "authentication failure")})
    with pytest.raises(ApiError, match="authentication failure"):
        inv.collect(api, serial_map, api_errors=(ApiError,))


def test_build_hosts_vars_and_groups():
    raw = inv.collect(scripted(), serial_map, api_errors=(ApiError,))
    model = inv.build(raw, cidr="10.0.0.0/24")
    assert sorted(model.hosts) == ["cp1", "ct", "off", "w1"]
    cp1 = model.hosts["cp1"]
    assert cp1 == {
        "proxmox_vmid": 101,
        "proxmox_name": "cp1",
        "proxmox_node": "pve1",
        "proxmox_status": "running",
        "proxmox_type": "qemu",
        "proxmox_tags": ["k8s-control-plane"],
        "proxmox_pool": "k3s",
        "proxmox_template": False,
        "proxmox_addresses": ["10.0.0.11"],
        "ansible_host": "10.0.0.11",
    }
    assert "ansible_host" not in model.hosts["w1"]
    assert model.groups["control_plane"] == ["cp1"]
    assert model.groups["workers"] == ["w1"]
    assert model.groups["proxmox_tag_k8s_control_plane"] == ["cp1"]
    assert model.groups["proxmox_pool_k3s"] == ["cp1"]
    assert model.groups["proxmox_node_pve1"] == ["cp1", "w1", "off", "ct"]
    assert model.groups["proxmox_status_stopped"] == ["off"]
    assert model.groups["proxmox_lxc"] == ["ct"]
    assert model.groups["proxmox_guests"] == ["cp1", "w1", "off", "ct"]
    assert model.warnings == ["Proxmox node pve2 is offline: its guests are not inventoried (gone)"]


def test_build_templates_only_when_asked():
    raw = inv.collect(scripted(), serial_map, want_templates=True, api_errors=(ApiError,))
    model = inv.build(raw)
    assert model.hosts["tpl"]["proxmox_template"] is True
    assert "tpl" not in inv.build(inv.collect(scripted(), serial_map, api_errors=(ApiError,))).hosts


def test_build_falls_back_to_ipconfig0_and_warns_about_unreadable_guests():
    raw = inv.collect(scripted(), serial_map, api_errors=(ApiError,))
    raw["guests"]["103"] = {"vmid": 103, "config": {"ipconfig0": "ip=10.0.0.13/24,gw=10.0.0.1"}}
    raw["guests"]["104"] = {"vmid": 104, "error": "403 Permission check failed"}
    model = inv.build(raw, cidr="10.0.0.0/24", prefix="pve_", roles={"k8s-worker": "k3s-agents"})
    assert model.hosts["off"]["ansible_host"] == "10.0.0.13"
    assert model.hosts["off"]["proxmox_config"] == {"ipconfig0": "ip=10.0.0.13/24,gw=10.0.0.1"}
    assert model.groups["k3s_agents"] == ["w1"]
    assert "control_plane" not in model.groups
    assert "pve_node_pve1" in model.groups
    assert model.warnings[-1].endswith("could not be read, so they have no address: ct (403 Permission check failed)")


@pytest.mark.parametrize(
    ("cached", "want_config", "want_templates", "usable"),
    [
        ({"format": 1, "want_config": False, "want_templates": False}, False, False, True),
        ({"format": 1, "want_config": True, "want_templates": True}, False, False, True),
        ({"format": 1, "want_config": False, "want_templates": False}, True, False, False),
        ({"format": 1, "want_config": True, "want_templates": False}, True, True, False),
        ({"format": 0, "want_config": False, "want_templates": False}, False, False, False),
        (None, False, False, False),
        ("junk", False, False, False),
    ],
)
def test_cache_usable(cached, want_config, want_templates, usable):
    assert inv.cache_usable(cached, want_config, want_templates) is usable

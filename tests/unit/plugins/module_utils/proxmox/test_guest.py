"""The facts of a guest the modules and the inventory read alike: tags, agent addresses and the one picked, the
static address of its config."""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox import guest
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError


def iface(name, *addresses):
    return {
        "name": name,
        "hardware-address": "bc:24:11:00:00:01",
        "ip-addresses": [{"ip-address": a, "ip-address-type": "ipv6" if ":" in a else "ipv4"} for a in addresses],
    }


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (None, []),
        ("", []),
        ("k8s-control-plane", ["k8s-control-plane"]),
        ("a;b;c", ["a", "b", "c"]),
        ("a;;b;", ["a", "b"]),
        ("a,b c", ["a", "b", "c"]),
        ("a;b;a", ["a", "b"]),
        (["x", "y"], ["x", "y"]),
    ],
)
def test_split_tags(tags, expected):
    assert guest.split_tags(tags) == expected


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (None, []),
        ({"result": []}, []),
        ([iface("lo", "127.0.0.1", "::1"), iface("eth0", "10.0.0.5", "fe80::1")], ["10.0.0.5"]),
        ({"result": [iface("eth0", "10.0.0.5")]}, ["10.0.0.5"]),
        ([iface("eth0", "169.254.1.2", "10.0.0.5", "2001:db8::5")], ["10.0.0.5", "2001:db8::5"]),
        ([iface("eth0", "10.0.0.5"), iface("cni0", "10.42.0.1", "10.0.0.5")], ["10.0.0.5", "10.42.0.1"]),
        (
            [iface("lo", "::1"), iface("ens18", "169.254.1.1", "fe80::1%ens18", "10.0.0.11", "fd00::11")],
            ["10.0.0.11", "fd00::11"],
        ),
        ([iface("eth0", "not-an-ip", "fe80::1%eth0", "0.0.0.0")], []),
        ([iface("eth1", "127.0.1.1")], []),
        ([{"name": "eth0"}], []),
        (["junk", {"name": "eth0", "ip-addresses": [None]}], []),
    ],
)
def test_agent_addresses(result, expected):
    assert [entry["address"] for entry in guest.agent_addresses(result)] == expected


@pytest.mark.parametrize(
    ("netconfig", "expected"),
    [
        (None, None),
        ("", None),
        ("ip=10.0.0.5/24,gw=10.0.0.1", "10.0.0.5"),
        ("gw=10.0.0.1,ip=10.0.0.6/24", "10.0.0.6"),
        ("ip=dhcp", None),
        ("ip=dhcp,ip6=2001:db8::7/64", "2001:db8::7"),
        ("ip6=auto", None),
        ("ip=garbage", None),
        ("name=eth0,bridge=vmbr0,ip=10.0.0.8/24,gw=10.0.0.1", "10.0.0.8"),
    ],
)
def test_static_address(netconfig, expected):
    assert guest.static_address(netconfig) == expected


def test_a_bad_cidr_is_named():
    with pytest.raises(ProxmoxError, match="cidr: .*10.0.0.0/33"):
        guest.networks("10.0.0.0/33")
    with pytest.raises(ProxmoxError, match="cidr: '10.0.0.0/33'"):
        guest.networks(["10.0.0.0/24", "10.0.0.0/33"])
    assert guest.networks(None) == [] and guest.networks("10.0.0.7/24") == [ipaddress.ip_network("10.0.0.0/24")]


def test_each_address_is_kept_once_with_the_interface_that_reported_it_first():
    found = guest.agent_addresses([iface("lo0", "10.9.9.9"), iface("ens18", "10.0.0.5"), iface("cni0", "10.0.0.5")])
    assert found == [{"interface": "ens18", "address": "10.0.0.5"}]


def test_the_address_inside_cidr_wins_then_the_own_nic_then_ipv4():
    found = guest.agent_addresses([iface("cni0", "10.42.0.1"), iface("ens18", "fd00::11", "10.77.0.11")])
    nets = [ipaddress.ip_network("10.77.0.0/24")]
    assert guest.pick_address(found, nets) == ("10.77.0.11", True)
    assert guest.pick_address(found, []) == ("10.77.0.11", False), "the VM's NIC before the CNI bridge"
    assert guest.pick_address(found, [ipaddress.ip_network("192.168.0.0/16")]) == ("10.77.0.11", False)
    only6 = guest.agent_addresses([iface("ens18", "fd00::11")])
    assert guest.pick_address(only6, [ipaddress.ip_network("fd00::/64")]) == ("fd00::11", True)
    assert guest.pick_address([], nets) == (None, False)


def test_inside_cidr_the_own_nic_still_comes_before_a_bridge():
    found = guest.agent_addresses([iface("docker0", "10.0.0.200"), iface("ens18", "10.0.0.5")])
    assert guest.pick_address(found, guest.networks("10.0.0.0/16")) == ("10.0.0.5", True)


def test_drives_are_the_disk_and_cdrom_keys_with_their_volume():
    config = {
        "scsi0": "local-lvm:vm-1-disk-0,size=32G",
        "efidisk0": "local-lvm:vm-1-disk-1,efitype=4m",
        "cdrom": "local:iso/a.iso",
        "ide2": "none,media=cdrom",
        "net0": "virtio,bridge=vmbr0",
    }
    assert guest.drives(config) == [
        ("cdrom", "local:iso/a.iso"),
        ("efidisk0", "local-lvm:vm-1-disk-1"),
        ("ide2", "none"),
        ("scsi0", "local-lvm:vm-1-disk-0"),
    ]
    assert guest.drives(None) == []

"""The site inventory's logic: the neighbour table, MAC matching, groups, unclaimed machines, bad input."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery import site as logic

ARP = """IP address       HW type     Flags       HW address            Mask     Device
10.0.0.50        0x1         0x2         58:47:CA:00:00:01     *        br0
10.0.0.51        0x1         0x2         aa:bb:cc:dd:ee:ff     *        br0
10.0.0.52        0x1         0x0         00:00:00:00:00:00     *        br0
10.0.0.53        0x1         0x2         58:47:ca:00:00:03     *        br0
"""


def site(*hosts):
    return {
        "site": {"name": "t"},
        "network": {"cidr": "10.0.0.0/24", "gateway": "10.0.0.1"},
        "hosts": list(hosts),
    }


def host(name, role="worker", kind="baremetal", ip="10.0.0.20/24", mac=None):
    entry = {"name": name, "role": role, "kind": kind, "ip": ip}
    if mac:
        entry["mac"] = mac
    return entry


def test_only_complete_entries_of_the_neighbour_table_count_and_macs_are_lower_case():
    assert logic.read_neighbours(ARP) == {
        "10.0.0.50": "58:47:ca:00:00:01",
        "10.0.0.51": "aa:bb:cc:dd:ee:ff",
        "10.0.0.53": "58:47:ca:00:00:03",
    }


def test_hosts_get_groups_and_bare_metal_its_live_address():
    model = logic.build(
        site(
            host("cp1", "control-plane", "vm", "10.0.0.11/24"),
            host("cp2", "control-plane", "vm", "10.0.0.12/24"),
            host("mini1", mac="58:47:CA:00:00:01", ip="10.0.0.21/24"),
            host("mini2", mac="58:47:ca:00:00:02", ip="10.0.0.22/24"),
        ),
        logic.Probe({"10.0.0.50", "10.0.0.51", "10.0.0.11"}, logic.read_neighbours(ARP)),
    )
    assert model.groups["k3s_first_server"] == ["cp1"]
    assert model.groups["control_plane"] == ["cp1", "cp2"] and model.groups["vms"] == ["cp1", "cp2"]
    assert model.groups["baremetal"] == ["mini1", "mini2"] and model.groups["workers"] == ["mini1", "mini2"]
    assert model.hosts["mini1"]["ansible_host"] == "10.0.0.50" and model.hosts["mini1"]["nerv_ssh"] is True
    assert model.hosts["mini2"]["ansible_host"] == "10.0.0.22" and model.hosts["mini2"]["nerv_discovered"] is False
    # 10.0.0.11 answers SSH but is a declared address (a VM); 10.0.0.53 does not answer SSH
    assert model.groups["unclaimed"] == ["unclaimed_aabbccddeeff"]


def test_without_a_probe_there_is_no_discovery_var():
    model = logic.build(site(host("mini1", mac="58:47:ca:00:00:01")), None)
    assert "nerv_discovered" not in model.hosts["mini1"] and "unclaimed" not in model.groups


def test_two_hosts_declaring_one_mac_is_an_error():
    with pytest.raises(logic.DiscoveryError, match="declare the same MAC"):
        logic.build(site(host("a", mac="58:47:ca:00:00:01"), host("b", mac="58:47:CA:00:00:01")), logic.Probe())


def test_a_declared_mac_at_two_addresses_is_an_error():
    table = {"10.0.0.50": "58:47:ca:00:00:01", "10.0.0.60": "58:47:ca:00:00:01"}
    with pytest.raises(logic.DiscoveryError, match="answers at 10.0.0.50 and at 10.0.0.60"):
        logic.build(site(host("a", mac="58:47:ca:00:00:01")), logic.Probe(set(), table))


@pytest.mark.parametrize(("cidr", "message"), [("fd00::/64", "IPv4"), ("10.0.0.0/8", "larger than a /16")])
def test_scans_are_bounded(cidr, message):
    with pytest.raises(logic.DiscoveryError, match=message):
        logic.scan_addresses(cidr, set())


def test_the_gateway_is_not_scanned():
    addresses = logic.scan_addresses("10.0.0.0/30", {"10.0.0.1"})
    assert addresses == ["10.0.0.2"]


def test_the_probe_finds_a_listening_port_on_loopback():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        port = server.getsockname()[1]
        assert logic.probe_ssh(["127.0.0.1", "127.0.0.2"], port=port, timeout=1.0) == {"127.0.0.1"}
    finally:
        server.close()

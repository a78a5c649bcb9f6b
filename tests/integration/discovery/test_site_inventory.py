"""nerv.homelab.site through the real ansible-inventory, run inside a network namespace LAN of real hosts.

The LAN (tests/integration/_netns.py) is the demo site's 10.77.0.0/24, private to the test's namespaces:
mini1's MAC answers at .150 with a real sshd (an installer that got a DHCP address), mini3's at .152 without SSH,
a machine nobody declared runs sshd at .151, and mini2 is switched off.
"""

from __future__ import annotations

import pytest
import yaml

from .._ansible import AnsibleCli, plain
from .._netns import Lan
from .._sites import DEMO_SITE
from .._skips import require_netns

MACS = {"mini1": "58:47:ca:77:00:21", "mini2": "58:47:ca:77:00:22", "mini3": "58:47:ca:77:00:23"}
STRANGER = "58:47:ca:77:00:99"


def site_dir(tmp_path, extra_hosts=()):
    """The demo site plus mini2 and mini3, and a configuration of the plugin beside it."""
    site = yaml.safe_load(DEMO_SITE.read_text())
    for number, name in ((22, "mini2"), (23, "mini3"), *extra_hosts):
        site["hosts"].append(
            {
                "name": name,
                "role": "worker",
                "kind": "baremetal",
                "mac": MACS.get(name, f"58:47:ca:77:00:{number}"),
                "disk_id": f"/dev/disk/by-id/nvme-DEMO_SSD_256GB_00000000{number}",
                "ip": f"10.77.0.{number}/24",
            }
        )
    directory = tmp_path / "site"
    directory.mkdir()
    (directory / "site.yml").write_text(yaml.safe_dump(site, sort_keys=False))
    (directory / "hosts.site.yml").write_text("plugin: nerv.homelab.site\ntimeout: 1.0\n")
    return directory


@pytest.fixture
def lan(tmp_path):
    require_netns()
    network = Lan(tmp_path, "10.77.0.1", 24)
    try:
        yield network
    finally:
        network.close()


def inventory_in(lan, ansible_cli, directory, *args):
    """ansible-inventory --list of the directory's source, inside the controller namespace (lan None: outside)."""
    cli = AnsibleCli(ansible_cli.tmp_path, wrapper=lan.command()) if lan else ansible_cli
    return cli.inventory("-i", str(directory / "hosts.site.yml"), "--list", *args)


def hostvars(listing, name):
    return listing["_meta"]["hostvars"][name]


def members(listing, group):
    return sorted(listing.get(group, {}).get("hosts", []))


def test_bare_metal_is_found_by_mac_and_strangers_are_unclaimed(lan, ansible_cli, tmp_path):
    lan.add(MACS["mini1"], "10.77.0.150", sshd=True)
    lan.add(STRANGER, "10.77.0.151", sshd=True)
    lan.add(MACS["mini3"], "10.77.0.152")
    done = inventory_in(lan, ansible_cli, site_dir(tmp_path))
    assert done.rc == 0, done.stderr
    listing = plain(yaml.safe_load(done.stdout))

    mini1 = hostvars(listing, "mini1")
    assert (mini1["ansible_host"], mini1["nerv_discovered"], mini1["nerv_ssh"]) == ("10.77.0.150", True, True)
    mini3 = hostvars(listing, "mini3")
    assert (mini3["ansible_host"], mini3["nerv_discovered"], mini3["nerv_ssh"]) == ("10.77.0.152", True, False)
    mini2 = hostvars(listing, "mini2")
    assert (mini2["ansible_host"], mini2["nerv_discovered"]) == ("10.77.0.22", False), "static address when not found"
    assert hostvars(listing, "cp1")["ansible_host"] == "10.77.0.11"

    assert members(listing, "unclaimed") == ["unclaimed_5847ca770099"]
    stranger = hostvars(listing, "unclaimed_5847ca770099")
    assert (stranger["nerv_mac"], stranger["ansible_host"]) == (STRANGER, "10.77.0.151")
    assert members(listing, "control_plane") == ["cp1"]
    assert members(listing, "k3s_first_server") == ["cp1"]
    assert members(listing, "workers") == ["mini1", "mini2", "mini3", "worker1", "worker2"]
    assert members(listing, "vms") == ["cp1", "worker1", "worker2"]
    assert members(listing, "baremetal") == ["mini1", "mini2", "mini3"]


def test_without_discovery_every_host_has_its_static_address(lan, ansible_cli, tmp_path):
    lan.add(MACS["mini1"], "10.77.0.150", sshd=True)
    directory = site_dir(tmp_path)
    (directory / "hosts.site.yml").write_text("plugin: nerv.homelab.site\ndiscover: false\n")
    done = inventory_in(lan, ansible_cli, directory)
    assert done.rc == 0, done.stderr
    listing = plain(yaml.safe_load(done.stdout))
    assert hostvars(listing, "mini1")["ansible_host"] == "10.77.0.21"
    assert "nerv_discovered" not in hostvars(listing, "mini1") and not members(listing, "unclaimed")


def test_a_declared_mac_at_two_addresses_is_an_error(lan, ansible_cli, tmp_path):
    lan.add(MACS["mini1"], "10.77.0.150", sshd=True)
    lan.add(MACS["mini1"], "10.77.0.153")
    done = inventory_in(lan, ansible_cli, site_dir(tmp_path))
    assert done.rc != 0
    assert "58:47:ca:77:00:21 of mini1 answers at 10.77.0.150 and at 10.77.0.153" in done.stderr


def test_a_cached_scan_is_reused(lan, ansible_cli, tmp_path):
    lan.add(MACS["mini1"], "10.77.0.150", sshd=True)
    directory = site_dir(tmp_path)
    cache = tmp_path / "cache"
    (directory / "hosts.site.yml").write_text(
        "plugin: nerv.homelab.site\ncache: true\ncache_plugin: ansible.builtin.jsonfile\n"
        f"cache_connection: {cache}\ncache_timeout: 600\n"
    )
    first = inventory_in(lan, ansible_cli, directory)
    assert first.rc == 0, first.stderr
    lan.close()  # the LAN is gone: only the cache can say where mini1 was
    second = inventory_in(None, ansible_cli, directory)
    assert second.rc == 0, second.stderr
    assert hostvars(plain(yaml.safe_load(second.stdout)), "mini1")["ansible_host"] == "10.77.0.150"

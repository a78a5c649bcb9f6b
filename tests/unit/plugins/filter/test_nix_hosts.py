"""The filter nix_site: the site model as the installer's nix/site.json (the template's name, the disk, the admin
keys and the site-wide NFS mount), and a clear refusal of anything that is not a site model."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nerv.homelab.plugins.filter.nix_hosts import nix_site
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site

REPO = Path(__file__).resolve().parents[4]


def site(name: str) -> dict:
    return load_site(str(REPO / "inventory" / name / "site.yml"))


def test_the_template_gets_its_name_the_disk_the_keys_and_the_sites_nfs_mount():
    proxmox = site("example-proxmox")
    assert nix_site(proxmox, disk="/dev/vda") == {
        "hostname": "nixos-base",
        "disk": "/dev/vda",
        "admin_ssh_keys": proxmox["admin_ssh_keys"],
        "nfs": {
            "server": "192.168.10.4",
            "export": "/volume1/k8s-cluster-storage",
            "mount_point": "/mnt/nfs",
            "options": ["nfsvers=4", "rsize=1048576", "wsize=1048576", "hard"],
        },
    }


def test_a_site_without_template_or_nfs_gets_the_default_name_and_no_mount():
    baremetal = site("example-baremetal")
    assert "template" not in baremetal and "nfs" not in baremetal
    exported = nix_site(baremetal)
    assert (exported["hostname"], exported["disk"], exported["nfs"]) == ("nixos-base", "/dev/sda", None)


@pytest.mark.parametrize("value", [{}, ["not", "a", "site"], None])
def test_anything_else_is_refused_naming_the_role_to_run(value):
    with pytest.raises(AnsibleFilterError, match="nix_site: the input is not a site model.*nerv.homelab.site"):
        nix_site(value)

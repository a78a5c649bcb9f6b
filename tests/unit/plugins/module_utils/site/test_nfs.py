"""The site's nfs section and hosts[].nfs: defaults, the mount each host gets, and every bad input refused with
the field and the fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.site.formats import check_ipv4_or_hostname
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import parse_site, validate_site
from ansible_collections.nerv.homelab.plugins.module_utils.site.nfs import nfs_mount

REPO = Path(__file__).resolve().parents[5]
NAS = {"server": "192.168.10.4", "export": "/volume1/k8s-cluster-storage"}


def _site(nfs=None, **hosts_nfs):
    """The Proxmox example with the nfs section given (none when None) and hosts[i].nfs = value for i<i>=value."""
    data = yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())
    data.pop("nfs", None)
    if nfs is not None:
        data["nfs"] = copy.deepcopy(nfs)
    for key, value in hosts_nfs.items():
        data["hosts"][int(key[1:])]["nfs"] = value
    return data


def _only_error(data):
    report = validate_site(data)
    assert len(report.errors) == 1, [str(p) for p in report.errors]
    return report.errors[0]


def test_the_shipped_example_has_the_nas_and_its_defaults():
    site = parse_site(yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text()))
    assert site["nfs"] == {
        "server": "192.168.10.4",
        "export": "/volume1/k8s-cluster-storage",
        "mount_point": "/mnt/nfs",
        "options": ["nfsvers=4", "rsize=1048576", "wsize=1048576", "hard"],
        "storage_class": "nfs",
        "default_class": False,
        "reclaim_policy": "Retain",
    }


def test_a_minimal_section_gets_every_default():
    site = parse_site(_site(NAS))
    assert site["nfs"]["mount_point"] == "/mnt/nfs"
    assert site["nfs"]["options"] == ["nfsvers=4", "rsize=1048576", "wsize=1048576", "hard"]
    assert (site["nfs"]["storage_class"], site["nfs"]["default_class"], site["nfs"]["reclaim_policy"]) == (
        "nfs",
        False,
        "Retain",
    )


def test_each_host_gets_the_site_mount_its_own_or_none():
    site = parse_site(_site(NAS, h1=False, h2={"mount_point": "/srv/nas", "options": ["nfsvers=3", "soft"]}))
    cp1, worker1, worker2 = site["hosts"]
    default = {"server": "192.168.10.4", "export": "/volume1/k8s-cluster-storage", "mount_point": "/mnt/nfs",
               "options": ["nfsvers=4", "rsize=1048576", "wsize=1048576", "hard"]}  # fmt: skip
    assert nfs_mount(site, cp1) == default
    assert nfs_mount(site, worker1) is None
    assert nfs_mount(site, worker2) == dict(default, mount_point="/srv/nas", options=["nfsvers=3", "soft"])
    assert nfs_mount(site) == default, "the template gets the site-wide mount"
    only_options = parse_site(_site(NAS, h0={"options": ["nfsvers=4.1"]}))
    assert nfs_mount(only_options, only_options["hosts"][0]) == dict(default, options=["nfsvers=4.1"])
    explicit = parse_site(_site(NAS, h0=True))
    assert explicit["hosts"][0]["nfs"] is True and nfs_mount(explicit, explicit["hosts"][0]) == default


def test_no_section_means_no_mount_anywhere():
    site = parse_site(_site())
    assert "nfs" not in site
    assert nfs_mount(site) is None
    assert all(nfs_mount(site, host) is None for host in site["hosts"])
    assert validate_site(_site(None, h1=False)).errors == [], "opting out needs no section"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("192.168.1.4", True),
        ("nas", True),
        ("nas.lab.example", True),
        ("NAS.Lab.Example.", True),
        ("192.168.1.300", False),
        ("192.168.1", False),
        ("nas_1.lab", False),
        ("-nas.lab", False),
        ("nas..lab", False),
        ("nfs://nas", False),
        ("nas lab", False),
        ("a" * 64, False),
    ],
)
def test_the_server_is_an_ipv4_address_or_a_dns_name(value, ok):
    assert (check_ipv4_or_hostname(value) is None) is ok


# (case, site, path, fragment of the message, fragment of the fix)
BAD = [
    ("no server", {"export": "/x"}, "nfs.server", "required but missing", "add server"),
    ("no export", {"server": "nas"}, "nfs.export", "required but missing", "add export"),
    ("server not an address", dict(NAS, server="192.168.10.400"), "nfs.server", "not an IPv4", "NAS's IPv4 address"),
    ("server a URL", dict(NAS, server="nfs://nas/x"), "nfs.server", "neither an IPv4 address nor a DNS name", "DNS"),
    ("export relative", dict(NAS, export="volume1/k8s"), "nfs.export", "not in the expected form", "absolute path"),
    ("export trailing /", dict(NAS, export="/volume1/"), "nfs.export", "not in the expected form", "no trailing"),
    ("export with ..", dict(NAS, export="/volume1/../etc"), "nfs.export", "'..' component", "real path"),
    ("export with a space", dict(NAS, export="/volume 1"), "nfs.export", "not in the expected form", "absolute"),
    ("mount point /", dict(NAS, mount_point="/"), "nfs.mount_point", "not in the expected form", "/mnt/nfs"),
    ("mount point relative", dict(NAS, mount_point="mnt/nfs"), "nfs.mount_point", "expected form", "absolute"),
    ("mount point with ..", dict(NAS, mount_point="/mnt/../etc"), "nfs.mount_point", "expected form", "absolute"),
    ("mount point /nix", dict(NAS, mount_point="/nix"), "nfs.mount_point", "would cover /nix", "/mnt/nfs"),
    ("mount point /home", dict(NAS, mount_point="/home"), "nfs.mount_point", "would cover /home", "of its own"),
    ("mount point /var", dict(NAS, mount_point="/var"), "nfs.mount_point", "would cover /var,", "of its own"),
    ("above longhorn", dict(NAS, mount_point="/var/lib"), "nfs.mount_point", "cover /var/lib/longhorn", "own"),
    ("longhorn's", dict(NAS, mount_point="/var/lib/longhorn"), "nfs.mount_point", "cover /var/lib/longhorn", "own"),
    ("in longhorn's", dict(NAS, mount_point="/var/lib/longhorn/x"), "nfs.mount_point", "inside /var/lib/longhorn", ""),
    ("in the store", dict(NAS, mount_point="/nix/store/nas"), "nfs.mount_point", "inside /nix", "/mnt/nfs"),
    ("in /etc", dict(NAS, mount_point="/etc/nas"), "nfs.mount_point", "inside /etc", "/mnt/nfs"),
    ("in /boot", dict(NAS, mount_point="/boot/efi"), "nfs.mount_point", "inside /boot", "/mnt/nfs"),
    ("in /run", dict(NAS, mount_point="/run/nas"), "nfs.mount_point", "inside /run", "/mnt/nfs"),
    ("in /tmp", dict(NAS, mount_point="/tmp/nas"), "nfs.mount_point", "inside /tmp", "/mnt/nfs"),
    ("in k3s's", dict(NAS, mount_point="/var/lib/rancher/k3s"), "nfs.mount_point", "inside /var/lib/rancher", ""),
    ("options joined", dict(NAS, options=["nfsvers=4,hard"]), "nfs.options[0]", "expected form", "no commas"),
    ("option with space", dict(NAS, options=["hard "]), "nfs.options[0]", "expected form", "one mount option"),
    ("option quoted", dict(NAS, options=['sec="sys"']), "nfs.options[0]", "expected form", "quotes"),
    ("options empty", dict(NAS, options=[]), "nfs.options", "at least 1", "list mount options"),
    ("option twice", dict(NAS, options=["hard", "hard"]), "nfs.options", "more than once", "keep one"),
    ("option a string", dict(NAS, options="nfsvers=4,hard"), "nfs.options", "must be a list", "list mount"),
    ("auto mounts at boot", dict(NAS, options=["auto"]), "nfs.options[0]", "set by the collection", "remove auto"),
    ("defaults", dict(NAS, options=["hard", "defaults"]), "nfs.options[1]", "set by the collection", "remove"),
    ("nofail", dict(NAS, options=["nofail"]), "nfs.options[0]", "never blocks boot", "remove nofail"),
    ("x-systemd", dict(NAS, options=["x-systemd.requires=network.target"]), "nfs.options[0]", "set by the", "remove"),
    ("class longhorn", dict(NAS, storage_class="longhorn"), "nfs.storage_class", "Longhorn's own", "another name"),
    ("class not a label", dict(NAS, storage_class="NFS_1"), "nfs.storage_class", "expected form", "DNS label"),
    ("default not a bool", dict(NAS, default_class="yes"), "nfs.default_class", "true or false", "default"),
    ("reclaim", dict(NAS, reclaim_policy="Recycle"), "nfs.reclaim_policy", "not one of Retain, Delete", "Retain"),
    ("typo", dict(NAS, mountpoint="/mnt/nfs"), "nfs.mountpoint", "not a known key", "did you mean 'mount_point'"),
]


@pytest.mark.parametrize(("case", "nfs", "path", "message", "fix"), BAD, ids=[b[0] for b in BAD])
def test_bad_nfs_input_names_the_field_and_the_fix(case, nfs, path, message, fix):
    problem = _only_error(_site(nfs))
    assert (problem.path, problem.level) == (path, "error")
    assert message in problem.message and fix in problem.fix, str(problem)


HOST_BAD = [
    ("a string", {"h1": "no"}, "hosts[1].nfs", "must be true or false or a mapping, not a string", "write false"),
    ("a list", {"h1": []}, "hosts[1].nfs", "must be true or false or a mapping", "mount_point"),
    ("a server", {"h1": {"server": "nas2"}}, "hosts[1].nfs.server", "not a known key", "Known keys here: mount_point"),
    ("system path", {"h2": {"mount_point": "/etc"}}, "hosts[2].nfs.mount_point", "would cover /etc", "/mnt/nfs"),
    ("x-systemd", {"h0": {"options": ["x-systemd.automount"]}}, "hosts[0].nfs.options[0]", "set by the", "remove"),
    ("bad option", {"h0": {"options": ["a b"]}}, "hosts[0].nfs.options[0]", "expected form", "one mount option"),
]


@pytest.mark.parametrize(("case", "hosts", "path", "message", "fix"), HOST_BAD, ids=[b[0] for b in HOST_BAD])
def test_bad_host_overrides_name_the_host_field_and_the_fix(case, hosts, path, message, fix):
    problem = _only_error(_site(NAS, **hosts))
    assert problem.path == path
    assert message in problem.message and fix in problem.fix, str(problem)


@pytest.mark.parametrize("value", [True, {"mount_point": "/srv/nas"}])
def test_a_host_mount_without_a_section_is_refused(value):
    problem = _only_error(_site(None, h2=value))
    assert (problem.path, problem.message) == ("hosts[2].nfs", "there is no nfs section to mount")
    assert "add the nfs section" in problem.fix


@pytest.mark.parametrize(
    "mount_point", ["/mnt/nfs", "/srv/nfs", "/var/nfs", "/home/shared/nas", "/data", "/mnt/a.b_c-d"]
)
def test_ordinary_mount_points_are_accepted(mount_point):
    assert validate_site(_site(dict(NAS, mount_point=mount_point))).errors == []


def test_a_dns_name_an_nfs_v3_share_and_the_root_export_are_accepted():
    nfs = {"server": "nas.home.lab.example", "export": "/", "options": ["nfsvers=3", "proto=tcp", "timeo=600"],
           "storage_class": "nas", "default_class": True, "reclaim_policy": "Delete"}  # fmt: skip
    assert validate_site(_site(nfs)).errors == []

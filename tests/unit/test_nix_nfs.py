"""The NFS mount on the NixOS side: nix/lib/nfs.nix (the checks of site.json's and hosts.json's nfs) and
nix/modules/nfs.nix (the fileSystems entry), evaluated by Nix with stub arguments as in test_nix_files.py and
test_nix_hosts.py; and the Ansible side's export (filter nix_hosts) read back by the flake's own mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from nix_helpers import NIX_DIR, REPO, nix_eval, nix_eval_error, nix_string

from ansible_collections.nerv.homelab.plugins.filter.nix_hosts import nix_hosts
from ansible_collections.nerv.homelab.plugins.module_utils.site import checks
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import parse_site, validate_site

GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIONiBCZ3Gzwswu2P4FaiIFyItRg6xHsj8zkpWv6CysAa example-admin-replace-me"
NAS = {
    "server": "192.168.10.4",
    "export": "/volume1/k8s-cluster-storage",
    "mount_point": "/mnt/nfs",
    "options": ["nfsvers=4", "rsize=1048576", "wsize=1048576", "hard"],
}
# What the module adds to the site's options, in this order: boot never waits for the NAS.
MANAGED = [
    "x-systemd.automount",
    "noauto",
    "nofail",
    "_netdev",
    "x-systemd.idle-timeout=600",
    "x-systemd.mount-timeout=30s",
]
# As test_nix_files.py: nixpkgs' lib.mkDefault builds this tagged set.
LIB = '{ mkDefault = content: { _type = "override"; priority = 1000; inherit content; }; }'


def json_file(tmp_path: Path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return f"builtins.fromJSON (builtins.readFile {nix_string(str(path))})"


def nfs_module(nix_instantiate, mount):
    expr = f"import ./nix/modules/nfs.nix (builtins.fromJSON {nix_string(json.dumps(mount))})"
    return nix_eval(nix_instantiate, expr)


def test_the_module_mounts_the_export_on_first_access(nix_instantiate):
    settings = {"server": NAS["server"], "export": NAS["export"], "mountPoint": "/mnt/nfs", "options": NAS["options"]}
    module = nfs_module(nix_instantiate, settings)
    assert module == {
        "fileSystems": {
            "/mnt/nfs": {
                "device": "192.168.10.4:/volume1/k8s-cluster-storage",
                "fsType": "nfs",
                "options": MANAGED + NAS["options"],
            }
        },
        "boot": {"supportedFilesystems": ["nfs"]},
        "services": {"rpcbind": {"enable": True}},
    }


def test_the_module_defines_nothing_without_a_mount(nix_instantiate):
    assert nix_eval(nix_instantiate, "import ./nix/modules/nfs.nix null") == {}


# ---------------------------------------------------------------------------------------------------- template


def site_json(tmp_path, nfs) -> str:
    data = {"hostname": "nixos-base", "admin_ssh_keys": [GOOD_KEY]}
    if nfs is not ...:
        data["nfs"] = nfs
    return f"import ./nix/lib/site.nix ({json_file(tmp_path, 'site.json', data)})"


def base_with(tmp_path, nfs) -> str:
    """base.nix evaluated as a function with the site.json given; its imports as strings, the NFS module as data."""
    return f"""
    let
      site = {site_json(tmp_path, nfs)};
      base = import ./nix/modules/base.nix {{
        inherit site; lib = {LIB}; layout = import ./nix/lib/partitions.nix; modulesPath = "/stub";
      }};
    in {{ inherit site; imports = map (i: if builtins.isAttrs i then i else toString i) base.imports; }}
    """


def test_the_template_mounts_the_sites_export(nix_instantiate, tmp_path):
    out = nix_eval(nix_instantiate, base_with(tmp_path, NAS))
    assert out["site"]["nfs"] == {
        "server": "192.168.10.4",
        "export": "/volume1/k8s-cluster-storage",
        "mountPoint": "/mnt/nfs",
        "options": NAS["options"],
    }
    (module,) = [i for i in out["imports"] if isinstance(i, dict)]
    assert module["fileSystems"]["/mnt/nfs"]["device"] == "192.168.10.4:/volume1/k8s-cluster-storage"
    assert module["fileSystems"]["/mnt/nfs"]["options"] == MANAGED + NAS["options"]


@pytest.mark.parametrize("nfs", [None, ...], ids=["null", "absent"])
def test_a_template_without_nfs_mounts_nothing(nix_instantiate, tmp_path, nfs):
    out = nix_eval(nix_instantiate, base_with(tmp_path, nfs))
    assert out["site"]["nfs"] is None
    assert [i for i in out["imports"] if isinstance(i, dict)] == [{}]


BAD = [
    ("not an object", "nfs.nas", "nfs must be null or an object with server, export, mount_point, options"),
    ("unknown key", {**NAS, "sub_dir": "x"}, "unknown key 'nfs.sub_dir' (known: server, export, mount_point,"),
    ("missing export", {k: v for k, v in NAS.items() if k != "export"}, "nfs.export is missing"),
    ("bad address", {**NAS, "server": "192.168.10.256"}, "nfs.server '192.168.10.256' is neither an IPv4 address"),
    ("a URL", {**NAS, "server": "nfs://nas"}, "nfs.server 'nfs://nas' is neither an IPv4 address nor a DNS name"),
    ("relative export", {**NAS, "export": "volume1"}, "nfs.export 'volume1' must be an absolute path"),
    ("export with ..", {**NAS, "export": "/volume1/../x"}, "nfs.export '/volume1/../x' must be an absolute path"),
    ("relative mount", {**NAS, "mount_point": "mnt"}, "nfs.mount_point 'mnt' must be an absolute directory"),
    ("mount on /", {**NAS, "mount_point": "/"}, "nfs.mount_point '/' must be an absolute directory"),
    ("mount on /etc", {**NAS, "mount_point": "/etc"}, "nfs.mount_point '/etc' clashes with a directory the system"),
    ("mount above", {**NAS, "mount_point": "/var/lib"}, "nfs.mount_point '/var/lib' clashes with a directory"),
    ("mount inside", {**NAS, "mount_point": "/nix/store/x"}, "nfs.mount_point '/nix/store/x' clashes with"),
    ("no options", {**NAS, "options": []}, "nfs.options must be a non-empty list of mount options"),
    ("joined", {**NAS, "options": ["hard,intr"]}, "nfs.options[0] 'hard,intr' must be one mount option"),
    ("spaces", {**NAS, "options": ["sec=sys", "a b"]}, "nfs.options[1] 'a b' must be one mount option"),
    ("auto", {**NAS, "options": ["auto"]}, "nfs.options[0] 'auto' is set by the collection"),
    ("x-systemd", {**NAS, "options": ["x-systemd.requires=x"]}, "nfs.options[0] 'x-systemd.requires=x' is set by"),
]


@pytest.mark.parametrize(("case", "nfs", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_nfs_in_site_json_fails_with_a_clear_message(nix_instantiate, tmp_path, case, nfs, message):
    err = nix_eval_error(nix_instantiate, site_json(tmp_path, nfs))
    assert "site.json: " in err and message in err, err


# ---------------------------------------------------------------------------------------------------- hosts


def proxmox_site(**hosts_nfs) -> dict:
    """The Proxmox example (it has an nfs section), with hosts[i].nfs set from h<i>=value."""
    data = yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())
    for key, value in hosts_nfs.items():
        data["hosts"][int(key[1:])]["nfs"] = value
    return parse_site(data)


def host_modules(nix_instantiate, tmp_path, data: dict) -> dict:
    """name -> {settings, nfs}: the flake's settings of each host and host.nix's NFS module for it."""
    expr = f"""
    let
      site = import ./nix/lib/hosts.nix ({json_file(tmp_path, "hosts.json", data)});
      module = host: let h = import ./nix/modules/host.nix {{
        inherit site host; layout = import ./nix/lib/partitions.nix; modulesPath = "/stub"; config = {{ }};
      }}; in builtins.filter builtins.isAttrs h.imports;
    in builtins.mapAttrs (_: host: {{ settings = host.nfs; nfs = module host; }}) site.hosts
    """
    return nix_eval(nix_instantiate, expr)


def test_each_host_mounts_its_own_nfs_or_none(nix_instantiate, tmp_path):
    site = proxmox_site(h1=False, h2={"mount_point": "/srv/nas", "options": ["nfsvers=4.1", "soft"]})
    exported = nix_hosts(site)
    assert [h["nfs"] for h in exported["hosts"]] == [
        NAS,
        None,
        {**NAS, "mount_point": "/srv/nas", "options": ["nfsvers=4.1", "soft"]},
    ]
    hosts = host_modules(nix_instantiate, tmp_path, exported)
    device = "192.168.10.4:/volume1/k8s-cluster-storage"
    (cp1,) = hosts["cp1"]["nfs"]
    assert cp1["fileSystems"] == {"/mnt/nfs": {"device": device, "fsType": "nfs", "options": MANAGED + NAS["options"]}}
    assert hosts["worker1"]["settings"] is None and hosts["worker1"]["nfs"] == [{}]
    (worker2,) = hosts["worker2"]["nfs"]
    assert worker2["fileSystems"] == {
        "/srv/nas": {"device": device, "fsType": "nfs", "options": [*MANAGED, "nfsvers=4.1", "soft"]}
    }
    assert worker2["services"] == {"rpcbind": {"enable": True}}


def test_hosts_of_a_site_without_nfs_mount_nothing(nix_instantiate, tmp_path):
    data = yaml.safe_load((REPO / "inventory" / "example-baremetal" / "site.yml").read_text())
    assert "nfs" not in data
    hosts = host_modules(nix_instantiate, tmp_path, nix_hosts(parse_site(data)))
    assert hosts and all(h == {"settings": None, "nfs": [{}]} for h in hosts.values())


def test_bad_nfs_in_hosts_json_names_the_host(nix_instantiate, tmp_path):
    data = json.loads((NIX_DIR / "hosts.json").read_text())
    data["hosts"][1]["nfs"] = {**NAS, "mount_point": "/boot", "options": ["noauto"]}
    data["hosts"][2]["nfs"] = True
    err = nix_eval_error(nix_instantiate, f"import ./nix/lib/hosts.nix ({json_file(tmp_path, 'hosts.json', data)})")
    assert err.count("hosts.json: ") == 1, err
    for message in (
        "hosts[1].nfs.mount_point '/boot' clashes with a directory the system needs",
        "hosts[1].nfs.options[0] 'noauto' is set by the collection",
        "hosts[2].nfs must be null or an object",
    ):
        assert message in err, err
    del data["hosts"][0]["nfs"]
    assert "hosts[0].nfs is missing" in nix_eval_error(
        nix_instantiate, f"import ./nix/lib/hosts.nix ({json_file(tmp_path, 'again.json', data)})"
    )


# ---------------------------------------------------------------------------------------------------- agreement


def test_nix_and_python_refuse_the_same_system_paths_and_options(nix_instantiate):
    lists = nix_eval(nix_instantiate, "let n = import ./nix/lib/nfs.nix; in { inherit (n) systemPaths trees managed; }")
    assert lists == {
        "systemPaths": list(checks._SYSTEM_PATHS),
        "trees": list(checks._SYSTEM_TREES),
        "managed": list(checks._NFS_MANAGED),
    }


MOUNT_POINTS = ["/mnt/nfs", "/srv/nas", "/var/nfs", "/home/me/nas", "/data", "/", "/var", "/var/lib", "/run/x",
                "/mnt/../etc", "/tmp/nas", "/usr/local/nas", "/var/lib/longhorn-data", "/mnt/nfs/", "/mnt/a b",
                "mnt"]  # fmt: skip
OPTIONS = ["hard", "nfsvers=4.1", "sec=krb5p", "proto=tcp", "auto", "nofail", "x-systemd.automount", "a,b", "a b",
           'a"b', "_netdev", "-o"]  # fmt: skip
SERVERS = ["192.168.10.4", "nas", "nas.lab.example.", "192.168.10.400", "10.0.0", "nas_1", "-nas", "nas..lab"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("mount_point", v) for v in MOUNT_POINTS] + [("options", [v]) for v in OPTIONS] + [("server", v) for v in SERVERS],
)
def test_nix_and_python_agree_on_each_value(nix_instantiate, field, value):
    nfs = {**NAS, field: value}
    data = yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())
    data["nfs"] = nfs
    python_ok = validate_site(data).errors == []
    nix_ok = nix_eval(
        nix_instantiate,
        f'(import ./nix/lib/nfs.nix).problems "nfs" (builtins.fromJSON {nix_string(json.dumps(nfs))}) == [ ]',
    )
    assert nix_ok is python_ok

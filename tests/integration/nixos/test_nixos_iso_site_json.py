"""The template's site.json as the role nerv.homelab.nixos_iso writes it (its flake_assemble task's expression, the
filter nix_site, run by the real ansible-playbook on the site model) and as the flake reads it (nix/lib/site.nix,
evaluated by Nix): the site's NFS mount reaches the template, and a site without one gives none."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from .._ansible import REPO
from .._sites import site_file
from .._skips import require_commands

ROLE_TASKS = REPO / "roles" / "nixos_iso" / "tasks" / "main.yml"


def role_site_json() -> str:
    """The expression the role gives flake_assemble for site.json."""
    (task,) = [t for t in yaml.safe_load(ROLE_TASKS.read_text()) if "nerv.homelab.flake_assemble" in t]
    return task["nerv.homelab.flake_assemble"]["files"]["site.json"]


def rendered_site_json(ansible_cli, site: str) -> dict:
    dest = ansible_cli.tmp_path / f"{site}-site.json"
    play = {
        "name": "site.json",
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {"nixos_iso_disk": "/dev/sda"},
        "roles": [{"role": "nerv.homelab.site", "vars": {"site_file": str(site_file(site)), "site_show_plan": False}}],
        "tasks": [{"name": "write", "ansible.builtin.copy": {"content": role_site_json(), "dest": str(dest)}}],
    }
    run = ansible_cli.playbook([play])
    assert run.rc == 0, run.describe()
    return json.loads(dest.read_text())


def site_nix(path) -> dict:
    nix = require_commands("nix-instantiate")["nix-instantiate"]
    expr = f"import {REPO / 'nix' / 'lib' / 'site.nix'} (builtins.fromJSON (builtins.readFile {path}))"
    proc = subprocess.run(
        [nix, "--eval", "--strict", "--json", "-E", expr], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("site", "nfs"),
    [
        (
            "example-proxmox",
            {
                "server": "192.168.10.4",
                "export": "/volume1/k8s-cluster-storage",
                "mountPoint": "/mnt/nfs",
                "options": ["nfsvers=4", "rsize=1048576", "wsize=1048576", "hard"],
            },
        ),
        ("example-baremetal", None),
    ],
)
def test_the_template_gets_the_sites_nfs_mount(ansible_cli, site, nfs):
    data = rendered_site_json(ansible_cli, site)
    assert set(data) == {"hostname", "disk", "admin_ssh_keys", "nfs"}
    path = ansible_cli.tmp_path / f"{site}-site.json"
    assert site_nix(path)["nfs"] == nfs

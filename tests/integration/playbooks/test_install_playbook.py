"""playbooks/install.yml end to end on a one-machine LAN of network namespaces: keys, the site's flake, the
install with a recording fake nixos-anywhere (the real one runs only on real hardware), the host key tree
removed afterwards, and a second run that changes nothing.

The target's sshd presents mini1's own host key (made by sops_keys beforehand), as the installed system would.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .._ansible import AnsibleCli
from .._netns import Lan, Machine
from .._sites import baremetal_site
from .._skips import require_commands, require_netns

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

REPO = Path(__file__).resolve().parents[3]
FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_nixos_anywhere.py"
INSTALLER = 'ID=nixos\nVARIANT_ID=installer\nPRETTY_NAME="NixOS 25.05 (Warbler)"\n'


@pytest.fixture
def site(tmp_path):
    """The bare-metal example trimmed to mini1, with a fresh admin identity and a client SSH key."""
    require_netns()
    require_commands("sshd", "ssh", "ssh-keygen", "ssh-keyscan")
    inventory, admin, data = baremetal_site(tmp_path, 1)
    return inventory, admin, data["hosts"][0]


def run(cli, inventory, admin, tmp_path, playbook="install.yml", **more):
    """ansible-playbook playbooks/<playbook> with the fake nixos-anywhere on PATH, the admin identity, the client key
    and a private flake directory; more: further extra vars."""
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        (bin_dir / "nixos-anywhere").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
        (bin_dir / "nixos-anywhere").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "SOPS_AGE_KEY_FILE": str(admin),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null",
        "FAKE_NIXOS_ANYWHERE_RECORD": str(tmp_path / "record.jsonl"),
        "FAKE_NIXOS_ANYWHERE_INSTALLED": str(tmp_path / "os-release"),
    }
    extra = {
        "nixos_install_identity_file": str(tmp_path / "id_ed25519"),
        "nixos_install_flake_dir": str(tmp_path / "flake"),
        **more,
    }
    return cli.playbook(REPO / "playbooks" / playbook, inventory=inventory / "hosts.yml", env=env, extra_vars=extra)


def test_install_playbook_installs_once_and_cleans_up(site, tmp_path):
    inventory, admin, mini1 = site
    # mini1 runs Caddy: the site CA goes into the flake for it
    data = yaml.safe_load((inventory / "site.yml").read_text())
    data["hosts"][0]["services"] = {"caddy": {"proxies": [{"name": "nas", "upstream": "http://192.168.20.4:5000"}]}}
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    keys = run(AnsibleCli(tmp_path), inventory, admin, tmp_path, "keys.yml")
    assert keys.rc == 0, keys.describe()

    # the installed system presents mini1's own key: the one sops_keys made (decrypted with the admin identity)
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

    plain = sops_files.decrypt_file(
        str(inventory / "secrets" / "host-keys" / "mini1.sops.yaml"), age.load_identities({}, [str(admin)])
    )
    host_key = tmp_path / "mini1_host_key"
    host_key.write_text(plain["ssh_host_ed25519_key"])
    host_key.chmod(0o600)
    (tmp_path / "os-release").write_text(INSTALLER)
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "id_ed25519.pub").read_text())
    address = mini1["ip"].split("/")[0]
    lan = Lan(tmp_path, "192.168.20.1", 24)
    try:
        machine = Machine(host_key=host_key, authorized_keys=authorized, os_release=tmp_path / "os-release",
                          hostname="mini1", disks=(Path(mini1["disk_id"]).name,))  # fmt: skip
        lan.add(mini1["mac"], address, machine=machine)
        cli = AnsibleCli(tmp_path, wrapper=lan.command())

        first = run(cli, inventory, admin, tmp_path)
        assert first.rc == 0, first.describe()
        (record,) = [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]
        flake = tmp_path / "flake"
        assert record["argv"][:2] == ["--flake", f"{flake}#mini1"]
        assert record["tree"]["etc/ssh/ssh_host_ed25519_key"] == "0o600"
        tree = Path(record["argv"][record["argv"].index("--extra-files") + 1])
        assert not tree.parent.exists(), "the private host key tree outlived the install"
        hosts = json.loads((flake / "hosts.json").read_text())
        assert [h["name"] for h in hosts["hosts"]] == ["mini1"] and hosts["hosts"][0]["disk"] == mini1["disk_id"]
        assert sorted(p.name for p in flake.iterdir()) == [
            "flake.nix",
            "hosts.json",
            "lib",
            "modules",
            "secrets",
            "site.json",
        ]
        nix = shutil.which("nix-instantiate")
        if nix:  # the assembled flake's own mapping accepts the site's hosts.json
            expr = f"(import {flake}/lib/hosts.nix (builtins.fromJSON (builtins.readFile {flake}/hosts.json))).names"
            names = subprocess.run(
                [nix, "--eval", "--strict", "--json", "-E", expr], capture_output=True, text=True, check=False
            )
            assert json.loads(names.stdout or "null") == ["mini1"], names.stderr
        token = flake / "secrets" / "k3s.sops.yaml"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600 and "ENC[AES256_GCM" in token.read_text()
        ca = flake / "secrets" / "site-ca.sops.yaml"
        assert ca.read_bytes() == (inventory / "secrets" / "site-ca.sops.yaml").read_bytes()
        assert stat.S_IMODE(ca.stat().st_mode) == 0o600 and "ENC[AES256_GCM" in ca.read_text()
        if nix:  # the assembled flake's sops.nix names that very file for mini1's Caddy
            hosts = f"import {flake}/lib/hosts.nix (builtins.fromJSON (builtins.readFile {flake}/hosts.json))"
            module = f"import {flake}/modules/sops.nix {{ inherit site; host = site.hosts.mini1; }}"
            expr = f"let site = {hosts}; in builtins.mapAttrs (_: v: toString v.sopsFile) ({module}).sops.secrets"
            files = subprocess.run(
                [nix, "--eval", "--strict", "--json", "-E", expr], capture_output=True, text=True, check=False
            )
            assert json.loads(files.stdout or "null") == {
                "k3s-token": str(token), "site-ca.crt": str(ca), "site-ca.key": str(ca)}, files.stderr  # fmt: skip

        second = run(cli, inventory, admin, tmp_path)
        assert second.rc == 0 and second.stats()["changed"] == 0, second.describe()
        assert len((tmp_path / "record.jsonl").read_text().splitlines()) == 1
    finally:
        lan.close()

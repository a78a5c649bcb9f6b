"""playbooks/fleet_onboard.yml end to end: a flake without inputs (its inventory evaluated by the real nix), a new
machine on a LAN of network namespaces booted into a NixOS installer (a real sshd), and a recording fake
nixos-anywhere (the real one runs only on real hardware) that, like the real install, leaves the machine presenting
the host key it was handed in --extra-files.

Refusals change nothing (no wipe consent, a darwin host, a host the flake lacks); then the host is installed with its
key made here and pinned, its secrets re-keyed for it (the real sops decrypts them with its key), and a second run
installs nothing. Afterwards the flake inventory lists the host.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from .._ansible import AnsibleCli, plain
from .._fleet import host_identity, snapshot
from .._netns import Lan, Machine, keygen
from .._skips import require_commands, require_netns

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "playbooks" / "fleet_onboard.yml"
FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_nixos_anywhere.py"
INSTALLER = 'ID=nixos\nVARIANT_ID=installer\nPRETTY_NAME="NixOS 25.05 (Warbler)"\n'
CANARY = "canary-Onboard-0b0a4d"
ADDRESS = "192.168.31.50"
DISK = "/dev/disk/by-id/nvme-onboard-disk1"

FLAKE = """
{
  outputs = { self }: {
    nixosConfigurations.pi = { config.nixpkgs.hostPlatform.system = "aarch64-linux"; };
    nixosConfigurations.newbox = { config.nixpkgs.hostPlatform.system = "x86_64-linux"; };
    darwinConfigurations.mac = { config.nixpkgs.hostPlatform.system = "aarch64-darwin"; };
    deploy.nodes.pi = { hostname = "192.168.31.31"; };
  };
}
"""

# nixos-anywhere's stand-in: the recording fake, then what the installed system does - sshd presents the host key
# from the --extra-files tree (sshd re-reads its host key for every connection)
WRAPPER = """\
import shutil, subprocess, sys
args = sys.argv[1:]
done = subprocess.run([sys.executable, {fake!r}, *args])
if done.returncode == 0 and "--extra-files" in args:
    tree = args[args.index("--extra-files") + 1]
    shutil.copyfile(tree + "/etc/ssh/ssh_host_ed25519_key", {host_key!r})
sys.exit(done.returncode)
"""


@pytest.fixture
def fleet(tmp_path, real_sops):
    """(flake dir, the machine's sshd host key path): the flake with its inventory file, pi pinned in the fleet's
    known_hosts, secrets encrypted to the admin alone by the real sops, a client key, the fake on PATH."""
    require_netns()
    require_commands("nix", "sshd", "ssh", "ssh-keygen", "ssh-keyscan")
    flake = tmp_path / "fleet"
    flake.mkdir()
    (flake / "flake.nix").write_text(FLAKE)
    (flake / "flake.yml").write_text("plugin: nerv.homelab.flake\n")
    pi_key = keygen(tmp_path / "pi_key")
    (flake / "known_hosts").write_text(f"192.168.31.31 {pi_key.with_suffix('.pub').read_text().strip()}\n")
    for relative in ("secrets/newbox/app.sops.yaml", "secrets/common/ntp.sops.yaml", "secrets/pi/wifi.sops.yaml"):
        path = flake / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"value: {CANARY}\n")
        real_sops.encrypt_for(path, cwd=flake)
    keygen(tmp_path / "id_ed25519")
    host_key = keygen(tmp_path / "machine_host_key")  # the installer's own (ephemeral) key, until the install
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "wrapper.py").write_text(WRAPPER.format(fake=str(FAKE), host_key=str(host_key)))
    (bin_dir / "nixos-anywhere").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tmp_path / "wrapper.py"}" "$@"\n')
    (bin_dir / "nixos-anywhere").chmod(0o755)
    (tmp_path / "os-release").write_text(INSTALLER)
    return flake, host_key


def onboard(cli, real_sops, flake, check=False, **extra):
    tmp_path = flake.parent
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "SOPS_AGE_KEY_FILE": str(real_sops.key_file),
        "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "FAKE_NIXOS_ANYWHERE_RECORD": str(tmp_path / "record.jsonl"),
        "FAKE_NIXOS_ANYWHERE_INSTALLED": str(tmp_path / "os-release"),
    }
    options = {
        "fleet_admin_recipients": [real_sops.recipient],
        "fleet_onboard_host": "newbox",
        "fleet_onboard_address": ADDRESS,
        "fleet_onboard_disk": DISK,
        "fleet_onboard_identity_file": str(tmp_path / "id_ed25519"),
        **extra,
    }
    done = cli.playbook(PLAYBOOK, "-v", inventory=flake / "flake.yml", env=env, extra_vars=options, check=check)
    assert CANARY not in done.output, done.describe()
    assert "PRIVATE KEY" not in done.output and "AGE-SECRET-KEY" not in done.output, done.describe()
    return done


def records(flake):
    path = flake.parent / "record.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_onboarding_refuses_then_installs_once_and_the_host_joins(fleet, real_sops):
    flake, host_key = fleet
    tmp_path = flake.parent
    lan = Lan(tmp_path, "192.168.31.1", 24)
    try:
        authorized = tmp_path / "authorized_keys"
        authorized.write_text((tmp_path / "id_ed25519.pub").read_text())
        machine = Machine(host_key=host_key, authorized_keys=authorized, os_release=tmp_path / "os-release",
                          hostname="newbox", disks=(Path(DISK).name,))  # fmt: skip
        lan.add("52:54:00:31:00:50", ADDRESS, machine=machine)
        cli = AnsibleCli(tmp_path, wrapper=lan.command())
        before = snapshot(flake)

        for extra, message in (
            ({}, "-e fleet_onboard_wipe=true to confirm"),
            ({"fleet_onboard_wipe": False}, "-e fleet_onboard_wipe=true to confirm"),
            ({"fleet_onboard_wipe": True, "fleet_onboard_host": "mac"}, "installing Nix and nix-darwin by hand"),
            ({"fleet_onboard_wipe": True, "fleet_onboard_host": "ghost"}, "is not a nixosConfigurations entry"),
            ({"fleet_onboard_wipe": True, "fleet_onboard_disk": "/dev/sda"}, "fleet_onboard_disk=/dev/disk/by-id/"),
        ):
            refused = onboard(cli, real_sops, flake, **extra)
            assert refused.rc != 0 and message in refused.output, refused.describe()
            assert snapshot(flake) == before and records(flake) == [], f"{extra} changed something"

        checked = onboard(cli, real_sops, flake, check=True, fleet_onboard_wipe=True)
        assert checked.rc == 0 and checked.task("Install NixOS on the host with nixos-anywhere from the flake")[
            "action"] == "install", checked.describe()  # fmt: skip
        assert snapshot(flake) == before and records(flake) == [], "check mode changed something"

        first = onboard(cli, real_sops, flake, fleet_onboard_wipe=True)
        assert first.rc == 0, first.describe()
        (record,) = records(flake)
        assert record["argv"][:2] == ["--flake", f"{flake}#newbox"]
        assert record["argv"][record["argv"].index("--target-host") + 1] == f"root@{ADDRESS}"
        assert record["tree"]["etc/ssh/ssh_host_ed25519_key"] == "0o600"
        tree = Path(record["argv"][record["argv"].index("--extra-files") + 1])
        assert not tree.parent.exists(), "the private host key tree outlived the install"

        public = (flake / "host-keys" / "newbox.pub").read_text().split()[:2]
        pins = [line.split() for line in (flake / "known_hosts").read_text().splitlines()]
        assert [p[0] for p in pins if p[1:3] == public] == ["newbox", ADDRESS], "pinned by name and address"
        assert len(pins) == 3, "nothing but pi's and newbox's pins"
        rules = yaml.safe_load((flake / ".sops.yaml").read_text())["creation_rules"]
        assert "^secrets/newbox/" in [r.get("path_regex") for r in rules]
        rekeyed = first.task("Write the flake's .sops.yaml and re-key exactly the secrets whose rule changed")
        assert sorted(Path(p).relative_to(flake).as_posix() for p in rekeyed["rekeyed"]) == [
            "secrets/common/ntp.sops.yaml", "secrets/newbox/app.sops.yaml", "secrets/pi/wifi.sops.yaml",
        ]  # fmt: skip
        # its own key (kept encrypted to the admins) opens its files with the real sops, as sops-nix will
        from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
        from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

        stored = sops_files.decrypt_file(
            str(flake / "host-keys" / "newbox.sops.yaml"), age.load_identities({}, [str(real_sops.key_file)])
        )
        private = tmp_path / "newbox_key"
        private.write_text(stored["ssh_host_ed25519_key"])
        private.chmod(0o600)
        env = {"SOPS_AGE_KEY_FILE": str(host_identity(private)), "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null"}
        for relative in ("secrets/newbox/app.sops.yaml", "secrets/common/ntp.sops.yaml"):
            assert CANARY in real_sops.run("decrypt", relative, cwd=flake, env=env).stdout
        assert real_sops.run("decrypt", "secrets/pi/wifi.sops.yaml", cwd=flake, env=env, check=False).returncode
        hint = first.task("Say how the fleet inventory reaches the host")["msg"]
        assert 'set deploy.nodes.newbox.hostname = "192.168.31.50"; in the flake' in hint, hint

        second = onboard(cli, real_sops, flake, fleet_onboard_wipe=True)
        assert second.rc == 0 and second.stats()["changed"] == 0, second.describe()
        assert len(records(flake)) == 1, "the installed host was not installed again"
    finally:
        lan.close()

    listing = AnsibleCli(tmp_path).inventory("-i", str(flake / "flake.yml"), "--list")
    assert listing.rc == 0, listing.describe()
    assert sorted(plain(json.loads(listing.stdout))["nixos"]["hosts"]) == ["newbox", "pi"]

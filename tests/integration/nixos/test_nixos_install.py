"""nerv.homelab.nixos_install against a real sshd target in a network namespace, with a recording fake
nixos-anywhere on PATH (the real one needs Nix builds and a machine to wipe: it runs only on real hardware).

The target is a namespace machine whose /etc/os-release, hostname and /dev/disk/by-id are its own (private mount
and UTS namespaces): a NixOS installer, an installed NixOS, or this Debian as it is.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from .._ansible import AnsibleCli
from .._netns import Lan, Machine, keygen
from .._skips import require_commands, require_netns

FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_nixos_anywhere.py"
DISK = "nvme-DEMO_SSD_256GB_0000000021"
ADDRESS = "10.77.0.150"
INSTALLER = 'ID=nixos\nVARIANT_ID=installer\nPRETTY_NAME="NixOS 25.05 (Warbler)"\n'


class Rig:
    """The LAN, the target machine, the files the module is given, and the fake's record."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.client_key = keygen(tmp_path / "id_ed25519")
        self.authorized = tmp_path / "authorized_keys"
        self.authorized.write_text((tmp_path / "id_ed25519.pub").read_text())
        # the --extra-files tree, as nerv.homelab.host_keys writes it
        self.tree = tmp_path / "tree" / "mini1"
        ssh_dir = self.tree / "etc" / "ssh"
        ssh_dir.mkdir(parents=True)
        for directory in (self.tree, self.tree / "etc", ssh_dir):
            directory.chmod(0o755)
        self.host_key = keygen(ssh_dir / "ssh_host_ed25519_key")
        (ssh_dir / "ssh_host_ed25519_key.pub").chmod(0o644)
        self.pinned = " ".join((ssh_dir / "ssh_host_ed25519_key.pub").read_text().split()[:2])
        self.known_hosts = tmp_path / "known_hosts"
        self.known_hosts.write_text(f"{ADDRESS} {self.pinned}\n")
        self.flake = tmp_path / "flake"
        self.flake.mkdir()
        (self.flake / "flake.nix").write_text("{ outputs = _: { }; }\n")
        self.os_release = tmp_path / "os-release"
        self.record = tmp_path / "record.jsonl"
        self.lan = Lan(tmp_path, "10.77.0.1", 24)
        # the recording fake, as `nixos-anywhere` on PATH
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        wrapper = self.bin / "nixos-anywhere"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
        wrapper.chmod(0o755)

    def target(self, os_release: str | None = INSTALLER, hostname: str = "mini1", host_key: Path | None = None):
        if os_release is not None:
            self.os_release.write_text(os_release)
        machine = Machine(
            host_key=host_key or self.host_key,
            authorized_keys=self.authorized,
            os_release=self.os_release if os_release is not None else None,
            hostname=hostname,
            disks=(DISK,),
        )
        self.lan.add("58:47:ca:77:00:21", ADDRESS, machine=machine)

    def runs(self) -> list:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def options(self, **overrides) -> dict:
        options = {
            "host": "mini1",
            "flake": str(self.flake),
            "address": ADDRESS,
            "identity_file": str(self.client_key),
            "disk": f"/dev/disk/by-id/{DISK}",
            "extra_files": str(self.tree),
            "known_hosts": str(self.known_hosts),
            "log_file": str(self.tmp / "install.log"),
            "wait_timeout": 30,
        }
        return {**options, **overrides}


@pytest.fixture
def rig(tmp_path):
    require_netns()
    require_commands("sshd", "ssh", "ssh-keygen", "ssh-keyscan")
    made = Rig(tmp_path)
    try:
        yield made
    finally:
        made.lan.close()


def install(rig, ansible_cli_factory, check=False, env=None, **overrides):
    cli = ansible_cli_factory(rig)
    task = {"name": "install", "nerv.homelab.nixos_install": rig.options(**overrides)}
    play = [{"name": "i", "hosts": "localhost", "gather_facts": False, "tasks": [task]}]
    environment = {
        "PATH": f"{rig.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "FAKE_NIXOS_ANYWHERE_RECORD": str(rig.record),
        "FAKE_NIXOS_ANYWHERE_INSTALLED": str(rig.os_release),
        **(env or {}),
    }
    result = cli.playbook(play, "-v", env=environment, check=check)
    private = rig.host_key.read_text().splitlines()[1]
    assert private not in result.output, "a line of the private host key reached the output"
    return result, result.task("install") if result.results else None


@pytest.fixture
def ansible_cli_factory(tmp_path):
    def make(rig):
        return AnsibleCli(tmp_path, wrapper=rig.lan.command())

    return make


def test_an_installer_is_installed_once_then_left_alone(rig, ansible_cli_factory):
    rig.target()
    result, outcome = install(rig, ansible_cli_factory)
    assert result.rc == 0, result.describe()
    assert outcome["changed"] and outcome["action"] == "install" and outcome["hostname"] == "mini1"
    assert outcome["steps"][0] == "Uploading install SSH keys" and outcome["steps"][-1] == "Done!"
    (run,) = rig.runs()
    assert run["argv"] == [
        "--flake", f"{rig.flake}#mini1",
        "--target-host", f"root@{ADDRESS}", "--ssh-port", "22",
        "-i", str(rig.client_key),
        "--ssh-option", "UserKnownHostsFile=/dev/null", "--ssh-option", "StrictHostKeyChecking=no",
        "--phases", "kexec,disko,install,reboot",
        "--extra-files", str(rig.tree),
    ]  # fmt: skip
    assert run["tree"] == {
        ".": "0o755",
        "etc": "0o755",
        "etc/ssh": "0o755",
        "etc/ssh/ssh_host_ed25519_key": "0o600",
        "etc/ssh/ssh_host_ed25519_key.pub": "0o644",
    }
    log = Path(outcome["log_file"])
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and "### Installing NixOS ###" in log.read_text()

    again, second = install(rig, ansible_cli_factory)
    assert again.rc == 0, again.describe()
    assert not second["changed"] and second["action"] == "installed"
    assert len(rig.runs()) == 1, "nixos-anywhere ran again on an installed host"


def test_check_mode_probes_and_reports_the_argv(rig, ansible_cli_factory):
    rig.target()
    result, outcome = install(rig, ansible_cli_factory, check=True)
    assert result.rc == 0, result.describe()
    assert outcome["changed"] and outcome["action"] == "install" and outcome["argv"][0] == "nixos-anywhere"
    assert outcome["facts"]["variant_id"] == "installer" and outcome["facts"]["disk_present"]
    assert rig.runs() == []


def test_an_installed_system_is_refused_unless_reinstall_is_set(rig, ansible_cli_factory):
    rig.target(os_release=None)  # this Debian, as it is (the fake cannot rename it: it keeps mini1)
    result, outcome = install(rig, ansible_cli_factory)
    assert result.rc != 0 and outcome["failed"]
    assert "runs an installed Debian" in outcome["msg"] and "reinstall: true" in outcome["msg"], outcome["msg"]
    assert rig.runs() == []
    result, outcome = install(rig, ansible_cli_factory, reinstall=True)
    assert result.rc == 0 and outcome["action"] == "install", result.describe()
    assert len(rig.runs()) == 1


def test_a_nixos_host_that_is_not_this_one_is_refused(rig, ansible_cli_factory):
    rig.target(os_release='ID=nixos\nPRETTY_NAME="NixOS 24.11"\n', hostname="somebody-else")
    result, outcome = install(rig, ansible_cli_factory)
    assert result.rc != 0 and "installed NixOS 24.11 (hostname somebody-else)" in outcome["msg"], outcome
    assert rig.runs() == []


def test_a_failed_step_is_reported_and_a_rerun_continues(rig, ansible_cli_factory):
    rig.target()
    result, outcome = install(
        rig, ansible_cli_factory, env={"FAKE_NIXOS_ANYWHERE_FAIL": "Formatting hard drive with disko"}
    )
    assert result.rc != 0
    assert "during step: Formatting hard drive with disko" in outcome["msg"], outcome["msg"]
    assert "error: umount: /mnt: target is busy" in outcome["tail"]
    result, outcome = install(rig, ansible_cli_factory)
    assert result.rc == 0 and outcome["action"] == "install", result.describe()


def test_a_host_that_comes_back_with_another_key_fails_loudly(rig, ansible_cli_factory):
    rig.target(host_key=keygen(rig.tmp / "impostor_key"))
    result, outcome = install(rig, ansible_cli_factory)
    assert result.rc != 0
    assert "presents host key" in outcome["msg"] and rig.pinned in outcome["msg"], outcome["msg"]


def test_a_disk_missing_on_the_target_is_refused(rig, ansible_cli_factory):
    rig.target()
    result, outcome = install(rig, ansible_cli_factory, disk="/dev/disk/by-id/nvme-NOT_THERE")
    assert result.rc != 0 and f"/dev/disk/by-id/{DISK}" in outcome["msg"], outcome["msg"]
    assert rig.runs() == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"disk": "/dev/sda"}, "is not a /dev/disk/by-id/... path"),
        ({"phases": ["kexec", "format"]}, "phases must be"),
        ({"host": "Mini_1"}, "is not a DNS label"),
    ],
)
def test_bad_input_fails_before_the_target_is_contacted(rig, ansible_cli_factory, overrides, message):
    result, outcome = install(rig, ansible_cli_factory, address="10.77.0.199", **overrides)
    assert result.rc != 0 and message in outcome["msg"], outcome["msg"]


def test_an_unreachable_target_is_named(rig, ansible_cli_factory):
    result, outcome = install(rig, ansible_cli_factory, address="10.77.0.199")
    assert result.rc != 0 and "cannot reach mini1 at 10.77.0.199:22" in outcome["msg"], outcome["msg"]


def test_extra_files_readable_by_others_are_refused(rig, ansible_cli_factory):
    (rig.tree / "etc" / "ssh" / "ssh_host_ed25519_key").chmod(0o644)
    result, outcome = install(rig, ansible_cli_factory)
    assert result.rc != 0 and "must be mode 0600" in outcome["msg"], outcome["msg"]


def test_a_machine_that_does_not_answer_is_planned_in_check_mode_and_fails_for_real(rig, ansible_cli_factory):
    # no machine is plugged in at all: nothing answers at the address
    result, outcome = install(rig, ansible_cli_factory, check=True)
    assert result.rc == 0 and outcome["changed"] and outcome["action"] == "install", result.describe()
    assert any("Check mode plans the install of mini1" in w for w in outcome.get("warnings", [])), outcome
    result, outcome = install(rig, ansible_cli_factory)
    assert result.rc != 0 and "cannot reach mini1" in outcome["msg"], outcome
    assert rig.runs() == []

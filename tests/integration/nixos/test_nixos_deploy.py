"""nerv.homelab.nixos_deploy against a real sshd target in a network namespace whose /run/current-system is its
own, with the real `nix eval` of a flake without inputs (its "system" is a plain derivation: nixpkgs is not
reachable here) and a recording fake nixos-rebuild on PATH that activates by relinking over SSH."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .._ansible import AnsibleCli
from .._netns import Lan, Machine, keygen
from .._skips import require_commands, require_netns

FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_nixos_rebuild.py"
ADDRESS = "10.77.0.21"
OLD_SYSTEM = "/nix/store/" + "0" * 32 + "-nixos-system-mini1-old"
FLAKE = """{
  outputs = { self }: {
    nixosConfigurations.mini1.config.system.build.toplevel = derivation {
      name = "nixos-system-mini1-@VERSION@";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" "echo @VERSION@ > $out" ];
    };
  };
}
"""


class Rig:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.client_key = keygen(tmp_path / "id_ed25519")
        self.authorized = tmp_path / "authorized_keys"
        self.authorized.write_text((tmp_path / "id_ed25519.pub").read_text())
        self.host_key = keygen(tmp_path / "ssh_host_ed25519_key")
        self.known_hosts = tmp_path / "known_hosts"
        self.pin(self.host_key)
        self.flake = tmp_path / "flake"
        self.flake.mkdir()
        self.version("1")
        self.record = tmp_path / "record.jsonl"
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        wrapper = self.bin / "nixos-rebuild"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
        wrapper.chmod(0o755)
        self.lan = Lan(tmp_path, "10.77.0.1", 24)
        machine = Machine(
            host_key=self.host_key,
            authorized_keys=self.authorized,
            hostname="mini1",
            run_links={"current-system": OLD_SYSTEM},
        )
        self.lan.add("58:47:ca:77:00:21", ADDRESS, machine=machine)

    def pin(self, key: Path) -> None:
        public = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        self.known_hosts.write_text(f"{ADDRESS} {public}\n")

    def version(self, value: str) -> None:
        (self.flake / "flake.nix").write_text(FLAKE.replace("@VERSION@", value))

    def runs(self) -> list:
        return [json.loads(line) for line in self.record.read_text().splitlines()] if self.record.exists() else []

    def running(self) -> str:
        done = subprocess.run(
            self.lan.command("ssh", "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "BatchMode=yes",
                             "-i", str(self.client_key), f"root@{ADDRESS}", "readlink /run/current-system"),
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return done.stdout.strip()


@pytest.fixture
def rig(tmp_path):
    require_netns()
    require_commands("sshd", "ssh", "ssh-keygen", "nix")
    made = Rig(tmp_path)
    try:
        yield made
    finally:
        made.lan.close()


def deploy(rig, check=False, env=None, **overrides):
    options = {
        "host": "mini1",
        "flake": str(rig.flake),
        "address": ADDRESS,
        "identity_file": str(rig.client_key),
        "known_hosts": str(rig.known_hosts),
        "log_file": str(rig.tmp / "deploy.log"),
        **overrides,
    }
    play = [{"name": "d", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "deploy", "nerv.homelab.nixos_deploy": options}]}]  # fmt: skip
    environment = {
        "PATH": f"{rig.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "FAKE_NIXOS_REBUILD_RECORD": str(rig.record),
        **(env or {}),
    }
    result = AnsibleCli(rig.tmp, wrapper=rig.lan.command()).playbook(play, "--diff", env=environment, check=check)
    return result, result.task("deploy")


def test_deploys_once_then_only_when_the_configuration_changes(rig):
    checked, outcome = deploy(rig, check=True)
    assert checked.rc == 0, checked.describe()
    assert outcome["changed"] and outcome["before"] == OLD_SYSTEM and rig.runs() == []
    assert rig.running() == OLD_SYSTEM

    first, outcome = deploy(rig)
    assert first.rc == 0, first.describe()
    new = outcome["after"]
    assert outcome["changed"] and new.endswith("-nixos-system-mini1-1") and rig.running() == new
    (run,) = rig.runs()
    assert run["argv"] == ["switch", "--flake", f"path:{rig.flake}#mini1", "--target-host", f"root@{ADDRESS}"]
    assert f"UserKnownHostsFile={rig.known_hosts}" in run["NIX_SSHOPTS"]
    assert "StrictHostKeyChecking=yes" in run["NIX_SSHOPTS"]

    again, outcome = deploy(rig)
    assert again.rc == 0 and not outcome["changed"] and len(rig.runs()) == 1, again.describe()

    rig.version("2")
    third, outcome = deploy(rig)
    assert third.rc == 0 and outcome["changed"] and outcome["before"] == new, third.describe()
    assert rig.running().endswith("-nixos-system-mini1-2")


def test_a_host_presenting_another_key_is_not_touched(rig):
    rig.pin(keygen(rig.tmp / "other_key"))
    result, outcome = deploy(rig)
    assert result.rc != 0 and "does not match the pinned one" in outcome["msg"], outcome["msg"]
    assert rig.runs() == []


def test_a_failed_rebuild_reports_its_output(rig):
    result, outcome = deploy(rig, env={"FAKE_NIXOS_REBUILD_FAIL": "1"})
    assert result.rc != 0 and "nixos-rebuild switch of mini1 failed" in outcome["msg"]
    assert any("builder for" in line for line in outcome["tail"])


def test_a_host_the_flake_does_not_have_is_a_clear_error(rig):
    result, outcome = deploy(rig, host="mini9")
    assert result.rc != 0 and "cannot evaluate nixosConfigurations.mini9" in outcome["msg"], outcome["msg"]


def test_a_deploy_is_rolled_back_once_to_the_system_it_replaced(rig):
    result, deployed = deploy(rig)
    assert result.rc == 0 and deployed["changed"] and deployed["before"] == OLD_SYSTEM, result.describe()
    assert rig.running() == deployed["after"]

    result, back = deploy(rig, rollback_to=deployed["before"])
    assert result.rc == 0 and back["changed"], result.describe()
    assert back["argv"][1:3] == ["switch", "--rollback"] and "--flake" not in back["argv"]
    assert rig.running() == OLD_SYSTEM
    result, again = deploy(rig, rollback_to=deployed["before"])
    assert result.rc == 0 and not again["changed"], "a host running that system is left alone"
    assert [r["argv"][0] for r in rig.runs()] == ["switch", "switch"] and "--rollback" in rig.runs()[1]["argv"]

    result, refused = deploy(rig, rollback_to="yesterday")
    assert result.rc != 0 and "is not a system store path" in refused["msg"]


def test_a_host_that_does_not_answer_is_planned_in_check_mode_and_fails_for_real(rig):
    key = rig.known_hosts.read_text().split(None, 1)[1]
    rig.known_hosts.write_text(rig.known_hosts.read_text() + f"10.77.0.99 {key}")  # pinned, but nothing answers
    result, planned = deploy(rig, check=True, address="10.77.0.99")
    assert result.rc == 0 and planned["changed"] and planned["before"] is None, result.describe()
    assert any("Check mode plans a deploy to mini1" in w for w in planned.get("warnings", [])), planned
    result, refused = deploy(rig, address="10.77.0.99")
    assert result.rc != 0 and "cannot read mini1's system" in refused["msg"]
    assert rig.runs() == []


def test_a_host_whose_key_is_not_pinned_is_planned_without_connecting_and_refused_for_real(rig):
    """A VM the vms phase has not pinned yet: check mode plans without trying SSH (strict SSH could not log in
    anyway), a real run refuses before anything runs, naming the fix."""
    result, planned = deploy(rig, check=True, address="10.77.0.98")
    assert result.rc == 0 and planned["changed"] and planned["before"] is None, result.describe()
    warning = next(w for w in planned.get("warnings", []) if "Check mode plans a deploy to mini1" in w)
    assert "no key of mini1 (10.77.0.98) is pinned in" in warning and "its key is not pinned yet" in warning
    result, refused = deploy(rig, address="10.77.0.98")
    assert result.rc != 0 and "the host's key must be pinned first" in refused["msg"], refused
    assert rig.runs() == []

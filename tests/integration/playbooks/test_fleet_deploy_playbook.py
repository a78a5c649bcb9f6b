"""playbooks/fleet_deploy.yml with the flake inventory (nerv.homelab.flake, the real nix) on two NixOS hosts, each a
real sshd in a network namespace running its old system. The systems are small derivations the real nix builds
(their switch-to-configuration relinks the host's private /run/current-system); nixos-rebuild on the controller and
systemctl, systemd-run and nix-env on the hosts are the recording fakes of tests/integration/fixtures.

Checked: batch size 1, the second host's health check (nerv.healthChecks in the flake) fails -> the first is
deployed and kept, the second rolled back, the run fails; a host that does not evaluate -> no host is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .._ansible import AnsibleCli
from .._netns import Lan, Machine, keygen
from .._skips import require_commands, require_netns

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NIX_CONFIG = "sandbox = false\nsubstituters =\n"
HOSTS = {"mini1": ("10.78.0.21", "58:47:ca:78:00:21"), "mini2": ("10.78.0.22", "58:47:ca:78:00:22")}
FLAKE = """{
  outputs = { self }: let
    system = name: derivation {
      inherit name;
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" ''
        /bin/mkdir -p $out/bin
        echo '#!/bin/sh' > $out/bin/switch-to-configuration
        echo "ln -sfn $out /run/current-system" >> $out/bin/switch-to-configuration
        /bin/chmod +x $out/bin/switch-to-configuration
      '' ];
    };
  in {
    nixosConfigurations.mini1.config.system.build.toplevel = system "nixos-system-mini1-@VERSION@";
    nixosConfigurations.mini2.config.system.build.toplevel = @MINI2@;
    deploy.nodes.mini1.hostname = "10.78.0.21";
    deploy.nodes.mini2.hostname = "10.78.0.22";
    nerv.healthChecks.mini1 = [ "test -L /run/current-system" ];
    nerv.healthChecks.mini2 = [ @CHECK@ ];
  };
}
"""


class Fleet:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.key = keygen(tmp_path / "id_ed25519")
        authorized = tmp_path / "authorized_keys"
        authorized.write_text(Path(f"{self.key}.pub").read_text())
        self.flake = tmp_path / "fleet"
        self.flake.mkdir()
        (self.flake / "flake.yml").write_text("plugin: nerv.homelab.flake\n")
        self.write("old")
        self.old = {h: self.build(h) for h in HOSTS}
        self.write("1")
        self.record = tmp_path / "record.jsonl"
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        rebuild = self.bin / "nixos-rebuild"
        rebuild.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FIXTURES / "fake_nixos_rebuild.py"}" "$@"\n')
        rebuild.chmod(0o755)
        self.lan = Lan(tmp_path, "10.78.0.1", 24)
        pins = []
        for host, (address, mac) in HOSTS.items():
            host_key = keygen(tmp_path / f"{host}_host_key")
            pins.append(f"{address} {' '.join(Path(f'{host_key}.pub').read_text().split()[:2])}")
            machine = Machine(host_key=host_key, authorized_keys=authorized, hostname=host,
                              run_links={"current-system": self.old[host]}, local_bin=self.tools(host))  # fmt: skip
            self.lan.add(mac, address, machine=machine)
        (self.flake / "known_hosts").write_text("\n".join(pins) + "\n")

    def tools(self, host: str) -> Path:
        state, local_bin = self.tmp / f"{host}-state", self.tmp / f"{host}-bin"
        state.mkdir()
        local_bin.mkdir()
        for tool in ("systemctl", "systemd-run", "nix-env"):
            wrapper = local_bin / tool
            fake = FIXTURES / "fake_host_tools.py"
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" {tool} "{state}" "$@"\n')
            wrapper.chmod(0o755)
        return local_bin

    def write(self, version: str, check: str = "true", mini2: str | None = None) -> None:
        text = FLAKE.replace("@VERSION@", version).replace("@CHECK@", json.dumps(check))
        text = text.replace("@MINI2@", mini2 or f'system "nixos-system-mini2-{version}"')
        (self.flake / "flake.nix").write_text(text)

    def build(self, host: str) -> str:
        attr = f"path:{self.flake}#nixosConfigurations.{host}.config.system.build.toplevel"
        done = subprocess.run(
            ["nix", "--extra-experimental-features", "nix-command flakes", "build", "--no-link", "--json", attr],
            capture_output=True, text=True, check=True, timeout=120, env=dict(os.environ, NIX_CONFIG=NIX_CONFIG),
        )  # fmt: skip
        return json.loads(done.stdout)[0]["outputs"]["out"]

    def deploy(self, check=False, **extra):
        env = {
            "PATH": f"{self.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "FAKE_NIXOS_REBUILD_RECORD": str(self.record),
            "FAKE_NIXOS_REBUILD_BUILD": "1",
            "NIX_CONFIG": NIX_CONFIG,
        }
        variables = {"fleet_deploy_identity_file": str(self.key), "fleet_deploy_health_timeout": 4,
                     "fleet_deploy_confirm_timeout": 20, **extra}  # fmt: skip
        cli = AnsibleCli(self.tmp, wrapper=self.lan.command())
        return cli.playbook(REPO / "playbooks" / "fleet_deploy.yml", inventory=self.flake / "flake.yml", env=env,
                            extra_vars=variables, check=check)  # fmt: skip

    def rebuilds(self) -> list:
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        return [json.loads(line)["argv"] for line in lines]

    def running(self, host: str) -> str:
        done = subprocess.run(
            self.lan.command("ssh", "-o", f"UserKnownHostsFile={self.flake / 'known_hosts'}", "-o", "BatchMode=yes",
                             "-i", str(self.key), f"root@{HOSTS[host][0]}", "readlink -f /run/current-system"),
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return done.stdout.strip()

    def close(self) -> None:
        for host in HOSTS:  # watchdogs a failed test left sleeping
            pids = self.tmp / f"{host}-state" / "pids"
            for pid in pids.read_text().split() if pids.exists() else []:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(pid), signal.SIGKILL)
        self.lan.close()


@pytest.fixture
def fleet(tmp_path):
    require_netns()
    require_commands("sshd", "ssh", "ssh-keygen", "nix")
    made = Fleet(tmp_path)
    try:
        yield made
    finally:
        made.close()


def test_batches_stop_at_the_host_that_fails_its_health_check(fleet):
    fleet.write("1", check="echo mini2 serves nothing; exit 1")
    checked = fleet.deploy(check=True)
    assert checked.rc == 0, checked.describe()
    assert fleet.rebuilds() == [] and fleet.running("mini1") == fleet.old["mini1"], "check mode changed something"

    failed = fleet.deploy()
    assert failed.rc != 0, failed.describe()
    deployed = failed.task("Deploy the host", host="mini1")
    assert deployed["changed"] and deployed["deployed"], deployed
    assert fleet.running("mini1") == deployed["after"] and deployed["after"].endswith("-nixos-system-mini1-1")
    assert [c["check"] for c in deployed["health"]][-1] == "test -L /run/current-system", "the flake's own check"
    back = failed.task("Deploy the host", host="mini2")
    assert back["failed"] and back["rolled_back"] and "mini2 serves nothing" in back["msg"], back
    assert fleet.running("mini2") == fleet.old["mini2"], "mini2 runs its old system again"
    hosts = [argv[argv.index("--target-host") + 1] for argv in fleet.rebuilds()]
    assert hosts == ["root@10.78.0.21", "root@10.78.0.22", "root@10.78.0.22"], "one at a time, mini2 rolled back"

    fleet.write("1")  # mini2's check fixed: mini1 is left alone, mini2 deployed
    fixed = fleet.deploy()
    assert fixed.rc == 0, fixed.describe()
    assert not fixed.task("Deploy the host", host="mini1")["changed"]
    assert fleet.running("mini2").endswith("-nixos-system-mini2-1") and len(fleet.rebuilds()) == 4


def test_a_host_that_does_not_evaluate_stops_the_run_before_any_change(fleet):
    fleet.write("2", mini2='throw "mini2 has a typo"')
    failed = fleet.deploy()
    assert failed.rc != 0, failed.describe()
    evaluated = failed.task("Evaluate the systems of the selected hosts", host="mini1")
    assert "mini2: error: mini2 has a typo" in evaluated["msg"], evaluated["msg"]
    assert fleet.rebuilds() == [], "no host was touched"
    assert fleet.running("mini1") == fleet.old["mini1"] and fleet.running("mini2") == fleet.old["mini2"]
    assert "Deploy the host" not in [name.split(" : ")[-1] for name in failed.task_names()]

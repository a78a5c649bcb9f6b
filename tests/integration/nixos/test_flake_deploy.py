"""nerv.homelab.flake_deploy (also by its former name nerv.homelab.nixos_deploy) and flake_eval against real sshd
targets in network namespaces, with the real nix.

The flake has no inputs (nixpkgs is not reachable): each system is a small derivation the real nix builds (with
the sandbox off: the builder needs mkdir), holding bin/switch-to-configuration and activate scripts that point the
host's private /run/current-system at themselves and run an activation snippet (the old systems bring the network
up; a broken one takes it down). On the controller nixos-rebuild is the recording fake (it builds, relinks over
SSH and runs the new system's switch-to-configuration); on the hosts, systemctl, systemd-run, nix-env and
darwin-rebuild are recording fakes bind-mounted over /usr/local/bin (fixtures/fake_host_tools.py). The watchdog's
shell script, the health checks, ssh and `nix flake archive --to ssh-ng://` are real.
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

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NIX_CONFIG = "sandbox = false\nsubstituters =\n"
HOSTS = {"mini1": ("10.77.0.21", "58:47:ca:77:00:21", "nixos"), "mac1": ("10.77.0.22", "58:47:ca:77:00:22", "darwin")}
UP = "for i in $(ls /sys/class/net); do ip link set $i up; done"
# takes every link but lo down at once: the SSH session that activates it never answers again
BREAK = "for i in $(ls /sys/class/net); do [ $i = lo ] || ip link set $i down; done"
FLAKE = """{
  outputs = { self }: let
    system = name: activation: derivation {
      inherit name activation;
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" ''
        /bin/mkdir -p $out/bin
        f=$out/bin/switch-to-configuration
        echo '#!/bin/sh' > $f
        echo "ln -sfn $out /run/current-system" >> $f
        echo "$activation" >> $f
        /bin/chmod +x $f
        /bin/cp $f $out/activate
      '' ];
    };
  in {
    nixosConfigurations.mini1.config.system.build.toplevel = system "nixos-system-mini1-@VERSION@" @NIXOS@;
    darwinConfigurations.mac1.system = system "darwin-system-mac1-@VERSION@" @DARWIN@;
    nixosConfigurations.broken.config.system.build.toplevel = throw "broken is broken";
  };
}
"""


def host_tools(tmp: Path, host: str) -> Path:
    """The host's /usr/local/bin: a wrapper per fake tool, its state directory (tmp/<host>-state) baked in (ssh
    passes no env)."""
    state, local_bin = tmp / f"{host}-state", tmp / f"{host}-bin"
    state.mkdir()
    local_bin.mkdir()
    for tool in ("systemctl", "systemd-run", "nix-env", "darwin-rebuild"):
        path = local_bin / tool
        fake = f'"{sys.executable}" "{FIXTURES / "fake_host_tools.py"}" {tool} "{state}"'
        path.write_text(f"#!/bin/sh\nexport NIX_CONFIG='{NIX_CONFIG}'\nexec {fake} \"$@\"\n")
        path.chmod(0o755)
    return local_bin


def stop_watchdogs(tmp: Path, hosts) -> None:
    """Kill the watchdogs a failed test left sleeping."""
    for host in hosts:
        pids = tmp / f"{host}-state" / "pids"
        for pid in pids.read_text().split() if pids.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)


def nix_string(text: str) -> str:
    return json.dumps(text).replace("${", "\\${")


class Rig:
    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.env = {"NIX_CONFIG": NIX_CONFIG}
        self.client_key = keygen(tmp_path / "id_ed25519")
        self.authorized = tmp_path / "authorized_keys"
        self.authorized.write_text((tmp_path / "id_ed25519.pub").read_text())
        self.known_hosts = tmp_path / "known_hosts"
        self.flake = tmp_path / "flake"
        self.flake.mkdir()
        self.write("old", nixos=UP, darwin=UP)
        self.old = {"mini1": self.build("nixosConfigurations.mini1.config.system.build.toplevel"),
                    "mac1": self.build("darwinConfigurations.mac1.system")}  # fmt: skip
        self.write("1")
        self.record = tmp_path / "record.jsonl"
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.wrapper(self.bin / "nixos-rebuild", f'"{sys.executable}" "{FIXTURES / "fake_nixos_rebuild.py"}"')
        self.lan = Lan(tmp_path, "10.77.0.1", 24)
        pins = []
        for host, (address, mac, _platform) in HOSTS.items():
            key = keygen(tmp_path / f"{host}_host_key")
            pins.append(f"{address} {' '.join(Path(f'{key}.pub').read_text().split()[:2])}")
            links, tools = {"current-system": self.old[host]}, self.host_tools(host)
            machine = Machine(host_key=key, authorized_keys=self.authorized, hostname=host, run_links=links,
                              local_bin=tools)  # fmt: skip
            self.lan.add(mac, address, machine=machine)
        self.known_hosts.write_text("\n".join(pins) + "\n")

    def wrapper(self, path: Path, command: str, env: str = "") -> None:
        path.write_text(f'#!/bin/sh\n{env}exec {command} "$@"\n')
        path.chmod(0o755)

    def host_tools(self, host: str) -> Path:
        return host_tools(self.tmp, host)

    def state(self, host: str) -> Path:
        return self.tmp / f"{host}-state"

    def write(self, version: str, nixos: str = "", darwin: str = "") -> None:
        text = FLAKE.replace("@VERSION@", version).replace("@NIXOS@", nix_string(nixos))
        (self.flake / "flake.nix").write_text(text.replace("@DARWIN@", nix_string(darwin)))

    def build(self, attr: str) -> str:
        done = subprocess.run(
            ["nix", "--extra-experimental-features", "nix-command flakes", "build", "--no-link", "--json",
             f"path:{self.flake}#{attr}"],
            capture_output=True, text=True, check=True, timeout=120, env=dict(os.environ, **self.env),
        )  # fmt: skip
        return json.loads(done.stdout)[0]["outputs"]["out"]

    def rebuilds(self) -> list:
        lines = self.record.read_text().splitlines() if self.record.exists() else []
        return [json.loads(line)["argv"] for line in lines]

    def calls(self, host: str, tool: str | None = None) -> list:
        path = self.state(host) / "calls.jsonl"
        calls = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [c["argv"] for c in calls if tool in (None, c["tool"])]

    def running(self, host: str) -> str:
        done = subprocess.run(
            self.lan.command("ssh", "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "BatchMode=yes",
                             "-i", str(self.client_key), f"root@{HOSTS[host][0]}", "readlink -f /run/current-system"),
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return done.stdout.strip()

    def close(self) -> None:
        stop_watchdogs(self.tmp, HOSTS)
        self.lan.close()


@pytest.fixture
def rig(tmp_path):
    require_netns()
    require_commands("sshd", "ssh", "ssh-keygen", "nix", "ip")
    made = Rig(tmp_path)
    try:
        yield made
    finally:
        made.close()


def run(rig, module, options, check=False, env=None):
    play = [{"name": "d", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "task", module: options}]}]  # fmt: skip
    environment = {
        "PATH": f"{rig.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "FAKE_NIXOS_REBUILD_RECORD": str(rig.record),
        "FAKE_NIXOS_REBUILD_BUILD": "1",
        **rig.env,
        **(env or {}),
    }
    result = AnsibleCli(rig.tmp, wrapper=rig.lan.command()).playbook(play, "--diff", env=environment, check=check)
    return result, result.task("task")


def deploy(rig, host="mini1", check=False, module="nerv.homelab.flake_deploy", env=None, **overrides):
    options = {
        "host": host,
        "platform": HOSTS[host][2],
        "flake": str(rig.flake),
        "address": HOSTS[host][0],
        "identity_file": str(rig.client_key),
        "known_hosts": str(rig.known_hosts),
        "log_file": str(rig.tmp / f"{host}.log"),
        "health_timeout": 4,
        "confirm_timeout": 20,
        **overrides,
    }
    return run(rig, module, options, check=check, env=env)


def test_eval_gives_every_system_and_names_every_failure(rig):
    hosts = [{"name": "mini1", "platform": "nixos"}, {"name": "mac1", "platform": "darwin"}]
    result, evaluated = run(rig, "nerv.homelab.flake_eval", {"flake": str(rig.flake), "hosts": hosts}, check=True)
    assert result.rc == 0 and not evaluated["changed"], result.describe()
    assert evaluated["systems"]["mini1"].endswith("-nixos-system-mini1-1")
    assert evaluated["systems"]["mac1"].endswith("-darwin-system-mac1-1") and evaluated["homes"] == {}

    hosts += [{"name": "broken", "platform": "nixos"}, {"name": "gone", "platform": "darwin"}]
    result, failed = run(rig, "nerv.homelab.flake_eval", {"flake": str(rig.flake), "hosts": hosts})
    assert result.rc != 0 and sorted(failed["failures"]) == ["broken", "gone"], result.describe()
    assert "broken: error: broken is broken" in failed["msg"], failed["msg"]
    assert 'gone: the flake has no darwinConfigurations."gone"' in failed["msg"], failed["msg"]


def test_deploys_a_nixos_host_once_with_a_confirmed_watchdog(rig):
    checked, planned = deploy(rig, check=True)
    assert checked.rc == 0 and planned["changed"] and planned["before"] == rig.old["mini1"], checked.describe()
    assert rig.rebuilds() == [] and rig.calls("mini1") == [] and rig.running("mini1") == rig.old["mini1"]

    first, done = deploy(rig, health_checks=["test -L /run/current-system"])
    assert first.rc == 0 and done["changed"] and done["deployed"] and not done["rolled_back"], first.describe()
    assert rig.running("mini1") == done["after"] and done["after"].endswith("-nixos-system-mini1-1")
    assert [c["check"] for c in done["health"]] == ["running system", "failed units", "test -L /run/current-system"]
    (argv,) = rig.rebuilds()
    assert argv == ["switch", "--flake", f"path:{rig.flake}#mini1", "--target-host", "root@10.77.0.21"]
    (armed,) = rig.calls("mini1", "systemd-run")
    assert armed[0].startswith("--unit=nerv-rollback-") and armed[-3:-1] == ["/bin/sh", "-c"]
    assert "switch-to-configuration switch" in armed[-1] and rig.old["mini1"] in armed[-1]
    assert ["stop", f"{armed[0].split('=')[1]}.service"] in rig.calls("mini1", "systemctl"), "disarmed"

    again, same = deploy(rig)
    assert again.rc == 0 and not same["changed"] and len(rig.rebuilds()) == 1, again.describe()


def test_a_failing_health_check_is_rolled_back_at_once(rig):
    result, failed = deploy(rig, health_checks=["echo no answer on 8080; exit 1"])
    assert result.rc != 0 and failed["rolled_back"] and failed["rolled_back_by"] == "controller", result.describe()
    assert "was rolled back to" in failed["msg"] and "no answer on 8080" in failed["msg"], failed["msg"]
    assert rig.running("mini1") == rig.old["mini1"]
    assert [("--rollback" in argv) for argv in rig.rebuilds()] == [False, True]


def test_a_test_switch_built_on_the_host_is_undone_by_the_old_systems_activation(rig):
    result, failed = deploy(rig, action="test", build_on="target", health_checks=["false"])
    assert result.rc != 0 and failed["rolled_back_by"] == "controller", result.describe()
    (argv,) = rig.rebuilds()
    assert argv[:1] == ["test"] and argv[-2:] == ["--build-host", "root@10.77.0.21"], argv
    assert failed["rollback_argv"] == [f"{rig.old['mini1']}/bin/switch-to-configuration test"]
    assert rig.running("mini1") == rig.old["mini1"]
    assert rig.calls("mini1", "nix-env") == [], "a test deploy leaves the system profile alone"


def test_a_failed_unit_is_rolled_back(rig):
    (rig.state("mini1") / "failed-units").write_text("nginx.service loaded failed failed nginx\n")
    result, failed = deploy(rig)
    assert result.rc != 0 and failed["rolled_back"], result.describe()
    assert "failed units" in failed["msg"] and "nginx.service" in failed["msg"], failed["msg"]
    assert rig.running("mini1") == rig.old["mini1"]


def test_a_switch_that_cuts_the_network_is_rolled_back_by_the_watchdog(rig):
    rig.write("2", nixos=BREAK)
    result, failed = deploy(rig, confirm_timeout=15)
    assert result.rc != 0 and failed["rolled_back_by"] == "watchdog", result.describe()
    assert "by the host's watchdog" in failed["msg"], failed["msg"]
    assert rig.running("mini1") == rig.old["mini1"], "the old system brought the network back"
    assert ["-p", "/nix/var/nix/profiles/system", "--set", rig.old["mini1"]] in rig.calls("mini1", "nix-env")
    assert [("--rollback" in argv) for argv in rig.rebuilds()] == [False], "the controller could not roll back"


def test_a_darwin_host_is_switched_by_darwin_rebuild_on_it(rig):
    checked, planned = deploy(rig, host="mac1", check=True)
    assert checked.rc == 0 and planned["changed"] and rig.calls("mac1") == [], checked.describe()
    result, done = deploy(rig, host="mac1", health_checks=["true"])
    assert result.rc == 0 and done["deployed"], result.describe()
    assert rig.running("mac1") == done["after"] and done["after"].endswith("-darwin-system-mac1-1")
    assert [c["check"] for c in done["health"]] == ["running system", "true"], "no systemctl on macOS"
    (rebuilt,) = rig.calls("mac1", "darwin-rebuild")
    assert rebuilt[:2] == ["switch", "--flake"] and rebuilt[2].startswith("/nix/store/")
    assert rebuilt[2].endswith("-source#mac1") and rig.rebuilds() == [], "nixos-rebuild is not used for a Mac"
    archive = done["argv"][0]
    assert archive[-5:-1] == ["archive", "--json", "--to", "ssh-ng://root@10.77.0.22"], archive
    assert rig.calls("mac1", "systemd-run") == [], "the darwin watchdog is a background shell"

    again, same = deploy(rig, host="mac1")
    assert again.rc == 0 and not same["changed"] and len(rig.calls("mac1", "darwin-rebuild")) == 1


def test_a_darwin_host_is_rolled_back_with_darwin_rebuild(rig):
    result, failed = deploy(rig, host="mac1", health_checks=["false"])
    assert result.rc != 0 and failed["rolled_back_by"] == "controller", result.describe()
    assert rig.calls("mac1", "darwin-rebuild")[-1] == ["switch", "--rollback"]
    assert rig.running("mac1") == rig.old["mac1"]


def test_a_host_presenting_another_key_is_not_touched(rig):
    rig.known_hosts.write_text(rig.known_hosts.read_text().replace("10.77.0.21 ", "10.77.0.99 "))
    keygen(rig.tmp / "other")
    rig.known_hosts.write_text(
        rig.known_hosts.read_text() + f"10.77.0.21 {' '.join((rig.tmp / 'other.pub').read_text().split()[:2])}\n"
    )
    result, refused = deploy(rig)
    assert result.rc != 0 and "does not match the pinned one" in refused["msg"], refused["msg"]
    assert rig.rebuilds() == [] and rig.calls("mini1") == []


def test_a_host_that_does_not_answer_is_planned_in_check_mode_and_fails_for_real(rig):
    key = rig.known_hosts.read_text().splitlines()[0].split(None, 1)[1]
    rig.known_hosts.write_text(rig.known_hosts.read_text() + f"10.77.0.99 {key}\n")  # pinned, but nothing answers
    result, planned = deploy(rig, check=True, address="10.77.0.99")
    assert result.rc == 0 and planned["changed"] and planned["before"] is None, result.describe()
    assert any("Check mode plans a deploy to mini1" in w for w in planned.get("warnings", [])), planned
    result, refused = deploy(rig, address="10.77.0.99")
    assert result.rc != 0 and "cannot read mini1's system" in refused["msg"], refused["msg"]
    assert rig.rebuilds() == [] and rig.calls("mini1") == []


def test_bad_input_is_refused_before_anything_runs(rig):
    result, refused = deploy(rig, confirm_timeout=4, health_timeout=4)
    assert result.rc != 0 and "confirm_timeout (4 s) must exceed health_timeout" in refused["msg"]
    result, refused = deploy(rig, host="mac1", action="boot")
    assert result.rc != 0 and "darwin-rebuild deploys with action=switch" in refused["msg"]
    result, refused = deploy(rig, system="latest")
    assert result.rc != 0 and "is not a store path" in refused["msg"]
    assert rig.rebuilds() == [] and rig.calls("mini1") == [] and rig.calls("mac1") == []


def test_a_host_whose_key_is_not_pinned_is_planned_without_connecting_and_refused_for_real(rig):
    """A VM the vms phase has not pinned yet: check mode plans without trying SSH (strict SSH could not log in
    anyway), a real run refuses before anything runs, naming the fix."""
    result, planned = deploy(rig, check=True, address="10.77.0.98")
    assert result.rc == 0 and planned["changed"] and planned["before"] is None, result.describe()
    warning = next(w for w in planned.get("warnings", []) if "Check mode plans a deploy to mini1" in w)
    assert "no key of mini1 (10.77.0.98) is pinned in" in warning and "its key is not pinned yet" in warning
    result, refused = deploy(rig, address="10.77.0.98")
    assert result.rc != 0 and "the host's key must be pinned first" in refused["msg"], refused
    assert rig.rebuilds() == [] and rig.calls("mini1") == []


def test_a_failed_rebuild_reports_its_output_and_leaves_the_host(rig):
    result, failed = deploy(rig, env={"FAKE_NIXOS_REBUILD_FAIL": "1"})
    assert result.rc != 0 and "nixos-rebuild switch of mini1 failed" in failed["msg"], failed["msg"]
    assert "nothing to roll back" in failed["msg"] and any("builder for" in line for line in failed["tail"])
    assert rig.running("mini1") == rig.old["mini1"] and not failed["rolled_back"]
    assert rig.calls("mini1", "systemctl")[-1][:1] == ["stop"], "the watchdog was disarmed"


def test_a_host_the_flake_does_not_have_is_a_clear_error(rig):
    options = {"host": "mini9", "flake": str(rig.flake), "address": HOSTS["mini1"][0],
               "identity_file": str(rig.client_key), "known_hosts": str(rig.known_hosts)}  # fmt: skip
    result, refused = run(rig, "nerv.homelab.flake_deploy", options)
    assert result.rc != 0 and 'cannot evaluate nixosConfigurations."mini9"' in refused["msg"], refused["msg"]
    assert rig.rebuilds() == []


def test_the_former_name_deploys_and_rolls_back_once_to_the_system_it_replaced(rig):
    """nerv.homelab.nixos_deploy is redirected to flake_deploy, with a deprecation warning; its rollback_to stays."""
    result, deployed = deploy(rig, module="nerv.homelab.nixos_deploy")
    assert result.rc == 0 and deployed["changed"] and deployed["before"] == rig.old["mini1"], result.describe()
    assert rig.running("mini1") == deployed["after"] and deployed["deployed"]
    assert "nixos_deploy has been deprecated" in result.stderr + result.stdout, result.describe()

    result, back = deploy(rig, module="nerv.homelab.nixos_deploy", rollback_to=deployed["before"])
    assert result.rc == 0 and back["changed"], result.describe()
    (argv,) = back["argv"]
    assert argv[1:3] == ["switch", "--rollback"] and "--flake" not in argv
    assert rig.running("mini1") == rig.old["mini1"]
    result, again = deploy(rig, rollback_to=deployed["before"])
    assert result.rc == 0 and not again["changed"], "a host running that system is left alone"
    assert [("--rollback" in argv) for argv in rig.rebuilds()] == [False, True]
    assert len(rig.calls("mini1", "systemd-run")) == 1, "undoing a deploy arms no watchdog"

    result, refused = deploy(rig, rollback_to="yesterday")
    assert result.rc != 0 and "is not a system store path" in refused["msg"]

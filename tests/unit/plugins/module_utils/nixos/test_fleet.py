"""The pure parts of a fleet deploy: the evaluation's expression and its parsing, the deploy's command lines, the
watchdog's script and the health checks' exit codes. The expression is also run by the real nix here (an input-less
flake), since a string that looks right is not yet an expression that evaluates."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import deploy, fleet
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import flake_deploy as fd
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import magic_rollback as mr

OLD = "/nix/store/" + "a" * 32 + "-nixos-system-pi-old"
NEW = "/nix/store/" + "b" * 32 + "-nixos-system-pi-new"
TARGET = Target("pi", "10.0.0.31", 2222, "admin", "/k/id")
FLAKE = """{ outputs = { self }: let d = n: derivation { name = n; system = "x86_64-linux"; builder = "/bin/sh"; };
  in {
    nixosConfigurations.pi.config.system.build.toplevel = d "pi";
    nixosConfigurations."odd.name".config.system.build.toplevel = throw "odd is broken";
    darwinConfigurations.mac.system = d "mac";
    homeConfigurations."me@pi".activationPackage = d "home";
  }; }
"""


def params(**overrides):
    base = {"host": "pi", "platform": "nixos", "flake": "path:/srv/fleet", "action": "switch", "build_on": None}
    base.update(nixos_rebuild="nixos-rebuild", darwin_rebuild="darwin-rebuild", nix="nix", extra_args=[])
    return {**base, **overrides}


def test_local_directories_become_path_refs_and_references_stay():
    assert deploy.flake_ref("/srv/fleet") == "path:/srv/fleet"
    assert deploy.flake_ref("path:/srv/fleet") == "path:/srv/fleet"
    assert deploy.flake_ref("github:me/fleet") == "github:me/fleet"


def test_expression_names_each_entry_quoted_with_its_attribute():
    text = fleet.expression("path:/f", [{"name": "pi", "platform": "nixos"}, {"name": "mac", "platform": "darwin"}],
                            ["me@pi"])  # fmt: skip
    assert 'builtins.getFlake (builtins.fromJSON "\\"path:/f\\"")' in text
    assert 'attempt "nixosConfigurations" "pi" (c: c.config.system.build.toplevel)' in text
    assert 'attempt "darwinConfigurations" "mac" (c: c.system)' in text
    assert '"me@pi" = attempt "homeConfigurations" "me@pi" (c: c.activationPackage)' in text
    assert "builtins.tryEval" in text
    single = fleet.single("path:/f", "home", "me@pi")
    assert single.rstrip().endswith('pathOf flake.homeConfigurations."me@pi".activationPackage')


def test_nix_strings_cannot_interpolate():
    assert fleet.nix_string("a${b}") == '"a\\${b}"'


def test_selection_is_checked_before_nix_runs():
    with pytest.raises(HostError, match=r"hosts\[0\].platform must be one of nixos, darwin"):
        fleet.check_selection([{"name": "pi", "platform": "linux"}], [])
    with pytest.raises(HostError, match="not a configuration name"):
        fleet.check_selection([{"name": "a b", "platform": "nixos"}], [])
    with pytest.raises(HostError, match="of the form user@host"):
        fleet.check_selection([], ["pi"])


def test_outcome_separates_paths_missing_and_failed():
    raw = {"pi": {"missing": False, "ok": True, "path": NEW}, "gone": {"missing": True}}
    raw.update(odd={"missing": False, "ok": False, "path": None}, weird={"missing": False, "ok": True, "path": "x"})
    paths, failures = fleet.outcome(raw, lambda n: "nixos", lambda n: f"error: {n} broke")
    assert paths == {"pi": NEW}
    assert failures == {"gone": 'the flake has no nixosConfigurations."gone"', "odd": "error: odd broke",
                        "weird": "nixosConfigurations.weird evaluates to 'x', not a store path"}  # fmt: skip


def test_nix_message_drops_warnings():
    stderr = "warning: Git tree is dirty\nerror: attribute 'x' missing\n       at /f.nix:1\n(use '--show-trace' x)\n"
    assert fleet.nix_message(stderr) == "error: attribute 'x' missing\n       at /f.nix:1"


def test_the_expression_evaluates_with_the_real_nix(tmp_path):
    nix = shutil.which("nix")
    if nix is None:
        pytest.skip("needs nix (Debian package nix-bin) to evaluate the expression: not found on PATH")
    (tmp_path / "flake.nix").write_text(FLAKE)
    hosts = [{"name": "pi", "platform": "nixos"}, {"name": "odd.name", "platform": "nixos"},
             {"name": "mac", "platform": "darwin"}, {"name": "nope", "platform": "nixos"}]  # fmt: skip
    done = subprocess.run(fleet.eval_argv(nix, fleet.expression(f"path:{tmp_path}", hosts, ["me@pi"])),
                          capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    raw = json.loads(done.stdout)
    assert raw["systems"]["pi"]["ok"] and raw["systems"]["pi"]["path"].endswith("-pi")
    assert raw["systems"]["odd.name"] == {"missing": False, "ok": False, "path": None}
    assert raw["systems"]["nope"] == {"missing": True}
    assert raw["homes"]["me@pi"]["path"].endswith("-home")


def test_nixos_argv_builds_on_the_target_when_asked():
    local = fd.nixos_argv(params(extra_args=["--use-substitutes"]), TARGET)
    assert local == ["nixos-rebuild", "switch", "--flake", "path:/srv/fleet#pi", "--target-host", "admin@10.0.0.31",
                     "--use-substitutes"]  # fmt: skip
    remote = fd.nixos_argv(params(build_on="target"), TARGET)
    assert remote[-2:] == ["--build-host", "admin@10.0.0.31"]


def test_darwin_copies_the_source_then_runs_darwin_rebuild_on_the_mac():
    source = "/nix/store/" + "c" * 32 + "-source"
    commands = fd.darwin_commands(params(platform="darwin", host="mac"), TARGET, source, NEW)
    assert [where for where, _argv in commands] == ["local", "ssh"], "built on the Mac by default"
    assert commands[0][1][-4:] == ["archive", "--to", "ssh-ng://admin@10.0.0.31", "path:/srv/fleet"]
    assert commands[1][1] == [f"darwin-rebuild switch --flake '{source}#mac'"]
    built = fd.darwin_commands(params(platform="darwin", host="mac", build_on="local"), TARGET, source, NEW)
    assert built[1][1][-2:] == ["--no-link", "path:/srv/fleet#darwinConfigurations.mac.system"]
    assert built[2][1][-3:] == ["--to", "ssh-ng://admin@10.0.0.31", NEW]


def test_step_names():
    assert fd.step_name("local", ["nixos-rebuild", "switch", "--flake", "x"]) == "nixos-rebuild switch"
    assert (
        fd.step_name("local", ["nix", *deploy.NIX_FEATURES, "flake", "archive", "--to", "u", "r"])
        == "nix flake archive"
    )
    assert fd.step_name("local", ["nix", *deploy.NIX_FEATURES, "copy", "--to", "u", NEW]) == "nix copy"
    assert fd.step_name("ssh", ["darwin-rebuild switch --flake x#mac"]) == "darwin-rebuild"


def options(**overrides):
    base = {"host": "pi", "platform": "nixos", "known_hosts": __file__, "action": "switch", "system": None,
            "rollback": True, "confirm_timeout": 180, "health_timeout": 60}  # fmt: skip
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"host": "Pi_1"}, "is not a DNS label"),
        ({"known_hosts": "/nonexistent"}, "must be pinned first"),
        ({"platform": "darwin", "action": "test"}, "darwin-rebuild deploys with action=switch"),
        ({"system": "/tmp/x"}, "is not a store path"),
        ({"confirm_timeout": 60}, r"confirm_timeout \(60 s\) must exceed health_timeout \(60 s\)"),
    ],
)
def test_bad_options_are_refused(overrides, message):
    with pytest.raises(HostError, match=message):
        fd.check_options(options(**overrides))


def test_without_rollback_the_timeouts_are_free():
    fd.check_options(options(rollback=False, confirm_timeout=1))
    fd.check_options(options(action="boot", confirm_timeout=1))


def test_the_watchdog_waits_for_the_activation_then_undoes_it_unless_confirmed():
    dog = mr.Watchdog("nixos", "switch", OLD, 30, 600, ident="abc")
    script = dog.script()
    assert script.startswith(f'n=0; while [ "$(readlink -f /run/current-system)" = {OLD} ]; do')
    assert (
        "[ $n -gt 600 ] && exit 0" in script and "sleep 30; [ -e /run/nerv-rollback/abc.confirmed ] && exit 0" in script
    )
    assert script.endswith(
        f"nix-env -p /nix/var/nix/profiles/system --set {OLD} && {OLD}/bin/switch-to-configuration switch"
    )
    arm = dog.arm_command()
    assert arm.startswith("mkdir -p /run/nerv-rollback && rm -f /run/nerv-rollback/abc.confirmed && systemd-run")
    assert "--unit=nerv-rollback-abc" in arm and "/bin/sh -c 'n=0;" in arm
    assert dog.disarm_command() == (
        "touch /run/nerv-rollback/abc.confirmed && { systemctl stop nerv-rollback-abc.service 2>/dev/null; true; }"
    )


def test_the_darwin_watchdog_is_a_background_shell():
    dog = mr.Watchdog("darwin", "switch", OLD, 30, 600, ident="abc")
    assert dog.script().endswith(f"--set {OLD} && {OLD}/activate")
    arm = dog.arm_command()
    assert "systemd-run" not in arm and "|| exit 1; nohup /bin/sh -c" in arm
    assert arm.endswith("& echo $! > /run/nerv-rollback/abc.pid")
    assert "kill $(cat /run/nerv-rollback/abc.pid)" in dog.disarm_command()


def test_a_test_deploy_is_undone_without_touching_the_profile():
    assert mr.undo_command("nixos", "test", OLD) == f"{OLD}/bin/switch-to-configuration test"


def test_exit_codes_are_read_from_the_marker():
    assert mr.parse_exit("all good\n\nnerv-exit:0\n") == (0, "all good")
    assert mr.parse_exit("\nnerv-exit:3\n") == (3, "")
    assert mr.parse_exit("no marker") == (None, "no marker")
    assert mr.with_exit_code("systemctl --failed") == "sh -c 'systemctl --failed' 2>&1; printf '\\nnerv-exit:%s\\n' $?"


def test_health_rounds_check_the_system_failed_units_and_the_extras(monkeypatch):
    answers = {"readlink -f /run/current-system": (0, NEW), "systemctl --failed --no-legend --plain": (0, ""),
               "curl -f localhost": (7, "connection refused")}  # fmt: skip

    def fake(target, known_hosts, command):
        rc, output = answers[command]
        return {"check": command, "ok": rc == 0, "rc": rc, "output": output}

    monkeypatch.setattr(mr, "run_check", fake)
    checks = mr.health_round(TARGET, "/kh", "nixos", NEW, ["curl -f localhost"])
    expected = [("running system", True), ("failed units", True), ("curl -f localhost", False)]
    assert [(c["check"], c["ok"]) for c in checks] == expected
    assert mr.failing(checks) == "curl -f localhost (exit 7): connection refused"
    answers["systemctl --failed --no-legend --plain"] = (0, "nginx.service loaded failed failed")
    assert not mr.health_round(TARGET, "/kh", "nixos", NEW, [])[1]["ok"], "a listed unit fails the round"
    assert [c["check"] for c in mr.health_round(TARGET, "/kh", "darwin", NEW, [])] == ["running system"]
    assert not mr.health_round(TARGET, "/kh", "darwin", OLD, [])[0]["ok"], "another system fails the round"


def test_wait_healthy_polls_until_the_deadline(monkeypatch):
    rounds, passing_from = [], [3]

    def round_(*_args):
        rounds.append(1)
        return [{"check": "running system", "ok": len(rounds) >= passing_from[0], "rc": 0, "output": NEW}]

    monkeypatch.setattr(mr, "health_round", round_)
    clock = [0.0]

    def factory(seconds):
        return Deadline(seconds, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))

    health = mr.wait_healthy(TARGET, "/kh", "nixos", NEW, [], 60, deadline_factory=factory)
    assert health.healthy and len(rounds) == 3 and clock[0] == 2 * mr.INTERVAL
    rounds.clear()
    clock[0], passing_from[0] = 0.0, 99
    assert not mr.wait_healthy(TARGET, "/kh", "nixos", NEW, [], 3, deadline_factory=factory).healthy
    assert len(rounds) == 3, "rounds at 0, 2 and 3 s, then the deadline"

"""The deploy engine: a system's options, command lines and checks, and the stages of run() with a stand-in profile -
check mode, nothing to do, a host that does not answer, and what a failure after the activation does (roll back by
the controller, leave it to the watchdog, or say why nothing was rolled back)."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import deploy, nix

OLD = "/nix/store/" + "a" * 32 + "-nixos-system-pi-old"
NEW = "/nix/store/" + "b" * 32 + "-nixos-system-pi-new"
TARGET = Target("pi", "10.0.0.31", 2222, "admin", "/k/id")


def params(**overrides):
    base = {"host": "pi", "platform": "nixos", "flake": "path:/srv/fleet", "action": "switch", "build_on": None,
            "system": None, "rollback_to": None, "rollback": True, "confirm_timeout": 180, "health_timeout": 60,
            "health_checks": [], "failed_units": True, "known_hosts": "/kh", "timeout": 60}  # fmt: skip
    base.update(nixos_rebuild="nixos-rebuild", darwin_rebuild="darwin-rebuild", nix="nix", extra_args=[])
    return {**base, **overrides}


def test_nixos_rebuild_builds_on_the_target_when_asked():
    local = deploy.System(params(extra_args=["--use-substitutes"])).rebuild_argv(TARGET)
    assert local == ["nixos-rebuild", "switch", "--flake", "path:/srv/fleet#pi", "--target-host", "admin@10.0.0.31",
                     "--use-substitutes"]  # fmt: skip
    remote = deploy.System(params(build_on="target")).rebuild_argv(TARGET)
    assert remote[-2:] == ["--build-host", "admin@10.0.0.31"]


def test_darwin_rebuild_runs_on_the_mac_after_the_copy():
    source = "/nix/store/" + "c" * 32 + "-source"
    commands = deploy.System(params(platform="darwin", host="mac")).darwin_commands(TARGET, source, NEW)
    assert commands == [("ssh", [f"darwin-rebuild switch --flake '{source}#mac'"])], "built on the Mac by default"
    built = deploy.System(params(platform="darwin", host="mac", build_on="local")).darwin_commands(TARGET, source, NEW)
    assert built[0][1][-2:] == ["--no-link", "path:/srv/fleet#darwinConfigurations.mac.system"]
    assert built[1][1][-3:] == ["--to", "ssh-ng://admin@10.0.0.31", NEW]


def test_step_names():
    assert deploy.step_name("local", ["nixos-rebuild", "switch", "--flake", "x"]) == "nixos-rebuild switch"
    archive = ["nix", *nix.NIX_FEATURES, "flake", "archive", "--to", "u", "r"]
    assert deploy.step_name("local", archive) == "nix flake archive"
    assert deploy.step_name("local", ["nix", *nix.NIX_FEATURES, "copy", "--to", "u", NEW]) == "nix copy"
    assert deploy.step_name("ssh", ["darwin-rebuild switch --flake x#mac"]) == "darwin-rebuild switch"
    assert deploy.step_name("ssh", [f"{OLD}/activate"]) == "activate"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"host": "Pi_1"}, "is not a DNS label"),
        ({"platform": "darwin", "action": "test"}, "darwin-rebuild deploys with action=switch"),
        ({"system": "/tmp/x"}, "is not a store path"),
        ({"rollback_to": "yesterday"}, "is not a system store path"),
        ({"confirm_timeout": 60}, r"confirm_timeout \(60 s\) must exceed health_timeout \(60 s\)"),
    ],
)
def test_bad_options_are_refused(overrides, message):
    with pytest.raises(HostError, match=message):
        deploy.System(params(**overrides)).check()


def test_without_rollback_the_timeouts_are_free():
    deploy.System(params(rollback=False, confirm_timeout=1)).check()
    deploy.System(params(action="boot", confirm_timeout=1)).check()
    deploy.System(params(rollback_to=OLD, confirm_timeout=1)).check()


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({}, ["running system", "failed units", "curl -f localhost"]),
        ({"failed_units": False}, ["running system", "curl -f localhost"]),
        ({"platform": "darwin"}, ["running system", "curl -f localhost"]),
    ],
    ids=["nixos", "failed-units-left-out", "darwin-has-no-systemd"],
)
def test_the_health_checks_of_a_system(overrides, names):
    profile = deploy.System(params(health_checks=["curl -f localhost"], **overrides))
    assert [c.name for c in profile.checks()] == names and profile.watchdog(OLD) is not None


def test_a_boot_or_an_undo_is_checked_by_reading_what_runs():
    for profile in (deploy.System(params(action="boot")), deploy.System(params(rollback_to=OLD))):
        assert profile.checks() is None and profile.watchdog(OLD) is None and not profile.recovers


# --- the stages, with a stand-in profile ---------------------------------------------------------------------------


class Module:
    def __init__(self, params, check_mode=False):
        self.params, self.check_mode, self.warnings = params, check_mode, []

    def warn(self, text):
        self.warnings.append(text)


class Host:
    """What the stand-in profile's host runs and does: runs (None: a first activation; Unreachable: no answer)."""

    def __init__(self):
        self.runs, self.after_switch, self.activated, self.rolled_back = OLD, NEW, [], []
        self.switch_fails = self.rollback_fails = False


class Profile:
    noun, each, recovers = "generation", True, True

    def __init__(self, p):
        self.p, self.host = p, p["_host"]
        self.label, self.what, self.log_name = "alice@pi", "a switch of alice on pi", "home.log"

    def check(self):
        pass

    def result(self):
        return {}

    def given(self):
        return None

    def running(self, _target):
        if isinstance(self.host.runs, Exception):
            raise self.host.runs
        return self.host.runs

    def wanted(self):
        return NEW

    def watchdog(self, _before):
        return None

    def activate(self, _target, want, _log_file):
        self.host.activated.append(want)
        self.host.runs = self.host.after_switch
        if self.host.switch_fails:
            raise HostError("the switch failed (exit 1)", tail=["error: builder failed"])
        return {"argv": ["switch"]}

    def checks(self):
        return []

    def differs(self, now, want):
        return f"the profile points at {now}, not {want}"

    def roll_back(self, _target, before, _log_file):
        if self.host.rollback_fails:
            raise HostError("activate of pi failed (exit 1)")
        self.host.rolled_back.append(before)
        self.host.runs = before
        return ["activate"]


@pytest.fixture
def host(monkeypatch, tmp_path):
    monkeypatch.setattr(deploy, "require_pinned", lambda known_hosts, target: None)
    made = Host()
    made.p = {"host": "pi", "address": "10.0.0.31", "port": 22, "user": "alice", "identity_file": None,
              "known_hosts": "/kh", "log_file": str(tmp_path / "home.log"), "rollback": True, "health_timeout": 0,
              "confirm_timeout": 10, "_host": made}  # fmt: skip
    return made


def run(host, check_mode=False, **values):
    module = Module({**host.p, **values}, check_mode)
    return deploy.run(module, Profile), module


def failure(host, **values):
    with pytest.raises(HostError) as raised:
        run(host, **values)
    return str(raised.value), raised.value.details


def test_check_mode_and_an_up_to_date_host_change_nothing(host):
    result, _module = run(host, check_mode=True)
    assert result["changed"] and result["diff"] == {"before": f"{OLD}\n", "after": f"{NEW}\n"}
    assert host.activated == []
    host.runs = NEW
    result, _module = run(host)
    assert not result["changed"] and host.activated == []


def test_a_host_that_does_not_answer_is_planned_in_check_mode(host):
    host.runs = Unreachable("cannot read alice's profile: Connection refused")
    result, module = run(host, check_mode=True)
    assert result["changed"] and result["before"] is None and "Check mode plans a switch of alice" in module.warnings[0]


def test_a_deploy_switches_and_checks(host):
    result, _module = run(host)
    assert result["deployed"] and result["changed"] and host.activated == [NEW] and result["argv"] == ["switch"]


def test_a_switch_that_leaves_another_generation_is_rolled_back_by_the_controller(host):
    host.after_switch = "/nix/store/" + "c" * 32 + "-other"
    message, details = failure(host)
    assert message == (
        f"alice@pi was rolled back to the previous generation {OLD} by the controller: "
        f"the profile points at {host.after_switch}, not {NEW}"
    )
    assert details["rolled_back"] and details["rolled_back_by"] == "controller" and host.rolled_back == [OLD]


def test_a_rollback_that_fails_says_so(host):
    host.switch_fails = host.rollback_fails = True
    message, details = failure(host)
    assert "rolling back by the controller failed: activate of pi failed (exit 1)" in message
    assert not details["rolled_back"] and details["tail"] == ["error: builder failed"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({"runs": None}, "this was the first activation: there is no previous generation to roll back to"),
        ({"rollback": False}, f"rollback is off: alice@pi is left at {NEW}"),
        ({"after_switch": OLD}, f"the switch failed (exit 1); alice@pi still runs {OLD}: nothing to roll back"),
    ],
    ids=["first-activation", "rollback-off", "nothing-changed"],
)
def test_nothing_is_rolled_back_when_there_is_nothing_to_or_it_is_off(host, setup, message):
    host.switch_fails = True
    for name, value in setup.items():
        if name == "rollback":
            host.p["rollback"] = value
        else:
            setattr(host, name, value)
    text, details = failure(host)
    assert message in text and not details.get("rolled_back") and host.rolled_back == []

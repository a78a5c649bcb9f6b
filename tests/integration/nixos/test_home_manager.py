"""nerv.homelab.home_manager against a real sshd host in a network namespace where the non-root user alice logs in,
with the real `nix eval` of a flake without inputs on the controller, the real `nix flake archive --to ssh://` to
the host, and a recording fake home-manager on the host that builds the generation with the real nix (through a
nix daemon) and runs its activate script."""

from __future__ import annotations

from pathlib import Path

import pytest

from .._ansible import AnsibleCli
from .._home import HomeFleet
from .._netns import keygen
from .._skips import require_netns

ADDRESS = "10.77.3.31"
HEALTHY = "grep -qx 'version=[0-9]*' ~/.config/app.conf"


@pytest.fixture
def host(tmp_path):
    require_netns()
    made = HomeFleet(tmp_path, {"mini1": ADDRESS})
    try:
        yield made
    finally:
        made.close()


def switch(host, check=False, **overrides):
    options = {
        "host": "mini1",
        "user": "alice",
        "flake": str(host.flake),
        "address": ADDRESS,
        "identity_file": str(host.client_key),
        "known_hosts": str(host.known_hosts),
        "log_file": str(host.tmp / "home.log"),
        "health_checks": [HEALTHY],
        "health_timeout": 5,
        **overrides,
    }
    play = [{"name": "h", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "home", "nerv.homelab.home_manager": options}]}]  # fmt: skip
    result = AnsibleCli(host.tmp, wrapper=host.lan.command()).playbook(play, "--diff", check=check)
    return result, result.task("home")


def test_switches_once_then_only_when_the_home_changes(host):
    checked, planned = switch(host, check=True)
    assert checked.rc == 0, checked.describe()
    assert planned["changed"] and planned["before"] is None and planned["profile"] is None, planned
    assert (
        planned["after"].endswith("-home-manager-generation") and host.runs() == [] and host.generation("mini1") is None
    )

    first, outcome = switch(host)
    assert first.rc == 0 and outcome["changed"], first.describe()
    one = outcome["after"]
    assert host.generation("mini1") == one and host.managed_file("mini1") == "version=1"
    (run,) = host.runs()
    source = outcome["copy"]["source"]
    assert run == {
        "argv": ["switch", "--flake", f"{source}#alice@mini1"],
        "user": "alice",
        "home": str(host.home("mini1")),
    }
    assert outcome["argv"] == ["home-manager", "switch", "--flake", f"{source}#alice@mini1"]
    assert outcome["copy"]["argv"][-3:] == ["--to", f"ssh://alice@{ADDRESS}", f"path:{host.flake}"]
    assert (
        source.endswith("-source") and Path(source, "flake.nix").read_text() == (host.flake / "flake.nix").read_text()
    )
    assert [(h["check"], h["ok"]) for h in outcome["health"]] == [("true", True), (HEALTHY, True)]
    assert outcome["profile"] is None and not outcome["rolled_back"]

    again, same = switch(host)
    assert again.rc == 0 and not same["changed"] and same["before"] == one, again.describe()
    assert same["profile"] == str(host.profile("mini1")) and len(host.runs()) == 1

    host.version("2")
    checked, planned = switch(host, check=True)
    assert checked.rc == 0 and planned["changed"] and planned["before"] == one, checked.describe()
    assert host.generation("mini1") == one and len(host.runs()) == 1, "check mode changes nothing"
    third, outcome = switch(host)
    assert third.rc == 0 and outcome["changed"] and outcome["before"] == one, third.describe()
    assert host.generation("mini1") == outcome["after"] != one and host.managed_file("mini1") == "version=2"


def test_a_failing_health_check_rolls_back_to_the_previous_generation(host):
    result, first = switch(host)
    assert result.rc == 0, result.describe()
    host.version("broken")
    result, failed = switch(host)
    assert result.rc != 0 and failed["rolled_back"], result.describe()
    assert f"rolled back to the previous generation {first['after']}" in failed["msg"], failed["msg"]
    assert f"health check {HEALTHY!r} failed (exit 1)" in failed["msg"]
    assert host.generation("mini1") == first["after"] and host.managed_file("mini1") == "version=1"
    assert failed["health"][-1]["check"] == HEALTHY and not failed["health"][-1]["ok"]
    assert "rollback" in (host.tmp / "home.log").read_text()

    result, kept = switch(host, rollback=False)
    assert result.rc != 0 and not kept["rolled_back"] and "rollback is off" in kept["msg"], result.describe()
    assert host.generation("mini1") == failed["after"] and host.managed_file("mini1") == "version=broken"


def test_a_failing_first_activation_says_there_is_nothing_to_roll_back_to(host):
    host.version("broken")
    result, failed = switch(host)
    assert result.rc != 0 and not failed["rolled_back"], result.describe()
    assert "first activation: there is no previous generation" in failed["msg"], failed["msg"]


def test_a_failing_switch_reports_its_output_and_leaves_the_profile(host):
    result, first = switch(host)
    assert result.rc == 0, result.describe()
    host.version("2")
    wrapper = host.shared / "local-bin" / "home-manager"
    wrapper.write_text(wrapper.read_text().replace("export ", "export FAKE_HOME_MANAGER_FAIL=1 ", 1))
    result, failed = switch(host)
    assert result.rc != 0 and "home-manager switch of mini1 failed (exit 1)" in failed["msg"], result.describe()
    assert "nothing to roll back" in failed["msg"] and any("builder for" in line for line in failed["tail"])
    assert host.generation("mini1") == first["after"]


def test_a_host_presenting_another_key_is_not_touched(host):
    host.pin(keygen(host.tmp / "other_key"))
    result, refused = switch(host)
    assert result.rc != 0 and "does not match the pinned one" in refused["msg"], refused["msg"]
    assert host.runs() == [] and host.generation("mini1") is None


def test_a_pre_evaluated_activation_is_not_evaluated_again(host):
    result, refused = switch(host, activation="/nix/store/not-a-path")
    assert result.rc != 0 and "is not a store path" in refused["msg"], refused["msg"]
    result, first = switch(host)
    assert result.rc == 0, result.describe()
    host.version("2")  # the flake changed, but the activation given is the running one: nothing to do
    result, same = switch(host, activation=first["after"])
    assert result.rc == 0 and not same["changed"] and len(host.runs()) == 1, result.describe()


def test_a_home_the_flake_does_not_have_is_a_clear_error(host):
    result, refused = switch(host, configuration="alice@mini9")
    assert result.rc != 0 and 'cannot evaluate homeConfigurations."alice@mini9"' in refused["msg"], refused["msg"]
    assert host.runs() == []

"""home_manager's pure parts: refusals, the profile Home Manager uses, health checks with retries, what a failed
switch does."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common import errors, ssh
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import home

OLD = "/nix/store/" + "a" * 32 + "-home-manager-generation"
NEW = "/nix/store/" + "b" * 32 + "-home-manager-generation"
TARGET = ssh.Target("mini1", "10.0.0.31", user="alice")


def params(tmp_path, **values):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("10.0.0.31 ssh-ed25519 AAAA\n")
    base = {"host": "mini1", "user": "alice", "configuration": None, "activation": None, "health_timeout": 60}
    return {**base, "known_hosts": str(known_hosts), "rollback": True, "timeout": 60, "log_file": "x", **values}


def test_the_configuration_defaults_to_user_at_host(tmp_path):
    assert home.check_options(params(tmp_path)) == "alice@mini1"
    assert home.check_options(params(tmp_path, configuration="alice")) == "alice"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"host": "Mini_1"}, "host 'Mini_1' is not a DNS label"),
        ({"user": "Alice Smith"}, "is not a login name"),
        ({"user": "-alice"}, "is not a login name"),
        ({"configuration": 'a"; builtins.abort "x'}, "cannot be a homeConfigurations attribute"),
        ({"configuration": "alice@${x}"}, "cannot be a homeConfigurations attribute"),
        ({"activation": "/nix/store/short"}, "is not a store path"),
        ({"health_timeout": 0}, "must be a positive number"),
    ],
)
def test_options_that_cannot_name_one_home_are_refused(tmp_path, values, message):
    with pytest.raises(errors.HostError, match=message):
        home.check_options(params(tmp_path, **values))


def test_a_missing_known_hosts_is_refused(tmp_path):
    with pytest.raises(errors.HostError, match="must be pinned first"):
        home.check_options(params(tmp_path, known_hosts=str(tmp_path / "none")))


def test_the_activation_package_is_a_quoted_attribute_of_a_path_flake():
    assert home.activation_attr("/srv/fleet", "alice@mini1") == (
        'path:/srv/fleet#homeConfigurations."alice@mini1".activationPackage.outPath'
    )


def test_what_runs_where_is_spelled_out():
    p = {"nix": "nix", "home_manager": "home-manager", "extra_args": ["-b", "backup"]}
    argv = home.archive_argv("nix", "/srv/fleet", TARGET)
    assert argv[-5:] == ["archive", "--json", "--to", "ssh://alice@10.0.0.31", "path:/srv/fleet"]
    assert home.switch_command(p, "/nix/store/x-source", "alice@mini1") == [
        "home-manager", "switch", "--flake", "/nix/store/x-source#alice@mini1", "-b", "backup",
    ]  # fmt: skip


def test_nix_ssh_options_pin_the_host_key(tmp_path):
    options = home.nix_sshopts(ssh.Target("mini1", "10.0.0.31", 2222, "alice", "/k"), "/kh")["NIX_SSHOPTS"]
    assert "UserKnownHostsFile=/kh" in options and "StrictHostKeyChecking=yes" in options
    assert options.endswith("-i /k -p 2222") and "alice@" not in options


def test_the_profile_line_is_parsed():
    assert home.parse_profile("") == (None, None)
    assert home.parse_profile(f"/home/alice/.local/state/nix/profiles/home-manager {OLD}\n") == (
        "/home/alice/.local/state/nix/profiles/home-manager",
        OLD,
    )
    with pytest.raises(errors.HostError, match="not at a store path"):
        home.parse_profile("/home/alice/p /home/alice/elsewhere")


def profile_of(tmp_path, env: dict) -> tuple:
    """PROFILE_SCRIPT run by the real sh, as on the host, in a home under tmp_path."""
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "USER": "alice"}
    base["NIX_STATE_DIR"] = str(tmp_path / "nix")
    done = subprocess.run(
        ["sh", "-c", home.PROFILE_SCRIPT], env={**base, **env}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return home.parse_profile(done.stdout)


def link(path, target) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def test_the_profile_is_found_where_home_manager_puts_it(tmp_path):
    assert profile_of(tmp_path, {}) == (None, None), "no profile yet: a first activation"
    per_user = tmp_path / "nix" / "profiles" / "per-user" / "alice" / "home-manager"
    link(per_user.parent / "home-manager-1-link", OLD)
    link(per_user, "home-manager-1-link")
    assert profile_of(tmp_path, {}) == (str(per_user), OLD), "Nix before 2.14: the per-user profile"
    state = tmp_path / "home" / ".local" / "state" / "nix" / "profiles" / "home-manager"
    link(state, NEW)
    assert profile_of(tmp_path, {}) == (str(state), NEW), "Nix 2.14 and later: the user's state directory first"
    xdg, elsewhere = tmp_path / "xdg", {"NIX_STATE_DIR": str(tmp_path / "none")}
    old = xdg / "home-manager" / "profiles" / "home-manager"
    link(old, OLD)
    assert profile_of(tmp_path, {"XDG_STATE_HOME": str(xdg), **elsewhere}) == (str(old), OLD), "before migration"
    link(xdg / "nix" / "profiles" / "home-manager", NEW)
    assert profile_of(tmp_path, {"XDG_STATE_HOME": str(xdg), **elsewhere})[1] == NEW, "XDG_STATE_HOME is honoured"


def clock():
    """A fake clock and sleep: a wait of minutes in no time."""
    now = [0.0]
    return (lambda: now[0]), (lambda seconds: now.__setitem__(0, now[0] + seconds))


def test_a_health_check_is_retried_until_it_passes(monkeypatch):
    answers = iter([{"rc": 0, "output": ""}, {"rc": 1, "output": "inactive"}, {"rc": 0, "output": "active"}])
    monkeypatch.setattr(home, "probe", lambda target, known_hosts, command, left: next(answers))
    now, sleep = clock()
    outcomes = home.health(TARGET, "/kh", ["systemctl --user is-active x"], 60, home.Deadline(60, now, sleep))
    assert [(o["check"], o["ok"], o["attempts"]) for o in outcomes] == [
        ("true", True, 1), ("systemctl --user is-active x", True, 2),
    ]  # fmt: skip


def test_the_first_check_that_never_passes_ends_the_health_checks(monkeypatch):
    ran = []

    def probe(target, known_hosts, command, left):
        ran.append(command)
        return {"rc": 0 if command != "bad" else 3, "output": "broken" if command == "bad" else ""}

    monkeypatch.setattr(home, "probe", probe)
    now, sleep = clock()
    outcomes = home.health(TARGET, "/kh", ["good", "bad", "never"], 10, home.Deadline(10, now, sleep))
    assert [(o["check"], o["ok"]) for o in outcomes] == [("true", True), ("good", True), ("bad", False)]
    assert outcomes[-1]["rc"] == 3 and outcomes[-1]["output"] == "broken" and "never" not in ran
    assert outcomes[-1]["attempts"] == 6, "retried every 2 s for 10 s"


@pytest.fixture
def host_state(monkeypatch):
    """The profile as the fake host has it, and the generations activate() ran."""
    state = {"profile": NEW, "activated": [], "rc": 0}
    monkeypatch.setattr(home, "running_generation", lambda target, known_hosts: ("/p", state["profile"]))

    def activate(target, known_hosts, generation, log_file, timeout):
        state["activated"].append(generation)
        if state["rc"] == 0:
            state["profile"] = generation
        return state["rc"]

    monkeypatch.setattr(home, "activate", activate)
    return state


def undo(tmp_path, before, **values):
    with pytest.raises(errors.HostError) as raised:
        home.undo(params(tmp_path, **values), TARGET, {"before": before, "log_file": "/log"}, "check failed")
    return str(raised.value), raised.value.details


def test_a_failed_switch_rolls_back_to_the_previous_generation(tmp_path, host_state):
    message, details = undo(tmp_path, OLD)
    assert message == f"check failed; rolled back to the previous generation {OLD}" and details["rolled_back"]
    assert host_state["activated"] == [OLD] and host_state["profile"] == OLD


def test_a_rollback_that_does_not_bring_the_profile_back_says_so(tmp_path, host_state):
    host_state["rc"] = 1
    message, details = undo(tmp_path, OLD)
    assert "rolling back to" in message and "failed (exit 1)" in message and "rolled_back" not in details


@pytest.mark.parametrize(
    ("before", "values", "message"),
    [
        (None, {}, "this was the first activation: there is no previous generation"),
        (OLD, {"rollback": False}, f"rollback is off: the profile stays at {NEW}"),
        (NEW, {}, "the profile still points at"),
    ],
)
def test_no_rollback_when_there_is_nothing_to_roll_back_or_it_is_off(tmp_path, host_state, before, values, message):
    text, details = undo(tmp_path, before, **values)
    assert message in text and not details.get("rolled_back") and host_state["activated"] == []

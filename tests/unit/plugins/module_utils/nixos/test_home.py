"""The Home Manager profile's pure parts: refusals, the switch command, the profile Home Manager uses. The engine
that runs it (health checks, rollback) is tested in test_deploy.py and test_health.py."""

from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common import errors
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import home

OLD = "/nix/store/" + "a" * 32 + "-home-manager-generation"
NEW = "/nix/store/" + "b" * 32 + "-home-manager-generation"


def params(tmp_path, **values):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("10.0.0.31 ssh-ed25519 AAAA\n")
    base = {"host": "mini1", "user": "alice", "configuration": None, "activation": None, "health_timeout": 60}
    return {**base, "known_hosts": str(known_hosts), "rollback": True, "timeout": 60, "log_file": "x", **values}


def test_the_configuration_defaults_to_user_at_host(tmp_path):
    assert home.Home(params(tmp_path)).configuration == "alice@mini1"
    assert home.Home(params(tmp_path, configuration="alice")).configuration == "alice"


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
        home.Home(params(tmp_path, **values)).check()


def test_the_switch_runs_the_copied_source_on_the_host():
    p = {"nix": "nix", "home_manager": "home-manager", "extra_args": ["-b", "backup"]}
    assert home.switch_command(p, "/nix/store/x-source", "alice@mini1") == [
        "home-manager", "switch", "--flake", "/nix/store/x-source#alice@mini1", "-b", "backup",
    ]  # fmt: skip


def test_a_home_is_checked_each_check_on_its_own_after_a_login(tmp_path):
    profile = home.Home(params(tmp_path, health_checks=["systemctl --user is-active x"]))
    assert [c.name for c in profile.checks()] == ["true", "systemctl --user is-active x"] and profile.each
    assert profile.watchdog(OLD) is None, "a home's switch does not cut the network"


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

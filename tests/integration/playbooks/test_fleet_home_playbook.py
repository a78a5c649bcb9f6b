"""playbooks/fleet_home.yml on a two-host fleet from the nerv.homelab.flake inventory: each host is a real sshd in a
network namespace where alice logs in, her homes come from the flake's nerv.homes output, the flake is input-less
(its homes' generations are plain derivations the real nix evaluates and builds), and home-manager on the hosts is
the recording fake that builds with the real nix and runs the generation's activate script.

Checked: every home is evaluated before any is switched, and one that does not evaluate stops the run before any
change; the hosts are switched one at a time and a second run changes nothing; a home whose health check fails is
rolled back and the hosts after it are not touched; check mode changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .._ansible import AnsibleCli
from .._home import HomeFleet
from .._skips import require_netns

REPO = Path(__file__).resolve().parents[3]
HOSTS = {"mini1": "10.77.4.31", "mini2": "10.77.4.32"}
HEALTHY = "grep -qx 'version=[0-9]*' ~/.config/app.conf"


@pytest.fixture
def fleet(tmp_path):
    require_netns()
    made = HomeFleet(tmp_path, HOSTS, extra_outputs='nerv.homes = { mini1 = [ "alice" ]; mini2 = [ "alice" ]; };')
    (made.flake / "fleet.flake.yml").write_text("plugin: nerv.homelab.flake\n")
    try:
        yield made
    finally:
        made.close()


def run(fleet, check=False, **extra):
    variables = {
        "fleet_home_known_hosts": str(fleet.known_hosts),
        "fleet_home_identity_file": str(fleet.client_key),
        "fleet_home_health_checks": [HEALTHY],
        "fleet_home_health_timeout": 4,
        **extra,
    }
    cli = AnsibleCli(fleet.tmp, wrapper=fleet.lan.command())
    return cli.playbook(REPO / "playbooks" / "fleet_home.yml", inventory=fleet.flake / "fleet.flake.yml",
                        extra_vars=variables, check=check)  # fmt: skip


def switched(fleet) -> list:
    """The hosts home-manager switched on, in order (each host's home directory is its own)."""
    names = {str(fleet.home(name)): name for name in HOSTS}
    return [names[entry["home"]] for entry in fleet.runs()]


def test_homes_are_switched_one_host_at_a_time_then_left_alone(fleet):
    checked = run(fleet, check=True)
    assert checked.rc == 0, checked.describe()
    assert fleet.runs() == [] and fleet.generation("mini1") is None, "check mode changed something"
    plans = checked.tasks("Switch the home alice@mini1") + checked.tasks("Switch the home alice@mini2")
    assert [list(p.values())[0]["changed"] for p in plans] == [True, True]

    first = run(fleet)
    assert first.rc == 0, first.describe()
    assert switched(fleet) == ["mini1", "mini2"]
    assert fleet.managed_file("mini1") == fleet.managed_file("mini2") == "version=1"
    names = first.task_names()
    evaluated = [i for i, n in enumerate(names) if n == "Evaluate every selected home"]
    switches = [i for i, n in enumerate(names) if n.startswith("Switch the home ")]
    assert len(evaluated) == 1 and evaluated[0] < min(switches), "every home is evaluated before any switch"

    second = run(fleet)
    assert second.rc == 0, second.describe()
    assert sum(second.stats(name)["changed"] for name in HOSTS) == 0 and len(fleet.runs()) == 2


def test_a_home_that_does_not_evaluate_stops_the_run_before_any_change(fleet):
    assert run(fleet).rc == 0
    one = fleet.generation("mini1")
    fleet.version("2", "mini1")
    fleet.version('${throw "broken-canary"}', "mini2")
    failed = run(fleet)
    assert failed.rc != 0 and "broken-canary" in failed.output, failed.describe()
    assert fleet.generation("mini1") == one and len(fleet.runs()) == 2, "mini1 was switched though mini2 failed"
    assert not [n for n in failed.task_names() if n.startswith("Switch the home ")]


def test_a_failing_home_is_rolled_back_and_the_hosts_after_it_are_left(fleet):
    assert run(fleet).rc == 0
    one = {name: fleet.generation(name) for name in HOSTS}
    fleet.version("broken", "mini1")
    fleet.version("2", "mini2")
    failed = run(fleet)
    assert failed.rc != 0, failed.describe()
    (outcome,) = failed.tasks("Switch the home alice@mini1")
    assert outcome["mini1"]["rolled_back"] and "rolled back to the previous generation" in outcome["mini1"]["msg"]
    assert fleet.generation("mini1") == one["mini1"] and fleet.managed_file("mini1") == "version=1"
    assert fleet.generation("mini2") == one["mini2"] and switched(fleet) == ["mini1", "mini2", "mini1"]
    assert failed.tasks("Switch the home alice@mini2") == [], "the run went on after a failed host"


def test_users_that_are_not_login_names_are_refused(fleet):
    refused = run(fleet, fleet_home_users={"mini1": ["Alice Smith"]})
    assert refused.rc != 0 and "must be a list of login names" in refused.output, refused.describe()
    assert fleet.runs() == []

"""The health checks after a deploy: exit codes read from the marker, the named predicates, rounds until all pass
(a system) or each check retried on its own (a home), and what a host that does not answer gives."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import health

OLD = "/nix/store/" + "a" * 32 + "-nixos-system-pi-old"
NEW = "/nix/store/" + "b" * 32 + "-nixos-system-pi-new"
TARGET = Target("pi", "10.0.0.31", 2222, "admin", "/k/id")
SYSTEM = [health.PREDICATES["running system"], health.PREDICATES["failed units"]]


def test_exit_codes_are_read_from_the_marker():
    assert health.parse_exit("all good\n\nnerv-exit:0\n") == (0, "all good")
    assert health.parse_exit("\nnerv-exit:3\n") == (3, "")
    assert health.parse_exit("no marker") == (None, "no marker")
    assert health.with_exit_code("systemctl --failed") == (
        "sh -c 'systemctl --failed' 2>&1; printf '\\nnerv-exit:%s\\n' $?"
    )


@pytest.fixture
def host(monkeypatch):
    """The answers of a fake host (command -> (rc, output), or an exception), and the commands it ran."""
    state = {"answers": {}, "ran": []}

    def run_check(target, known_hosts, command, timeout=120):
        state["ran"].append(command)
        answer = state["answers"][command]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        return {"rc": answer[0], "output": answer[1]}

    monkeypatch.setattr(health, "run_check", run_check)
    return state


def clock():
    now = [0.0]

    def factory(seconds):
        return Deadline(seconds, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))

    return now, factory


def test_a_round_checks_the_system_the_failed_units_and_the_extras(host):
    host["answers"] = {health.RUNNING: (0, NEW), "systemctl --failed --no-legend --plain": (0, ""),
                       "curl -f localhost": (7, "connection refused")}  # fmt: skip
    now, factory = clock()
    checks = SYSTEM + health.commands(["curl -f localhost"])
    found = health.wait_healthy(TARGET, "/kh", checks, NEW, 3, deadline_factory=factory)
    assert [(c["check"], c["ok"]) for c in found.checks] == [
        ("running system", True), ("failed units", True), ("curl -f localhost", False),
    ]  # fmt: skip
    assert not found.healthy
    assert health.failing(found.checks) == "health check 'curl -f localhost' failed (exit 7): connection refused"
    assert found.checks[-1]["attempts"] == 3, "rounds at 0, 2 and 3 s, then the deadline"


@pytest.mark.parametrize(
    ("answers", "failing"),
    [
        ({health.RUNNING: (0, NEW), "systemctl --failed --no-legend --plain": (0, "nginx.service loaded failed")},
         "health check 'failed units' failed: nginx.service loaded failed"),
        ({health.RUNNING: (0, OLD), "systemctl --failed --no-legend --plain": (0, "")},
         f"health check 'running system' failed: {OLD}"),
    ],
    ids=["a-failed-unit", "another-system"],
)  # fmt: skip
def test_the_named_checks_judge_the_output(host, answers, failing):
    host["answers"] = answers
    _now, factory = clock()
    found = health.wait_healthy(TARGET, "/kh", SYSTEM, NEW, 0, deadline_factory=factory)
    assert not found.healthy and health.failing(found.checks) == failing


def test_rounds_poll_until_all_pass(host):
    host["answers"] = {health.RUNNING: [(0, OLD), (0, OLD), (0, NEW)]}
    now, factory = clock()
    found = health.wait_healthy(TARGET, "/kh", SYSTEM[:1], NEW, 60, deadline_factory=factory)
    assert found.healthy and now[0] == 2 * health.INTERVAL and found.checks[0]["attempts"] == 3


def test_a_host_that_does_not_answer_ends_the_round(host):
    host["answers"] = {health.RUNNING: Unreachable("pi did not answer"), "true": (0, "")}
    _now, factory = clock()
    found = health.wait_healthy(TARGET, "/kh", SYSTEM, NEW, 0, deadline_factory=factory)
    assert len(found.checks) == 1
    assert health.failing(found.checks) == "health check 'running system' did not answer: pi did not answer"


def test_each_check_is_retried_on_its_own_until_it_passes(host):
    host["answers"] = {"true": (0, ""), "systemctl --user is-active x": [(1, "inactive"), (0, "active")]}
    _now, factory = clock()
    checks = [health.PREDICATES["login"], *health.commands(["systemctl --user is-active x"])]
    found = health.wait_healthy(TARGET, "/kh", checks, NEW, 60, each=True, deadline_factory=factory)
    assert found.healthy and [(o["check"], o["ok"], o["attempts"]) for o in found.checks] == [
        ("true", True, 1), ("systemctl --user is-active x", True, 2),
    ]  # fmt: skip
    assert host["ran"].count("true") == 1, "a check that passed is not run again"


def test_the_first_check_that_never_passes_ends_the_checks(host):
    host["answers"] = {"true": (0, ""), "good": (0, ""), "bad": (3, "broken"), "never": (0, "")}
    _now, factory = clock()
    checks = [health.PREDICATES["login"], *health.commands(["good", "bad", "never"])]
    found = health.wait_healthy(TARGET, "/kh", checks, NEW, 10, each=True, deadline_factory=factory)
    assert [(o["check"], o["ok"]) for o in found.checks] == [("true", True), ("good", True), ("bad", False)]
    assert found.checks[-1]["rc"] == 3 and found.checks[-1]["output"] == "broken" and "never" not in host["ran"]
    assert found.checks[-1]["attempts"] == 6, "retried every 2 s for 10 s"

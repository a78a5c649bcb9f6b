# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a host is healthy after a deploy: checks run from the controller, each over a new SSH connection (a new
login is itself part of the answer), polled until they pass or the time is up.

A check is a command and a predicate on its outcome, as kubernetes.core's waiter judges a resource by kind: the
named ones are in PREDICATES, the user's commands must exit 0. A failing check is an answer (its exit code comes
back after a marker); only the host not answering over SSH is an error.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target, ssh_run
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline

EXIT_MARK = "nerv-exit:"
OUTPUT_CHARS = 2000
INTERVAL = 2  # seconds between two rounds
# A check started before the deadline may answer after it: an SSH login near the deadline is not a failing check.
CHECK_TIME_MIN = 15
RUNNING = "readlink -f /run/current-system"


def exits_zero(outcome: dict, _want: str) -> bool:
    return outcome["rc"] == 0


@dataclass(frozen=True)
class Check:
    name: str
    command: str
    passes: Callable[[dict, str], bool] = exits_zero


PREDICATES = {
    # the host answers and runs the system deployed (want)
    "running system": Check("running system", RUNNING, lambda o, want: o["rc"] == 0 and o["output"] == want),
    # NixOS: no unit failed; any listed one fails the check
    "failed units": Check(
        "failed units",
        "systemctl --failed --no-legend --plain",
        lambda o, _want: o["rc"] == 0 and not o["output"].strip(),
    ),  # fmt: skip
    # the user can still log in (a home's first check)
    "login": Check("true", "true"),
}


def commands(extra: list) -> list:
    """The user's checks: each command must exit 0."""
    return [Check(command, command) for command in extra]


def with_exit_code(command: str) -> str:
    """command run by sh with its output and exit code on stdout, so that a failing check is an answer, not an
    ssh error; ssh itself failing (the host not answering) stays an error."""
    return f"sh -c {shlex.quote(command)} 2>&1; printf '\\n{EXIT_MARK}%s\\n' $?"


def parse_exit(stdout: str) -> tuple:
    """(exit code, output) from with_exit_code's stdout; (None, stdout) when the marker is missing."""
    head, mark, code = stdout.rstrip("\n").rpartition(f"\n{EXIT_MARK}")
    if not mark or not code.strip().isdigit():
        return None, stdout
    return int(code.strip()), head.strip()[-OUTPUT_CHARS:]


def run_check(target: Target, known_hosts: str, command: str, timeout: float = 120) -> dict:
    """One command over a new SSH connection: {rc, output}; Unreachable when the host does not answer."""
    failure = f"cannot run {command!r} on {target.host}"
    stdout = ssh_run(target, known_hosts, [with_exit_code(command)], failure, timeout=timeout)
    rc, output = parse_exit(stdout)
    return {"rc": rc, "output": output}


@dataclass
class Health:
    healthy: bool
    checks: list  # the last round: {check, ok, rc, output, attempts}


def wait_healthy(target: Target, known_hosts: str, checks: list, want: str, timeout: float, *,
                 each: bool = False, deadline_factory=Deadline) -> Health:  # fmt: skip
    """Rounds of checks until one passes completely or timeout passes; the last round's outcome.

    each (Home Manager's way): a check that passed is not run again and a round stops at its first failing check,
    so each check is retried on its own until it passes; otherwise every round runs every check."""
    deadline, state = deadline_factory(timeout), {"passed": {}, "attempts": Counter()}
    while True:
        health = _round(target, known_hosts, checks, want, deadline, each, state)
        if health.healthy or not deadline.pause(INTERVAL):
            return health


def _round(target, known_hosts, checks, want, deadline, each, state) -> Health:
    results, answered = [], True
    for check in checks:
        if check.name in state["passed"]:
            results.append(state["passed"][check.name])
            continue
        state["attempts"][check.name] += 1
        try:
            outcome = run_check(target, known_hosts, check.command, max(deadline.left(), CHECK_TIME_MIN))
            outcome["ok"] = check.passes(outcome, want)
        except HostError as exc:  # no answer (in time): the check did not pass
            outcome, answered = {"rc": None, "output": exc.message, "ok": False}, not isinstance(exc, Unreachable)
        results.append({"check": check.name, **outcome, "attempts": state["attempts"][check.name]})
        if outcome["ok"] and each:
            state["passed"][check.name] = results[-1]
        if not outcome["ok"] and (each or not answered):
            break
    healthy = len(results) == len(checks) and all(r["ok"] for r in results)
    return Health(healthy, results)


def failing(checks: list) -> str:
    """The failed checks with their output, for the error message."""
    lines = []
    for check in (c for c in checks if not c["ok"]):
        how = "did not answer" if check["rc"] is None else f"failed (exit {check['rc']})" if check["rc"] else "failed"
        lines.append(f"health check {check['check']!r} {how}: {(check['output'] or '').strip() or '(no output)'}")
    return "; ".join(lines)

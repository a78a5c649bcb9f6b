# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A deploy's safety net, as deploy-rs' magic rollback: a watchdog on the host that switches back to the system it
ran unless the controller confirms in time, and the health check whose success is that confirmation.

The watchdog waits for the activation (the running system no longer the old one) before it starts counting, so the
confirmation window does not include the build and the copy, however long those take. Confirming is one file
(<dir>/<id>.confirmed) the watchdog checks before it acts; stopping its unit or process only tidies up.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from dataclasses import dataclass, field

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target, ssh_run
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline

STATE_DIR = "/run/nerv-rollback"
PROFILE = "/nix/var/nix/profiles/system"
EXIT_MARK = "nerv-exit:"
OUTPUT_CHARS = 2000
INTERVAL = 2
# How long after the confirmation window the controller waits for a host that stopped answering to come back.
COME_BACK_GRACE = 60


def undo_command(platform: str, action: str, before: str) -> str:
    """What switches the host back to before: the system profile too after a switch, so the next boot is the old
    system as well; only the running system after a test (which never touched the profile)."""
    q = shlex.quote(before)
    if platform == "darwin":
        return f"nix-env -p {PROFILE} --set {q} && {q}/activate"
    if action == "test":
        return f"{q}/bin/switch-to-configuration test"
    return f"nix-env -p {PROFILE} --set {q} && {q}/bin/switch-to-configuration switch"


@dataclass
class Watchdog:
    platform: str
    action: str
    before: str
    confirm_timeout: int
    # seconds the watchdog waits for the activation to start before giving up on it (the deploy's own timeout)
    activation_limit: int
    ident: str = field(default_factory=lambda: f"{int(time.time() * 1000):x}")

    @property
    def unit(self) -> str:
        return f"nerv-rollback-{self.ident}"

    @property
    def confirmed(self) -> str:
        return f"{STATE_DIR}/{self.ident}.confirmed"

    def script(self) -> str:
        """The watchdog: wait for the activation, give it confirm_timeout seconds, then undo it unless confirmed."""
        before, confirmed = shlex.quote(self.before), shlex.quote(self.confirmed)
        return (
            f'n=0; while [ "$(readlink -f /run/current-system)" = {before} ]; do'
            f" n=$((n + 1)); [ $n -gt {int(self.activation_limit)} ] && exit 0; sleep 1; done;"
            f" sleep {int(self.confirm_timeout)}; [ -e {confirmed} ] && exit 0;"
            f" {undo_command(self.platform, self.action, self.before)}"
        )

    def arm_command(self) -> str:
        """NixOS: a transient systemd service (survives the SSH session and sshd restarts during activation);
        macOS: a nohup'ed background shell, since a launchd job would need a plist written and loaded for one use."""
        prepare = f"mkdir -p {STATE_DIR} && rm -f {shlex.quote(self.confirmed)}"
        script = shlex.quote(self.script())
        if self.platform == "darwin":
            pid = shlex.quote(f"{STATE_DIR}/{self.ident}.pid")
            # not `prepare && nohup ... &`: that would put the whole list in the background, and $! be its shell
            return f"{prepare} || exit 1; nohup /bin/sh -c {script} </dev/null >/dev/null 2>&1 & echo $! > {pid}"
        description = shlex.quote("nerv.homelab magic rollback")
        return (
            f"{prepare} && systemd-run --unit={self.unit} --description={description} --collect --quiet"
            f" /bin/sh -c {script}"
        )

    def disarm_command(self) -> str:
        tidy = (
            f"kill $(cat {STATE_DIR}/{self.ident}.pid) 2>/dev/null"
            if self.platform == "darwin"
            else f"systemctl stop {self.unit}.service 2>/dev/null"
        )
        return f"touch {shlex.quote(self.confirmed)} && {{ {tidy}; true; }}"

    def arm(self, target: Target, known_hosts: str) -> None:
        ssh_run(target, known_hosts, [self.arm_command()], f"cannot arm the rollback watchdog on {target.host}")

    def disarm(self, target: Target, known_hosts: str) -> None:
        ssh_run(target, known_hosts, [self.disarm_command()], f"cannot confirm the deploy on {target.host}")


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


def run_check(target: Target, known_hosts: str, command: str) -> dict:
    """One check over a new SSH connection: {check, ok, rc, output}; Unreachable when the host does not answer."""
    stdout = ssh_run(target, known_hosts, [with_exit_code(command)], f"cannot run {command!r} on {target.host}")
    rc, output = parse_exit(stdout)
    return {"check": command, "ok": rc == 0, "rc": rc, "output": output}


def checks_of(platform: str, extra: list) -> list:
    """The checks of one round: (name, command, judge of the result)."""
    rounds = [("running system", "readlink -f /run/current-system", None)]
    if platform == "nixos":
        # any failed unit fails the deploy: the list must be empty
        rounds.append(("failed units", "systemctl --failed --no-legend --plain", "empty"))
    return rounds + [(command, command, None) for command in extra]


def health_round(target: Target, known_hosts: str, platform: str, want: str, extra: list) -> list:
    """Every check once; the first (the running system) must name want."""
    results = []
    for name, command, judge in checks_of(platform, extra):
        outcome = run_check(target, known_hosts, command)
        if name == "running system":
            outcome["ok"] = outcome["ok"] and outcome["output"] == want
        elif judge == "empty":
            outcome["ok"] = outcome["ok"] and not outcome["output"].strip()
        results.append({**outcome, "check": name})
    return results


@dataclass
class Health:
    healthy: bool
    answered: bool  # False: the last attempt found the host not answering over SSH
    running: str | None  # the system the host ran at the last answer
    checks: list


def wait_healthy(target: Target, known_hosts: str, platform: str, want: str, extra: list, timeout: float,
                 deadline_factory=Deadline) -> Health:  # fmt: skip
    """Rounds of checks until one passes completely or timeout passes; the last round's outcome."""
    deadline = deadline_factory(timeout)
    while True:
        try:
            checks = health_round(target, known_hosts, platform, want, extra)
            health = Health(all(c["ok"] for c in checks), True, checks[0]["output"], checks)
        except Unreachable as exc:
            health = Health(False, False, None, [{"check": "ssh", "ok": False, "rc": None, "output": str(exc)}])
        if health.healthy or not deadline.pause(INTERVAL):
            return health


def wait_running(target: Target, known_hosts: str, system: str, timeout: float, deadline_factory=Deadline):
    """Poll until the host answers and runs system; the system it last ran (None: never answered)."""
    deadline, seen = deadline_factory(timeout), None
    while True:
        with contextlib.suppress(Unreachable):
            seen = run_check(target, known_hosts, "readlink -f /run/current-system")["output"]
        if seen == system or not deadline.pause(INTERVAL):
            return seen


def failing(checks: list) -> str:
    """The failed checks with their output, for the error message."""
    lines = []
    for check in checks:
        if not check["ok"]:
            output = (check["output"] or "").strip() or "(no output)"
            lines.append(f"{check['check']} (exit {check['rc']}): {output}")
    return "; ".join(lines)

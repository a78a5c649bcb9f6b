# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A deploy's safety net, as deploy-rs' magic rollback: a watchdog on the host that switches back to the system it
ran unless the controller confirms in time (after the health checks passed).

The watchdog waits for the activation (the running system no longer the old one) before it starts counting, so the
confirmation window does not include the build and the copy, however long those take. Confirming is one file
(<dir>/<id>.confirmed) the watchdog checks before it acts; stopping its unit or process only tidies up.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import Target, ssh_run
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline

STATE_DIR = "/run/nerv-rollback"
PROFILE = "/nix/var/nix/profiles/system"
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


def wait_running(read: Callable[[], str | None], wanted: str | None, timeout: float, deadline_factory=Deadline):
    """Poll read() (what the host runs; Unreachable while it does not answer) until it gives wanted; what it last
    gave (None: never answered)."""
    deadline, seen = deadline_factory(timeout), None
    while True:
        with contextlib.suppress(Unreachable):
            seen = read()
        if seen == wanted or not deadline.pause(INTERVAL):
            return seen

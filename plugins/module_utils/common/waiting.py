# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting with a deadline: the one way every poll loop of the collection (Proxmox tasks, locks and guest agents,
installer VMs, SSH coming back, Kubernetes nodes and Flux objects) measures and spends its time.

The clock and the sleep are parameters so that unit tests can run a wait of minutes in no time.
"""

from __future__ import annotations

import os
import time

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError


class Deadline:
    """A moment `seconds` from now."""

    def __init__(self, seconds: float, clock=time.monotonic, sleep=time.sleep):
        self._clock, self._sleep = clock, sleep
        self._end = clock() + seconds

    def left(self) -> float:
        """Seconds until the deadline; 0 or less once it has passed."""
        return self._end - self._clock()

    @property
    def passed(self) -> bool:
        return self.left() <= 0

    def pause(self, delay: float) -> bool:
        """Sleep `delay` seconds but never past the deadline; False, without sleeping, once it has passed."""
        left = self.left()
        if left <= 0:
            return False
        self._sleep(min(delay, left))
        return True


class Turn:
    """One call's share of a wait that a task repeats (until) to show how far it got.

    The wait's `timeout` counts from `started` (seconds since the epoch, as the task's first try saw them; None:
    now), and a call hands back after `return_after` seconds (0: never) while there is still time left.
    """

    def __init__(
        self, timeout: float, started: float | None = None, return_after: float = 0,
        clock=time.monotonic, sleep=time.sleep, now=time.time,
    ):  # fmt: skip
        spent = 0.0 if started is None else max(0.0, now() - started)
        self.timeout = timeout
        self.deadline = Deadline(timeout - spent, clock, sleep)
        self._back = Deadline(return_after, clock, sleep) if return_after > 0 else None

    @property
    def over(self) -> bool:
        """This call should hand back (its share is spent), though the wait has time left."""
        return self._back is not None and self._back.passed and not self.deadline.passed

    def pause(self, interval: float) -> None:
        """Sleep until the next look: interval, never past the end of this call's share or of the wait."""
        self.deadline.pause(min(interval, self._back.left()) if self._back is not None else interval)


class RunEnded(NervError):
    """The run that started a background job has ended: the job stops instead of working on for nobody."""


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie, killed and not yet reaped, has ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunWatch:
    """The ansible-playbook whose task started this background job (its pid, from the lookup nerv.homelab.run_pid).
    Ansible's async jobs outlive a run stopped with Ctrl-C, SIGTERM or SIGKILL; a job watching its run stops at its
    next step or wait once the run has ended, instead of cloning and starting VMs for its whole timeout. sleep() is
    a Deadline's sleep that looks first; without a pid nothing is watched."""

    def __init__(self, pid: int | None, sleep=time.sleep):
        self.pid = pid
        self._sleep = sleep

    def check(self, next_step: str) -> None:
        """RunEnded, saying what is left undone, when the run has ended."""
        if self.pid and not _alive(self.pid):
            raise RunEnded(f"the run that started this job (ansible-playbook, pid {self.pid}) has ended: stopped "
                           f"before {next_step}; run the playbook again to finish")  # fmt: skip

    def sleep(self, seconds: float) -> None:
        self.check("waiting on")
        self._sleep(seconds)

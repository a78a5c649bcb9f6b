# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: progress
type: stdout
short_description: The default output, with long waits told in words
version_added: 0.1.0
description:
  - Prints everything as the default callback does (task banners, results, diffs, failures, the recap), except
    the lines of tasks that wait.
  - A task repeated with C(until) prints, instead of C(FAILED - RETRYING), what it waits for (the task, and the
    loop item of a background job started with C(poll=0)), the module's C(progress) line when its result has one
    (else C(still running) for a background job, or why the last try failed), the time waited so far, and when
    the task gives up at the latest (from C(retries) and the time each try took).
  - A task run with C(async) and C(poll) prints, instead of C(ASYNC POLL), that it is still running, for how long,
    and when it gives up (its C(async) limit, when that is a number).
  - A wait whose status stays the same prints at most one line per O(progress_interval) seconds; a new status is
    printed at once.
extends_documentation_fragment:
  - default_callback
  - result_format_callback
options:
  progress_interval:
    description:
      - Seconds between two lines about the same wait while its status does not change (0 prints every try).
    type: int
    default: 15
    env:
      - name: NERV_PROGRESS_INTERVAL
    ini:
      - section: callback_nerv_progress
        key: progress_interval
requirements:
  - set as the stdout callback in ansible.cfg (C(stdout_callback = nerv.homelab.progress)) or with
    E(ANSIBLE_STDOUT_CALLBACK=nerv.homelab.progress)
"""

import time
from dataclasses import dataclass

from ansible import constants as C
from ansible.plugins.callback.default import CallbackModule as Default

STATUS_LIMIT = 200


def duration(seconds: float) -> str:
    """A time waited, exactly enough to see it move: 45s, 2m 05s, 1h 02m."""
    total = max(0, int(round(seconds)))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def rough(seconds: float) -> str:
    """A time still to come, as an estimate: under a minute, about 27m, about 1h 05m."""
    minutes = int(round(max(0, seconds) / 60))
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"about {minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours}h {minutes:02d}m"


def one_line(text, limit: int = STATUS_LIMIT) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def status_of(result: dict) -> str:
    """What a wait's latest result says, in words: the module's progress line, a job still running, or why the
    last try failed; empty when it says nothing."""
    progress = result.get("progress")
    if isinstance(progress, str) and progress.strip():
        return one_line(progress)
    if result.get("ansible_job_id") and not result.get("finished"):
        return "still running"
    if result.get("failed") and result.get("msg"):
        return "the last try failed: " + one_line(result["msg"])
    return ""


def _number(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):  # a template the worker resolves, not known here
        return None


def time_left(elapsed: float, attempts, retries) -> float | None:
    """Seconds until a retry loop gives up: the tries left times the mean time of one try so far."""
    attempts, retries = _number(attempts), _number(retries)
    if attempts is None or retries is None or attempts < 1 or retries <= attempts:
        return None
    return elapsed / attempts * (retries - attempts)


def waiting_line(host: str, what: str, status: str, elapsed: float, left: float | None) -> str:
    """waiting: [host] what: status, 2m 05s so far (gives up in about 27m)"""
    line = f"waiting: [{host}] {what}: "
    line += f"{status}, " if status else ""
    line += f"{duration(elapsed)} so far"
    return line + (f" (gives up in {rough(left)})" if left is not None else "")


class Throttle:
    """At most one line per interval and key while the status stays the same; a new status passes at once."""

    def __init__(self, interval: float, clock=time.monotonic):
        self.interval, self._clock = interval, clock
        self._last: dict = {}

    def due(self, key, status: str) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and last[1] == status and now - last[0] < self.interval:
            return False
        self._last[key] = (now, status)
        return True

    def forget(self, host: str) -> None:
        for key in [k for k in self._last if k[0] == host]:
            del self._last[key]


@dataclass
class Run:
    """What a host runs now: the task, since when (the current loop item's start), and the task's async limit."""

    name: str
    since: float
    loop: bool = False
    item: int = 1
    async_limit: int | None = None


class CallbackModule(Default):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "nerv.homelab.progress"

    def __init__(self, clock=time.monotonic):
        super().__init__()
        self._clock = clock
        self._runs: dict = {}  # host -> Run
        self._jobs: dict = {}  # (host, jid) -> (label, started): background jobs started with poll=0
        self._throttle = Throttle(15, clock)

    def set_options(self, *args, **kwargs):
        super().set_options(*args, **kwargs)
        self._throttle.interval = self.get_option("progress_interval")

    # ---- what each host runs, and since when

    def v2_runner_on_start(self, host, task):
        super().v2_runner_on_start(host, task)
        name = (task.name or task.action or "").strip()
        self._runs[host.get_name()] = Run(name, self._clock(), bool(task.loop), 1, _number(task.async_val))
        self._throttle.forget(host.get_name())

    def _item_done(self, result) -> None:
        host = result.host.get_name()
        run = self._runs.get(host)
        if run is not None:
            run.since, run.item = self._clock(), run.item + 1
        self._throttle.forget(host)
        jid = result.result.get("ansible_job_id")
        if jid and result.result.get("started") and not result.result.get("finished"):
            label = self._get_item_label(result.result)
            self._jobs[(host, jid)] = (None if label is None else str(label), self._clock())

    def v2_runner_item_on_ok(self, result):
        self._item_done(result)
        super().v2_runner_item_on_ok(result)

    def v2_runner_item_on_failed(self, result):
        self._item_done(result)
        super().v2_runner_item_on_failed(result)

    def v2_runner_item_on_skipped(self, result):
        self._item_done(result)
        super().v2_runner_item_on_skipped(result)

    def v2_runner_on_ok(self, result):
        self._item_done(result)
        super().v2_runner_on_ok(result)

    # ---- the waits

    def _what(self, run: Run | None, name: str, label: str | None) -> str:
        if label is None and run is not None and run.loop:
            label = f"item {run.item}"
        return f"{name} ({label})" if label else name

    def v2_runner_retry(self, result):
        host, raw = result.host.get_name(), result.result
        run = self._runs.get(host)
        now = self._clock()
        since = run.since if run else now
        label, started = self._jobs.get((host, raw.get("ansible_job_id")), (None, since))
        status = status_of(raw)
        key = (host, result.task._uuid, label)
        if self._throttle.due(key, status):
            what = self._what(run, result.task_name or (run.name if run else ""), label)
            left = time_left(now - since, raw.get("attempts"), raw.get("retries"))
            line = waiting_line(self.host_label(result), what, status, now - started, left)
            if self._run_is_verbose(result, verbosity=2):
                line += f" Result was: {self._dump_results(raw)}"
            self._display.display(line, color=C.COLOR_DEBUG)

    def v2_runner_on_async_poll(self, result):
        host, raw = result.host.get_name(), result.result
        run = self._runs.get(host)
        now = self._clock()
        since = run.since if run else now
        status = status_of(raw) or "still running"
        if self._throttle.due((host, raw.get("ansible_job_id"), None), status):
            what = self._what(run, run.name if run else "a background job", None)
            left = run.async_limit - (now - since) if run and run.async_limit else None
            self._display.display(waiting_line(host, what, status, now - since, left), color=C.COLOR_DEBUG)

    def v2_runner_on_async_ok(self, result):
        pass  # the task's own ok/changed line follows

    def v2_runner_on_async_failed(self, result):
        pass  # the task's failure follows, with the reason

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Aggregate callback of bench/: how long each task of a run took and how many results it had, as JSON.

Written to the file named by NERV_BENCH_OUTPUT when the playbook ends. Module executions are counted apart, by the
interpreter wrapper bench/noop.py puts in ansible_python_interpreter (an action plugin may run several modules).
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: nerv_bench
    type: aggregate
    short_description: Time every task of the run (nerv.homelab bench only)
    description:
      - Writes C({tasks, seconds}) to the file named by E(NERV_BENCH_OUTPUT) at the end of the run.
    requirements:
      - enabled in ANSIBLE_CALLBACKS_ENABLED, with this directory in ANSIBLE_CALLBACK_PLUGINS
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "nerv_bench"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tasks, self._current, self._started = [], None, time.perf_counter()

    def _close(self):
        if self._current is not None:
            self._current["seconds"] = round(time.perf_counter() - self._current.pop("_t"), 3)
            self._tasks.append(self._current)
            self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self._current = {"name": task.get_name(), "action": task.action, "results": 0, "_t": time.perf_counter()}

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _result(self, result, status):
        if self._current is not None:
            self._current["results"] += 1
            self._current.setdefault("status", {}).setdefault(status, 0)
            self._current["status"][status] += 1

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_item_on_ok(self, result):
        self._result(result, "item")

    def v2_runner_item_on_skipped(self, result):
        self._result(result, "item_skipped")

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get("NERV_BENCH_OUTPUT")
        if path:
            with open(path, "w", encoding="utf-8") as out:
                json.dump({"tasks": self._tasks, "seconds": round(time.perf_counter() - self._started, 3)}, out)

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Aggregate callback of the integration-test harness: every task result as one JSON file.

ansible-core has no JSON stdout callback (it lives in ansible.posix), and the tests also want the human
output a user sees, so this callback runs beside the default one and writes the file named by
NERV_HARNESS_JSON_OUTPUT when the playbook ends.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: nerv_harness_json
    type: aggregate
    short_description: Write every task result of the run to a JSON file (nerv.homelab tests only)
    description:
      - Writes C({plays, stats}) to the file named by E(NERV_HARNESS_JSON_OUTPUT) at the end of the run.
    requirements:
      - enabled in ANSIBLE_CALLBACKS_ENABLED, with this directory in ANSIBLE_CALLBACK_PLUGINS
"""

OUTPUT_ENV = "NERV_HARNESS_JSON_OUTPUT"


def _result_of(result):
    """The result dict: `result` from ansible-core 2.19 on, `_result` before."""
    return result.result if hasattr(type(result), "result") else result._result


def _warnings_of(result, raw):
    summaries = getattr(result, "warnings", None)
    if summaries is None:
        return [str(w) for w in raw.get("warnings") or []]
    return [getattr(getattr(w, "event", None), "msg", None) or str(w) for w in summaries]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "nerv_harness_json"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plays = []

    def _plain(self, raw):
        try:
            return self._dump_results(raw, keep_invocation=True, serialize=False)
        except TypeError:  # ansible-core < 2.19 has no serialize
            return json.loads(self._dump_results(raw, keep_invocation=True))

    def v2_playbook_on_play_start(self, play):
        self._plays.append({"name": play.get_name(), "tasks": []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._plays[-1]["tasks"].append(
            {
                "name": task.name or task.get_name(),
                "full_name": task.get_name(),
                "action": task.action,
                "hosts": {},
            }
        )

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _record(self, result, status, **extra):
        raw = _result_of(result)
        entry = dict(self._plain(raw))
        entry.update(extra)
        entry["status"] = status
        entry["failed"] = status == "failed"
        entry["skipped"] = status == "skipped"
        entry["unreachable"] = status == "unreachable"
        entry["changed"] = bool(raw.get("changed", False))
        entry["warnings"] = _warnings_of(result, raw)
        host = (getattr(result, "host", None) or result._host).get_name()
        self._plays[-1]["tasks"][-1]["hosts"][host] = entry

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed", ignore_errors=bool(ignore_errors))

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        path = os.environ.get(OUTPUT_ENV)
        if not path:
            self._display.warning(f"nerv_harness_json: {OUTPUT_ENV} is not set; nothing written")
            return
        with open(path, "w", encoding="utf-8") as out:
            json.dump({"plays": self._plays, "stats": summary}, out, indent=2, default=str, ensure_ascii=False)

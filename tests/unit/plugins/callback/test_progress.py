"""nerv.homelab.progress: the lines a wait prints, on a clock the test owns."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from ansible_collections.nerv.homelab.plugins.callback import progress as module
from ansible_collections.nerv.homelab.plugins.callback.progress import (
    CallbackModule,
    Throttle,
    duration,
    rough,
    status_of,
    time_left,
    waiting_line,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (-3, "0s"), (45, "45s"), (59.6, "1m 00s"), (125, "2m 05s"), (3599, "59m 59s"), (3720, "1h 02m")],
)
def test_duration(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "under a minute"), (29, "under a minute"), (31, "about 1m"), (1620, "about 27m"), (3900, "about 1h 05m")],
)
def test_rough(seconds, text):
    assert rough(seconds) == text


@pytest.mark.parametrize(
    ("result", "status"),
    [
        ({"progress": "VM 9000 running:\n  install in progress"}, "VM 9000 running: install in progress"),
        ({"progress": "2 of 3 nodes Ready", "ansible_job_id": "j1", "finished": False}, "2 of 3 nodes Ready"),
        ({"ansible_job_id": "j1", "started": True, "finished": False}, "still running"),
        ({"failed": True, "msg": "cannot reach the cluster"}, "the last try failed: cannot reach the cluster"),
        ({"progress": "  ", "changed": False}, ""),
        ({"ansible_job_id": "j1", "finished": True}, ""),
    ],
)
def test_status_of(result, status):
    assert status_of(result) == status


def test_a_long_status_is_cut():
    status = status_of({"progress": "x" * 500})
    assert len(status) == 200 and status.endswith("...")


@pytest.mark.parametrize(
    ("elapsed", "attempts", "retries", "left"),
    [(60, 2, 60, 1740), (10, 5, 6, 2), (10, 6, 6, None), (10, 0, 6, None), (10, None, 6, None), (10, "2", "4", 10)],
)
def test_time_left_is_the_tries_left_times_the_mean_try(elapsed, attempts, retries, left):
    assert time_left(elapsed, attempts, retries) == left


def test_waiting_line():
    line = waiting_line("localhost", "Wait for every VM (cp1)", "still running", 125, 1620)
    assert line == "waiting: [localhost] Wait for every VM (cp1): still running, 2m 05s so far (gives up in about 27m)"
    assert waiting_line("h", "Echo", "", 5, None) == "waiting: [h] Echo: 5s so far"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_throttle_lets_a_new_status_through_at_once_and_the_same_one_once_per_interval():
    clock = Clock()
    throttle = Throttle(15, clock)
    assert throttle.due(("h", 1), "a")
    clock.now += 14
    assert not throttle.due(("h", 1), "a")
    assert throttle.due(("h", 1), "b"), "a new status is printed at once"
    assert throttle.due(("h", 2), "b"), "another wait has its own clock"
    clock.now += 15
    assert throttle.due(("h", 1), "b")
    throttle.forget("h")
    assert throttle.due(("h", 1), "b"), "forgotten when the host starts its next task"


# ---- the callback, with fake tasks, results and display


class Display:
    verbosity = 0

    def __init__(self):
        self.lines = []

    def display(self, msg, **_kwargs):
        self.lines.append(msg)

    def banner(self, msg, **_kwargs):
        self.lines.append(msg)


class Host:
    def __init__(self, name="localhost"):
        self.name = name

    def get_name(self):
        return self.name


def task(name, uuid="t1", loop=None, async_val=0):
    return SimpleNamespace(name=name, action="x", _uuid=uuid, loop=loop, async_val=async_val, delegate_to=None)


def result(the_task, **data):
    return SimpleNamespace(host=Host(), task=the_task, task_name=the_task.name, result=data)


@pytest.fixture
def callback(monkeypatch):
    # the default callback's own lines for an item are its business (and need real tasks and results)
    monkeypatch.setattr(module.Default, "v2_runner_item_on_ok", lambda self, result: None)
    clock = Clock()
    cb = CallbackModule(clock=clock)
    cb._display = Display()
    cb._plugin_options = {"show_per_host_start": False, "display_ok_hosts": True, "display_skipped_hosts": True}
    cb.clock = clock
    return cb


def test_a_retry_says_what_it_waits_for_how_long_and_when_it_gives_up(callback):
    build = task("Build the template")
    callback.v2_runner_on_start(Host(), build)
    callback.clock.now += 62
    progress = "installer VM 9100 on pve1 running for 1m 00s: the unattended install is in progress"
    callback.v2_runner_retry(result(build, progress=progress, attempts=2, retries=61))
    assert callback._display.lines == [
        f"waiting: [localhost] Build the template: {progress}, 1m 02s so far (gives up in about 30m)"
    ]


def test_a_fast_loop_prints_every_15_s_at_most_and_at_least_every_30_s_and_a_change_at_once(callback):
    wait = task("Wait for the nodes")
    callback.v2_runner_on_start(Host(), wait)
    for attempt in range(1, 31):  # a try every 2 s for a minute
        callback.clock.now += 2
        callback.v2_runner_retry(result(wait, progress="1 of 3 nodes Ready", attempts=attempt, retries=300))
    times = [re.search(r"(\S+) so far", line).group(1) for line in callback._display.lines]
    assert times == ["2s", "18s", "34s", "50s"]
    callback.clock.now += 2
    callback.v2_runner_retry(result(wait, progress="2 of 3 nodes Ready", attempts=31, retries=300))
    assert "2 of 3 nodes Ready, 1m 02s so far" in callback._display.lines[-1]
    assert not any("FAILED" in line or "RETRYING" in line for line in callback._display.lines)


def test_a_background_job_is_named_by_its_item_and_timed_from_its_start(callback):
    launch = task("Clone every VM", "t1", loop="{{ vms }}")
    callback.v2_runner_on_start(Host(), launch)
    for name, jid in (("cp1", "j1"), ("worker1", "j2")):
        job = dict(ansible_job_id=jid, started=True, finished=False, _ansible_item_label=name, changed=False)
        callback.v2_runner_item_on_ok(result(launch, **job))
    callback.clock.now += 30
    wait = task("Wait for every VM", "t2", loop="{{ jobs }}")
    callback.v2_runner_on_start(Host(), wait)
    callback.clock.now += 4
    callback.v2_runner_retry(result(wait, ansible_job_id="j2", started=True, finished=False, attempts=2, retries=901))
    assert callback._display.lines[-1].startswith(
        "waiting: [localhost] Wait for every VM (worker1): still running, 34s so far (gives up in about 30m)"
    )


def test_an_async_poll_says_it_is_still_running_instead_of_async_poll(callback):
    build = task("Build the installer ISO", async_val=3600)
    callback.v2_runner_on_start(Host(), build)
    callback.clock.now += 90
    poll = SimpleNamespace(host=Host(), task=task("", "poll"), task_name="", result={
        "ansible_job_id": "j9.1", "started": True, "finished": False})  # fmt: skip
    callback.v2_runner_on_async_poll(poll)
    callback.clock.now += 2
    callback.v2_runner_on_async_poll(poll)
    assert callback._display.lines == [
        "waiting: [localhost] Build the installer ISO: still running, 1m 30s so far (gives up in about 58m)"
    ]


def test_an_async_poll_in_a_loop_names_the_item_and_a_templated_limit_is_left_out(callback):
    install = task("Install NixOS", loop="{{ hosts }}", async_val="{{ 0 if ansible_check_mode else 4800 }}")
    callback.v2_runner_on_start(Host(), install)
    callback.v2_runner_item_on_ok(result(install, changed=True, _ansible_item_label="mini1"))
    callback.clock.now += 5
    poll = SimpleNamespace(host=Host(), task=task("", "poll"), task_name="", result={
        "ansible_job_id": "j9.2", "started": True, "finished": False})  # fmt: skip
    callback.v2_runner_on_async_poll(poll)
    assert callback._display.lines[-1] == "waiting: [localhost] Install NixOS (item 2): still running, 5s so far"

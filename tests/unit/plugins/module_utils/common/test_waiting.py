"""Deadline: the one way poll loops spend their time, on a clock the test owns."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline, RunEnded, RunWatch, Turn


class Clock:
    def __init__(self):
        self.now, self.slept = 100.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_pause_never_sleeps_past_the_deadline_and_then_says_it_has_passed():
    clock = Clock()
    deadline = Deadline(5, clock, clock.sleep)
    assert deadline.pause(2) and deadline.pause(2) and deadline.pause(2)
    assert clock.slept == [2, 2, 1] and deadline.passed and deadline.left() == 0
    assert not deadline.pause(2) and clock.slept == [2, 2, 1]


def test_a_zero_deadline_has_passed_at_once_without_sleeping():
    clock = Clock()
    deadline = Deadline(0, clock, clock.sleep)
    assert deadline.passed and not deadline.pause(1) and clock.slept == []


def test_left_counts_down_with_the_clock():
    clock = Clock()
    deadline = Deadline(10, clock, clock.sleep)
    clock.now += 4
    assert deadline.left() == 6 and not deadline.passed


def test_a_turn_hands_back_after_its_share_and_never_sleeps_past_it():
    clock = Clock()
    turn = Turn(60, None, 5, clock, clock.sleep)
    for _look in range(3):
        assert not turn.over
        turn.pause(2)
    assert clock.slept == [2, 2, 1] and turn.over and not turn.deadline.passed


def test_a_turn_counts_the_wait_from_when_it_started():
    clock = Clock()
    turn = Turn(60, started=1000.0, return_after=25, clock=clock, sleep=clock.sleep, now=lambda: 1050.0)
    assert turn.deadline.left() == 10 and turn.timeout == 60
    turn.pause(30)
    assert clock.slept == [10] and turn.deadline.passed
    assert not turn.over, "past the deadline the wait is over, not the turn: the caller fails"


def test_a_turn_without_return_after_is_one_deadline():
    clock = Clock()
    turn = Turn(3, None, 0, clock, clock.sleep)
    turn.pause(2)
    turn.pause(2)
    assert clock.slept == [2, 1] and turn.deadline.passed and not turn.over


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]


def test_a_run_watch_lets_a_living_run_be_and_stops_a_job_whose_run_ended():
    slept = []
    RunWatch(None, sleep=slept.append).sleep(1)  # no run to watch: nothing is watched
    RunWatch(os.getpid(), sleep=slept.append).sleep(2)
    assert slept == [1, 2]
    ended = subprocess.Popen(["true"])
    ended.wait()
    with pytest.raises(RunEnded, match=f"pid {ended.pid}.*stopped before clone"):
        RunWatch(ended.pid).check("clone")
    zombie = subprocess.Popen(["true"])
    deadline = Deadline(10)
    while state(zombie.pid) != "Z" and deadline.pause(0.05):
        pass
    with pytest.raises(RunEnded):  # killed and not yet reaped by its parent: ended all the same
        RunWatch(zombie.pid, sleep=slept.append).sleep(1)
    zombie.wait()

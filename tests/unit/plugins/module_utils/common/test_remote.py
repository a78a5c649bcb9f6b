"""common/remote.run_logged: streamed output, and a timeout that stops even a command that prints nothing."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common import errors, remote


def test_a_silent_command_past_its_timeout_is_stopped_and_named(tmp_path):
    script = tmp_path / "home-manager"
    # prints once, then hangs without output: a check per printed line would never see the deadline
    script.write_text(f"#!{sys.executable}\nimport time\nprint('started', flush=True)\ntime.sleep(60)\n")
    script.chmod(0o755)
    with pytest.raises(errors.HostError, match=r"^home-manager ran longer than 1 s and was stopped") as caught:
        remote.run_logged([str(script)], str(tmp_path / "log"), timeout=1)
    assert caught.value.details["log_file"] == str(tmp_path / "log")
    assert "started" in (tmp_path / "log").read_text()


def test_the_commands_children_are_stopped_with_it(tmp_path):
    script, pid_file = tmp_path / "nixos-rebuild", tmp_path / "child.pid"
    # a child that outlives its parent unless its whole process group is killed (ssh, nix under a wrapper)
    script.write_text(f"#!/bin/sh\necho building\nsleep 600 >/dev/null 2>&1 &\necho $! > {pid_file}\nwait\n")
    script.chmod(0o755)
    with pytest.raises(errors.HostError, match=r"^nixos-rebuild ran longer than 1 s"):
        remote.run_logged([str(script)], str(tmp_path / "log"), timeout=1)
    child = int(pid_file.read_text())
    for _attempt in range(100):  # the kill is asynchronous: wait for the zombie to go
        try:
            if "State:\tZ" in Path(f"/proc/{child}/status").read_text():
                break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the command's child was left running")


def test_a_command_within_its_timeout_returns_its_exit_code(tmp_path):
    run = remote.run_logged([sys.executable, "-c", "print('### Build ###'); raise SystemExit(4)"],
                            str(tmp_path / "log"), timeout=30)  # fmt: skip
    assert (run.rc, run.steps) == (4, ["Build"])


def test_secrets_never_reach_the_log_or_the_tail(tmp_path):
    given, in_env = "hunter2-passphrase-canary", "ghp_canaryTOKEN0123456789"
    env = {"PATH": os.environ["PATH"], "GITHUB_TOKEN": in_env, "ANSIBLE_SHORT_KEY": "on"}
    script = f"import os; print('{given}', os.environ['GITHUB_TOKEN'], 'on'); raise SystemExit(1)"
    run = remote.run_logged([sys.executable, "-c", script], str(tmp_path / "log"), 30, env=env, secrets=[given])
    log = (tmp_path / "log").read_text()
    assert given not in log and in_env not in log and "******** ******** on" in log  # "on" is too short to hide
    assert run.tail == ["******** ******** on"]

"""common/process.run_logged: streamed output, and a timeout that stops even a command that prints nothing."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common import errors, process


def test_a_silent_command_past_its_timeout_is_stopped_and_named(tmp_path):
    script = tmp_path / "home-manager"
    # prints once, then hangs without output: a check per printed line would never see the deadline
    script.write_text(f"#!{sys.executable}\nimport time\nprint('started', flush=True)\ntime.sleep(60)\n")
    script.chmod(0o755)
    with pytest.raises(errors.HostError, match=r"^home-manager ran longer than 1 s and was stopped") as caught:
        process.run_logged([str(script)], str(tmp_path / "log"), timeout=1)
    assert caught.value.details["log_file"] == str(tmp_path / "log")
    assert "started" in (tmp_path / "log").read_text()


def test_the_commands_children_are_stopped_with_it(tmp_path):
    script, pid_file = tmp_path / "nixos-rebuild", tmp_path / "child.pid"
    # a child that outlives its parent unless its whole process group is killed (ssh, nix under a wrapper)
    script.write_text(f"#!/bin/sh\necho building\nsleep 600 >/dev/null 2>&1 &\necho $! > {pid_file}\nwait\n")
    script.chmod(0o755)
    with pytest.raises(errors.HostError, match=r"^nixos-rebuild ran longer than 1 s"):
        process.run_logged([str(script)], str(tmp_path / "log"), timeout=1)
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
    argv = [sys.executable, "-c", "print('### Build ###'); raise SystemExit(4)"]
    run = process.run_logged(argv, str(tmp_path / "log"), timeout=30)
    assert (run.rc, run.steps) == (4, ["Build"])


def test_secrets_never_reach_the_log_or_the_tail(tmp_path):
    given, in_env = "hunter2-passphrase-canary", "ghp_canaryTOKEN0123456789"
    env = {"PATH": os.environ["PATH"], "GITHUB_TOKEN": in_env, "ANSIBLE_SHORT_KEY": "on"}
    script = f"import os; print('{given}', os.environ['GITHUB_TOKEN'], 'on'); raise SystemExit(1)"
    run = process.run_logged([sys.executable, "-c", script], str(tmp_path / "log"), 30, env=env, secrets=[given])
    log = (tmp_path / "log").read_text()
    assert given not in log and in_env not in log and "******** ******** on" in log  # "on" is too short to hide
    assert run.tail == ["******** ******** on"]


def test_run_captures_both_streams_and_feeds_stdin():
    script = "import sys; data = sys.stdin.read(); print(data.upper()); print('warn', file=sys.stderr); sys.exit(2)"
    done = process.run([sys.executable, "-c", script], 30, stdin="fed")
    assert (done.rc, done.stdout, done.stderr) == (2, "FED\n", "warn\n")


def test_run_past_its_timeout_raises_the_callers_error_with_its_message():
    class LayerError(errors.NervError):
        pass

    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(LayerError, match=r"^python3?[\d.]* ran longer than 1 s and was stopped$"):
        process.run(argv, 1, error=LayerError)
    with pytest.raises(LayerError, match="^nix eval did not finish$"):
        process.run(argv, 1, error=LayerError, late="nix eval did not finish")


def test_run_stops_a_command_that_ignores_sigterm():
    # nix gets SIGTERM first (it cleans up); a command that ignores it is killed after the grace time
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    )
    with pytest.raises(errors.HostError, match="ran longer than 1 s"):
        process.run([sys.executable, "-c", script], 1)


def test_a_command_that_cannot_start_is_the_callers_error_not_an_oserror(tmp_path):
    with pytest.raises(errors.HostError, match=r"^cannot run /no/such/tool: No such file or directory$"):
        process.run(["/no/such/tool"], 5)
    with pytest.raises(errors.HostError, match="^cannot run /no/such/tool"):
        process.run_logged(["/no/such/tool"], str(tmp_path / "log"), 5)

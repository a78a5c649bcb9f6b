# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place the collection starts a process: `run` captures a short command's output, `run_logged` streams a
long tool's output to a private log. Both start the command in a process group of its own and, past the timeout,
stop the whole group (the ssh and nix children a tool leaves would otherwise hold its output open), with one
message for it; a command that cannot start is an error of the caller's layer too, never an OSError.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
from collections import deque
from dataclasses import dataclass

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, mask

# nixos-anywhere announces each step as "### <step> ###"; other tools print none, and get no steps.
STEP = re.compile(r"^### (.+) ###\s*$")
TAIL_LINES = 25
# Environment variables whose values are secrets (GITHUB_TOKEN, GIT_PASSWORD, SOPS_AGE_KEY, ...): a tool may echo
# them (debug output, an error quoting its request), and its log must not keep them.
SECRET_ENV = re.compile(r"(TOKEN|PASSWORD|PASSPHRASE|SECRET|_KEY)$")
# shorter values are no credential, and masking them would blank out ordinary words of the output
SECRET_MIN = 8
# How long a stopped group gets to end on SIGTERM (nix removes its temporary roots) before SIGKILL
GRACE = 5


@dataclass
class Done:
    """A captured run: its exit code and output (stderr is None when it went to a file)."""

    rc: int
    stdout: str
    stderr: str | None


@dataclass
class Run:
    """A logged run: its exit code, the '### step ###' lines it printed and the last lines of its output."""

    rc: int
    steps: list
    tail: list


def stopped(argv: list, timeout) -> str:
    return f"{os.path.basename(argv[0])} ran longer than {timeout:g} s and was stopped"


def run(argv: list, timeout, *, env=None, stdin=None, stderr=None, error=HostError, late=None) -> Done:
    """Run argv to its end and capture its output (stdin text fed to it; stderr to that binary file when given).

    Past timeout seconds (None: no limit) the command's group is stopped and error raised, with late as the message
    (default: "<tool> ran longer than N s and was stopped")."""
    proc = _start(argv, error, env, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE if stderr is None else stderr)  # fmt: skip
    with proc:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            raise error(late or stopped(argv, timeout)) from None
    return Done(proc.returncode, out, err)


def run_logged(argv: list, log_file: str, timeout, *, env=None, secrets=(), append=False, why="") -> Run:
    """Run argv, streaming its output (stdout and stderr) to log_file (0600; appended to when append) and
    collecting the '### step ###' lines. The log says why a run was made (why: "rollback") after the command.

    The one place a run is logged, so the one place secrets are masked: the values in secrets and those of the
    secret variables of the environment the command gets (env, else ours) never reach the log or the tail.
    """
    steps, tail = [], deque(maxlen=TAIL_LINES)
    hidden = secrets_of(env, secrets)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    with os.fdopen(os.open(log_file, flags, 0o600), "w", encoding="utf-8") as log:
        log.write(mask("$ " + shlex.join(argv) + (f"  # {why}" if why else ""), hidden) + "\n")
        log.flush()
        proc = _start(argv, HostError, env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with proc:
            # a timer, not a check per line: a tool that hangs without printing is stopped too
            late = threading.Event()
            timer = threading.Timer(timeout, lambda: (late.set(), stop_group(proc, grace=0)))
            timer.start()
            try:
                for line in proc.stdout:
                    line = mask(line, hidden)
                    log.write(line)
                    log.flush()
                    tail.append(line.rstrip("\n"))
                    step = STEP.match(line.strip())
                    if step:
                        steps.append(step.group(1))
                rc = proc.wait()
            finally:
                timer.cancel()
        if late.is_set():
            log.write(f"stopped after {timeout:g} s\n")
            raise HostError(stopped(argv, timeout), log_file=log_file, tail=list(tail))
    return Run(rc, steps, list(tail))


def secrets_of(env: dict | None, given=()) -> list:
    """The values to mask in a run's log: the given ones and those of env's secret variables."""
    named = [value for name, value in (os.environ if env is None else env).items() if SECRET_ENV.search(name)]
    return [v for v in {*given, *named} if v and len(v) >= SECRET_MIN]


def _start(argv: list, error, env, **streams):
    try:
        return subprocess.Popen(argv, text=True, env=env, start_new_session=True, **streams)
    except OSError as exc:
        raise error(f"cannot run {argv[0]}: {exc.strerror or exc}") from None


def stop_group(proc, grace: float = GRACE) -> None:
    """Stop the command and every process it started: SIGTERM to its group, then SIGKILL when it is still there
    after grace seconds (at once with grace 0, without waiting: the caller reaps it)."""
    if grace:
        _signal(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return
    _signal(proc, signal.SIGKILL)


def _signal(proc, sig) -> None:
    with contextlib.suppress(OSError):  # it ended on its own meanwhile
        os.killpg(proc.pid, sig)

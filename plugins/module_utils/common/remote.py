# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules that work on a host over SSH, or run a long external tool, share: how to log in (Target),
and running a command with its output streamed to a private log.
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

from ansible_collections.nerv.homelab.plugins.module_utils.common.cache import cache_path
from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, Unpinned, Unreachable, mask

# nixos-anywhere announces each step as "### <step> ###"; other tools print none, and get no steps.
STEP = re.compile(r"^### (.+) ###\s*$")
TAIL_LINES = 25
# Environment variables whose values are secrets (GITHUB_TOKEN, GIT_PASSWORD, SOPS_AGE_KEY, ...): a tool may echo
# them (debug output, an error quoting its request), and its log must not keep them.
SECRET_ENV = re.compile(r"(TOKEN|PASSWORD|PASSPHRASE|SECRET|_KEY)$")
# shorter values are no credential, and masking them would blank out ordinary words of the output
SECRET_MIN = 8

# The argument spec of nerv.homelab.ssh_target (doc fragment): how a module logs in to a host.
SSH_OPTIONS = {
    "port": {"type": "int", "default": 22},
    "user": {"type": "str", "default": "root"},
    "identity_file": {"type": "path"},
    "connect_timeout": {"type": "int", "default": 10},
}


# What ssh prints when nothing answered, as opposed to an answer that refused us (host key, authentication).
UNREACHABLE_SIGNS = ("Connection refused", "No route to host", "timed out", "Network is unreachable",
                     "Could not resolve hostname", "Host is down", "Connection closed by remote host")  # fmt: skip


def plan_unreachable(module, error: Unreachable | Unpinned, what: str) -> None:
    """In check mode, say that what is planned without the host; otherwise the error stands."""
    if not module.check_mode:
        raise error
    module.warn(f"{error}. Check mode plans {what} without reading the host ({error.why}).")


def require_pinned(known_hosts: str, target: Target) -> None:
    """Unpinned unless known_hosts holds a key for the target (ssh-keygen -F finds hashed entries and ports too)."""
    if not os.path.isfile(known_hosts):
        raise Unpinned(f"known_hosts {known_hosts} does not exist: the host's key must be pinned first")
    name = target.address if target.port == 22 else f"[{target.address}]:{target.port}"
    found = subprocess.run(["ssh-keygen", "-F", name, "-f", known_hosts], capture_output=True, check=False)
    if found.returncode != 0:
        raise Unpinned(
            f"no key of {target.host} ({name}) is pinned in {known_hosts}: the host's key must be pinned first "
            "(the vms phase pins a VM's, the keys phase a bare-metal host's)"
        )


def ssh_error(stderr: str, message: str) -> HostError:
    """The error for a failed ssh: Unreachable when nothing answered, HostError otherwise."""
    return (Unreachable if any(sign in stderr for sign in UNREACHABLE_SIGNS) else HostError)(message)


@dataclass
class Target:
    host: str
    address: str
    port: int = 22
    user: str = "root"
    identity_file: str = ""
    connect_timeout: int = 10

    @classmethod
    def from_params(cls, p: dict, address: str | None = None) -> Target:
        """The target of a module's ssh_target options (host, address, port, user, identity_file, connect_timeout)."""
        if p.get("connect_timeout", 10) < 1:
            raise HostError(f"connect_timeout must be at least 1 second, not {p['connect_timeout']}")
        return cls(p["host"], address or p["address"], p["port"], p["user"], p["identity_file"] or "",
                   p.get("connect_timeout", 10))  # fmt: skip

    def ssh(self, known_hosts: str, strict: bool) -> list:
        """ssh argv to the target: keys only, never a prompt, host keys from known_hosts."""
        argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        argv += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        argv += ["-o", f"StrictHostKeyChecking={'yes' if strict else 'accept-new'}", "-o", "LogLevel=ERROR"]
        if self.identity_file:
            argv += ["-o", "IdentitiesOnly=yes", "-i", self.identity_file]
        return argv + ["-p", str(self.port), f"{self.user}@{self.address}"]


def ssh_run(target: Target, known_hosts: str, command: list, failure: str, **options) -> str:
    """stdout of command on the target over SSH; the one way every module runs one.

    failure starts the error's message ("cannot read X on host"); the reason ssh gave follows it, with a host
    key that does not match the pinned one said in words. options: strict (default True: only the pinned key),
    timeout in seconds (default 120), stdin text.
    """
    strict, timeout = options.get("strict", True), options.get("timeout", 120)
    argv = target.ssh(known_hosts, strict=strict) + command
    try:
        done = subprocess.run(
            argv, input=options.get("stdin"), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise Unreachable(
            f"{target.host} at {target.address}:{target.port} did not answer over SSH within {timeout} s"
        ) from None
    if done.returncode != 0:
        stderr = done.stderr.strip()
        reason = stderr.splitlines()[-1] if stderr else f"ssh exited with {done.returncode}"
        if "verification failed" in stderr or "IDENTIFICATION HAS CHANGED" in stderr:
            reason = f"its host key does not match the pinned one in {known_hosts} ({reason})"
        raise ssh_error(done.stderr, f"{failure}: {reason}")
    return done.stdout


@dataclass
class Run:
    rc: int
    steps: list
    tail: list


def log_path(given: str | None, name: str) -> str:
    """given, or <name> in the cache directory (common/cache.py); its directory made private (0700) when missing."""
    path = given or cache_path(name)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    return path


def _kill_group(proc) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.killpg(proc.pid, signal.SIGKILL)


def secrets_of(env: dict | None, given=()) -> list:
    """The values to mask in a run's log: the given ones and those of env's secret variables."""
    named = [value for name, value in (os.environ if env is None else env).items() if SECRET_ENV.search(name)]
    return [v for v in {*given, *named} if v and len(v) >= SECRET_MIN]


def run_logged(argv: list, log_file: str, timeout: int, env: dict | None = None, secrets=()) -> Run:
    """Run argv, streaming its output to log_file (0600) and collecting the '### step ###' lines.

    The one place a run is logged, so the one place secrets are masked: the values in secrets and those of the
    secret variables of the environment the command gets (env, else ours) never reach the log or the tail.
    """
    steps, tail = [], deque(maxlen=TAIL_LINES)
    hidden = secrets_of(env, secrets)
    handle = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(handle, "w", encoding="utf-8") as log:
        log.write(mask("$ " + " ".join(shlex.quote(a) for a in argv), hidden) + "\n")
        with subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        ) as proc:
            # a timer, not a check per line: a tool that hangs without printing is stopped too, with the children
            # (ssh, nix) that would otherwise hold its output open
            stopped = threading.Event()
            timer = threading.Timer(timeout, lambda: (stopped.set(), _kill_group(proc)))
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
            if stopped.is_set():
                tool = os.path.basename(argv[0])
                raise HostError(f"{tool} ran longer than {timeout} s and was stopped", log_file=log_file)
    return Run(rc, steps, list(tail))

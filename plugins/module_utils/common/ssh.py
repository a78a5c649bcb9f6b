# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the modules that work on a host reach it over SSH: the Target to log in to, the one way to run a command
there (ssh_run), and what check mode does with a host it cannot reach or whose key is not pinned yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError, Unpinned, Unreachable
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import run

# The argument spec of nerv.homelab.ssh_target (doc fragment): how a module logs in to a host.
SSH_OPTIONS = {
    "port": {"type": "int", "default": 22},
    "user": {"type": "str", "default": "root"},
    "identity_file": {"type": "path"},
    "connect_timeout": {"type": "int", "default": 10},
}
# ...and which host: the options every module that works on one host over SSH takes (also in nerv.homelab.ssh_target).
TARGET_OPTIONS = {
    "host": {"type": "str", "required": True},
    "address": {"type": "str", "required": True},
    "known_hosts": {"type": "path", "required": True},
    **SSH_OPTIONS,
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
    if run(["ssh-keygen", "-F", name, "-f", known_hosts], 60).rc != 0:
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
    late = f"{target.host} at {target.address}:{target.port} did not answer over SSH within {timeout} s"
    done = run(argv, timeout, stdin=options.get("stdin"), error=Unreachable, late=late)
    if done.rc != 0:
        stderr = done.stderr.strip()
        reason = stderr.splitlines()[-1] if stderr else f"ssh exited with {done.rc}"
        if "verification failed" in stderr or "IDENTIFICATION HAS CHANGED" in stderr:
            reason = f"its host key does not match the pinned one in {known_hosts} ({reason})"
        raise ssh_error(done.stderr, f"{failure}: {reason}")
    return done.stdout

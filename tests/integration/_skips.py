"""Skip a test, saying exactly what is missing, when the machine lacks root, a tool or a shared fixture."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"
# Command -> the Debian package that installs it, so a skip says what to apt-get install.
DEBIAN_PACKAGES = {
    "nix-instantiate": "nix-bin",
    "nix": "nix-bin",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "age": "age",
    "age-keygen": "age",
    "ip": "iproute2",
    "unshare": "util-linux",
}
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def which(command: str) -> str | None:
    """The command's path; sbin directories count even when PATH leaves them out (sshd lives there)."""
    return shutil.which(command) or shutil.which(command, path=os.pathsep.join(SBIN))


def require_commands(*commands: str) -> dict[str, str]:
    """Paths of the commands; skips naming every missing one and its Debian package."""
    missing = [c for c in commands if which(c) is None]
    if missing:
        names = ", ".join(f"{c} (Debian package {DEBIAN_PACKAGES.get(c, 'unknown')})" for c in missing)
        pytest.skip(f"needs {names}: not found on PATH or in {', '.join(SBIN)}")
    return {c: which(c) for c in commands}


def require_root(why: str = "network namespaces") -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root for {why} (running as uid {os.geteuid()})")


def require_netns() -> None:
    """Root, unshare, and a kernel or container that lets us make a network namespace."""
    require_root("network namespaces")
    unshare = require_commands("unshare")["unshare"]
    probe = subprocess.run([unshare, "--net", "true"], capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"needs network namespaces: `unshare --net true` failed: {probe.stderr.strip()}")


def shared_fixture(*parts: str) -> Path:
    """A file or directory under ../shared/fixtures; skips when it is not there."""
    path = SHARED_FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture {path} is missing: these tests need the checkout's sibling shared/fixtures")
    return path

"""A LAN of real hosts made of network namespaces: a controller namespace with a bridge, and one namespace per
machine joined to it by a veth pair whose MAC the test sets, optionally running a real sshd.

Everything lives inside namespaces this helper creates (nothing touches the machine's own network) and is
removed by close(). Needs root: callers use _skips.require_netns() first.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ._skips import require_commands

_SERIAL = itertools.count()
CLONE_NEWNET = 0x40000000


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Machine:
    """How a machine with sshd looks from inside (private mount and UTS namespaces, nothing leaks out)."""

    host_key: Path | None = None  # sshd's private host key; one is made when not given
    authorized_keys: Path | None = None  # who may log in as root
    os_release: Path | None = None  # bind-mounted over /etc/os-release (a NixOS installer, say)
    hostname: str | None = None
    disks: tuple = ()  # names under /dev/disk/by-id, made as block nodes in a private /dev
    run_links: dict | None = None  # a private /run holding these symlinks (e.g. current-system -> a store path)
    etc_files: dict | None = None  # files added to a private copy of /etc (path relative to /etc -> content)
    local_bin: Path | None = None  # bind-mounted over /usr/local/bin: fake commands first on sshd sessions' PATH


@contextlib.contextmanager
def inside(namespace: str):
    """Run the with-block's socket calls in a named network namespace (this thread only): a server socket made
    there stays bound there, and a thread of the test can serve it (e.g. the Kubernetes API on a node's address).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net", "rb") as home, open(f"/run/netns/{namespace}", "rb") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's own namespace")


def keygen(path: Path) -> Path:
    """A fresh ed25519 key pair at path (and path.pub), no passphrase, no comment."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    return path


class Lan:
    """ctl namespace with bridge br0 at gateway/prefix; add() plugs machines into it."""

    def __init__(self, workdir: Path, address: str, prefix: int):
        self.tag = f"nv{os.getpid() % 100000}{next(_SERIAL)}"
        self.ctl = f"{self.tag}c"
        self.workdir, self.prefix = workdir, prefix
        self.namespaces: list[str] = []
        self.daemons: list[subprocess.Popen] = []
        self._ns(self.ctl)
        self.ctl_exec("ip", "link", "add", "br0", "type", "bridge")
        self.ctl_exec("ip", "addr", "add", f"{address}/{prefix}", "dev", "br0")
        self.ctl_exec("ip", "link", "set", "br0", "up")
        self.ctl_exec("ip", "link", "set", "lo", "up")

    def _ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.namespaces.append(name)

    def ctl_exec(self, *argv: str) -> None:
        _ip("netns", "exec", self.ctl, *argv)

    def command(self, *argv: str) -> list[str]:
        """argv run inside the controller namespace."""
        return ["ip", "netns", "exec", self.ctl, *argv]

    def add(self, mac: str, address: str, sshd: bool = False, machine: Machine | None = None) -> str:
        """A machine with this MAC and address on the LAN; with sshd (or a machine), a real sshd on port 22."""
        index = len(self.namespaces)
        name, outer, inner = f"{self.tag}h{index}", f"{self.tag}v{index}", f"{self.tag}p{index}"
        self._ns(name)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", outer, "netns", self.ctl)
        _ip("link", "set", inner, "netns", name)
        self.ctl_exec("ip", "link", "set", outer, "master", "br0")
        self.ctl_exec("ip", "link", "set", outer, "up")
        for argv in (
            ("ip", "link", "set", inner, "address", mac),
            ("ip", "addr", "add", f"{address}/{self.prefix}", "dev", inner),
            ("ip", "link", "set", inner, "up"),
            ("ip", "link", "set", "lo", "up"),
        ):
            _ip("netns", "exec", name, *argv)
        if sshd or machine:
            self._sshd(name, address, machine or Machine())
        return name

    def _sshd(self, namespace: str, address: str, machine: Machine) -> None:
        paths = require_commands("sshd", "ssh-keygen")
        key = machine.host_key or self.workdir / f"{namespace}_host_ed25519_key"
        if not key.exists():
            subprocess.run([paths["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        argv = [paths["sshd"], "-D", "-e", "-f", "/dev/null", "-h", str(key)]
        argv += ["-o", f"ListenAddress={address}", "-o", "PidFile=none", "-o", "UsePAM=no", "-o", "StrictModes=no"]
        if machine.authorized_keys:
            argv += ["-o", f"AuthorizedKeysFile={machine.authorized_keys}"]
        inside = _setup(machine) + self._etc(namespace, machine) + ["exec " + shlex.join(argv)]
        command = ["ip", "netns", "exec", namespace, "unshare", "--mount", "--uts", "sh", "-ec", "\n".join(inside)]
        daemon = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        self.daemons.append(daemon)
        self._wait_listening(namespace, address)

    def _etc(self, namespace: str, machine: Machine) -> list:
        """A private copy of /etc with the machine's extra files, bind-mounted over /etc in its namespace."""
        if not machine.etc_files:
            return []
        extra, copy = self.workdir / f"{namespace}-etc-extra", self.workdir / f"{namespace}-etc"
        for relative, content in machine.etc_files.items():
            path = extra / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        return [f"cp -a /etc {shlex.quote(str(copy))}", f"cp -a {shlex.quote(str(extra))}/. {shlex.quote(str(copy))}/",
                f"mount --bind {shlex.quote(str(copy))} /etc"]  # fmt: skip

    def _wait_listening(self, namespace: str, address: str) -> None:
        probe = (
            "import socket, sys, time\n"
            "for _ in range(100):\n"
            "    try:\n"
            "        socket.create_connection((sys.argv[1], 22), 0.2).close()\n"
            "        break\n"
            "    except OSError:\n"
            "        time.sleep(0.05)\n"
            "else:\n"
            "    raise SystemExit(1)\n"
        )
        done = subprocess.run(
            ["ip", "netns", "exec", namespace, "python3", "-c", probe, address], timeout=30, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"sshd in {namespace} did not listen on {address}:22")

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)


def _setup(machine: Machine) -> list:
    """Shell lines run in the machine's private mount and UTS namespaces before sshd starts."""
    lines = []
    if machine.os_release:
        lines.append(f"mount --bind {shlex.quote(str(machine.os_release))} /etc/os-release")
    if machine.hostname:
        lines.append(f"hostname {shlex.quote(machine.hostname)}")
    if machine.local_bin:
        lines.append(f"mount --bind {shlex.quote(str(machine.local_bin))} /usr/local/bin")
    if machine.run_links is not None:
        lines += ["mount -t tmpfs -o mode=755 tmpfs /run", "mkdir -p /run/sshd"]
        lines += [f"ln -s {shlex.quote(t)} /run/{shlex.quote(n)}" for n, t in machine.run_links.items()]
    if machine.disks:
        # a private /dev with the few nodes sshd and a shell need, and the machine's disks as block nodes
        lines += [
            "mount -t tmpfs -o mode=755 tmpfs /dev",
            "mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5",
            "mknod -m 666 /dev/random c 1 8; mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0",
            "mkdir -p /dev/disk/by-id",
        ]
        lines += [f"mknod /dev/disk/by-id/{shlex.quote(d)} b 7 {i}" for i, d in enumerate(machine.disks)]
    return lines

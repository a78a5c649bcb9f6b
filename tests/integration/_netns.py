"""A LAN of real hosts made of network namespaces: a controller namespace with a bridge, and one namespace per
machine joined to it by a veth pair whose MAC the test sets, optionally running a real sshd.

Everything lives inside namespaces this helper creates (nothing touches the machine's own network) and is
removed by close(). Needs root: callers use _skips.require_netns() first.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
from pathlib import Path

from ._skips import require_commands

_SERIAL = itertools.count()


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


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

    def add(self, mac: str, address: str, sshd: bool = False) -> str:
        """A machine with this MAC and address on the LAN; with sshd, a real sshd listens on port 22."""
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
        if sshd:
            self._sshd(name, address)
        return name

    def _sshd(self, namespace: str, address: str) -> None:
        paths = require_commands("sshd", "ssh-keygen")
        key = self.workdir / f"{namespace}_host_ed25519_key"
        if not key.exists():
            subprocess.run([paths["ssh-keygen"], "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        argv = [paths["sshd"], "-D", "-e", "-f", "/dev/null", "-h", str(key)]
        argv += ["-o", f"ListenAddress={address}", "-o", "PidFile=none", "-o", "UsePAM=no"]
        daemon = subprocess.Popen(["ip", "netns", "exec", namespace, *argv], stderr=subprocess.DEVNULL)
        self.daemons.append(daemon)
        self._wait_listening(namespace, address)

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

"""The commands of the docs, run as a user runs them: in a fresh copy of the repository, with a home of their own.

A doc's commands are the `$ ` lines of its ```console blocks; the lines after one, up to the next, are output it
shows (every one of them that is not `...` must appear in what the command printed). A Session runs commands one by
one in bash, carrying the shell's exported variables from one to the next as a terminal would (`. .venv/bin/activate`,
`export X=...`), optionally inside a network namespace that reaches nothing but its own loopback.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ._sites import REPO

FENCE = re.compile(r"^```console\n(.*?)^```", re.S | re.M)
HEADING = re.compile(r"^## (.+)$", re.M)
# Variables of the test's own environment that a new user would not have.
FOREIGN = ("ANSIBLE_", "SOPS_", "PROXMOX_", "NERV_", "VIRTUAL_ENV", "XDG_", "GITHUB_TOKEN", "PYTEST_", "CI")


@dataclass
class Command:
    text: str
    shows: list[str] = field(default_factory=list)


def commands(text: str) -> list[Command]:
    """The commands of a Markdown text, in order, with the output each shows."""
    found: list[Command] = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append(Command(line[2:].strip()))
            elif found and line.strip() and line.strip() != "...":
                found[-1].shows.append(line.strip())
    return found


def sections(text: str) -> dict[str, list[Command]]:
    """The commands under each `## ` heading (the text before the first heading under "")."""
    parts = HEADING.split(text)
    found = {"": commands(parts[0])}
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        found[title.strip()] = commands(body)
    return found


def copy_repository(dest: Path) -> Path:
    """The repository's files (tracked, and new ones git does not ignore), as a fresh clone has them, with the
    venv of these tests linked in as .venv (the one `make venv` made)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source, target = REPO / name, dest / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    return dest


@contextlib.contextmanager
def offline_namespace(name: str):
    """A network namespace with only its loopback up: every other address fails at once (no route)."""
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@dataclass
class Result:
    command: str
    rc: int
    output: str

    def describe(self) -> str:
        return f"$ {self.command}\nrc={self.rc}\n{self.output}"


class Session:
    """A terminal of a new user: cwd is the copy of the repository, HOME a fresh directory."""

    def __init__(self, root: Path, home: Path, namespace: str | None = None, env: dict | None = None):
        self.root, self.home, self.namespace = root, home, namespace
        self.state = home.parent / f"{home.name}.env"
        base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        base.update(HOME=str(home), NO_COLOR="1", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        self.env = {**base, **(env or {})}
        home.mkdir(parents=True, exist_ok=True)

    def run(self, command: str, timeout: int = 900) -> Result:
        """Run one command line as the user typed it; the exported variables it leaves carry on."""
        script = f"set -e\n[ -f {shlex.quote(str(self.state))} ] && . {shlex.quote(str(self.state))}\n"
        script += f"{command}\nexport -p > {shlex.quote(str(self.state))}\n"
        argv = ["bash", "-c", script]
        if self.namespace:
            argv = ["ip", "netns", "exec", self.namespace, *argv]
        done = subprocess.run(argv, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)  # fmt: skip
        return Result(command, done.returncode, done.stdout + done.stderr)

    def check(self, command: Command | str, failing: bool = False, **kwargs) -> Result:
        """run(), and assert it succeeded (failed, with failing) and printed what the doc shows."""
        text = command.text if isinstance(command, Command) else command
        result = self.run(text, **kwargs)
        assert (result.rc != 0) if failing else (result.rc == 0), result.describe()
        for line in command.shows if isinstance(command, Command) else []:
            assert line in result.output, f"the doc shows {line!r}, the command did not print it\n{result.describe()}"
        return result

"""Run the real ansible-playbook, ansible-inventory and ansible-doc of the venv that runs pytest."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"
JSON_CALLBACK = "nerv_harness_json"
TIMEOUT = 300


def executable(tool: str) -> Path:
    """The ansible tool installed next to the Python running the tests (the same venv)."""
    path = Path(sys.executable).parent / tool
    if not path.exists():
        pytest.fail(f"{tool} is not installed next to {sys.executable}: install ansible-core in this venv")
    return path


@dataclass
class AnsibleRun:
    """One finished run: exit code, both streams and, for playbooks, every task result."""

    args: list[str]
    rc: int
    stdout: str
    stderr: str
    results: dict[str, Any] | None = None
    timed_out: bool = False

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        """Command, code and output, for assertion messages."""
        return f"$ {' '.join(self.args)}\nrc={self.rc}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    def json(self) -> Any:
        """stdout parsed as JSON (ansible-inventory --list, ansible-doc --json)."""
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError(f"stdout is not JSON ({exc})\n{self.describe()}") from None

    def tasks(self, name: str) -> list[dict[str, dict[str, Any]]]:
        """Every run of the task called name (with or without its role prefix): {host: result} each."""
        if self.results is None:
            raise AssertionError(f"the playbook left no results (did it start?)\n{self.describe()}")
        return [
            task["hosts"]
            for play in self.results["plays"]
            for task in play["tasks"]
            if name in (task["name"], task["full_name"])
        ]

    def task_names(self) -> list[str]:
        """The full name (role prefix included) of every task the run reached, in order."""
        if self.results is None:
            raise AssertionError(f"the playbook left no results (did it start?)\n{self.describe()}")
        return [task["full_name"] for play in self.results["plays"] for task in play["tasks"]]

    def task(self, name: str, host: str = "localhost") -> dict[str, Any]:
        """The result of the one task called name on host; fails when it ran on host never or more than once."""
        found = [hosts[host] for hosts in self.tasks(name) if host in hosts]
        if len(found) != 1:
            raise AssertionError(f"task {name!r} ran {len(found)} times on {host}, expected once\n{self.describe()}")
        return found[0]

    def stats(self, host: str = "localhost") -> dict[str, int]:
        if self.results is None:
            raise AssertionError(f"the playbook left no results\n{self.describe()}")
        return self.results["stats"][host]


@dataclass
class AnsibleCli:
    """ansible-* commands run from the repository root with a hermetic environment under tmp_path."""

    tmp_path: Path
    repo: Path = REPO
    timeout: int = TIMEOUT
    env: dict[str, str] = field(default_factory=dict)
    # Prepended to every command, e.g. ["ip", "netns", "exec", "<ns>"] to run inside a test network namespace.
    wrapper: list[str] = field(default_factory=list)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        temp = self.tmp_path / "ansible-tmp"
        temp.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(
            ANSIBLE_CONFIG=str(self.repo / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(self.repo / "collections"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_HOST_KEY_CHECKING="False",
            ANSIBLE_LOCAL_TEMP=str(temp / "local"),
            ANSIBLE_REMOTE_TEMP=str(temp / "remote"),
            # the job files of async tasks: absolute, as a test's own HOME would part the module (which expands ~
            # with $HOME) from async_status (which expands ~<user> from the password database)
            ANSIBLE_ASYNC_DIR=str(temp / "async"),
            ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
            ANSIBLE_CALLBACKS_ENABLED=JSON_CALLBACK,
            ANSIBLE_RETRY_FILES_ENABLED="False",
        )
        env.update(self.env)
        env.update(extra or {})
        return env

    def run(self, tool: str, *args: str, env: dict[str, str] | None = None, timeout: int | None = None) -> AnsibleRun:
        """Run tool with args; a run that outlives the timeout is killed with its workers and fails the test."""
        argv = [*self.wrapper, str(executable(tool)), *map(str, args)]
        limit = timeout or self.timeout
        with subprocess.Popen(
            argv,
            cwd=self.repo,
            env=self.environment(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                _kill_tree(proc.pid)
                stdout, stderr = proc.communicate()
                run = AnsibleRun(argv, proc.returncode, stdout, stderr, timed_out=True)
                pytest.fail(f"timed out after {limit} s\n{run.describe()}")
        return AnsibleRun(argv, proc.returncode, stdout, stderr)

    def inventory(self, *args: str, **kwargs: Any) -> AnsibleRun:
        return self.run("ansible-inventory", *args, **kwargs)

    def doc(self, *args: str, **kwargs: Any) -> AnsibleRun:
        return self.run("ansible-doc", *args, **kwargs)

    def localhost_inventory(self) -> Path:
        """An inventory of localhost alone, run locally with this Python (it has the test dependencies)."""
        path = self.tmp_path / "localhost.yml"
        localhost = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        path.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": localhost}}}))
        return path

    def write_playbook(self, plays: list[dict[str, Any]], name: str = "playbook.yml") -> Path:
        path = self.tmp_path / name
        path.write_text(yaml.safe_dump(plays, sort_keys=False))
        return path

    def playbook(
        self,
        playbook: Path | list[dict[str, Any]],
        *args: str,
        inventory: Path | str | None = None,
        extra_vars: dict[str, Any] | None = None,
        check: bool = False,
        **kwargs: Any,
    ) -> AnsibleRun:
        """Run a playbook (a path, or plays to write first); results of every task land in run.results."""
        path = playbook if isinstance(playbook, Path) else self.write_playbook(playbook)
        serial = _count(self.tmp_path)
        output = self.tmp_path / f"results-{path.stem}-{serial}.json"
        argv = ["-i", str(inventory or self.localhost_inventory()), str(path), *args]
        if extra_vars:  # from a file: values may be secrets, and argv is visible to every local user
            varfile = self.tmp_path / f"extra-vars-{serial}.json"
            varfile.write_text(json.dumps(extra_vars))
            argv += ["--extra-vars", f"@{varfile}"]
        if check:
            argv.append("--check")
        env = dict(kwargs.pop("env", None) or {}, NERV_HARNESS_JSON_OUTPUT=str(output))
        run = self.run("ansible-playbook", *argv, env=env, **kwargs)
        if output.exists():
            run.results = json.loads(output.read_text(encoding="utf-8"))
        return run


def plain(value):
    """ansible-inventory --list writes strings marked unsafe as {"__ansible_unsafe": str}: the str, everywhere."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def files_holding(directory: Path, data: bytes) -> list[Path]:
    """The files under directory that hold data, e.g. a secret (a file removed while this looks is not one)."""
    found = []
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and data in path.read_bytes():
                found.append(path)
    return found


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (empty where there is no /proc)."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(stat.parent.name))
    return tree


def _kill_tree(pid: int) -> None:
    """SIGKILL pid and every descendant: ansible's workers call setsid, so killing the group misses them."""
    tree, todo, found = _children(), [pid], []
    while todo:
        found.append(todo.pop())
        todo.extend(tree.get(found[-1], []))
    for victim in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(victim) for victim in found) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True until the process is gone or a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _count(directory: Path) -> int:
    return len(list(directory.glob("results-*.json")))

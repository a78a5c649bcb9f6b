"""README's "Install from Galaxy or a tarball", run as written: in a copy of the checkout, with a HOME of its own,
the commands of its console block build the tarball, install it into ~/.ansible/collections and point pip at the
requirements.txt inside the installed collection. The doc and the test share the commands, so neither can drift.

Two departures, both stated: the pip line gets `--dry-run --report` (it resolves against the test's venv and
installs nothing), and the install by name is checked to be the tarball install's twin but not run (it needs a
Galaxy server)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from .._docs import copy_repository, sections
from .._sites import REPO

HEADING = "## Install from Galaxy or a tarball"
INSTALLED = Path(".ansible/collections/ansible_collections/nerv/homelab")


def readme_commands() -> list[str]:
    """The commands of the section HEADING, trailing comments dropped."""
    found = sections((REPO / "README.md").read_text()).get(HEADING[3:])
    assert found, f"README.md has no commands under {HEADING!r}"
    return [re.sub(r"\s+#.*$", "", command.text).strip() for command in found]


def shell(line: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip


def test_the_readme_names_build_install_by_file_and_name_and_pip():
    commands = readme_commands()
    assert [c.split()[:3] for c in commands[:3]] == [["ansible-galaxy", "collection", verb] for verb in
                                                     ("build", "install", "install")], commands  # fmt: skip
    by_file, by_name = shlex.split(commands[1]), shlex.split(commands[2])
    assert by_name[3] == "nerv.homelab" and by_file[4:] == by_name[4:], "the two installs go to the same path"
    assert re.fullmatch(r"python3 -m pip install -r \S+/ansible_collections/nerv/homelab/requirements\.txt",
                        commands[3]), commands[3]  # fmt: skip


def test_the_readme_install_commands_work_as_written(tmp_path):
    checkout, home = tmp_path / "checkout", tmp_path / "home"
    checkout.mkdir()
    home.mkdir()
    copy_repository(checkout)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    # python3, pip and ansible-galaxy are the venv's: the Python that runs Ansible, as the README asks
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    env.update(ANSIBLE_NOCOLOR="1")
    report = tmp_path / "pip-report.json"
    build, by_file, _by_name, pip = readme_commands()

    for line in (build, by_file, f"{pip} --dry-run --report {report}"):
        done = shell(line, checkout, env)
        assert done.returncode == 0, f"$ {line}\n{done.stdout}{done.stderr}"

    installed = home / INSTALLED
    assert (installed / "MANIFEST.json").is_file(), "the tarball install did not land in ~/.ansible/collections"
    assert (installed / "requirements.txt").read_text() == (REPO / "requirements.txt").read_text()
    resolved = json.loads(report.read_text())
    # everything requirements.txt names is in the test's venv: pip resolved it and has nothing to install
    assert resolved["install"] == [], [item["metadata"]["name"] for item in resolved["install"]]

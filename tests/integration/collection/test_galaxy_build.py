"""The collection as users get it: `ansible-galaxy collection build` makes a tarball that carries what the installed
collection runs and nothing of the development tree, and that installs into an empty collections path, where
ansible-doc shows every plugin and ansible-playbook finds nerv.homelab.site."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from .._ansible import executable
from .._sites import REPO

PLUGIN_TYPES = {"modules": "module", "inventory": "inventory", "lookup": "lookup", "filter": "filter"}
PLUGIN_TYPES["callback"] = "callback"
# Never in the tarball: virtual environments, caches, test output, controller state.
NOT_SHIPPED = (".venv/", "bench/.venv/", "__pycache__/", ".pytest_cache/", ".ruff_cache/", "tests/output/", "/.state/")
# Nor the development tree: tests, benchmarks, the demo (hacking/ and its fakepve site), CI, molecule scenarios,
# unreleased changelog fragments, the tools' configuration.
DEV_TREES = ("tests/", "bench/", "hacking/", "changelogs/fragments/", ".ci/", ".config/", "inventory/demo/")
DEV_FILES = {
    "Makefile",
    "pyproject.toml",
    "requirements-test.txt",
    "requirements-demo.txt",
    ".ansible-lint",
    ".gitignore",
}
# What an installed collection needs beyond its plugins: the Python and system requirements (named by
# meta/execution-environment.yml for ansible-builder), the flake the roles build from, the playbooks' templates.
SHIPPED = (
    "requirements.txt",
    "bindep.txt",
    "meta/runtime.yml",
    "meta/execution-environment.yml",
    "nix/flake.nix",
    "playbooks/site.yml",
    "playbooks/templates/summary.txt.j2",
    "README.md",
    "docs/execution-environment.md",
)


def plugins() -> list[tuple[str, str]]:
    found = []
    for directory, kind in PLUGIN_TYPES.items():
        for path in sorted((REPO / "plugins" / directory).glob("*.py")):
            if path.name.startswith("_"):
                continue
            if kind == "filter":  # a filter file holds several filters, each documented by name
                found += [(kind, name) for name in filter_names(path)]
            else:
                found.append((kind, path.stem))
    return found


def filter_names(path: Path) -> list[str]:
    docs = sorted(p.stem for p in path.parent.glob("*.yml"))
    return docs or [path.stem]


def run(*argv, env=None, cwd=REPO):
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    """The tarball `ansible-galaxy collection build` makes of the working tree."""
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    dist = tmp_path_factory.mktemp("dist")
    built = run(executable("ansible-galaxy"), "collection", "build", str(REPO), "--output-path", dist)
    assert built.returncode == 0, built.stdout + built.stderr
    return dist / f"nerv-homelab-{version}.tar.gz"


def test_the_tarball_carries_what_runs_and_none_of_the_development_tree(tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    dev = [n for n in names if n in DEV_FILES or any(f"{n}/".startswith(tree) for tree in DEV_TREES)]
    dev += [n for n in names if "/molecule/" in f"/{n}/"]
    assert dev == [], f"the tarball carries the development tree: {dev[:10]}"
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
    wanted = [*SHIPPED, *(f"roles/{role}/tasks/main.yml" for role in roles)]
    assert [n for n in wanted if n not in names] == []
    ee = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())["dependencies"]
    assert ee["python"] in names and ee["system"] in names, ee
    # what the roles read through role_path (the flake in nix/, ...) must ship beside them
    for path in sorted((REPO / "roles").glob("*/*/*.yml")):
        for top in re.findall(r"role_path \}\}/\.\./\.\./([\w.-]+)", path.read_text()):
            assert any(n.startswith(f"{top}/") for n in names), f"{path.relative_to(REPO)} reads {top}/, not shipped"


def test_the_built_collection_installs_and_documents_every_plugin(tmp_path, tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "MANIFEST.json" in names and "playbooks/site.yml" in names and "roles/site/tasks/main.yml" in names
    shipped = [n for n in names if any(part in f"/{n}/" for part in NOT_SHIPPED)]
    assert shipped == [], f"the tarball carries {shipped[:5]}"

    target = tmp_path / "collections"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(target), ANSIBLE_HOME=str(tmp_path / "home"), ANSIBLE_NOCOLOR="1")
    installed = run(executable("ansible-galaxy"), "collection", "install", tarball, "-p", target, env=env,
                    cwd=tmp_path)  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    root = target / "ansible_collections" / "nerv" / "homelab"
    assert (root / "MANIFEST.json").is_file()

    for kind, name in plugins():
        doc = run(executable("ansible-doc"), "-t", kind, "--json", f"nerv.homelab.{name}", env=env, cwd=tmp_path)
        assert doc.returncode == 0, f"{kind} {name}: {doc.stdout + doc.stderr}"
        found = json.loads(doc.stdout)[f"nerv.homelab.{name}"]["doc"]
        assert Path(found["filename"]).resolve().is_relative_to(root.resolve()), found["filename"]

    listed = run(executable("ansible-playbook"), "nerv.homelab.site", "--list-tags", "-i", "localhost,", env=env,
                 cwd=tmp_path)  # fmt: skip
    assert listed.returncode == 0 and "bootstrap" in listed.stdout, listed.stdout + listed.stderr

    # the collection's progress output, set as README.md tells users of an installed collection
    play = tmp_path / "hello.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hello}\n")
    env.update(ANSIBLE_STDOUT_CALLBACK="nerv.homelab.progress")
    hello = run(executable("ansible-playbook"), play, "-i", "localhost,", env=env, cwd=tmp_path)
    assert hello.returncode == 0 and '"msg": "hello"' in hello.stdout, hello.stdout + hello.stderr

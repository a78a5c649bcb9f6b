"""The collection as users get it: `ansible-galaxy collection build` makes a tarball that installs into an empty
collections path, where ansible-doc shows every plugin and ansible-playbook finds nerv.homelab.site."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import yaml

from .._ansible import executable
from .._sites import REPO

PLUGIN_TYPES = {"modules": "module", "inventory": "inventory", "lookup": "lookup", "filter": "filter"}
PLUGIN_TYPES["callback"] = "callback"
# Never in the tarball: virtual environments, caches, test output, controller state.
NOT_SHIPPED = (".venv/", "bench/.venv/", "__pycache__/", ".pytest_cache/", ".ruff_cache/", "tests/output/", "/.state/")


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


def test_the_built_collection_installs_and_documents_every_plugin(tmp_path):
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    built = run(executable("ansible-galaxy"), "collection", "build", str(REPO), "--output-path", tmp_path / "dist")
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = tmp_path / "dist" / f"nerv-homelab-{version}.tar.gz"
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

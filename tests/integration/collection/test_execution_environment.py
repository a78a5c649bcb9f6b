"""execution-environment.yml: ansible-builder makes a build context from it (no container runtime is needed for
that), installing the collection's Python requirements, its system tools and the collection tarball."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .._ansible import executable
from .._sites import REPO


def test_ansible_builder_makes_a_context_with_the_collection(tmp_path):
    builder = Path(sys.executable).parent / "ansible-builder"
    if not builder.exists():
        pytest.skip("needs ansible-builder (requirements-test.txt)")
    work = tmp_path / "ee"
    work.mkdir()
    for name in ("execution-environment.yml", "requirements.txt", "requirements.yml", "bindep.txt"):
        shutil.copy(REPO / name, work / name)
    built = subprocess.run([str(executable("ansible-galaxy")), "collection", "build", str(REPO), "--output-path",
                            str(work / "dist")], capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    made = subprocess.run([str(builder), "create", "-f", "execution-environment.yml", "-c", "context"], cwd=work,
                          capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    context = work / "context"
    recipe = next(p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()).read_text()
    assert "ansible-galaxy collection install /tmp/nerv-collections/" in recipe
    assert list((context / "_build" / "collections").glob("nerv-homelab-*.tar.gz")), "the tarball is in the context"
    requirements = (context / "_build" / "requirements.txt").read_text()
    for package in ("pyrage", "kubernetes", "proxmoxer"):
        assert package in requirements, f"{package} is not installed in the image"
    assert "git" in (context / "_build" / "bindep.txt").read_text()

"""execution-environment.yml: ansible-builder makes a build context from it (no container runtime is needed for
that). The collection is installed in the galaxy stage, where the builder stage's introspection finds its Python
and system requirements (meta/execution-environment.yml), exactly as for a collection from Galaxy: the test runs
ansible-builder's own introspect script on the tarball installed the same way. The final stage adds nix with flakes,
nixos-anywhere, nixos-rebuild and a checksum-verified flux CLI. No image is built here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from .._ansible import executable
from .._sites import REPO

# ansible-builder's introspection leaves these out of a collection's requirements: the image has them already
INTROSPECTION_SKIPS = {"ansible-core", "pyyaml"}


def run(*argv, cwd=None):
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


def stage(recipe: str, name: str) -> str:
    """The lines of one build stage (FROM ... AS name) of the Containerfile."""
    parts = re.split(r"^FROM \S+ AS (\w+)$", recipe, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))[name]


def requirement_names(path: Path) -> set[str]:
    lines = (re.sub(r"\s+#.*$", "", line).strip() for line in path.read_text().splitlines())
    return {Requirement(line).name.lower() for line in lines if line and not line.startswith("#")}


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    builder = Path(sys.executable).parent / "ansible-builder"
    if not builder.exists():
        pytest.skip("needs ansible-builder (requirements-test.txt)")
    work = tmp_path_factory.mktemp("ee")
    for name in ("execution-environment.yml", "requirements.yml"):
        shutil.copy(REPO / name, work / name)
    built = run(executable("ansible-galaxy"), "collection", "build", REPO, "--output-path", work / "dist")
    assert built.returncode == 0, built.stdout + built.stderr
    made = run(builder, "create", "-f", "execution-environment.yml", "-c", "context", cwd=work)
    assert made.returncode == 0, made.stdout + made.stderr
    return work / "context"


def recipe_of(context: Path) -> str:
    return next(p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()).read_text()


def test_the_galaxy_stage_installs_the_tarball_from_the_context(context):
    galaxy = stage(recipe_of(context), "galaxy")
    assert "COPY _build /build" in galaxy
    install = re.search(r"^RUN ansible-galaxy collection install (/build/(\S+)) --collections-path "
                        r"/usr/share/ansible/collections$", galaxy, re.MULTILINE)  # fmt: skip
    assert install, galaxy
    assert list((context / "_build").glob(install.group(2))), f"{install.group(1)} matches no file of the context"


def test_introspection_finds_the_collections_requirements(context, tmp_path):
    tarball = next((context / "_build" / "collections").glob("nerv-homelab-*.tar.gz"))
    collections = tmp_path / "usr-share-ansible" / "collections"
    # from tmp_path: the repository's ansible.cfg would show nerv.homelab as installed already (collections/)
    installed = run(executable("ansible-galaxy"), "collection", "install", tarball, "--collections-path", collections,
                    cwd=tmp_path)  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "introspect.py introspect" in stage(recipe_of(context), "builder")
    # one list: the image takes the installed collection's requirements, the definition names none of its own
    assert not [p.name for p in (context / "_build").glob("*.txt")], "execution-environment.yml lists requirements"
    pip, bindep = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    found = run(sys.executable, context / "_build" / "scripts" / "introspect.py", "introspect", collections,
                f"--write-pip={pip}", f"--write-bindep={bindep}")  # fmt: skip
    assert found.returncode == 0, found.stdout + found.stderr
    wanted = requirement_names(REPO / "requirements.txt") - INTROSPECTION_SKIPS
    assert {"proxmoxer", "pyrage", "kubernetes"} <= wanted
    assert requirement_names(pip) >= wanted, pip.read_text()
    system = bindep.read_text()
    assert re.search(r"^git\b", system, re.MULTILINE) and "openssh-clients [platform:rpm]" in system, system


def test_the_final_stage_adds_nix_the_nixos_tools_and_a_verified_flux(context):
    final = stage(recipe_of(context), "final")
    assert re.search(r"^COPY --from=docker\.io/nixos/nix:\d+\.\d+\.\d+ \S* ?/nix /nix$", final, re.MULTILINE), final
    assert "experimental-features = nix-command flakes" in final and "> /etc/nix/nix.conf" in final
    assert "github:nix-community/nixos-anywhere/" in final and "#nixos-rebuild" in final
    for tool in ("nix", "nixos-anywhere", "nixos-rebuild"):
        assert re.search(rf"ln -s [^&]*/bin/{tool}[\s*][^&]*/usr/local/bin/", final), f"{tool} is not on PATH"
    flux = re.search(r"download/v(\S+)/flux_\1_linux_amd64\.tar\.gz.*echo '([0-9a-f]{64})  (\S+)' \| sha256sum -c -",
                     final)  # fmt: skip
    assert flux, "the flux CLI is not downloaded with its checksum checked"
    assert "/usr/local/bin" in final.split(flux.group(0), 1)[1].split("\n", 1)[0]
    # the image's user (uid 1000, or any uid in group 0) owns the store nix works in
    assert "--chown=1000:0" in final and "chmod -R g=u /nix/var" in final
    assert final.index("COPY --from=docker.io/nixos/nix") < final.index("nix profile install")

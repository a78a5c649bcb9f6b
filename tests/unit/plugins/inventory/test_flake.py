"""nerv.homelab.flake claims only its own configuration files."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.inventory.flake import InventoryModule


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("flake.yml", True),
        ("flake.yaml", True),
        ("fleet.flake.yml", True),
        ("fleet.flake.yaml", True),
        ("myflake.yml", False),
        ("flake.nix", False),
        ("site.yml", False),
        ("proxmox.yml", False),
    ],
)
def test_verify_file(tmp_path, name, ours):
    path = tmp_path / name
    path.write_text("plugin: nerv.homelab.flake\n")
    assert InventoryModule().verify_file(str(path)) is ours


def test_a_missing_file_is_not_ours(tmp_path):
    assert not InventoryModule().verify_file(str(tmp_path / "flake.yml"))

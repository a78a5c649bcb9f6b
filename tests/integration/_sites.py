"""Where the site directories and their site files are."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory"
DEMO_SITE = INVENTORY / "demo" / "site.yml"
# The sites the repository ships; every one must validate and load as an inventory.
SHIPPED_SITES = ("demo", "example-proxmox", "example-baremetal")


def site_dirs() -> list[Path]:
    """Every directory under inventory/ (each is one site)."""
    if not INVENTORY.is_dir():
        return []
    return sorted(p for p in INVENTORY.iterdir() if p.is_dir() and not p.name.startswith("."))


def site_file(site: str) -> Path:
    return INVENTORY / site / "site.yml"


@functools.cache
def site_schema() -> dict:
    """SITE_SCHEMA of plugins/module_utils/_site_schema.py, loaded by path (it needs no ansible imports)."""
    path = REPO / "plugins" / "module_utils" / "_site_schema.py"
    spec = importlib.util.spec_from_file_location("_nerv_site_schema", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SITE_SCHEMA

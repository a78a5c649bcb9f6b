"""Every site directory under inventory/ loads as an Ansible inventory, cleanly, without its site.yml and
without asking Proxmox (its proxmox.yml is a source of its own: docs/inventory.md)."""

from __future__ import annotations

import configparser
import re

import pytest
import yaml

from .._ansible import REPO
from .._sites import INVENTORY, SHIPPED_SITES, site_dirs

# What ansible.cfg must keep out of `-i inventory/<site>`: the site model, and the live Proxmox source.
MUST_IGNORE = ("site.yml", "site.yaml", "site.schema.json", "proxmox.yml", "proxmox.yaml")


def ignore_patterns():
    """[inventory] ignore_patterns of the repository's ansible.cfg, compiled."""
    config = configparser.ConfigParser()
    config.read(REPO / "ansible.cfg")
    raw = config.get("inventory", "ignore_patterns", fallback="")
    return [re.compile(p.strip()) for p in raw.split(",") if p.strip()]


def ignored(name):
    return any(p.search(name) for p in ignore_patterns())


def declared(site_dir):
    """(hosts, groups) the directory's inventory files declare."""
    hosts, groups = set(), set()
    for path in sorted(site_dir.iterdir()):
        if path.is_file() and path.suffix in (".yml", ".yaml") and not ignored(path.name):
            _walk_group(yaml.safe_load(path.read_text()) or {}, hosts, groups)
    return hosts, groups


def _walk_group(groups_map, hosts, groups):
    for name, body in groups_map.items():
        groups.add(name)
        body = body or {}
        hosts.update(body.get("hosts") or {})
        _walk_group(body.get("children") or {}, hosts, groups)


def test_the_shipped_sites_exist():
    assert {d.name for d in site_dirs()} >= set(SHIPPED_SITES)


@pytest.mark.parametrize("name", MUST_IGNORE)
def test_ansible_cfg_keeps_the_site_model_and_the_live_source_out_of_directory_inventories(name):
    assert ignored(name), f"ansible.cfg [inventory] ignore_patterns must match {name}"
    assert not ignored("hosts.yml")


@pytest.mark.parametrize("site", ["demo", "example-proxmox"])
def test_proxmox_sites_ship_a_proxmox_source_reading_their_site_file(site):
    source = yaml.safe_load((INVENTORY / site / "proxmox.yml").read_text())
    assert source == {"plugin": "nerv.homelab.proxmox", "site_file": "site.yml"}


@pytest.mark.parametrize("site_dir", site_dirs(), ids=lambda d: d.name)
def test_site_directory_is_a_clean_inventory(ansible_cli, site_dir):
    run = ansible_cli.inventory("-i", str(site_dir.relative_to(INVENTORY.parent)), "--list")
    assert run.rc == 0, run.describe()
    assert "Failed to parse" not in run.output, run.describe()
    assert "[WARNING]" not in run.stderr, run.describe()
    assert "site.y" not in run.stderr, run.describe()

    listing = run.json()
    hosts, groups = declared(site_dir)
    found = set(listing["_meta"]["hostvars"])
    assert found == (hosts or {"localhost"}), run.stdout
    unexpected = set(listing) - {"_meta", "all", "ungrouped"} - groups
    assert not unexpected, f"groups {sorted(unexpected)} come from a file that is not an inventory source (site.yml?)"

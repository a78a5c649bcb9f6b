"""Every site directory under inventory/ loads as an Ansible inventory, cleanly, without its site.yml."""

from __future__ import annotations

import pytest
import yaml

from ._sites import INVENTORY, SHIPPED_SITES, site_dirs

# ansible.cfg keeps these out of the inventory: they are the site model, not inventory sources.
NOT_INVENTORY = ("site.yml", "site.yaml", "site.schema.json")


def declared(site_dir):
    """(hosts, groups) the directory's inventory files declare."""
    hosts, groups = set(), set()
    for path in sorted(site_dir.iterdir()):
        if path.is_file() and path.suffix in (".yml", ".yaml") and path.name not in NOT_INVENTORY:
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

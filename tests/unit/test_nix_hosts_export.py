"""The collection's export of a site for the flake (filter nerv.homelab.nix_hosts), checked by the flake's own
mapping (nix/lib/hosts.nix, evaluated by Nix): what Python writes is what Nix accepts, for every shipped site."""

from __future__ import annotations

import json

import pytest
from nix_helpers import NIX_DIR, REPO, nix_eval, nix_string

from ansible_collections.nerv.homelab.plugins.filter.nix_hosts import nix_hosts
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site

SITES = ("demo", "example-proxmox", "example-baremetal")


def evaluate(nix_instantiate, data, tmp_path):
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(data))
    mapping = nix_string(str(NIX_DIR / "lib" / "hosts.nix"))
    expr = f"import {mapping} (builtins.fromJSON (builtins.readFile {nix_string(str(path))}))"
    return nix_eval(nix_instantiate, expr)


@pytest.mark.parametrize("site_name", SITES)
def test_every_shipped_site_exports_hosts_the_flake_accepts(nix_instantiate, tmp_path, site_name):
    site = load_site(str(REPO / "inventory" / site_name / "site.yml"))
    mapped = evaluate(nix_instantiate, nix_hosts(site), tmp_path)
    assert mapped["names"] == [h["name"] for h in site["hosts"]]
    first = next(h for h in site["hosts"] if h["role"] == "control-plane")
    for host in site["hosts"]:
        settings = mapped["hosts"][host["name"]]
        assert settings["address"] == host["ip"].split("/")[0]
        assert settings["k3s"]["role"] == ("server" if host["role"] == "control-plane" else "agent")
        assert settings["k3s"]["clusterInit"] == (host is first)
        if host["kind"] == "baremetal":
            assert settings["disk"] == host["disk_id"] and settings["mac"] == host["mac"].lower()


def test_the_shipped_example_is_the_demo_site_export():
    site = load_site(str(REPO / "inventory" / "demo" / "site.yml"))
    shipped = json.loads((NIX_DIR / "hosts.json").read_text())
    exported = nix_hosts(site)
    # nix/hosts.json is the demo site without worker2 (one VM worker is enough for the example)
    exported["hosts"] = [h for h in exported["hosts"] if h["name"] != "worker2"]
    assert shipped == exported

"""gitops_render in a real playbook: check mode writes nothing, the first run writes the platform, the second
changes nothing, and a change of the site's MetalLB pool rewrites exactly that file."""

from __future__ import annotations

import shutil

import yaml

from .._sites import INVENTORY


def render(ansible_cli, site_file, checkout, check=False):
    task = {"name": "render", "nerv.homelab.gitops_render": {"site_file": str(site_file), "dest": str(checkout)}}
    result = ansible_cli.playbook([{"name": "g", "hosts": "localhost", "gather_facts": False, "tasks": [task]}],
                                  "--diff", check=check)  # fmt: skip
    assert result.rc == 0, result.describe()
    return result, result.task("render")


def test_render_once_then_only_what_changed(ansible_cli, tmp_path):
    site_file = tmp_path / "site.yml"
    shutil.copy(INVENTORY / "example-proxmox" / "site.yml", site_file)
    checkout = tmp_path / "gitops"
    checkout.mkdir()

    _result, checked = render(ansible_cli, site_file, checkout, check=True)
    assert checked["changed"] and list(checkout.iterdir()) == []

    _result, first = render(ansible_cli, site_file, checkout)
    assert first["changed"] and first["changed_files"] == first["files"]
    stages = list(yaml.safe_load_all((checkout / "clusters/home/stages.yaml").read_text()))
    assert [s["metadata"]["name"] for s in stages] == ["infrastructure", "infrastructure-config", "platform", "apps"]

    _result, second = render(ansible_cli, site_file, checkout)
    assert not second["changed"] and second["changed_files"] == []

    site = yaml.safe_load(site_file.read_text())
    site["metallb"]["addresses"] = ["192.168.10.224/28"]
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    result, third = render(ansible_cli, site_file, checkout)
    assert third["changed_files"] == ["platform/home/infrastructure-config/metallb-pool.yaml"]
    assert "192.168.10.224/28" in result.output, "--diff shows the change"


def test_a_missing_checkout_is_a_clear_error(ansible_cli, tmp_path):
    task = {"name": "render", "nerv.homelab.gitops_render": {
        "site_file": str(INVENTORY / "example-proxmox" / "site.yml"), "dest": str(tmp_path / "nope")}}  # fmt: skip
    result = ansible_cli.playbook([{"name": "g", "hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    assert result.rc != 0 and "is not a directory" in result.task("render")["msg"]

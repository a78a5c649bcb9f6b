"""playbooks/provision.yml and playbooks/teardown.yml against fakepve; a thread plays the guests' agents."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from .._ansible import files_holding

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "hacking"))

from fakepve_site import guest_agent  # noqa: E402

TEMPLATE = 9000


class Guests(threading.Thread):
    """Gives a started clone of the site its guest agent (address from cloud-init, a host key) a moment later."""

    def __init__(self, pve):
        super().__init__(daemon=True)
        self.pve, self.done = pve, threading.Event()

    def run(self):
        while not self.done.wait(0.5):
            for vm in list(self.pve.vms):
                if vm.status == "running" and vm.agent is None and "nerv-site-" in str(vm.config.get("tags", "")):
                    vm.agent = guest_agent(vm)


@pytest.fixture
def site_inventory(pve_site, tmp_path):
    """An inventory whose site points at the fake (worker2 lands on pve2 through the shared storage, the workers'
    disks are grown from the template's), and the fake's template tagged as ours."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    site = pve_site.site_for_fake()
    site_file = tmp_path / "site" / "site.yml"
    site_file.parent.mkdir()
    site_file.write_text(yaml.safe_dump(site, sort_keys=False))
    localhost = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": localhost}}}))
    (inventory / "group_vars").mkdir()
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump({"nerv_site_file": str(site_file)}))
    template = pve_site.pve.vm(TEMPLATE)
    template.config["tags"] = "nerv-template;nerv-build-test;nerv-phase-template"
    return inventory, site, site_file


def playbook(ansible_cli, pve_site, inventory, name, **extra):
    return ansible_cli.playbook(
        (REPO / "playbooks" / name).resolve(), inventory=inventory, extra_vars=extra or None, env=pve_site.env
    )


def test_provision_then_teardown(ansible_cli, pve_site, site_inventory):
    inventory, site, site_file = site_inventory
    guests = Guests(pve_site.pve)
    guests.start()
    try:
        first = playbook(ansible_cli, pve_site, inventory, "provision.yml", proxmox_vms_wait_timeout=60)
        pve_site.pve.requests.clear()
        second = playbook(ansible_cli, pve_site, inventory, "provision.yml", proxmox_vms_wait_timeout=60)
    finally:
        guests.done.set()
    assert first.rc == 0, first.describe()
    assert second.rc == 0, second.describe()
    assert second.stats()["changed"] == 0, second.describe()
    assert [m for m, _p, _b in pve_site.pve.requests if m != "GET"] == [], "a no-op re-run wrote"
    vms = [h for h in site["hosts"] if h["kind"] == "vm"]
    for host in vms:
        vm = pve_site.pve.vm(host["vmid"])
        assert vm.status == "running" and "nerv-site-demo" in vm.config["tags"]
    known = (site_file.parent / "known_hosts").read_text().split("\n")
    assert sorted(line.split()[0] for line in known if line) == sorted(h["ip"].split("/")[0] for h in vms)
    assert pve_site.token_secret not in first.output + second.output
    # the jobs of the VMs leave their results behind (async with poll 0): the token secret is in none of them, and
    # gone from the temporary directories once each job's watcher has removed its module (it looks every 5 s)
    secret = pve_site.token_secret.encode()
    jobs = list((ansible_cli.tmp_path / "ansible-tmp" / "async").iterdir())
    assert len(jobs) >= len(vms) and not [p for p in jobs if secret in p.read_bytes()], jobs
    deadline = time.monotonic() + 20
    while (holding := files_holding(ansible_cli.tmp_path / "ansible-tmp", secret)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert holding == [], holding

    refused = playbook(ansible_cli, pve_site, inventory, "teardown.yml")
    assert refused.rc != 0 and "-e confirm=demo" in refused.output
    assert all(pve_site.pve.guest(h["vmid"]) for h in vms), "nothing removed without confirmation"

    removed = playbook(ansible_cli, pve_site, inventory, "teardown.yml", confirm="demo")
    assert removed.rc == 0, removed.describe()
    assert "Removed: ['cp1', 'worker1', 'worker2']" in removed.output
    assert not any(pve_site.pve.guest(h["vmid"]) for h in vms)
    assert pve_site.pve.vm(TEMPLATE), "the template stays"

    again = playbook(ansible_cli, pve_site, inventory, "teardown.yml", confirm="demo")
    assert again.rc == 0 and "Removed: ['nothing']" in again.output

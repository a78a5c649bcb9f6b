"""playbooks/template.yml end to end: Nix builds the (stand-in) installer ISO, the role uploads it to fakepve and
makes the template; a thread plays the installer, powering off the VM it started. Run twice: changed, then not."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
import yaml

from .._skips import require_commands
from ..nixos.test_nix_build import DEFAULT_STORE_ARGS, _default_store_usable

STANDIN = Path(__file__).resolve().parents[1] / "fixtures" / "nix" / "installer-standin"


class Installer(threading.Thread):
    """Powers off a started installer VM (tag nerv-phase-installing) after it ran a moment, as the ISO does."""

    def __init__(self, pve):
        super().__init__(daemon=True)
        self.pve, self.done, self.powered_off = pve, threading.Event(), []

    def run(self):
        seen = {}
        while not self.done.wait(0.5):
            for vm in list(self.pve.vms):
                if vm.status == "running" and "nerv-phase-installing" in str(vm.config.get("tags", "")):
                    seen[vm.vmid] = seen.get(vm.vmid, 0) + 1
                    if seen[vm.vmid] >= 3:
                        vm.status = vm.qmpstatus = "stopped"
                        self.powered_off.append(vm.vmid)


@pytest.fixture
def site_inventory(pve_site, tmp_path):
    """An inventory directory whose site file points at the fake, with a free template vmid."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    site = pve_site.site_for_fake()
    site["template"]["vmid"] = 9100
    (inventory / "site.yml").write_text(yaml.safe_dump(site, sort_keys=False))
    localhost = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": localhost}}}))
    return inventory, site


def test_template_playbook_builds_the_iso_with_nix_and_makes_the_template(ansible_cli, pve_site, site_inventory):
    require_commands("nix")
    if not _default_store_usable():
        pytest.skip("needs a writable /nix/store (root, as in CI) to build the stand-in ISO with the real nix")
    inventory, site = site_inventory
    workdir = ansible_cli.tmp_path / "nixos-iso"
    extra = {
        "nixos_iso_flake_src": str(STANDIN) + "/",
        "nixos_iso_workdir": str(workdir),
        "nixos_iso_extra_args": DEFAULT_STORE_ARGS,
        "proxmox_template_progress_every": 1,
    }
    installer = Installer(pve_site.pve)
    installer.start()
    try:
        runs = [
            ansible_cli.playbook(
                Path("playbooks/template.yml").resolve(), inventory=inventory, extra_vars=extra, env=pve_site.env
            )
            for _attempt in range(2)
        ]
    finally:
        installer.done.set()
    first, second = runs
    assert first.rc == 0, first.describe()
    assert second.rc == 0, second.describe()
    assert first.stats()["changed"] >= 3 and second.stats()["changed"] == 0, second.describe()
    assert installer.powered_off == [9100]

    built = json.loads(next((workdir / "result-iso" / "iso").glob("*.iso")).read_text())
    assert built["admin_ssh_keys"] == site["admin_ssh_keys"] and built["disk"] == "/dev/sda"
    vm = pve_site.pve.vm(9100)
    assert vm.template and "nerv-phase-template" in vm.config["tags"]
    uploads = [p for m, p, _b in pve_site.pve.requests if m == "POST" and p.endswith("/upload")]
    assert len(uploads) == 1, "the ISO is uploaded once"
    assert pve_site.token_secret not in first.output + second.output
    # the wait for the installer is told in words, with the time so far, never as a failure being retried
    waiting = "waiting: [localhost] Build the template until the installer has powered the VM off: installer VM 9100"
    assert f"{waiting} on pve1 running" in first.stdout and "so far (gives up in" in first.stdout, first.describe()
    assert "FAILED - RETRYING" not in first.output and "ASYNC POLL" not in first.output


def test_an_installer_that_never_powers_off_fails_in_time_and_stays_running(ansible_cli, pve_site, site_inventory):
    inventory, _site = site_inventory
    iso = ansible_cli.tmp_path / "installer.iso"
    iso.write_bytes(b"a stand-in installer that never finishes\n" * 1024)
    extra = {
        "proxmox_template_iso": str(iso),
        "proxmox_template_progress_every": 1,
        "proxmox_template_install_timeout": 3,
    }
    playbook = Path("playbooks/template.yml").resolve()
    run = ansible_cli.playbook(playbook, inventory=inventory, extra_vars=extra, env=pve_site.env)
    assert run.rc != 0
    message = run.task("Fail when the installer did not finish in time")["msg"]
    assert "installer VM 9100 on pve1 still runs after 3 s" in message and "left running" in message
    assert "qm terminal 9100" in message and "journalctl -u nerv-install" in message
    assert pve_site.pve.vm(9100).status == "running", "left running for inspection"
    lines = [line for line in run.stdout.splitlines() if line.startswith("waiting: [localhost] Build the template")]
    assert lines and all("the unattended install is in progress" in line for line in lines), run.describe()
    assert "FAILED - RETRYING" not in run.output

    pve_site.pve.vm(9100).status = "stopped"  # the installer finishes later: a re-run carries on
    again = ansible_cli.playbook(playbook, inventory=inventory, extra_vars=extra, env=pve_site.env)
    assert again.rc == 0, again.describe()
    assert pve_site.pve.vm(9100).template


def test_after_the_template_older_isos_of_ours_go_as_template_keep_isos_says(ansible_cli, pve_site, site_inventory):
    from ..proxmox.test_proxmox_iso import make_iso

    inventory, site = site_inventory
    site["template"]["keep_isos"] = 1
    (inventory / "site.yml").write_text(yaml.safe_dump(site, sort_keys=False))
    home = ansible_cli.tmp_path / "home"  # the record proxmox_iso keeps by default lives under ~/.cache
    home.mkdir()
    env = {**pve_site.env, "HOME": str(home)}
    older = []
    for number in range(2):
        (ansible_cli.tmp_path / f"old{number}").mkdir()
        src, _sha = make_iso(ansible_cli.tmp_path / f"old{number}" / "installer.iso", seed=f"old-{number}".encode())
        task = {"nerv.homelab.proxmox_iso": {"node": "pve1", "src": str(src)}, "register": "iso", "name": "Upload"}
        uploaded = ansible_cli.playbook(
            [{"hosts": "localhost", "gather_facts": False, "tasks": [task]}],
            inventory=inventory,
            env={**pve_site.proxmox_env(), "HOME": str(home)},
        )
        assert uploaded.rc == 0, uploaded.describe()
        older.append(uploaded.task("Upload")["volid"])
        pve_site.pve.storages["local"]["volumes"][older[-1].split(":", 1)[1]]["ctime"] = 1_700_000_000 + number
    pve_site.pve.store_file("local", "installer-0123456789ab.iso", 4096)  # named like ours, no record
    iso = ansible_cli.tmp_path / "installer.iso"
    iso.write_bytes(b"a stand-in installer\n" * 1024)
    extra = {"proxmox_template_iso": str(iso), "proxmox_template_progress_every": 1}
    installer = Installer(pve_site.pve)
    installer.start()
    try:
        run = ansible_cli.playbook(
            Path("playbooks/template.yml").resolve(), inventory=inventory, extra_vars=extra, env=env
        )
    finally:
        installer.done.set()
    assert run.rc == 0, run.describe()
    current = run.task("Put the installer ISO on the ISO storage")["volid"]
    pruned = run.task("Delete older installer ISOs this collection uploaded, keeping the newest template.keep_isos")
    assert pruned["changed"] is True and pruned["deleted"] == older
    volumes = sorted(name for name in pve_site.pve.storages["local"]["volumes"] if name.startswith("iso/"))
    assert volumes == sorted(["iso/installer-0123456789ab.iso", current.split(":", 1)[1]])
    assert pve_site.pve.vm(9100).template

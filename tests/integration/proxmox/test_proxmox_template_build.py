"""nerv.homelab.proxmox_template_build against fakepve: installer VM -> powered off by the installer -> template."""

from __future__ import annotations

import pytest

MODULE = "nerv.homelab.proxmox_template_build"
BUILD = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
NEXT_BUILD = "ffeeddccbbaa99887766554433221100"
ISO = "local:iso/nixos-installer-0a1b2c3d4e5f.iso"
VMID = 9100


def options(pve_site, **changes):
    values = {
        "node": "pve1",
        "vmid": VMID,
        "name": "nixos-base",
        "build": BUILD,
        "iso": ISO,
        "storage": "local-lvm",
        "bridge": "vmbr0",
        "memory": 1024,
        "wait": 0,
        "poll": 1,
    }
    values.update(changes)
    return values


def build(ansible_cli, pve_site, check=False, **changes):
    plays = [{"name": "Template", "hosts": "localhost", "gather_facts": False}]
    plays[0]["tasks"] = [{"name": "Build", MODULE: options(pve_site, **changes)}]
    run = ansible_cli.playbook(plays, "--diff", env=pve_site.proxmox_env(), check=check)
    assert pve_site.token_secret not in run.output
    return run, run.task("Build")


def installer_powers_off(pve_site, vmid=VMID):
    """What the ISO's install service does at its end: power the VM off."""
    vm = pve_site.pve.vm(vmid)
    vm.status = vm.qmpstatus = "stopped"


@pytest.fixture
def iso(pve_site):
    pve_site.pve.store_file("local", ISO.split("/", 1)[1], 4 * 1024**2)
    pve_site.pve.store_file("local", "nixos-installer-ffeeddccbbaa.iso", 4 * 1024**2)
    return ISO


def test_the_pipeline_runs_to_a_template_then_changes_nothing(ansible_cli, pve_site, iso):
    run, first = build(ansible_cli, pve_site)
    assert run.rc == 0, run.describe()
    assert first["changed"] and first["actions"] == ["create", "start", "wait"] and first["phase"] == "installing"
    vm = pve_site.pve.vm(VMID)
    assert vm.status == "running", "the installer VM runs the unattended install"
    config = vm.config
    assert config["ide2"].startswith(iso) and config["agent"] == "1" and config["bios"] == "ovmf"
    assert "efidisk0" in config and config["serial0"] == "socket" and config["net0"].startswith("virtio")
    assert "nerv-phase-installing" in config["tags"]

    _run, waiting = build(ansible_cli, pve_site)
    assert not waiting["changed"] and waiting["phase"] == "installing" and waiting["actions"] == ["wait"]

    installer_powers_off(pve_site)
    _run, second = build(ansible_cli, pve_site)
    assert second["changed"] and second["actions"] == ["finish"] and second["phase"] == "template"
    vm = pve_site.pve.vm(VMID)
    assert vm.template
    assert vm.config["ide2"].startswith("local-lvm:") and "cloudinit" in vm.config["ide2"]
    assert "nerv-phase-template" in vm.config["tags"] and f"nerv-build-{BUILD}" in vm.config["tags"]

    _run, third = build(ansible_cli, pve_site)
    assert not third["changed"] and third["actions"] == [] and third["vmid"] == VMID


def test_a_new_build_takes_the_next_vmid_and_leaves_the_old_template_alone(ansible_cli, pve_site, iso):
    build(ansible_cli, pve_site)
    installer_powers_off(pve_site)
    build(ansible_cli, pve_site)
    old = dict(pve_site.pve.vm(VMID).config)

    run, new = build(ansible_cli, pve_site, build=NEXT_BUILD, iso="local:iso/nixos-installer-ffeeddccbbaa.iso")
    assert run.rc == 0, run.describe()
    assert new["vmid"] == VMID + 1 and new["phase"] == "installing"
    assert pve_site.pve.vm(VMID).config == old and pve_site.pve.vm(VMID).template


def test_check_mode_plans_and_changes_nothing(ansible_cli, pve_site, iso):
    run, planned = build(ansible_cli, pve_site, check=True)
    assert run.rc == 0, run.describe()
    assert planned["changed"] and planned["actions"] == ["create", "start", "wait", "finish"]
    assert pve_site.pve.guest(VMID) is None


def test_a_foreign_vm_at_the_vmid_is_refused_and_untouched(ansible_cli, pve_site, iso):
    foreign = pve_site.template_vmid  # the fake's template: made without nerv.homelab's tags
    before = dict(pve_site.pve.vm(foreign).config)
    run, result = build(ansible_cli, pve_site, vmid=foreign)
    assert run.rc != 0
    assert f"vmid {foreign}" in result["msg"] and "never overwritten" in result["msg"]
    assert pve_site.pve.vm(foreign).config == before


def test_a_failing_start_task_reports_its_log_tail_and_a_rerun_converges(ansible_cli, pve_site, iso):
    pve_site.pve.fail("POST", f"/nodes/pve1/qemu/{VMID}/status/start", error="qemu_exited_code", times=1)
    run, failed = build(ansible_cli, pve_site)
    assert run.rc != 0
    assert "QEMU exited with code 1" in failed["msg"] and failed["log_tail"]
    assert pve_site.pve.vm(VMID) is not None, "the created VM stays for the next run"

    _run, again = build(ansible_cli, pve_site)
    assert again["actions"] == ["start", "wait"] and again["phase"] == "installing"


def test_bad_build_ids_fail_before_any_change(ansible_cli, pve_site, iso):
    run, result = build(ansible_cli, pve_site, build="not a hash!")
    assert run.rc != 0 and "build" in result["msg"] and "Nix output hash" in result["msg"]
    assert pve_site.pve.guest(VMID) is None

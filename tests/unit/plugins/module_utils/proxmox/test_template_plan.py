"""The template pipeline's decisions: slots, phases, the installer VM's config."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox import template_plan as tpl
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError

BUILD = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
OTHER = "ffeeddccbbaa99887766554433221100"


def ours(vmid, build=BUILD, phase="template", **extra):
    guest = {"vmid": vmid, "node": "pve1", "tags": tpl.tags_for(build, phase), "status": "stopped"}
    guest.update(extra)
    return guest


def test_the_same_build_is_found_wherever_it_is():
    guests = [ours(9000, OTHER, template=1), ours(9001, BUILD, template=1)]
    assert tpl.choose_slot(9000, guests, BUILD) == (9001, guests[1])


def test_a_new_build_takes_the_first_free_slot_past_older_builds():
    assert tpl.choose_slot(9000, [ours(9000, OTHER, template=1)], BUILD) == (9001, None)
    assert tpl.choose_slot(9000, [], BUILD) == (9000, None)


def test_a_foreign_vm_in_the_way_is_refused():
    with pytest.raises(ProxmoxError, match="vmid 9000 holds VM 'nixos-base'.*never overwritten"):
        tpl.choose_slot(9000, [{"vmid": 9000, "name": "nixos-base", "tags": "keep"}], BUILD)


def test_no_free_slot_says_what_to_do():
    guests = [ours(9000 + i, OTHER, template=1) for i in range(tpl.SLOTS)]
    with pytest.raises(ProxmoxError, match="no free vmid"):
        tpl.choose_slot(9000, guests, BUILD)


@pytest.mark.parametrize(
    ("guest", "phase"),
    [
        (ours(1, phase="created"), "created"),
        (ours(1, phase="installing", status="running"), "installing"),
        (ours(1, phase="installing", status="stopped"), "installed"),
        (ours(1, phase="template", template=1), "template"),
        ({"vmid": 1, "tags": "nerv-template"}, "created"),
    ],
)
def test_phase_of(guest, phase):
    assert tpl.phase_of(guest) == phase


@pytest.mark.parametrize("bad", ["", None, "short", "UPPER CASE", "has/slash-0123456", "x" * 65])
def test_bad_build_ids_are_refused(bad):
    with pytest.raises(ProxmoxError, match="Nix output hash"):
        tpl.check_build(bad)


def test_installer_config_boots_the_iso_with_agent_serial_and_efi():
    params = {"name": "nixos-base", "cores": 2, "memory": 2048, "disk": 16, "storage": "local-lvm"}
    params.update(bridge="vmbr0", bios="ovmf", iso="local:iso/i.iso", build=BUILD)
    config = tpl.installer_config(params, 9000)
    assert config["ide2"] == "local:iso/i.iso,media=cdrom" and config["boot"] == "order=scsi0;ide2"
    assert config["scsi0"] == "local-lvm:16" and config["agent"] == "1" and config["serial0"] == "socket"
    assert config["efidisk0"].startswith("local-lvm:1,efitype=4m")
    assert config["tags"] == f"nerv-template;nerv-build-{BUILD};nerv-phase-created"
    assert "efidisk0" not in tpl.installer_config({**params, "bios": "seabios"}, 9000)
    finish = tpl.finish_config(params)
    assert finish["ide2"] == "local-lvm:cloudinit" and finish["tags"].endswith("nerv-phase-template")

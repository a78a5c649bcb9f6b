# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The template pipeline as pure decisions: which vmid a build gets, what its installer VM looks like, and which
phase a VM is in (so an interrupted run carries on where it stopped).

Every VM this pipeline makes carries the tag ``nerv-template`` and ``nerv-build-<build>``; its phase is the tag
``nerv-phase-<phase>``: created -> installing -> (powered off by the installer) -> template. A VM without the
``nerv-template`` tag is foreign and never touched.
"""

from __future__ import annotations

import re

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.guest import (
    BUILD_PREFIX,
    OURS,
    PHASE_PREFIX,
    split_tags,
)
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError

PHASES = ("created", "installing", "template")
SLOTS = 100  # versions of a template live at vmid, vmid+1, ... vmid+99
_BUILD = re.compile(r"^[a-z0-9][a-z0-9._-]{5,63}$")


def build_tag(build: str) -> str:
    """A Proxmox tag for the build hash (tags are lower-case, [a-z0-9_.+-]); the first 32 characters suffice."""
    return BUILD_PREFIX + build[:32]


def check_build(build) -> str:
    text = str(build or "").lower()
    if not _BUILD.match(text):
        raise ProxmoxError(
            f"build {build!r} is not a build id: give the Nix output hash (6-64 of a-z, 0-9, '.', '_', '-'), "
            "e.g. the 32-character hash of the ISO's store path"
        )
    return text


def is_ours(guest: dict) -> bool:
    return OURS in split_tags(guest.get("tags"))


def phase_of(guest: dict) -> str:
    """created | installing | installed | template: installed is a stopped VM the installer powered off."""
    if guest.get("template"):
        return "template"
    found = [t[len(PHASE_PREFIX) :] for t in split_tags(guest.get("tags")) if t.startswith(PHASE_PREFIX)]
    phase = found[0] if found else "created"
    if phase == "installing" and guest.get("status") == "stopped":
        return "installed"
    return phase


def tags_for(build: str, phase: str) -> str:
    return ";".join([OURS, build_tag(build), PHASE_PREFIX + phase])


def choose_slot(vmid: int, guests: list, build: str) -> tuple:
    """(vmid, existing guest or None) for this build: the VM of the same build wherever it is in the slots, else the
    first free slot from vmid. Older builds of ours are kept (a clone may be using them); a foreign VM in the way is
    an error, never overwritten."""
    tag = build_tag(build)
    by_id = {int(g["vmid"]): g for g in guests if "vmid" in g}
    for slot in range(vmid, vmid + SLOTS):
        guest = by_id.get(slot)
        if guest is not None and is_ours(guest) and tag in split_tags(guest.get("tags")):
            return slot, guest
    for slot in range(vmid, vmid + SLOTS):
        guest = by_id.get(slot)
        if guest is None:
            return slot, None
        if not is_ours(guest):
            raise ProxmoxError(
                f"vmid {slot} holds VM {guest.get('name') or slot!r} that nerv.homelab did not make (no tag {OURS}): "
                "it is never overwritten. Move it, or set template.vmid to a free range"
            )
    raise ProxmoxError(f"no free vmid in {vmid}..{vmid + SLOTS - 1}: remove old template versions no clone uses")


def installer_config(params: dict, vmid: int) -> dict:
    """The create parameters of the installer VM: it boots the ISO (the empty disk falls through), runs the
    unattended install, and powers off."""
    storage, bios, build, iso = params["storage"], params["bios"], params["build"], params["iso"]
    config = {
        "vmid": vmid,
        "name": params["name"],
        "cores": params["cores"],
        "memory": params["memory"],
        "ostype": "l26",
        "scsihw": "virtio-scsi-single",
        "scsi0": f"{storage}:{params['disk']}",
        "ide2": f"{iso},media=cdrom",
        "net0": f"virtio,bridge={params['bridge']}",
        "agent": "1",
        "serial0": "socket",
        "bios": bios,
        "boot": "order=scsi0;ide2",
        "tags": tags_for(build, "created"),
        "description": f"NixOS base template made by nerv.homelab from build {build} (installer {iso})",
    }
    if bios == "ovmf":
        config["efidisk0"] = f"{storage}:1,efitype=4m,pre-enrolled-keys=0"
    if params.get("pool"):
        config["pool"] = params["pool"]
    return config


def finish_config(params: dict) -> dict:
    """What turns the powered-off installer VM into a template: no ISO, a cloud-init drive, the final tags."""
    return {
        "ide2": f"{params['storage']}:cloudinit",
        "boot": "order=scsi0",
        "tags": tags_for(params["build"], "template"),
    }

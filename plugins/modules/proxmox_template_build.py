#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxmox_template_build
short_description: Turn a self-installing NixOS ISO into a Proxmox VM template, one build per template version
version_added: 0.1.0
description:
  - Makes the installer VM of a build (the ISO as cdrom, an empty disk, UEFI or BIOS, the guest agent, a serial
    console), starts it, waits until the unattended installer powers it off, then detaches the ISO, adds a
    cloud-init drive and converts the VM to a template.
  - Every VM it makes carries the tags C(nerv-template), C(nerv-build-<build>) and C(nerv-phase-<phase>). A run
    picks up where an interrupted one stopped, from those tags and the VM's state.
  - Versions live at O(vmid), O(vmid)+1, and so on. The same O(build) finds its own VM wherever it is; a new build
    takes the first free vmid and never touches an older template, which clones may still use. A VM without the
    C(nerv-template) tag in the way is refused, never overwritten.
  - Each call waits at most O(wait) seconds for the installer; until it powers off the module returns
    C(phase=installing) and a RV(progress) line, so a task can repeat it (C(until)) and show progress. A VM still
    installing is left running, for inspection.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.proxmox_auth
  - nerv.homelab.attributes
options:
  node:
    description: Node the installer VM is made on (an existing VM of the build stays where it is).
    type: str
    required: true
  vmid:
    description: First vmid of the template's versions.
    type: int
    required: true
  name:
    description: Name of the template VM.
    type: str
    required: true
  build:
    description: Build id of the ISO (the Nix output hash); names the version.
    type: str
    required: true
  iso:
    description: Volume id of the installer ISO, e.g. C(local:iso/nixos-installer-0a1b2c3d4e5f.iso).
    type: str
    required: true
  storage:
    description: Storage of the disk, the EFI disk and the cloud-init drive.
    type: str
    required: true
  bridge:
    description: Bridge of the virtio NIC.
    type: str
    required: true
  cores:
    description: CPU cores of the VM (clones take their own).
    type: int
    default: 2
  memory:
    description: Memory in MiB.
    type: int
    default: 2048
  disk:
    description: Disk size in GiB.
    type: int
    default: 16
  bios:
    description: C(ovmf) (UEFI, with an EFI disk) or C(seabios).
    type: str
    choices: [ovmf, seabios]
    default: ovmf
  pool:
    description: Resource pool the VM joins.
    type: str
  wait:
    description: Seconds this call waits for the installer to power the VM off; 0 returns at once.
    type: int
    default: 0
  poll:
    description: Seconds between looks at the installer VM while waiting.
    type: int
    default: 5
attributes:
  check_mode:
    details: Reports the steps a run would take (RV(actions)) and changes nothing.
  diff_mode:
    details: Shows the phase before and after.
notes:
  - A VM tagged C(nerv-phase-installing) that is stopped counts as installed - the installer powers off when done,
    and its guard powers off at once on a disk it already installed. Stop such a VM yourself only to abandon the
    build, then delete it.
seealso:
  - module: nerv.homelab.proxmox_iso
"""

EXAMPLES = r"""
# With the stdout callback nerv.homelab.progress each try prints its progress line (about every 30 s).
- name: Build the template, showing progress until the installer powers off (up to 30 minutes)
  nerv.homelab.proxmox_template_build:
    node: pve1
    vmid: 9000
    name: nixos-base
    build: "{{ installer.build }}"
    iso: "{{ iso.volid }}"
    storage: local-lvm
    bridge: vmbr0
    wait: 28
  register: template
  until: template.phase == 'template'
  retries: 60
  delay: 1
  delegate_to: localhost
"""

RETURN = r"""
vmid:
  description: The vmid of this build's VM.
  returned: success
  type: int
  sample: 9001
node:
  description: The node it is on.
  returned: success
  type: str
  sample: pve1
phase:
  description: C(created), C(installing) (the installer is still running), C(installed) or C(template) (done).
  returned: success
  type: str
  sample: template
progress:
  description:
    - Where the build stands, in one sentence (the VM, its node, its phase and what the build waits for), for
      progress lines; the callback nerv.homelab.progress prints it while a task repeats the call with C(until).
  returned: success
  type: str
  sample: "installer VM 9001 on pve1 running for 4m 10s: the unattended install is in progress; waiting for it to
    power the VM off"
actions:
  description: What this call did (or, in check mode, would do), in order.
  returned: success
  type: list
  elements: str
  sample: [create, start, wait, finish]
requests:
  description: HTTP requests made.
  returned: success
  type: int
  sample: 9
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import proxmox_argument_spec
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.template_apply import run


def argument_spec() -> dict:
    return {
        **proxmox_argument_spec(),
        "node": {"type": "str", "required": True},
        "vmid": {"type": "int", "required": True},
        "name": {"type": "str", "required": True},
        "build": {"type": "str", "required": True},
        "iso": {"type": "str", "required": True},
        "storage": {"type": "str", "required": True},
        "bridge": {"type": "str", "required": True},
        "cores": {"type": "int", "default": 2},
        "memory": {"type": "int", "default": 2048},
        "disk": {"type": "int", "default": 16},
        "bios": {"type": "str", "default": "ovmf", "choices": ["ovmf", "seabios"]},
        "pool": {"type": "str"},
        "wait": {"type": "int", "default": 0},
        "poll": {"type": "int", "default": 5},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: run(module))


if __name__ == "__main__":
    main()

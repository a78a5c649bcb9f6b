#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxmox_iso_prune
short_description: Delete older ISO images this collection put on a Proxmox VE storage, keeping the newest
version_added: 0.1.0
description:
  - Deletes the ISO images on a storage that M(nerv.homelab.proxmox_iso) uploaded or downloaded there, except the
    newest O(keep) of them by upload time and the one given as O(current). Images it did not put there are never
    touched; see the notes for what makes an image ours.
  - An image that would go but is attached to a VM (any C(ide), C(sata), C(scsi) or C(virtio) drive, cdroms
    included) is kept, and the module warns about it. VMs are looked at on O(node), or on every node when the
    storage is shared.
  - Each deletion is C(DELETE /nodes/{node}/storage/{storage}/content/{volume}) and waits for its Proxmox task;
    the record of a deleted image is forgotten. A deletion that fails does not stop the others; the module
    then fails, naming each failure, and still returns what it deleted.
  - The role M(nerv.homelab.proxmox_template) runs it after a new template is made, with the site's
    C(template.keep_isos).
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.proxmox_auth
  - nerv.homelab.attributes
options:
  node:
    description:
      - The node whose storage is cleaned up, the one the images were uploaded through with
        M(nerv.homelab.proxmox_iso) (its record is kept per node).
    type: str
    required: true
  storage:
    description:
      - The ISO storage.
    type: str
    default: local
  keep:
    description:
      - How many of the newest images of ours stay (O(current) among them when it is ours), 1 to 100.
      - Images uploaded in the same second as the O(keep)-th newest stay too, as none of them is older.
    type: int
    default: 2
  current:
    description:
      - Volume id of the image the new template was built from (RV(nerv.homelab.proxmox_iso#module:volid)); it
        always stays, whatever its age. It must be on O(storage).
    type: str
    required: true
  state_dir:
    description:
      - Directory of the record M(nerv.homelab.proxmox_iso) keeps of what it put where; give the same as there.
    type: path
    default: ~/.cache/nerv-homelab/proxmox_iso
notes:
  - An image is ours when all of these hold. The record in O(state_dir) has an entry for it under this API URL
    (O(url)), O(node) and O(storage), written when M(nerv.homelab.proxmox_iso) uploaded or downloaded it. Its
    name is one that module derives from the content, C(<stem>-<first 12 hex digits of the sha256>.iso) (or
    C(.img)), and those digits start the recorded sha256. The size Proxmox lists is the recorded one.
  - So an image with a name that looks like ours but no record is not ours; nor is one uploaded with an explicit
    O(nerv.homelab.proxmox_iso#module:name) (give other images such a name to keep them out of the clean-up),
    one replaced since it was uploaded, or one uploaded from another controller or through another API URL.
  - Age is the upload time Proxmox lists (C(ctime)); an image of ours without one is kept.
  - Snapshots of VMs are not looked at, so an image only a snapshot refers to can be deleted.
attributes:
  check_mode:
    details: Returns in RV(deleted) what would be deleted, with RV(kept) and RV(untouched), and deletes nothing.
  diff_mode:
    details: The ISO volumes on the storage before and after.
seealso:
  - module: nerv.homelab.proxmox_iso
  - module: nerv.homelab.proxmox_template_build
"""

EXAMPLES = r"""
- name: Upload the new installer build
  nerv.homelab.proxmox_iso:
    node: pve1
    src: result/iso/nixos-installer.iso
  register: iso
  delegate_to: localhost
  run_once: true

- name: After the template is made from it, keep it and the one before, delete older ones of ours
  nerv.homelab.proxmox_iso_prune:
    node: pve1
    storage: local
    keep: 2
    current: "{{ iso.volid }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
deleted:
  description: Volume ids deleted, oldest first (in check mode, those that would be).
  returned: success, and on a failed deletion
  type: list
  elements: str
  sample: [local:iso/nixos-installer-0a1b2c3d4e5f.iso]
kept:
  description: The images of ours that stay, and why.
  returned: success, and on a failed deletion
  type: list
  elements: dict
  contains:
    volid:
      description: The volume id.
      type: str
    reason:
      description: Why it stays (one of the newest, the current one, uploaded in the same second as the last kept).
      type: str
  sample: [{volid: local:iso/nixos-installer-3f2a9c0d41b7.iso, reason: one of the newest 2}]
untouched:
  description: Every other image on the storage, and why it is not deleted.
  returned: success, and on a failed deletion
  type: list
  elements: dict
  contains:
    volid:
      description: The volume id.
      type: str
    reason:
      description: Not ours (and why), its age unknown, or attached to a VM (which one, and as which drive).
      type: str
  sample:
    - volid: local:iso/nixos-installer-9c1d2e3f4a5b.iso
      reason: "attached to VM 105 ide2: detach it to let it go"
failures:
  description: The deletions that failed; the module fails when there is one, after trying every other deletion.
  returned: success, and on a failed deletion
  type: list
  elements: dict
  contains:
    volid:
      description: The volume id; it is still there and its record is kept.
      type: str
    error:
      description: The error of the request or of the Proxmox task.
      type: str
  sample: []
requests:
  description: HTTP requests made.
  returned: success
  type: int
  sample: 7
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.iso_prune_apply import run
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import proxmox_argument_spec


def argument_spec() -> dict:
    return {
        **proxmox_argument_spec(),
        "node": {"type": "str", "required": True},
        "storage": {"type": "str", "default": "local"},
        "keep": {"type": "int", "default": 2},
        "current": {"type": "str", "required": True},
        "state_dir": {"type": "path", "default": "~/.cache/nerv-homelab/proxmox_iso"},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: run(module))


if __name__ == "__main__":
    main()

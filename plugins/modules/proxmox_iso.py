#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxmox_iso
short_description: Put an ISO image on a Proxmox VE storage, idempotent by checksum
version_added: 0.1.0
description:
  - Uploads a local ISO file (O(src)) to a Proxmox VE storage, or has the node download one (O(download_url)), and
    waits for the Proxmox task that stores it. With O(state=absent) deletes it.
  - An upload is one C(POST /nodes/{node}/storage/{storage}/upload), C(multipart/form-data) with a
    Content-Length, the fields C(content), C(checksum) and C(checksum-algorithm) before the file, streamed
    from disk (the file is never read into memory), so images of several GiB upload with little memory.
    Proxmox checks the sha256 of what it received and fails the task on a mismatch.
  - A download is C(POST /nodes/{node}/storage/{storage}/download-url) with the sha256, which the node checks.
  - Idempotent by checksum, not by name; see the notes.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.proxmox_auth
  - nerv.homelab.attributes
options:
  node:
    description:
      - The node whose storage receives the image (for a shared storage, any node that has it).
    type: str
    required: true
  storage:
    description:
      - The storage; it must be a file storage whose content types include C(iso).
    type: str
    default: local
  name:
    description:
      - The file name on the storage, ending in C(.iso) or C(.img); letters, digits, C(_), C(-) and C(.) only.
      - If not set, the image is named after its content, C(<stem>-<first 12 hex digits of the sha256>.iso)
        (the stem from O(src) or O(download_url), C(.img) kept), so every new build gets a new name and an
        existing file of that name is known to hold that content. This is the recommended way.
    type: str
  src:
    description:
      - Path of a local file to upload, on the host the module runs on (normally the controller).
      - Exactly one of O(src) and O(download_url) is needed with O(state=present).
    type: path
  download_url:
    description:
      - URL the Proxmox node downloads the image from itself. Needs O(checksum).
      - Named so because O(url) is the API URL.
    type: str
  checksum:
    description:
      - The sha256 of the image, 64 hex digits (a C(sha256:) prefix is accepted).
      - Required with O(download_url). With O(src) it is computed by reading the file when not given; when given, it
        is trusted for naming and idempotency, and Proxmox checks it after the upload.
    type: str
  force:
    description:
      - Replace an existing file of the same name whose content differs from the wanted one, or is unknown
        (no record of it, see the notes). Identical content is never sent again, even with O(force).
    type: bool
    default: false
  state:
    description:
      - V(present) puts the image there; V(absent) deletes the volume of that name (O(name), or the name
        derived from O(src)/O(download_url) and the checksum).
    type: str
    choices: [present, absent]
    default: present
  upload_timeout:
    description:
      - Seconds an upload may wait on the network (for each read and write of the transfer and for the
        answer after it), and seconds to wait for the Proxmox task that stores the image.
    type: int
    default: 3600
  state_dir:
    description:
      - Directory of the record of what this module put where, the file C(records.json) with the sha256 and
        size for each API URL, node, storage and volume. Used to recognise content under an explicit O(name).
    type: path
    default: ~/.cache/nerv-homelab/proxmox_iso
notes:
  - The Proxmox API lists a stored file's name and size but no checksum of it, and an upload under an
    existing name silently replaces the file. So the module decides what is stored from what it can know.
  - When the name is derived from the checksum (O(name) not set), a file of that name holds that content,
    and nothing is done if it is there (unless its listed size differs from the local file's).
  - With an explicit O(name), the module keeps a record on the host it runs on (O(state_dir)) of the sha256
    and size of every file it uploaded or downloaded. Same sha256 recorded and same size listed means the
    same content, and nothing is done. A listed size that differs from the file's or from the record, or a
    recorded sha256 that differs, means other content; a file with no record has unknown content. In both
    cases the module fails, naming O(force), unless O(force=true), which replaces the file.
  - Run it on one controller (C(delegate_to=localhost), C(run_once)) so the record stays in one place; a
    lost record only means that an explicitly named file needs O(force) once.
  - A download (O(download_url)) over an existing file relies on Proxmox replacing the file.
attributes:
  check_mode:
    details: Reports what it would do (upload, download, replace, delete or nothing) and changes nothing.
  diff_mode:
    details: The volume before and after, C({volid, state, size, sha256}) (sha256 when known).
requirements:
  - requests-toolbelt
seealso:
  - module: nerv.homelab.proxmox_cluster_info
"""

EXAMPLES = r"""
- name: Upload the installer build, named after its checksum (a new build gets a new file)
  nerv.homelab.proxmox_iso:
    node: pve1
    storage: local
    src: result/iso/nixos-installer.iso
  register: iso
  delegate_to: localhost
  run_once: true

- name: Boot the VM from it
  ansible.builtin.debug:
    msg: "ide2: {{ iso.volid }},media=cdrom"

- name: Have the node download a release, checked against its sha256
  nerv.homelab.proxmox_iso:
    node: pve1
    download_url: https://channels.nixos.org/nixos-25.05/latest-nixos-minimal-x86_64-linux.iso
    checksum: "{{ nixos_iso_sha256 }}"
    name: nixos-minimal.iso
  delegate_to: localhost

- name: Replace a file of a fixed name with new content
  nerv.homelab.proxmox_iso:
    node: pve1
    src: build/rescue.iso
    name: rescue.iso
    force: true
  delegate_to: localhost

- name: Remove it
  nerv.homelab.proxmox_iso:
    node: pve1
    name: rescue.iso
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
volid:
  description: The volume id.
  returned: success
  type: str
  sample: local:iso/nixos-installer-3f2a9c0d41b7.iso
name:
  description: The file name on the storage.
  returned: success
  type: str
  sample: nixos-installer-3f2a9c0d41b7.iso
size:
  description: Size in bytes of the file as wanted (O(src)) or as listed; null when not known.
  returned: success
  type: int
  sample: 1048576
sha256:
  description: The sha256 of the content; null for O(state=absent) without a checksum.
  returned: success
  type: str
  sample: 3f2a9c0d41b7e5d7b7c4b1d0c6c2c8f2a9c0d41b7e5d7b7c4b1d0c6c2c8f2a9c
action:
  description: What was done (in check mode, what would be done).
  returned: success
  type: str
  choices: [uploaded, downloaded, replaced, deleted, none]
  sample: uploaded
reason:
  description: Why, in a few words.
  returned: success
  type: str
  sample: local:iso/nixos-installer-3f2a9c0d41b7.iso is absent
task:
  description: The finished Proxmox task (C(upid), C(exitstatus), C(warnings)); null when none ran.
  returned: success
  type: dict
  sample: {upid: "UPID:pve1:0000A1B2:00C3D4E5:6745A1B2:imgcopy::automation@pve!nerv:", exitstatus: OK, warnings: 0}
requests:
  description: HTTP requests made.
  returned: success
  type: int
  sample: 6
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.iso_apply import run
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import proxmox_argument_spec


def argument_spec() -> dict:
    return {
        **proxmox_argument_spec(),
        "node": {"type": "str", "required": True},
        "storage": {"type": "str", "default": "local"},
        "name": {"type": "str"},
        "src": {"type": "path"},
        "download_url": {"type": "str"},
        "checksum": {"type": "str"},
        "force": {"type": "bool", "default": False},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "upload_timeout": {"type": "int", "default": 3600},
        "state_dir": {"type": "path", "default": "~/.cache/nerv-homelab/proxmox_iso"},
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("src", "download_url")],
        supports_check_mode=True,
    )
    run_module(module, lambda: run(module))


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: keys_backup
short_description: Export the site's keys into one age-encrypted archive, with a checksum and a listing
version_added: 0.1.0
description:
  - Writes C(<dest>/<site>-keys-<UTC time>.tar.age), a tar encrypted with age to O(recipient) (a recovery key the
    user keeps offline) or to O(passphrase), with C(.sha256) (C(sha256sum -c) format) and C(.json) (what it holds)
    beside it. The C(age) tool opens it - C(age -d -i recovery.txt FILE | tar -t) - and
    M(nerv.homelab.keys_restore) brings a new controller back from it.
  - The archive holds the admins' age identities this controller has (those whose recipient is in
    O(admin_recipients); at least one must be here) and every file under O(paths) of O(site_dir) - the site's
    encrypted sops files, C(.sops.yaml), the public host keys and C(known_hosts).
  - The listing names the files with their sizes and SHA-256 digests and the identities by their public recipient;
    it never holds a value. A new export is written only when this listing differs from the newest export of the
    site in O(dest), so a second run changes nothing. Exports are never deleted.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.sops.identities
  - nerv.homelab.attributes
attributes:
  diff_mode:
    support: none
    details: The result's RV(listing) says what the export holds.
options:
  site:
    description: The site's name (C(site.name)); it names the exports.
    type: str
    required: true
  site_dir:
    description: The site's directory (where its site file is).
    type: path
    required: true
  paths:
    description: Files and directories of O(site_dir) to export (a missing one is left out).
    type: list
    elements: str
    default: [.sops.yaml, known_hosts, host-keys, secrets]
  admin_recipients:
    description: The site's admin recipients (C(sops.admin_recipients)); their identities on this controller go in.
    type: list
    elements: str
    required: true
  dest:
    description: The directory the exports go to (made private when missing); best a disk that is not the controller's.
    type: path
    required: true
  recipient:
    description: The age recipient (C(age1...)) the archive is encrypted to; keep its identity offline.
    type: str
  passphrase:
    description: A passphrase to encrypt to instead (age's scrypt, as C(age -p)); at least 16 characters.
    type: str
notes:
  - A passphrase change alone is not seen as a change; a new O(recipient) is.
"""

EXAMPLES = r"""
- name: Export the keys of the site to the backup disk, for the recovery key kept offline
  nerv.homelab.keys_backup:
    site: home
    site_dir: inventory/home
    admin_recipients: ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
    dest: /mnt/backup/nerv
    recipient: age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg
  register: export
"""

RETURN = r"""
archive:
  description: The export written (or in check mode to be written), or the newest one when nothing changed.
  returned: always
  type: str
  sample: /mnt/backup/nerv/home-keys-20261207T140000Z.tar.age
previous:
  description: The newest export before this one, when a new one was written; null when there was none.
  returned: changed
  type: str
listing:
  description: What the export holds - file paths, sizes and digests, identities by recipient - never a value.
  returned: always
  type: dict
files:
  description: How many of the site's files the export holds.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common import boundary
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import IDENTITY_OPTIONS, identities
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.backup import export


def argument_spec() -> dict:
    return {
        "site": {"type": "str", "required": True},
        "site_dir": {"type": "path", "required": True},
        "paths": {"type": "list", "elements": "str", "default": [".sops.yaml", "known_hosts", "host-keys", "secrets"]},
        "admin_recipients": {"type": "list", "elements": "str", "required": True},
        "dest": {"type": "path", "required": True},
        "recipient": {"type": "str"},
        "passphrase": {"type": "str", "no_log": True},
        **IDENTITY_OPTIONS,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("recipient", "passphrase")],
        required_one_of=[("recipient", "passphrase")],
        supports_check_mode=True,
    )
    if module.params["passphrase"] is not None and len(module.params["passphrase"]) < 16:
        module.fail_json(msg="passphrase is shorter than 16 characters: use a longer one, or a recipient")

    boundary.run_module(module, lambda: export(module.params, identities(module.params), module.check_mode))


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: keys_restore
short_description: Bring a controller back from an export of nerv.homelab.keys_backup
version_added: 0.1.0
description:
  - Checks O(archive) against the C(.sha256) beside it (when there is one), opens it with the recovery identity in
    O(identity_file) or with O(passphrase), and restores what it holds.
  - The site's files go back into O(site_dir) where they are missing. A file that is there with other contents is
    not replaced - the module fails naming it, and changes nothing - unless O(force=true).
  - The admins' age identities are added to O(key_file) (mode C(0600)) when it does not hold them yet, so that sops,
    the C(nerv.homelab.sops) lookup and the sops modules open every secret of the site again.
  - A second run changes nothing. No identity, passphrase or file contents appear in the result or the diff.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.attributes
attributes:
  diff_mode:
    details: The diff lists the site's files before and after (names only).
options:
  archive:
    description: The export (C(<site>-keys-<time>.tar.age)).
    type: path
    required: true
  identity_file:
    description: The recovery identity (an age key file) the export was encrypted to.
    type: path
  passphrase:
    description: The passphrase the export was encrypted with, instead.
    type: str
  site_dir:
    description: The site's directory, normally a fresh checkout of it.
    type: path
    required: true
  key_file:
    description:
      - The age key file the identities go to; by default where sops reads one - E(SOPS_AGE_KEY_FILE), else
        C($XDG_CONFIG_HOME/sops/age/keys.txt) (C(~/.config/sops/age/keys.txt)).
    type: path
  force:
    description: Replace the site's files that differ from the export.
    type: bool
    default: false
requirements:
  - pyrage >= 1.4
"""

EXAMPLES = r"""
- name: Restore the keys of the site onto this controller
  nerv.homelab.keys_restore:
    archive: /mnt/backup/nerv/home-keys-20261207T140000Z.tar.age
    identity_file: /media/usb/recovery.txt
    site_dir: inventory/home
"""

RETURN = r"""
site:
  description: The site the export was made for.
  returned: always
  type: str
created:
  description: When the export was made (ISO 8601, UTC).
  returned: always
  type: str
checksum:
  description: C(verified) when the C(.sha256) beside the archive matched, C(absent) when there was none.
  returned: always
  type: str
restored:
  description: The site's files written (or in check mode to be written), relative to O(site_dir).
  returned: always
  type: list
  elements: str
unchanged:
  description: How many of the export's files were there already with the same contents.
  returned: always
  type: int
key_file:
  description: The age key file the identities go to.
  returned: always
  type: str
identities_added:
  description: The recipients of the identities added to RV(key_file).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common import boundary
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.backup import restore


def argument_spec() -> dict:
    return {
        "archive": {"type": "path", "required": True},
        "identity_file": {"type": "path"},
        "passphrase": {"type": "str", "no_log": True},
        "site_dir": {"type": "path", "required": True},
        "key_file": {"type": "path"},
        "force": {"type": "bool", "default": False},
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("identity_file", "passphrase")],
        required_one_of=[("identity_file", "passphrase")],
        supports_check_mode=True,
    )
    boundary.run_module(module, lambda: restore(module.params, dict(os.environ), module.check_mode))


if __name__ == "__main__":
    main()

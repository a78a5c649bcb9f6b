#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sops_config
short_description: Render a site's .sops.yaml creation rules from its admins and hosts
version_added: 0.1.0
description:
  - Writes the C(creation_rules) of a C(.sops.yaml) so that every secret is encrypted to exactly who needs it,
    first match wins as in sops -
  - O(admin_only) paths (host private keys, the Proxmox token) to the admins;
  - per-host files C(<host_dir>/<host>/...) to the admins and that host;
  - each O(shared) entry (the K3s token, a Git token) to the admins and the hosts it names;
  - anything else to the admins.
  - All age keys of a rule are in one key group (several groups would mean Shamir and break decryption).
  - Rewrites the file only when its content changes. Run M(nerv.homelab.sops_file) with
    O(nerv.homelab.sops_file#module:updatekeys=true) over the secrets afterwards so they follow the new rules.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.sops
  - nerv.homelab.attributes
options:
  path:
    description: The C(.sops.yaml) to write (normally beside the site file, so rules match paths relative to it).
    type: path
    required: true
  admin_recipients:
    description: Admin age recipients; they can decrypt every file.
    type: list
    elements: str
    required: true
  hosts:
    description: The hosts and their age recipients (from M(nerv.homelab.host_keys)); hosts without one are left out.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Host name.
        type: str
        required: true
      recipient:
        description: The host's age recipient (C(age1...)).
        type: str
      next_recipient:
        description:
          - The recipient of the host's new key while its key is rotated in two steps
            (RV(nerv.homelab.host_keys#module:next_recipients)) - its rules name both keys, so the host decrypts with
            either until the old one is dropped.
        type: str
  shared:
    description: Files several hosts need.
    type: list
    elements: dict
    default: []
    suboptions:
      path_regex:
        description: Regex on the file path relative to the directory of O(path).
        type: str
        required: true
      hosts:
        description: Host names, or C(all).
        type: list
        elements: str
        default: [all]
      encrypted_regex:
        description: Encrypt only values under keys matching this (C(^(data|stringData)$) for Kubernetes Secrets).
        type: str
  host_dir:
    description: Directory, relative to O(path)'s, whose C(<host>/) subdirectories hold per-host secrets.
    type: str
    default: secrets/hosts
  admin_only:
    description: Path regexes for files only admins may read; they come first.
    type: list
    elements: str
    default: ['^secrets/host-keys/']
  rekey:
    description:
      - Sops files (C(*.sops.*)), or directories searched for them recursively, that follow these rules - each one
        whose matching rule names other recipients than the file is encrypted to is re-keyed (as
        M(nerv.homelab.sops_file) O(nerv.homelab.sops_file#module:updatekeys=true) does, values untouched) and
        listed in RV(rekeyed); the others are not opened or written.
      - Every re-key is planned (each such file decrypted with an admin identity) before anything is written, so a
        file no available identity opens changes nothing.
    type: list
    elements: path
    default: []
  require_identity:
    description:
      - Fail unless an age identity of one of O(admin_recipients) is available here (see O(identity_files)), saying
        how to make one; without it no secret of the site can be read or re-keyed.
    type: bool
    default: false
attributes:
  check_mode:
    details: Renders the rules and reports whether the file would change and which files of O(rekey) would be
      re-keyed; writes nothing.
  diff_mode:
    details: The file before and after (recipients are public).
seealso:
  - module: nerv.homelab.host_keys
  - module: nerv.homelab.sops_file
"""

EXAMPLES = r"""
- name: The site's .sops.yaml
  nerv.homelab.sops_config:
    path: inventory/home/.sops.yaml
    admin_recipients: "{{ site_model.sops.admin_recipients }}"
    hosts: "{{ keys.recipients | dict2items(key_name='name', value_name='recipient') }}"
    shared:
      - path_regex: ^secrets/k3s\.sops\.yaml$
        hosts: [all]
    require_identity: true

- name: A fleet's .sops.yaml, re-keying exactly the secrets whose rule changed
  nerv.homelab.sops_config:
    path: "{{ fleet_flake_dir }}/.sops.yaml"
    admin_recipients: "{{ fleet_admin_recipients }}"
    hosts: "{{ keys.recipients | dict2items(key_name='name', value_name='recipient') }}"
    host_dir: secrets
    admin_only: ['^host-keys/']
    shared: [{path_regex: '^secrets/common/'}]
    rekey: ["{{ fleet_flake_dir }}/secrets", "{{ fleet_flake_dir }}/host-keys"]
    require_identity: true
  register: fleet_rules
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
rules:
  description: The creation rules, in order.
  returned: always
  type: list
  elements: dict
rekeyed:
  description: The files of O(rekey) that were (in check mode, would be) re-keyed for their rule's recipients.
  returned: always
  type: list
  elements: str
admin_identity:
  description: Where the admin identity was found (a file name or variable, never the key), with O(require_identity).
  returned: when require_identity is true
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import IDENTITY_OPTIONS
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.runner import config_task


def argument_spec() -> dict:
    shared = {
        "path_regex": {"type": "str", "required": True},
        "hosts": {"type": "list", "elements": "str", "default": ["all"]},
        "encrypted_regex": {"type": "str"},
    }
    return {
        "path": {"type": "path", "required": True},
        "admin_recipients": {"type": "list", "elements": "str", "required": True},
        "hosts": {
            "type": "list",
            "elements": "dict",
            "default": [],
            "options": {
                "name": {"type": "str", "required": True},
                "recipient": {"type": "str"},
                "next_recipient": {"type": "str"},
            },
        },
        "shared": {"type": "list", "elements": "dict", "default": [], "options": shared},
        "host_dir": {"type": "str", "default": "secrets/hosts"},
        "admin_only": {"type": "list", "elements": "str", "default": ["^secrets/host-keys/"]},
        # paths, not secrets (the name only looks like one to the sanity check)
        "rekey": {"type": "list", "elements": "path", "default": [], "no_log": False},
        "require_identity": {"type": "bool", "default": False},
        **IDENTITY_OPTIONS,
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: config_task(module))


if __name__ == "__main__":
    main()

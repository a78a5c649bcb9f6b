#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sops_file
short_description: Encrypt, edit, re-key (updatekeys) and rotate a sops file with age recipients
version_added: 0.1.0
description:
  - Works on one sops file (YAML, JSON or dotenv) the way the sops 3.x command line does, natively in Python.
  - O(values) sets values (creating the file, encrypted, when it does not exist), O(generate) fills keys that are
    missing with random tokens, O(remove) deletes keys; the file is rewritten only when the decrypted content changes,
    and values whose plaintext did not change keep their ciphertext (as sops does), so diffs in Git stay small.
  - A key path is C(a.b.c) (nested keys) or, for a key whose name holds a dot, sops' own index syntax
    C(["a.b"]["c"]) (as C(sops set) and C(sops decrypt --extract) take it).
  - Files are written atomically with mode C(0600).
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.sops
  - nerv.homelab.attributes
options:
  path:
    description: The sops file.
    type: path
    required: true
  format:
    description:
      - The store; by default from the file name as sops picks it (C(.yaml)/C(.yml) YAML, C(.json) JSON, C(.env)
        dotenv, C(.ini) INI, anything else binary, whose content is the one value C(data)).
    type: str
    choices: [yaml, json, dotenv, ini, binary]
  values:
    description:
      - Values to set, by key path (C(a.b.c), or C(["a.b"]) for a top-level key holding a dot); nested dicts set
        nested keys too, and their keys are names as they are (a key C(b.c) nested under C(a) is the key C(b.c)).
      - Never logged.
    type: dict
    default: {}
  generate:
    description:
      - Key paths (C(a.b) or C(["a.b"])) to fill with a random token (URL-safe, O(generate_bytes) random bytes) when
        they are missing; an existing value is never replaced. For secrets no one needs to type, such as a K3s join
        token.
    type: list
    elements: str
    default: []
  generate_type:
    description:
      - What O(generate) fills a missing key with. C(token) is a random token; C(age_identity) is a new age X25519
        identity (C(AGE-SECRET-KEY-1...)), such as the key a cluster's Flux decrypts the site's Git secrets with;
        its recipient is returned in RV(public).
    type: str
    choices: [token, age_identity]
    default: token
  generate_bytes:
    description: Random bytes per generated token.
    type: int
    default: 32
  remove:
    description: Key paths to remove (C(a.b) or C(["a.b"])).
    type: list
    elements: str
    default: []
  updatekeys:
    description:
      - Re-wrap the data key for the recipients of the file's creation rule (or O(recipients)); values, MAC and
        C(lastmodified) stay. Unchanged when the recipients are the same.
    type: bool
    default: false
  rotate:
    description: Make a new data key and re-encrypt every value; it always changes the file.
    type: bool
    default: false
  recipients:
    description:
      - Age recipients (C(age1...) or C(ssh-ed25519 ...)) for a new file or for O(updatekeys), instead of a
        C(.sops.yaml) creation rule.
    type: list
    elements: str
  config:
    description:
      - The C(.sops.yaml) whose creation rules apply to a new file and to O(updatekeys); O(path) is matched against
        their C(path_regex) relative to its directory (absolute when O(path) is outside it), as sops does.
      - Without it, the one the sops command line would use run in the module's working directory - E(SOPS_CONFIG),
        else the first C(.sops.yaml) in that directory or above it (not above O(path); a C(.sops.yml) is ignored, as
        sops ignores it). On the local connection Ansible runs modules in the playbook's directory, so a playbook
        beside the site's C(.sops.yaml) needs no O(config); other playbooks give the site's C(.sops.yaml) here.
    type: path
  encrypted_regex:
    description:
      - For a new file given O(recipients) - encrypt only values under keys matching this regex (Kubernetes Secrets
        use C(^(data|stringData)$)). Without it the default C(unencrypted_suffix) rule applies.
    type: str
attributes:
  check_mode:
    details: Decrypts and computes the change, writes nothing.
  diff_mode:
    details: Key paths (changed ones marked) and recipients before and after; never a value.
seealso:
  - module: nerv.homelab.sops_config
  - module: nerv.homelab.host_keys
  - plugin: nerv.homelab.sops
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Keep the Proxmox token secret in the site's secrets (encrypted per the site's .sops.yaml)
  nerv.homelab.sops_file:
    path: inventory/home/secrets/proxmox.sops.yaml
    config: inventory/home/.sops.yaml
    values:
      token_secret: "{{ vault_proxmox_token_secret }}"

- name: Make the K3s join token once
  nerv.homelab.sops_file:
    path: inventory/home/secrets/k3s.sops.yaml
    generate: [token]

- name: Make the cluster's age key for Flux once, and learn its recipient
  nerv.homelab.sops_file:
    path: inventory/home/secrets/cluster/flux.agekey.sops.yaml
    generate: [identity]
    generate_type: age_identity
  register: flux_key

- name: A host joined - re-wrap the data key for the recipients the site's .sops.yaml now lists
  nerv.homelab.sops_file:
    path: inventory/home/secrets/k3s.sops.yaml
    config: inventory/home/.sops.yaml
    updatekeys: true

- name: Set a top-level key whose name holds a dot
  nerv.homelab.sops_file:
    path: inventory/home/secrets/app.sops.yaml
    config: inventory/home/.sops.yaml
    values:
      '["smtp.password"]': "{{ vault_smtp_password }}"

- name: Rotate the data key
  nerv.homelab.sops_file:
    path: inventory/home/secrets/k3s.sops.yaml
    rotate: true
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
created:
  description: Whether the file was (or in check mode would be) created.
  returned: always
  type: bool
keys:
  description: Every key path of the file after the change, in document order (C(["a.b"]) for a name holding a dot).
  returned: always
  type: list
  elements: str
  sample: [token]
changed_keys:
  description: Key paths whose value was set, generated or removed.
  returned: always
  type: list
  elements: str
recipients:
  description: The age recipients the file is encrypted to after the change.
  returned: always
  type: list
  elements: str
public:
  description: For O(generate_type=age_identity), the age recipient of each key path of O(generate) (public).
  returned: when O(generate_type=age_identity)
  type: dict
  sample: {identity: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import IDENTITY_OPTIONS
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.runner import file_task


def argument_spec() -> dict:
    return {
        "path": {"type": "path", "required": True},
        "format": {"type": "str", "choices": ["yaml", "json", "dotenv", "ini", "binary"]},
        "values": {"type": "dict", "default": {}, "no_log": True},
        "generate": {"type": "list", "elements": "str", "default": [], "no_log": False},
        "generate_type": {"type": "str", "choices": ["token", "age_identity"], "default": "token"},
        "generate_bytes": {"type": "int", "default": 32},
        "remove": {"type": "list", "elements": "str", "default": []},
        "updatekeys": {"type": "bool", "default": False},
        "rotate": {"type": "bool", "default": False},
        "recipients": {"type": "list", "elements": "str"},
        "encrypted_regex": {"type": "str"},
        "config": {"type": "path"},
        **IDENTITY_OPTIONS,
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: file_task(module))


if __name__ == "__main__":
    main()

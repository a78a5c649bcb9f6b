#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: host_keys
short_description: Ensure each site host has an SSH host key, recorded, with the age recipient derived from it
version_added: 0.1.0
description:
  - For every host in O(hosts) - makes an ed25519 SSH host key pair on the controller (bare metal, or any host
    without O(hosts[].public_key)), or records the public key the host made itself (a VM's first boot, read
    through the guest agent by M(nerv.homelab.proxmox_vm)).
  - The public key is kept in plain text in O(public_dir)C(/<host>.pub); a private key made here is kept
    sops-encrypted to O(admin_recipients) in O(secrets_dir)C(/<host>.sops.yaml) (key C(ssh_host_ed25519_key)).
  - Returns each host's age recipient, derived from its public key the way ssh-to-age does, so C(.sops.yaml) can name
    the host and sops-nix on the host decrypts with C(sops.age.sshKeyPaths).
  - A key that exists is never regenerated (every secret encrypted to the host would be orphaned). A host presenting
    a public key different from the recorded one is refused unless it is listed in O(rotate); rotation is explicit.
  - With O(extra_files_dir), writes each host's key pair as the tree nixos-anywhere's C(--extra-files) copies onto
    the new system - C(<host>/etc/ssh/ssh_host_ed25519_key) (0600) and C(.pub) (0644), directories 0755.
  - Every host is checked before any file is written; a bad entry changes nothing.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.sops
options:
  hosts:
    description: The site's hosts.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Host name (a DNS label); names its key files.
        type: str
        required: true
      public_key:
        description:
          - The host's own C(ssh-ed25519) public key, when the host made its key (a VM). Without it a key pair is made
            here the first time (unless O(hosts[].generate=false)).
        type: str
      address:
        description:
          - The host's address; with O(known_hosts), a host that makes its own key and has no O(hosts[].public_key)
            takes the C(ssh-ed25519) key pinned for this address there.
        type: str
      generate:
        description:
          - Make a key pair here when the host has none recorded and no O(hosts[].public_key) is given.
          - C(false) for hosts that make their own key (VMs cloned from the template) - until they report it, they
            are C(pending) and left out of RV(recipients).
        type: bool
        default: true
  public_dir:
    description: Directory of the plain-text public keys (C(<host>.pub)).
    type: path
    required: true
  secrets_dir:
    description: Directory of the sops-encrypted private keys (C(<host>.sops.yaml)).
    type: path
    required: true
  admin_recipients:
    description: Age recipients the private keys are encrypted to (the site's C(sops.admin_recipients)).
    type: list
    elements: str
    required: true
  rotate:
    description:
      - Hosts whose key is replaced - a new pair made here, or the O(hosts[].public_key) given recorded.
      - Every secret encrypted to the old key must then be re-keyed
        (M(nerv.homelab.sops_file) with O(nerv.homelab.sops_file#module:updatekeys=true)).
    type: list
    elements: str
    default: []
  known_hosts:
    description:
      - A known_hosts file whose C(ssh-ed25519) entries give the keys of hosts with O(hosts[].generate=false) and an
        O(hosts[].address) (the site's known_hosts, where M(nerv.homelab.proxmox_vm)'s keys read through the guest
        agent are pinned). Hashed entries are not matched.
    type: path
  extra_files_dir:
    description:
      - A private directory (mode 0700, such as one made by M(ansible.builtin.tempfile)) to write each host's
        C(--extra-files) tree into; hosts whose private key is not kept here (keys made by the host) get none.
      - Needs an admin identity to decrypt stored keys; the caller removes the directory after the install.
    type: path
attributes:
  check_mode:
    support: full
    description: Reports which hosts would get a key made, recorded or rotated; writes and generates nothing.
  diff_mode:
    support: full
    description: The public key of every host before and after (public keys only).
  platform:
    support: full
    platforms: posix
    description: Runs on the controller, where the site's files are.
seealso:
  - module: nerv.homelab.sops_config
  - module: nerv.homelab.sops_file
"""

EXAMPLES = r"""
- name: Keys for every host of the site; VMs report their own
  nerv.homelab.host_keys:
    hosts:
      - name: nuc1
      - name: cp1
        public_key: "{{ cp1_vm.host_key }}"
    public_dir: inventory/home/host-keys
    secrets_dir: inventory/home/secrets/host-keys
    admin_recipients: "{{ site_model.sops.admin_recipients }}"
  register: keys

- name: nuc1 was replaced - make it a new key
  nerv.homelab.host_keys:
    hosts: [{name: nuc1}]
    rotate: [nuc1]
    public_dir: inventory/home/host-keys
    secrets_dir: inventory/home/secrets/host-keys
    admin_recipients: "{{ site_model.sops.admin_recipients }}"
"""

RETURN = r"""
hosts:
  description:
    - Per host - what was done (C(kept), C(generated), C(recorded), C(rotated), or C(pending) for a host that makes
      its own key and has not reported it) and the resulting keys (public only).
  returned: always
  type: dict
  sample:
    nuc1:
      action: generated
      public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... root@nuc1
      age_recipient: age1...
      source: generated
      private_key_file: inventory/home/secrets/host-keys/nuc1.sops.yaml
      extra_files: /tmp/ansible.x/nuc1
recipients:
  description: Host name to age recipient (hosts whose key is known).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.secrets import host_keys as hk
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.module import (
    IDENTITY_OPTIONS,
    identities,
    run_module,
)


def argument_spec() -> dict:
    host = {
        "name": {"type": "str", "required": True},
        "public_key": {"type": "str"},
        "address": {"type": "str"},
        "generate": {"type": "bool", "default": True},
    }
    return {
        "hosts": {"type": "list", "elements": "dict", "required": True, "options": host},
        "public_dir": {"type": "path", "required": True},
        "secrets_dir": {"type": "path", "required": True},
        "admin_recipients": {"type": "list", "elements": "str", "required": True},
        "rotate": {"type": "list", "elements": "str", "default": []},
        "known_hosts": {"type": "path"},
        "extra_files_dir": {"type": "path"},
        **IDENTITY_OPTIONS,
    }


def execute(module) -> dict:
    return hk.run(module.params, module.check_mode, lambda: identities(module.params))


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: execute(module))


if __name__ == "__main__":
    main()

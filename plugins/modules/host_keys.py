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
  - nerv.homelab.attributes
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
      next_public_key:
        description:
          - With O(rotate_stage=add) for a host in O(rotate) - the new C(ssh-ed25519) public key the host made itself;
            without it a new key pair is made here.
        type: str
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
  rotate_stage:
    description:
      - How the keys of the hosts in O(rotate) are rotated.
      - C(replace) - the new key replaces the recorded one at once (the host can no longer decrypt secrets re-keyed
        for it until it runs with its new key).
      - C(add) - step 1 of a rotation without downtime - the new key (O(hosts[].next_public_key), or a pair made here,
        its private half encrypted in O(secrets_dir)C(/<host>.next.sops.yaml)) is recorded in
        O(public_dir)C(/<host>.next.pub) beside the current one and returned in RV(next_recipients), so the host's
        rules can name both keys; the host is then deployed with its new key. Running it again keeps that new key.
      - C(drop) - step 2 - the new key becomes the host's key and the old one is forgotten (RV(next_recipients) no
        longer lists the host); nothing happens for a host with no new key recorded.
      - A host with a new key recorded keeps it in RV(next_recipients) in every run until step C(drop).
    type: str
    choices: [replace, add, drop]
    default: replace
  known_hosts:
    description:
      - A known_hosts file whose C(ssh-ed25519) entries give the keys of hosts with O(hosts[].generate=false) and an
        O(hosts[].address) (the site's known_hosts, where M(nerv.homelab.proxmox_vm)'s keys read through the guest
        agent are pinned). Hashed entries are not matched.
    type: path
  pin:
    description:
      - Also pin every host that has a key and an O(hosts[].address) in O(known_hosts), in one write - an entry of
        that address with another ed25519 key is replaced, other entries stay - and list them in RV(pinned).
      - Replaces a loop of M(ansible.builtin.known_hosts) tasks (one module run per host).
    type: bool
    default: false
  require_identity:
    description:
      - Fail before anything is written unless an age identity of one of O(admin_recipients) is available here (as
        sops finds identities, and O(identity_files)); RV(admin_identity) says where it was found.
      - The keys phase asks for it in its first step, since every later one needs an admin to read the secrets.
    type: bool
    default: false
  extra_files_dir:
    description:
      - A private directory (mode 0700, such as one made by M(ansible.builtin.tempfile)) to write each host's
        C(--extra-files) tree into; hosts whose private key is not kept here (keys made by the host) get none.
      - Needs an admin identity to decrypt stored keys; the caller removes the directory after the install.
    type: path
attributes:
  check_mode:
    details: Reports which hosts would get a key made, recorded or rotated; writes and generates nothing.
  diff_mode:
    details: The public key of every host before and after (public keys only).
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

- name: Rotate pi's key without downtime, step 1 - its new key beside the old one (deploy pi with it next)
  nerv.homelab.host_keys:
    hosts: [{name: pi, address: 10.77.0.31, generate: false}]
    rotate: [pi]
    rotate_stage: add
    public_dir: fleet/host-keys
    secrets_dir: fleet/host-keys
    admin_recipients: "{{ fleet_admin_recipients }}"
    known_hosts: fleet/known_hosts
"""

RETURN = r"""
hosts:
  description:
    - Per host - what was done (C(kept), C(generated), C(recorded), C(rotated), or C(pending) for a host that makes
      its own key and has not reported it) and the resulting keys (public only).
    - C(next_action) (C(added), C(kept) or null), C(next_public_key) and C(next_age_recipient) describe the new key of
      a rotation in two steps.
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
      next_action: null
      next_public_key: null
      next_age_recipient: null
recipients:
  description: Host name to age recipient (hosts whose key is known).
  returned: always
  type: dict
admin_identity:
  description: With O(require_identity), where the admins' identity was found (a file or variable, never the key).
  returned: when O(require_identity=true)
  type: str
  sample: /root/.config/sops/age/keys.txt
pinned:
  description: With O(pin), the hosts whose entry in O(known_hosts) was added or replaced (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [nuc1]
next_recipients:
  description:
    - Host name to the age recipient of its new key, for hosts being rotated in two steps (between
      O(rotate_stage=add) and O(rotate_stage=drop)); give it to M(nerv.homelab.sops_config) as
      O(nerv.homelab.sops_config#module:hosts[].next_recipient).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.secrets import host_keys as hk
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import IDENTITY_OPTIONS


def argument_spec() -> dict:
    host = {
        "name": {"type": "str", "required": True},
        "public_key": {"type": "str"},
        "address": {"type": "str"},
        "generate": {"type": "bool", "default": True},
        "next_public_key": {"type": "str"},
    }
    return {
        "hosts": {"type": "list", "elements": "dict", "required": True, "options": host},
        "public_dir": {"type": "path", "required": True},
        "secrets_dir": {"type": "path", "required": True},
        "admin_recipients": {"type": "list", "elements": "str", "required": True},
        "rotate": {"type": "list", "elements": "str", "default": []},
        "rotate_stage": {"type": "str", "choices": ["replace", "add", "drop"], "default": "replace"},
        "known_hosts": {"type": "path"},
        "pin": {"type": "bool", "default": False},
        "require_identity": {"type": "bool", "default": False},
        "extra_files_dir": {"type": "path"},
        **IDENTITY_OPTIONS,
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: hk.run(module))


if __name__ == "__main__":
    main()

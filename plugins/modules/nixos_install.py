#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nixos_install
short_description: Install a host's NixOS with nixos-anywhere, refusing what would wipe a system by surprise
version_added: 0.1.0
description:
  - Probes the target over SSH first (read-only) - its OS, hostname, RAM and disks.
  - A NixOS installer (C(VARIANT_ID=installer), the ISO or nixos-anywhere's kexec image) is installed. A host that
    already runs NixOS with the expected hostname and the pinned host key is left alone (C(changed=false)). Any
    other installed system (NixOS or not) is refused unless O(reinstall=true) is set for that host, since installing
    wipes O(disk).
  - O(disk) must be a C(/dev/disk/by-id/...) path and must exist on the target.
  - Runs C(nixos-anywhere --flake <flake>#<host> --target-host <user>@<address> -i <key> --extra-files <tree>
    --phases ...), streaming its output to O(log_file) (mode 0600) and collecting the names of the steps it
    announces as RV(steps). On failure the task fails with the last step reached and the last lines of output;
    a re-run probes again and continues (an interrupted install leaves the target in the installer).
  - Afterwards waits until the host answers SSH at O(address_after), checks that it presents the pinned host key
    (O(host_key), or the key O(known_hosts) pins for that address) and that its hostname is O(host).
  - Only paths go into argv (the identity file, the C(--extra-files) tree); never a key or a secret.
  - The installer's own SSH host keys are ephemeral and cannot be pinned in advance, so nixos-anywhere connects to
    it without host key checking; the installed host is then verified against the pinned key.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.ssh_target
  - nerv.homelab.attributes
options:
  host:
    description: The host's name - C(nixosConfigurations.<host>) of O(flake) and the hostname expected afterwards.
  flake:
    description: The directory of the site's flake (with the site's C(hosts.json)).
    type: path
    required: true
  address:
    description: Where the target answers SSH now (the installer's address, found by MAC by the site inventory).
  address_after:
    description: Where the installed host answers (its static address); defaults to O(address).
    type: str
  disk:
    description:
      - The disk that will be wiped, as C(/dev/disk/by-id/...) (the host's C(disk_id) in the site file). Checked
        to exist on the target before anything runs.
    type: str
  extra_files:
    description:
      - The C(--extra-files) tree (C(etc/ssh/ssh_host_ed25519_key) 0600, C(.pub), directories 0755), as
        M(nerv.homelab.host_keys) prepares it. Its modes are checked.
    type: path
  host_key:
    description: The host's pinned public key (C(ssh-ed25519 AAAA...)) the installed host must present.
    type: str
  known_hosts:
    description: The site's known_hosts; without O(host_key), the key it pins for O(address_after) is expected.
    required: false
  phases:
    description: nixos-anywhere's phases to run.
    type: list
    elements: str
    default: [kexec, disko, install, reboot]
  hardware_config:
    description: Write C(nixos-generate-config)'s hardware configuration to this path (C(--generate-hardware-config)).
    type: path
  reinstall:
    description: Install even though the target runs an installed system (it is wiped). Set per host.
    type: bool
    default: false
  log_file:
    description:
      - Where nixos-anywhere's output goes (0600); defaults to C(nixos_install/<host>.log) in
        C($XDG_CACHE_HOME/nerv-homelab), or C(~/.cache/nerv-homelab) when XDG_CACHE_HOME is not set.
    type: path
  timeout:
    description: Seconds nixos-anywhere may run.
    type: int
    default: 3600
  wait_timeout:
    description: Seconds to wait for the host to come back after the reboot.
    type: int
    default: 600
  nixos_anywhere:
    description: The nixos-anywhere command.
    type: str
    default: nixos-anywhere
  extra_args:
    description: More nixos-anywhere arguments (for example C(--build-on-remote)).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    details:
      - Probes the target (read-only) and reports the decision and the argv; runs nothing else.
      - A target that does not answer at all (not booted yet, say) is planned as an install, with a warning.
  diff_mode:
    support: none
    details: Nothing to diff - the result says what was decided (RV(action), RV(reason)) and the argv.
requirements:
  - nixos-anywhere on PATH (or O(nixos_anywhere))
  - ssh and ssh-keyscan (OpenSSH client)
seealso:
  - module: nerv.homelab.host_keys
  - plugin: nerv.homelab.site
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Install mini1 from the installer it booted
  nerv.homelab.nixos_install:
    host: mini1
    flake: "{{ nixos_install_flake }}"
    address: "{{ hostvars.mini1.ansible_host }}"
    address_after: "{{ hostvars.mini1.nerv_address }}"
    identity_file: ~/.ssh/id_ed25519
    disk: "{{ hostvars.mini1.nerv_disk_id }}"
    extra_files: "{{ sops_keys_trees.mini1 }}"
    known_hosts: inventory/minis/known_hosts
  delegate_to: localhost
"""

RETURN = r"""
action:
  description: C(install) (nixos-anywhere ran, or would in check mode) or C(installed) (already this host).
  returned: always
  type: str
reason:
  description: Why.
  returned: always
  type: str
argv:
  description: The nixos-anywhere command line (paths only).
  returned: always
  type: list
  elements: str
steps:
  description: The steps nixos-anywhere announced, in order.
  returned: when nixos-anywhere ran
  type: list
  elements: str
log_file:
  description: nixos-anywhere's full output.
  returned: when nixos-anywhere ran
  type: str
facts:
  description: What the probe found (os_id, variant_id, pretty_name, hostname, mem_kb, disk_present, by_id).
  returned: always
  type: dict
hostname:
  description: The hostname the installed host answered with.
  returned: when nixos-anywhere ran
  type: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common import ssh
from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import install as ni


def argument_spec() -> dict:
    return {
        **ssh.TARGET_OPTIONS,
        "flake": {"type": "path", "required": True},
        "address_after": {"type": "str"},
        "disk": {"type": "str"},
        "extra_files": {"type": "path"},
        "host_key": {"type": "str", "no_log": False},  # a public key
        "known_hosts": {"type": "path"},  # not required here, unlike in TARGET_OPTIONS
        "phases": {"type": "list", "elements": "str", "default": list(ni.PHASES)},
        "hardware_config": {"type": "path"},
        "reinstall": {"type": "bool", "default": False},
        "log_file": {"type": "path"},
        "timeout": {"type": "int", "default": 3600},
        "wait_timeout": {"type": "int", "default": 600},
        "nixos_anywhere": {"type": "str", "default": "nixos-anywhere"},
        "extra_args": {"type": "list", "elements": "str", "default": []},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: ni.execute(module))


if __name__ == "__main__":
    main()

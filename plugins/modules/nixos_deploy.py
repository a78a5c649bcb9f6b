#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nixos_deploy
short_description: Deploy a host's NixOS configuration with nixos-rebuild over pinned SSH, only when it changed
version_added: 0.1.0
description:
  - Evaluates the store path of C(nixosConfigurations.<host>) of O(flake) (C(nix eval), nothing is built) and reads
    the system the host runs (C(/run/current-system), or the boot profile for O(action=boot)) over SSH with the
    site's pinned known_hosts and strict host key checking.
  - When they are the same nothing happens (C(changed=false)); otherwise runs C(nixos-rebuild <action> --flake
    <flake>#<host> --target-host <user>@<address>) with C(NIX_SSHOPTS) pinning the host key, streams its output to
    O(log_file) (0600), and checks that the host then runs (or boots) the new system.
  - For day-2 changes and for VMs cloned from the template, which already run NixOS.
  - With O(rollback_to) (the RV(before) of a deploy) it undoes that deploy instead - C(nixos-rebuild switch
    --rollback), back to the previous generation - only when the host no longer runs that system, and checks that
    it does afterwards; O(flake) is not evaluated then.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.ssh_target
  - nerv.homelab.attributes
options:
  host:
    description: The host - C(nixosConfigurations.<host>) of O(flake).
    type: str
    required: true
  flake:
    description:
      - The site's flake directory (used as C(path:), so it need not be a git repository), or a flake reference
        with a scheme (C(path:/srv/fleet), C(github:owner/repo)), used as it is.
    type: path
    required: true
  address:
    description: The host's address.
    type: str
    required: true
  known_hosts:
    description: The site's known_hosts pinning the host's key; connections are refused when it does not match.
    type: path
    required: true
  action:
    description: C(switch) (activate now and at boot), C(boot) (at the next boot) or C(test) (now, not at boot).
    type: str
    choices: [switch, boot, test]
    default: switch
  log_file:
    description:
      - Where nixos-rebuild's output goes (0600); defaults to C(nixos_deploy/<host>.log) in
        C($XDG_CACHE_HOME/nerv-homelab), or C(~/.cache/nerv-homelab) when XDG_CACHE_HOME is not set.
    type: path
  timeout:
    description: Seconds nixos-rebuild may run.
    type: int
    default: 3600
  nix:
    description: The nix command (for C(nix eval)).
    type: str
    default: nix
  nixos_rebuild:
    description: The nixos-rebuild command.
    type: str
    default: nixos-rebuild
  extra_args:
    description: More nixos-rebuild arguments (for example C(--use-substitutes)).
    type: list
    elements: str
    default: []
  rollback_to:
    description:
      - The system store path the host ran before a deploy that went wrong (that deploy's RV(before)); the host is
        switched back to its previous generation unless it already runs this system.
    type: str
attributes:
  check_mode:
    details:
      - Evaluates the wanted system and reads the running one; reports whether a deploy would happen.
      - A host that does not answer at all (a VM not made yet, say) is planned as a deploy, with a warning, without
        evaluating its system; RV(before) and RV(after) are then null.
  diff_mode:
    details: The system store path before and after.
requirements:
  - nix (2.8 or later) and nixos-rebuild on the controller
seealso:
  - module: nerv.homelab.nixos_install
"""

EXAMPLES = r"""
- name: Deploy cp1
  nerv.homelab.nixos_deploy:
    host: cp1
    flake: ~/.cache/nerv-homelab/flake/home
    address: 192.168.10.21
    known_hosts: inventory/home/known_hosts
    identity_file: ~/.ssh/id_ed25519
  delegate_to: localhost
  register: cp1_deploy

- name: Undo that deploy (the host no longer became a Ready node, say)
  nerv.homelab.nixos_deploy:
    host: cp1
    flake: ~/.cache/nerv-homelab/flake/home
    address: 192.168.10.21
    known_hosts: inventory/home/known_hosts
    rollback_to: "{{ cp1_deploy.before }}"
"""

RETURN = r"""
before:
  description:
    - The system store path the host ran (or would boot) before.
    - Null in check mode for a host that does not answer.
  returned: always
  type: str
after:
  description:
    - The system store path of the configuration.
    - Null in check mode for a host that does not answer.
  returned: always
  type: str
argv:
  description: The nixos-rebuild command line.
  returned: always
  type: list
  elements: str
log_file:
  description: nixos-rebuild's output.
  returned: when nixos-rebuild ran
  type: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import SSH_OPTIONS
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import deploy as nd


def argument_spec() -> dict:
    return {
        "host": {"type": "str", "required": True},
        "flake": {"type": "path", "required": True},
        "address": {"type": "str", "required": True},
        **SSH_OPTIONS,
        "known_hosts": {"type": "path", "required": True},
        "action": {"type": "str", "choices": list(nd.ACTIONS), "default": "switch"},
        "log_file": {"type": "path"},
        "timeout": {"type": "int", "default": 3600},
        "nix": {"type": "str", "default": "nix"},
        "nixos_rebuild": {"type": "str", "default": "nixos-rebuild"},
        "extra_args": {"type": "list", "elements": "str", "default": []},
        "rollback_to": {"type": "str"},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: nd.execute(module))


if __name__ == "__main__":
    main()

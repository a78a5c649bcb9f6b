#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: flake_eval
short_description: Evaluate the systems and Home Manager homes of a flake's hosts, all of them, before any deploy
version_added: 0.1.0
description:
  - One C(nix eval --json --impure --expr) (C(builtins.getFlake)) gives the store path of every selected host's
    system - C(nixosConfigurations.<host>.config.system.build.toplevel) for O(hosts[].platform=nixos),
    C(darwinConfigurations.<host>.system) (what nix-darwin's C(darwinSystem) returns) for O(hosts[].platform=darwin)
    - and of every O(homes) entry, C(homeConfigurations."<user@host>".activationPackage).
  - Each entry is evaluated under C(builtins.tryEval), so one that fails does not hide the others; the failed ones
    are then evaluated one by one for nix's own error message. When any entry fails the task fails, naming every
    failed entry with nix's message. An error C(tryEval) cannot catch (C(abort)) makes every entry be evaluated on
    its own.
  - Evaluation only - nothing is built or copied - so the module never changes anything and runs in check mode.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.attributes.read_only
options:
  flake:
    description:
      - The flake, a local directory (evaluated as C(path:), so it need not be a git repository) or a flake
        reference with a scheme (C(path:/srv/fleet), C(github:owner/repo)); the flake inventory's C(nerv_flake).
    type: str
    required: true
  hosts:
    description: The hosts whose system to evaluate.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The configuration's name, C(nixosConfigurations.<name>) or C(darwinConfigurations.<name>).
        type: str
        required: true
      platform:
        description: Which output the host is in (the flake inventory's C(nerv_flake_platform)).
        type: str
        choices: [nixos, darwin]
        required: true
  homes:
    description: Home Manager configurations to evaluate, C(homeConfigurations."<user@host>") names.
    type: list
    elements: str
    default: []
  nix:
    description: The nix command, a name on PATH or a path.
    type: str
    default: nix
  timeout:
    description: Seconds each C(nix eval) may take.
    type: int
    default: 600
requirements:
  - nix (2.8 or later) on the controller
seealso:
  - module: nerv.homelab.flake_deploy
  - plugin: nerv.homelab.flake
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Evaluate every host of the fleet before touching one
  nerv.homelab.flake_eval:
    flake: "{{ hostvars[groups['all'][0]].nerv_flake }}"
    hosts:
      - {name: pi, platform: nixos}
      - {name: mac, platform: darwin}
    homes: ["alice@pi"]
  delegate_to: localhost
  run_once: true
  register: fleet
"""

RETURN = r"""
flake:
  description: The flake reference evaluated.
  returned: always
  type: str
  sample: path:/srv/fleet
systems:
  description: Each host's system store path.
  returned: always
  type: dict
  sample: {pi: /nix/store/9q4dmyjjms91lj7iglb6411ha7hadk35-nixos-system-pi-25.05}
homes:
  description: Each home's activation package store path.
  returned: always
  type: dict
failures:
  description: Each entry whose evaluation failed (homes as C(home <user@host>)) with nix's message.
  returned: on failure
  type: dict
  sample: {pi: "error: The option `services.nginx.enable' does not exist."}
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import nix


def argument_spec() -> dict:
    host = {"name": {"type": "str", "required": True},
            "platform": {"type": "str", "choices": list(nix.PLATFORMS), "required": True}}  # fmt: skip
    return {
        "flake": {"type": "str", "required": True},
        "hosts": {"type": "list", "elements": "dict", "default": [], "options": host},
        "homes": {"type": "list", "elements": "str", "default": []},
        "nix": {"type": "str", "default": "nix"},
        "timeout": {"type": "int", "default": 600},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params

    def work() -> dict:
        return {"changed": False, **nix.evaluate(p["nix"], p["flake"], p["hosts"], p["homes"], p["timeout"])}

    run_module(module, work)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: home_manager
short_description: Switch a user's Home Manager configuration over pinned SSH, only when it changed, with rollback
version_added: 0.1.0
description:
  - Evaluates C(homeConfigurations."<configuration>".activationPackage) of O(flake) (C(nix eval), nothing is built),
    unless O(activation) gives it already, and reads the generation the user's Home Manager profile points at over
    SSH as O(user) with the pinned O(known_hosts) and strict host key checking. The profile is found as Home
    Manager finds it, C($XDG_STATE_HOME/nix/profiles/home-manager) (C(~/.local/state/...)), else
    C(/nix/var/nix/profiles/per-user/<user>/home-manager). A user without a profile gets a first activation.
  - When they are the same nothing happens (C(changed=false)). Otherwise the flake's source and inputs are copied
    to the host's store with C(nix flake archive --to ssh://<user>@<address>) (C(NIX_SSHOPTS) pinning the host key)
    and C(home-manager switch --flake <source>#<configuration>) runs on the host as the user, so the host builds or
    substitutes the generation itself. Its output goes to O(log_file) (0600).
  - After the switch the profile must point at the new generation, a new SSH connection must log in, and each of
    O(health_checks) must exit 0 within O(health_timeout). When any of this fails and O(rollback) is on, the
    previous generation's C(activate) script runs on the host, the profile is checked to point at it again, and the
    task fails saying that it rolled back, with the failing check's output. A first activation has nothing to roll
    back to; the task says so.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.attributes
  - nerv.homelab.ssh_target
options:
  host:
    description: The host, as the flake names it (the default O(configuration) is C(<user>@<host>)).
  user:
    description: The login the home belongs to; every SSH connection logs in as this user.
    type: str
    required: true
    default: null
  flake:
    description: The flake directory (used as C(path:), so it need not be a git repository).
    type: path
    required: true
  configuration:
    description: The attribute of C(homeConfigurations); default C(<user>@<host>).
    type: str
  activation:
    description:
      - The configuration's C(activationPackage) store path, already evaluated (by M(nerv.homelab.flake_eval), say);
        O(flake) is then not evaluated again, only copied when a switch is due.
    type: str
  health_checks:
    description: Commands run on the host as O(user) over SSH after the switch; each must exit 0.
    type: list
    elements: str
    default: []
  health_timeout:
    description: Seconds all health checks together may take to pass; a failing check is retried until then.
    type: int
    default: 60
  rollback:
    description: Activate the previous generation again when the switch or a health check fails.
    type: bool
    default: true
  home_manager:
    description: The home-manager command on the host (a name on the user's PATH or a path).
    type: str
    default: home-manager
  nix:
    description: The nix command on the controller (for C(nix eval) and C(nix flake archive)).
    type: str
    default: nix
  timeout:
    description: Seconds the copy, C(home-manager switch) and a rollback may each run.
    type: int
    default: 3600
  log_file:
    description:
      - Where the switch's and a rollback's output go (0600); defaults to C(home_manager/<user>@<host>.log) in
        C($XDG_CACHE_HOME/nerv-homelab), or C(~/.cache/nerv-homelab) when XDG_CACHE_HOME is not set.
    type: path
  extra_args:
    description: More C(home-manager switch) arguments (for example C(-b backup)).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    details:
      - Evaluates the wanted generation and reads the running one; reports whether a switch would happen, copies and
        runs nothing.
      - A host that does not answer at all is planned as a switch, with a warning; RV(before) is then null.
  diff_mode:
    details: The generation store path before and after.
requirements:
  - nix (2.8 or later) on the controller; nix and home-manager on the host
seealso:
  - module: nerv.homelab.flake_deploy
"""

EXAMPLES = r"""
- name: Switch alice's home on mini1
  nerv.homelab.home_manager:
    host: mini1
    user: alice
    flake: ~/src/fleet
    address: 192.168.10.31
    known_hosts: inventory/home/known_hosts
    identity_file: ~/.ssh/id_ed25519
    health_checks:
      - systemctl --user is-active syncthing.service
  delegate_to: localhost
"""

RETURN = r"""
before:
  description: The generation the user's profile pointed at before; null for a first activation.
  returned: always
  type: str
after:
  description: The configuration's generation (its activationPackage).
  returned: always
  type: str
profile:
  description: The Home Manager profile link read on the host; null when the user had none.
  returned: always
  type: str
configuration:
  description: The homeConfigurations attribute.
  returned: always
  type: str
rolled_back:
  description: Whether the previous generation was activated again (the task then fails).
  returned: always
  type: bool
health:
  description: Each health check run after the switch (C(true) first, the login) and its outcome.
  returned: always
  type: list
  elements: dict
  contains:
    check:
      description: The command.
      type: str
    ok:
      description: Whether it exited 0 within the time.
      type: bool
    rc:
      description: Its last exit code; null when it did not answer.
      type: int
    output:
      description: Its last output (stdout and stderr, the end of it).
      type: str
    attempts:
      description: How often it ran.
      type: int
argv:
  description: The home-manager command run on the host.
  returned: when a switch ran
  type: list
  elements: str
copy:
  description: What was copied to the host, C(argv) (the nix flake archive command), C(source) and C(inputs).
  returned: when a switch ran
  type: dict
log_file:
  description: The switch's output.
  returned: when a switch ran
  type: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import TARGET_OPTIONS
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import deploy, home


def argument_spec() -> dict:
    return {
        **TARGET_OPTIONS,
        "user": {"type": "str", "required": True},
        "flake": {"type": "path", "required": True},
        "configuration": {"type": "str"},
        "activation": {"type": "str"},
        "health_checks": {"type": "list", "elements": "str", "default": []},
        "health_timeout": {"type": "int", "default": 60},
        "rollback": {"type": "bool", "default": True},
        "home_manager": {"type": "str", "default": "home-manager"},
        "nix": {"type": "str", "default": "nix"},
        "timeout": {"type": "int", "default": 3600},
        "log_file": {"type": "path"},
        "extra_args": {"type": "list", "elements": "str", "default": []},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: deploy.run(module, home.Home))


if __name__ == "__main__":
    main()

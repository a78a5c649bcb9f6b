#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: flake_deploy
short_description: Deploy one NixOS or nix-darwin host of a flake over pinned SSH, with a health check and rollback
version_added: 0.1.0
description:
  - Reads the system the host runs (C(readlink -f /run/current-system), the boot profile for O(action=boot)) over
    SSH with O(known_hosts) and strict host key checking, and compares it with O(system) (from
    M(nerv.homelab.flake_eval)) or, when that is not given, the evaluated system of the host. When they are the same
    nothing runs (C(changed=false)).
  - B(NixOS) - on the controller C(nixos-rebuild <action> --flake <flake>#<host> --target-host <user>@<address>),
    with C(--build-host <user>@<address>) for O(build_on=target), C(NIX_SSHOPTS) pinning the host key.
  - B(macOS) - darwin-rebuild has no C(--target-host), so it runs on the Mac. From the controller C(nix flake archive
    --to ssh-ng://<user>@<address> <flake>) copies the flake's source to the Mac (and for O(build_on=local) C(nix
    build) and C(nix copy --to ssh-ng://...) the system), then over SSH C(darwin-rebuild switch --flake
    <source store path>#<host>) runs there. The Mac needs nix (C(nix-daemon) on the SSH user's PATH) and O(user)
    must be allowed to activate (root).
  - B(Magic rollback) - for O(action=switch) and O(action=test) with O(rollback), a watchdog is armed on the host
    before the switch (NixOS, a transient C(systemd-run) service C(nerv-rollback-<id>); macOS, a C(nohup) background
    shell, as a launchd job would need a plist written and loaded for one use). It waits until the host no longer
    runs the old system, then O(confirm_timeout) seconds, and unless the controller confirmed by then it sets the
    system profile back to the old system and activates it (C(<old>/bin/switch-to-configuration switch),
    C(<old>/activate) on macOS). The window starts at the activation, so a long build or copy cannot use it up.
  - B(Health check) - after the switch, from the controller, each over a new SSH connection, until all pass or
    O(health_timeout) passes - the host answers and runs the new system; on NixOS, with O(failed_units),
    C(systemctl --failed --no-legend --plain) prints nothing; each of O(health_checks) exits 0. Then the deploy is
    confirmed.
  - When the switch or a check fails but the host answers, the watchdog is disarmed and the host rolled back at
    once (C(nixos-rebuild switch --rollback --target-host ...), C(darwin-rebuild switch --rollback) on the Mac), the
    module checks that it runs the old system again and fails saying it was rolled back, with the failing check's
    output. When the host does not answer, it waits until the watchdog brought the old system back (the host
    answers and runs it) and fails saying so.
  - This module is also reachable as C(nerv.homelab.nixos_deploy), its former name for NixOS hosts.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.ssh_target
  - nerv.homelab.attributes
options:
  host:
    description: The host, C(nixosConfigurations.<host>) or C(darwinConfigurations.<host>) of O(flake).
  platform:
    description: NixOS or nix-darwin (the flake inventory's C(nerv_flake_platform)).
    type: str
    choices: [nixos, darwin]
    default: nixos
  flake:
    description:
      - The flake, a local directory (used as C(path:), so it need not be a git repository) or a flake reference
        with a scheme (the flake inventory's C(nerv_flake)).
    type: str
    required: true
  system:
    description:
      - The system store path to deploy, as M(nerv.homelab.flake_eval) evaluated it; the host is evaluated itself
        when this is not given.
    type: str
  build_on:
    description:
      - Where the system is built, C(local) (the controller) or C(target) (the host).
      - Default C(local) for NixOS, C(target) for macOS (a Linux controller cannot build for darwin).
    type: str
    choices: [local, target]
  action:
    description:
      - C(switch) (activate now and at boot), C(boot) (at the next boot; no health check, nothing to roll back) or
        C(test) (now, not at boot). darwin-rebuild deploys with C(switch) only.
    type: str
    choices: [switch, boot, test]
    default: switch
  health_checks:
    description: Shell commands run on the host over SSH after the switch; each must exit 0.
    type: list
    elements: str
    default: []
  failed_units:
    description:
      - On NixOS, the health check fails while C(systemctl --failed) lists any unit.
      - Turn it off for a host whose health is judged otherwise - a K3s node by its O(health_checks) and
        M(nerv.homelab.k8s_nodes_ready) - where a unit that failed for reasons of its own would roll back a deploy
        that is fine.
    type: bool
    default: true
  health_timeout:
    description: Seconds the health checks may take to pass, polled every 2 seconds.
    type: int
    default: 60
  confirm_timeout:
    description:
      - Seconds after the activation the watchdog waits for the confirmation before it rolls back; must exceed
        O(health_timeout).
    type: int
    default: 180
  rollback:
    description: Arm the watchdog and roll back a deploy whose health check fails.
    type: bool
    default: true
  log_file:
    description:
      - Where the output of the deploy's commands goes (0600); defaults to C(flake_deploy/<host>.log) in
        C($XDG_CACHE_HOME/nerv-homelab), or C(~/.cache/nerv-homelab) when XDG_CACHE_HOME is not set.
    type: path
  timeout:
    description: Seconds each command of the deploy (evaluation, build, copy, switch) may run.
    type: int
    default: 3600
  nix:
    description: The nix command on the controller.
    type: str
    default: nix
  nixos_rebuild:
    description: The nixos-rebuild command on the controller.
    type: str
    default: nixos-rebuild
  darwin_rebuild:
    description: The darwin-rebuild command on the Mac.
    type: str
    default: darwin-rebuild
  extra_args:
    description: More nixos-rebuild or darwin-rebuild arguments (for example C(--use-substitutes)).
    type: list
    elements: str
    default: []
  rollback_to:
    description:
      - The system store path the host ran before a deploy that went wrong (that deploy's RV(before)); the host is
        switched back to its previous generation (C(nixos-rebuild switch --rollback), C(darwin-rebuild switch
        --rollback) on the Mac) unless it already runs this system, and is checked to run it afterwards. O(flake) is
        not evaluated then, and neither the watchdog nor the health checks run.
    type: str
attributes:
  check_mode:
    details: Reads the running system and evaluates the wanted one (unless O(system) is given); changes nothing. A host
      that does not answer, or whose key is not pinned in O(known_hosts) yet, is planned as a deploy, with a warning.
  diff_mode:
    details: The system store path before and after.
requirements:
  - nix (2.8 or later) and, for NixOS hosts, nixos-rebuild on the controller
  - systemd on NixOS hosts; nix and darwin-rebuild on macOS hosts
seealso:
  - module: nerv.homelab.flake_eval
  - module: nerv.homelab.home_manager
"""

EXAMPLES = r"""
- name: Deploy pi, rolled back unless it comes up healthy
  nerv.homelab.flake_deploy:
    host: pi
    platform: nixos
    flake: path:/srv/fleet
    address: 10.0.0.31
    known_hosts: inventory/fleet/known_hosts
    system: "{{ fleet.systems.pi }}"
    health_checks:
      - systemctl is-active nginx
      - curl -fsS http://localhost/health
  delegate_to: localhost
  register: pi_deploy

- name: Deploy a Mac (darwin-rebuild runs on it)
  nerv.homelab.flake_deploy:
    host: mac
    platform: darwin
    flake: path:/srv/fleet
    address: mac.lan
    user: root
    known_hosts: inventory/fleet/known_hosts
  delegate_to: localhost

- name: Undo a deploy that went wrong later (the host did not become a Ready node, say)
  nerv.homelab.flake_deploy:
    host: pi
    flake: path:/srv/fleet
    address: 10.0.0.31
    known_hosts: inventory/fleet/known_hosts
    rollback_to: "{{ pi_deploy.before }}"
  delegate_to: localhost
"""

RETURN = r"""
before:
  description: The system store path the host ran (or would boot); null in check mode for a host that does not answer.
  returned: always
  type: str
after:
  description: The system store path deployed; null in check mode for a host that does not answer.
  returned: always
  type: str
deployed:
  description: Whether the new system was switched to and passed its health check (and was confirmed).
  returned: always
  type: bool
rolled_back:
  description: Whether the host was switched back to RV(before) (also in the failure result).
  returned: always
  type: bool
rolled_back_by:
  description: C(controller) (a failing check, the host answering) or C(watchdog) (the host did not answer).
  returned: when rolled back
  type: str
health:
  description: The last round of health checks, each C(check), C(ok), C(rc) and C(output) (its last 2000 characters).
  returned: when a switch ran
  type: list
  elements: dict
argv:
  description: The commands that ran on the controller (the remote command line for those run over SSH).
  returned: when a deploy ran
  type: list
  elements: list
rollback_argv:
  description: The command that rolled the host back from the controller (the remote command line over SSH).
  returned: when the controller rolled back (in the failure result)
  type: list
  elements: str
log_file:
  description: The output of the deploy's commands.
  returned: when a deploy ran
  type: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import TARGET_OPTIONS
from ansible_collections.nerv.homelab.plugins.module_utils.nixos import deploy, nix


def argument_spec() -> dict:
    return {
        **TARGET_OPTIONS,
        "platform": {"type": "str", "choices": list(nix.PLATFORMS), "default": "nixos"},
        "flake": {"type": "str", "required": True},
        "system": {"type": "str"},
        "build_on": {"type": "str", "choices": ["local", "target"]},
        "action": {"type": "str", "choices": list(deploy.ACTIONS), "default": "switch"},
        "health_checks": {"type": "list", "elements": "str", "default": []},
        "failed_units": {"type": "bool", "default": True},
        "health_timeout": {"type": "int", "default": 60},
        "confirm_timeout": {"type": "int", "default": 180},
        "rollback": {"type": "bool", "default": True},
        "log_file": {"type": "path"},
        "timeout": {"type": "int", "default": 3600},
        "nix": {"type": "str", "default": "nix"},
        "nixos_rebuild": {"type": "str", "default": "nixos-rebuild"},
        "darwin_rebuild": {"type": "str", "default": "darwin-rebuild"},
        "extra_args": {"type": "list", "elements": "str", "default": []},
        "rollback_to": {"type": "str"},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: deploy.run(module, deploy.System))


if __name__ == "__main__":
    main()

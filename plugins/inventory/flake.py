# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: flake
short_description: The NixOS and nix-darwin hosts of a Nix flake
version_added: 0.1.0
author:
  - nerv.homelab contributors (@nerv-homelab)
description:
  - Reads a flake's C(nixosConfigurations) and C(darwinConfigurations) with one C(nix eval) and yields each
    configuration as a host named like its attribute, in the group C(nixos) or C(darwin), and in
    C(system_<system>) (for example C(system_aarch64_linux)).
  - Only each configuration's C(config.nixpkgs.hostPlatform.system) (else C(pkgs.stdenv.hostPlatform.system)) is
    evaluated, never its system closure, so nothing is built or downloaded beyond the flake's inputs.
  - Deployment data follows deploy-rs, which many flakes already have, C(deploy.nodes.<name>.hostname) becomes
    C(ansible_host) (default the configuration's name) and C(deploy.nodes.<name>.sshUser) becomes C(ansible_user).
    Tags come from an optional top-level output C(nerv.tags.<name>), a list of strings; each tag is a group
    C(tag_<tag>). The optional output C(nerv.homes.<name>), a list of user names, becomes C(nerv_home_users), the
    users whose Home Manager homes C(playbooks/fleet_home.yml) switches on that host.
    The checks a configuration declares itself in C(config.nerv.healthChecks) (the home services of
    C(nixosModules.homeServices) add theirs there), then those of an optional output C(nerv.healthChecks.<name>),
    lists of shell commands, become C(nerv_health_checks), the checks C(playbooks/fleet_deploy.yml) runs on the
    host after a switch. Characters
    other than letters, digits and C(_) in group names become C(_).
  - Every host gets C(nerv_flake_platform) (C(nixos) or C(darwin)), C(nerv_flake_system), C(nerv_flake_attr)
    (for example C(nixosConfigurations.pi)) and C(nerv_flake) (the flake reference evaluated).
  - With O(cache) on, the evaluation is cached under a digest of every file of a local flake (its C(flake.lock)
    included; C(.git) and C(.direnv) left out), so any change means a new evaluation and no change means no nix
    run at all. A remote flake reference is cached by its text only, until O(cache_timeout).
  - The configuration file must be called C(flake.yml) or C(flake.yaml), or end in C(.flake.yml) or
    C(.flake.yaml).
requirements:
  - Nix 2.8 or later on the controller (C(nix eval), flakes; the experimental features are enabled per call).
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin, so that Ansible knows the file is its configuration.
    type: str
    required: true
    choices: [nerv.homelab.flake]
  flake:
    description:
      - The flake, a local directory (relative to the directory of this configuration file) or any flake reference
        (C(github:owner/repo), C(git+https://...)). A local directory is evaluated as C(path:), so files git does not
        track count too.
      - Default the directory of this configuration file.
    type: str
    default: .
  nix:
    description: The nix command, a name on PATH or a path.
    type: str
    default: nix
  eval_timeout:
    description: Seconds the evaluation may take.
    type: float
    default: 600
"""

EXAMPLES = r"""
# nix/flake.yml, beside flake.nix; `ansible-inventory -i nix/flake.yml --graph` lists the fleet
plugin: nerv.homelab.flake

# The flake.nix it reads (deploy-rs shape; nerv.tags optional):
#   deploy.nodes.pi = { hostname = "pi.lan"; sshUser = "admin"; profiles.system = ...; };
#   nerv.tags.pi = [ "edge" "dns" ];
#   nerv.homes.pi = [ "alice" ];     # homeConfigurations."alice@pi", for playbooks/fleet_home.yml
#   nerv.healthChecks.pi = [ "systemctl is-active unbound" ];

# A remote flake, cached for an hour, with groups of one's own:
# plugin: nerv.homelab.flake
# flake: github:example/fleet
# cache: true
# cache_plugin: ansible.builtin.jsonfile
# cache_connection: ~/.cache/nerv-homelab/inventory
# cache_timeout: 3600
# keyed_groups:
#   - key: nerv_flake_platform
#     prefix: platform
"""

import os

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.nerv.homelab.plugins.module_utils.nixos.nix import flake_ref, local_dir
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery import flake as logic
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery.populate import populate


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "nerv.homelab.flake"

    def verify_file(self, path):
        name = os.path.basename(path)
        return super().verify_file(path) and (
            name in ("flake.yml", "flake.yaml") or name.endswith((".flake.yml", ".flake.yaml"))
        )

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        base_dir = os.path.dirname(os.path.abspath(path))
        flake = self.get_option("flake")
        ref = flake_ref(flake, base_dir)
        local = local_dir(flake, base_dir)
        if local is not None and not os.path.isfile(os.path.join(local, "flake.nix")):
            raise AnsibleParserError(
                f"nerv.homelab.flake: option flake: {local} has no flake.nix: point flake at the flake's directory"
            )
        try:
            raw = self._evaluation(path, cache, ref, local)
            model = logic.build(raw, ref)
        except logic.FlakeError as exc:
            raise AnsibleParserError(f"nerv.homelab.flake: {exc}") from None
        # host names are the flake's attribute names, read from files anyone with commit access controls
        populate(self, model, wrap_names=True)

    def _evaluation(self, path, cache, ref, local):
        """The cached evaluation for this digest of the flake, else a fresh one (stored when caching)."""
        key = f"{self.get_cache_key(path)}_{logic.digest(local, ref)[:32]}"
        use_cache = self.get_option("cache")
        if cache and use_cache and key in self._cache:
            return self._cache[key]
        raw = logic.evaluate(self.get_option("nix"), ref, self.get_option("eval_timeout"))
        if use_cache:
            self._cache[key] = raw
        return raw

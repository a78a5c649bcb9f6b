# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of the nerv.homelab.flake inventory: a flake's NixOS and nix-darwin configurations as hosts.

One `nix eval` reads every configuration's system (never its toplevel: nothing is built) and the deployment data
the flake declares: deploy-rs's deploy.nodes.<name>.hostname/.sshUser and the optional outputs nerv.tags.<name>,
nerv.homes.<name> (the users whose Home Manager homes playbooks/fleet_home.yml switches there) and
nerv.healthChecks.<name> (the commands a fleet deploy's health check runs on the host), after the checks the
configuration's own modules declare in config.nerv.healthChecks (the home services of nixosModules.homeServices).
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.nix import nix_message, run_nix
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery.populate import InventoryModel

PLATFORMS = {"nixosConfigurations": "nixos", "darwinConfigurations": "darwin"}
SKIP_DIRS = {".git", ".direnv"}

# Everything the inventory needs, in one evaluation. `or` keeps it lazy and tolerant: a configuration that is not
# shaped like nixosSystem's result gets system null rather than failing the whole fleet.
EXPRESSION = """
let
  flake = builtins.getFlake (builtins.fromJSON %s);
  systemOf = c: c.config.nixpkgs.hostPlatform.system or (c.pkgs.stdenv.hostPlatform.system or (c.pkgs.system or null));
  # the checks a configuration's own modules declare (nerv.services.* of nixosModules.homeServices add theirs)
  hostsOf = output: builtins.mapAttrs
    (name: c: { system = systemOf c; healthChecks = c.config.nerv.healthChecks or null; }) (flake.${output} or {});
  node = n: { hostname = n.hostname or null; sshUser = n.sshUser or null; };
in {
  nixosConfigurations = hostsOf "nixosConfigurations";
  darwinConfigurations = hostsOf "darwinConfigurations";
  hasOutputs = flake ? nixosConfigurations || flake ? darwinConfigurations;
  deploy = builtins.mapAttrs (name: node) (flake.deploy.nodes or {});
  tags = flake.nerv.tags or {};
  homes = flake.nerv.homes or {};
  healthChecks = flake.nerv.healthChecks or {};
}
"""


class FlakeError(NervError):
    """The flake cannot be read: nix missing, evaluation failed, or no configuration output."""


def digest(directory: str | None, ref: str) -> str:
    """sha256 of the reference and of every file under a local flake directory (names and contents; .git and
    .direnv left out), so any changed, added or removed file - flake.lock included - gives a new digest."""
    sha = hashlib.sha256(ref.encode())
    if directory is None:
        return sha.hexdigest()
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        # os.walk lists a symlink to a directory among dirs and does not follow it: hash it as the link it is
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        dirs[:] = [d for d in dirs if d not in links]
        for name in sorted(files + links):
            path = os.path.join(root, name)
            sha.update(b"\0" + os.path.relpath(path, directory).encode() + b"\0")
            if os.path.islink(path):
                sha.update(b"link:" + os.readlink(path).encode())
            else:
                with open(path, "rb") as handle:
                    for chunk in iter(lambda h=handle: h.read(1 << 16), b""):
                        sha.update(chunk)
    return sha.hexdigest()


def eval_args(ref: str) -> list:
    return ["eval", "--json", "--impure", "--expr", EXPRESSION % json.dumps(json.dumps(ref))]


def evaluate(nix: str, ref: str, timeout: float = 600) -> dict:
    """The evaluation's JSON (see EXPRESSION); FlakeError naming the fix when nix is missing or fails."""
    done = run_nix(nix, eval_args(ref), f"nix eval of {ref}", timeout, error=FlakeError)
    if done.rc != 0:
        raise FlakeError(f"option flake: nix eval of {ref} failed (exit {done.rc}):\n{nix_message(done.stderr)}")
    try:
        return json.loads(done.stdout)
    except ValueError as exc:
        raise FlakeError(f"nix eval of {ref} printed no JSON ({exc})") from None


def safe_group_name(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", str(value))


def _strings(value, output: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise FlakeError(f"flake output {output} must be a list of strings, not {json.dumps(value)}")
    return value


def build(raw: dict, ref: str) -> InventoryModel:
    """Hosts and groups from the evaluation's JSON: groups nixos/darwin, system_<system>, tag_<tag>."""
    if not raw.get("hasOutputs"):
        raise FlakeError(
            f"option flake: {ref} has neither nixosConfigurations nor darwinConfigurations: point flake at the "
            "flake that defines the hosts"
        )
    model = InventoryModel()
    deploy, tags = raw.get("deploy") or {}, raw.get("tags") or {}
    homes, checks = raw.get("homes") or {}, raw.get("healthChecks") or {}
    for output, platform in PLATFORMS.items():
        for name, config in sorted((raw.get(output) or {}).items()):
            if name in model.hosts:
                model.warnings.append(f"{name} is both a NixOS and a darwin configuration: the {output} one is ignored")
                continue
            model.hosts[name] = host_vars(name, output, platform, config, deploy.get(name) or {}, ref)
            own = config.get("healthChecks")
            if own is not None or checks.get(name) is not None:
                declared = _strings(own, f"{output}.{name}.config.nerv.healthChecks")
                given = [c for c in _strings(checks.get(name), f"nerv.healthChecks.{name}") if c not in declared]
                model.hosts[name]["nerv_health_checks"] = declared + given
            model.add(platform, name)
            if config.get("system"):
                model.add(f"system_{safe_group_name(config['system'])}", name)
            else:
                model.warnings.append(f"{output}.{name} names no system (config.nixpkgs.hostPlatform.system)")
            for tag in _strings(tags.get(name), f"nerv.tags.{name}"):
                model.add(f"tag_{safe_group_name(tag)}", name)
            users = _strings(homes.get(name), f"nerv.homes.{name}")
            if users:
                model.hosts[name]["nerv_home_users"] = users
    for section, entries in (("deploy.nodes", deploy), ("nerv.homes", homes)):
        for name in sorted(set(entries) - set(model.hosts)):
            model.warnings.append(f"{section}.{name} has no nixosConfigurations or darwinConfigurations entry")
    return model


def host_vars(name: str, output: str, platform: str, config: dict, node: dict, ref: str) -> dict:
    hostvars = {
        "ansible_host": node.get("hostname") or name,
        "nerv_flake_platform": platform,
        "nerv_flake_system": config.get("system"),
        "nerv_flake_attr": f"{output}.{name}",
        "nerv_flake": ref,
    }
    if node.get("sshUser"):
        hostvars["ansible_user"] = node["sshUser"]
    return hostvars

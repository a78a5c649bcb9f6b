#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nix_build
short_description: Build a flake attribute with Nix and report its store paths and ISO image
version_added: 0.1.0
description:
  - Runs C(nix build --json) on one attribute of a flake and returns the store path of every output; when an output
    holds an ISO image (C(<output>/iso/*.iso), as a NixOS C(isoImage) does) also its path, size and sha256.
  - Works with Nix 2.8 and later; C(nix-command) and C(flakes) are enabled for the command it runs, so they need
    not be in C(nix.conf).
  - Reports C(changed) only when the output path differs from the one recorded by the last build of the same flake
    and attribute (see O(state_file)); the first build is a change, the same build again is not.
  - The build log is streamed to O(log_file), never held in memory; when the build fails the task fails with the
    exit code, the last lines of the log and the log's path.
  - Bad input (a flake directory that does not exist or has no C(flake.nix), an attribute that is not a dotted
    attribute path, an option the module sets itself in O(extra_args)) fails before anything runs.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.attributes
options:
  flake:
    description:
      - The flake, as an absolute directory holding C(flake.nix) or a flake reference such as C(path:/srv/flake) or
        C(git+file:///srv/flake).
      - A directory is passed to Nix as C(path:<directory>), so it need not be a git repository and files git does
        not track count too.
      - Must not hold C(#); the attribute goes to O(attribute).
    type: str
    required: true
  attribute:
    description:
      - The flake output attribute to build, as a dotted path, for example C(packages.x86_64-linux.default) or
        C(nixosConfigurations.installer.config.system.build.isoImage).
      - Letters, digits, C(_), C(-), C(+) and C(') only, so it can never be taken for something else.
    type: str
    required: true
  out_link:
    description:
      - Absolute path of a C(result)-style symlink to the output, which is also a garbage-collector root that keeps
        the output in the store.
      - Without it the build keeps no link (C(--no-link)) and a later C(nix-collect-garbage) may remove the output.
      - It must not be an existing file or directory; an existing symlink is replaced.
    type: path
  state_file:
    description:
      - JSON file recording the output paths of the last build, against which the next build decides C(changed).
      - Defaults to C($XDG_CACHE_HOME/nerv-homelab/nix_build/<hash of flake and attribute>.json), with
        C(~/.cache) when C(XDG_CACHE_HOME) is not set.
    type: path
  log_file:
    description:
      - File the build log (the command and everything C(nix build -L) writes to stderr) is streamed to; overwritten
        by every build.
      - Defaults to the O(state_file) path with C(.log) instead of C(.json).
    type: path
  iso:
    description:
      - Whether to report an ISO image among the outputs as RV(iso).
      - C(auto) reports the first C(iso/*.iso) of the outputs (or an output that is itself a C(.iso) file) when
        there is one; C(true) also fails the task when there is none; C(false) never looks.
      - The sha256 is computed by reading the file in chunks, and only once per store path (it is kept in the
        state file, store paths never change).
    type: raw
    default: auto
  store:
    description:
      - Nix store to build in, passed as C(--store), for example C(daemon) or a directory for a private local store
        (a chroot store; Nix then builds in its sandbox).
      - When it is a directory or C(local?root=<directory>), output paths are read under that directory to find
        the ISO image.
    type: str
  extra_args:
    description:
      - More arguments for C(nix build) (and for C(nix eval) in check mode), each one list item, for example
        C([--option, substituters, ""]) to build offline without waiting for a binary cache (without it, offline,
        Nix retries C(cache.nixos.org) for a few seconds before it builds).
      - Options the module sets itself are refused (C(--json), C(--out-link), C(--no-link), C(--store), ...).
    type: list
    elements: str
    default: []
  timeout:
    description:
      - Seconds the build (or, in check mode, the evaluation) may take; past them Nix is stopped and the task fails.
      - No limit when not set.
    type: int
attributes:
  check_mode:
    details:
      - Builds nothing and writes no file of the module; evaluates with C(nix eval) the derivation and the output
        paths the build would give and reports C(changed) when they differ from the recorded ones.
      - Evaluating a flake still copies its source and writes the derivation files to the Nix store, as Nix does.
      - When Nix cannot fetch the flake's inputs (no network, say), the task does not fail. It is planned as a build
        with RV(evaluated=false) and a warning that says so; a real run still needs those inputs.
  diff_mode:
    details: Shows the recorded output paths against the new ones.
requirements:
  - Nix 2.8 or later (Debian package C(nix-bin)) on the host that runs the module.
notes:
  - Debian's Nix is configured with C(sandbox = false); a derivation whose builder needs host tools sees them then.
seealso:
  - name: nix build
    description: The Nix command this module runs.
    link: https://nix.dev/manual/nix/stable/command-ref/new-cli/nix3-build
"""

EXAMPLES = r"""
- name: Build the installer ISO of the homelab flake
  nerv.homelab.nix_build:
    flake: "{{ playbook_dir }}/../nix"
    attribute: nixosConfigurations.installer.config.system.build.isoImage
    out_link: "{{ playbook_dir }}/../build/installer"
    timeout: 7200
  register: installer
  delegate_to: localhost
  run_once: true

- name: Show where the ISO is and its checksum
  ansible.builtin.debug:
    msg: "{{ installer.iso.path }} sha256 {{ installer.iso.sha256 }} ({{ installer.iso.size }} bytes)"

- name: Build a package offline, without asking a binary cache
  nerv.homelab.nix_build:
    flake: path:/srv/flakes/tools
    attribute: packages.x86_64-linux.default
    iso: false
    extra_args: [--option, substituters, ""]
"""

RETURN = r"""
flake:
  description: The flake reference given to Nix; a directory becomes C(path:<directory>).
  returned: always
  type: str
  sample: path:/srv/flake
attribute:
  description: The attribute built.
  returned: always
  type: str
  sample: packages.x86_64-linux.default
installable:
  description: What Nix was asked for, C(<flake>#<attribute>).
  returned: always
  type: str
  sample: path:/srv/flake#packages.x86_64-linux.default
outputs:
  description: Store path of each output built (in check mode, that would be built), by output name.
  returned: success
  type: dict
  sample: {out: /nix/store/hsv0y1pj0mx0pg4rfsbk1z2irdrppjf6-nerv-trivial}
out_path:
  description: The C(out) output's store path (or the first output's when there is no C(out)).
  returned: success
  type: str
  sample: /nix/store/hsv0y1pj0mx0pg4rfsbk1z2irdrppjf6-nerv-trivial
drv_path:
  description: The derivation built.
  returned: success
  type: str
  sample: /nix/store/2hqwc83r130qdxbmfkqd8dgld27cgx64-nerv-trivial.drv
previous_outputs:
  description: The outputs recorded by the last build; null when there is no record.
  returned: always
  type: dict
built:
  description: Whether Nix was asked to build (false in check mode).
  returned: success
  type: bool
evaluated:
  description: Whether Nix evaluated the attribute; false only in check mode when the flake's inputs cannot be
    fetched (then RV(outputs) is empty and RV(out_path) null, and a warning says why).
  returned: success
  type: bool
  sample: true
in_store:
  description: Whether every output is in the store (after a build always true; in check mode, whether it already is).
  returned: success
  type: bool
iso:
  description: The ISO image among the outputs; null when O(iso=false), or none was found, or in check mode before
    the output is in the store.
  returned: success
  type: dict
  contains:
    path:
      description: Path of the ISO file.
      type: str
      sample: /nix/store/0c3w...-nixos-24.05-x86_64-linux.iso/iso/nixos-24.05-x86_64-linux.iso
    size:
      description: Size in bytes.
      type: int
      sample: 1073741824
    sha256:
      description: sha256 of the file, hex.
      type: str
      sample: 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03
state_file:
  description: The record of the last build's outputs (not written in check mode).
  returned: always
  type: str
  sample: /root/.cache/nerv-homelab/nix_build/3e1f0c5a9b7d2e4f6a8c0b1d.json
log_file:
  description: The build log; null in check mode, where nothing is written.
  returned: success or when the build failed
  type: str
  sample: /root/.cache/nerv-homelab/nix_build/3e1f0c5a9b7d2e4f6a8c0b1d.log
log_tail:
  description: The last lines (up to 30) of the build log (of C(nix eval) in check mode).
  returned: when Nix failed
  type: list
  elements: str
  sample: ["nerv-broken> about to fail", "error: builder for '/nix/store/...-nerv-broken.drv' failed with exit code 1"]
rc:
  description: Exit code of the failed Nix command.
  returned: when Nix failed
  type: int
  sample: 1
out_link:
  description: The result symlink made; null when O(out_link) is not set or in check mode.
  returned: success
  type: str
cmd:
  description: The Nix command run, as an argument list.
  returned: success or when Nix failed
  type: list
  elements: str
elapsed:
  description: Seconds the build took.
  returned: when built
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.build import run


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "flake": {"type": "str", "required": True},
            "attribute": {"type": "str", "required": True},
            "out_link": {"type": "path"},
            "state_file": {"type": "path"},
            "log_file": {"type": "path"},
            "iso": {"type": "raw", "default": "auto"},
            "store": {"type": "str"},
            "extra_args": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int"},
        },
        supports_check_mode=True,
    )
    run_module(module, lambda: run(module))


if __name__ == "__main__":
    main()

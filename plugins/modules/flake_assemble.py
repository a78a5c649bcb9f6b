#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: flake_assemble
short_description: Assemble a site's flake directory from the collection's flake and the site's files, in one pass
version_added: 0.1.0
description:
  - Mirrors the files of O(src) into O(dest) (but for the top-level names in O(exclude), and hidden ones), then
    writes O(files) (the site's data, such as C(site.json) and C(hosts.json)) and copies O(copy) (the site's encrypted
    secrets, mode C(0600)).
  - Writes only what differs, each file atomically; a file under a mirrored directory that O(src) no longer has is
    removed. Other files in O(dest) (build links, state) are left alone.
  - One module run for the whole directory, where M(ansible.builtin.copy) of a directory runs a module per file.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.attributes
options:
  src:
    description: The flake to assemble from, normally the collection's C(nix/) directory.
    type: path
    required: true
  dest:
    description: The site's flake directory (absolute); made when missing, private (C(0700)) when made.
    type: path
    required: true
  exclude:
    description: Top-level names of O(src) not to mirror (the flake's example C(hosts.json), its C(secrets) notes).
    type: list
    elements: str
    default: []
  files:
    description: Relative path in O(dest) to the text it must hold (mode C(0644)), written after the mirror.
    type: dict
    default: {}
  copy:
    description: Files to copy into O(dest) (mode C(0600)), each a C(src) on the controller and its relative C(dest).
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: The file to copy.
        type: path
        required: true
      dest:
        description: Its path relative to O(dest).
        type: str
        required: true
attributes:
  check_mode:
    details: Reports what would be written and removed; writes nothing.
  diff_mode:
    support: none
    details: RV(written) and RV(removed) say what changed; the files are the collection's and the site's own.
seealso:
  - module: nerv.homelab.nix_build
"""

EXAMPLES = r"""
- name: Assemble the site's flake for its hosts
  nerv.homelab.flake_assemble:
    src: "{{ role_path }}/../../nix"
    dest: ~/.cache/nerv-homelab/flake/home
    exclude: [hosts.json, secrets]
    files:
      hosts.json: "{{ site_model | nerv.homelab.nix_hosts | to_nice_json }}\n"
    copy:
      - src: inventory/home/secrets/k3s.sops.yaml
        dest: secrets/k3s.sops.yaml
"""

RETURN = r"""
dest:
  description: The flake directory.
  returned: success
  type: str
  sample: /root/.cache/nerv-homelab/flake/home
written:
  description: Files written (would be, in check mode), relative to RV(dest).
  returned: success
  type: list
  elements: str
  sample: [hosts.json]
removed:
  description: Files removed from the mirrored directories (would be, in check mode), relative to RV(dest).
  returned: success
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.assemble import run


def main() -> None:
    copy = {"src": {"type": "path", "required": True}, "dest": {"type": "str", "required": True}}
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "files": {"type": "dict", "default": {}},
            "copy": {"type": "list", "elements": "dict", "options": copy, "default": []},
        },
        supports_check_mode=True,
    )
    run_module(module, lambda: run(module.params, module.check_mode))


if __name__ == "__main__":
    main()

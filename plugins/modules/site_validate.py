#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: site_validate
short_description: Validate a nerv.homelab site file and plan its phases
version_added: 0.1.0
description:
  - Reads a site file (the one source of truth for a homelab site, see C(docs/site.md)) or a site given inline,
    checks it against the site schema and across fields, and reports B(every) problem at once, each naming the
    field path (for example C(hosts[1].ip)) and how to fix it.
  - Checks include unknown keys (with a did-you-mean hint), missing required fields, duplicate host names, VM ids,
    addresses and MACs, addresses outside the network or equal to its network, broadcast or gateway address,
    MetalLB ranges outside the network or covering a host or the gateway, the control-plane count, host names
    that are not DNS labels, per-kind fields (MAC and C(/dev/disk/by-id) disk for bare metal, vmid and node for
    VMs), VM id bounds, SSH public keys, age recipients, https-only Proxmox URLs, secrets written inline, and the
    apps (unique names, none in a platform namespace, ingress hosts not taken twice).
  - With O(path), the files the site names that must exist are checked too (an app's C(values_sops), relative to
    the site file).
  - Never changes anything and never prints a secret value found in the file.
  - On success returns the site with defaults filled in and the plan of phases C(site.yml) runs for it.
  - Run it where the site file is, normally the controller (a play on C(localhost), or C(delegate_to=localhost)).
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.attributes.read_only
options:
  path:
    description:
      - Path of the site file (YAML), normally C(inventory/<site>/site.yml).
      - Exactly one of O(path) and O(site) is required.
    type: path
  site:
    description:
      - The site as a mapping, for sites built by a playbook rather than read from a file.
      - Exactly one of O(path) and O(site) is required.
    type: dict
notes:
  - An even number of control-plane hosts is a warning, not an error.
seealso:
  - name: Site file reference
    description: Every field of a site file, its default and its rules.
    link: https://github.com/nerv-homelab/nerv.homelab/blob/main/docs/site.md
"""

EXAMPLES = r"""
- name: Validate the site file of this inventory
  nerv.homelab.site_validate:
    path: "{{ inventory_dir }}/site.yml"
  register: site_check
  delegate_to: localhost
  run_once: true

- name: Show the phases the site will go through
  ansible.builtin.debug:
    msg: "{{ site_check.plan | map(attribute='phase') | list }}"
"""

RETURN = r"""
site:
  description: The validated site with every default filled in; each host also gets C(address), its IP without prefix.
  returned: success
  type: dict
  sample:
    site: {name: home}
    network: {cidr: 192.168.10.0/24, gateway: 192.168.10.1, dns: [192.168.10.1], domain: home.lab.example}
    hosts:
      - {name: cp1, role: control-plane, kind: vm, vmid: 201, node: pve1, ip: 192.168.10.21/24,
         address: 192.168.10.21, cores: 4, memory: 8192, disk: 40}
plan:
  description: The phases C(playbooks/site.yml) runs for this site, in order.
  returned: success
  type: list
  elements: dict
  contains:
    phase:
      description: Phase name.
      type: str
      sample: provision
    summary:
      description: What the phase does.
      type: str
    targets:
      description: Hosts (or the template or cluster) the phase acts on.
      type: list
      elements: str
    implemented:
      description: Whether this version of the collection carries the phase out.
      type: bool
    tracked_in:
      description: Where the work on a phase not yet implemented is tracked; null when implemented.
      type: str
problems:
  description: Every error found, each with the field path, the problem and the fix. Empty on success.
  returned: always
  type: list
  elements: dict
  sample:
    - path: hosts[1].ip
      message: 192.168.20.5/24 is outside network.cidr 192.168.10.0/24
      fix: pick a free host address inside network.cidr 192.168.10.0/24
      level: error
site_warnings:
  description: Problems that do not stop the site, such as an even number of control-plane hosts.
  returned: always
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import (
    parse_site,
    read_site_file,
    secret_values,
    site_plan,
)


def run(params: dict) -> dict:
    """The module's result for its parameters; raises SiteError listing every problem."""
    data = read_site_file(params["path"]) if params["path"] else params["site"]
    base_dir = os.path.dirname(os.path.abspath(params["path"])) if params["path"] else None
    site = parse_site(data, base_dir)
    warnings = site.pop("_warnings")
    return {"changed": False, "site": site, "plan": site_plan(site), "problems": [], "site_warnings": warnings}


def main() -> None:
    module = AnsibleModule(
        argument_spec={"path": {"type": "path"}, "site": {"type": "dict"}},
        mutually_exclusive=[("path", "site")],
        required_one_of=[("path", "site")],
        supports_check_mode=True,
    )
    # A site given inline may carry a secret the validator refuses: keep it out of every output, invocation included.
    module.no_log_values.update(secret_values(module.params["site"]))

    def work() -> dict:
        result = run(module.params)
        for warning in result["site_warnings"]:  # each also shown as an Ansible warning
            module.warn("{path}: {message}. Fix: {fix}".format(**warning))
        return result

    run_module(module, work)


if __name__ == "__main__":
    main()

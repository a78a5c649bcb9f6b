#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_load_balancers
short_description: List the LoadBalancer services and the addresses MetalLB gave them
version_added: 0.1.0
description:
  - Lists every Service of type C(LoadBalancer) through the C(kubernetes) client with the addresses in its
    C(status.loadBalancer.ingress), and whether they lie in the site's MetalLB pool (O(pool)).
  - A service still waiting for an address is listed with none.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.kubeconfig
  - nerv.homelab.attributes.read_only
options:
  pool:
    description: The site's C(metallb.addresses) (CIDRs or C(first-last) ranges).
    type: list
    elements: str
    default: []
seealso:
  - module: nerv.homelab.flux_status
"""

EXAMPLES = r"""
- name: The addresses MetalLB handed out
  nerv.homelab.k8s_load_balancers:
    kubeconfig: inventory/home/.state/kubeconfig
    pool: "{{ site_model.metallb.addresses }}"
  register: lbs
"""

RETURN = r"""
services:
  description: The LoadBalancer services, by namespace and name.
  returned: always
  type: list
  elements: dict
  sample:
    - {namespace: traefik, name: traefik, addresses: [192.168.1.200], in_pool: true}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import kube
from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module


def argument_spec() -> dict:
    return {**kube.KUBECONFIG_OPTIONS, "pool": {"type": "list", "elements": "str", "default": []}}


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: kube.run_load_balancers(module))


if __name__ == "__main__":
    main()

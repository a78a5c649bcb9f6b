#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_nodes_ready
short_description: Wait until every named host is a Ready node of the cluster
version_added: 0.1.0
description:
  - Polls the cluster's nodes through the C(kubernetes) client until every node in O(names) exists and has its
    Ready condition C(True).
  - At the deadline it fails with a per-node report - absent (never joined), or its Ready status, reason and
    message - and the nodes as last seen.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.wait
  - nerv.homelab.wait.progress
  - nerv.homelab.kubeconfig
  - nerv.homelab.attributes.read_only
options:
  names:
    description: The node names that must be Ready (the site's host names).
    type: list
    elements: str
    required: true
seealso:
  - module: nerv.homelab.flux_status
"""

EXAMPLES = r"""
- name: Every host of the site is a Ready node
  nerv.homelab.k8s_nodes_ready:
    kubeconfig: inventory/home/.state/kubeconfig
    names: "{{ site_model.hosts | map(attribute='name') | list }}"
    timeout: 900

# A progress line at least every 30 s while it waits (with the stdout callback nerv.homelab.progress).
- name: Every host of the site is a Ready node, saying how far the wait got
  nerv.homelab.k8s_nodes_ready:
    kubeconfig: inventory/home/.state/kubeconfig
    names: "{{ site_model.hosts | map(attribute='name') | list }}"
    timeout: 900
    return_after: 25
    started: "{{ now().timestamp() }}"
  register: nodes
  until: nodes is failed or nodes.ready
  retries: 40
  delay: 0
"""

RETURN = r"""
nodes:
  description: Every node of the cluster, with its Ready status, reason and message.
  returned: always
  type: dict
  sample:
    cp1: {ready: "True", reason: KubeletReady, message: kubelet is posting ready status}
ready:
  description: Whether every node in O(names) is Ready (false only when O(return_after) handed back early).
  returned: success
  type: bool
not_ready:
  description: The names in O(names) that are not Ready nodes (yet).
  returned: always
  type: list
  elements: str
progress:
  description: How far the wait got, in one sentence (how many nodes are Ready, which are not, and why).
  returned: always
  type: str
  sample: "2 of 3 nodes Ready; waiting for worker2 (NotReady: KubeletNotReady)"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import kube
from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module


def argument_spec() -> dict:
    return {
        **kube.KUBECONFIG_OPTIONS,
        "names": {"type": "list", "elements": "str", "required": True},
        **kube.WAIT_OPTIONS,
        **kube.PROGRESS_OPTIONS,
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: kube.run_nodes_ready(module))


if __name__ == "__main__":
    main()

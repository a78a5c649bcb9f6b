#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_node
short_description: Cordon, drain or uncordon a node of the cluster
version_added: 0.1.0
description:
  - O(state=cordoned) marks the node unschedulable; O(state=drained) also evicts its pods through the Eviction API
    (which honours disruption budgets), retrying those a budget holds back until O(timeout), and waits until they
    are gone; O(state=uncordoned) makes it schedulable again.
  - A drain leaves DaemonSet pods, mirror pods of static manifests and finished pods, as C(kubectl drain
    --ignore-daemonsets) does. At the deadline it fails naming the pods still there; the node stays cordoned.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.kubeconfig
  - nerv.homelab.attributes
options:
  name:
    description: The node.
    type: str
    required: true
  state:
    description: What the node should be.
    type: str
    choices: [cordoned, drained, uncordoned]
    required: true
  timeout:
    description: Seconds a drain may take.
    type: int
    default: 300
  interval:
    description: Seconds between a drain's polls.
    type: float
    default: 2
attributes:
  check_mode:
    details: Reports whether the node would be cordoned or uncordoned and the pods a drain would evict.
  diff_mode:
    details: The node's schedulability before and after.
seealso:
  - module: nerv.homelab.k8s_nodes_ready
"""

EXAMPLES = r"""
- name: Drain mini1 before its upgrade
  nerv.homelab.k8s_node:
    kubeconfig: inventory/home/.state/kubeconfig
    name: mini1
    state: drained
    timeout: 600

- name: Put it back in service
  nerv.homelab.k8s_node:
    kubeconfig: inventory/home/.state/kubeconfig
    name: mini1
    state: uncordoned
"""

RETURN = r"""
unschedulable:
  description: Whether the node is cordoned after the task.
  returned: always
  type: bool
evicted:
  description: The pods (C(namespace/name)) evicted, or that would be in check mode.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import kube
from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module


def argument_spec() -> dict:
    return {
        **kube.KUBECONFIG_OPTIONS,
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "choices": ["cordoned", "drained", "uncordoned"], "required": True},
        "timeout": {"type": "int", "default": 300},
        "interval": {"type": "float", "default": 2},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: kube.run_node(module))


if __name__ == "__main__":
    main()

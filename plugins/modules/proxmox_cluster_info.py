#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxmox_cluster_info
short_description: Reach a Proxmox VE cluster and report its version, quorum and nodes
version_added: 0.1.0
description:
  - Asks the Proxmox VE API for its version (C(GET /version)) and the cluster's state (C(GET /cluster/status)),
    two requests, and returns the version, whether the cluster is quorate, and every node with its online state.
  - A quick check that the connection settings work (URL, token, TLS) before anything is changed.
  - Read-only.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.proxmox_auth
  - nerv.homelab.attributes.read_only
seealso:
  - plugin: nerv.homelab.proxmox
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Check that Proxmox answers, with the token from the environment
  nerv.homelab.proxmox_cluster_info:
    url: https://pve1.lab.example:8006
    token_id: automation@pve!nerv
    ca_path: /etc/ssl/certs/pve-root-ca.pem
  register: pve
  delegate_to: localhost

- name: Refuse to go on without quorum
  ansible.builtin.assert:
    that: pve.cluster.quorate
    fail_msg: "Proxmox cluster {{ pve.cluster.name }} has no quorum"
"""

RETURN = r"""
version:
  description: The API's version, release and repository id.
  returned: success
  type: dict
  sample: {version: 9.0.10, release: '9.0', repoid: 0f38f9f8}
cluster:
  description: The cluster's name (null for a standalone node), quorum, and how many nodes there are and are online.
  returned: success
  type: dict
  sample: {name: home, standalone: false, quorate: true, nodes: 3, online: 3}
nodes:
  description: Every node by name, whether it is online, its cluster address, and whether it answered this request.
  returned: success
  type: list
  elements: dict
  sample:
    - {name: pve1, online: true, ip: 192.168.10.2, local: true}
requests:
  description: HTTP requests made.
  returned: success
  type: int
  sample: 2
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import ProxmoxClient
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.cluster import summarise
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import (
    proxmox_argument_spec,
    settings_from_params,
)


def main() -> None:
    module = AnsibleModule(argument_spec=proxmox_argument_spec(), supports_check_mode=True)

    def work():
        client = ProxmoxClient(settings_from_params(module.params))
        found = summarise(client.get("/version"), client.get("/cluster/status"))
        return {"changed": False, "requests": client.requests, **found}

    run_module(module, work)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k3s_kubeconfig
short_description: Fetch a K3s server's kubeconfig over pinned SSH, pointed at the server's address
version_added: 0.1.0
description:
  - Reads C(/etc/rancher/k3s/k3s.yaml) from the first control-plane host over SSH with the site's pinned
    known_hosts and strict host key checking, replaces its C(server) (C(https://127.0.0.1:6443)) with the host's
    address, optionally renames the cluster, user and context from C(default), and writes it to O(dest) with mode
    0600, atomically, only when it changed.
  - The file holds the cluster's admin credentials - it is never returned, logged or shown in a diff (the diff
    shows the server and the context only).
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.ssh_target
  - nerv.homelab.attributes
options:
  host:
    description: The host's name (for messages).
  address:
    description: The host's address; the kubeconfig's server becomes C(https://<address>:6443).
  dest:
    description: Where the kubeconfig is written (mode 0600), e.g. the site's state directory.
    type: path
    required: true
  remote_path:
    description: The kubeconfig on the server.
    type: str
    default: /etc/rancher/k3s/k3s.yaml
  name:
    description: Name for the cluster, user and context instead of C(default) (the site's name, say).
    type: str
attributes:
  check_mode:
    details:
      - Fetches and compares; writes nothing.
      - A server that does not answer at all (not up yet) is planned as a fetch, with a warning.
  diff_mode:
    details: The server and context before and after, never the credentials.
seealso:
  - module: nerv.homelab.k8s_nodes_ready
"""

EXAMPLES = r"""
- name: The cluster's kubeconfig, from its first server
  nerv.homelab.k3s_kubeconfig:
    host: cp1
    address: 192.168.10.21
    known_hosts: inventory/home/known_hosts
    dest: inventory/home/.state/kubeconfig
    name: home
"""

RETURN = r"""
dest:
  description: The kubeconfig written.
  returned: always
  type: str
server:
  description: The API server URL in it.
  returned: always
  type: str
context:
  description: Its current context.
  returned: always
  type: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import k3s
from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.common.ssh import TARGET_OPTIONS


def argument_spec() -> dict:
    return {
        **TARGET_OPTIONS,
        "dest": {"type": "path", "required": True},
        "remote_path": {"type": "str", "default": "/etc/rancher/k3s/k3s.yaml"},
        "name": {"type": "str"},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: k3s.execute(module))


if __name__ == "__main__":
    main()

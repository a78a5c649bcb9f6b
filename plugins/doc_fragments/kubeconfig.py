# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """How the modules that talk to a cluster find it (api_client in plugins/module_utils/cluster/kube.py)."""

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description: The kubeconfig file of the cluster.
    type: path
    required: true
  context:
    description: The kubeconfig context; its current context by default.
    type: str
requirements:
  - kubernetes (Python)
"""

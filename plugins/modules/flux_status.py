#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: flux_status
short_description: Read the state of Flux objects, and wait until every one is Ready
version_added: 0.1.0
description:
  - Lists GitRepository, OCIRepository, HelmRepository, Kustomization and HelmRelease objects through the
    C(kubernetes) client and reports, for each, its Ready condition, reason, message and revision.
  - An object is Ready when its Ready condition is C(True) B(and) its C(status.observedGeneration) equals
    C(metadata.generation) - a Ready left over from before the last change does not count.
  - With O(wait=true) it polls until every object is Ready (suspended objects are reported but not waited for),
    or fails at the deadline with a table of the objects that are not Ready, their reason and message, and the
    partial result.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.wait
  - nerv.homelab.wait.progress
  - nerv.homelab.kubeconfig
  - nerv.homelab.attributes.read_only
options:
  namespace:
    description: Only objects in this namespace; all namespaces by default.
    type: str
  kinds:
    description: The Flux kinds to read.
    type: list
    elements: str
    choices: [GitRepository, OCIRepository, HelmRepository, Kustomization, HelmRelease]
    default: [GitRepository, OCIRepository, HelmRepository, Kustomization, HelmRelease]
  wait:
    description: Wait until every object is Ready, for at most O(timeout) seconds.
    type: bool
    default: false
seealso:
  - module: nerv.homelab.k8s_nodes_ready
"""

EXAMPLES = r"""
- name: Wait until the platform is reconciled
  nerv.homelab.flux_status:
    kubeconfig: inventory/home/.state/kubeconfig
    wait: true
    timeout: 1200

# A progress line at least every 30 s while it waits (with the stdout callback nerv.homelab.progress).
- name: Wait until the platform is reconciled, saying how far it got
  nerv.homelab.flux_status:
    kubeconfig: inventory/home/.state/kubeconfig
    wait: true
    timeout: 1200
    return_after: 25
    started: "{{ now().timestamp() }}"
  register: flux
  until: flux is failed or flux.ready
  retries: 50
  delay: 0
"""

RETURN = r"""
objects:
  description: Every object read.
  returned: always
  type: list
  elements: dict
  sample:
    - kind: HelmRelease
      namespace: metallb-system
      name: metallb
      ready: "True"
      reason: InstallSucceeded
      message: Helm install succeeded
      generation: 1
      observed_generation: 1
      revision: 0.14.9
      suspended: false
not_ready:
  description: The objects that are not Ready (empty when all are).
  returned: always
  type: list
  elements: dict
ready:
  description: Whether every (not suspended) object is Ready.
  returned: always
  type: bool
progress:
  description: How far the objects got, in one sentence (how many are Ready, which are not, and why).
  returned: always
  type: str
  sample: "12 of 15 Flux objects Ready; waiting for Kustomization/infrastructure-config (DependencyNotReady)"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import kube
from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module


def argument_spec() -> dict:
    kinds = list(kube.FLUX_KINDS)
    return {
        **kube.KUBECONFIG_OPTIONS,
        "namespace": {"type": "str"},
        "kinds": {"type": "list", "elements": "str", "choices": kinds, "default": kinds},
        "wait": {"type": "bool", "default": False},
        **kube.WAIT_OPTIONS,
        **kube.PROGRESS_OPTIONS,
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: kube.run_flux_status(module))


if __name__ == "__main__":
    main()

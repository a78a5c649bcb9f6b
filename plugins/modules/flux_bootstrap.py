#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: flux_bootstrap
short_description: Bootstrap Flux on a cluster from a Git repository, only when it is not already syncing it
version_added: 0.1.0
description:
  - When GitRepository and Kustomization C(flux-system) exist, point at the same repository, branch and path, and
    are Ready for their current generation, nothing changes (the CLI is not run).
  - Otherwise first installs the cluster's age identity as the Secret C(sops-age) (key C(age.agekey)) in
    C(flux-system), so the first reconcile can decrypt, then runs C(flux bootstrap github) (or C(git)) and waits
    until C(flux-system) is Ready.
  - The Git token is read from the environment variable named by O(token_env) and handed to the CLI through its
    environment (C(GITHUB_TOKEN), or C(GIT_PASSWORD) for O(provider=git)); it is never in argv, output or errors.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.kubeconfig
  - nerv.homelab.wait
  - nerv.homelab.attributes
options:
  provider:
    description: C(github) (C(flux bootstrap github), with a deploy key) or C(git) (any Git server by URL).
    type: str
    choices: [github, git]
    default: github
  owner:
    description: GitHub user or organisation (O(provider=github)).
    type: str
  repository:
    description: Repository name (O(provider=github)).
    type: str
  url:
    description: The repository URL (O(provider=git)), e.g. C(ssh://git@git.lan/home/gitops.git).
    type: str
  personal:
    description: The GitHub repository belongs to a user, not an organisation.
    type: bool
    default: false
  branch:
    description: The branch Flux follows.
    type: str
    default: main
  path:
    description: The directory of the cluster in the repository, e.g. C(clusters/home).
    type: str
    required: true
  token_env:
    description: Environment variable holding the Git token (read by the module, passed on through the environment).
    type: str
    default: GITHUB_TOKEN
  age_key_file:
    description: The cluster's age identity file (C(AGE-SECRET-KEY-1...)), installed as Secret C(flux-system/sops-age).
    type: path
  age_key:
    description:
      - The cluster's age identity itself, instead of O(age_key_file), e.g. read with the lookup nerv.homelab.sops
        from the file the role nerv.homelab.sops_keys made. Never logged.
    type: str
  log_file:
    description:
      - Where the CLI's output goes (0600); defaults to C(flux_bootstrap.log) in C($XDG_CACHE_HOME/nerv-homelab),
        or C(~/.cache/nerv-homelab) when XDG_CACHE_HOME is not set.
    type: path
  version:
    description:
      - The Flux release to install, as C(flux bootstrap --version) takes it, e.g. C(v2.6.1).
      - When set, a flux-system whose namespace is labelled C(app.kubernetes.io/version) with another release (as
        C(flux bootstrap) labels it) is bootstrapped again with this one, which is how Flux is upgraded.
      - Omitted, the CLI installs its own release and the installed one is not compared.
    type: str
  flux:
    description: The flux command.
    type: str
    default: flux
  extra_args:
    description: More C(flux bootstrap) arguments.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    details: Reads the cluster and reports whether a bootstrap (and the Secret) would be made, with the argv.
  diff_mode:
    support: none
    details: The result lists the reasons a bootstrap is needed.
requirements:
  - the flux CLI
seealso:
  - module: nerv.homelab.flux_status
"""

EXAMPLES = r"""
- name: Bootstrap Flux from the site's Git source
  nerv.homelab.flux_bootstrap:
    kubeconfig: inventory/home/.state/kubeconfig
    owner: example-homelab
    repository: home-gitops
    path: clusters/home
    personal: true
    age_key_file: inventory/home/.state/flux-age.key

- name: Bootstrap with the cluster's age key straight from its sops file
  nerv.homelab.flux_bootstrap:
    kubeconfig: inventory/home/.state/kubeconfig
    owner: example-homelab
    repository: home-gitops
    path: clusters/home
    age_key: "{{ lookup('nerv.homelab.sops', 'inventory/home/secrets/cluster/flux.agekey.sops.yaml', key='identity') }}"
"""

RETURN = r"""
reasons:
  description: Why a bootstrap was (or would be) run; empty when nothing was needed.
  returned: always
  type: list
  elements: str
argv:
  description: The flux command line (no token in it).
  returned: always
  type: list
  elements: str
secret_changed:
  description: Whether Secret flux-system/sops-age was created or replaced.
  returned: always
  type: bool
log_file:
  description: The CLI's output.
  returned: when the CLI ran
  type: str
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import flux, kube
from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module


def argument_spec() -> dict:
    return {
        **kube.KUBECONFIG_OPTIONS,
        "provider": {"type": "str", "choices": ["github", "git"], "default": "github"},
        "owner": {"type": "str"},
        "repository": {"type": "str"},
        "url": {"type": "str"},
        "personal": {"type": "bool", "default": False},
        "branch": {"type": "str", "default": "main"},
        "path": {"type": "str", "required": True},
        "token_env": {"type": "str", "default": "GITHUB_TOKEN", "no_log": False},
        "age_key_file": {"type": "path"},
        "age_key": {"type": "str", "no_log": True},
        **kube.WAIT_OPTIONS,
        "log_file": {"type": "path"},
        "version": {"type": "str"},
        "flux": {"type": "str", "default": "flux"},
        "extra_args": {"type": "list", "elements": "str", "default": []},
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[("provider", "git", ["url"])],
        mutually_exclusive=[("age_key", "age_key_file")],
    )
    run_module(module, lambda: flux.execute(module))


if __name__ == "__main__":
    main()

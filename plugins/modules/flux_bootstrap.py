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
  timeout:
    description: Seconds to wait for C(flux-system) to become Ready after the bootstrap.
    type: int
    default: 600
  interval:
    description: Seconds between readiness polls.
    type: float
    default: 5
  log_file:
    description: Where the CLI's output goes (0600); defaults to C(~/.cache/nerv-homelab/flux_bootstrap.log).
    type: path
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
    support: full
    description: Reads the cluster and reports whether a bootstrap (and the Secret) would be made, with the argv.
  diff_mode:
    support: none
    description: The result lists the reasons a bootstrap is needed.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller, where the flux CLI and the kubeconfig are.
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

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import flux, kube
from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.common.remote import log_path, run_logged


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
        "timeout": {"type": "int", "default": 600},
        "interval": {"type": "float", "default": 5},
        "log_file": {"type": "path"},
        "flux": {"type": "str", "default": "flux"},
        "extra_args": {"type": "list", "elements": "str", "default": []},
    }


def _age_key(path, value):
    if value is not None:
        if not value.strip().startswith("AGE-SECRET-KEY-1"):
            raise kube.KubeError("age_key holds no age identity: give the identity as age-keygen writes it")
        return value.strip().encode() + b"\n"
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise kube.KubeError(f"cannot read age_key_file {path}: {exc.strerror}") from None
    if b"AGE-SECRET-KEY-1" not in data:
        raise kube.KubeError(f"age_key_file {path} holds no age identity (AGE-SECRET-KEY-1...)")
    return data


def execute(module) -> dict:
    p = module.params
    if p["provider"] == "github" and not (p["owner"] and p["repository"]):
        raise kube.KubeError("provider github needs owner and repository")
    url = flux.source_url(p["provider"], p["owner"], p["repository"], p["url"])
    age_key = _age_key(p["age_key_file"], p["age_key"])
    api = kube.api_client(p["kubeconfig"], p["context"])
    reasons = flux.differences(flux.current(api), url, p["branch"], p["path"])
    argv = flux.bootstrap_argv(p)
    secret_changed = flux.ensure_sops_secret(api, age_key, module.check_mode) if age_key else False
    result = {"changed": bool(reasons) or secret_changed, "reasons": reasons, "argv": argv}
    result["secret_changed"] = secret_changed
    if not reasons or module.check_mode:
        return result
    token = os.environ.get(p["token_env"])
    if p["provider"] == "github" and not token:
        raise kube.KubeError(f"the Git token is not in the environment variable {p['token_env']}: export it first")
    log_file = log_path(p["log_file"], "flux_bootstrap.log")
    run = run_logged(argv, log_file, p["timeout"] + 600, env=flux.bootstrap_env(p["provider"], token))
    if run.rc != 0:
        tail = [line.replace(token, "********") if token else line for line in run.tail]
        raise kube.KubeError(f"flux bootstrap failed (exit {run.rc}); see {log_file}", tail=tail, log_file=log_file)
    still = flux.wait_synced(api, url, p["branch"], p["path"], p["timeout"], p["interval"])
    if still:
        raise kube.KubeError(f"flux bootstrap ran, but after {p['timeout']} s: " + "; ".join(still), log_file=log_file)
    return {**result, "log_file": log_file}


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[("provider", "git", ["url"])],
        mutually_exclusive=[("age_key", "age_key_file")],
    )
    run_module(module, lambda: execute(module), (kube.KubeError,))


if __name__ == "__main__":
    main()

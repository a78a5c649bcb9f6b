# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flux bootstrap, idempotently: nothing runs when flux-system already points at the same source and is Ready.

The Git token reaches the flux CLI through its environment (GITHUB_TOKEN / GIT_PASSWORD), never argv; the
cluster's age key becomes the Secret sops-age in flux-system (key age.agekey) before the first reconcile.
"""

from __future__ import annotations

import base64
import os
import re

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import kube
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.kube import (
    FLUX_KINDS,
    KubeError,
    call,
    k8s_client,
    read_custom,
    state_of,
)
from ansible_collections.nerv.homelab.plugins.module_utils.common.cache import log_path
from ansible_collections.nerv.homelab.plugins.module_utils.common.process import run_logged
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline
from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import FLUX_RELEASE

NAMESPACE = "flux-system"
SOPS_SECRET = "sops-age"
SOPS_KEY = "age.agekey"  # Flux's sops decryption takes keys ending in .agekey
# flux install / bootstrap labels every object it applies, the namespace too, with the release it installed
VERSION_LABEL = "app.kubernetes.io/version"


def source_url(provider: str, owner: str, repository: str, url: str | None) -> str:
    """The URL flux bootstrap writes into GitRepository flux-system (SSH with a deploy key for GitHub)."""
    if provider == "github":
        return f"ssh://git@github.com/{owner}/{repository}"
    if not url:
        raise KubeError("provider git needs url, the repository's URL (ssh://, https:// or file://)")
    return url


def current(api, with_version: bool = False) -> dict:
    """GitRepository and Kustomization flux-system as they are (None when absent), and with_version the release
    flux-system is labelled with."""
    custom = k8s_client.CustomObjectsApi(api)
    found = {}
    for kind in ("GitRepository", "Kustomization"):
        group, version, plural = FLUX_KINDS[kind]
        read = custom.get_namespaced_custom_object
        found[kind] = read_custom(f"read {kind} flux-system", read, group, version, NAMESPACE, plural, NAMESPACE)
    # the release installed matters only when one is wanted: no extra read on every poll otherwise
    found["version"] = installed_version(api) if with_version else None
    return found


def installed_version(api) -> str | None:
    """The Flux release flux-system's namespace is labelled with (None: no namespace, or no label)."""
    namespace = _read_namespace(k8s_client.CoreV1Api(api))
    if namespace is None:
        return None
    return ((namespace.metadata and namespace.metadata.labels) or {}).get(VERSION_LABEL)


def differences(found: dict, url: str, branch: str, path: str, version: str | None = None) -> list:
    """Why a bootstrap is needed (empty: flux-system already syncs this source, at this release, and is Ready)."""
    repo, kustomization = found.get("GitRepository"), found.get("Kustomization")
    if repo is None or kustomization is None:
        return ["flux-system is not installed"]
    reasons = []
    spec = repo.get("spec") or {}
    if spec.get("url") != url:
        reasons.append(f"GitRepository flux-system points at {spec.get('url')}, not {url}")
    followed = (spec.get("ref") or {}).get("branch")
    if followed != branch:
        reasons.append(f"GitRepository flux-system follows branch {followed}, not {branch}")
    applied, wanted_path = (kustomization.get("spec") or {}).get("path"), "./" + path.strip("/")
    if applied != wanted_path:
        reasons.append(f"Kustomization flux-system applies {applied}, not {wanted_path}")
    if version and found.get("version") != version:
        # bootstrapping again with --version is how Flux upgrades (or downgrades) its controllers
        reasons.append(f"Flux {found.get('version') or 'of an unknown release'} is installed, not {version}")
    for kind, obj in (("GitRepository", repo), ("Kustomization", kustomization)):
        state = state_of(kind, obj)
        if not state.is_ready:
            reasons.append(f"{kind} flux-system is not Ready ({state.ready} {state.reason}: {state.message})")
    return reasons


def wait_synced(api, wanted: tuple, timeout: float, interval: float) -> list:
    """Poll until flux-system syncs this source (wanted: url, branch, path, version) and is Ready; the remaining
    reasons at the deadline (else [])."""
    deadline = Deadline(timeout)
    while True:
        reasons = differences(current(api, bool(wanted[3])), *wanted)
        if not reasons or not deadline.pause(interval):
            return reasons


def ensure_sops_secret(api, age_key: bytes, check_mode: bool) -> bool:
    """Secret flux-system/sops-age holding the cluster's age identity; True when created or replaced."""
    core = k8s_client.CoreV1Api(api)
    encoded = base64.b64encode(age_key).decode()
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": SOPS_SECRET, "namespace": NAMESPACE}, "data": {SOPS_KEY: encoded}}  # fmt: skip
    read = core.read_namespaced_secret
    existing = call(f"read Secret {NAMESPACE}/{SOPS_SECRET}", read, SOPS_SECRET, NAMESPACE, absent=None)
    if existing is not None and (existing.data or {}).get(SOPS_KEY) == encoded:
        return False
    if check_mode:
        return True
    if _read_namespace(core) is None:
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    try:
        if existing is None:
            core.create_namespaced_secret(NAMESPACE, body)
        else:
            core.replace_namespaced_secret(SOPS_SECRET, NAMESPACE, body)
    except Exception as exc:
        # the message must not carry the body: it holds the key
        raise KubeError(
            f"cannot write Secret {NAMESPACE}/{SOPS_SECRET}: {getattr(exc, 'status', '')} {getattr(exc, 'reason', '')}"
        ) from None
    return True


def _read_namespace(core):
    return call(f"read namespace {NAMESPACE}", core.read_namespace, NAMESPACE, absent=None)


def bootstrap_argv(options: dict) -> list:
    """flux bootstrap's command line: no token in it (the token goes through the environment)."""
    argv = [options["flux"], "bootstrap", options["provider"]]
    if options["provider"] == "github":
        argv += [f"--owner={options['owner']}", f"--repository={options['repository']}"]
        if options.get("personal"):
            argv.append("--personal")
    else:
        argv += [f"--url={options['url']}", "--silent"]
    argv += [f"--branch={options['branch']}", f"--path={options['path'].strip('/')}"]
    argv += [f"--kubeconfig={options['kubeconfig']}"]
    if options.get("version"):
        argv.append(f"--version={options['version']}")
    if options.get("context"):
        argv.append(f"--context={options['context']}")
    return argv + list(options.get("extra_args") or [])


def check_version(version: str | None) -> str | None:
    """One Flux release as flux bootstrap --version takes it and the namespace label shows it: v2.6.1."""
    if version and not re.fullmatch(FLUX_RELEASE, version):
        raise KubeError(f"version {version!r} is not one Flux release: write it as v2.6.1 (a v and three numbers)")
    return version or None


def bootstrap_env(provider: str, token: str | None) -> dict:
    env = dict(os.environ)
    if token:
        # flux reads GITHUB_TOKEN for github, and GIT_PASSWORD for HTTPS basic auth with git
        env["GITHUB_TOKEN" if provider == "github" else "GIT_PASSWORD"] = token
    return env


def _age_key(path, value):
    if value is not None:
        if not value.strip().startswith("AGE-SECRET-KEY-1"):
            raise KubeError("age_key holds no age identity: give the identity as age-keygen writes it")
        return value.strip().encode() + b"\n"
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise KubeError(f"cannot read age_key_file {path}: {exc.strerror}") from None
    if b"AGE-SECRET-KEY-1" not in data:
        raise KubeError(f"age_key_file {path} holds no age identity (AGE-SECRET-KEY-1...)")
    return data


def execute(module) -> dict:
    """nerv.homelab.flux_bootstrap: the Secret sops-age, then flux bootstrap only when flux-system differs; Ready."""
    p = module.params
    if p["provider"] == "github" and not (p["owner"] and p["repository"]):
        raise KubeError("provider github needs owner and repository")
    url = source_url(p["provider"], p["owner"], p["repository"], p["url"])
    age_key = _age_key(p["age_key_file"], p["age_key"])
    api = kube.api_client(p["kubeconfig"], p["context"])
    wanted = (url, p["branch"], p["path"], check_version(p.get("version")))
    reasons = differences(current(api, bool(wanted[3])), *wanted)
    argv = bootstrap_argv(p)
    secret_changed = ensure_sops_secret(api, age_key, module.check_mode) if age_key else False
    result = {"changed": bool(reasons) or secret_changed, "reasons": reasons, "argv": argv}
    result["secret_changed"] = secret_changed
    if not reasons or module.check_mode:
        return result
    token = os.environ.get(p["token_env"])
    if p["provider"] == "github" and not token:
        raise KubeError(f"the Git token is not in the environment variable {p['token_env']}: export it first")
    log_file = log_path(p["log_file"], "flux_bootstrap.log")
    # the token is masked in the log and the tail by run_logged, as any secret of the environment it is given
    run = run_logged(argv, log_file, p["timeout"] + 600, env=bootstrap_env(p["provider"], token), secrets=[token])
    if run.rc != 0:
        raise KubeError(f"flux bootstrap failed (exit {run.rc}); see {log_file}", tail=run.tail, log_file=log_file)
    still = wait_synced(api, wanted, p["timeout"], p["interval"])
    if still:
        raise KubeError(f"flux bootstrap ran, but after {p['timeout']} s: " + "; ".join(still), log_file=log_file)
    return {**result, "log_file": log_file}

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The I/O side of nerv.homelab.gitops_render: read the site, render with gitops.py, write what differs into the
checkout (and keep the repository's .sops.yaml rule of the site current). With monitoring, Grafana's admin Secret
is made here once, sops-encrypted, and kept as it is on every later run."""

from __future__ import annotations

import os
import secrets

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import gitops
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops import (
    RenderError,
    dashboards,
    dump,
    parse_sops_config,
    render,
    sops_rules,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError, check_recipient
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.document import Rules, new_document
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.files import (
    open_document,
    read_text,
    write_private,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site

HEADER = "# Rendered by nerv.homelab.gitops_render from the site file: edit the site, not this file.\n"
SOPS_HEADER = "# sops creation rules; nerv.homelab.gitops_render keeps the rule of each site's platform current.\n"
# What the diff shows of a secret file instead of its content
SECRET_SHOWN = "(sops-encrypted Secret {}: not shown)\n"
PASSWORD_BYTES = 24


def execute(module) -> dict:
    """nerv.homelab.gitops_render: the site's tree, its .sops.yaml rule and its sops files (each made once), written
    only where they differ."""
    p = module.params
    site = load_site(p["site_file"])
    if not os.path.isdir(p["dest"]):
        raise RenderError(f"dest {p['dest']} is not a directory: give the checkout of the GitOps repository")
    files = render(site, p["site_path"] or site["flux"]["path"], p["stage_root"])
    texts = {relative: HEADER + dump(docs) for relative, docs in files.items()}
    if p["sops_recipients"]:
        texts[".sops.yaml"] = _sops_yaml(p, site)
    # the secrets are planned first: a missing option fails before anything is written
    secret_files, new_secrets = _secret_plan(p, site)
    changed, diffs = [], []
    for relative, text in texts.items():
        path = os.path.join(p["dest"], relative)
        before = read_text(path)
        if before == text:
            continue
        changed.append(relative)
        diffs.append({"before_header": relative, "after_header": relative, "before": before or "", "after": text})
        if not module.check_mode:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_private(path, text, mode=0o644)
    for relative, text in new_secrets.items():
        changed.append(relative)
        shown = SECRET_SHOWN.format(f"{gitops.MONITORING_NAMESPACE}/{gitops.GRAFANA_ADMIN_SECRET}")
        diffs.append({"before_header": relative, "after_header": relative, "before": "", "after": shown})
        if not module.check_mode:
            write_private(os.path.join(p["dest"], relative), text)
    return {"changed": bool(changed), "files": [*texts, *secret_files], "changed_files": changed, "diff": diffs,
            "dashboards": dashboards(site)}  # fmt: skip


def _stage_root(p: dict, site: dict) -> str:
    return (p["stage_root"] or f"platform/{site['site']['name']}").strip("/")


def _secret_plan(p: dict, site: dict) -> tuple[list, dict]:
    """(every sops file of the site, relative path -> encrypted text of those missing). Each is made once and then
    left as it is: re-made, Grafana's password would change under a running Grafana."""
    every, missing = [], {}
    for stage, names in gitops.sops_files(site).items():
        for name in names:
            relative = f"{_stage_root(p, site)}/{stage}/{name}"
            every.append(relative)
            if not _kept(os.path.join(p["dest"], relative)):
                missing[relative] = _grafana_admin_file(p, relative)
    return every, missing


def _kept(path: str) -> bool:
    """True when path is there and is a sops file; a Secret decrypted into the checkout must not reach Git."""
    try:
        return open_document(path) is not None
    except SopsError:
        raise RenderError(
            f"{path} is not a sops-encrypted file: encrypt it again (sops -e -i {path}) or delete it to have a new "
            "password made; it must never be committed in the clear"
        ) from None


def _grafana_admin_file(p: dict, relative: str) -> str:
    """Grafana's admin Secret with a new strong password, encrypted to sops_recipients as the site's rule does."""
    if not p["sops_recipients"]:
        raise RenderError(
            f"monitoring needs sops_recipients to keep Grafana's admin password encrypted in {relative}: give the "
            "admins' age recipients and the cluster's Flux key (the role nerv.homelab.gitops_platform does)"
        )
    plain = gitops.grafana_admin_secret(secrets.token_urlsafe(PASSWORD_BYTES))
    rules = Rules("encrypted_regex", gitops.SOPS_ENCRYPTED_REGEX)
    return new_document(plain, "yaml", p["sops_recipients"], rules).text()


def _sops_yaml(p: dict, site: dict) -> str:
    for recipient in p["sops_recipients"]:
        check_recipient(recipient)
    path = os.path.join(p["dest"], ".sops.yaml")
    existing = parse_sops_config(read_text(path) or "", path)
    stage_root = _stage_root(p, site)
    return SOPS_HEADER + dump([sops_rules(existing, stage_root, p["sops_recipients"])])

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The I/O side of nerv.homelab.gitops_render: read the site, render with gitops.py, write what differs into the
checkout (and keep the repository's .sops.yaml rule of the site current)."""

from __future__ import annotations

import os

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops import (
    RenderError,
    dashboards,
    dump,
    parse_sops_config,
    render,
    sops_rules,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import check_recipient
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.files import read_text, write_private
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site

HEADER = "# Rendered by nerv.homelab.gitops_render from the site file: edit the site, not this file.\n"
SOPS_HEADER = "# sops creation rules; nerv.homelab.gitops_render keeps the rule of each site's platform current.\n"


def execute(module) -> dict:
    """nerv.homelab.gitops_render: the site's tree and its .sops.yaml rule, written only where they differ."""
    p = module.params
    site = load_site(p["site_file"])
    if not os.path.isdir(p["dest"]):
        raise RenderError(f"dest {p['dest']} is not a directory: give the checkout of the GitOps repository")
    files = render(site, p["site_path"] or site["flux"]["path"], p["stage_root"])
    texts = {relative: HEADER + dump(docs) for relative, docs in files.items()}
    if p["sops_recipients"]:
        texts[".sops.yaml"] = _sops_yaml(p, site)
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
    return {"changed": bool(changed), "files": list(texts), "changed_files": changed, "diff": diffs,
            "dashboards": dashboards(site)}  # fmt: skip


def _sops_yaml(p: dict, site: dict) -> str:
    for recipient in p["sops_recipients"]:
        check_recipient(recipient)
    path = os.path.join(p["dest"], ".sops.yaml")
    existing = parse_sops_config(read_text(path) or "", path)
    stage_root = (p["stage_root"] or f"platform/{site['site']['name']}").strip("/")
    return SOPS_HEADER + dump([sops_rules(existing, stage_root, p["sops_recipients"])])

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The I/O side of nerv.homelab.gitops_render: read the site, render with render.py, write what differs into the
checkout (and keep the repository's .sops.yaml rule of the site current), encrypt the apps' values_sops into
Secrets for Flux, re-encrypt the site CA (made once on the controller) into cert-manager's Secret for Flux, and delete
the files it rendered before that the site no longer asks for. The dashboards' login (and with monitoring Grafana's
admin) Secret is made here once, sops-encrypted, and kept as it is on every later run."""

from __future__ import annotations

import os
import secrets

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.apps import (
    app_values_file,
    app_values_manifest,
)
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.manifests import (
    RENDERED_ANNOTATION,
    SOPS_ENCRYPTED_REGEX,
    RenderError,
    dump,
)
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.render import (
    SITE_CA_FILE,
    SITE_CA_NAMESPACE,
    SITE_CA_SECRET,
    SITE_CA_STAGE,
    dashboards,
    made_once,
    parse_sops_config,
    render,
    site_ca_secret,
    sops_rules,
)
from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import (
    SopsError,
    check_recipient,
    identities,
    require_libraries,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.site_ca import KEY_KEY, SiteCaError, check_existing
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.document import Document, Rules, new_document
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.files import (
    decrypt_file,
    open_document,
    read_text,
    without_comments,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site
from ansible_collections.nerv.homelab.plugins.module_utils.site.reader import yaml

HEADER = "# Rendered by nerv.homelab.gitops_render from the site file: edit the site, not this file.\n"
SOPS_HEADER = "# sops creation rules; nerv.homelab.gitops_render keeps the rule of each site's platform current.\n"
# as the site's .sops.yaml rule (render.sops_rules): Flux decrypts data and stringData, the rest stays readable
SECRET_RULES = Rules("encrypted_regex", SOPS_ENCRYPTED_REGEX)
# What the diff shows of a new secret file made here instead of its content
SECRET_SHOWN = "(sops-encrypted Secret {}: not shown)\n"
PASSWORD_BYTES = 24
# How a file decrypted here and encrypted again for Flux asks for sops_recipients when none is given
FOR_FLUX = (
    "to Git encrypted for Flux: give sops_recipients (the admins' and the cluster's Flux key's recipients, as the role "
    "gitops_platform does)"
)


def execute(module) -> dict:
    """nerv.homelab.gitops_render: the site's tree, its .sops.yaml rule and its sops files (the apps' values, and
    Grafana's Secret made once), written only where they differ; files rendered before and no longer rendered are
    deleted."""
    p = module.params
    site = load_site(p["site_file"])
    if not os.path.isdir(p["dest"]):
        raise RenderError(f"dest {p['dest']} is not a directory: give the checkout of the GitOps repository")
    stage_root = (p["stage_root"] or f"platform/{site['site']['name']}").strip("/")
    files = render(site, p["site_path"] or site["flux"]["path"], stage_root)
    texts = {relative: HEADER + dump(docs) for relative, docs in files.items()}
    if p["sops_recipients"]:
        texts[".sops.yaml"] = _sops_yaml(p, stage_root)
    # the secrets are planned first: a missing option fails before anything is written
    values_secrets = app_value_secrets(p, site, stage_root)
    secret_files, new_secrets = _secret_plan(p, site, stage_root)
    ca_relative = f"{stage_root}/{SITE_CA_STAGE}/{SITE_CA_FILE}"
    ca_text = site_ca_file(p, site, os.path.join(p["dest"], ca_relative), module.check_mode)
    encrypted = {**values_secrets, **({ca_relative: ca_text} if ca_text is not None else {})}
    texts.update(encrypted)
    changed, diffs = [], []
    if ca_text is None:
        # check mode before the keys phase made the site CA: its Secret would be written, with content unknown yet
        changed.append(ca_relative)
        diffs.append(_diff(ca_relative, None, SECRET_SHOWN.format(f"{SITE_CA_NAMESPACE}/{SITE_CA_SECRET}"), False))
    for relative, text in texts.items():
        path = os.path.join(p["dest"], relative)
        before = read_text(path)
        if before == text:
            continue
        changed.append(relative)
        diffs.append(_diff(relative, before, text, relative in encrypted))
        if not module.check_mode:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_atomic(path, text, mode=0o644)
    for relative, (secret, text) in new_secrets.items():
        changed.append(relative)
        diffs.append(_diff(relative, None, SECRET_SHOWN.format(secret), False))
        if not module.check_mode:
            write_atomic(os.path.join(p["dest"], relative), text)
    # the sops files made once are rendered on every run they stay in the site: kept, never pruned
    removed = stale_files(p["dest"], stage_root, {*texts, *secret_files, ca_relative})
    for relative in removed:
        path = os.path.join(p["dest"], relative)
        diffs.append(_diff(relative, read_text(path), None, relative.endswith(".sops.yaml")))
        if not module.check_mode:
            os.unlink(path)
    every = [*texts, *secret_files] + ([] if ca_text is not None else [ca_relative])
    return {"changed": bool(changed or removed), "files": every, "changed_files": changed + removed,
            "removed_files": removed, "diff": diffs, "dashboards": dashboards(site)}  # fmt: skip


def _diff(relative: str, before: str | None, after: str | None, encrypted: bool) -> dict:
    """A file's diff; of an encrypted file only that it changes (its ciphertext says nothing to a reader)."""
    if encrypted:
        before = "(sops-encrypted, not shown)\n" if before is not None else None
        after = "(sops-encrypted, not shown; its values changed)\n" if after is not None else None
    return {"before_header": relative, "after_header": relative, "before": before or "", "after": after or ""}


def _secret_plan(p: dict, site: dict, stage_root: str) -> tuple[list, dict]:
    """(every sops file made once, relative path -> (its Secret, encrypted text) of those missing). Each is made once
    and then left as it is: made again, a password would change under a running UI."""
    every, missing = [], {}
    for (stage, name), (secret, make) in made_once(site).items():
        relative = f"{stage_root}/{stage}/{name}"
        every.append(relative)
        if not _kept(os.path.join(p["dest"], relative)):
            missing[relative] = (secret, _made_once_file(p, relative, secret, make))
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


def _made_once_file(p: dict, relative: str, secret: str, make) -> str:
    """A Secret with a new strong password, encrypted to sops_recipients as the site's rule does."""
    if not p["sops_recipients"]:
        raise RenderError(
            f"the platform keeps the password of Secret {secret} encrypted in {relative}: give sops_recipients, the "
            "admins' age recipients and the cluster's Flux key (the role nerv.homelab.gitops_platform does)"
        )
    plain = make(secrets.token_urlsafe(PASSWORD_BYTES))
    return new_document(plain, "yaml", p["sops_recipients"], SECRET_RULES).text()


def _sops_yaml(p: dict, stage_root: str) -> str:
    for recipient in p["sops_recipients"]:
        check_recipient(recipient)
    path = os.path.join(p["dest"], ".sops.yaml")
    existing = parse_sops_config(read_text(path) or "", path)
    return SOPS_HEADER + dump([sops_rules(existing, stage_root, p["sops_recipients"])])


# ---- the apps' values_sops ----------------------------------------------------------------------------------------


def app_value_secrets(p: dict, site: dict, stage_root: str) -> dict:
    """relative path -> the encrypted Secret of each app's values_sops: the existing file's text when it already holds
    the same values for the same recipients (sops' random data key would make every new encryption a change)."""
    apps = [app for app in site.get("apps") or [] if app.get("values_sops")]
    if not apps:
        return {}
    if not p["sops_recipients"]:
        raise RenderError(f"app {apps[0]['name']} has values_sops, which go {FOR_FLUX}")
    recipients = [check_recipient(r) for r in p["sops_recipients"]]
    require_libraries()
    ids = identities(p)
    base = os.path.dirname(os.path.abspath(p["site_file"]))
    out = {}
    for app in apps:
        manifest = app_values_manifest(app, _values_text(os.path.join(base, app["values_sops"]), ids))
        relative = f"{stage_root}/apps/{app_values_file(app)}"
        out[relative] = _encrypted(os.path.join(p["dest"], relative), manifest, recipients, ids)
    return out


def _values_text(path: str, ids: list) -> str:
    """The decrypted values file as YAML text (comments left out); SopsError names the file, never a value."""
    plain = without_comments(decrypt_file(path, ids, "yaml"))
    if not isinstance(plain, dict):
        raise SopsError(f"{path} does not hold a mapping of chart values")
    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, width=120)


def _encrypted(path: str, manifest: dict, recipients: list, ids: list) -> str:
    existing = read_text(path)
    if existing is not None:
        try:
            document = Document.parse(existing, "yaml", where=path)
            same = without_comments(document.decrypt(ids)) == manifest
        except SopsError:
            same = False  # not readable here (or damaged): encrypted afresh below
        if same:
            # the same values: keep the file, only re-wrapping its data key when the recipients changed
            return document.text() if document.set_recipients(recipients) else existing
    return new_document(manifest, "yaml", recipients, SECRET_RULES).text()


# ---- the site CA -------------------------------------------------------------------------------------------------


def site_ca_file(p: dict, site: dict, dest_path: str, check_mode: bool) -> str | None:
    """The encrypted text of Secret cert-manager/site-ca for the checkout: the site CA decrypted here with the
    admins' identity and encrypted to sops_recipients (the existing file kept when content and recipients are the
    same). None in check mode when the site CA is not made yet; RenderError naming the fix otherwise."""
    # site_ca_file, else secrets/site-ca.sops.yaml beside the site file (where the role nerv.homelab.sops_keys makes it)
    source = p.get("site_ca_file") or os.path.join(
        os.path.dirname(os.path.abspath(p["site_file"])), "secrets", SITE_CA_FILE
    )
    what = f"the site CA ({source}), which cert-manager issues the ingresses' certificates from,"
    if not p["sops_recipients"]:
        raise RenderError(f"{what} goes {FOR_FLUX}")
    if not os.path.exists(source):
        if check_mode:
            return None
        raise RenderError(
            f"{what} is missing: make it with the keys phase (playbooks/keys.yml, the role nerv.homelab.sops_keys) "
            "or give site_ca_file"
        )
    recipients = [check_recipient(r) for r in p["sops_recipients"]]
    require_libraries()
    ids = identities(p)
    plain = without_comments(decrypt_file(source, ids, "yaml"))
    try:
        manifest = site_ca_secret(check_existing(source, plain, site["network"]["domain"]), plain[KEY_KEY])
    except SiteCaError as exc:
        raise RenderError(str(exc)) from None
    return _encrypted(dest_path, manifest, recipients, ids)


# ---- pruning ------------------------------------------------------------------------------------------------------


def stale_files(dest: str, stage_root: str, rendered: set) -> list:
    """Files under stage_root this module wrote before (our HEADER, or a sops Secret it made, an app's values or
    Grafana's admin, marked as rendered) that are no longer rendered, relative to dest and sorted. A file without our
    mark is the user's: kept."""
    root = os.path.join(dest, stage_root)
    stale = []
    for directory, _dirs, names in os.walk(root):
        for name in names:
            relative = os.path.relpath(os.path.join(directory, name), dest).replace(os.sep, "/")
            if relative not in rendered and _ours(os.path.join(directory, name)):
                stale.append(relative)
    return sorted(stale)


def _ours(path: str) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        return False
    if text.startswith(HEADER):
        return True
    if not path.endswith(".sops.yaml"):
        return False
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return isinstance(annotations, dict) and annotations.get(RENDERED_ANNOTATION) == "gitops_render"

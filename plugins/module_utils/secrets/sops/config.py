# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
""".sops.yaml: finding it, resolving a file's creation rule like sops does, and rendering the site's rules."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError, check_recipient, require
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.document import (
    RULE_KEYS,
    Rules,
    age_keys_of,
    check_key_sources,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.reader import YAML_IMPORT_ERROR, yaml

CONFIG_NAME = ".sops.yaml"
IGNORED_NAME = ".sops.yml"  # sops 3.11 warns about it and reads it not


@dataclass
class CreationRule:
    """The rule sops would apply to one file: its age recipients and crypt rule."""

    recipients: list
    rules: Rules
    index: int


def find_config(cwd: str | None = None, environ=None) -> str | None:
    """The .sops.yaml sops would use: $SOPS_CONFIG, else the first one in the working directory or above it.

    As sops 3.11 does: the search starts where sops runs, not where the file is, and a .sops.yml is ignored."""
    environ = os.environ if environ is None else environ
    directory = os.path.abspath(cwd or os.getcwd())
    if environ.get("SOPS_CONFIG"):
        return os.path.join(directory, environ["SOPS_CONFIG"])
    while True:
        candidate = os.path.join(directory, CONFIG_NAME)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _not_found(path: str, cwd: str | None) -> SopsError:
    where = os.path.abspath(cwd or os.getcwd())
    ignored = os.path.join(where, IGNORED_NAME)
    hint = f" ({ignored} is ignored: sops reads only {CONFIG_NAME})" if os.path.isfile(ignored) else ""
    return SopsError(
        f"no {CONFIG_NAME} in {where} or above it, where sops looks, for {path}{hint}: give config (the site's "
        f"{CONFIG_NAME}) or recipients, or write one (nerv.homelab.sops_config)"
    )


def rule_path(path: str, config: str) -> str:
    """The path sops matches path_regex against: relative to the config's directory when the file is under it,
    else absolute (both made absolute from the working directory, symlinks left as they are)."""
    absolute = os.path.abspath(path)
    directory = os.path.dirname(os.path.abspath(config))
    prefix = directory.rstrip(os.sep) + os.sep
    return (absolute[len(prefix) :] if absolute.startswith(prefix) else absolute).replace(os.sep, "/")


def load_rules(config: str) -> list:
    require("PyYAML", YAML_IMPORT_ERROR)
    try:
        with open(config, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SopsError(f"cannot read {config}: {exc}") from None
    rules = data.get("creation_rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        raise SopsError(f"{config} has no creation_rules list")
    return rules


def resolve(path: str, config: str | None = None, cwd: str | None = None) -> CreationRule:
    """The first creation rule whose path_regex matches the file (sops' order), from config or the .sops.yaml
    sops would find running in cwd (the working directory)."""
    config = config or find_config(cwd)
    if not config:
        raise _not_found(path, cwd)
    return resolve_in(load_rules(config), path if cwd is None else os.path.join(cwd, path), config)


def resolve_in(rules: list, path: str, config: str) -> CreationRule:
    """The first of these creation rules (those of config, written or about to be) that matches the file."""
    matched = rule_path(path, config)
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise SopsError(f"creation rule {index} of {config} is not a mapping")
        if "filename_regex" in rule:
            raise SopsError(
                f"creation rule {index} of {config} has filename_regex, which sops 3.11 ignores (the rule would match "
                "every file): use path_regex"
            )
        regex = rule.get("path_regex")
        if not regex or _search(regex, matched, config, index):
            return CreationRule(_rule_recipients(rule, config, index), _rule_crypt(rule, config, index), index)
    raise SopsError(f"no creation rule of {config} matches {matched}: add one (a rule without path_regex matches all)")


def _search(regex: str, relative: str, config: str, index: int) -> bool:
    try:
        return re.search(regex, relative) is not None
    except re.error as exc:
        raise SopsError(
            f"path_regex of creation rule {index} in {config} is not a regular expression ({exc})"
        ) from None


def _rule_recipients(rule: dict, config: str, index: int) -> list:
    where = f"creation rule {index} of {config}"
    check_key_sources(rule, where)
    recipients = age_keys_of(rule).get("age") or []
    if isinstance(recipients, str):
        recipients = [r for r in re.split(r"[,\s]+", recipients) if r]
    checked = []
    for recipient in recipients:
        try:
            checked.append(check_recipient(recipient))
        except SopsError as exc:
            raise SopsError(f"{where}: {exc}") from None
    if not checked:
        raise SopsError(f"{where} has no age recipient")
    return list(dict.fromkeys(checked))


def _rule_crypt(rule: dict, config: str, index: int) -> Rules:
    try:
        return Rules.from_metadata({k: rule[k] for k in (*RULE_KEYS, "mac_only_encrypted") if k in rule})
    except SopsError as exc:
        raise SopsError(f"creation rule {index} of {config}: {exc}") from None


# ---- rendering the site's rules --------------------------------------------------------------------------------


def site_rules(admins: list, hosts: list, shared: list, host_dir: str, admin_only: list) -> list:
    """creation_rules for a site, first match wins:

    admin_only paths (host private keys, the Proxmox token) -> admins; <host_dir>/<host>/ -> admins + that host;
    each shared entry (path_regex, hosts) -> admins + those hosts; everything else -> admins.
    A host whose key is being rotated (next_recipient) is named by both keys, so it decrypts with either."""
    admins = [check_recipient(a) for a in admins]
    if not admins:
        raise SopsError("sops.admin_recipients is empty: list at least one admin age recipient")
    by_name = {h["name"]: _host_recipients(h) for h in hosts if h.get("recipient")}
    rules = [_rule(regex, admins) for regex in admin_only]
    for name in sorted(by_name):
        rules.append(_rule(f"^{re.escape(host_dir)}/{re.escape(name)}/", admins + by_name[name]))
    for entry in shared:
        names = sorted(by_name) if entry.get("hosts", "all") in ("all", ["all"]) else list(entry["hosts"])
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise SopsError(f"shared rule {entry['path_regex']!r} names hosts without a key: {', '.join(unknown)}")
        readers = [r for n in names for r in by_name[n]]
        rules.append(_rule(entry["path_regex"], admins + readers, entry.get("encrypted_regex")))
    rules.append({"key_groups": [{"age": admins}]})
    return rules


def _host_recipients(host: dict) -> list:
    return [check_recipient(host[key]) for key in ("recipient", "next_recipient") if host.get(key)]


def _rule(regex: str, recipients: list, encrypted_regex: str | None = None) -> dict:
    rule = {"path_regex": regex}
    if encrypted_regex:
        rule["encrypted_regex"] = encrypted_regex
    rule["key_groups"] = [{"age": list(dict.fromkeys(recipients))}]
    return rule


def render(rules: list, header: str) -> str:
    body = yaml.safe_dump({"creation_rules": rules}, sort_keys=False, default_flow_style=False, width=2**20)
    return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body

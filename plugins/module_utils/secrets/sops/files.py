# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sops files on disk: read, plan a change (set, remove, updatekeys, rotate) and write it atomically, 0600.

Plans hold the new text and a diff of key paths and recipients only: a value never reaches a diff or message.
"""

from __future__ import annotations

import base64
import fnmatch
import os
from dataclasses import dataclass, field

from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import config, stores, text_stores
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.document import (
    Document,
    Rules,
    get_path,
    join_key,
    new_document,
    remove_path,
    set_path,
    split_key,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.yaml_store import Timestamp


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        # every sops file is text, a binary file's content included (it is encrypted into JSON)
        raise SopsError(f"{path} is not a sops file: it is not UTF-8 text") from None
    except OSError as exc:
        raise SopsError(f"cannot read {path}: {exc.strerror}") from None


def open_document(path: str, fmt: str | None = None) -> Document | None:
    text = read_text(path)
    if text is None:
        return None
    return Document.parse(text, stores.format_for(path, fmt), where=path)


def decrypt_file(path: str, identities: list, fmt: str | None = None) -> dict:
    return decrypt(_existing(path, fmt), identities, path)


def _existing(path: str, fmt: str | None, why: str = "") -> Document:
    document = open_document(path, fmt)
    if document is None:
        raise SopsError(f"{path} does not exist{why}")
    return document


def decrypt(document: Document, identities: list, path: str) -> dict:
    """The plaintext of an opened file; its errors name the file."""
    try:
        return document.decrypt(identities)
    except SopsError as exc:
        raise SopsError(f"{path}: {exc}") from None


def read_value(path: str, key: str | None, identities: list, fmt: str | None = None):
    """The value at key (a.b.c, or sops' ["a.b"]["c"]) of a sops file, or its whole content without key."""
    plain = without_comments(decrypt_file(path, identities, fmt))
    return get_path(plain, split_key(key)) if key else plain


def read_for_template(path: str, key: str | None, identities: list, fmt: str | None = None, as_base64=False):
    """read_value as Ansible can template it: with as_base64 the one value (without key, a binary file's content)
    as base64 text of its bytes, else the value with every bytes leaf as str."""
    fmt = stores.format_for(path, fmt)
    tree = read_value(path, key, identities, fmt)
    if as_base64:
        return base64_text(text_stores.binary_data(tree) if key is None and fmt == "binary" else tree, path, key)
    return as_text(tree, path, split_key(key) if key else [])


def as_text(tree, path: str, parts: list):
    """tree with bytes leaves decoded; bytes that are not UTF-8 (a binary file's content) fail, naming base64:
    Ansible can neither template nor serialise bytes."""
    if isinstance(tree, dict):
        return {k: as_text(v, path, [*parts, str(k)]) for k, v in tree.items()}
    if isinstance(tree, list):
        return [as_text(v, path, parts) for v in tree]
    if not isinstance(tree, bytes):
        return tree
    try:
        return tree.decode("utf-8")
    except UnicodeDecodeError:
        where = f"the value at '{join_key(parts)}' of {path}"
        raise SopsError(f"{where} is not UTF-8 text: give base64=true to read it base64-encoded") from None


def base64_text(value, path: str, key: str | None) -> str:
    """The base64 (ASCII text) of a value's bytes, a str's as UTF-8."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes):
        what = f"the value at '{key}'" if key else "the whole content (no key given)"
        kind = type(value).__name__
        raise SopsError(f"base64=true encodes one text or binary value, and {what} of {path} is of type {kind}")
    return base64.b64encode(value).decode("ascii")


def without_comments(tree):
    """The plaintext as plain data: comments left out, a date or timestamp as its text (as `sops -d` prints it)."""
    if isinstance(tree, dict):
        return {k: without_comments(v) for k, v in tree.items() if not isinstance(k, stores.Comment)}
    if isinstance(tree, list):
        return [without_comments(v) for v in tree if not isinstance(v, stores.Comment)]
    if isinstance(tree, Timestamp):
        return str(tree)
    if isinstance(tree, (text_stores.JsonInt, text_stores.BinaryText)):
        return int(tree) if isinstance(tree, int) else bytes(tree)
    return tree


def leaf_paths(tree, prefix: tuple = ()) -> list:
    """Every leaf's key path as a tuple of names, in document order (comments left out)."""
    if not isinstance(tree, dict):
        return [prefix]
    named = (((*prefix, str(key)), value) for key, value in tree.items() if not isinstance(key, stores.Comment))
    return [path for here, value in named for path in leaf_paths(value, here)]


def key_paths(tree) -> list:
    """Every leaf's key path as text (dotted, or sops' index syntax where a name holds a dot)."""
    return [join_key(path) for path in leaf_paths(tree)]


def flatten_values(values: dict) -> dict:
    """The values option as key path (tuple) -> leaf: its top-level keys are key paths (split_key), the keys of
    nested mappings are names as they are, so a name holding a dot can be given nested too."""
    out = {}

    def walk(node, path):
        for key, value in node.items():
            here = (*path, str(key)) if path else tuple(split_key(key))
            if isinstance(value, dict) and value:
                walk(value, here)
            else:
                out[here] = value

    walk(values, ())
    return out


@dataclass
class Plan:
    """What a change does to one file: changed, the new text, and a value-free diff."""

    path: str
    changed: bool = False
    text: str = ""
    created: bool = False
    changed_keys: list = field(default_factory=list)
    before_recipients: list = field(default_factory=list)
    after_recipients: list = field(default_factory=list)
    keys: list = field(default_factory=list)
    _before_keys: list = field(default_factory=list)
    # key path -> public value of a generated secret (an age identity's recipient), for the keys of generate
    public: dict = field(default_factory=dict)

    def diff(self) -> dict:
        def listing(keys, recipients, marks):
            lines = [f"{k}{'  # value changed' if k in marks else ''}" for k in keys]
            return (
                "keys:\n"
                + "".join(f"  {line}\n" for line in lines)
                + "recipients:\n"
                + "".join(f"  {r}\n" for r in recipients)
            )

        return {
            "before_header": self.path,
            "after_header": self.path,
            "before": "" if self.created else listing(self._before_keys, self.before_recipients, []),
            "after": listing(self.keys, self.after_recipients, self.changed_keys),
        }

    def apply(self) -> None:
        if self.changed:
            write_atomic(self.path, self.text)


def _recipients_for(path: str, recipients: list | None, rules: Rules | None, sops_config: str | None):
    if recipients:
        return list(recipients), rules or Rules()
    rule = config.resolve(path, sops_config)
    return rule.recipients, rules or rule.rules


def _with_generated(values: dict, present: list, generate, token) -> dict:
    """values plus a fresh token for every key of generate that is neither given nor already in the file."""
    given = {tuple(split_key(key)) for key in values} | set(present)
    return {**values, **{key: token() for key in generate if tuple(split_key(key)) not in given}}


def _changed(before: dict, after: dict) -> list:
    return [join_key(p) for p in leaf_paths(after) if _leaf(before, p) != _leaf(after, p)]


def plan_values(
    path: str,
    identities: list,
    values: dict,
    remove: list,
    recipients=None,
    rules=None,
    fmt=None,
    generate=(),
    token=None,
    public_of=None,
    sops_config=None,
) -> Plan:
    """Set values (key path -> value), fill the keys of generate that are missing with token(), remove keys; a new
    file is encrypted to recipients or its creation rule (in sops_config, else the .sops.yaml sops would find)."""
    fmt = stores.format_for(path, fmt)
    document = open_document(path, fmt)
    before = {} if document is None else decrypt(document, identities, path)
    values = _with_generated(values, leaf_paths(before), generate, token)
    if document is None and not values:
        raise SopsError(f"{path} does not exist and there is nothing to put in it: give values or generate")
    plain = before
    for key in remove if document is not None else ():  # nothing to remove from a new file
        plain = remove_path(plain, split_key(key))
    for key, value in values.items():
        plain = set_path(plain, split_key(key), value)
    plan = Plan(path, created=document is None)
    if document is None:
        wanted, crypt = _recipients_for(path, recipients, rules, sops_config)
        document = new_document(plain, fmt, wanted, crypt)
        plan.changed = True
    else:
        plain = stores.prepare(plain, fmt)
        plan.before_recipients, plan._before_keys = document.recipients, key_paths(before)
        plan.changed = plain != before
        if plan.changed:
            document.encrypt(plain)
    plan.changed_keys = _changed(before, plain)
    plan.after_recipients, plan.keys, plan.text = document.recipients, key_paths(document.plain or {}), document.text()
    if public_of:
        plan.public = {key: _public(public_of, plain, key, path) for key in generate}
    return plan


def _public(public_of, plain: dict, key: str, path: str) -> str:
    try:
        return public_of(_leaf(plain, split_key(key)))
    except SopsError as exc:
        raise SopsError(f"{path}: {key}: {exc}") from None


def _leaf(tree, parts):
    try:
        return get_path(tree, list(parts))
    except SopsError:
        return KeyError  # a sentinel that equals no value: the key is missing on this side


def plan_updatekeys(path: str, identities: list, recipients=None, fmt=None, sops_config=None) -> Plan:
    """Re-wrap the data key for the recipients the creation rule (or recipients) now lists; values untouched."""
    document = _existing(path, fmt, ": nothing to update")
    wanted = list(recipients) if recipients else config.resolve(path, sops_config).recipients
    plan = _unchanged_values(document, identities, path)
    plan.changed = document.set_recipients(wanted)
    plan.after_recipients, plan.text = document.recipients, document.text()
    return plan


def plan_rotate(path: str, identities: list, fmt=None) -> Plan:
    """A new data key for the file: every value re-encrypted; always a change."""
    document = _existing(path, fmt, ": nothing to rotate")
    plan = _unchanged_values(document, identities, path)
    plan.changed = True
    document.rotate()
    plan.after_recipients, plan.text = document.recipients, document.text()
    return plan


def _unchanged_values(document: Document, identities: list, path: str) -> Plan:
    """The plan of a change to the data key only: the same keys before and after."""
    keys = key_paths(decrypt(document, identities, path))
    return Plan(path, before_recipients=document.recipients, keys=keys, _before_keys=keys)


def sops_files(paths: list) -> list:
    """The sops files (named *.sops.*) among paths: files as given, directories searched recursively; sorted.
    Hidden names (a .git directory, a half-written .nerv-* file) are left out."""
    found = []
    for path in paths:
        if os.path.isfile(path):
            found.append(path)
            continue
        for directory, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [os.path.join(directory, n) for n in names if fnmatch.fnmatch(n, "*.sops.*") and n[0] != "."]
    return sorted(dict.fromkeys(found))


def plan_rekeys(paths: list, rules: list, sops_config: str, load_identities) -> list:
    """updatekeys plans for exactly the sops files under paths whose creation rule in rules (the rules of
    sops_config, written or about to be) names other recipients than the file is encrypted to; the files whose
    recipients already match are not opened. load_identities() is called only when a file must be re-keyed."""
    plans, ids = [], None
    for path in sops_files(paths):
        document = open_document(path)
        wanted = config.resolve_in(rules, path, sops_config).recipients
        if document is None or set(document.recipients) == set(wanted):
            continue
        if ids is None:
            ids = load_identities()
        plans.append(plan_updatekeys(path, ids, wanted))
    return plans

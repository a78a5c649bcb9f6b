# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The three sops stores nerv.homelab needs: YAML, JSON and dotenv, read and written as sops 3.x does.

A store turns text into (tree, metadata) and back. Trees are dicts in document order; comments are ``Comment``
keys (and, in YAML sequences, ``Comment`` items). The YAML store is sops_yaml.
"""

from __future__ import annotations

import json
import re

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import yaml_store as sops_yaml
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.yaml_store import Comment

# the values of YAML dates and timestamps (sops type time), beside Comment for the code that walks trees
Timestamp = sops_yaml.Timestamp
METADATA_KEY = "sops"
_DOTENV_PREFIX = "sops_"
_MAP, _LIST = "__map_", "__list_"


def format_for(path: str, explicit: str | None = None) -> str:
    """The store for a file: explicit, else by extension as sops decides (.json, .env, else YAML)."""
    if explicit:
        return explicit
    name = str(path).lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith(".env") or name.rsplit("/", 1)[-1] == ".env":
        return "dotenv"
    return "yaml"


def load(text: str, fmt: str) -> tuple[dict, dict | None]:
    """(tree without metadata, metadata or None) of a file's text."""
    tree = {"yaml": sops_yaml.load, "json": _load_json, "dotenv": _load_dotenv}[fmt](text)
    if fmt == "dotenv":
        return _split_dotenv_metadata(tree)
    metadata = tree.pop(METADATA_KEY, None) if isinstance(tree, dict) else None
    return tree, metadata


def dump(tree: dict, metadata: dict | None, fmt: str) -> str:
    """The file text of a tree, with the sops metadata last as sops writes it (None: a plain file)."""
    if fmt == "dotenv":
        return _dump_dotenv(tree, metadata)
    document = dict(tree)
    if metadata is not None:
        document[METADATA_KEY] = metadata
    return sops_yaml.dump(document) if fmt == "yaml" else json.dumps(document, indent="\t", ensure_ascii=False) + "\n"


# ---- JSON ------------------------------------------------------------------------------------------------------


def _load_json(text: str):
    try:
        tree = json.loads(text)
    except ValueError as exc:
        raise SopsError(f"not valid JSON: {exc}") from None
    if not isinstance(tree, dict):
        raise SopsError("sops only supports JSON files with an object at the top level")
    return tree


# ---- dotenv ----------------------------------------------------------------------------------------------------


def _load_dotenv(text: str) -> dict:
    tree = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if line.startswith("#"):
            tree[Comment(line[1:])] = None
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise SopsError(f"line {number} of the dotenv file has no '=': expected KEY=value")
        # sops keeps everything around '=' (spaces included) and only unescapes \n.
        tree[key] = value.replace("\\n", "\n")
    return tree


def _split_dotenv_metadata(tree: dict) -> tuple[dict, dict | None]:
    flat = {k[len(_DOTENV_PREFIX) :]: v for k, v in tree.items() if isinstance(k, str) and k.startswith(_DOTENV_PREFIX)}
    body = {k: v for k, v in tree.items() if not (isinstance(k, str) and k.startswith(_DOTENV_PREFIX))}
    if not flat:
        return body, None
    metadata = unflatten(flat)
    if "mac_only_encrypted" in metadata:
        metadata["mac_only_encrypted"] = metadata["mac_only_encrypted"] == "true"
    if "shamir_threshold" in metadata:
        metadata["shamir_threshold"] = int(metadata["shamir_threshold"])
    return body, metadata


def _dump_dotenv(tree: dict, metadata: dict | None) -> str:
    lines = []
    for key, value in tree.items():
        if isinstance(key, Comment):
            lines.append(f"#{key.text}")
        elif isinstance(value, (dict, list)):
            raise SopsError(f"dotenv files hold flat values only; '{key}' is a {type(value).__name__}")
        else:
            lines.append(f"{key}={_dotenv_text(value)}")
    if metadata is not None:
        flat = flatten(metadata)
        lines += [f"{_DOTENV_PREFIX}{key}={_dotenv_text(flat[key])}" for key in sorted(flat) if flat[key] is not None]
    return "".join(line + "\n" for line in lines)


def _dotenv_text(value) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return str(value).replace("\n", "\\n")


def flatten(node, prefix: str = "") -> dict:
    """sops' flattening of nested metadata for dotenv: maps as __map_<key>, lists as __list_<n>."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{_MAP if prefix else ''}{key}"))
        return out
    if isinstance(node, list):
        out = {}
        for index, value in enumerate(node):
            out.update(flatten(value, f"{prefix}{_LIST}{index}"))
        return out
    return {prefix: node}


def unflatten(flat: dict) -> dict:
    """The inverse of flatten."""
    root: dict = {}
    for path, value in flat.items():
        tokens = _tokens(path)
        node = root
        for index, token in enumerate(tokens):
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            node = _step(node, token, following, value)
    return root


def _tokens(path: str) -> list:
    parts = re.split(f"({_MAP}|{_LIST})", path)
    tokens = [parts[0]]
    for index in range(1, len(parts) - 1, 2):
        marker, text = parts[index], parts[index + 1]
        tokens.append(int(text) if marker == _LIST else text)
    return tokens


def _step(node, token, following, value):
    if following is None:
        _put(node, token, value)
        return node
    child = _get(node, token)
    if child is None:
        child = [] if isinstance(following, int) else {}
        _put(node, token, child)
    return child


def _get(node, token):
    if isinstance(node, list):
        return node[token] if token < len(node) else None
    return node.get(token)


def _put(node, token, value):
    if isinstance(node, list):
        node.extend([None] * (token + 1 - len(node)))
        node[token] = value
    else:
        node[token] = value

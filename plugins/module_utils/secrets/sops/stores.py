# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sops stores: YAML, JSON, dotenv, INI and binary, read and written as sops 3.x does.

A store turns text into (tree, metadata) and back. Trees are dicts in document order; comments are ``Comment``
keys (and, in YAML sequences, ``Comment`` items). The YAML store is yaml_store.py; JSON, binary and INI
are formats.py; dotenv and the flattening of metadata for dotenv and INI are here.
"""

from __future__ import annotations

import re

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import formats
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import yaml_store as sops_yaml
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.yaml_store import Comment

# the values of YAML dates and timestamps (sops type time), beside Comment for the code that walks trees
Timestamp = sops_yaml.Timestamp
METADATA_KEY = "sops"
FORMATS = ("yaml", "json", "dotenv", "ini", "binary")
# sops' FormatForPath: these suffixes (case as written), anything else is a binary file
_SUFFIXES = ((".yaml", "yaml"), (".yml", "yaml"), (".json", "json"), (".env", "dotenv"), (".ini", "ini"))
_DOTENV_PREFIX = "sops_"
_MAP, _LIST = "__map_", "__list_"


def format_for(path: str, explicit: str | None = None) -> str:
    """The store for a file: explicit, else by its name's suffix as sops decides (unknown suffixes: binary)."""
    if explicit:
        if explicit not in FORMATS:
            raise SopsError(f"unknown sops format {explicit!r}: use one of {', '.join(FORMATS)}")
        return explicit
    name = str(path)
    return next((fmt for suffix, fmt in _SUFFIXES if name.endswith(suffix)), "binary")


def load(text: str, fmt: str) -> tuple[dict, dict | None]:
    """(tree without metadata, metadata or None) of a file's text."""
    if fmt == "dotenv":
        return _split_dotenv_metadata(_load_dotenv(text))
    if fmt == "ini":
        return _split_ini_metadata(formats.load_ini(text))
    tree = {"yaml": sops_yaml.load, "json": formats.load_json, "binary": formats.load_binary}[fmt](text)
    metadata = tree.pop(METADATA_KEY, None) if isinstance(tree, dict) else None
    return tree, metadata


def dump(tree: dict, metadata: dict | None, fmt: str):
    """The file text of a tree, with the sops metadata last as sops writes it (None: a plain file; for a plain
    binary file its content, bytes when it is not UTF-8)."""
    if fmt == "dotenv":
        return _dump_dotenv(tree, metadata)
    if fmt == "binary":
        content = formats.binary_data(tree)
        if metadata is None:
            return content
    document = dict(tree)
    if metadata is not None:
        document[METADATA_KEY] = _flat_metadata(metadata) if fmt == "ini" else metadata
    if fmt == "ini":
        return formats.dump_ini(document)
    return sops_yaml.dump(document) if fmt == "yaml" else formats.dump_json(document)


def prepare(tree: dict, fmt: str) -> dict:
    """The tree as the store holds its values: JSON numbers as sops' float64s, INI and dotenv values as strings."""
    if fmt in ("json", "binary"):
        return _json_numbers(tree)
    if fmt == "dotenv":
        return {key: value if isinstance(key, Comment) else formats.text_value(value) for key, value in tree.items()}
    return formats.ini_values(tree) if fmt == "ini" else tree


def _json_numbers(node):
    if isinstance(node, dict):
        return {key: _json_numbers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_json_numbers(item) for item in node]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return formats.json_number(node)
    return node


# ---- INI metadata: the [sops] section, flattened as for dotenv ------------------------------------------------------


def _split_ini_metadata(tree: dict) -> tuple[dict, dict | None]:
    section = tree.pop(METADATA_KEY, None)
    if section is None:
        return tree, None
    flat = {k: v.replace("\\n", "\n") for k, v in section.items() if not isinstance(k, Comment)}
    return tree, _metadata_of(flat)


def _flat_metadata(metadata: dict) -> dict:
    """The metadata as the flat text values of the INI [sops] section and the dotenv sops_ lines."""
    return {key: _dotenv_text(value) for key, value in flatten(metadata).items() if value is not None}


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
    return body, _metadata_of(flat)


def _metadata_of(flat: dict) -> dict:
    """The metadata of its flattened form, with sops' DecodeNonStrings."""
    metadata = unflatten(flat)
    if "mac_only_encrypted" in metadata:
        metadata["mac_only_encrypted"] = metadata["mac_only_encrypted"] == "true"
    if "shamir_threshold" in metadata:
        metadata["shamir_threshold"] = int(metadata["shamir_threshold"])
    return metadata


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
        lines += [f"{_DOTENV_PREFIX}{key}={text}" for key, text in sorted(_flat_metadata(metadata).items())]
    return "".join(line + "\n" for line in lines)


def _dotenv_text(value) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return str(value).replace("\n", "\\n")


def flatten(node, prefix: str = "") -> dict:
    """sops' flattening of nested metadata for dotenv: maps as __map_<key>, lists as __list_<n>."""
    if isinstance(node, dict):
        named = ((f"{prefix}{_MAP if prefix else ''}{key}", value) for key, value in node.items())
    elif isinstance(node, list):
        named = ((f"{prefix}{_LIST}{index}", value) for index, value in enumerate(node))
    else:
        return {prefix: node}
    return {path: leaf for name, value in named for path, leaf in flatten(value, name).items()}


def unflatten(flat: dict) -> dict:
    """The inverse of flatten."""
    root: dict = {}
    for path, value in flat.items():
        tokens = _tokens(path)
        node = root
        for token, following in zip(tokens, tokens[1:], strict=False):
            child = _get(node, token)
            if child is None:
                child = [] if isinstance(following, int) else {}
                _put(node, token, child)
            node = child
        _put(node, tokens[-1], value)
    return root


def _tokens(path: str) -> list:
    parts = re.split(f"({_MAP}|{_LIST})", path)
    tokens = [parts[0]]
    for index in range(1, len(parts) - 1, 2):
        marker, text = parts[index], parts[index + 1]
        tokens.append(int(text) if marker == _LIST else text)
    return tokens


def _get(node, token):
    if isinstance(node, list):
        return node[token] if token < len(node) else None
    return node.get(token)


def _put(node, token, value):
    if isinstance(node, list):
        node.extend([None] * (token + 1 - len(node)))
    node[token] = value

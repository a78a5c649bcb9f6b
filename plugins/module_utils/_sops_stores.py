# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The three sops stores nerv.homelab needs: YAML, JSON and dotenv, read and written as sops 3.x does.

A store turns text into (tree, metadata) and back. Trees are dicts in document order; dotenv comments are
``Comment`` keys. YAML comments are not kept (PyYAML drops them): they are not part of the MAC, so files stay
valid, but a rewritten YAML file loses them (docs/sops.md says so).
"""

from __future__ import annotations

import json
import re

from ansible_collections.nerv.homelab.plugins.module_utils._age import SopsError

try:
    import yaml
except ImportError:
    yaml = None

METADATA_KEY = "sops"
_DOTENV_PREFIX = "sops_"
_MAP, _LIST = "__map_", "__list_"


class Comment:
    """A comment line of a dotenv file (its text after '#'); compared by identity, so usable as a dict key."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Comment({self.text!r})"


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
    tree = {"yaml": _load_yaml, "json": _load_json, "dotenv": _load_dotenv}[fmt](text)
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
    return _dump_yaml(document) if fmt == "yaml" else json.dumps(document, indent="\t", ensure_ascii=False) + "\n"


# ---- YAML ------------------------------------------------------------------------------------------------------

if yaml is not None:

    class _Loader(yaml.SafeLoader):
        """SafeLoader that keeps timestamps as the strings they are in the file (sops never converts them)."""

    _Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _load_yaml(text: str):
    if yaml is None:
        raise SopsError("the Python library PyYAML is required for YAML sops files")
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except yaml.YAMLError as exc:
        raise SopsError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if len(documents) > 1:
        raise SopsError("YAML files with several documents are not supported: keep one document per sops file")
    tree = documents[0] if documents else {}
    if not isinstance(tree, dict):
        raise SopsError("a sops YAML file must hold a mapping at the top level")
    _check_keys(tree)
    return tree


def _check_keys(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise SopsError(f"key {key!r} under '{path or '/'}' is not a string: sops supports string keys only")
            _check_keys(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            _check_keys(item, path)


def _dump_yaml(document: dict) -> str:
    """YAML laid out as sops (go-yaml v3, indent 4) writes it, so a file sops wrote is rewritten byte for byte."""
    return "".join(_yaml_mapping(document, 0)) if document else "{}\n"


def _yaml_mapping(node: dict, indent: int, first_prefix: str = ""):
    for index, (key, value) in enumerate(node.items()):
        lead = first_prefix if index == 0 and first_prefix else " " * indent
        yield from _yaml_entry(f"{lead}{_yaml_scalar(key)}:", value, indent)


def _yaml_entry(head: str, value, indent: int, block_indent: int | None = None):
    if isinstance(value, dict) and value:
        yield head + "\n"
        yield from _yaml_mapping(value, indent + 4)
    elif isinstance(value, list) and value:
        yield head + "\n"
        yield from _yaml_sequence(value, indent + 4)
    elif isinstance(value, str) and "\n" in value:
        yield from _yaml_block(head, value, indent if block_indent is None else block_indent)
    else:
        yield f"{head} {_yaml_scalar(value)}\n"


def _yaml_sequence(items: list, indent: int):
    for item in items:
        if isinstance(item, dict) and item:
            # the item's first key follows "- "; the others align with it
            yield from _yaml_mapping_item(item, indent)
        elif isinstance(item, list) and item:
            yield " " * indent + "-\n"
            yield from _yaml_sequence(item, indent + 4)
        else:
            yield from _yaml_entry(" " * indent + "-", item, indent)


def _yaml_mapping_item(item: dict, indent: int):
    inner = indent + 2
    for index, (key, value) in enumerate(item.items()):
        lead = " " * indent + "- " if index == 0 else " " * inner
        # go-yaml indents a block scalar of a sequence item from the dash, not from the key
        yield from _yaml_entry(f"{lead}{_yaml_scalar(key)}:", value, inner, block_indent=indent)


def _yaml_block(head: str, value: str, indent: int):
    chomp = "" if value.endswith("\n") and not value.endswith("\n\n") else ("-" if not value.endswith("\n") else "+")
    yield f"{head} |{chomp}\n"
    body = value[:-1] if value.endswith("\n") else value
    for line in body.split("\n"):
        yield (" " * (indent + 4) + line if line else "") + "\n"


def _yaml_scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    text = str(value)
    plain = yaml.safe_dump(text, default_flow_style=True, width=2**20, allow_unicode=True)
    # PyYAML quotes whatever would not read back as this string; go-yaml then uses double quotes.
    if plain.endswith("\n...\n"):
        plain = plain[: -len("\n...\n")]
    plain = plain.rstrip("\n")
    if text and plain == text:
        return text
    return json.dumps(text, ensure_ascii=False)


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

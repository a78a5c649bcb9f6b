# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sops stores: which one a file uses, and its text read into (tree, metadata) and written back through it.

Trees are dicts in document order; comments are ``Comment`` keys (and, in YAML sequences, ``Comment`` items).
The YAML store is yaml_store.py; JSON, binary, INI and dotenv are text_stores.py.
"""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import text_stores
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import yaml_store as sops_yaml
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.text_stores import METADATA_KEY
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.yaml_store import Comment

FORMATS = ("yaml", "json", "dotenv", "ini", "binary")
# sops' FormatForPath: these suffixes (case as written), anything else is a binary file
_SUFFIXES = ((".yaml", "yaml"), (".yml", "yaml"), (".json", "json"), (".env", "dotenv"), (".ini", "ini"))
# each store's (load, dump): dotenv and INI flatten the metadata into the file's own keys, the others keep it as
# the key "sops" of the tree
_FLAT = {
    "dotenv": (text_stores.load_dotenv, text_stores.dump_dotenv),
    "ini": (text_stores.load_ini, text_stores.dump_ini),
}
_TREE = {
    "yaml": (sops_yaml.load, sops_yaml.dump),
    "json": (text_stores.load_json, text_stores.dump_json),
    "binary": (text_stores.load_binary, text_stores.dump_json),
}


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
    if fmt in _FLAT:
        return _FLAT[fmt][0](text)
    tree = _TREE[fmt][0](text)
    metadata = tree.pop(METADATA_KEY, None) if isinstance(tree, dict) else None
    return tree, metadata


def dump(tree: dict, metadata: dict | None, fmt: str):
    """The file text of a tree, with the sops metadata last as sops writes it (None: a plain file; for a plain
    binary file its content, bytes when it is not UTF-8)."""
    if fmt in _FLAT:
        return _FLAT[fmt][1](tree, metadata)
    if fmt == "binary":
        content = text_stores.binary_data(tree)
        if metadata is None:
            return content
    document = dict(tree) if metadata is None else {**tree, METADATA_KEY: metadata}
    return _TREE[fmt][1](document)


def prepare(tree: dict, fmt: str) -> dict:
    """The tree as the store holds its values: JSON numbers as sops' float64s, INI and dotenv values as strings."""
    if fmt in ("json", "binary"):
        return _json_numbers(tree)
    if fmt == "dotenv":
        return {
            key: value if isinstance(key, Comment) else text_stores.text_value(value) for key, value in tree.items()
        }
    return text_stores.ini_values(tree) if fmt == "ini" else tree


def _json_numbers(node):
    if isinstance(node, dict):
        return {key: _json_numbers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_json_numbers(item) for item in node]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return text_stores.json_number(node)
    return node

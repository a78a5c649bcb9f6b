# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SOPS files in Python, compatible with sops 3.x and age recipients.

Values are AES-256-GCM under a random 32-byte data key with a 32-byte nonce and the value's key path
(``a:b:``) as additional data; a SHA-512 MAC over the plaintext leaves, encrypted with ``lastmodified`` as
additional data, guards the whole tree; the data key is wrapped for every age recipient. Re-encrypting an
unchanged value reuses its nonce, as sops does, so a file changes only where its values change.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import re
from dataclasses import dataclass, field

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import (
    Identity,
    SopsError,
    check_recipient,
    require_libraries,
    unwrap_data_key,
    wrap_data_key,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import stores
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.text_stores import BinaryText, JsonInt, go_float
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.yaml_store import Timestamp, parse_timestamp

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:  # require_libraries() reports it (secrets.age's CRYPTOGRAPHY_IMPORT_ERROR)
    AESGCM = InvalidTag = None

SOPS_VERSION = "3.9.4"  # the sops release whose format these files follow (written into sops.version)
DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"
RULE_KEYS = ("unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex")
_UNSUPPORTED_META = ("unencrypted_comment_regex", "encrypted_comment_regex")
_NONCE = 32
_ENC = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
# sops seeds the MAC with sha256(b"sops") when mac_only_encrypted is set, so the two MAC kinds never collide.
_MAC_ONLY_ENCRYPTED_SEED = hashlib.sha256(b"sops").digest()
# the key sources sops knows besides age, as its metadata and .sops.yaml name them
_KEY_SOURCES = {
    "pgp": "PGP",
    "kms": "AWS KMS",
    "gcp_kms": "GCP KMS",
    "azure_kv": "Azure Key Vault",
    "azure_keyvault": "Azure Key Vault",
    "hc_vault": "HashiCorp Vault",
    "hc_vault_transit_uri": "HashiCorp Vault",
    "hckms": "HuaweiCloud KMS",
}
_INDEX_PART = re.compile(r"""\[(?:"([^"]*)"|'([^']*)'|(-?[0-9]+))\]""")
_INDEX_PATH = re.compile(rf"(?:{_INDEX_PART.pattern})+")


# ---- values ----------------------------------------------------------------------------------------------------


def value_bytes(value) -> tuple[str, bytes]:
    """(sops type, plaintext bytes) of a leaf, as sops' ToBytes and cipher encode them."""
    if isinstance(value, stores.Comment):
        return "comment", value.text.encode()
    if isinstance(value, bool):
        return "bool", b"True" if value else b"False"
    if isinstance(value, JsonInt):
        return "float", go_float(float(value)).encode()
    if isinstance(value, BinaryText):
        return "str", bytes(value)
    if isinstance(value, int):
        return "int", str(value).encode()
    if isinstance(value, float):
        return "float", go_float(value).encode()
    if isinstance(value, bytes):
        return "bytes", value
    if isinstance(value, Timestamp):
        # sops 3.10+ keeps a YAML date or timestamp as a Go time.Time: MarshalText, RFC 3339 with nanoseconds
        return "time", value.encode()
    if isinstance(value, str):
        return "str", value.encode()
    raise SopsError(f"a value of type {type(value).__name__} cannot be stored in a sops file")


def _typed(kind: str, raw: bytes, where: str):
    if kind == "str":
        return _text(raw)
    if kind == "bytes":
        return raw
    if kind not in _DECODERS:
        raise SopsError(f"the value at '{where}' has an unknown sops type {kind!r}")
    try:
        return _DECODERS[kind](raw.decode("utf-8", "replace"))
    except ValueError:
        raise SopsError(f"the value at '{where}' does not decode as its type {kind}") from None


def _text(raw: bytes):
    """A str value; one that is not UTF-8 (a binary file's content) stays its bytes, so its MAC still verifies."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return BinaryText(raw)


def _time(text: str):
    stamp = parse_timestamp(text)
    if stamp is None or "T" not in text:
        raise ValueError(text)
    return stamp


def _go_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)


# how each sops type but str and bytes reads back from its text
_DECODERS = {"int": int, "int64": int, "float": float, "bool": _go_bool, "comment": stores.Comment, "time": _time}


def encrypt_value(value, key: bytes, aad: str, nonce: bytes | None = None) -> str:
    """ENC[AES256_GCM,...] of one value; the empty string stays empty, as in sops."""
    kind, plain = value_bytes(value)
    if not plain and kind in ("str", "bytes", "comment"):
        return ""
    nonce = nonce or os.urandom(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, plain, aad.encode())
    parts = (base64.b64encode(sealed[:-16]), base64.b64encode(nonce), base64.b64encode(sealed[-16:]))
    return "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]".format(*(p.decode() for p in parts), kind)


def decrypt_value(text: str, key: bytes, aad: str) -> tuple[object, bytes]:
    """(value, nonce) of an ENC[...] string; SopsError naming the path when it does not open."""
    if text == "":
        return "", b""
    match = _ENC.match(text)
    if not match:
        raise SopsError(f"the value at '{aad}' is not in sops' ENC[AES256_GCM,...] format")
    try:
        data, nonce, tag = (base64.b64decode(match.group(i), validate=True) for i in (1, 2, 3))
    except ValueError:
        raise SopsError(f"the value at '{aad}' has broken base64") from None
    try:
        plain = AESGCM(key).decrypt(nonce, data + tag, aad.encode())
    except (InvalidTag, ValueError):
        raise SopsError(f"the value at '{aad}' does not decrypt with the file's data key (tampered or moved)") from None
    return _typed(match.group(4), plain, aad), nonce


# ---- which values are encrypted ----------------------------------------------------------------------------------


@dataclass
class Rules:
    """The file's crypt rule (at most one of RULE_KEYS) and mac_only_encrypted."""

    kind: str = "unencrypted_suffix"
    value: str = DEFAULT_UNENCRYPTED_SUFFIX
    mac_only_encrypted: bool = False

    @classmethod
    def from_metadata(cls, meta: dict) -> Rules:
        for name in _UNSUPPORTED_META:
            if meta.get(name):
                raise SopsError(f"sops.{name} is not supported by nerv.homelab; use encrypted_regex instead")
        given = [(k, meta[k]) for k in RULE_KEYS if meta.get(k)]
        if len(given) > 1:
            raise SopsError(
                f"a file may use only one of {', '.join(RULE_KEYS)}; it has {', '.join(name for name, _value in given)}"
            )
        kind, value = given[0] if given else ("unencrypted_suffix", DEFAULT_UNENCRYPTED_SUFFIX)
        rules = cls(kind, str(value), bool(meta.get("mac_only_encrypted")))
        rules.check()
        return rules

    def check(self) -> None:
        if self.kind not in RULE_KEYS:
            raise SopsError(f"unknown crypt rule {self.kind!r}: use one of {', '.join(RULE_KEYS)}")
        if self.kind.endswith("regex"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise SopsError(f"{self.kind} {self.value!r} is not a regular expression ({exc})") from None

    def encrypts(self, path: list) -> bool:
        """Whether the leaf at path is encrypted: the rule applies to any component of the path."""
        if self.kind == "unencrypted_suffix":
            return not any(p.endswith(self.value) for p in path)
        if self.kind == "encrypted_suffix":
            return any(p.endswith(self.value) for p in path)
        hit = any(re.search(self.value, p) for p in path)
        return not hit if self.kind == "unencrypted_regex" else hit

    def metadata(self) -> dict:
        meta = {self.kind: self.value}
        if self.mac_only_encrypted:
            meta["mac_only_encrypted"] = True
        return meta


# ---- walking the tree ------------------------------------------------------------------------------------------


def _walk(node, path: list, visit):
    """A copy of node with every leaf replaced by visit(leaf, path); None stays None, as sops skips it."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if isinstance(key, stores.Comment):
                seen = visit(key, path)
                out[seen if isinstance(seen, stores.Comment) else stores.Comment(seen)] = None
            else:
                out[key] = _walk(value, [*path, key], visit)
        return out
    if isinstance(node, list):
        # list items add no index to the path (sops' additional data is the keys only); an encrypted comment of a
        # sequence becomes an item ENC[...,type:comment], as sops writes it
        return [_walk(item, path, visit) for item in node]
    if node is None:
        return None
    return visit(node, path)


def _aad(path: list) -> str:
    return ":".join(path) + ":"


class _Crypt:
    """One pass over a tree with a data key: encrypts or decrypts the leaves the rules select and hashes the MAC.
    nonces, (additional data, value bytes) -> nonce, is the document's: what open reads, seal reuses."""

    def __init__(self, key: bytes, rules: Rules, nonces: dict):
        self.key, self.rules, self.nonces = key, rules, nonces
        self.mac = hashlib.sha512()
        if rules.mac_only_encrypted:
            self.mac.update(_MAC_ONLY_ENCRYPTED_SEED)

    def _hash(self, value, encrypted: bool) -> None:
        if isinstance(value, stores.Comment):
            return
        if encrypted or not self.rules.mac_only_encrypted:
            self.mac.update(value_bytes(value)[1])

    def encrypt_leaf(self, value, path):
        encrypted = self.rules.encrypts(path)
        self._hash(value, encrypted)
        return self.seal(value, _aad(path)) if encrypted else value

    def decrypt_leaf(self, value, path):
        encrypted = self.rules.encrypts(path)
        if isinstance(value, stores.Comment):
            if not encrypted:
                return value
            try:
                return self.open(value.text, _aad(path))
            except SopsError:
                return value  # a comment written before sops encrypted comments: keep it as it is
        if encrypted:
            if not isinstance(value, str):
                raise SopsError(
                    f"the value at '{_aad(path)}' should be encrypted but is a plain {type(value).__name__}"
                )
            value = self.open(value, _aad(path))
        self._hash(value, encrypted)
        return value

    def open(self, text: str, aad: str):
        """The value of an ENC[...] text, its nonce kept so that re-encrypting it unchanged gives the same text."""
        plain, nonce = decrypt_value(text, self.key, aad)
        self.nonces[(aad, value_bytes(plain))] = nonce
        return plain

    def seal(self, value, aad: str) -> str:
        """ENC[...] of value, with the nonce it was opened with when it is unchanged."""
        return encrypt_value(value, self.key, aad, self.nonces.get((aad, value_bytes(value))))

    def digest(self) -> str:
        return self.mac.hexdigest().upper()


# ---- key sources -----------------------------------------------------------------------------------------------


def check_key_sources(node: dict, where: str) -> None:
    """Refuse, naming the feature, sops metadata or a creation rule that needs more than one group of age keys."""
    groups = node.get("key_groups") or []
    if not isinstance(groups, list) or not all(isinstance(group, dict) for group in groups):
        raise SopsError(f"{where} has key_groups that are not a list of mappings")
    threshold = _threshold(node.get("shamir_threshold"), where)
    if len(groups) > 1 or threshold > 1:
        raise SopsError(
            f"{where} uses Shamir secret sharing (key groups: {len(groups) or 1}, shamir_threshold: {threshold}): "
            "nerv.homelab needs all age keys in one key group"
        )
    for entry in (node, *groups):
        if entry.get("merge"):
            raise SopsError(f"{where} merges key groups (merge); nerv.homelab needs all age keys in one key group")
        for name, feature in _KEY_SOURCES.items():
            if entry.get(name):
                raise SopsError(f"{where} has {feature} keys ({name}); nerv.homelab handles age recipients only")


def age_keys_of(node: dict) -> dict:
    """Where sops metadata or a creation rule keeps its age keys: in its one key group, else in itself."""
    groups = node.get("key_groups")
    return groups[0] if groups else node


def _threshold(value, where: str) -> int:
    # dotenv metadata holds every value as text
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise SopsError(f"{where} has a shamir_threshold that is not a number") from None


# ---- documents -------------------------------------------------------------------------------------------------


def now_rfc3339() -> str:
    # timezone.utc, not datetime.UTC: module_utils stay importable on the older Pythons of managed nodes
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


@dataclass
class Document:
    """An encrypted sops file: its store, encrypted tree and metadata; ``decrypt`` fills the plaintext side."""

    fmt: str
    tree: dict
    meta: dict
    plain: dict | None = None
    data_key: bytes | None = field(default=None, repr=False)
    nonces: dict = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, text: str, fmt: str, where: str = "the file") -> Document:
        require_libraries()
        tree, meta = stores.load(text, fmt)
        if not isinstance(meta, dict):
            raise SopsError(f"{where} is not a sops file: it has no sops metadata")
        document = cls(fmt, tree, meta)
        document.check_metadata(where)
        return document

    def check_metadata(self, where: str) -> None:
        check_key_sources(self.meta, where)
        for name in ("lastmodified", "mac"):
            if not isinstance(self.meta.get(name), str):
                raise SopsError(f"{where} has no sops.{name}: the sops metadata is damaged")
        Rules.from_metadata(self.meta)

    @property
    def stanzas(self) -> list:
        return list(age_keys_of(self.meta).get("age") or [])

    @property
    def recipients(self) -> list:
        return [str(s.get("recipient")) for s in self.stanzas]

    def decrypt(self, identities: list[Identity]) -> dict:
        """The plaintext tree; SopsError when no identity opens the data key or the MAC does not verify."""
        self.data_key = unwrap_data_key(self.stanzas, identities)
        crypt = _Crypt(self.data_key, Rules.from_metadata(self.meta), self.nonces)
        plain = stores.prepare(_walk(self.tree, [], crypt.decrypt_leaf), self.fmt)
        if crypt.open(self.meta["mac"], self.meta["lastmodified"]) != crypt.digest():
            raise SopsError("MAC mismatch: the file was changed outside sops (or tampered with); refused")
        self.plain = plain
        return plain

    def encrypt(self, plain: dict, touch: bool = True) -> None:
        """Encrypt plain into this document with its data key (nonces of unchanged values kept), new MAC."""
        plain = stores.prepare(plain, self.fmt)
        crypt = _Crypt(self.data_key, Rules.from_metadata(self.meta), self.nonces)
        self.tree = _walk(plain, [], crypt.encrypt_leaf)
        if touch:
            self.meta["lastmodified"] = now_rfc3339()
        self.meta["mac"] = crypt.seal(crypt.digest(), self.meta["lastmodified"])
        self.plain = plain

    def set_recipients(self, recipients: list) -> bool:
        """Wrap the data key for exactly these recipients; stanzas of kept recipients stay as they are."""
        wanted = _unique(check_recipient(r) for r in recipients)
        if not wanted:
            raise SopsError("a sops file needs at least one age recipient")
        if set(wanted) == set(self.recipients):
            return False
        old = {str(s.get("recipient")): s for s in self.stanzas}
        stanzas = [old.get(r) or {"recipient": r, "enc": wrap_data_key(self.data_key, r)} for r in wanted]
        self._store_stanzas(stanzas)
        return True

    def _store_stanzas(self, stanzas: list) -> None:
        age_keys_of(self.meta)["age"] = stanzas

    def rotate(self) -> None:
        """A new data key: every value re-encrypted (new nonces), wrapped anew for the same recipients."""
        plain = self.plain
        self.data_key, self.nonces = os.urandom(32), {}
        self._store_stanzas([{"recipient": r, "enc": wrap_data_key(self.data_key, r)} for r in self.recipients])
        self.encrypt(plain)

    def text(self) -> str:
        return stores.dump(self.tree, self.meta, self.fmt)


def new_document(plain: dict, fmt: str, recipients: list, rules: Rules) -> Document:
    """A new encrypted document for plain, with a fresh data key, in the metadata layout sops writes."""
    require_libraries()
    rules.check()
    wanted = _unique(check_recipient(r) for r in recipients)
    if not wanted:
        raise SopsError("no age recipient to encrypt to: give recipients or a .sops.yaml creation rule")
    data_key = os.urandom(32)
    stanzas = [{"recipient": r, "enc": wrap_data_key(data_key, r)} for r in wanted]
    meta = {"age": stanzas, "lastmodified": now_rfc3339(), "mac": "", **rules.metadata(), "version": SOPS_VERSION}
    document = Document(fmt, {}, meta, data_key=data_key)
    document.encrypt(plain, touch=False)
    return document


def _unique(items) -> list:
    return list(dict.fromkeys(items))


# ---- paths inside a tree -----------------------------------------------------------------------------------------


def split_key(key) -> list:
    """A key path as a list: 'a.b' (nested), sops' index syntax '["a.b"]["c"]' (a key may hold dots), or a list."""
    if isinstance(key, (list, tuple)):
        parts = list(key)
    elif str(key).startswith("["):
        parts = _index_parts(str(key))
    else:
        parts = str(key).split(".")
    if not parts or any(not isinstance(p, str) or p == "" for p in parts):
        raise SopsError(f'key {key!r} is not a key path: write a.b.c, ["a.b"]["c"] or a list of key names')
    return parts


def _index_parts(key: str) -> list:
    """The names of sops' --extract / set path syntax; a list index ([0]) is refused, as no store here needs one."""
    if not _INDEX_PATH.fullmatch(key):
        raise SopsError(f'key {key!r} is not in sops\' index syntax: write ["a.b"]["c"]')
    parts = []
    for double, single, number in _INDEX_PART.findall(key):
        if number:
            raise SopsError(f"key {key!r} indexes a list ([{number}]): only mapping keys can be addressed")
        parts.append(double or single)
    return parts


def join_key(parts) -> str:
    """A key path as text that split_key reads back: dotted, or sops' index syntax when a name holds a dot."""
    if all(part and "." not in part and not part.startswith("[") for part in parts):
        return ".".join(parts)
    return "".join(f"['{p}']" if '"' in p else f'["{p}"]' for p in parts)


def get_path(tree: dict, parts: list):
    node = tree
    for index, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            raise SopsError(f"key '{join_key(parts[: index + 1])}' is not in the file")
        node = node[part]
    return node


def set_path(tree: dict, parts: list, value) -> dict:
    """A copy of tree with value at parts (maps made on the way); the order of existing keys is kept."""
    out = dict(tree)
    if len(parts) == 1:
        out[parts[0]] = value
        return out
    child = out.get(parts[0], {})
    if not isinstance(child, dict):
        raise SopsError(f"key '{parts[0]}' holds a {type(child).__name__}, not a mapping")
    out[parts[0]] = set_path(child, parts[1:], value)
    return out


def remove_path(tree: dict, parts: list) -> dict:
    out = dict(tree)
    if len(parts) == 1:
        out.pop(parts[0], None)
        return out
    child = out.get(parts[0])
    if isinstance(child, dict):
        out[parts[0]] = remove_path(child, parts[1:])
    return out

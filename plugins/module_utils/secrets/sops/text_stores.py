# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The JSON, binary, INI and dotenv stores as sops 3.11 reads and writes them.

JSON is read as Go's encoding/json reads it for sops: every number is a float64 (an integral one is kept here as a
``JsonInt``, so it renders ``42``, not ``42.0``, and is still typed and hashed as sops' float), and written as
sops writes it: tab indent, Go's number and string escaping (``<`` is ``\\u003c``). A binary file is any content,
not necessarily UTF-8, kept as the one value ``data`` of a JSON file. INI is read and written as gopkg.in/ini.v1
does for sops: sections are the top-level keys (``DEFAULT`` holds the keys before the first section), every value
is a string, a comment belongs to the key after it (a section's to its header) and is kept after that key in the
tree, as sops keeps it, and the metadata is the flattened ``[sops]`` section. A dotenv file is ``KEY=value`` lines
of strings (only ``\\n`` escaped), its metadata the flattened ``sops_`` lines.
"""

from __future__ import annotations

import json
import math
import re

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.yaml_store import Comment, go_format_float

METADATA_KEY = "sops"
INI_DEFAULT = "DEFAULT"
_DOTENV_PREFIX = "sops_"
_MAP, _LIST = "__map_", "__list_"
_INI_WS = " \t\n\v\f\r\x85\xa0"  # Go's unicode.IsSpace, as far as INI files use it
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_HTML = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')


class JsonInt(int):
    """An integral JSON number: sops holds it as a float64, so it is typed ``float`` and hashed as Go prints it."""


class BinaryText(bytes):
    """A sops ``str`` value that is not UTF-8 (the content of a binary file): hashed and encrypted as its bytes."""


def go_float(value: float) -> str:
    """A float as Go's strconv.FormatFloat(v, 'f', -1, 64), which sops MACs and encrypts; +Inf, -Inf and NaN as Go
    spells them."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return go_format_float(value, "f")


# ---- JSON ------------------------------------------------------------------------------------------------------


def json_number(value):
    """A JSON number as sops holds it: the float64 nearest to it, as a JsonInt when Go prints it without '.' or
    an exponent (integral and below 1e21; -0 stays a float, to keep its sign)."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if math.isinf(number) or math.isnan(number):
        raise SopsError("a JSON number is out of the range of a float64, which sops cannot hold")
    if number.is_integer() and abs(number) < 1e21 and (number or math.copysign(1, number) > 0):
        return JsonInt(go_float(number))
    return number


def load_json(text: str) -> dict:
    try:
        tree = json.loads(text, parse_int=json_number, parse_float=json_number, parse_constant=_no_constant)
    except ValueError as exc:
        raise SopsError(f"not valid JSON: {exc}") from None
    if not isinstance(tree, dict):
        raise SopsError("sops only supports JSON files with an object at the top level")
    return tree


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def dump_json(document: dict) -> str:
    """The text sops writes: Go's json.Indent with a tab, after json.Marshal of every key and value."""
    return _json_value(document, "") + "\n"


def _json_value(value, indent: str) -> str:
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if not isinstance(k, Comment)]
        inner = indent + "\t"
        body = ",".join(f"\n{inner}{json_string(str(k))}: {_json_value(v, inner)}" for k, v in items)
        return "{" + body + f"\n{indent}}}" if items else "{}"
    if isinstance(value, list):
        items = [v for v in value if not isinstance(v, Comment)]
        inner = indent + "\t"
        body = ",".join(f"\n{inner}{_json_value(v, inner)}" for v in items)
        return "[" + body + f"\n{indent}]" if items else "[]"
    return _json_scalar(value)


def _json_scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, bytes):
        return json_string(value.decode("utf-8", "replace"))  # Go's json.Marshal writes invalid UTF-8 as U+FFFD
    return json_string(str(value))


def json_float(value: float) -> str:
    """A float as Go's encoding/json writes it: 'f' digits, or an exponent below 1e-6 and from 1e21 (1.5e-7)."""
    if math.isinf(value) or math.isnan(value):
        raise SopsError("JSON cannot hold infinities or NaN")
    if value == 0 or 1e-6 <= abs(value) < 1e21:
        return go_float(value)
    # outside that range FormatFloat 'g' writes the exponent form; encoding/json drops a leading 0 of a negative one
    return go_format_float(value, "g").replace("e-0", "e-")


def json_string(text: str) -> str:
    """A string as Go's json.Marshal writes it (HTML characters and U+2028/U+2029 escaped too)."""
    return '"' + _JSON_HTML.sub(_json_escape, text) + '"'


def _json_escape(match) -> str:
    char = match.group(0)
    return _JSON_ESCAPES.get(char) or f"\\u{ord(char):04x}"


# ---- binary ----------------------------------------------------------------------------------------------------


def load_binary(text: str) -> dict:
    """A binary file's tree: the JSON of an encrypted one, else the whole content as ``data``."""
    if text.lstrip().startswith("{"):
        try:
            tree = load_json(text)
        except SopsError:
            tree = None
        if isinstance(tree, dict) and "sops" in tree:
            return tree
    return {"data": text}


def binary_data(tree: dict):
    """The content of a binary file's tree (str or bytes); SopsError unless the tree is exactly ``data``."""
    keys = [k for k in tree if not isinstance(k, Comment)]
    if keys != ["data"] or not isinstance(tree["data"], (str, bytes)):
        raise SopsError("a binary sops file holds one value, 'data', with the file's content")
    return tree["data"]


# ---- INI -------------------------------------------------------------------------------------------------------


def ini_values(tree: dict) -> dict:
    """The tree with every value of a section as the string sops' INI store holds."""
    out = {}
    for name, section in tree.items():
        if isinstance(section, dict):
            for key, value in section.items():
                if isinstance(value, (dict, list)):
                    raise SopsError(f"INI values are strings: '{name}.{key}' is a {type(value).__name__}")
            section = {key: value if isinstance(key, Comment) else text_value(value) for key, value in section.items()}
        out[name] = section
    return out


def text_value(value):
    """A scalar as the string a store that reads strings only (INI, dotenv) gives back: true/false, a float as
    sops prints it, None empty; so a value set here reads back, and hashes, the same."""
    if isinstance(value, (str, bytes, dict, list)):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return go_text_float(value) if isinstance(value, float) else str(value)


def go_text_float(value: float) -> str:
    """A float as sops' ValueToString prints it in INI and dotenv: strconv.FormatFloat(v, 'G', -1, 64), with
    '.0' after a whole number (5.0, 1.5, 1E-07, 1.234567E+06)."""
    text = go_float(value) if math.isnan(value) or math.isinf(value) else go_format_float(value, "g").upper()
    return text if any(c in text for c in ".EIN") else text + ".0"


class _IniReader:
    """gopkg.in/ini.v1's parser with the options sops loads INI with (the defaults)."""

    def __init__(self, text: str):
        self.lines = text.removeprefix("\ufeff").splitlines(keepends=True)
        self.at = 0
        self.comment = ""
        self.sections = {INI_DEFAULT: {}}
        self.name = INI_DEFAULT
        self.comments: dict = {}

    def error(self, what: str):
        return SopsError(f"not valid INI: line {self.at} {what}")

    def next_line(self):
        if self.at >= len(self.lines):
            return None
        self.at += 1
        return self.lines[self.at - 1]

    def read(self) -> dict:
        while (raw := self.next_line()) is not None:
            line = raw.lstrip(_INI_WS)
            if not line:
                continue
            if line[0] in "#;":
                self.comment += line
            elif line[0] == "[":
                self.read_section(line)
            else:
                self.read_key(line)
        return {name: self.with_comments(name, keys) for name, keys in self.sections.items()}

    def read_section(self, line: str) -> None:
        close = line.rfind("]")
        if close == -1:
            raise self.error("opens a section it does not close")
        name = line[1:close]
        if not name:
            raise self.error("has an empty section name")
        self.comment += _inline_comment(line[close + 1 :])
        self.open_section(name)
        self.comments[(name, None)] = self.take_comment()

    def open_section(self, name: str) -> None:
        """A header starts a section of its own, as in sops (ini.v1 with non-unique sections); an explicit
        [DEFAULT] takes the place of the implicit one when that holds nothing."""
        if name == INI_DEFAULT and not self.sections.get(INI_DEFAULT):
            self.sections.pop(INI_DEFAULT, None)
        elif name in self.sections:
            raise self.error(f"repeats section [{name}]: sops keeps each as a section of its own; merge them into one")
        self.name = name
        self.sections[name] = {}

    def read_key(self, line: str) -> None:
        key, offset = _ini_key(line)
        if key is None:
            raise self.error("has no '=' or ':' after a key name")
        value = self.read_value(line[offset:])
        self.sections[self.name][key] = value
        self.comments[(self.name, key)] = self.take_comment()

    def take_comment(self) -> str:
        text, self.comment = self.comment.strip(_INI_WS), ""
        if text[:1] == ";":
            return text.lstrip("; ")
        return text.lstrip("# ") if text[:1] == "#" else text

    def read_value(self, raw: str) -> str:
        line = raw.lstrip(_INI_WS)
        if not line:
            return ""
        quote = '"""' if len(line) > 3 and line.startswith('"""') else "`" if line[0] == "`" else ""
        if quote:
            end = line.rfind(quote, len(quote))
            return line[len(quote) : end] if end != -1 else self.read_multiline(line[len(quote) :], quote)
        line = line.strip(_INI_WS)
        if line.endswith("\\"):
            return self.read_continuation(line[:-1])
        cut = _first_of(line, "#;")
        if cut != -1:
            self.comment += line[cut:]
            line = line[:cut].strip(_INI_WS)
        for mark in "'\"":
            if len(line) >= 2 and line[0] == line[-1] == mark and line.count(mark) == 2:
                return line[1:-1]
        return line

    def read_multiline(self, value: str, quote: str) -> str:
        while (following := self.next_line()) is not None:
            end = following.rfind(quote)
            if end != -1:
                self.comment += _inline_comment(following[end:]).strip(_INI_WS)
                return value + following[:end]
            value += following
        raise self.error(f"opens a {quote} value it does not close")

    def read_continuation(self, value: str) -> str:
        while (following := self.next_line()) is not None:
            following = following.strip(_INI_WS)
            if not following:
                break
            value += following
            if not value.endswith("\\"):
                break
            value = value[:-1]
        return value

    def with_comments(self, name: str, keys: dict) -> dict:
        """A section as sops' tree has it: its comment first, each key's comment after the key."""
        out = {}
        if self.comments.get((name, None)):
            out[Comment(self.comments[(name, None)])] = None
        for key, value in keys.items():
            out[key] = value
            if self.comments.get((name, key)):
                out[Comment(self.comments[(name, key)])] = None
        return out


def _inline_comment(text: str):
    at = _first_of(text, "#;")
    return text[at:] if at != -1 else ""


def _ini_key(line: str):
    """(key name, offset of its value) as ini.v1's readKeyName finds them, or (None, 0)."""
    quote = _key_quote(line)
    if quote:
        end = line.find(quote, len(quote))
        if end == -1:
            return None, 0
        after = _first_of(line[end + len(quote) :], "=:")
        if after == -1:
            return None, 0
        return line[len(quote) : end].strip(_INI_WS), end + after + len(quote) + 1
    at = _first_of(line, "=:")
    if at <= 0:
        return None, 0
    return line[:at].strip(_INI_WS), at + 1


def _key_quote(line: str) -> str:
    if line.startswith('"'):
        return '"""' if len(line) > 6 and line.startswith('"""') else '"'
    return "`" if line.startswith("`") else ""


def _first_of(text: str, chars: str) -> int:
    return min((i for i in map(text.find, chars) if i != -1), default=-1)


def load_ini(text: str) -> tuple[dict, dict | None]:
    """(sections, metadata or None) of an INI file; the metadata is its [sops] section, flattened as for dotenv."""
    tree = _IniReader(text).read()
    section = tree.pop(METADATA_KEY, None)
    if section is None:
        return tree, None
    return tree, _metadata_of({k: v.replace("\\n", "\n") for k, v in section.items() if not isinstance(k, Comment)})


def dump_ini(tree: dict, metadata: dict | None) -> str:
    """INI text as ini.v1's WriteTo (PrettyFormat, PrettySection) lays it out for sops, the metadata last."""
    if metadata is not None:
        tree = {**tree, METADATA_KEY: _flat_metadata(metadata)}
    out = []
    for index, (name, section) in enumerate(tree.items()):
        if not isinstance(section, dict):
            raise SopsError(f"an INI file holds sections of keys: '{name}' is not a section (use {INI_DEFAULT})")
        # only the first section can be the keys before any header: sops' tree keeps the sections in file order
        out.append(_ini_section(name, section, index > 0 or name != INI_DEFAULT, index == len(tree) - 1))
    return "".join(out)


def _ini_section(name: str, section: dict, header: bool, last: bool) -> str:
    keys = [k for k in section if not isinstance(k, Comment)]
    if not (header or keys):
        return ""
    lines, comments, pending = [], {}, None
    for key in section:
        if isinstance(key, Comment):
            if pending is None:
                lines += _ini_comment(key.text, trim=False)
            else:
                comments[pending] = key.text
        else:
            pending = key
    if header:
        lines.append(f"[{name}]")
    width = max((len(_ini_key_text(k).encode()) for k in keys), default=0)
    for key in keys:
        lines += _ini_comment(comments.get(key, ""), trim=True)
        quoted = _ini_key_text(key)
        lines.append(quoted + " " * (width - len(quoted.encode())) + " = " + _ini_value_text(section[key]))
    return "".join(line + "\n" for line in lines) + ("" if last else "\n")


def _ini_comment(text: str, trim: bool) -> list:
    lines = []
    for line in text.split("\n") if text else []:
        if not line or line[0] not in "#;":
            lines.append("; " + (line.strip(_INI_WS) if trim else line))
        else:
            lines.append(line[0] + " " + line[1:].strip(_INI_WS))
    return lines


def _ini_key_text(key: str) -> str:
    if '"' in key or "=:" in key:  # ini.v1 looks for its delimiters "=:" as one string
        return f"`{key}`"
    return f'"""{key}"""' if "`" in key else key


def _ini_value_text(value) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if "\n" in text or "`" in text:
        return f'"""{text}"""'
    if "#" in text or ";" in text:
        return f"`{text}`"
    return f'"{text}"' if text.strip(_INI_WS) != text else text


# ---- dotenv, and the metadata of dotenv and INI flattened ------------------------------------------------------------


def load_dotenv(text: str) -> tuple[dict, dict | None]:
    """(tree, metadata or None) of a dotenv file; the metadata is its sops_ lines, flattened."""
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


def dump_dotenv(tree: dict, metadata: dict | None) -> str:
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


def _flat_metadata(metadata: dict) -> dict:
    """The metadata as the flat text values of the INI [sops] section and the dotenv sops_ lines."""
    return {key: _dotenv_text(value) for key, value in flatten(metadata).items() if value is not None}


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
    """The inverse of flatten: the paths filled in as maps, then each map keyed by list indexes made a list."""
    root: dict = {}
    for path, value in flat.items():
        *parents, last = _tokens(path)
        node = root
        for token in parents:
            node = node.setdefault(token, {})
        node[last] = value
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(token, int) for token in node):
        return [_lists(node.get(index)) for index in range(max(node) + 1)]
    return {key: _lists(value) for key, value in node.items()}


def _tokens(path: str) -> list:
    parts = re.split(f"({_MAP}|{_LIST})", path)
    tokens = [parts[0]]
    for index in range(1, len(parts) - 1, 2):
        marker, text = parts[index], parts[index + 1]
        tokens.append(int(text) if marker == _LIST else text)
    return tokens

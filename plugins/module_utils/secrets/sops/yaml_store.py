# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sops YAML store: text <-> tree as sops 3.11 (go-yaml v3, indent 4) reads and writes it.

Reading follows go-yaml v3's resolution of plain scalars (YAML 1.2 booleans, ``1e-07`` a float, dates and
timestamps as ``Timestamp``), not PyYAML's YAML 1.1 one, so every leaf has the type, and so the MAC bytes, sops
gives it. Comments are kept where sops keeps them: as ``Comment`` keys of a mapping or ``Comment`` items of a
sequence, placed before the key or item they precede (a comment after a line's content precedes that line's
innermost item) or, indented past the next key, at the end of the block go-yaml gives them. Writing lays the
tree out as sops emits it (go-yaml's choice of plain, single-quoted, double-quoted or literal scalars; no line
wrapping), so a file sops wrote is rewritten byte for byte.
"""

from __future__ import annotations

import bisect
import calendar
import decimal
import math
import re
from dataclasses import dataclass, field

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError, require
from ansible_collections.nerv.homelab.plugins.module_utils.site.reader import YAML_IMPORT_ERROR, yaml

_INDENT = 4
_PLAIN_TAG = "tag:nerv.homelab,2026:plain"
_STR_TAG = "tag:yaml.org,2002:str"


class Comment:
    """A comment (its text after '#'); compared by identity, so usable as a dict key."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Comment({self.text!r})"


class Timestamp(str):
    """A YAML date or timestamp, as sops 3.10+ keeps it (type ``time``): its Go RFC3339Nano text."""


# ---- go-yaml v3's reading of plain scalars --------------------------------------------------------------------

_NULLS = ("", "~", "null", "Null", "NULL")
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_FLOATS = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+\.?[0-9]*)([eE][-+]?[0-9]+)?$")
_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
# YAML 1.1 booleans: strings to go-yaml v3, but it quotes them for older readers
_OLD_BOOLS = frozenset(("y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO"))
_OLD_BOOLS |= frozenset(("on", "On", "ON", "off", "Off", "OFF"))
# go-yaml's timestamp layouts: short date fields, 'T', 't' or ' ' before the time, optional fraction and zone
_TIMESTAMP = re.compile(
    r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:(?P<sep>[Tt ])([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.([0-9]+))?(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)


def resolve_plain(text: str):
    """The value go-yaml v3 gives a plain (unquoted, untagged) scalar."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    first = text[0]
    if first == ".":
        return _go_parse_float(text, text)
    if first in "+-0123456789":
        stamp = parse_timestamp(text) if first.isdigit() else None
        if stamp is not None:
            return stamp
        return _resolve_number(text)
    return text


def _resolve_number(text: str):
    plain = text.replace("_", "")
    number = _go_parse_int(plain)
    if number is not None:
        return number
    if _YAML_FLOAT.match(plain):
        return _go_parse_float(plain, text)
    return text


def _go_parse_int(text: str):
    """strconv.ParseInt(text, 0, 64) (and ParseUint): 0x, 0o, 0b and a leading 0 (octal) prefixes."""
    sign, digits = (text[0], text[1:]) if text[:1] in "+-" else ("", text)
    base, body = 10, digits
    if digits[:2].lower() in ("0x", "0o", "0b"):
        base, body = {"x": 16, "o": 8, "b": 2}[digits[1].lower()], digits[2:]
    elif len(digits) > 1 and digits[0] == "0":
        base, body = 8, digits[1:]
    if not body or not all(c in "0123456789abcdefABCDEF"[: base if base <= 10 else 22] for c in body):
        return None
    value = int(body, base) * (-1 if sign == "-" else 1)
    if not -(2**63) <= value < 2**64 or (sign == "-" and value < -(2**63)):
        return None
    return value


def _go_parse_float(text: str, original: str):
    if not _GO_FLOAT.match(text):
        return original
    return float(text)


def parse_timestamp(text: str) -> Timestamp | None:
    """A Timestamp when text is one of go-yaml's timestamp layouts and a valid date, else None."""
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    year, month, day = (int(match.group(i)) for i in (1, 2, 3))
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    if match.group("sep") is None:
        return Timestamp(f"{year:04d}-{month:02d}-{day:02d}T00:00:00Z")
    if (match.group("sep") == " ") == bool(match.group("zone")):
        return None  # the space layout has no zone; the T layouts need one
    hour, minute, second = (int(match.group(i)) for i in (5, 6, 7))
    if hour > 23 or minute > 59 or second > 59:
        return None
    fraction = (match.group(8) or "")[:9].rstrip("0")  # Go keeps nanoseconds, dropping further digits
    zone = match.group("zone") or "Z"
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    elif zone != "Z" and (int(zone[1:3]) > 23 or int(zone[4:6]) > 59):
        return None
    clock = f"{hour:02d}:{minute:02d}:{second:02d}" + (f".{fraction}" if fraction else "")
    return Timestamp(f"{year:04d}-{month:02d}-{day:02d}T{clock}{zone}")


# ---- reading ---------------------------------------------------------------------------------------------------

if yaml is not None:

    class _Composer(yaml.SafeLoader):
        """Composes nodes only; plain scalars get a marker tag so go-yaml's rules, not PyYAML's, resolve them."""

        def resolve(self, kind, value, implicit):
            if kind is yaml.ScalarNode and implicit[0]:
                return _PLAIN_TAG
            return super().resolve(kind, value, implicit)


@dataclass
class _Item:
    """A mapping key or a sequence item: where it starts and the blocks that hold it (innermost last)."""

    line: int
    column: int
    chain: list
    before: list = field(default_factory=list)


@dataclass
class _Block:
    """A mapping or sequence: the column of a mapping's keys (None for a sequence); comments after its items."""

    keys: int | None
    after: list = field(default_factory=list)


def load(text: str) -> dict:
    """The tree of a YAML sops file (metadata included), comments kept as Comment entries."""
    require("PyYAML", YAML_IMPORT_ERROR)
    try:
        documents = [doc for doc in yaml.compose_all(text, Loader=_Composer) if doc is not None]
    except yaml.YAMLError as exc:
        raise SopsError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if len(documents) > 1:
        raise SopsError("YAML files with several documents are not supported: keep one document per sops file")
    if not documents:
        return {}
    root = documents[0]
    if not isinstance(root, yaml.MappingNode):
        raise SopsError("a sops YAML file must hold a mapping at the top level")
    return _Reader(text, root).tree


class _Reader:
    def __init__(self, text: str, root):
        self.text = text
        self.lines = text.split("\n")
        self.items: dict = {}  # id(node) -> _Item, for keys and sequence items
        self.blocks: dict = {}  # id(node) -> _Block
        self.scalar_lines: set = set()
        self.content_end: dict = {}  # line -> column after the last scalar or flow collection ending there
        self._run = None  # (item, {column: block}) of the comments that end blocks after that item
        self._index(root, [])
        self._place_comments()
        self.tree = self._build(root, "")

    # first pass: where every item starts, which lines are inside scalars

    def _index(self, node, chain: list) -> None:
        if id(node) in self.blocks:
            return  # an alias of a node already seen: sops writes it out again, comments included
        if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
            self._content(node)
        if isinstance(node, yaml.MappingNode):
            block = self._block(node)
            for key, value in node.value:
                self.items[id(key)] = _Item(key.start_mark.line, key.start_mark.column, [*chain, block])
                self._index(key, [*chain, block])
                self._index(value, [*chain, block])
        elif isinstance(node, yaml.SequenceNode):
            block = self._block(node)
            for item in node.value:
                line, column = (item.start_mark.line, item.start_mark.column) if node.flow_style else self._dash(item)
                self.items[id(item)] = _Item(line, column, [*chain, block])
                self._index(item, [*chain, block])

    def _block(self, node) -> _Block:
        keys = node.value[0][0].start_mark.column if isinstance(node, yaml.MappingNode) and node.value else None
        return self.blocks.setdefault(id(node), _Block(keys))

    def _dash(self, item) -> tuple[int, int]:
        """(line, column) of the dash before a block sequence item (its anchor or tag, if any, come after it)."""
        index = item.start_mark.index
        while index > 0 and self.text[index - 1] in " \t\r\n":
            index -= 1
        index -= 1
        return self.text.count("\n", 0, index), index - (self.text.rfind("\n", 0, index) + 1)

    def _content(self, node) -> None:
        start, end = node.start_mark, node.end_mark
        last = end.line if end.column > 0 else end.line - 1
        self.scalar_lines.update(range(start.line + 1, last + 1))
        if end.column > 0:
            self.content_end[end.line] = max(self.content_end.get(end.line, 0), end.column)

    # second pass: every comment goes before an item or at the end of a block

    def _place_comments(self) -> None:
        ordered = sorted(self.items.values(), key=lambda item: (item.line, item.column))
        starts = [(item.line, item.column) for item in ordered]
        by_line: dict = {}
        for item in ordered:
            by_line.setdefault(item.line, []).append(item)
        for number, line in enumerate(self.lines):
            if number in self.scalar_lines:
                continue
            found = self._comment_in(number, line)
            if found is None:
                continue
            column, text = found
            trailing = bool(line[:column].strip())
            here = by_line.get(number, [])
            if trailing and here:
                max(here, key=lambda item: len(item.chain)).before.append(Comment(text))
                continue
            index = bisect.bisect_right(starts, (number, len(line)))
            following = ordered[index] if index < len(ordered) else None
            previous = ordered[index - 1] if index > 0 else None
            self._place(Comment(text), column, previous, following)

    def _place(self, comment: Comment, column: int, previous, following) -> None:
        if following is not None and (previous is None or column <= following.column):
            following.before.append(comment)
            return
        if previous is None:
            return  # a comment in a file without a single key: sops cannot read such a file at all
        block = self._foot_block(column, previous)
        if following is not None and block is following.chain[-1]:
            following.before.append(comment)
        else:
            block.after.append(comment)

    def _foot_block(self, column: int, previous) -> _Block:
        """The block a comment indented past the next item ends, as go-yaml decides it: the first such comment
        after a block ends the innermost one; a later one at another column the deepest block it is inside."""
        run = self._run if self._run and self._run[0] is previous else None
        if run is None:
            block = previous.chain[-1]
        elif column in run[1]:
            block = run[1][column]
        else:
            mappings = (b for b in reversed(previous.chain) if b.keys is not None and b.keys <= column)
            block = next(mappings, previous.chain[0])
        self._run = (previous, {**(run[1] if run else {}), column: block})
        return block

    def _comment_in(self, number: int, line: str):
        start = self.content_end.get(number, 0)
        stripped = line.lstrip()
        if stripped.startswith("#") and len(line) - len(stripped) >= start:
            column = len(line) - len(stripped)
            return column, line[column + 1 :].rstrip("\r")
        if stripped.startswith(("---", "...")) and len(line) - len(stripped) == 0:
            start = max(start, 3)
        for match in re.finditer(r"[ \t]#", line[start:]):
            column = start + match.start() + 1
            return column, line[column + 1 :].rstrip("\r")
        return None

    # third pass: the tree

    def _build(self, node, path: str):
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            out = []
            for item in node.value:
                out += self.items[id(item)].before
                out.append(self._build(item, path))
            return out + self.blocks[id(node)].after
        return _scalar_value(node)

    def _mapping(self, node, path: str) -> dict:
        out: dict = {}
        for key_node, value_node in node.value:
            out.update(dict.fromkeys(self.items[id(key_node)].before))
            key = _scalar_value(key_node) if isinstance(key_node, yaml.ScalarNode) else key_node
            if not isinstance(key, str) or isinstance(key, Timestamp):
                raise SopsError(
                    f"key {_shown(key)} under '{path or '/'}' is not a string: sops supports string keys only"
                )
            if key in out:
                raise SopsError(f"key '{key}' appears twice under '{path or '/'}': sops refuses duplicate keys")
            out[key] = self._build(value_node, f"{path}/{key}")
        out.update(dict.fromkeys(self.blocks[id(node)].after))
        return out


def _shown(key) -> str:
    return repr(key) if isinstance(key, (str, int, float, bool)) or key is None else f"of kind {type(key).__name__}"


def _scalar_value(node):
    if node.tag == _STR_TAG:
        return node.value  # quoted, or tagged !!str
    # plain, or with another tag: the text as go-yaml reads it untagged
    return resolve_plain(node.value)


# ---- writing ---------------------------------------------------------------------------------------------------


def dump(document: dict) -> str:
    """The YAML text of a tree as sops writes it."""
    if not _has_content(document):
        return "{}\n"
    return "".join(_mapping(document, 0))


def _comment_lines(comments: list, indent: int):
    for comment in comments:
        yield " " * indent + "#" + comment.text + "\n"


def _block(entries, indent: int, emit, first_prefix: str = "", prefix_indent: int = 0):
    """Lines of a block's entries (mapping keys or sequence items), each after the comments before it; emit(lead,
    entry) lays out one entry. The head comments of an item's first entry come before its dash (first_prefix)."""
    pending: list = []
    for entry in entries:
        if isinstance(entry, Comment):
            pending.append(entry)
            continue
        yield from _comment_lines(pending, prefix_indent if first_prefix else indent)
        yield from emit(first_prefix or " " * indent, entry)
        pending, first_prefix = [], ""
    yield from _comment_lines(pending, indent)


def _mapping(node: dict, indent: int, child: int | None = None, first_prefix: str = "", prefix_indent: int = 0):
    """Lines of a block mapping whose keys are at indent and whose nested blocks are at child."""
    child = indent + _INDENT if child is None else child

    def entry(lead: str, key):
        return _entry(f"{lead}{_scalar(key, key=True)}:", node[key], child, hint_ok=child == indent + _INDENT)

    return _block(node, indent, entry, first_prefix, prefix_indent)


def _entry(head: str, value, child: int, hint_ok: bool = True):
    if isinstance(value, dict) and _has_content(value):
        yield head + "\n"
        yield from _mapping(value, child)
    elif isinstance(value, list) and _has_content(value):
        yield head + "\n"
        yield from _sequence(value, child)
    else:
        yield head + " " + _scalar(value, block_column=child, hint_ok=hint_ok) + "\n"


def _has_content(node) -> bool:
    items = node.keys() if isinstance(node, dict) else node
    return any(not isinstance(item, Comment) for item in items)


def _sequence(items: list, indent: int, first_prefix: str = "", prefix_indent: int = 0):
    def item(lead: str, value):
        return _sequence_item(lead + "- ", value, indent)

    return _block(items, indent, item, first_prefix, prefix_indent)


def _sequence_item(lead: str, item, dash: int):
    # go-yaml writes an item's mapping keys after "- " but nests their blocks only 4 past the dash, and a
    # literal item's lines 2 past it
    if isinstance(item, dict) and _has_content(item):
        yield from _mapping(item, dash + 2, child=dash + _INDENT, first_prefix=lead, prefix_indent=dash)
    elif isinstance(item, list) and _has_content(item):
        yield from _sequence(item, dash + 2, first_prefix=lead, prefix_indent=dash)
    else:
        yield lead + _scalar(item, block_column=dash + 2, hint_ok=False) + "\n"


def _scalar(value, key: bool = False, block_column: int = 0, hint_ok: bool = True) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Timestamp)):
        return str(value)
    if isinstance(value, float):
        return go_yaml_float(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if isinstance(value, Comment):
        return _scalar(value.text, key, block_column, hint_ok)
    return _string(str(value), key, block_column, hint_ok)


def go_yaml_float(value: float) -> str:
    """A float as go-yaml writes it: strconv.FormatFloat(v, 'g', -1, 64), with .inf, -.inf and .nan."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return go_format_float(value, "g")


def go_format_float(value: float, verb: str) -> str:
    """strconv.FormatFloat(v, verb, -1, 64) of a finite float, verb 'f' or 'g': the shortest digits that read back;
    'g' with an exponent below 1e-4 or from 1e6 up, 'f' never with one (1e-07 is 0.0000001)."""
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    digits, point = _shortest_digits(abs(value))
    if digits == "0":
        return sign + "0"
    exp = point - 1
    if verb == "g" and (exp < -4 or exp >= 6):
        tail = f"{'-' if exp < 0 else '+'}{abs(exp):02d}"
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{tail}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """(significant digits, decimal point position) of the shortest repr that reads back as value."""
    number = decimal.Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, number.digits))
    return digits, len(digits) + number.exponent


def _string(text: str, key: bool, block_column: int, hint_ok: bool = True) -> str:
    if text == "<<":
        return "!!merge <<"  # go-yaml reads << as the merge key, so it writes the string with its tag
    if "\n" in text and not key:
        style = "|"
    elif _plain_reads_as_string(text):
        style = ""
    else:
        style = '"'
    allowed = _analyze(text)
    if style == "" and not allowed["plain"]:
        style = "'"
    if style == "'" and not allowed["single"]:
        style = '"'
    if style == "|" and not allowed["block"]:
        style = '"'
    if style == "|" and text[:1] in " \n" and not hint_ok:
        # go-yaml's indentation indicator is 2 off inside a sequence item: neither it nor sops reads such a
        # block back ("did not find expected '-' indicator"), so it is written double-quoted instead
        style = '"'
    if style == "":
        return text
    if style == "'":
        return "'" + text.replace("'", "''") + "'"
    if style == "|":
        return _literal(text, block_column)
    return _double_quoted(text)


def _plain_reads_as_string(text: str) -> bool:
    if not text or _BASE60.match(text) or text in _OLD_BOOLS:
        return False
    value = resolve_plain(text)
    return isinstance(value, str) and not isinstance(value, Timestamp)


_INDICATOR_FIRST = "#,[]{}&*!|>'\"%@`"
_BREAKS = "\r\n\x85\u2028\u2029"
_BLANKS = " \t" + _BREAKS


def _analyze(text: str) -> dict:
    """Which styles go-yaml's emitter allows for text in block context (yaml_emitter_analyze_scalar)."""
    indicators = text[:3] in ("---", "...") or _leading_indicator(text)
    special = tabs = break_space = space_break = False
    previous = ""
    for index, char in enumerate(text):
        followed_by_blank = index + 1 >= len(text) or text[index + 1] in _BLANKS
        if index and (char == ":" and followed_by_blank or char == "#" and text[index - 1] in _BLANKS):
            indicators = True
        tabs = tabs or char == "\t"
        special = special or (char != "\t" and not _printable(char))
        break_space = break_space or (char == " " and previous == "break")
        space_break = space_break or (char in _BREAKS and previous == "space")
        previous = "space" if char == " " else "break" if char in _BREAKS else ""
    edges = text[:1] == " " or text[-1:] == " " or text[:1] in _BREAKS or text[-1:] in _BREAKS
    plain = not (edges or break_space or space_break or tabs or special or indicators)
    plain = plain and not any(c in _BREAKS for c in text)
    single = not (break_space or space_break or tabs or special)
    block = not (text[-1:] == " " or space_break or special)
    return {"plain": plain, "single": single, "block": block}


def _leading_indicator(text: str) -> bool:
    first, rest = text[:1], text[1:2]
    followed_by_blank = rest == "" or rest in _BLANKS
    return first in _INDICATOR_FIRST or (first in "?:-" and followed_by_blank)


def _printable(char: str) -> bool:
    code = ord(char)
    return (
        code == 0x0A or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )  # go-yaml counts no character beyond U+FFFF as printable


# a character -> the letter after its backslash in a double-quoted scalar
_ESCAPES = dict(zip('\0\a\b\t\n\v\f\r\x1b"\\\x85\xa0\u2028\u2029', '0abtnvfre"\\N_LP', strict=True))


def _double_quoted(text: str) -> str:
    return '"' + "".join(_escaped(c) if not _printable(c) or c in '\r\n\x85\u2028\u2029"\\' else c for c in text) + '"'


def _escaped(char: str) -> str:
    if char in _ESCAPES:
        return "\\" + _ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02X}" if code <= 0xFF else f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"


def _literal(text: str, column: int) -> str:
    if not text.endswith("\n"):
        chomp = "-"
    elif text == "\n" or text.endswith("\n\n"):
        chomp = "+"
    else:
        chomp = ""
    hint = str(_INDENT) if text[:1] in " \n" else ""
    body = text[:-1] if text.endswith("\n") else text
    lines = [(" " * column + line if line else "") for line in body.split("\n")]
    return f"|{hint}{chomp}\n" + "\n".join(lines)

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a site file: its YAML parsed within limits, so every reader of a site (the modules, roles and inventory
plugins all go through here) refuses a broken or hostile file with a message instead of a traceback, a silently
dropped key or a run that never ends."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.site.problems import Problem, SiteError, join_path

try:  # the collection's one PyYAML import: the layers above take yaml and YAML_IMPORT_ERROR from here
    import yaml
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.resolver import Resolver

except ImportError as exc:  # ansible-core brings PyYAML, but ansible-test's import check loads us without it
    yaml, YAML_IMPORT_ERROR = None, exc
    _BASE_LOADER = object
else:
    YAML_IMPORT_ERROR = None
    try:
        from yaml.cyaml import CParser

        class _BASE_LOADER(Composer, CParser, SafeConstructor, Resolver):
            """libyaml's parser (four times as fast as PyYAML's) under PyYAML's composer, which keeps the limits
            (libyaml's own composer cannot be limited); ansible-core's AnsibleLoader pairs them the same way."""

            def __init__(self, stream):
                CParser.__init__(self, stream)
                Composer.__init__(self)
                SafeConstructor.__init__(self)
                Resolver.__init__(self)

    except ImportError:  # PyYAML built without libyaml
        _BASE_LOADER = yaml.SafeLoader

# A site file is a few kilobytes, and the most this allows is read in about half a second.
MAX_BYTES = 128 * 1024
# Python's recursion limit is 1000 frames and the parser, the constructor and the validator each take a few per
# level; chart values nest a dozen levels at most.
MAX_DEPTH = 64
# Values aliases (*name) may add: a handful of aliases nested in each other (the "billion laughs") stand for
# billions of values, which validating or rendering would walk one by one.
MAX_ALIAS_VALUES = 10_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _field(parts: list, limit: int | None = None) -> str:
    """The field path of the node at parts (the root and mapping keys have None), its first limit parts at most."""
    parts = [part for part in parts if part is not None]
    path = ""
    for part in parts[:limit]:
        path = join_path(path, part)
    return path + ("..." if limit is not None and len(parts) > limit else "")


def _line(node_or_event) -> int:
    return node_or_event.start_mark.line + 1


class _SiteLoader(_BASE_LOADER):
    """yaml.SafeLoader that tracks each node's field path, refuses deep nesting and alias expansion past the limits,
    and collects duplicate keys (which plain YAML loading resolves by silently keeping the last)."""

    def __init__(self, stream):
        super().__init__(stream)
        self.parts: list = []
        self.sizes: dict = {}  # id(collection node) -> the values it stands for, aliases expanded
        self.expanded = 0
        self.duplicates: list = []

    def compose_node(self, parent, index):
        event = self.peek_event()
        # a mapping's value is composed with its key node as index, a key with None, a list item with its position
        self.parts.append(index.value if isinstance(index, yaml.ScalarNode) else index)
        if len(self.parts) > MAX_DEPTH:
            fix = f"flatten the structure: a site file nests a dozen levels at most (the limit is {MAX_DEPTH})"
            raise _refused(_field(self.parts, 6), f"nests deeper than {MAX_DEPTH} levels (line {_line(event)})", fix)
        node = super().compose_node(parent, index)
        if isinstance(event, yaml.AliasEvent):
            self._expand(node, _line(event))
        self.parts.pop()
        return node

    def _expand(self, node, line: int) -> None:
        if isinstance(node, yaml.CollectionNode) and id(node) not in self.sizes:
            fix = "write the value out instead of referring to the mapping or list that contains it"
            raise _refused(_field(self.parts), f"is an alias to a value that contains it (line {line})", fix)
        self.expanded += self.sizes.get(id(node), 1)
        if self.expanded > MAX_ALIAS_VALUES:
            msg = f"aliases (*name) expand the file past {MAX_ALIAS_VALUES} values here (line {line})"
            fix = "write the values out: a site file needs no aliases that stand for thousands of values"
            raise _refused(_field(self.parts), msg, fix)

    def compose_sequence_node(self, anchor):
        node = super().compose_sequence_node(anchor)
        self.sizes[id(node)] = 1 + sum(self.sizes.get(id(item), 1) for item in node.value)
        return node

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        sizes = (self.sizes.get(id(key), 1) + self.sizes.get(id(value), 1) for key, value in node.value)
        self.sizes[id(node)] = 1 + sum(sizes)
        self._note_duplicates(node)
        return node

    def _note_duplicates(self, node) -> None:
        first: dict = {}
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
                continue
            if key.value in first:
                lines = f"lines {first[key.value]} and {_line(key)}"
                msg = f"is given twice ({lines}); YAML would silently keep only the last one"
                fix = "keep one of them, with everything it should hold"
                self.duplicates.append(Problem(_field(self.parts + [key.value]), msg, fix))
            first.setdefault(key.value, _line(key))


def _refused(path: str, message: str, fix: str) -> SiteError:
    return SiteError([Problem(path, message, fix)])


def read_site_file(path: str):
    """The parsed YAML of a site file; SiteError when it cannot be read or parsed, or breaks a limit."""
    if YAML_IMPORT_ERROR is not None:
        raise SiteError([Problem(path, "cannot be read: PyYAML is not installed", "pip install pyyaml")])
    text = _read_text(path)
    try:
        loader = _SiteLoader(text)
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise SiteError([Problem(path, f"is not valid YAML{_yaml_reason(exc)}", "fix the YAML syntax")]) from exc
    if loader.duplicates:
        raise SiteError(loader.duplicates)
    return data


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SiteError([Problem(path, f"cannot be read ({exc.strerror})", "check the path")]) from exc
    if len(raw) > MAX_BYTES:
        msg = f"is larger than {MAX_BYTES // 1024} KiB, the most a site file may be"
        fix = "check that this is the site file; a site is a few kilobytes (chart values belong in the charts)"
        raise _refused(path, msg, fix)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        msg = f"is not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line} is not valid UTF-8"
        raise _refused(path, msg, f"save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 {path})") from exc


def _yaml_reason(exc) -> str:
    """' at line L, column C: <what the parser found>' of a YAML error (the parser's own words, as yamllint says)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem, context = getattr(exc, "problem", None), getattr(exc, "context", None)
    # a character the reader refuses (a control character) is a ReaderError, which has a reason instead
    problem = problem or getattr(exc, "reason", None)
    words = f"{problem} ({context})" if problem and context else str(problem or context or "")
    return f"{where}: {words}" if words else where

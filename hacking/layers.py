"""The shape of plugins/, measured the way issue 25 ("One floor, one engine per verb") asks:

(a) the places that start a process (subprocess.*, Popen, AnsibleModule.run_command) and the files they are in;
(b) the import graph between the folders of module_utils/ and plugin_utils/, whether it has a cycle, and the imports
    that go against the stack (STACK: a folder imports only folders on lower levels);
(c) the lines of Python per layer (blank lines and comments counted too: what a reader scrolls through).

    python hacking/layers.py [repo root]    # default: the repository this script is in

Plain text on stdout, the same for the same tree, so two runs (before and after a change) can be diffed.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

PACKAGE = "ansible_collections.nerv.homelab.plugins."
# Calls that start a process: subprocess.*, a bare Popen (from subprocess import Popen), AnsibleModule.run_command,
# os.system/exec*/spawn*.
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}
OS_CALLS = re.compile(r"^(?:system|popen|exec\w*|spawn\w*|posix_spawn\w*)$")
IMPORT = re.compile(r"^\s*(?:from|import)\s+" + re.escape(PACKAGE) + r"((?:module_utils|plugin_utils)\.\w+)", re.M)
FROM_FOLDER = re.compile(
    r"^\s*from\s+" + re.escape(PACKAGE) + r"(module_utils|plugin_utils)\s+import\s+\(?([\w\s,]+)\)?", re.M
)


def starts_process(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id == "Popen"
    if not isinstance(func, ast.Attribute):
        return False
    owner = func.value.id if isinstance(func.value, ast.Name) else None
    return (
        (owner == "subprocess" and func.attr in SUBPROCESS_CALLS)
        or (owner == "os" and bool(OS_CALLS.match(func.attr)))
        or func.attr == "run_command"
    )


def process_starts(plugins: Path) -> list:
    """(file, line) of every call that starts a process (read from the syntax tree: comments and strings are not)."""
    found = []
    for path in sorted(plugins.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and starts_process(node):
                found.append((path.relative_to(plugins).as_posix(), node.lineno))
    return sorted(found)


def folder_of(path: Path, plugins: Path) -> str | None:
    """module_utils/<folder> or plugin_utils/<folder> of a file, or None for the other plugin types."""
    parts = path.relative_to(plugins).parts
    if parts[0] in ("module_utils", "plugin_utils") and len(parts) > 2:
        return f"{parts[0]}/{parts[1]}"
    return None


def import_graph(plugins: Path) -> dict:
    """folder -> the other folders it imports (module_utils/<x>, plugin_utils/<x>)."""
    graph = defaultdict(set)
    for path in sorted(plugins.rglob("*.py")):
        source = folder_of(path, plugins)
        if source is None:
            continue
        graph[source]
        text = path.read_text(encoding="utf-8")
        targets = {m.replace(".", "/") for m in IMPORT.findall(text)}
        for kind, names in FROM_FOLDER.findall(text):
            targets |= {f"{kind}/{name.strip()}" for name in names.split(",") if name.strip()}
        graph[source] |= {target for target in targets if target != source and (plugins / target).is_dir()}
    return graph


# The stack of docs/architecture.md, bottom first: a folder may import only the folders of the levels below its own.
STACK = (
    ("module_utils/common",),
    ("module_utils/site",),
    ("module_utils/secrets",),
    ("module_utils/proxmox", "module_utils/nixos", "module_utils/cluster"),
    ("plugin_utils/discovery",),
)
LEVEL = {folder: level for level, folders in enumerate(STACK) for folder in folders}


def against_stack(graph: dict) -> list:
    """(source, target) of every import of a folder on the same or a higher level, and every import from or of a
    folder STACK does not place."""
    return sorted(
        (source, target)
        for source, targets in graph.items()
        for target in targets
        if source not in LEVEL or LEVEL.get(target, len(STACK)) >= LEVEL[source]
    )


def cycles(graph: dict) -> list:
    """The strongly connected parts of more than one folder (Tarjan): each is a cycle of imports."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                part.append(member)
                if member == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def lines_per_layer(plugins: Path) -> Counter:
    """Lines of .py per layer: module_utils/<x>, plugin_utils/<x>, or the plugin type (modules, inventory, ...)."""
    counted = Counter()
    for path in plugins.rglob("*.py"):
        layer = folder_of(path, plugins) or path.relative_to(plugins).parts[0]
        counted[layer] += len(path.read_text(encoding="utf-8").splitlines())
    return counted


def report(root: Path) -> str:
    plugins = root / "plugins"
    starts = process_starts(plugins)
    out = [f"(a) places that start a process: {len(starts)} in {len({name for name, _line in starts})} files"]
    for name, count in sorted(Counter(name for name, _line in starts).items()):
        out.append(f"    {count:3d}  {name}")
    graph = import_graph(plugins)
    found = cycles(graph)
    out.append(f"(b) imports between folders: {sum(len(v) for v in graph.values())} edges; "
               f"cycle: {'yes, ' + '; '.join(' <-> '.join(c) for c in found) if found else 'no'}")  # fmt: skip
    for source in sorted(graph):
        out.append(f"    {source} -> {', '.join(sorted(graph[source])) or '(nothing)'}")
    wrong = against_stack(graph)
    out.append(f"    against the stack: {', '.join(f'{a} -> {b}' for a, b in wrong) or 'none'}")
    layers = lines_per_layer(plugins)
    out.append(f"(c) lines per layer: {sum(layers.values())} in all")
    for layer, count in sorted(layers.items()):
        out.append(f"    {count:6d}  {layer}")
    return "\n".join(out)


def main(argv: list) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    if not (root / "plugins").is_dir():
        print(f"layers.py: {root} has no plugins/ folder", file=sys.stderr)
        return 2
    print(report(root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""hacking/layers.py on small trees: the calls that start a process (not comments or strings), the import graph
between layer folders and its cycles, and lines per layer."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "hacking"))

import layers  # noqa: E402

PKG = "ansible_collections.nerv.homelab.plugins"


def tree(tmp_path: Path, files: dict) -> Path:
    for name, text in files.items():
        path = tmp_path / "plugins" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_only_calls_that_start_a_process_are_counted(tmp_path):
    root = tree(tmp_path, {
        "module_utils/a/run.py": (
            '"""subprocess.run in a docstring is not a call."""\nimport subprocess\nfrom subprocess import Popen\n'
            "# subprocess.run(['x'])\nsubprocess.run(['x'])\nPopen(['y'])\nmodule.run_command(['z'])\n"
            "text = 'subprocess.Popen(no)'\nsubprocess.TimeoutExpired\n"
        ),
    })  # fmt: skip
    assert layers.process_starts(root / "plugins") == [("module_utils/a/run.py", 5), ("module_utils/a/run.py", 6),
                                                       ("module_utils/a/run.py", 7)]  # fmt: skip


def test_the_import_graph_finds_a_cycle_between_folders(tmp_path):
    root = tree(tmp_path, {
        "module_utils/common/x.py": "",
        "module_utils/site/s.py": f"from {PKG}.module_utils.cluster.e import y\n"
                                  f"from {PKG}.module_utils.common import x\n",
        "module_utils/cluster/e.py": f"from {PKG}.module_utils.site.s import z\n",
        "plugin_utils/discovery/d.py": f"from {PKG}.module_utils.common.x import w\n",
    })  # fmt: skip
    graph = layers.import_graph(root / "plugins")
    assert graph["module_utils/site"] == {"module_utils/cluster", "module_utils/common"}
    assert graph["plugin_utils/discovery"] == {"module_utils/common"} and graph["module_utils/common"] == set()
    assert layers.cycles(graph) == [["module_utils/cluster", "module_utils/site"]]


def test_no_cycle_and_lines_per_layer(tmp_path):
    root = tree(tmp_path, {"module_utils/site/s.py": "a = 1\n\n", "modules/m.py": "b = 2\n"})
    assert layers.cycles(layers.import_graph(root / "plugins")) == []
    assert layers.lines_per_layer(root / "plugins") == {"module_utils/site": 2, "modules": 1}
    assert "cycle: no" in layers.report(root)


def test_an_import_on_the_same_or_a_higher_level_goes_against_the_stack():
    graph = {
        "module_utils/site": {"module_utils/common"},
        "module_utils/nixos": {"module_utils/secrets", "module_utils/cluster"},
        "module_utils/secrets": {"module_utils/proxmox"},
        "module_utils/new": {"module_utils/common"},
    }
    # a folder the stack does not place yet is flagged too: where it sits must be decided
    assert layers.against_stack(graph) == [
        ("module_utils/new", "module_utils/common"),
        ("module_utils/nixos", "module_utils/cluster"),
        ("module_utils/secrets", "module_utils/proxmox"),
    ]
    assert layers.against_stack({"module_utils/common": {"module_utils/new"}}) == [
        ("module_utils/common", "module_utils/new")
    ]


def test_the_collection_keeps_its_stack_and_its_one_process_runner():
    plugins = Path(__file__).resolve().parents[3] / "plugins"
    graph = layers.import_graph(plugins)
    assert layers.cycles(graph) == [] and layers.against_stack(graph) == []
    assert {name for name, _line in layers.process_starts(plugins)} == {"module_utils/common/process.py"}

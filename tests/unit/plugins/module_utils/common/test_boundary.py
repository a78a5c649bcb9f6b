"""common/boundary.run_module: the one place every module's NervError becomes fail_json with its details."""

import ast
from pathlib import Path

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError
from ansible_collections.nerv.homelab.plugins.module_utils.site.problems import Problem, SiteError


class Ended(Exception):
    pass


class FakeModule:
    def __init__(self):
        self.result = None

    def exit_json(self, **result):
        self.result = ("exit", result)
        raise Ended

    def fail_json(self, **result):
        self.result = ("fail", result)
        raise Ended


def outcome(work):
    module = FakeModule()
    with pytest.raises(Ended):
        run_module(module, work)
    return module.result


def fails(error):
    def work():
        raise error

    return outcome(work)


def test_a_result_is_exit_json():
    assert outcome(lambda: {"changed": True}) == ("exit", {"changed": True})


def test_a_layer_error_is_fail_json_with_its_details():
    assert fails(HostError("nixos-rebuild failed", tail="x")) == ("fail", {"msg": "nixos-rebuild failed", "tail": "x"})


def test_a_proxmox_task_failure_keeps_its_exit_status_log_tail_and_upid():
    error = ProxmoxError("clone failed", status=500, exitstatus="boom", log_tail=["a"], upid="UPID:x")
    expected = {"msg": "clone failed", "http_status": 500, "exitstatus": "boom", "log_tail": ["a"], "upid": "UPID:x"}
    assert fails(error) == ("fail", expected)


def test_a_site_error_lists_its_problems_and_warnings():
    error = SiteError([Problem("hosts[0].ip", "is not an address", "give one")], [Problem("a", "b", "c", "warning")])
    kind, result = fails(error)
    assert kind == "fail" and result["msg"].startswith("site file has 1 problem:")
    assert result["problems"] == [{"path": "hosts[0].ip", "message": "is not an address", "fix": "give one",
                                   "level": "error"}]  # fmt: skip
    assert result["site_warnings"] == [{"path": "a", "message": "b", "fix": "c", "level": "warning"}]


def test_anything_else_is_a_bug_and_keeps_its_traceback():
    def work():
        raise KeyError("oops")

    with pytest.raises(KeyError):
        run_module(FakeModule(), work)


MODULES = sorted((Path(__file__).resolve().parents[5] / "plugins" / "modules").glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_every_module_ends_in_the_one_boundary(path):
    calls = [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
             and getattr(node.func, "id", getattr(node.func, "attr", None)) == "run_module"]  # fmt: skip
    assert len(calls) == 1 and len(calls[0].args) == 2 and not calls[0].keywords

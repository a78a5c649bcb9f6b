"""The harness itself: per-task results, hermetic environment, timeouts and the skip helpers."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from .._ansible import AnsibleCli
from .._skips import SHARED_FIXTURES, require_commands, require_netns, shared_fixture

WARNER = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

module = AnsibleModule(argument_spec={"text": {"type": "str"}})
module.warn(module.params["text"])
module.exit_json(changed=False)
"""


def test_playbook_results_per_task_and_host(ansible_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ANSIBLE_STDOUT_CALLBACK", "no.such.callback")  # the caller's ANSIBLE_* must not leak in
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "warner.py").write_text(WARNER)
    tasks = [
        {"name": "Say hello", "ansible.builtin.debug": {"msg": "hello"}},
        {"name": "Change something", "ansible.builtin.command": "true", "changed_when": True},
        {"name": "Never run", "ansible.builtin.debug": {"msg": "no"}, "when": False},
        {"name": "Warn", "warner": {"text": "mind the gap"}},
        {"name": "Break", "ansible.builtin.fail": {"msg": "broken on purpose"}, "ignore_errors": True},
    ]
    tasks.append({"name": "Echo a variable", "ansible.builtin.debug": {"var": "given"}})
    plays = [{"name": "Harness", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    run = ansible_cli.playbook(plays, extra_vars={"given": {"a": [1, "two"]}})

    assert run.rc == 0, run.describe()
    assert run.task("Say hello")["msg"] == "hello"
    assert run.task("Change something")["changed"] is True
    assert run.task("Never run")["status"] == "skipped"
    assert "mind the gap" in run.task("Warn")["warnings"]
    broken = run.task("Break")
    assert broken["failed"] and broken["ignore_errors"] and broken["msg"] == "broken on purpose"
    assert run.task("Echo a variable")["given"] == {"a": [1, "two"]}
    assert "two" not in " ".join(run.args), "extra vars went through argv"
    assert run.stats() == dict(run.stats(), ok=5, changed=1, failures=0, skipped=1, ignored=1)
    assert "TASK [Say hello]" in run.stdout, "the human output is the default callback's"
    with pytest.raises(AssertionError, match="ran 0 times"):
        run.task("No such task")


def test_environment_points_at_the_checkout(ansible_cli):
    env = ansible_cli.environment()
    repo = Path(__file__).resolve().parents[3]
    assert env["ANSIBLE_CONFIG"] == str(repo / "ansible.cfg")
    assert Path(env["ANSIBLE_COLLECTIONS_PATH"], "ansible_collections/nerv/homelab").resolve() == repo
    assert Path(env["ANSIBLE_LOCAL_TEMP"]).is_relative_to(ansible_cli.tmp_path)
    run = ansible_cli.run("ansible-config", "dump", "--only-changed")
    assert run.rc == 0, run.describe()
    assert str(repo / "collections") in run.stdout


def test_a_run_past_its_timeout_is_killed_with_its_workers(tmp_path):
    cli = AnsibleCli(tmp_path, timeout=5)
    marker = f"900.{secrets.randbelow(10**9):09d}"
    tasks = [{"name": "Hang", "ansible.builtin.command": f"sleep {marker}"}]
    with pytest.raises(pytest.fail.Exception, match="timed out after 5 s"):
        cli.playbook([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    assert not [pid for pid in _pids() if marker in _cmdline(pid)], "a worker outlived the killed run"


def _pids():
    return [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]


def _cmdline(pid):
    try:
        return Path("/proc", pid, "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_missing_commands_skip_naming_them_and_their_package():
    with pytest.raises(pytest.skip.Exception, match=r"no-such-tool-x \(Debian package unknown\)"):
        require_commands("sh", "no-such-tool-x")
    assert os.path.isabs(require_commands("sh")["sh"])


def test_sbin_commands_are_found_without_sbin_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    found = require_commands("sshd")["sshd"]
    assert found.endswith("/sshd") and "sbin" in found


def test_missing_shared_fixture_skips_with_its_path():
    with pytest.raises(pytest.skip.Exception, match="no-such-fixture is missing"):
        shared_fixture("no-such-fixture")
    if SHARED_FIXTURES.is_dir():
        assert shared_fixture().samefile(SHARED_FIXTURES)


def test_network_namespaces_work_or_skip_saying_why():
    require_netns()

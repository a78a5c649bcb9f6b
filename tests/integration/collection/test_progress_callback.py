"""nerv.homelab.progress, the stdout callback ansible.cfg sets, in a real ansible-playbook run: a task repeated
with until whose module says how far it got, and a task in the background with async and poll."""

from __future__ import annotations

import re

PROBE = """#!/usr/bin/python
import json, os
from ansible.module_utils.basic import AnsibleModule

module = AnsibleModule(argument_spec={"counter": {"type": "path", "required": True}, "steps": {"type": "int"}})
path, steps = module.params["counter"], module.params["steps"]
done = int(open(path).read()) + 1 if os.path.exists(path) else 1
open(path, "w").write(str(done))
module.exit_json(changed=False, done=done >= steps, progress=f"step {done} of {steps}: warming up")
"""


def test_waits_are_told_in_words_with_the_time_so_far(ansible_cli, tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "progress_probe.py").write_text(PROBE)
    tasks = [
        {
            "name": "Wait for the probe",
            "progress_probe": {"counter": str(tmp_path / "counter"), "steps": 3},
            "register": "probe",
            "until": "probe.done",
            "retries": 5,
            "delay": 1,
        },
        {
            "name": "Sleep in the background",
            "ansible.builtin.command": "sleep 4",
            "async": 60,
            "poll": 1,
            "changed_when": False,
        },
    ]
    # as proxmox_vms waits for its VMs: jobs started with poll 0, then waited for one by one
    tasks.append({
        "name": "Start the sleepers",
        "ansible.builtin.command": "sleep {{ item.seconds }}",
        "loop": [{"name": "short", "seconds": 1}, {"name": "long", "seconds": 6}],
        "loop_control": {"label": "{{ item.name }}"},
        "async": 60,
        "poll": 0,
        "register": "sleepers",
        "changed_when": False,
    })  # fmt: skip
    tasks.append({
        "name": "Wait for every sleeper",
        "ansible.builtin.async_status": {"jid": "{{ item.ansible_job_id }}"},
        "loop": "{{ sleepers.results }}",
        "loop_control": {"label": "{{ item.item.name }}"},
        "register": "slept",
        "until": "slept.finished",
        "retries": 30,
        "delay": 1,
    })  # fmt: skip
    run = ansible_cli.playbook([{"name": "Waits", "hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    assert run.rc == 0, run.describe()
    assert run.task("Wait for the probe")["attempts"] == 3
    lines = [line for line in run.stdout.splitlines() if line.startswith("waiting: ")]
    for step in (1, 2):
        words = rf"Wait for the probe: step {step} of 3: warming up, \d+s so far \(gives up in "
        assert any(re.match(r"waiting: \[localhost\] " + words, line) for line in lines), run.describe()
    words = r"Sleep in the background: still running, \d+s so far \(gives up in (under a minute|about 1m)\)"
    assert any(re.match(r"waiting: \[localhost\] " + words, line) for line in lines), run.describe()
    words = r"Wait for every sleeper \(long\): still running, \d+s so far \(gives up in "
    assert any(re.match(r"waiting: \[localhost\] " + words, line) for line in lines), run.describe()
    for default in ("FAILED - RETRYING", "ASYNC POLL", "ASYNC OK", "retries left"):
        assert default not in run.output, run.describe()
    assert "TASK [Wait for the probe]" in run.stdout and "ok: [localhost]" in run.stdout, "the rest is the default's"


def test_ansible_cfg_makes_it_the_stdout_callback_and_ansible_doc_documents_it(ansible_cli):
    config = ansible_cli.run("ansible-config", "dump", "--only-changed")
    assert re.search(r"DEFAULT_STDOUT_CALLBACK\(.*\) = nerv\.homelab\.progress", config.stdout), config.describe()
    doc = ansible_cli.doc("-t", "callback", "--json", "nerv.homelab.progress")
    assert doc.rc == 0 and "[WARNING]" not in doc.stderr, doc.describe()
    options = doc.json()["nerv.homelab.progress"]["doc"]["options"]
    assert options["progress_interval"]["default"] == 15
    assert {"display_skipped_hosts", "result_format"} <= set(options), "the default callback's options are kept"

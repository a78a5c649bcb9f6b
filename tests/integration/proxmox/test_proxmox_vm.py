"""nerv.homelab.proxmox_vm against fakepve: clone, converge, start and wait for the agent, stop, remove."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qsl, quote

import pytest
from proxmoxer.tools import Tasks

from .._pve import agent_interfaces

MODULE = "nerv.homelab.proxmox_vm"
VMID = 101
SITE_TAG = "nerv-site-demo"
KEYS = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINU9pb4AcSwRvvlx7xnotXk8P/jB2vMcsoOo2WrkuQWN admin1@laptop",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv8o3b1Jm1+X0fC9JY3g9v0Y8cTn1v3Cz5pK2r8l0aB admin2@desk",
]
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1ykL0mQ3hP8sJwq2o0c7b3xKk4aQn7i9oF1vT3r2cD"
HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"


def options(pve_site, **changes):
    values = {
        "name": "cp1",
        "vmid": VMID,
        "node": "pve1",
        "site": "demo",
        "template": "nixos-base",
        "storage": "local-lvm",
        "cores": 4,
        "memory": 4096,
        "tags": ["k8s-control-plane"],
        "description": "cp1 of site demo",
        "onboot": True,
        "ciuser": "admin",
        "sshkeys": KEYS,
        "ipconfig0": "ip=10.77.0.11/24,gw=10.77.0.1",
        "nameserver": "10.77.0.1",
        "searchdomain": "demo.lab.example",
        "cidr": ["10.77.0.0/24"],
        "wait_timeout": 20,
        "lock_timeout": 2,
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def vm_task(ansible_cli, pve_site, check=False, env=None, **changes):
    plays = [{"name": "VM", "hosts": "localhost", "gather_facts": False}]
    plays[0]["tasks"] = [
        {"name": "VM", MODULE: options(pve_site, **changes), "register": "vm"},
        # The harness's own `status` (ok, failed) hides the module's: show it through a second task.
        {"name": "Status", "ansible.builtin.debug": {"msg": {"status": "{{ vm.status }}", "diff": "{{ vm.diff }}"}}},
    ]
    run = ansible_cli.playbook(plays, "--diff", env=env or pve_site.proxmox_env(), check=check)
    assert pve_site.token_secret not in run.output
    result = run.task("VM")
    if run.tasks("Status"):
        shown = run.task("Status")["msg"]
        result["vm_status"], result["diff"] = shown["status"], shown["diff"]
    return run, result


def writes(pve_site):
    return [(method, path) for method, path, _body in pve_site.pve.requests if method != "GET"]


def body_of(pve_site, method, suffix):
    found = [body for m, path, body in pve_site.pve.requests if m == method and path.endswith(suffix)]
    assert found, f"no {method} ...{suffix} in {writes(pve_site)}"
    return found[-1].decode()


def agent_when_running(pve_site, vmid=VMID, agent=None, timeout=30):
    """The guest agent of a clone that does not exist yet: fakepve gives clones no agent (vm.agent None, so every
    agent call answers 500 'QEMU guest agent is not running'); this sets one once the VM runs."""
    answers = agent if agent is not None else {}

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            vm = pve_site.pve.vm(vmid)
            if vm is not None and vm.status == "running":
                vm.agent = answers
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def site_agent():
    return {"interfaces": agent_interfaces("10.77.0.11", 24), "files": {HOST_KEY_FILE: HOST_KEY + " root@cp1\n"}}


def test_present_clones_and_configures_then_changes_nothing(ansible_cli, pve_site):
    run, first = vm_task(ansible_cli, pve_site, disk=16)
    assert run.rc == 0, run.describe()
    assert first["changed"] and first["actions"] == ["clone", "config"] and first["vm_status"] == "stopped"
    assert set(first["changed_keys"]) == {
        "cores",
        "memory",
        "tags",
        "description",
        "onboot",
        "ciuser",
        "sshkeys",
        "ipconfig0",
        "nameserver",
        "searchdomain",
    }
    clone = body_of(pve_site, "POST", f"/qemu/{pve_site.template_vmid}/clone")
    assert f"newid={VMID}" in clone and "name=cp1" in clone and "full=1" in clone and "storage=local-lvm" in clone
    assert "target=pve1" in clone
    vm = pve_site.pve.vm(VMID)
    config = vm.config
    assert vm.node == "pve1" and vm.name == "cp1" and not vm.template
    assert config["tags"] == f"k8s-control-plane;{SITE_TAG}"
    assert str(config["cores"]) == "4" and str(config["memory"]) == "4096" and str(config["onboot"]) == "1"
    assert config["ipconfig0"] == "ip=10.77.0.11/24,gw=10.77.0.1" and config["ciuser"] == "admin"
    # Strictly percent-encoded on the wire and in the config: no '+' for a space, '+' itself as %2B.
    assert config["sshkeys"] == quote("\n".join(KEYS), safe="")
    assert "%20" in config["sshkeys"] and "%2B" in config["sshkeys"] and "%0A" in config["sshkeys"]
    assert len([v for v in pve_site.pve.vms if v.name == "cp1"]) == 1

    pve_site.pve.requests.clear()
    run, second = vm_task(ansible_cli, pve_site, disk=16)
    assert run.rc == 0, run.describe()
    assert not second["changed"] and second["actions"] == [] and second["changed_keys"] == []
    assert writes(pve_site) == [], "a converged VM gets no write request"


def test_check_mode_reports_the_plan_and_the_diff_and_writes_nothing(ansible_cli, pve_site):
    run, planned = vm_task(ansible_cli, pve_site, check=True, disk=20)
    assert run.rc == 0, run.describe()
    assert planned["changed"] and planned["actions"] == ["clone", "config", "resize"]
    assert planned["diff"]["before"] == {"status": "absent"}
    assert planned["diff"]["after"]["cores"] == 4 and planned["diff"]["after"]["disk"] == "20G"
    assert pve_site.pve.vm(VMID) is None and writes(pve_site) == []

    vm_task(ansible_cli, pve_site)
    pve_site.pve.requests.clear()
    run, change = vm_task(ansible_cli, pve_site, check=True, cores=6, tags=["k8s-control-plane", "extra"])
    assert run.rc == 0, run.describe()
    assert change["changed"] and change["actions"] == ["config"] and change["changed_keys"] == ["cores", "tags"]
    assert change["diff"] == {
        "before": {"cores": 4, "tags": ["k8s-control-plane", SITE_TAG]},
        "after": {"cores": 6, "tags": ["extra", "k8s-control-plane", SITE_TAG]},
    }
    assert writes(pve_site) == [] and str(pve_site.pve.vm(VMID).config["cores"]) == "4"


def test_an_existing_vm_is_converged_with_only_the_keys_that_differ(ansible_cli, pve_site):
    vm_task(ansible_cli, pve_site)
    pve_site.pve.requests.clear()
    run, result = vm_task(ansible_cli, pve_site, memory=8192, disk=40)
    assert run.rc == 0, run.describe()
    assert result["actions"] == ["config", "resize"] and result["changed_keys"] == ["memory", "disk"]
    assert writes(pve_site) == [
        ("PUT", f"/api2/json/nodes/pve1/qemu/{VMID}/config"),
        ("PUT", f"/api2/json/nodes/pve1/qemu/{VMID}/resize"),
    ]
    assert body_of(pve_site, "PUT", "/config") == "memory=8192"
    assert "disk=scsi0" in body_of(pve_site, "PUT", "/resize") and "size=40G" in body_of(pve_site, "PUT", "/resize")


def test_started_waits_for_the_agent_address_and_reads_the_host_key(ansible_cli, pve_site):
    watcher = agent_when_running(pve_site, agent=site_agent())
    run, started = vm_task(ansible_cli, pve_site, state="started")
    watcher.join(1)
    assert run.rc == 0, run.describe()
    assert started["actions"] == ["clone", "config", "start"] and started["vm_status"] == "running"
    assert started["address"] == "10.77.0.11", "inside cidr, not the CNI bridge"
    assert started["addresses"] == ["10.42.0.1", "10.77.0.11"], "no loopback"
    assert started["host_key"] == HOST_KEY
    assert ("file-read", {"file": HOST_KEY_FILE}) in pve_site.pve.vm(VMID).agent_requests

    pve_site.pve.requests.clear()
    run, again = vm_task(ansible_cli, pve_site, state="started")
    assert run.rc == 0, run.describe()
    assert not again["changed"] and again["address"] == "10.77.0.11" and writes(pve_site) == []


def test_started_without_cidr_prefers_the_vms_own_nic_and_a_missing_host_key_is_null(ansible_cli, pve_site):
    watcher = agent_when_running(pve_site, agent={"interfaces": agent_interfaces("10.77.0.11", 24)})
    run, started = vm_task(ansible_cli, pve_site, state="started", cidr=None)
    watcher.join(1)
    assert run.rc == 0, run.describe()
    assert started["address"] == "10.77.0.11" and started["host_key"] is None
    assert any("host key" in w for w in started["warnings"])


def test_an_agent_that_never_answers_times_out_naming_the_vm(ansible_cli, pve_site):
    run, result = vm_task(ansible_cli, pve_site, state="started", wait_timeout=2)
    assert run.rc != 0
    assert "cp1" in result["msg"] and f"vmid {VMID}" in result["msg"] and "wait_timeout=2" in result["msg"]
    assert "QEMU guest agent is not running" in result["msg"], "what was last seen"
    assert pve_site.pve.vm(VMID).status == "running"


def test_a_596_on_start_is_checked_and_retried(ansible_cli, pve_site):
    vm_task(ansible_cli, pve_site)
    pve_site.pve.fail("POST", f"/nodes/pve1/qemu/{VMID}/status/start", 596, "Connection timed out", times=1)
    watcher = agent_when_running(pve_site, agent=site_agent())
    run, started = vm_task(ansible_cli, pve_site, state="started")
    watcher.join(1)
    assert run.rc == 0, run.describe()
    assert started["actions"] == ["start"] and started["vm_status"] == "running" and started["address"] == "10.77.0.11"
    starts = [w for w in writes(pve_site) if w[1].endswith("/status/start")]
    assert len(starts) == 2 and pve_site.pve.vm(VMID).status == "running"
    assert any("596" in w for w in started["warnings"])


def test_a_failing_clone_task_reports_its_log_and_a_rerun_converges_without_duplicates(ansible_cli, pve_site):
    pve_site.pve.storages["local-lvm"]["avail"] = 1024  # the clone's disk does not fit: TASK ERROR
    run, failed = vm_task(ansible_cli, pve_site)
    assert run.rc != 0
    assert "cloning template 'nixos-base'" in failed["msg"] and "No space left on device" in failed["msg"]
    assert failed["log_tail"] and failed["exitstatus"].startswith("clone failed")
    assert pve_site.pve.vm(VMID) is None, "fakepve removes the half-made clone when its task fails"

    del pve_site.pve.storages["local-lvm"]["avail"]
    run, again = vm_task(ansible_cli, pve_site)
    assert run.rc == 0, run.describe()
    assert again["actions"] == ["clone", "config"]
    assert [v.vmid for v in pve_site.pve.vms if v.name == "cp1"] == [VMID]


def test_an_interrupted_run_is_adopted(ansible_cli, pve_site):
    """A clone that got its tag (the first config write) but not the rest: the next run finishes it."""
    vm_task(ansible_cli, pve_site)
    config = pve_site.pve.vm(VMID).config
    for key in ("ciuser", "sshkeys", "ipconfig0", "nameserver", "searchdomain", "description", "onboot"):
        config.pop(key, None)
    config["tags"] = SITE_TAG
    run, again = vm_task(ansible_cli, pve_site)
    assert run.rc == 0, run.describe()
    assert again["actions"] == ["config"] and "clone" not in again["actions"]
    assert len([v for v in pve_site.pve.vms if v.name == "cp1"]) == 1


@pytest.mark.parametrize(("status", "message"), [(596, "Connection timed out"), (503, "Service Unavailable")])
def test_a_clone_whose_answer_was_lost_is_adopted_by_a_plain_rerun(ansible_cli, pve_site, status, message):
    """Proxmox made the clone but its answer never came back (a proxy's 596, a 503, a timeout, a run killed at the
    clone): the run fails saying so, and the next one proves the untagged guest is its own from the marker the clone
    request carried, and finishes it; no second guest, and a third run changes nothing."""
    clone = f"/nodes/pve1/qemu/{pve_site.template_vmid}/clone"
    pve_site.pve.fail("POST", clone, status, message, times=1)
    run, failed = vm_task(ansible_cli, pve_site)
    assert run.rc != 0 and "cloning template 'nixos-base'" in failed["msg"], run.describe()
    # The server acted on that very request: it is replayed as sent (fakepve's faults answer instead of acting).
    sent = dict(parse_qsl(body_of(pve_site, "POST", "/clone")))
    assert sent["description"] == "nerv.homelab clone of nixos-base for host cp1 of site demo"
    api = pve_site.api()
    upid = api.nodes("pve1").qemu(pve_site.template_vmid).clone.post(**sent)
    Tasks.blocking_status(api, upid, timeout=30)
    left = pve_site.pve.vm(VMID)
    assert SITE_TAG not in str(left.config.get("tags")), "what a lost answer leaves: a clone without the site's tag"

    run, adopted = vm_task(ansible_cli, pve_site)
    assert run.rc == 0, run.describe()
    assert adopted["changed"] and adopted["actions"] == ["config"], adopted
    assert any("adopted" in w for w in adopted["warnings"])
    config = pve_site.pve.vm(VMID).config
    assert SITE_TAG in config["tags"] and config["description"] == "cp1 of site demo"
    run, again = vm_task(ansible_cli, pve_site)
    assert run.rc == 0 and not again["changed"], run.describe()
    assert [v.vmid for v in pve_site.pve.vms if v.name == "cp1"] == [VMID], "no guest left behind"


def test_a_token_revoked_at_the_clone_fails_clearly_and_a_rerun_converges(ansible_cli, pve_site):
    """The token refused at the clone (revoked between two clones): nothing is made, the message names the token and
    never its secret, and a plain re-run with a valid token clones, then changes nothing."""
    clone = f"/nodes/pve1/qemu/{pve_site.template_vmid}/clone"
    pve_site.pve.fail("POST", clone, 401, "invalid token value!", times=1)
    run, failed = vm_task(ansible_cli, pve_site)
    assert run.rc != 0 and pve_site.token_id in failed["msg"] and "401" in failed["msg"], run.describe()
    assert pve_site.pve.vm(VMID) is None
    run, again = vm_task(ansible_cli, pve_site)
    assert run.rc == 0 and again["actions"] == ["clone", "config"], run.describe()
    run, third = vm_task(ansible_cli, pve_site)
    assert run.rc == 0 and not third["changed"]
    assert [v.vmid for v in pve_site.pve.vms if v.name == "cp1"] == [VMID]


def test_an_untagged_guest_without_the_marker_is_still_refused(ansible_cli, pve_site):
    """Only a guest the run can prove is its own is adopted: another host's marker, or none, is refused."""
    pve_site.pve.add_vm(VMID, "cp1", node="pve1", config={"tags": "k8s",
                        "description": "nerv.homelab clone of nixos-base for host cp2 of site demo"})  # fmt: skip
    run, result = vm_task(ansible_cli, pve_site)
    assert run.rc != 0 and "without the tag" in result["msg"] and writes(pve_site) == []


def test_a_locked_template_is_waited_for_then_a_clear_error(ansible_cli, pve_site):
    pve_site.pve.snapshot_lock(pve_site.template_vmid, "backup")
    started = time.monotonic()
    run, result = vm_task(ansible_cli, pve_site, lock_timeout=2)
    assert run.rc != 0
    assert time.monotonic() - started >= 2, "it waited lock_timeout"
    assert "template 'nixos-base'" in result["msg"] and "'backup'" in result["msg"] and "lock_timeout" in result["msg"]
    assert pve_site.pve.vm(VMID) is None and writes(pve_site) == []


def test_a_template_lock_that_clears_in_time_is_waited_out(ansible_cli, pve_site):
    pve_site.pve.snapshot_lock(pve_site.template_vmid, "backup")
    timer = threading.Timer(1.5, pve_site.pve.unlock, args=(pve_site.template_vmid,))
    timer.start()
    try:
        run, result = vm_task(ansible_cli, pve_site, lock_timeout=30)
    finally:
        timer.cancel()
    assert run.rc == 0, run.describe()
    assert result["actions"] == ["clone", "config"]


def test_a_disk_shrink_is_refused_before_anything_is_written(ansible_cli, pve_site):
    run, result = vm_task(ansible_cli, pve_site, disk=8)
    assert run.rc != 0
    assert "disk" in result["msg"] and "never shrunk" in result["msg"] and "16 or more" in result["msg"]
    assert writes(pve_site) == [] and pve_site.pve.vm(VMID) is None


def test_a_foreign_vm_at_the_vmid_is_refused_and_untouched(ansible_cli, pve_site):
    foreign = pve_site.pve.add_vm(VMID, "cp1", node="pve1", status="running", config={"cores": 1, "tags": "other"})
    before = dict(foreign.config)
    for state in ("present", "absent"):
        run, result = vm_task(ansible_cli, pve_site, state=state, force=True)
        assert run.rc != 0
        assert f"vmid {VMID}" in result["msg"] and SITE_TAG in result["msg"] and "never touched" in result["msg"]
    assert foreign.config == before and foreign.status == "running" and writes(pve_site) == []


def test_another_vm_of_the_site_at_the_vmid_is_refused(ansible_cli, pve_site):
    vm_task(ansible_cli, pve_site)
    pve_site.pve.requests.clear()
    run, result = vm_task(ansible_cli, pve_site, name="worker1")
    assert run.rc != 0 and "'cp1'" in result["msg"] and "'worker1'" in result["msg"]
    assert writes(pve_site) == []


def test_stopped_shuts_a_running_vm_down(ansible_cli, pve_site):
    watcher = agent_when_running(pve_site)
    run, _started = vm_task(ansible_cli, pve_site, state="started", cidr=None)
    watcher.join(1)
    assert run.rc == 0, run.describe()
    run, result = vm_task(ansible_cli, pve_site, state="stopped")
    assert run.rc == 0, run.describe()
    assert result["actions"] == ["stop"] and result["vm_status"] == "stopped"
    assert any(path.endswith("/status/shutdown") for _m, path in writes(pve_site))
    assert pve_site.pve.vm(VMID).status == "stopped"


def test_absent_removes_the_vm_then_changes_nothing(ansible_cli, pve_site):
    vm_task(ansible_cli, pve_site)
    run, removed = vm_task(ansible_cli, pve_site, state="absent")
    assert run.rc == 0, run.describe()
    assert removed["changed"] and removed["actions"] == ["delete"] and removed["vm_status"] == "absent"
    assert pve_site.pve.vm(VMID) is None
    destroy = [t for t in pve_site.pve.tasklog if t["type"] == "qmdestroy"]
    assert any("purging VM" in line for line in destroy[-1]["log"]), "removed with purge=1"

    pve_site.pve.requests.clear()
    run, again = vm_task(ansible_cli, pve_site, state="absent")
    assert run.rc == 0, run.describe()
    assert not again["changed"] and again["actions"] == [] and writes(pve_site) == []


def test_absent_refuses_a_running_or_protected_vm_without_force(ansible_cli, pve_site):
    vm_task(ansible_cli, pve_site)
    vm = pve_site.pve.vm(VMID)
    vm.status = vm.qmpstatus = "running"
    vm.config["protection"] = 1
    pve_site.pve.requests.clear()
    run, refused = vm_task(ansible_cli, pve_site, state="absent")
    assert run.rc != 0
    assert "running" in refused["msg"] and "protected" in refused["msg"] and "force: true" in refused["msg"]
    assert pve_site.pve.vm(VMID) is not None and writes(pve_site) == []

    run, forced = vm_task(ansible_cli, pve_site, state="absent", force=True)
    assert run.rc == 0, run.describe()
    assert forced["actions"] == ["stop", "unprotect", "delete"] and pve_site.pve.vm(VMID) is None


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"ipconfig0": "10.77.0.11/24"}, ["ipconfig0", "ip=10.0.0.11/24,gw=10.0.0.1"]),
        ({"ipconfig0": "ip=10.77.0.11,gw=10.77.0.1"}, ["ipconfig0", "prefix"]),
        ({"tags": ["bad tag!"]}, ["tags", "'bad tag!'"]),
        ({"template": "no-such-template"}, ["template 'no-such-template' not found"]),
        ({"vmid": 42}, ["vmid 42", "100..999999999"]),
        ({"full": False}, ["storage is only for full clones"]),
    ],
)
def test_bad_input_fails_early_naming_the_option(ansible_cli, pve_site, changes, words):
    run, result = vm_task(ansible_cli, pve_site, **changes)
    assert run.rc != 0
    for word in words:
        assert word in result["msg"], result["msg"]
    assert writes(pve_site) == [] and pve_site.pve.vm(VMID) is None


def test_a_wrong_token_secret_never_shows(ansible_cli, pve_site):
    canary = "canary-0b1c2d3e-secret-4f5a6b7c"
    run, result = vm_task(ansible_cli, pve_site, env=pve_site.proxmox_env(secret=canary))
    assert run.rc != 0 and "401" in result["msg"]
    assert canary not in run.output and canary not in str(run.results)


def test_a_locked_vm_is_waited_for_then_a_clear_error_and_untouched(ansible_cli, pve_site):
    vm_task(ansible_cli, pve_site)
    pve_site.pve.snapshot_lock(VMID, "backup")
    pve_site.pve.requests.clear()
    run, result = vm_task(ansible_cli, pve_site, cores=8, lock_timeout=1)
    assert run.rc != 0
    assert "cp1" in result["msg"] and "'backup'" in result["msg"] and f"qm unlock {VMID}" in result["msg"]
    assert writes(pve_site) == [] and str(pve_site.pve.vm(VMID).config["cores"]) == "4"

    pve_site.pve.requests.clear()
    run, unchanged = vm_task(ansible_cli, pve_site, lock_timeout=1)
    assert run.rc == 0 and not unchanged["changed"], "nothing to do: a lock does not matter"


def test_stopped_with_force_stops_at_once(ansible_cli, pve_site):
    vm_task(ansible_cli, pve_site)
    vm = pve_site.pve.vm(VMID)
    vm.status = vm.qmpstatus = "running"
    pve_site.pve.requests.clear()
    run, result = vm_task(ansible_cli, pve_site, state="stopped", force=True)
    assert run.rc == 0, run.describe()
    assert result["actions"] == ["stop"] and vm.status == "stopped"
    assert writes(pve_site) == [("POST", f"/api2/json/nodes/pve1/qemu/{VMID}/status/stop")]


def test_a_change_to_a_running_vm_is_pending_and_not_sent_twice(ansible_cli, pve_site):
    vm_task(ansible_cli, pve_site)
    vm = pve_site.pve.vm(VMID)
    vm.status = vm.qmpstatus = "running"
    run, changed = vm_task(ansible_cli, pve_site, cores=6)
    assert run.rc == 0, run.describe()
    assert changed["actions"] == ["config"] and vm.pending.get("cores") in (6, "6")
    assert any("next start" in w and "cores" in w for w in changed["warnings"])

    pve_site.pve.requests.clear()
    run, again = vm_task(ansible_cli, pve_site, cores=6)
    assert run.rc == 0 and not again["changed"] and writes(pve_site) == []


def test_a_config_write_that_meets_pves_file_lock_is_retried_until_it_is_free(ansible_cli, pve_site):
    vm_task(ansible_cli, pve_site)
    # Another worker holds the VM's config file lock: PUT answers "can't lock file ... got timeout" (HTTP 500).
    pve_site._loop.call(pve_site.pve.hold_config_lock(VMID, None))  # pylint: disable=protected-access
    timer = threading.Timer(1.5, pve_site.pve.release_config_lock, args=(VMID,))
    timer.start()
    try:
        run, result = vm_task(ansible_cli, pve_site, cores=6, lock_timeout=30)
    finally:
        timer.cancel()
    assert run.rc == 0, run.describe()
    assert result["actions"] == ["config"] and str(pve_site.pve.vm(VMID).config["cores"]) == "6"
    puts = [w for w in writes(pve_site) if w[0] == "PUT"]
    assert len(puts) >= 2, "the first PUT met the lock"

    pve_site._loop.call(pve_site.pve.hold_config_lock(VMID, None))  # pylint: disable=protected-access
    run, failed = vm_task(ansible_cli, pve_site, cores=8, lock_timeout=1)
    pve_site.pve.release_config_lock(VMID)
    assert run.rc != 0
    assert "can't lock file" in failed["msg"] and "lock_timeout=1" in failed["msg"] and "cp1" in failed["msg"]


def test_a_refused_clone_request_says_what_and_why(ansible_cli, pve_site):
    template = f"/nodes/pve1/qemu/{pve_site.template_vmid}/clone"
    pve_site.pve.fail("POST", template, error="storage_not_available", times=1)
    run, result = vm_task(ansible_cli, pve_site)
    assert run.rc != 0
    assert "cloning template 'nixos-base'" in result["msg"] and "is not available on node" in result["msg"]
    assert result["http_status"] == 500 and pve_site.pve.vm(VMID) is None


def test_a_clone_to_another_node_onto_local_storage_is_refused_early(ansible_cli, pve_site):
    run, result = vm_task(ansible_cli, pve_site, name="worker2", vmid=103, node="pve2")
    assert run.rc != 0
    assert "is on pve1 and node is pve2" in result["msg"] and "local-lvm is not shared" in result["msg"]
    assert writes(pve_site) == [] and pve_site.pve.vm(103) is None


def test_a_clone_to_another_node_onto_shared_storage_lands_there(ansible_cli, pve_site):
    pve_site.pve.add_ceph_storage("ceph")
    run, result = vm_task(ansible_cli, pve_site, name="worker2", vmid=103, node="pve2", storage="ceph")
    assert run.rc == 0, run.describe()
    assert result["node"] == "pve2" and pve_site.pve.vm(103).node == "pve2"
    assert pve_site.pve.vm(103).config["scsi0"].startswith("ceph:")
    pve_site.pve.requests.clear()
    run, again = vm_task(ansible_cli, pve_site, name="worker2", vmid=103, node="pve2", storage="ceph")
    assert run.rc == 0 and not again["changed"] and writes(pve_site) == []

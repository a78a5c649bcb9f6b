"""A run stopped while proxmox_vm works in the background (Ctrl-C, SIGKILL): Ansible's async jobs outlive their run,
so the job watches it (run_pid, the lookup nerv.homelab.run_pid) and stops at its next look, saying where; it must not
go on waiting for the guest agent, or cloning and starting VMs, for nobody."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from .._ansible import executable
from .test_proxmox_vm import MODULE, VMID, options, writes


def playbook(pve_site) -> list:
    vm = options(pve_site, state="started", wait_timeout=240)
    vm["run_pid"] = "{{ lookup('nerv.homelab.run_pid') }}"
    return [{"name": "VM", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "VM", MODULE: vm, "async": 600, "poll": 0, "register": "job"},
        {"name": "Wait", "ansible.builtin.async_status": {"jid": "{{ job.ansible_job_id }}"}, "register": "done",
         "until": "done.finished", "retries": 600, "delay": 1},
    ]}]  # fmt: skip


def job_results(directory) -> list:
    found = []
    for path in directory.glob("*") if directory.is_dir() else []:
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_stopped_run_stops_its_background_vm_job(ansible_cli, pve_site, stop):
    path = ansible_cli.write_playbook(playbook(pve_site))
    env = ansible_cli.environment(pve_site.proxmox_env())
    argv = [str(executable("ansible-playbook")), "-i", str(ansible_cli.localhost_inventory()), str(path)]
    proc = subprocess.Popen(argv, cwd=ansible_cli.repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the VM is cloned and started, and the job waits for its guest agent, which fakepve's clone never has
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            vm = pve_site.pve.vm(VMID)
            if vm is not None and vm.status == "running":
                break
            time.sleep(0.2)
        else:
            pytest.fail("the VM never started")
        time.sleep(1)
        proc.send_signal(stop)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stopped_at = len(writes(pve_site))
    async_dir = ansible_cli.tmp_path / "ansible-tmp" / "async"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ended = [r for r in job_results(async_dir) if r.get("finished") or "failed" in r or "msg" in r]
        if ended:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the job still runs 30 s after its run ended (it would wait 240 s for the guest agent)")
    (result,) = ended
    assert result.get("failed") and "has ended: stopped before waiting on" in result["msg"], result
    assert "run the playbook again" in result["msg"]
    assert len(writes(pve_site)) == stopped_at, "nothing written after the run ended"


def test_a_run_killed_at_the_clone_leaves_a_guest_the_next_run_adopts(ansible_cli, pve_site_factory):
    """SIGKILL while Proxmox clones (a slow clone on Ceph): the job stops at its next look, the clone finishes in
    Proxmox without its answer reaching anyone, and a plain re-run adopts the untagged guest by the marker its
    clone request carried, then changes nothing; one guest."""
    from .test_proxmox_vm import vm_task

    site = pve_site_factory(time_scale=1)
    site.pve.ceph_slow(6)  # each RBD operation, the clone's copy among them, takes 6 s longer
    vm = dict(playbook(site)[0]["tasks"][0][MODULE], storage="ceph-vm", state="present")
    plays = playbook(site)
    plays[0]["tasks"][0][MODULE] = vm
    path = ansible_cli.write_playbook(plays)
    env = ansible_cli.environment(site.proxmox_env())
    argv = [str(executable("ansible-playbook")), "-i", str(ansible_cli.localhost_inventory()), str(path)]
    proc = subprocess.Popen(argv, cwd=ansible_cli.repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while site.pve.vm(VMID) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert site.pve.vm(VMID) is not None, "the clone never started"
        proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 60
    while (site.pve.vm(VMID) is None or site.pve.vm(VMID).config.get("lock")) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = site.pve.vm(VMID)
    assert left is not None and not left.config.get("lock"), "Proxmox finished the clone on its own"
    assert "nerv-site-demo" not in str(left.config.get("tags")), "killed before its first config write"

    run, adopted = vm_task(ansible_cli, site, storage="ceph-vm")
    assert run.rc == 0, run.describe()
    assert adopted["changed"] and adopted["actions"] == ["config"] and any("adopted" in w for w in adopted["warnings"])
    run, again = vm_task(ansible_cli, site, storage="ceph-vm")
    assert run.rc == 0 and not again["changed"], run.describe()
    assert [v.vmid for v in site.pve.vms if v.name == "cp1"] == [VMID], "no guest left behind"

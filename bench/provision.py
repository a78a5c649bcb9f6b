"""Benchmark: provisioning 1 VM against 6 VMs with playbooks/provision.yml, and the writes of a no-op re-run.

    .venv/bin/python bench/provision.py            (about a minute)

For each size it serves a fakepve (hacking/fakepve_site.py) shaped like inventory/demo with that many VM hosts,
in PVE time (time_scale 1) with 20 ms per request, a start task of --start-seconds and a guest agent that comes
up --boot-seconds after the VM starts, plus a template to clone. It runs `ansible-playbook playbooks/provision.yml`
(clone, configure, start, wait for the agent's address and host key, pin known_hosts) and times the whole run,
then runs it again and counts the requests that were not GETs. The target: 6 VMs in parallel take less than
twice the time of 1, and a no-op re-run writes nothing.
"""

from __future__ import annotations

import argparse
import copy
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hacking"))

from fakepve_site import SiteFake, write_state  # noqa: E402

DEMO = REPO / "inventory" / "demo" / "site.yml"
TEMPLATE = 9000


def site_with(count: int) -> dict:
    """The demo site with count VM workers (the first one the control plane) and no bare metal."""
    site = yaml.safe_load(DEMO.read_text())
    hosts = []
    for index in range(count):
        role = "control-plane" if index == 0 else "worker"
        name = "cp1" if index == 0 else f"worker{index}"
        # On the template's node with its disk size, as the results in docs/benchmarks.md were measured.
        host = {"name": name, "role": role, "kind": "vm", "vmid": 101 + index, "node": site["template"]["node"]}
        host["ip"] = f"10.77.0.{11 + index}/24"
        host["disk"] = site["template"]["disk"]
        hosts.append(host)
    site["hosts"] = hosts
    return site


def add_template(fake: SiteFake, site: dict) -> None:
    """The template a previous playbooks/template.yml run left: tagged, with a disk and a cloud-init drive."""
    storage = site["proxmox"]["storage"]
    config = {
        "cores": 2,
        "memory": 2048,
        "scsi0": f"{storage}:base-{TEMPLATE}-disk-0,size=16G",
        "ide2": f"{storage}:vm-{TEMPLATE}-cloudinit,media=cdrom",
        "net0": f"virtio,bridge={site['proxmox']['bridge']}",
        "agent": "1",
        "tags": "nerv-template;nerv-build-bench;nerv-phase-template",
    }
    fake.pve.add_vm(TEMPLATE, "nixos-base", node=site["template"]["node"], template=True, config=config)


def run_playbook(inventory: Path, env: dict) -> tuple:
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/provision.yml", "-i", str(inventory)]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise SystemExit(f"bench: provision.yml failed (exit {done.returncode}):\n{tail}")
    return seconds, done.stdout


def bench(count: int, args) -> dict:
    site = site_with(count)
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix=f"nerv-bench-provision-{count}-") as tmp:
        workdir = Path(tmp)
        fake = SiteFake(copy.deepcopy(site), secret, workdir, host="127.0.0.1", port=0, boot_seconds=args.boot_seconds)
        try:
            fake.pve.time_scale = 1.0
            fake.pve.slow_network(args.latency)
            add_template(fake, site)
            write_state(site, fake, workdir)
            inventory = workdir / "inventory"
            (inventory / "group_vars").mkdir(parents=True)
            (inventory / "hosts.yml").write_text(
                yaml.safe_dump(
                    {
                        "all": {
                            "hosts": {
                                "localhost": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": sys.executable,
                                }
                            }
                        }
                    }
                )
            )
            (inventory / "group_vars" / "all.yml").write_text(
                yaml.safe_dump({"nerv_site_file": str(workdir / "site.yml")})
            )
            env = dict(os.environ, **{site["proxmox"]["token_secret_env"]: secret})
            env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
            slow_start(fake, args.start_seconds)
            first, _out = run_playbook(inventory, env)
            fake.pve.requests.clear()
            second, _out = run_playbook(inventory, env)
            writes = [(m, p) for m, p, _b in fake.pve.requests if m != "GET"]
        finally:
            fake.stop()
    return {"vms": count, "seconds": round(first, 2), "rerun_seconds": round(second, 2), "rerun_writes": len(writes)}


def slow_start(fake: SiteFake, seconds: float) -> None:
    """Every VM's start task takes `seconds` (PVE's qmstart for a VM with a few GiB of RAM): set on each new VM."""
    import asyncio

    async def watch():
        while True:
            for vm in list(fake.pve.vms):
                if not vm.template and vm.start_secs != seconds:
                    vm.start_secs = seconds
            await asyncio.sleep(0.05)

    asyncio.run_coroutine_threadsafe(watch(), fake.loop)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,6", help="VM counts (default 1,6)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request (default 0.02)")
    parser.add_argument("--start-seconds", type=float, default=3, help="duration of a start task (default 3)")
    parser.add_argument("--boot-seconds", type=float, default=8, help="start to agent address (default 8)")
    args = parser.parse_args(argv)
    results = [bench(int(n), args) for n in args.sizes.split(",")]
    print(f"fakepve: time_scale 1, {args.latency * 1000:g} ms per request, start {args.start_seconds:g} s, ", end="")
    print(f"agent up {args.boot_seconds:g} s after start; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    print(f"{'VMs':>4} {'provision s':>12} {'no-op re-run s':>15} {'re-run writes':>14}")
    for r in results:
        print(f"{r['vms']:>4} {r['seconds']:>12.2f} {r['rerun_seconds']:>15.2f} {r['rerun_writes']:>14}")
    if len(results) >= 2:
        ratio = results[-1]["seconds"] / results[0]["seconds"]
        verdict = "met" if ratio < 2 else "NOT met"
        print(f"\n{results[-1]['vms']} VMs / {results[0]['vms']} VM: {ratio:.2f}x (target < 2x: {verdict})")
    quiet = all(r["rerun_writes"] == 0 for r in results)
    print(f"no write request on a no-op re-run: {'met' if quiet else 'NOT met'}")
    return 0 if quiet and (len(results) < 2 or ratio < 2) else 1


if __name__ == "__main__":
    sys.exit(main())

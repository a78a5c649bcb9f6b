"""Benchmark: a run of the demo's site.yml that changes nothing, next to a floor measured in the same run.

    .venv/bin/python bench/noop.py            # 3 no-op runs and 3 floor runs (about 2 minutes)
    .venv/bin/python bench/noop.py --runs 1   # a smoke run
    .venv/bin/python bench/noop.py --json     # the same, as JSON on stdout (progress stays on stderr)

In a private temporary directory it copies inventory/demo as `make demo` does (a throwaway admin age identity, a
stand-in ISO), serves fakepve shaped like the site on a thread of this process (hacking/fakepve_site.py, playing
the installer and the guest agents), and runs `ansible-playbook playbooks/site.yml --skip-tags install,bootstrap`
once to make everything. Then, alternating, it times the same command again (the no-op run) and the floor: the
same ansible-playbook with the same inventory, configuration and number of plays (those site.yml imports), each
play with no task - what Ansible costs before the collection does anything. For each no-op run it counts:
- module executions: every module process Ansible starts, counted by an interpreter wrapper given as
  ansible_python_interpreter (an action plugin such as copy may start several for one task), by module;
- steps: the tasks that ran a module (the bench callback bench/callback_plugins/nerv_bench.py times every task);
- API requests the fake served, and how many of them wrote (anything but GET).
The wall time is the whole ansible-playbook process, as a user sees it.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "hacking"))
from demo import admin_identity  # noqa: E402
from fakepve_site import SiteFake, write_state  # noqa: E402

DEMO = REPO / "inventory" / "demo"
SKIP = "install,bootstrap"
# Plays that run no module: the ones site.yml imports but whose tasks are all of the controller itself.
CONTROLLER_ACTIONS = {
    "ansible.builtin.set_fact", "ansible.builtin.debug", "ansible.builtin.assert", "ansible.builtin.fail",
    "ansible.builtin.add_host", "ansible.builtin.include_role", "ansible.builtin.include_tasks",
    "ansible.builtin.validate_argument_spec", "ansible.builtin.meta",
}  # fmt: skip


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def counting_interpreter(work: Path) -> Path:
    """ansible_python_interpreter that logs each module Ansible starts, then runs it with this Python."""
    wrapper = work / "python-counting"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "$NERV_BENCH_EXEC_LOG"\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def floor_playbook(work: Path) -> Path:
    """As many plays as site.yml has once its imports are expanded, each without tasks."""
    plays = []
    for play in yaml.safe_load((REPO / "playbooks" / "site.yml").read_text()):
        imported = play.get("ansible.builtin.import_playbook")
        count = len(yaml.safe_load((REPO / "playbooks" / imported).read_text())) if imported else 1
        plays += [{"name": f"floor {len(plays) + i + 1}", "hosts": "localhost", "gather_facts": False, "tasks": []}
                  for i in range(count)]  # fmt: skip
    path = work / "floor.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


class Rig:
    """The demo site copied and served by fakepve, and the commands that run against it."""

    def __init__(self, work: Path):
        self.work = work
        self.inventory = work / "inventory"
        shutil.copytree(DEMO, self.inventory, ignore=shutil.ignore_patterns(".state", "proxmox.yml"))
        key_file, recipient = admin_identity(work)
        site = yaml.safe_load((DEMO / "site.yml").read_text())
        site["sops"]["admin_recipients"] = [recipient]
        secret = secrets.token_hex(16)
        self.fake = SiteFake(site, secret, work, host="127.0.0.1", port=0)
        write_state(site, self.fake, work)
        shutil.move(work / "site.yml", self.inventory / "site.yml")
        self.interpreter = counting_interpreter(work)
        self.env = dict(os.environ, SOPS_AGE_KEY_FILE=str(key_file), **{site["proxmox"]["token_secret_env"]: secret})
        self.env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), XDG_CACHE_HOME=str(work / "cache"))
        self.env.update(
            ANSIBLE_CALLBACK_PLUGINS=str(BENCH / "callback_plugins"), ANSIBLE_CALLBACKS_ENABLED="nerv_bench"
        )
        self.env.pop("SOPS_AGE_KEY", None)

    def playbook(self, playbook: Path, *args: str, tag: str) -> dict:
        """Run ansible-playbook; its wall time, recap, module executions and timed tasks."""
        execs, timed = self.work / f"{tag}.execs", self.work / f"{tag}.json"
        env = dict(self.env, NERV_BENCH_EXEC_LOG=str(execs), NERV_BENCH_OUTPUT=str(timed))
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", str(self.inventory)]
        argv += ["-e", f"ansible_python_interpreter={self.interpreter}", *args]
        self.fake.pve.requests.clear()
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
            raise SystemExit(f"bench: {playbook.name} failed (exit {done.returncode}):\n{tail}")
        modules = [m.group(1) for m in re.finditer(r"AnsiballZ_(\w+)\.py", execs.read_text() if execs.exists() else "")]
        requests = list(self.fake.pve.requests)
        recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)", done.stdout)
        tasks = json.loads(timed.read_text())["tasks"] if timed.exists() else []
        ran = [t for t in tasks if t.get("status", {}).keys() - {"skipped", "item_skipped"}]
        return {
            "seconds": seconds,
            "changed": int(recap.group(2)) if recap else None,
            "modules": modules,
            "tasks": tasks,
            "steps": [t for t in ran if t["action"] not in CONTROLLER_ACTIONS],
            "requests": len(requests),
            "writes": sum(1 for method, _path, _body in requests if method != "GET"),
        }

    def site(self, tag: str) -> dict:
        iso = self.work / "installer.iso"
        extra = ["-e", f"proxmox_template_iso={iso}", "-e", "proxmox_template_progress_every=2"]
        return self.playbook(REPO / "playbooks" / "site.yml", "--skip-tags", SKIP, *extra, tag=tag)


def measure(runs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="nerv-bench-noop-") as tmp:
        rig = Rig(Path(tmp))
        try:
            log("first run: makes the keys, the template and the VMs")
            first = rig.site("first")
            floor_path = floor_playbook(Path(tmp))
            noops, floors = [], []
            for index in range(runs):
                log(f"no-op run {index + 1} of {runs}, then the floor")
                noops.append(rig.site(f"noop{index}"))
                floors.append(rig.playbook(floor_path, tag=f"floor{index}"))
        finally:
            rig.fake.stop()
    return summary(first, noops, floors)


def summary(first: dict, noops: list, floors: list) -> dict:
    last = noops[-1]
    wall = statistics.median(n["seconds"] for n in noops)
    floor = statistics.median(f["seconds"] for f in floors)
    steps = collections.Counter(s["name"] for s in last["steps"])
    in_steps = sum(t["seconds"] for t in last["steps"])
    slowest = sorted(last["steps"], key=lambda t: -t["seconds"])
    return {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}",
        "first_run_seconds": round(first["seconds"], 2),
        "first_run_changed": first["changed"],
        "noop_seconds": [round(n["seconds"], 2) for n in noops],
        "floor_seconds": [round(f["seconds"], 2) for f in floors],
        "noop_median": round(wall, 2),
        "floor_median": round(floor, 2),
        "ratio": round(wall / floor, 2),
        "noop_changed": [n["changed"] for n in noops],
        "module_executions": len(last["modules"]),
        "modules": dict(collections.Counter(last["modules"]).most_common()),
        "steps": len(last["steps"]),
        "steps_by_time": [(round(t["seconds"], 2), t["name"]) for t in slowest],
        "repeated_steps": {name: count for name, count in steps.items() if count > 1},
        "seconds_in_steps": round(in_steps, 2),
        "seconds_in_other_tasks": round(sum(t["seconds"] for t in last["tasks"]) - in_steps, 2),
        "tasks": len(last["tasks"]),
        "api_requests": last["requests"],
        "api_writes": last["writes"],
    }  # fmt: skip


def report(result: dict) -> str:
    lines = [
        f"{result['date']}, {result['machine']}",
        f"first run (makes everything): {result['first_run_seconds']} s, changed={result['first_run_changed']}",
        "",
        "run                               wall s (median)   runs",
        f"site.yml, nothing to change       {result['noop_median']:>8}          {result['noop_seconds']}",
        f"floor: same plays, no tasks       {result['floor_median']:>8}          {result['floor_seconds']}",
        "",
        f"no-op / floor: {result['ratio']}x (target <= 3x: {'met' if result['ratio'] <= 3 else 'not met'})",
        f"no-op wall: {result['noop_median']} s (target < 30 s: {'met' if result['noop_median'] < 30 else 'not met'})",
        f"changed in the no-op runs: {result['noop_changed']}",
        f"API requests: {result['api_requests']}, of which writes: {result['api_writes']}"
        f" (target 0 writes: {'met' if result['api_writes'] == 0 else 'not met'})",
        f"module executions: {result['module_executions']} in {result['steps']} steps"
        f" (target at most one per step: {'met' if result['module_executions'] <= result['steps'] else 'not met'})",
        "  by module: " + ", ".join(f"{name} {count}" for name, count in result["modules"].items()),
        f"time: {result['seconds_in_steps']} s in the {result['steps']} steps that ran a module,"
        f" {result['seconds_in_other_tasks']} s in the other {result['tasks'] - result['steps']} tasks"
        " (controller-only or skipped); the rest is Ansible's start and plays",
    ]
    if result["repeated_steps"]:
        lines.append(
            "  steps run more than once: " + ", ".join(f"{n} x{c}" for n, c in result["repeated_steps"].items())
        )
    lines.append("  slowest steps: " + "; ".join(f"{name} {secs} s" for secs, name in result["steps_by_time"][:6]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="no-op and floor runs, alternating (default 3)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = measure(max(1, args.runs))
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""make demo (hacking/demo.py): site.yml for inventory/demo through its Proxmox phases against fakepve, twice, then
install and bootstrap in check mode (no host answers: each step plans without it), saying what it simulated, run by
run as it goes; the repository's demo site is left as it was. README.md's `make demo` is this test's command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_demo_runs_the_proxmox_phases_then_changes_nothing(tmp_path):
    before = {p: p.read_bytes() for p in (REPO / "inventory" / "demo").rglob("*") if p.is_file()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SOPS_", "NERV_"))}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"))
    # the venv running these tests is the one `make demo` installs into (.venv in CI)
    done = subprocess.run(["make", "demo", f"VENV={sys.prefix}"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for number in (1, 2, 3):
        assert f"demo: run {number} of 3: ansible-playbook playbooks/site.yml -i inventory/demo" in output
    assert output.index("demo: run 1 of 3") < output.index("PLAY [") < output.index("demo: run 2 of 3"), (
        "each run's output comes as it runs, under its heading"
    )
    assert "CryptographyDeprecationWarning" not in output and "FAILED - RETRYING" not in output
    first, second = re.findall(r"demo: (?:first|second) run:\s+ok=\d+\s+changed=(\d+)", output)
    assert int(first) > 0 and int(second) == 0, output
    assert "fakepve, a Proxmox VE emulator, serves https://127.0.0.2:8006" in output
    assert "simulated:" in output and "check mode only: install,bootstrap" in output
    check = re.search(r"demo: check run:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", output)
    assert check and int(check.group(1)) > 0, "the check run plans install and bootstrap"
    for line in ("install: mini1 installed, cp1 deployed, worker1 deployed, worker2 deployed", "files pushed",
                 "Check mode plans the install of mini1 without reading the host"):  # fmt: skip
        assert line in output, f"the check run does not say {line!r}"
    for phase in ("keys", "template", "vms"):
        assert f". {phase}: " in output, f"the plan names the {phase} phase"
    after = {p: p.read_bytes() for p in (REPO / "inventory" / "demo").rglob("*") if p.is_file()}
    assert after == before, "the demo wrote into inventory/demo"


def test_make_demo_installs_what_it_runs_and_no_test_toolchain():
    """requirements-demo.txt: what the playbooks need and the emulator, nothing of the test toolchain."""
    lines = [line.strip() for line in (REPO / "requirements-demo.txt").read_text().splitlines()]
    wanted = [line for line in lines if line and not line.startswith("#")]
    assert wanted == ["-r requirements.txt", "fakepve[crypto]>=0.5.0"], wanted
    dry = subprocess.run(["make", "-n", "demo", f"VENV={REPO}/.nowhere"], cwd=REPO, capture_output=True, text=True,
                         check=False)  # fmt: skip
    assert "requirements-demo.txt" in dry.stdout and "requirements-test.txt" not in dry.stdout, dry.stdout

"""DEMO: playbooks/site.yml for inventory/demo through its Proxmox phases, against a local Proxmox emulator.

    .venv/bin/python hacking/demo.py        (make demo)

Nothing here touches a real machine, and this says what it simulates. In a private temporary directory it copies the
demo site and gives it a throwaway admin age identity (the keys phase needs one; the site's own admin keeps theirs).
hacking/fakepve_site.py serves fakepve, a Proxmox VE emulator, at the site's URL as a cluster the site was written
for (its nodes, storages and API token), and plays the guests: the installer VM powers off after a moment, a started
clone's guest agent reports its address and host key. A small file stands in for the installer ISO (Nix cannot build
the real one without nixpkgs). site.yml then runs for real, twice: validate, keys, template, vms; the second run
changes nothing. install and bootstrap need real machines (SSH to installed hosts, a K3s API, GitHub), so a third
run shows them in check mode only: the hosts cannot answer (SSH gives up on each after a second), and each step says
it plans without them; the platform is rendered into a local Git repository standing in for GitHub, and nothing is
pushed. Each run's output streams as it comes. The tests run those phases for real against network namespaces with
sshd, a Kubernetes API emulator and a local Git repository.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from fakepve_site import SiteFake, write_state

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "inventory" / "demo"
LEFT_OUT = "install,bootstrap"
GIT = ("-c", "user.name=nerv demo", "-c", "user.email=demo@localhost")


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def admin_identity(directory: Path) -> tuple[Path, str]:
    """A throwaway age identity for the demo's admin: (key file, recipient)."""
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    key_file = directory / "admin-keys.txt"
    key_file.write_text(f"{identity}\n")
    key_file.chmod(0o600)
    return key_file, str(identity.to_public())


def gitops_repository(directory: Path) -> Path:
    """A bare repository with one commit on main, standing in for the site's GitHub repository."""
    bare, seed = directory / "gitops.git", directory / "gitops-seed"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)], check=True)
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(seed)], check=True)
    (seed / "README.md").write_text("the demo site's GitOps repository\n")
    subprocess.run(["git", "-C", str(seed), "add", "README.md"], check=True)
    subprocess.run(["git", "-C", str(seed), *GIT, "commit", "--quiet", "-m", "initial"], check=True)
    subprocess.run(["git", "-C", str(seed), "push", "--quiet", str(bare), "main"], check=True)
    return bare


def ssh_key(directory: Path) -> Path:
    """A throwaway SSH key the check-mode run would log in with (no host answers here)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    path = directory / "id_ed25519"
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    path.write_bytes(private)
    path.chmod(0o600)
    return path


def run(command: list, env: dict) -> tuple[int, str]:
    """Run a playbook with its output streamed as it comes; (exit code, its recap line)."""
    recap = ""
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:  # fmt: skip
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            found = re.search(r"localhost\s*:\s*(ok=.*)", line)
            recap = found.group(1).strip() if found else recap
    return proc.returncode, recap


def main() -> int:
    site = yaml.safe_load((DEMO / "site.yml").read_text())
    variable = site["proxmox"]["token_secret_env"]
    secret = os.environ.get(variable) or secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="nerv-demo-") as tmp:
        work = Path(tmp)
        inventory = work / "inventory"
        shutil.copytree(DEMO, inventory, ignore=shutil.ignore_patterns(".state", "proxmox.yml"))
        key_file, recipient = admin_identity(work)
        site["sops"]["admin_recipients"] = [recipient]
        fake = SiteFake(site, secret, work)
        write_state(site, fake, work)
        # the site as the fake serves it (its URL and CA), in the copied inventory
        shutil.move(work / "site.yml", inventory / "site.yml")
        say(f"fakepve, a Proxmox VE emulator, serves {fake.pve.url}; no real machine is touched")
        say(f"a throwaway admin age identity for this run ({recipient})")
        env = dict(os.environ, PROXMOX_CA_PATH=fake.cafile, SOPS_AGE_KEY_FILE=str(key_file), **{variable: secret})
        env.pop("SOPS_AGE_KEY", None)
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/site.yml", "-i", str(inventory)]
        argv += ["--skip-tags", LEFT_OUT, "-e", f"proxmox_template_iso={work / 'installer.iso'}"]
        argv += ["-e", "proxmox_template_progress_every=2"]
        bare = gitops_repository(work)
        planned = [argv[0], "playbooks/site.yml", "-i", str(inventory), "--tags", LEFT_OUT, "--check", "--diff"]
        planned += [
            "-e",
            f"gitops_platform_repo_url=file://{bare}",
            "-e",
            f"gitops_platform_checkout={work / 'checkout'}",
        ]
        identity = ssh_key(work)
        planned += ["-e", f"nixos_install_flake_dir={work / 'flake'}", "-e", f"nixos_install_identity_file={identity}"]
        planned += ["-e", f"bootstrap_ssh_identity_file={identity}"]
        # no host of the demo exists: SSH gives up on each after a second instead of ten
        planned += ["-e", "nixos_install_connect_timeout=1", "-e", "bootstrap_connect_timeout=1"]
        runs = (
            (argv, f"--skip-tags {LEFT_OUT} (makes the keys, the template and the VMs)"),
            (argv, f"--skip-tags {LEFT_OUT} (changes nothing)"),
            (planned, f"--tags {LEFT_OUT} --check --diff (what the machines would get; no host answers here)"),
        )
        recaps = []
        try:
            for number, (command, label) in enumerate(runs, start=1):
                say(f"run {number} of {len(runs)}: ansible-playbook playbooks/site.yml -i inventory/demo {label}")
                started = time.monotonic()
                code, recap = run(command, env)
                if code:
                    say(f"run {number} of {len(runs)} failed (exit {code}) after {time.monotonic() - started:.0f} s")
                    return code
                say(f"run {number} of {len(runs)} done in {time.monotonic() - started:.0f} s: {recap}")
                recaps.append(recap)
        finally:
            fake.stop()
    say(f"first run:  {recaps[0]}")
    say(f"second run: {recaps[1]}")
    say(f"check run:  {recaps[2]}")
    say("simulated: Proxmox (fakepve), the installer ISO (a stand-in file), the installer powering off, the agents,")
    say("and GitHub (a local Git repository)")
    say(f"check mode only: {LEFT_OUT} - they need the installed machines and K3s; the tests run them for real against")
    say("network namespaces with sshd, a Kubernetes API emulator and a local Git repository (docs/kubernetes.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

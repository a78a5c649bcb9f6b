"""DEMO: run playbooks/template.yml for inventory/demo against a local Proxmox emulator (fakepve).

    .venv/bin/python hacking/demo_template.py        (make demo runs it after validating the site)

Nothing here touches a real machine. hacking/fakepve_site.py serves fakepve at the demo site's URL
(https://127.0.0.2:8006) with the site's nodes, storages and API token, makes a small file standing in for
the installer ISO (Nix cannot build the real one without nixpkgs), and plays the installer's part: a VM the
template pipeline started powers off a few seconds later. The playbook runs twice: the first run makes the
template, the second changes nothing.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from fakepve_site import SiteFake, write_state

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "inventory" / "demo" / "site.yml"


def main() -> int:
    site = yaml.safe_load(SITE.read_text())
    variable = site["proxmox"]["token_secret_env"]
    secret = os.environ.get(variable) or secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="nerv-demo-") as tmp:
        fake = SiteFake(site, secret, Path(tmp))
        write_state(site, fake, Path(tmp))
        print(f"demo: fakepve, a Proxmox VE emulator, serves {fake.pve.url}; no real machine is touched", flush=True)
        env = dict(os.environ, PROXMOX_CA_PATH=fake.cafile, **{variable: secret})
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/template.yml", "-i", "inventory/demo"]
        argv += ["-e", f"proxmox_template_iso={Path(tmp) / 'installer.iso'}", "-e", "proxmox_template_progress_every=2"]
        try:
            for run in ("makes the template", "changes nothing"):
                print(f"demo: ansible-playbook playbooks/template.yml -i inventory/demo ({run})", flush=True)
                code = subprocess.run(argv, cwd=REPO, env=env, check=False).returncode
                if code:
                    return code
        finally:
            fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

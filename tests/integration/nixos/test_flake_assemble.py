"""nerv.homelab.flake_assemble in a real playbook: the collection's flake and a site's files, assembled once, then
left alone; check mode says what it would write and writes nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def assemble(ansible_cli, dest: Path, token: Path, check: bool = False):
    task = {
        "name": "Assemble",
        "nerv.homelab.flake_assemble": {
            "src": str(REPO / "nix"),
            "dest": str(dest),
            "exclude": ["hosts.json", "secrets"],
            "files": {"hosts.json": '{"hosts": []}\n'},
            "copy": [{"src": str(token), "dest": "secrets/k3s.sops.yaml"}],
        },
    }
    run = ansible_cli.playbook([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}], check=check)
    assert run.rc == 0, run.describe()
    return run.task("Assemble")


def test_assembles_once_then_changes_nothing(ansible_cli, tmp_path):
    dest, token = tmp_path / "flake", tmp_path / "k3s.sops.yaml"
    token.write_text("token: ENC[AES256_GCM,data:stand-in]\n")
    planned = assemble(ansible_cli, dest, token, check=True)
    assert planned["changed"] and "flake.nix" in planned["written"] and not dest.exists(), planned
    first = assemble(ansible_cli, dest, token)
    assert first["changed"] and sorted(first["written"]) == sorted(planned["written"]), first
    assert {"flake.nix", "hosts.json", "secrets/k3s.sops.yaml", "lib/hosts.nix"} <= set(first["written"])
    assert (dest / "hosts.json").read_text() == '{"hosts": []}\n', "the site's hosts, not the flake's example"
    assert stat.S_IMODE(os.stat(dest / "secrets" / "k3s.sops.yaml").st_mode) == 0o600
    again = assemble(ansible_cli, dest, token)
    assert not again["changed"] and again["written"] == [] and again["removed"] == [], again

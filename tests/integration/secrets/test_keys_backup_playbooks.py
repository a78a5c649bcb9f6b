"""playbooks/backup_keys.yml and restore_keys.yml on a copy of the bare-metal example site, as a user runs them: the
keys phase makes every key, the backup exports them (check mode writes nothing, a second run writes nothing new), the
real age opens the export with the recovery key, and a fresh controller - a checkout of the site without its key
files and with no age identity - decrypts every secret of the site with the real sops after the restore, and not
before it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .._skips import require_commands

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

REPO = Path(__file__).resolve().parents[3]
PLAYBOOKS = REPO / "playbooks"
KEY_FILES = [".sops.yaml", "known_hosts", "host-keys", "secrets"]


@pytest.fixture
def site(tmp_path):
    """(inventory, admin key file, recovery key file, admin identity text): the example with a backup section."""
    inventory = tmp_path / "controller" / "inventory"
    shutil.copytree(REPO / "inventory" / "example-baremetal", inventory)
    admin, recovery = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    key_file, recovery_file = tmp_path / "admin-keys.txt", tmp_path / "recovery.txt"
    for path, identity in ((key_file, admin), (recovery_file, recovery)):
        path.write_text(f"{identity}\n")
        path.chmod(0o600)
    data = yaml.safe_load((inventory / "site.yml").read_text())
    data["sops"]["admin_recipients"] = [str(admin.to_public())]
    data["backup"] = {"keys": {"dest": "../backups", "recipient": str(recovery.to_public())}}
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return inventory, key_file, recovery_file, str(admin)


def run(ansible_cli, name, inventory, xdg, key_file=None, check=False, extra_vars=None, env=None):
    environment = {"XDG_CONFIG_HOME": str(xdg), "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null", **(env or {})}
    if key_file:
        environment["SOPS_AGE_KEY_FILE"] = str(key_file)
    return ansible_cli.playbook(
        PLAYBOOKS / name, "--diff", inventory=inventory / "hosts.yml", env=environment, check=check,
        extra_vars=extra_vars,
    )  # fmt: skip


def exports(inventory):
    return (
        sorted(p.name for p in (inventory.parent / "backups").glob("*"))
        if (inventory.parent / "backups").is_dir()
        else []
    )


def secrets_of(inventory):
    return sorted(p.relative_to(inventory).as_posix() for p in (inventory / "secrets").rglob("*.sops.yaml"))


def test_keys_backed_up_then_restored_onto_a_fresh_controller(ansible_cli, site, real_sops, tmp_path):
    inventory, key_file, recovery_file, admin_secret = site
    xdg = tmp_path / "controller" / "xdg"
    assert run(ansible_cli, "keys.yml", inventory, xdg, key_file).rc == 0
    secrets = secrets_of(inventory)
    assert len(secrets) == 6, secrets
    plain = {name: real_sops.run("decrypt", name, cwd=inventory, env={"SOPS_AGE_KEY_FILE": str(key_file)}).stdout
             for name in secrets}  # fmt: skip

    checked = run(ansible_cli, "backup_keys.yml", inventory, xdg, key_file, check=True)
    assert checked.rc == 0 and checked.stats()["changed"] == 1, checked.describe()
    assert exports(inventory) == [], "check mode wrote an export"

    first = run(ansible_cli, "backup_keys.yml", inventory, xdg, key_file)
    assert first.rc == 0 and first.stats()["changed"] == 1, first.describe()
    written = exports(inventory)
    assert [Path(n).suffix for n in written] == [".json", ".age", ".sha256"], written
    archive = inventory.parent / "backups" / written[1]
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    listing = json.loads((inventory.parent / "backups" / written[0]).read_text())
    assert listing["identities"] == yaml.safe_load((inventory / "site.yml").read_text())["sops"]["admin_recipients"]
    assert sorted(f["path"] for f in listing["files"]) == sorted(
        p.relative_to(inventory).as_posix() for k in KEY_FILES for p in [inventory / k, *(inventory / k).rglob("*")]
        if p.is_file()
    )  # fmt: skip
    # the checksum as sha256sum checks it, and the archive as the real age opens it with the recovery key
    sums = subprocess.run(["sha256sum", "-c", written[2]], cwd=archive.parent, capture_output=True, check=False)
    assert sums.returncode == 0, (sums.stdout + sums.stderr).decode()
    age = require_commands("age")["age"]
    opened = subprocess.run([age, "-d", "-i", str(recovery_file), str(archive)], capture_output=True, check=True)
    members = subprocess.run(["tar", "-t"], input=opened.stdout, capture_output=True, check=True).stdout.decode()
    assert "identities/keys.txt" in members and "site/secrets/k3s.sops.yaml" in members
    wrong = subprocess.run([age, "-d", "-i", str(key_file), str(archive)], capture_output=True, check=False)
    assert wrong.returncode != 0, "the admin key must not open the export: only the recovery key does"

    again = run(ansible_cli, "backup_keys.yml", inventory, xdg, key_file)
    assert again.rc == 0 and again.stats()["changed"] == 0, again.describe()
    assert exports(inventory) == written

    # A fresh controller: the site's checkout without its key files, no age identity anywhere.
    fresh = tmp_path / "fresh" / "inventory"
    shutil.copytree(inventory, fresh, ignore=shutil.ignore_patterns(*KEY_FILES))
    shutil.copytree(inventory.parent / "backups", fresh.parent / "backups")
    fresh_xdg = tmp_path / "fresh" / "xdg"
    assert secrets_of(fresh) == []
    recovery = {"recovery_identity": str(recovery_file)}

    checked = run(ansible_cli, "restore_keys.yml", fresh, fresh_xdg, check=True, extra_vars=recovery)
    assert checked.rc == 0 and checked.stats()["changed"] == 1, checked.describe()
    assert secrets_of(fresh) == [] and not fresh_xdg.exists(), "check mode restored something"

    restored = run(ansible_cli, "restore_keys.yml", fresh, fresh_xdg, extra_vars=recovery)
    assert restored.rc == 0 and restored.stats()["changed"] == 1, restored.describe()
    assert secrets_of(fresh) == secrets
    fresh_keys = fresh_xdg / "sops" / "age" / "keys.txt"
    assert oct(fresh_keys.stat().st_mode & 0o777) == "0o600"
    # the real sops, reading the key file where it looks by default, opens every secret of the site
    fresh_sops = {"SOPS_AGE_KEY_FILE": "", "XDG_CONFIG_HOME": str(fresh_xdg)}
    for name in secrets:
        assert real_sops.run("decrypt", name, cwd=fresh, env=fresh_sops).stdout == plain[name], name
    empty_xdg = {"SOPS_AGE_KEY_FILE": "", "XDG_CONFIG_HOME": str(tmp_path / "nobody")}
    assert real_sops.run("decrypt", secrets[0], cwd=fresh, env=empty_xdg, check=False).returncode != 0

    twice = run(ansible_cli, "restore_keys.yml", fresh, fresh_xdg, extra_vars=recovery)
    assert twice.rc == 0 and twice.stats()["changed"] == 0, twice.describe()

    # the admin's identity: in no output, no listing, no recorded result
    recorded = "".join(p.read_text() for p in ansible_cli.tmp_path.glob("results-*.json"))
    listings = "".join(p.read_text() for p in (inventory.parent / "backups").glob("*.json"))
    for text in (first.output, checked.output, restored.output, recorded, listings):
        assert admin_secret not in text


def test_a_changed_file_is_not_replaced_and_nothing_is_written(ansible_cli, site, tmp_path):
    inventory, key_file, recovery_file = site[:3]
    xdg = tmp_path / "controller" / "xdg"
    assert run(ansible_cli, "keys.yml", inventory, xdg, key_file).rc == 0
    assert run(ansible_cli, "backup_keys.yml", inventory, xdg, key_file).rc == 0
    (inventory / "known_hosts").write_text("changed\n")
    fresh_xdg = tmp_path / "fresh-xdg"
    refused = run(
        ansible_cli, "restore_keys.yml", inventory, fresh_xdg, extra_vars={"recovery_identity": str(recovery_file)}
    )
    assert refused.rc != 0 and "known_hosts" in refused.output and "force=true" in refused.output, refused.describe()
    assert (inventory / "known_hosts").read_text() == "changed\n" and not fresh_xdg.exists()


def test_a_passphrase_export_opens_with_the_passphrase_only(ansible_cli, site, tmp_path):
    inventory, key_file = site[:2]
    data = yaml.safe_load((inventory / "site.yml").read_text())
    data["backup"]["keys"] = {"dest": "../backups", "passphrase_env": "NERV_TEST_BACKUP_PASSPHRASE"}
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    xdg = tmp_path / "controller" / "xdg"
    assert run(ansible_cli, "keys.yml", inventory, xdg, key_file).rc == 0
    unset = run(ansible_cli, "backup_keys.yml", inventory, xdg, key_file)
    assert unset.rc != 0 and "export NERV_TEST_BACKUP_PASSPHRASE" in unset.output, unset.describe()

    passphrase = {"NERV_TEST_BACKUP_PASSPHRASE": "correct horse battery staple"}
    made = run(ansible_cli, "backup_keys.yml", inventory, xdg, key_file, env=passphrase)
    assert made.rc == 0 and made.stats()["changed"] == 1, made.describe()
    assert "correct horse" not in made.output

    fresh_xdg = tmp_path / "fresh-xdg"
    wrong = run(ansible_cli, "restore_keys.yml", inventory, fresh_xdg, env={"NERV_TEST_BACKUP_PASSPHRASE": "x" * 20})
    assert wrong.rc != 0 and "the passphrase does not open" in wrong.output, wrong.describe()
    right = run(ansible_cli, "restore_keys.yml", inventory, fresh_xdg, env=passphrase)
    assert right.rc == 0 and right.stats()["changed"] == 1, right.describe()
    assert str(key_file.read_text().strip()) in (fresh_xdg / "sops" / "age" / "keys.txt").read_text()
    assert "correct horse" not in right.output + wrong.output

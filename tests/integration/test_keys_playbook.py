"""playbooks/keys.yml on a copy of the bare-metal example site: check mode writes nothing, the first run makes
every key and secret, the second changes nothing, and without an admin identity nothing is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "keys.yml"


@pytest.fixture
def site(tmp_path):
    """(inventory dir, admin key file): the example-baremetal site with a fresh admin identity."""
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "inventory" / "example-baremetal", inventory)
    identity = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "admin-keys.txt"
    key_file.write_text(f"{identity}\n")
    key_file.chmod(0o600)
    data = yaml.safe_load((inventory / "site.yml").read_text())
    data["sops"]["admin_recipients"] = [str(identity.to_public())]
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return inventory, key_file


def keys(ansible_cli, inventory, key_file=None, check=False):
    env = {"XDG_CONFIG_HOME": str(inventory.parent / "xdg"), "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null"}
    if key_file:
        env["SOPS_AGE_KEY_FILE"] = str(key_file)
    return ansible_cli.playbook(PLAYBOOK, "--diff", inventory=inventory / "hosts.yml", env=env, check=check)


def written(inventory):
    return sorted(p.relative_to(inventory).as_posix() for p in inventory.rglob("*") if p.is_file())


def test_check_mode_then_twice_for_real(ansible_cli, site):
    inventory, key_file = site
    before = written(inventory)
    checked = keys(ansible_cli, inventory, key_file, check=True)
    assert checked.rc == 0 and checked.stats()["changed"] > 0, checked.describe()
    assert written(inventory) == before, "check mode wrote files"

    first = keys(ansible_cli, inventory, key_file)
    assert first.rc == 0, first.describe()
    hosts = ["mini1", "mini2", "mini3"]
    new = set(written(inventory)) - set(before)
    assert new == {
        ".sops.yaml",
        "known_hosts",
        "secrets/k3s.sops.yaml",
        "secrets/cluster/flux.agekey.sops.yaml",
        *(f"host-keys/{h}.pub" for h in hosts),
        *(f"secrets/host-keys/{h}.sops.yaml" for h in hosts),
    }
    token = yaml.safe_load((inventory / "secrets" / "k3s.sops.yaml").read_text())
    assert len(token["sops"]["age"]) == 4, "the admin and the three hosts read the K3s token"
    assert len((inventory / "known_hosts").read_text().splitlines()) == 3

    second = keys(ansible_cli, inventory, key_file)
    assert second.rc == 0 and second.stats()["changed"] == 0, second.describe()


def test_without_an_admin_identity_it_stops_before_writing(ansible_cli, site):
    inventory, _key_file = site
    before = written(inventory)
    result = keys(ansible_cli, inventory)
    assert result.rc != 0 and "age-keygen" in result.output, result.describe()
    assert written(inventory) == before

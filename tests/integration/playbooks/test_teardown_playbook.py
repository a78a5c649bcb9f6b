"""playbooks/teardown.yml's edges against fakepve: a VM protected in Proxmox stops the whole teardown unless named
in teardown_unprotect, and a site torn down can be built again (its VMs' old host keys forgotten, the new ones
recorded by the keys phase)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import age_recipient_from_ssh

from .test_provision_playbooks import TEMPLATE, Guests

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def site_dir(pve_site, tmp_path):
    """The demo site pointed at the fake, its template tagged as ours, a fresh admin identity; returns the site's
    directory (inventory too) and the environment of a run."""
    site = pve_site.site_for_fake()
    identity = pyrage.x25519.Identity.generate()
    site["sops"]["admin_recipients"] = [str(identity.to_public())]
    directory = tmp_path / "site"
    directory.mkdir()
    (directory / "site.yml").write_text(yaml.safe_dump(site, sort_keys=False))
    localhost = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (directory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": localhost}}}))
    (tmp_path / "admin-keys.txt").write_text(f"{identity}\n")
    pve_site.pve.vm(TEMPLATE).config["tags"] = "nerv-template;nerv-build-test;nerv-phase-template"
    env = {**pve_site.env, "SOPS_AGE_KEY_FILE": str(tmp_path / "admin-keys.txt"),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null"}  # fmt: skip
    return directory, env


def run(ansible_cli, site_dir, name, *args, check=False, **extra):
    directory, env = site_dir
    path = (REPO / ("site.yml" if name == "site.yml" else f"playbooks/{name}")).resolve()
    return ansible_cli.playbook(path, *args, inventory=directory / "hosts.yml", extra_vars=extra or None, env=env,
                                check=check)  # fmt: skip


def build(ansible_cli, pve_site, site_dir, playbook="site.yml", *args):
    guests = Guests(pve_site.pve)
    guests.start()
    try:
        return run(ansible_cli, site_dir, playbook, *args, proxmox_vms_wait_timeout=60)
    finally:
        guests.done.set()


def vmids(pve_site):
    return sorted(h["vmid"] for h in pve_site.site["hosts"] if h["kind"] == "vm")


def deletes(pve_site):
    return [path for method, path, _body in pve_site.pve.requests if method == "DELETE"]


def test_a_protected_vm_stops_the_teardown_unless_named(ansible_cli, pve_site, site_dir):
    built = build(ansible_cli, pve_site, site_dir, "provision.yml")
    assert built.rc == 0, built.describe()
    cp1 = next(h for h in pve_site.site["hosts"] if h["name"] == "cp1")
    pve_site.pve.vm(cp1["vmid"]).config["protection"] = 1
    pve_site.pve.requests.clear()

    refused = run(ansible_cli, site_dir, "teardown.yml", confirm="demo")
    assert refused.rc != 0, refused.describe()
    assert "cp1 is protected in Proxmox (protection=1): nothing was removed" in refused.output
    assert "-e teardown_unprotect=cp1" in refused.output
    assert deletes(pve_site) == [] and all(pve_site.pve.guest(v) for v in vmids(pve_site)), "nothing removed"
    assert pve_site.pve.vm(cp1["vmid"]).config["protection"] == 1
    assert (site_dir[0] / "known_hosts").read_text().count("ssh-ed25519") == len(vmids(pve_site)), "keys kept"

    # a name that only contains cp1's, or another VM's, is not cp1
    for named in ("cp", "cp1x,worker1"):
        again = run(ansible_cli, site_dir, "teardown.yml", "-e", f"teardown_unprotect={named}", confirm="demo")
        assert again.rc != 0 and deletes(pve_site) == [], again.describe()

    checked = run(ansible_cli, site_dir, "teardown.yml", "-e", "teardown_unprotect=[cp1]", check=True, confirm="demo")
    assert checked.rc == 0, checked.describe()
    assert deletes(pve_site) == [] and all(pve_site.pve.guest(v) for v in vmids(pve_site)), "check mode destroys"

    removed = run(ansible_cli, site_dir, "teardown.yml", "-e", "teardown_unprotect=[cp1]", confirm="demo")
    assert removed.rc == 0, removed.describe()
    assert "Removed: ['cp1', 'worker1', 'worker2']" in removed.output
    assert not any(pve_site.pve.guest(v) for v in vmids(pve_site))


def test_a_site_torn_down_is_built_again_and_its_keys_phase_passes(ansible_cli, pve_site, site_dir):
    directory = site_dir[0]
    first = build(ansible_cli, pve_site, site_dir, "site.yml", "--tags", "vms")
    assert first.rc == 0, first.describe()
    recorded = {p.name: p.read_text() for p in (directory / "host-keys").glob("*.pub")}
    assert sorted(recorded) == ["cp1.pub", "mini1.pub", "worker1.pub", "worker2.pub"]  # mini1: bare metal

    removed = run(ansible_cli, site_dir, "teardown.yml", confirm="demo")
    assert removed.rc == 0, removed.describe()
    pinned = [line.split()[0] for line in (directory / "known_hosts").read_text().splitlines() if line]
    kept = [p.name for p in (directory / "host-keys").glob("*.pub")]

    # the clones boot with new host keys (the fake's agents make a new one for each guest)
    again = build(ansible_cli, pve_site, site_dir, "site.yml", "--tags", "vms")
    assert again.rc == 0, again.describe()
    mini1 = next(h for h in pve_site.site["hosts"] if h["name"] == "mini1")
    assert pinned == [mini1["ip"].split("/")[0]] and kept == ["mini1.pub"], "teardown forgets the VMs' keys alone"
    now = {p.name: p.read_text() for p in (directory / "host-keys").glob("*.pub")}
    assert sorted(now) == sorted(recorded) and now["mini1.pub"] == recorded["mini1.pub"]
    assert all(now[name] != recorded[name] for name in ("cp1.pub", "worker1.pub", "worker2.pub"))
    sops_config = (directory / ".sops.yaml").read_text()
    for key in now.values():
        assert age_recipient_from_ssh(key.strip()) in sops_config

    keys = run(ansible_cli, site_dir, "site.yml", "--tags", "keys")
    assert keys.rc == 0, keys.describe()
    assert keys.stats()["changed"] == 0, keys.describe()

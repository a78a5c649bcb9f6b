"""playbooks/site.yml beside the walk through docs/getting-started.md (tests/integration/docs/test_getting_started.py,
which takes every shipped site through check mode and two real runs): a phase runs alone by its tag, the chain is the
same from the root and as nerv.homelab.site, and the summary names what each phase did."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

REPO = Path(__file__).resolve().parents[3]
PROXMOX_PHASES = ("validate", "keys", "template", "vms")


@pytest.fixture
def site_inventory(pve_site, tmp_path):
    """The demo site pointed at the fake, a free template vmid, and a fresh admin identity."""
    site = pve_site.site_for_fake()
    site["template"]["vmid"] = 9100
    identity = pyrage.x25519.Identity.generate()
    site["sops"]["admin_recipients"] = [str(identity.to_public())]
    admin = tmp_path / "admin-keys.txt"
    admin.write_text(f"{identity}\n")
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "site.yml").write_text(yaml.safe_dump(site, sort_keys=False))
    localhost = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": localhost}}}))
    iso = tmp_path / "installer.iso"
    iso.write_bytes(b"a stand-in installer\n" * 1024)
    return inventory, site, admin, iso


def test_a_phase_runs_alone_by_its_tag(ansible_cli, pve_site, site_inventory, tmp_path):
    inventory, _site, admin, _iso = site_inventory
    env = {**pve_site.env, "SOPS_AGE_KEY_FILE": str(admin), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null"}  # fmt: skip
    pve_site.pve.requests.clear()
    run = ansible_cli.playbook(
        (REPO / "playbooks" / "site.yml").resolve(), "--tags", "keys", inventory=inventory / "hosts.yml", env=env
    )
    assert run.rc == 0, run.describe()
    assert (inventory / ".sops.yaml").is_file() and (inventory / "secrets" / "k3s.sops.yaml").is_file()
    assert pve_site.pve.requests == [], "the keys phase alone asks nothing of Proxmox"
    # (Ansible tags a role's argument validation "always": it runs, and checks only the role's variables)
    ran = [t for t in run.task_names() if t.startswith(("nerv.homelab.proxmox", "nerv.homelab.nixos"))
           and "Validating arguments" not in t]  # fmt: skip
    assert ran == [], ran


def test_the_token_secret_comes_from_the_sites_sops_file(ansible_cli, pve_site, site_inventory, tmp_path):
    """proxmox.token_secret_sops, as docs/site.md says: the playbooks and the inventory plugin decrypt it with the
    admins' identity when the variable the site names is not set; the secret shows nowhere."""
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.document import Rules, new_document

    inventory, site, admin, _iso = site_inventory
    site["proxmox"]["token_secret_sops"] = {"file": "secrets/proxmox.sops.yaml", "key": "pve.token_secret"}
    (inventory / "site.yml").write_text(yaml.safe_dump(site, sort_keys=False))
    (inventory / "secrets").mkdir()
    plain, admins = {"pve": {"token_secret": pve_site.token_secret}}, site["sops"]["admin_recipients"]
    document = new_document(plain, "yaml", admins, Rules())
    (inventory / "secrets" / "proxmox.sops.yaml").write_text(document.text())
    (inventory / "proxmox.yml").write_text("plugin: nerv.homelab.proxmox\nsite_file: site.yml\n")
    env = {"SOPS_AGE_KEY_FILE": str(admin), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null"}  # fmt: skip
    assert not set(pve_site.env) & set(env)

    run = ansible_cli.playbook((REPO / "playbooks" / "provision.yml").resolve(), "--diff",
                               inventory=inventory / "hosts.yml", env=env, check=True)  # fmt: skip
    assert run.rc == 0, run.describe()
    assert any("/cluster/resources" in path for _m, path, _b in pve_site.pve.requests), "Proxmox was asked"
    listed = ansible_cli.inventory("-i", str(inventory / "proxmox.yml"), "--list", env=env)
    assert listed.rc == 0, listed.describe()
    assert pve_site.token_secret not in run.output + listed.output


def test_the_chain_is_the_same_from_the_root_and_as_nerv_homelab_site(ansible_cli):
    for playbook in ("site.yml", "nerv.homelab.site"):
        run = ansible_cli.run("ansible-playbook", playbook, "-i", "inventory/demo", "--list-tags")
        assert run.rc == 0, run.describe()
        for tag in ("keys", "template", "vms", "install", "bootstrap", "always"):
            assert tag in run.stdout, f"{playbook}: no phase tagged {tag}"


def test_the_summary_names_installs_deploys_and_the_bootstrap(ansible_cli):
    """The summary's install and bootstrap lines, from results shaped as those phases register them."""
    facts = {
        "site_model": {"hosts": []},
        "nixos_install_results": {"results": [{"changed": True, "item": {"name": "mini1"}},
                                              {"changed": False, "item": {"name": "mini2"}}]},
        "nixos_install_deployed": {"results": [{"changed": True, "item": {"name": "cp1"}}]},
        "gitops_platform_render": {"changed": True, "changed_files": ["a", "b", "c"]},
        "bootstrap_flux_bootstrap": {"changed": True},
    }  # fmt: skip
    template = str(REPO / "playbooks" / "templates" / "summary.txt.j2")
    tasks = [
        {"name": "facts", "ansible.builtin.set_fact": facts},
        {
            "name": "the task",
            "ansible.builtin.debug": {
                "msg": "{{ lookup('ansible.builtin.template', '" + template + "') | split('\n') | select | list }}"
            },
        },
    ]
    run = ansible_cli.playbook([{"name": "s", "hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    assert run.rc == 0, run.describe()
    assert run.task("the task")["msg"] == [
        "keys: not run",
        "install: mini1 installed, cp1 deployed",
        "bootstrap: 3 files pushed, Flux bootstrapped",
    ]

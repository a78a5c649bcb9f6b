"""playbooks/site.yml through the Proxmox phases (validate, keys, template, vms) against fakepve, with the phases that
need real machines (install, bootstrap) left out by their tags: --check --diff writes nothing, the first run makes the
template and the VMs, the second changes nothing and sends fakepve no write request. Threads play the installer
(it powers off the VM it runs in) and the clones' guest agents."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from .test_provision_playbooks import Guests
from .test_template_playbook import Installer

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

REPO = Path(__file__).resolve().parents[3]
PROXMOX_PHASES = ("validate", "keys", "template", "vms")


@pytest.fixture
def site_inventory(pve_site, tmp_path):
    """The demo site pointed at the fake, a free template vmid, VMs on the template's node with its disk size (the
    fake's storage is local and it applies no QEMU resize), and a fresh admin identity."""
    site = pve_site.site_for_fake()
    site["template"]["vmid"] = 9100
    for host in site["hosts"]:
        if host["kind"] == "vm":
            host.update(node=site["template"]["node"], disk=site["template"].get("disk", 16))
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


def files(directory: Path) -> dict:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def writes(pve) -> list:
    return [(m, p) for m, p, _b in pve.requests if m != "GET"]


def test_site_playbook_runs_the_proxmox_phases_once(ansible_cli, pve_site, site_inventory, tmp_path):
    inventory, site, admin, iso = site_inventory
    env = {**pve_site.env, "SOPS_AGE_KEY_FILE": str(admin), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null"}  # fmt: skip
    extra = {"proxmox_template_iso": str(iso), "proxmox_template_progress_every": 1, "proxmox_vms_wait_timeout": 60}

    def site_yml(*args, check=False):
        playbook = (REPO / "playbooks" / "site.yml").resolve()
        return ansible_cli.playbook(
            playbook, "--diff", "--skip-tags", "install,bootstrap", *args,
            inventory=inventory, extra_vars=extra, env=env, check=check,
        )  # fmt: skip

    before = files(inventory)
    pve_site.pve.requests.clear()
    checked = site_yml(check=True)
    assert checked.rc == 0, checked.describe()
    assert writes(pve_site.pve) == [], "check mode wrote to Proxmox"
    assert files(inventory) == before, "check mode wrote files"
    assert "1. validate" in checked.output and "4. vms" in checked.output, "the plan of phases is shown"
    assert "template 9100 does not exist yet" in checked.output, "the VMs are planned before their template exists"

    installer, guests = Installer(pve_site.pve), Guests(pve_site.pve)
    installer.start()
    guests.start()
    try:
        first = site_yml()
        assert first.rc == 0, first.describe()
        pve_site.pve.requests.clear()
        second = site_yml()
    finally:
        installer.done.set()
        guests.done.set()
    assert second.rc == 0, second.describe()
    assert first.stats()["changed"] > 0
    assert second.stats()["changed"] == 0, second.describe()
    assert writes(pve_site.pve) == [], "an unchanged site was written to"

    assert installer.powered_off == [9100] and pve_site.pve.vm(9100).template
    vms = [h for h in site["hosts"] if h["kind"] == "vm"]
    for host in vms:
        assert pve_site.pve.vm(host["vmid"]).status == "running"
    rules = yaml.safe_load((inventory / ".sops.yaml").read_text())["creation_rules"]
    token_rule = next(r for r in rules if "k3s" in r.get("path_regex", ""))
    # the admin, the bare-metal host's key made here, and each VM's own key recorded after it booted
    assert len(token_rule["key_groups"][0]["age"]) == 1 + len(site["hosts"])
    for host in site["hosts"]:
        assert f"{host['name']} {host['ip'].split('/')[0]} {host['role']} {host['kind']}" in first.output
    vm_names = ", ".join(h["name"] for h in vms)
    summary = (
        "keys: mini1 generated, cp1 recorded, worker1 recorded, worker2 recorded",
        "template: made (vmid 9100)",
        f"vms: {vm_names} created or changed",
        "install: not run",
        "bootstrap: not run",
    )
    for line in summary:
        assert line in first.output, f"the summary lacks {line!r}"
    for line in ("keys: nothing changed", "template: unchanged", "vms: unchanged"):
        assert line in second.output, f"the second run's summary lacks {line!r}"
    assert pve_site.token_secret not in first.output + second.output + checked.output


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

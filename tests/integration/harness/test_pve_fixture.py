"""The fake Proxmox cluster looks like the site file says, over real HTTPS with the site's API token."""

from __future__ import annotations

import pytest
import requests
import yaml
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from .._pve import schema_default
from .._sites import DEMO_SITE, site_dirs


def proxmox_site_files():
    files = [d / "site.yml" for d in site_dirs() if (d / "site.yml").is_file()]
    return [f for f in files if "proxmox" in (yaml.safe_load(f.read_text()) or {})]


def read_site(path):
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def template_value(site, key):
    return site["template"].get(key, schema_default("template", key))


def assert_matches_site(served, path):
    site = read_site(path)
    pmx, tpl = site["proxmox"], site["template"]
    api = served.api()

    assert sorted(n["node"] for n in api.nodes.get()) == sorted(pmx["nodes"])
    assert all(n["status"] == "online" for n in api.nodes.get())

    storages = {s["storage"]: s for s in api.storage.get()}
    iso_storage = pmx.get("iso_storage", schema_default("proxmox", "iso_storage"))
    # Proxmox's own local and local-lvm on every node, and the site's storages
    assert set(storages) == {"local", "local-lvm", pmx["storage"], iso_storage}
    assert "images" in storages[pmx["storage"]]["content"].split(",")
    on_other_nodes = {h["node"] for h in site.get("hosts", []) if h.get("kind") == "vm"} - {site["template"]["node"]}
    assert bool(storages[pmx["storage"]].get("shared")) == bool(on_other_nodes), "shared when VMs span nodes"
    assert "iso" in storages[iso_storage]["content"].split(",")
    for node in pmx["nodes"]:
        active = {s["storage"] for s in api.nodes(node).storage.get() if s.get("active")}
        assert {pmx["storage"], iso_storage} <= active, node

    guests = api.cluster.resources.get(type="vm")
    assert [(g["vmid"], g["name"], g["node"], g["template"], g["status"]) for g in guests] == [
        (tpl["vmid"], template_value(site, "name"), tpl["node"], 1, "stopped")
    ]
    config = api.nodes(tpl["node"]).qemu(tpl["vmid"]).config.get()
    assert config["template"] == 1
    assert int(config["cores"]) == template_value(site, "cores")
    assert int(config["memory"]) == template_value(site, "memory")
    assert config["scsi0"].startswith(f"{pmx['storage']}:base-{tpl['vmid']}-disk-")
    assert f"size={template_value(site, 'disk')}G" in config["scsi0"].split(",")
    net0 = config["net0"].split(",")
    assert net0[0].startswith("virtio=") and f"bridge={pmx['bridge']}" in net0
    assert config["agent"] == "1"
    assert config["ide2"].startswith(f"{pmx['storage']}:") and "media=cdrom" in config["ide2"]
    assert config["bios"] == template_value(site, "bios")


def test_session_fake_matches_the_demo_site(pve_site):
    assert pve_site.site_path == DEMO_SITE
    assert pve_site.url.startswith("https://127.0.0.1:") and pve_site.port > 0
    assert_matches_site(pve_site, DEMO_SITE)


@pytest.mark.parametrize("path", proxmox_site_files(), ids=lambda p: p.parent.name)
def test_private_fake_matches_each_proxmox_site(pve_site_factory, path):
    assert_matches_site(pve_site_factory(path), path)


def test_there_is_a_proxmox_site_besides_the_demo():
    assert [p for p in proxmox_site_files() if p != DEMO_SITE], "no inventory/*/site.yml with a proxmox section"


def test_token_is_the_sites_and_its_secret_is_checked(pve_site):
    site = read_site(DEMO_SITE)
    assert pve_site.token_id == site["proxmox"]["token_id"]
    assert pve_site.env == {site["proxmox"]["token_secret_env"]: pve_site.token_secret}
    pve_site.api().version.get()
    with pytest.raises(ResourceException) as err:
        pve_site.api(token_value="not-the-secret").version.get()
    assert err.value.status_code == 401


def test_tls_is_verified_against_the_fixture_ca_only(pve_site):
    with pytest.raises(requests.exceptions.SSLError):
        ProxmoxAPI(pve_site.host, port=pve_site.port, user="root@pam", token_name="x", token_value="y").version.get()
    headers = {"Authorization": f"PVEAPIToken={pve_site.token_id}={pve_site.token_secret}"}
    answer = requests.get(f"{pve_site.url}/api2/json/version", headers=headers, verify=pve_site.cafile, timeout=10)
    assert answer.status_code == 200 and answer.json()["data"]["version"].startswith("9.")


def test_template_clones_and_reset_restores_the_site(pve_site):
    tpl = pve_site.site["template"]
    node = pve_site.api().nodes(tpl["node"])
    upid = node.qemu(tpl["vmid"]).clone.post(newid=4242, name="probe", full=1)
    assert node.tasks(upid).status.get()["exitstatus"] == "OK"
    assert node.qemu(4242).config.get()["name"] == "probe"
    pve_site.pve.fail("GET", "/version", 500, "injected")
    with pytest.raises(ResourceException):
        pve_site.api().version.get()
    assert pve_site.pve.requests

    pve_site.reset()

    assert pve_site.pve.requests == [] and pve_site.pve.failures == {}
    assert [g["vmid"] for g in pve_site.api().cluster.resources.get(type="vm")] == [tpl["vmid"]]
    assert_matches_site(pve_site, DEMO_SITE)


def test_faults_on_a_private_fake_leave_the_session_fake_alone(pve_site, pve_site_factory):
    private = pve_site_factory()
    assert private.url != pve_site.url
    private.pve.fail("GET", "/nodes", 596, "Connection timed out")
    with pytest.raises(ResourceException) as err:
        private.api().nodes.get()
    assert err.value.status_code == 596
    assert len(pve_site.api().nodes.get()) == len(read_site(DEMO_SITE)["proxmox"]["nodes"])


def test_site_pointed_at_the_fake_still_validates(pve_site, ansible_cli, tmp_path):
    path = pve_site.write_site(tmp_path / "site.yml")
    task = {"name": "Validate", "nerv.homelab.site_validate": {"path": str(path)}}
    run = ansible_cli.playbook([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    assert run.rc == 0, run.describe()
    proxmox = run.task("Validate")["site"]["proxmox"]
    assert (proxmox["url"], proxmox["ca_path"]) == (pve_site.url, pve_site.cafile)

"""nerv.homelab.proxmox through the real ansible-inventory, against a fakepve shaped like the site."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .._ansible import plain
from .._pve import PveSite
from .._sites import INVENTORY as REPO_INVENTORY

CANARY = "canary-4be1d0-token-secret"


def graph_groups(text: str) -> dict[str, set[str]]:
    """group -> hosts (direct members) of `ansible-inventory --graph` output."""
    groups: dict[str, set[str]] = {}
    stack: list[str] = []
    for line in text.splitlines():
        if "--" not in line:
            continue
        depth = line.index("--") // 2
        name = line.split("--", 1)[1]
        del stack[depth:]
        if name.startswith("@"):
            groups.setdefault(name[1:].rstrip(":"), set())
            stack.append(name[1:].rstrip(":"))
        elif stack:
            groups[stack[-1]].add(name)
    return groups


def source(tmp_path: Path, served: PveSite, **options) -> Path:
    """A proxmox.yml beside a copy of the site pointed at the fake; options added to it."""
    served.write_site(tmp_path / "site.yml")
    path = tmp_path / "proxmox.yml"
    path.write_text(yaml.safe_dump({"plugin": "nerv.homelab.proxmox", "site_file": "site.yml", **options}))
    return path


def listing(ansible_cli, path: Path, served: PveSite, env=None):
    run = ansible_cli.inventory("-i", str(path), "--list", env={**served.env, **(env or {})})
    assert run.rc == 0, run.describe()
    return run, plain(run.json())


def test_the_example_site_graphs_with_role_groups_and_agent_addresses(ansible_cli, pve_site_factory):
    site_file = REPO_INVENTORY / "example-proxmox" / "site.yml"
    served = pve_site_factory(site_path=site_file)
    served.add_site_vms()
    env = {**served.env, "PROXMOX_URL": served.url, "PROXMOX_CA_PATH": served.cafile}
    source_file = str((site_file.parent / "proxmox.yml").relative_to(REPO_INVENTORY.parent))

    run = ansible_cli.inventory("-i", source_file, "--graph", env=env)
    assert run.rc == 0, run.describe()
    groups = graph_groups(run.stdout)
    assert "control_plane" in groups, run.describe()
    assert groups["control_plane"] == {"cp1"}
    assert groups["workers"] == {"worker1", "worker2"}
    assert groups["proxmox_node_pve3"] == {"worker2"}
    assert "nixos-base" not in run.stdout, "templates are skipped unless asked for"

    listed = ansible_cli.inventory("-i", source_file, "--list", env=env)
    assert '"__ansible_unsafe": "cp1"' in listed.stdout, "names from Proxmox are marked unsafe"
    hostvars = plain(listed.json())["_meta"]["hostvars"]
    for host in served.site["hosts"]:
        assert hostvars[host["name"]]["ansible_host"] == host["ip"].split("/")[0], "the agent address in the CIDR"


def test_host_vars_groups_and_the_request_budget(ansible_cli, pve_site, tmp_path):
    vms = pve_site.add_site_vms()
    pve_site.pve.add_vm(300, "stopped-one", node="pve2", config={"tags": "lab", "agent": "1"}, pool="apps")
    pve_site.pve.pools["apps"] = {300}
    pve_site.pve.requests.clear()

    run, data = listing(ansible_cli, source(tmp_path, pve_site), pve_site)
    hostvars = data["_meta"]["hostvars"]
    cp1 = hostvars["cp1"]
    assert cp1["proxmox_vmid"] == vms[0].vmid and cp1["proxmox_node"] == "pve1"
    assert cp1["proxmox_status"] == "running" and cp1["proxmox_tags"] == ["k8s-control-plane", "nerv"]
    assert "10.42.0.1" in cp1["proxmox_addresses"] and cp1["ansible_host"] == "10.77.0.11"
    stopped = hostvars["stopped-one"]
    assert "ansible_host" not in stopped and stopped["proxmox_pool"] == "apps"
    assert "stopped-one" in data["proxmox_pool_apps"]["hosts"]
    assert "stopped-one" in data["proxmox_status_stopped"]["hosts"]
    assert "stopped-one" in data["proxmox_tag_lab"]["hosts"]
    assert "nixos-base" not in hostvars

    running_with_agent = len(vms)
    assert len(pve_site.pve.requests) <= 2 + running_with_agent, pve_site.pve.requests
    assert pve_site.token_secret not in run.output


def test_templates_are_inventoried_when_asked(ansible_cli, pve_site, tmp_path):
    _run, data = listing(ansible_cli, source(tmp_path, pve_site, want_templates=True), pve_site)
    assert data["_meta"]["hostvars"]["nixos-base"]["proxmox_template"] is True


def test_a_warm_cache_makes_no_request_at_all(ansible_cli, pve_site, tmp_path):
    pve_site.add_site_vms()
    cache = {"cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache")}
    path = source(tmp_path, pve_site, **cache)
    _run, first = listing(ansible_cli, path, pve_site)
    assert pve_site.pve.requests, "the cold run asked Proxmox"
    pve_site.pve.requests.clear()
    pve_site.pve.revoke_tickets()
    _run, second = listing(ansible_cli, path, pve_site)
    assert pve_site.pve.requests == [], "the warm run made requests"
    assert second["_meta"]["hostvars"] == first["_meta"]["hostvars"]
    cached = "".join(p.read_text() for p in (tmp_path / "cache").iterdir())
    assert pve_site.token_secret not in cached


def test_an_offline_node_is_skipped_with_a_warning(ansible_cli, pve_site, tmp_path):
    pve_site.add_site_vms()
    pve_site.pve.set_node_offline("pve2")
    run, data = listing(ansible_cli, source(tmp_path, pve_site), pve_site)
    hostvars = data["_meta"]["hostvars"]
    assert {"cp1", "worker1"} <= set(hostvars) and "worker2" not in hostvars, "worker2 is the guest on pve2"
    assert "pve2 is offline" in run.stderr and "worker2" in run.stderr


def test_agents_not_running_or_not_configured_give_no_address_and_no_failure(ansible_cli, pve_site, tmp_path):
    cp1, worker1, _worker2 = pve_site.add_site_vms()
    worker1.agent = None  # qemu-guest-agent not running in the guest
    cp1.config.pop("agent")  # the agent option off
    cp1.agent = None
    run, data = listing(ansible_cli, source(tmp_path, pve_site), pve_site)
    hostvars = data["_meta"]["hostvars"]
    assert "ansible_host" not in hostvars["cp1"] and "ansible_host" not in hostvars["worker1"]
    assert hostvars["worker2"]["ansible_host"] == "10.77.0.13"
    assert "[WARNING]" not in run.stderr, run.stderr


def test_want_config_falls_back_to_the_ipconfig0_address(ansible_cli, pve_site, tmp_path):
    cp1 = pve_site.add_site_vms()[0]
    cp1.agent = None
    pve_site.pve.requests.clear()
    _run, data = listing(ansible_cli, source(tmp_path, pve_site, want_config=True), pve_site)
    hostvars = data["_meta"]["hostvars"]
    assert hostvars["cp1"]["ansible_host"] == "10.77.0.11", "from ipconfig0"
    assert hostvars["cp1"]["proxmox_config"]["ipconfig0"].startswith("ip=10.77.0.11/24")


def test_a_transient_596_is_retried(ansible_cli, pve_site, tmp_path):
    pve_site.add_site_vms()
    pve_site.pve.fail("GET", "/cluster/resources", 596, "Connection timed out", times=1)
    _run, data = listing(ansible_cli, source(tmp_path, pve_site, retries=2), pve_site)
    assert "cp1" in data["_meta"]["hostvars"]


def test_a_bad_token_is_one_clear_error_without_the_secret(ansible_cli, pve_site, tmp_path):
    path = source(tmp_path, pve_site)
    env = {**pve_site.env, pve_site.shape.token_secret_env: CANARY}
    run = ansible_cli.inventory("-i", str(path), "--list", env=env)
    assert "Proxmox rejected API token root@pam!nerv-demo" in run.stderr, run.describe()
    assert CANARY not in run.output
    assert "cp1" not in run.stdout
    # ansible.cfg enables only the plugins the sources need: the error is ours and comes first, not buried under
    # the failures of auto, ini or toml (the yaml plugin, which the sites' hosts.yml needs, still says its line)
    for other in ("'auto' plugin", "'ini' plugin", "'toml' plugin", "'script' plugin"):
        assert other not in run.stderr, f"{other} tried the source\n{run.describe()}"
    assert run.stderr.index("Proxmox rejected API token") < run.stderr.index("'yaml' plugin"), run.describe()


def test_a_tls_failure_names_the_fix(ansible_cli, pve_site, tmp_path):
    pve_site.write_site(tmp_path / "site.yml")
    site = yaml.safe_load((tmp_path / "site.yml").read_text())
    del site["proxmox"]["ca_path"]
    (tmp_path / "site.yml").write_text(yaml.safe_dump(site))
    path = tmp_path / "proxmox.yml"
    path.write_text(yaml.safe_dump({"plugin": "nerv.homelab.proxmox", "site_file": "site.yml"}))
    run = ansible_cli.inventory("-i", str(path), "--list", env=pve_site.env)
    assert "validate_certs" in run.stderr and "ca_path" in run.stderr, run.describe()


def test_options_win_over_the_site_file(ansible_cli, pve_site, tmp_path):
    pve_site.add_site_vms()
    path = source(tmp_path, pve_site, cidr=["10.42.0.0/24"])
    _run, data = listing(ansible_cli, path, pve_site)
    assert data["_meta"]["hostvars"]["cp1"]["ansible_host"] == "10.42.0.1"


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"cidr": ["10.0.0.0/33"]}, "10.0.0.0/33"),
        ({"site_file": "missing.yml"}, "missing.yml"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_options_fail_early_naming_the_field(ansible_cli, pve_site, tmp_path, options, needle):
    path = source(tmp_path, pve_site, **options)
    pve_site.pve.requests.clear()
    run = ansible_cli.inventory("-i", str(path), "--list", env=pve_site.env)
    assert needle in run.stderr, run.describe()
    assert pve_site.pve.requests == [], "bad input reached Proxmox"

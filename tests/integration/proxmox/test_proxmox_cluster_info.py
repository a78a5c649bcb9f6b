"""nerv.homelab.proxmox_cluster_info in a real playbook: the client core behind a module, its fail_json boundary."""

from __future__ import annotations

MODULE = "nerv.homelab.proxmox_cluster_info"
CANARY = "canary-51d7e0-module-secret"


def play(**options):
    task = {"name": "Cluster", MODULE: options, "register": "pve"}
    return [{"name": "Proxmox", "hosts": "localhost", "gather_facts": False, "tasks": [task]}]


def test_reports_version_quorum_and_nodes_unchanged_in_check_mode_too(ansible_cli, pve_site):
    pve_site.pve.set_node_offline("pve2")
    for check in (False, True):
        run = ansible_cli.playbook(play(), env=pve_site.proxmox_env(), check=check)
        assert run.rc == 0, run.describe()
        result = run.task("Cluster")
        assert result["changed"] is False and result["requests"] == 2
        assert result["version"]["version"] == pve_site.pve.version
        assert result["cluster"]["nodes"] == 2 and result["cluster"]["online"] == 1
        assert {n["name"]: n["online"] for n in result["nodes"]} == {"pve1": True, "pve2": False}
        assert pve_site.token_secret not in run.output


def test_options_win_over_the_environment(ansible_cli, pve_site):
    env = {**pve_site.proxmox_env(), "PROXMOX_URL": "https://127.0.0.1:1"}
    run = ansible_cli.playbook(play(url=pve_site.url), env=env)
    assert run.rc == 0, run.describe()


def test_a_bad_token_fails_once_naming_the_token_not_the_secret(ansible_cli, pve_site):
    run = ansible_cli.playbook(play(), "-vvv", env=pve_site.proxmox_env(CANARY))
    assert run.rc != 0
    result = run.task("Cluster")
    assert result["failed"] and result["http_status"] == 401
    assert f"Proxmox rejected API token {pve_site.token_id}" in result["msg"]
    assert CANARY not in run.output and CANARY not in str(run.results)


def test_missing_settings_fail_before_any_request(ansible_cli, pve_site):
    env = pve_site.proxmox_env()
    del env["PROXMOX_TOKEN_SECRET"]
    pve_site.pve.requests.clear()
    run = ansible_cli.playbook(play(), env=env)
    assert run.rc != 0
    assert "token_secret is missing" in run.task("Cluster")["msg"]
    assert pve_site.pve.requests == []


def test_a_failing_cluster_status_is_reported_after_its_retries(ansible_cli, pve_site):
    pve_site.pve.fail("GET", "/cluster/status", 595, "No route to host")
    run = ansible_cli.playbook(play(retries=1), env=pve_site.proxmox_env())
    result = run.task("Cluster")
    assert result["failed"] and result["http_status"] == 595 and "2 times" in result["msg"]

"""The Proxmox client core (plugins/module_utils/proxmox/client.py) against fakepve: auth, TLS, retries, tasks."""

from __future__ import annotations

import time

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import ProxmoxClient
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import (
    ProxmoxError,
    ProxmoxSettings,
    settings_from_site,
)

from .._pve import ROOT

CANARY = "canary-9f1c2b-not-the-secret"


class Sleeps(list):
    """An injected sleep that records the waits instead of sleeping them."""

    def __call__(self, seconds):
        self.append(seconds)


def token_client(pve_site, **changes):
    values = dict(url=pve_site.url, token_id=pve_site.token_id, token_secret=pve_site.token_secret)
    values.update(ca_path=pve_site.cafile, timeout=10)
    values.update(changes)
    return ProxmoxClient(ProxmoxSettings(**values), sleep=Sleeps())


def password_client(pve_site):
    settings = ProxmoxSettings(url=pve_site.url, user=ROOT, password=pve_site.root_password, ca_path=pve_site.cafile)
    return ProxmoxClient(settings, sleep=Sleeps())


def test_a_token_client_reads_the_api_and_counts_its_requests(pve_site):
    client = token_client(pve_site)
    assert client.requests == 0, "a client makes no request until asked"
    assert client.get("/version")["version"] == pve_site.pve.version
    nodes = {node["node"] for node in client.get("/nodes")}
    assert nodes == set(pve_site.shape.nodes)
    assert client.requests == 2


def test_the_site_file_gives_the_settings(pve_site):
    settings = settings_from_site(pve_site.site_for_fake(), environ=pve_site.env)
    assert settings.token_secret == pve_site.token_secret
    assert pve_site.token_secret not in repr(settings)
    assert ProxmoxClient(settings).get("/version")


def test_a_transient_596_is_retried_with_backoff_and_succeeds(pve_site):
    pve_site.pve.fail("GET", "/cluster/resources", 596, "Connection timed out", times=2)
    client = token_client(pve_site, backoff=0.5)
    sleeps = client._sleep
    assert isinstance(client.get("/cluster/resources", type="vm"), list)
    assert sleeps == [0.5, 1.0]
    assert client.requests == 3


def test_a_lasting_595_fails_after_the_retries_naming_the_request(pve_site):
    pve_site.pve.fail("GET", "/cluster/status", 595, "No route to host")
    client = token_client(pve_site, retries=3, backoff=0.25)
    sleeps = client._sleep
    with pytest.raises(ProxmoxError) as caught:
        client.get("/cluster/status")
    assert caught.value.status == 595
    assert "GET /cluster/status" in caught.value.message and "4 times" in caught.value.message
    assert sleeps == [0.25, 0.5, 1.0]
    assert client.requests == 4


def test_a_post_is_not_retried(pve_site):
    pve_site.pve.fail("POST", "/nodes/pve1/qemu", 596, "Connection timed out", times=1)
    client = token_client(pve_site)
    sleeps = client._sleep
    with pytest.raises(ProxmoxError) as caught:
        client.post("/nodes/pve1/qemu", vmid=150, name="once")
    assert caught.value.status == 596 and "once" in caught.value.message
    assert sleeps == [] and client.requests == 1
    assert pve_site.pve.guest(150) is None, "the failed POST created nothing, and nothing sent it again"


def test_an_api_error_is_not_retried_and_carries_the_parameter_errors(pve_site):
    client = token_client(pve_site)
    sleeps = client._sleep
    with pytest.raises(ProxmoxError) as caught:
        client.put("/nodes/pve1/qemu/9000/config", cores="many")
    assert caught.value.status == 400
    assert "cores" in caught.value.errors and "cores" in caught.value.message
    assert sleeps == [] and client.requests == 1


def test_a_bad_token_is_one_clear_error_without_the_secret(pve_site):
    client = token_client(pve_site, token_secret=CANARY)
    sleeps = client._sleep
    with pytest.raises(ProxmoxError) as caught:
        client.get("/nodes")
    message = str(caught.value)
    assert caught.value.status == 401
    assert pve_site.token_id in message and "token" in message
    assert CANARY not in message and CANARY not in repr(caught.value.details)
    assert sleeps == [] and client.requests == 1


def test_tls_failure_names_validate_certs_and_ca_path(pve_site):
    client = token_client(pve_site, ca_path=None)
    sleeps = client._sleep
    with pytest.raises(ProxmoxError) as caught:
        client.get("/version")
    assert "validate_certs" in caught.value.message and "ca_path" in caught.value.message
    assert sleeps == [], "a certificate that does not verify will not verify on retry"


def test_validate_certs_false_skips_verification(pve_site):
    client = token_client(pve_site, ca_path=None, validate_certs=False)
    assert client.get("/version")


def test_an_expired_ticket_is_renewed_once(pve_site):
    client = password_client(pve_site)
    assert client.get("/version")
    assert client.requests == 2, "login, then the request"
    pve_site.pve.revoke_tickets()
    assert client.get("/nodes")
    assert client.requests == 5, "the refused request, a new login, the request again"


def test_a_wrong_password_names_the_user_not_the_password(pve_site):
    settings = ProxmoxSettings(url=pve_site.url, user=ROOT, password=CANARY, ca_path=pve_site.cafile)
    with pytest.raises(ProxmoxError) as caught:
        ProxmoxClient(settings).get("/version")
    assert ROOT in caught.value.message and CANARY not in caught.value.message


def test_an_unreachable_api_is_retried_then_reported(pve_site):
    client = token_client(pve_site, url="https://127.0.0.1:1", retries=2, backoff=0.1)
    sleeps = client._sleep
    with pytest.raises(ProxmoxError) as caught:
        client.get("/version")
    assert "connection failed" in caught.value.message and "3 times" in caught.value.message
    assert sleeps == [0.1, 0.2]


# ---------------------------------------------------------------- tasks


def make_vm(client, vmid=150):
    return client.post("/nodes/pve1/qemu", vmid=vmid, name=f"vm{vmid}", memory=512, cores=1)


def test_wait_task_returns_ok_for_a_finished_task(pve_site):
    client = token_client(pve_site)
    outcome = client.wait_task(make_vm(client))
    assert outcome["exitstatus"] == "OK" and outcome["warnings"] == 0
    assert pve_site.pve.guest(150) is not None


def test_wait_task_polls_the_node_named_in_the_upid_until_the_task_stops(pve_site_factory):
    served = pve_site_factory(time_scale=0.05)  # PVE seconds -> real seconds: start takes a moment
    served.pve.add_vm(160, "slow", node="pve2", config={"memory": 512}).start_secs = 4
    client = token_client(served)
    sleeps = client._sleep
    upid = client.post("/nodes/pve2/qemu/160/status/start")
    assert upid.startswith("UPID:pve2:")
    outcome = client.wait_task(upid)
    assert outcome["exitstatus"] == "OK"
    assert sleeps, "the task was still running at the first poll"
    polled = [path for method, path, _body in served.pve.requests if method == "GET" and "/tasks/" in path]
    assert polled and all(path.startswith("/api2/json/nodes/pve2/tasks/UPID:pve2:") for path in polled)


def test_wait_task_treats_warnings_as_success(pve_site):
    client = token_client(pve_site)
    upid = make_vm(client)
    pve_site.pve.tasks[upid]["exitstatus"] = "WARNINGS: 2"  # as PVE records a task that logged two warnings
    outcome = client.wait_task(upid)
    assert outcome["warnings"] == 2


def test_a_failed_task_raises_with_its_exit_status_and_log_tail(pve_site):
    vm = pve_site.pve.add_vm(170, "broken", node="pve1", config={"memory": 512})
    vm.start_error = "unable to find configuration file for disk scsi0"
    client = token_client(pve_site)
    with pytest.raises(ProxmoxError) as caught:
        client.wait_task(client.post("/nodes/pve1/qemu/170/status/start"))
    error = caught.value
    assert error.exitstatus == vm.start_error
    assert error.log_tail and error.log_tail[-1] == f"TASK ERROR: {vm.start_error}"
    assert "qmstart 170" in error.message and "pve1" in error.message and error.upid.startswith("UPID:pve1:")


def test_wait_task_gives_up_after_its_timeout(pve_site_factory):
    served = pve_site_factory(time_scale=1.0)
    served.pve.add_vm(180, "stuck", node="pve1", config={"memory": 512}).start_secs = 60
    client = token_client(served)
    upid = client.post("/nodes/pve1/qemu/180/status/start")
    started = time.monotonic()
    with pytest.raises(ProxmoxError) as caught:
        client._sleep = time.sleep  # really wait, so the deadline passes
        client.wait_task(upid, timeout=1)
    assert "still running" in caught.value.message and caught.value.upid == upid
    assert time.monotonic() - started < 30


def test_map_runs_requests_concurrently_in_order(pve_site):
    client = token_client(pve_site, url=pve_site.url)
    paths = ["/version", "/nodes", "/cluster/status", "/version"]
    answers = client.map(client.get, paths, workers=4)
    assert answers[0] == answers[3] and isinstance(answers[1], list)
    assert client.requests == 4


def test_the_proxy_environment_is_honoured(pve_site, monkeypatch):
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:1")
    with pytest.raises(ProxmoxError, match="connection failed"):
        token_client(pve_site, retries=0).get("/version")
    monkeypatch.setenv("no_proxy", pve_site.host)
    assert token_client(pve_site, retries=0).get("/version")


def test_requests_ca_bundle_is_honoured_when_no_ca_path_is_given(pve_site, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pve_site.cafile)
    assert token_client(pve_site, ca_path=None).get("/version")

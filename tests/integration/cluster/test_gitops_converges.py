"""Every site's rendered platform comes up on a fresh cluster, stage by stage, under the readiness rules of the
controllers it will meet (hacking/readiness.py: kstatus, Helm's wait, Flux's dependsOn and wait, MetalLB's pools,
the storage provisioners), applied to what the real kustomize builds from the rendered tree, as Flux builds it. A
deadlock fails the test naming the object, its stage and what it waits for."""

from __future__ import annotations

import itertools
import shutil

import pytest
import yaml
from readiness import Cluster

from .._kustomize import flux_build
from .._sites import site_dirs


def reconcile(site: dict, checkout, scratch):
    """The readiness model's verdict for checkout: flux-system applies clusters/<site>/, each stage its path."""
    counter = itertools.count()

    def build(path: str) -> list:
        place = scratch / f"build-{next(counter)}"
        place.mkdir()
        return flux_build(checkout / path, place).docs

    return Cluster(build).reconcile(build(site["flux"]["path"]))


@pytest.mark.parametrize("site_name", [d.name for d in site_dirs()])
def test_every_site_converges_stage_by_stage(rendered, site_name, tmp_path):
    site, checkout = rendered[site_name]
    verdict = reconcile(site, checkout, tmp_path)
    assert verdict.converged, f"{site_name} would never converge on a real cluster:\n{verdict.describe()}"
    stages = {f"Kustomization/flux-system/{s}" for s in ("infrastructure", "infrastructure-config", "platform", "apps")}
    assert stages <= set(verdict.ready)
    assert "HelmRelease/traefik/traefik" in verdict.ready
    traefik = verdict.objects[("Service", "traefik", "traefik")]
    first = site["metallb"]["addresses"][0].split("-")[0].split("/")[0].strip()
    assert traefik["status"]["loadBalancer"]["ingress"] == [{"ip": first}], "the pinned address, from the pool"


def move(checkout, stage_root: str, name: str, source: str, target: str) -> None:
    """Move a rendered file from one stage to another, both kustomization.yaml files following."""
    (checkout / stage_root / source / name).rename(checkout / stage_root / target / name)
    for stage, change in ((source, list.remove), (target, list.append)):
        path = checkout / stage_root / stage / "kustomization.yaml"
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        change(docs[0]["resources"], name)
        path.write_text(yaml.safe_dump_all(docs))


def moved_back(rendered, tmp_path, name: str):
    """The verdict on example-baremetal's tree with the file name moved from the pool's stage back to MetalLB's."""
    site, rendered_checkout = rendered["example-baremetal"]
    checkout = tmp_path / "checkout"
    shutil.copytree(rendered_checkout, checkout)
    move(checkout, f"platform/{site['site']['name']}", name, "infrastructure-config", "infrastructure")
    return reconcile(site, checkout, tmp_path)


def test_traefik_in_metallbs_stage_deadlocks(rendered, tmp_path):
    """The tree as it was rendered before: Traefik in MetalLB's stage, the pool one stage later."""
    verdict = moved_back(rendered, tmp_path, "traefik.yaml")
    assert not verdict.converged
    cause = verdict.stuck[0]
    assert (cause.object, cause.stage) == ("HelmRelease/traefik/traefik", "infrastructure"), verdict.describe()
    assert "Service/traefik/traefik of type LoadBalancer has no address" in cause.waits_for
    assert "IPAddressPools applied so far: none" in cause.waits_for
    assert "Kustomization/flux-system/infrastructure-config" not in verdict.ready


def test_the_pool_in_metallbs_stage_is_refused(rendered, tmp_path):
    """MetalLB's CRDs come with its chart: a pool applied beside the chart's HelmRelease has no kind to be yet."""
    verdict = moved_back(rendered, tmp_path, "metallb-pool.yaml")
    cause = verdict.stuck[0]
    assert cause.object == "Kustomization/flux-system/infrastructure", verdict.describe()
    assert 'no matches for kind "IPAddressPool"' in cause.waits_for


def routes(objects: dict, host: str) -> list:
    """What Traefik routes host by: Ingresses with a rule for it, IngressRoutes the chart makes from its values."""
    found = [o for k, o in objects.items() if k[0] == "Ingress" and host in [r["host"] for r in o["spec"]["rules"]]]
    release = objects[("HelmRelease", "traefik", "traefik")]
    for name, route in (release["spec"]["values"].get("ingressRoute") or {}).items():
        if route.get("enabled") and f"Host(`{host}`)" in route.get("matchRule", ""):
            found.append({"kind": "IngressRoute", "metadata": {"name": f"traefik-{name}", "namespace": "traefik"},
                          "spec": route})  # fmt: skip
    return found


def encrypted_secret(objects: dict, namespace: str, name: str) -> dict:
    secret = objects.get(("Secret", namespace, name))
    assert secret is not None, f"Secret {namespace}/{name} is not in the tree"
    assert "sops" in secret and all(str(v).startswith("ENC[") for v in secret["stringData"].values()), (
        f"Secret {namespace}/{name} must come from sops, encrypted in Git"
    )
    return secret


def login_of(objects: dict, route: dict, name: str) -> dict:
    """The sops Secret behind the route's login: its basic-auth Middleware's, or Grafana's own admin."""
    if route["kind"] == "IngressRoute":
        references = [(m.get("namespace", "traefik"), m["name"]) for m in route["spec"].get("middlewares", [])]
    else:
        annotation = route["metadata"]["annotations"].get("traefik.ingress.kubernetes.io/router.middlewares", "")
        # <namespace>-<name>@kubernetescrd (traefik v3.5.2 pkg/provider/kubernetes/crd: a Middleware's id)
        references = [tuple(ref.split("@")[0].split("-", 1)) for ref in annotation.split(",") if ref]
    if not references:
        assert name == "grafana", f"{name}: no login in front of it"
        values = objects[("HelmRelease", "monitoring", "kube-prometheus-stack")]["spec"]["values"]["grafana"]
        return encrypted_secret(objects, "monitoring", values["admin"]["existingSecret"])
    ((namespace, middleware),) = references
    basic = objects[("Middleware", namespace, middleware)]["spec"]["basicAuth"]
    secret = encrypted_secret(objects, namespace, basic["secret"])
    assert secret["type"] == "kubernetes.io/basic-auth", "Traefik reads username and password from this type"
    return secret


@pytest.mark.parametrize("site_name", [d.name for d in site_dirs()])
def test_every_published_ui_is_reachable_over_tls_behind_a_login(rendered, site_name, tmp_path):
    """Each dashboard URL the platform returns: one route on an entry point the chart's Service exposes (websecure,
    TLS only), a certificate from the site CA, a backend Service and port that exist (or Traefik's own api@internal),
    a login whose Secret is sops-encrypted in Git; a backend in flux-system is let in by a NetworkPolicy."""
    from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.render import dashboards
    from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site

    site, checkout = rendered[site_name]
    objects = reconcile(site, checkout, tmp_path).objects
    exposed = {p["name"] for p in objects[("Service", "traefik", "traefik")]["spec"]["ports"]}
    for name, url in dashboards(load_site(str(site_dirs()[0].parent / site_name / "site.yml"))).items():
        host = url.split("/")[2]
        (route,) = routes(objects, host)
        if route["kind"] == "IngressRoute":
            assert route["spec"]["entryPoints"] == ["websecure"] and "websecure" in exposed, name
            (cert,) = [o for k, o in objects.items() if k[0] == "Certificate" and host in o["spec"]["dnsNames"]]
            assert cert["spec"]["secretName"] == route["spec"]["tls"]["secretName"]
            assert cert["spec"]["issuerRef"] == {"kind": "ClusterIssuer", "name": "site-ca"}
            assert cert["status"]["ready"], "cert-manager issues it (the readiness model)"
        else:
            annotations = route["metadata"]["annotations"]
            assert annotations["traefik.ingress.kubernetes.io/router.entrypoints"] == "websecure", name
            assert "websecure" in exposed, "the chart's Service exposes the entry point"
            assert annotations["traefik.ingress.kubernetes.io/router.tls"] == "true"
            assert annotations["cert-manager.io/cluster-issuer"] == "site-ca"
            assert route["spec"]["tls"][0]["hosts"] == [host]
            backend = route["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
            namespace = route["metadata"]["namespace"]
            service = objects.get(("Service", namespace, backend["name"]))
            assert service, f"{name}: Service {namespace}/{backend['name']} is made by nothing"
            assert backend["port"]["number"] in [p["port"] for p in service["spec"]["ports"]], f"{name}: no such port"
            if namespace == "flux-system":
                policies = [o for k, o in objects.items() if k[0] == "NetworkPolicy" and k[1] == namespace]
                admitted = [p["port"] for o in policies for i in o["spec"]["ingress"] for p in i.get("ports", [])]
                assert backend["port"]["number"] in admitted, f"{name}: flux-system lets nothing in to its port"
        assert login_of(objects, route, name)

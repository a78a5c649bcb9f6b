"""The site's apps in the apps stage: one file per app with its Namespace, chart source, HelmRelease and Ingress;
OCI charts through an OCIRepository; values_sops through a Secret the HelmRelease reads."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops import apps, manifests, render
from ansible_collections.nerv.homelab.plugins.module_utils.site.checks import PLATFORM_NAMESPACES
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site, parse_site

REPO = Path(__file__).resolve().parents[6]
EXAMPLE = REPO / "inventory" / "example-proxmox" / "site.yml"
OCI_APP = {"name": "wiki", "repository": "oci://ghcr.io/example/charts/", "chart": "wiki", "version": "1.2.3",
           "namespace": "docs", "values_sops": "secrets/wiki.sops.yaml", "values": {"replicas": 1}}  # fmt: skip


def site_with(*apps) -> dict:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["apps"] += [copy.deepcopy(a) for a in apps]
    return parse_site(data)  # no base directory: values_sops files are not looked for


def apps_stage(site) -> dict:
    prefix = f"platform/{site['site']['name']}/apps/"
    return {p[len(prefix) :]: d for p, d in render.render(site, "clusters/home").items() if p.startswith(prefix)}


def test_the_example_app_is_one_file_with_namespace_repository_release_and_ingress():
    stage = apps_stage(load_site(str(EXAMPLE)))
    assert stage["kustomization.yaml"][0]["resources"] == ["podinfo.yaml"]
    namespace, repository, release, ingress = stage["podinfo.yaml"]
    assert (namespace["kind"], namespace["metadata"]) == ("Namespace", {"name": "podinfo"})
    assert repository["kind"] == "HelmRepository"
    assert repository["metadata"] == {"name": "app-podinfo", "namespace": "flux-system"}
    assert repository["spec"]["url"] == "https://stefanprodan.github.io/podinfo"
    assert release["metadata"] == {"name": "podinfo", "namespace": "podinfo"}
    assert release["spec"]["chart"]["spec"] == {
        "chart": "podinfo",
        "version": "6.9.2",
        "sourceRef": {"kind": "HelmRepository", "name": "app-podinfo", "namespace": "flux-system"},
    }
    assert (
        release["spec"]["install"]
        == release["spec"]["upgrade"]
        == {
            "crds": "CreateReplace",
            "remediation": {"retries": 3},
        }
    ), "the same remediation as the platform's releases"
    assert release["spec"]["values"] == {"replicaCount": 2, "ui": {"message": "Served from the home cluster"}}
    assert "valuesFrom" not in release["spec"]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "site-ca"}
    assert ingress["spec"]["tls"] == [{"hosts": ["podinfo.home.lab.example"], "secretName": "podinfo-tls"}]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "podinfo.home.lab.example"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "podinfo", "port": {"number": 9898}}


def test_an_oci_chart_comes_from_an_oci_repository_and_values_sops_through_value_from():
    stage = apps_stage(site_with(OCI_APP))
    assert stage["kustomization.yaml"][0]["resources"] == ["podinfo.yaml", "wiki-values.sops.yaml", "wiki.yaml"]
    assert "wiki-values.sops.yaml" not in stage, "the renderer writes no secret: apply.py encrypts it"
    namespace, source, release = stage["wiki.yaml"]
    assert namespace["metadata"]["name"] == "docs"
    assert source["kind"] == "OCIRepository" and source["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert source["spec"] == {
        "interval": "1h",
        "url": "oci://ghcr.io/example/charts/wiki",
        "ref": {"tag": "1.2.3"},
        "layerSelector": {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "operation": "copy"},
    }
    assert "chart" not in release["spec"]
    assert release["spec"]["chartRef"] == {"kind": "OCIRepository", "name": "app-wiki", "namespace": "flux-system"}
    assert release["spec"]["valuesFrom"] == [{"kind": "Secret", "name": "wiki-values", "valuesKey": "values.yaml"}]
    assert release["spec"]["values"] == {"replicas": 1}


def test_apps_sharing_a_namespace_declare_it_once():
    other = {"name": "podinfo-b", "repository": "https://stefanprodan.github.io/podinfo", "chart": "podinfo",
             "version": "6.9.2", "namespace": "podinfo"}  # fmt: skip
    stage = apps_stage(site_with(other))
    assert [d["kind"] for d in stage["podinfo.yaml"]] == ["Namespace", "HelmRepository", "HelmRelease", "Ingress"]
    assert [d["kind"] for d in stage["podinfo-b.yaml"]] == ["HelmRepository", "HelmRelease"]


def test_no_apps_is_an_empty_stage():
    site = load_site(str(REPO / "inventory" / "demo" / "site.yml"))
    assert apps_stage(site) == {"kustomization.yaml": [manifests.kustomization([])]}


def test_an_app_in_a_platform_namespace_is_refused_by_the_renderer_too():
    site = load_site(str(EXAMPLE))
    site["apps"][0]["namespace"] = "cert-manager"
    with pytest.raises(manifests.RenderError, match="namespace cert-manager is the platform's"):
        render.render(site, "clusters/home")


def test_every_namespace_the_platform_renders_is_reserved():
    site = load_site(str(EXAMPLE))
    assert "nfs" in site and "monitoring" in site, "the example renders every optional part of the platform"
    docs = [
        d
        for path, docs in render.render(site, "clusters/home").items()
        if "/apps/" not in path
        for d in docs
        if d["kind"] != "Kustomization" or d["apiVersion"].startswith("kustomize.toolkit")
    ]
    # a Namespace by its name, a namespaced object by its namespace; cluster-scoped ones (ClusterIssuers, the NFS
    # StorageClass) have none
    rendered = {d["metadata"]["name"] if d["kind"] == "Namespace" else d["metadata"].get("namespace") for d in docs}
    rendered |= {namespace for namespace, *_rest in manifests.CHARTS.values()}
    rendered.discard(None)
    assert {"kube-system", "monitoring"} <= rendered
    assert rendered <= set(PLATFORM_NAMESPACES)


def test_the_values_secret_is_marked_and_carries_the_text():
    app = site_with(OCI_APP)["apps"][1]
    secret = apps.app_values_manifest(app, "replicas: 3\n")
    assert secret["metadata"] == {"name": "wiki-values", "namespace": "docs",
                                  "annotations": {manifests.RENDERED_ANNOTATION: "gitops_render"}}  # fmt: skip
    assert secret["stringData"] == {"values.yaml": "replicas: 3\n"} and secret["type"] == "Opaque"


def test_app_core_objects_validate_against_the_kubernetes_schema():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (requirements-test.txt)"
    )
    site = site_with(OCI_APP)
    stage = apps_stage(site)
    core = [d for docs in stage.values() for d in docs if d["apiVersion"] in ("v1", "networking.k8s.io/v1")]
    core.append(apps.app_values_manifest(site["apps"][1], "replicas: 3\n"))
    assert sorted(d["kind"] for d in core) == ["Ingress", "Namespace", "Namespace", "Secret"]
    for doc in core:
        kubernetes_validate.validate(doc, "1.31", strict=True)

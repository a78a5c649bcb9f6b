"""The rendered Flux and cert-manager objects against models generated from those projects' published CRDs
(cloudcoil-models-fluxcd 2.5.1.0 and cloudcoil-models-cert-manager 1.17.1.0, pydantic, from PyPI).

A model checks required fields, types and enums. It ignores fields the CRD does not have, as the API server
prunes them; so each object must also come back unchanged from the model: a field the CRD lacks (a typo, a
field of another version) would vanish on the cluster and fails here instead. MetalLB's IPAddressPool and
L2Advertisement are not checked this way: no installable package carries their CRDs (see docs/kubernetes.md).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops import apps, render
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site, parse_site

helm = pytest.importorskip("cloudcoil.models.fluxcd.helm.v2", reason="cloudcoil-models-fluxcd (requirements-test.txt)")
kustomize = pytest.importorskip("cloudcoil.models.fluxcd.kustomize.v1", reason="cloudcoil-models-fluxcd")
source = pytest.importorskip("cloudcoil.models.fluxcd.source.v1", reason="cloudcoil-models-fluxcd")
source_beta = pytest.importorskip("cloudcoil.models.fluxcd.source.v1beta2", reason="cloudcoil-models-fluxcd")
cert_manager = pytest.importorskip("cloudcoil.models.cert_manager.v1", reason="cloudcoil-models-cert-manager")

REPO = Path(__file__).resolve().parents[6]
SITES = ("example-proxmox", "example-baremetal", "demo")
# (apiVersion, kind) -> (model, the apiVersion the model is for)
MODELS = {
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): (helm.HelmRelease, None),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"): (kustomize.Kustomization, None),
    ("source.toolkit.fluxcd.io/v1", "HelmRepository"): (source.HelmRepository, None),
    # OCIRepository became v1 in Flux 2.6, after the models' 2.5.1; its spec is v1beta2's
    ("source.toolkit.fluxcd.io/v1", "OCIRepository"): (source_beta.OCIRepository, "source.toolkit.fluxcd.io/v1beta2"),
    ("cert-manager.io/v1", "ClusterIssuer"): (cert_manager.ClusterIssuer, None),
    ("cert-manager.io/v1", "Certificate"): (cert_manager.Certificate, None),
}
# Checked elsewhere: core kinds with kubernetes-validate (test_render.py), kustomize's own kustomization.yaml.
NOT_HERE = {
    ("v1", "Namespace"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
NO_SCHEMA = {("metallb.io/v1beta1", "IPAddressPool"), ("metallb.io/v1beta1", "L2Advertisement")}
# No installable model either; test_monitoring.py, test_dashboards.py and test_backups.py check them against JSON
# Schemas taken from their CRDs
CRD_SCHEMA_ELSEWHERE = {
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("traefik.io/v1alpha1", "Middleware"),
    ("longhorn.io/v1beta2", "RecurringJob"),
}


def rendered(site_name):
    site = load_site(str(REPO / "inventory" / site_name / "site.yml"))
    for path, docs in render.render(site, site["flux"]["path"]).items():
        for doc in docs:
            yield path, doc


def round_trip(doc: dict) -> dict:
    """The object as the CRD's model reads it back: validated, unknown fields dropped."""
    model, api_version = MODELS[(doc["apiVersion"], doc["kind"])]
    given = dict(doc, apiVersion=api_version or doc["apiVersion"])
    back = model.model_validate(given).model_dump(by_alias=True, exclude_unset=True, mode="json")
    return dict(back, apiVersion=doc["apiVersion"], kind=doc["kind"])


@pytest.mark.parametrize("site_name", SITES)
def test_every_flux_and_cert_manager_object_matches_its_crd(site_name):
    seen = set()
    for path, doc in rendered(site_name):
        key = (doc["apiVersion"], doc["kind"])
        if key in NOT_HERE or key in NO_SCHEMA or key in CRD_SCHEMA_ELSEWHERE:
            continue
        assert key in MODELS, f"{path}: no CRD model for {key}: add one"
        assert round_trip(doc) == doc, f"{path}: {doc['kind']} {doc['metadata']['name']} has fields its CRD lacks"
        seen.add(key)
    assert seen == set(MODELS), "every modelled kind is rendered (or the table is out of date)"


def test_a_field_the_crd_lacks_is_caught():
    release = next(doc for _path, doc in rendered("example-proxmox") if doc["kind"] == "HelmRelease")
    assert round_trip(release) == release
    typo = copy.deepcopy(release)
    typo["spec"]["timout"] = "5m"  # misspelt: the API server would prune it, and the release keep its default
    back = round_trip(typo)
    assert back != typo and "timout" not in back["spec"]


def test_a_wrong_enum_value_is_refused():
    release = next(doc for _path, doc in rendered("example-proxmox") if doc["kind"] == "HelmRelease")
    wrong = copy.deepcopy(release)
    wrong["spec"]["chart"]["spec"]["sourceRef"]["kind"] = "HelmRepo"
    with pytest.raises(Exception, match="HelmRepository"):
        round_trip(wrong)


def test_apps_from_a_helm_repository_and_an_oci_registry_match_their_crds():
    """The example's app (HelmRepository) and an OCI one (OCIRepository with layerSelector, chartRef, valuesFrom)."""
    data = yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())
    data["apps"].append({"name": "wiki", "repository": "oci://ghcr.io/example/charts", "chart": "wiki",
                         "version": "1.2.3", "values_sops": "secrets/wiki.sops.yaml"})  # fmt: skip
    site = parse_site(data)
    kinds = []
    for path, docs in render.render(site, "clusters/home").items():
        if "/apps/" not in path or path.endswith("/kustomization.yaml"):
            continue
        for doc in docs:
            kinds.append(doc["kind"])
            if (doc["apiVersion"], doc["kind"]) in NOT_HERE:
                continue
            assert round_trip(doc) == doc, f"{path}: {doc['kind']} {doc['metadata']['name']} has fields its CRD lacks"
    assert sorted(kinds) == ["HelmRelease", "HelmRelease", "HelmRepository", "Ingress", "Namespace", "Namespace",
                             "OCIRepository"]  # fmt: skip
    release = apps.app_release(site["apps"][1])
    wrong = copy.deepcopy(release)
    wrong["spec"]["chartRef"]["kind"] = "HelmRepository"  # a chartRef names an OCIRepository or a HelmChart
    with pytest.raises(Exception, match="OCIRepository"):
        round_trip(wrong)

"""Every shipped site's rendered GitOps tree builds with the real kustomize, directory by directory, as Flux builds
it: clusters/<site> (no kustomization.yaml: Flux generates one) and each stage that stages.yaml points Flux at
(kustomization.yaml as rendered). Each build holds exactly the objects that stage should apply; a stage whose
kustomization.yaml names a missing file, or a stage path with nothing there, fails the build."""

from __future__ import annotations

import shutil

import pytest
import yaml

from .._kustomize import BuildError, flux_build
from .._sites import SHIPPED_SITES, site_file

STAGES = ["infrastructure", "infrastructure-config", "platform", "apps"]
# What each stage applies, written out here rather than taken from the renderer, so a lost file shows.
EXPECTED = {
    "infrastructure": {
        ("Namespace", "", "cert-manager"),
        ("Namespace", "", "longhorn-system"),
        ("Namespace", "", "metallb-system"),
        ("Namespace", "", "traefik"),
        ("HelmRepository", "flux-system", "jetstack"),
        ("HelmRepository", "flux-system", "longhorn"),
        ("HelmRepository", "flux-system", "metallb"),
        ("HelmRepository", "flux-system", "traefik"),
        ("HelmRelease", "cert-manager", "cert-manager"),
        ("HelmRelease", "longhorn-system", "longhorn"),
        ("HelmRelease", "metallb-system", "metallb"),
    },
    "infrastructure-config": {
        # in the pool's stage: Helm waits for its LoadBalancer Service's address (test_gitops_converges.py)
        ("HelmRelease", "traefik", "traefik"),
        ("IPAddressPool", "metallb-system", "site"),
        ("L2Advertisement", "metallb-system", "site"),
        ("ClusterIssuer", "", "site-ca"),
        ("Secret", "cert-manager", "site-ca"),  # the site CA, sops-encrypted, written by gitops_render itself
    },
    "platform": {
        # Traefik's own dashboard is the chart's IngressRoute: its certificate, the dashboards' login
        ("Certificate", "traefik", "traefik-dashboard"),
        ("Middleware", "traefik", "dashboard-auth"),
        ("Secret", "traefik", "dashboard-auth"),  # sops-encrypted, written by gitops_render itself
        ("Ingress", "longhorn-system", "longhorn-dashboard"),
        ("Ingress", "flux-system", "flux-dashboard"),
        ("OCIRepository", "flux-system", "capacitor"),
        ("Kustomization", "flux-system", "capacitor"),
        ("NetworkPolicy", "flux-system", "capacitor-from-traefik"),
    },
    "apps": set(),
}
# What a site with an nfs section adds (the shipped sites with one: example-proxmox); kube-system, where the driver
# goes, is no Namespace of the platform's. The class is in the driver's stage: monitoring's volumes may be on it.
NFS_EXPECTED = {
    "infrastructure": {
        ("HelmRepository", "flux-system", "csi-driver-nfs"),
        ("HelmRelease", "kube-system", "csi-driver-nfs"),
        ("StorageClass", "", "nfs"),
    },
}
NFS_SITES = {"example-proxmox"}
# What a site with a monitoring section adds to each stage (the shipped example-proxmox has one)
MONITORING = {
    "infrastructure": {
        ("Namespace", "", "monitoring"),
        ("HelmRepository", "flux-system", "prometheus-community"),
        ("HelmRelease", "monitoring", "kube-prometheus-stack"),
        ("Secret", "monitoring", "grafana-admin"),  # sops-encrypted, written by gitops_render itself
    },
    "infrastructure-config": set(),
    "platform": {
        ("Ingress", "monitoring", "grafana-dashboard"),
        ("PrometheusRule", "monitoring", "platform"),
    },
    "apps": set(),
}
# The apps stage holds the site's apps: example-proxmox ships one (podinfo), the others none.
APPS = {
    "example-proxmox": {
        ("Namespace", "", "podinfo"),
        ("HelmRepository", "flux-system", "app-podinfo"),
        ("HelmRelease", "podinfo", "podinfo"),
        ("Ingress", "podinfo", "podinfo"),
    },
}


# What a site with backup.volumes adds: Longhorn's recurring backup job, a stage after Longhorn's CRDs
BACKUPS = {"infrastructure-config": {("RecurringJob", "longhorn-system", "nerv-backup")}}


def expected(site_name: str, site: dict, stage: str) -> set:
    apps = APPS.get(site_name, set()) if stage == "apps" else set()
    if (site.get("backup") or {}).get("volumes"):
        apps = apps | BACKUPS.get(stage, set())
    monitoring = MONITORING[stage] if "monitoring" in site else set()
    nfs = NFS_EXPECTED.get(stage, set()) if site_name in NFS_SITES else set()
    return EXPECTED[stage] | monitoring | nfs | apps


def flux_stages(site: dict, checkout, scratch) -> dict[str, str]:
    """stage -> the path Flux builds for it, read from the build of clusters/<site>."""
    cluster = flux_build(checkout / site["flux"]["path"], scratch)
    assert cluster.generated == ["./stages.yaml"], "clusters/<site> has no kustomization.yaml: Flux generates one"
    assert cluster.objects() == {("Kustomization", "flux-system", stage) for stage in STAGES}
    # kustomize sorts what it emits; the order Flux keeps is dependsOn's
    for index, stage in enumerate(STAGES):
        spec = cluster.get("Kustomization", stage)["spec"]
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": "flux-system"}
        assert spec.get("dependsOn", []) == ([{"name": STAGES[index - 1]}] if index else [])
    return {stage: cluster.get("Kustomization", stage)["spec"]["path"] for stage in STAGES}


@pytest.mark.parametrize("site_name", SHIPPED_SITES)
def test_every_directory_flux_applies_builds_with_kustomize(rendered, site_name, tmp_path):
    site, checkout = rendered[site_name]
    paths = flux_stages(site, checkout, tmp_path)
    assert paths == {stage: f"./platform/{site['site']['name']}/{stage}" for stage in STAGES}
    for stage, path in paths.items():
        scratch = tmp_path / stage
        scratch.mkdir()
        built = flux_build(checkout / path, scratch)
        assert built.generated is None, f"{path} carries its own kustomization.yaml"
        assert built.objects() == expected(site_name, site, stage), (
            f"{path} builds other objects than the stage applies"
        )
    config = flux_build(checkout / paths["infrastructure-config"], tmp_path / "again")
    assert config.get("IPAddressPool", "site")["spec"]["addresses"] == site["metallb"]["addresses"]
    ca = config.get("Secret", "site-ca")
    assert ca["type"] == "kubernetes.io/tls" and ca["stringData"]["tls.key"].startswith("ENC[AES256_GCM,")
    assert "sops" in ca, "built still encrypted, with the metadata Flux decrypts with"
    assert ("nfs" in site) is (site_name in NFS_SITES), "NFS_SITES lists the shipped sites with an nfs section"
    if "nfs" in site:
        infra = flux_build(checkout / paths["infrastructure"], tmp_path / "nfs")
        parameters = infra.get("StorageClass", "nfs")["parameters"]
        assert (parameters["server"], parameters["share"]) == (site["nfs"]["server"], site["nfs"]["export"])
    domain = site["network"]["domain"]
    ingresses = flux_build(checkout / paths["platform"], tmp_path / "ingresses")
    assert ingresses.get("Ingress", "flux-dashboard")["spec"]["rules"][0]["host"] == f"flux.{domain}"
    if "monitoring" in site:
        assert ingresses.get("Ingress", "grafana-dashboard")["spec"]["rules"][0]["host"] == f"grafana.{domain}"
        infra = flux_build(checkout / paths["infrastructure"], tmp_path / "secret")
        secret = infra.get("Secret", "grafana-admin")
        assert secret["stringData"]["admin-password"].startswith("ENC[AES256_GCM,"), "built still encrypted"
        assert "sops" in secret, "kustomize keeps the sops metadata Flux decrypts with"


def test_a_shipped_site_has_monitoring():
    assert any("monitoring" in yaml.safe_load(site_file(s).read_text()) for s in SHIPPED_SITES)


def test_clusters_dir_with_what_bootstrap_commits_builds_both(rendered, tmp_path):
    """flux bootstrap commits clusters/<site>/flux-system/ with a kustomization.yaml of its own; Flux's generated
    kustomization takes that directory whole beside stages.yaml (so the renderer must write none of its own there:
    one listing only stages.yaml would prune flux-system itself)."""
    site, checkout = rendered["example-proxmox"]
    clusters = tmp_path / "repo" / site["flux"]["path"]
    shutil.copytree(checkout / site["flux"]["path"], clusters)
    (clusters / "flux-system").mkdir()
    sync = [{"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
             "metadata": {"name": "flux-system", "namespace": "flux-system"},
             "spec": {"interval": "1m", "url": "ssh://git@github.com/o/r", "ref": {"branch": "main"}}},
            {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
             "metadata": {"name": "flux-system", "namespace": "flux-system"},
             "spec": {"interval": "10m", "path": "./clusters/home", "prune": True,
                      "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}]  # fmt: skip
    (clusters / "flux-system" / "gotk-sync.yaml").write_text(yaml.safe_dump_all(sync))
    (clusters / "flux-system" / "kustomization.yaml").write_text("resources: [gotk-sync.yaml]\n")
    (tmp_path / "scratch").mkdir()
    built = flux_build(clusters, tmp_path / "scratch")
    assert built.generated == ["./flux-system", "./stages.yaml"]
    assert built.objects() == {("Kustomization", "flux-system", s) for s in [*STAGES, "flux-system"]} | {
        ("GitRepository", "flux-system", "flux-system")
    }


def test_a_stage_naming_a_missing_file_fails_the_build(rendered, tmp_path):
    site, checkout = rendered["example-proxmox"]
    broken = tmp_path / "broken"
    shutil.copytree(checkout, broken)
    (broken / "platform" / "home" / "infrastructure" / "longhorn.yaml").unlink()
    (tmp_path / "scratch").mkdir()
    with pytest.raises(BuildError, match="longhorn.yaml"):
        flux_build(broken / "platform" / "home" / "infrastructure", tmp_path / "scratch")


def test_a_stage_path_with_nothing_there_fails(rendered, tmp_path):
    """A Kustomization whose path is not in the checkout: Flux fails it, and so does flux_build."""
    site, checkout = rendered["example-proxmox"]
    with pytest.raises(BuildError, match="platform/home/nope"):
        flux_build(checkout / "platform" / "home" / "nope", tmp_path)

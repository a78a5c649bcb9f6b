"""The rendered platform: stage order, decryption, the site's pool and domain, and schema-valid core objects."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops import manifests, render, storage
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site, parse_site

REPO = Path(__file__).resolve().parents[6]
SITE = load_site(str(REPO / "inventory" / "example-proxmox" / "site.yml"))


def files():
    return render.render(SITE, "clusters/home")


def docs(path):
    return files()[path]


def test_flux_applies_only_the_stages_which_run_in_order_and_decrypt():
    assert [p for p in files() if p.startswith("clusters/home/")] == ["clusters/home/stages.yaml"]
    stages = docs("clusters/home/stages.yaml")
    assert [d["metadata"]["name"] for d in stages] == list(render.STAGES)
    depends = [d["spec"].get("dependsOn") for d in stages]
    assert depends == [None, [{"name": "infrastructure"}], [{"name": "infrastructure-config"}], [{"name": "platform"}]]
    for stage in stages:
        spec = stage["spec"]
        assert spec["wait"] and spec["prune"] and spec["path"] == f"./platform/home/{stage['metadata']['name']}"
        assert spec["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}


def test_every_stage_directory_lists_exactly_its_files():
    """Its rendered files, and the sops files apply.py writes beside them (the dashboards' login, Grafana's admin
    Secret, the site CA)."""
    rendered = files()
    assert set(render.made_once(SITE)) == {("platform", "dashboard-auth.sops.yaml"),
                                           ("infrastructure", "grafana-admin.sops.yaml")}  # fmt: skip
    written = {"infrastructure": ["grafana-admin.sops.yaml"], "platform": ["dashboard-auth.sops.yaml"],
               "infrastructure-config": ["site-ca.sops.yaml"]}  # fmt: skip
    for stage in render.STAGES:
        directory = f"platform/home/{stage}/"
        (kustomization,) = rendered[directory + "kustomization.yaml"]
        present = [p[len(directory) :] for p in rendered if p.startswith(directory)]
        present = sorted([*present, *written.get(stage, [])])
        present.remove("kustomization.yaml")
        assert kustomization["resources"] == present


def test_metallb_gets_the_sites_pool_and_cert_manager_its_crds():
    pool, advertisement = docs("platform/home/infrastructure-config/metallb-pool.yaml")
    assert pool["spec"]["addresses"] == SITE["metallb"]["addresses"]
    assert advertisement["spec"]["ipAddressPools"] == ["site"]
    (release,) = docs("platform/home/infrastructure/cert-manager.yaml")
    assert release["spec"]["values"] == {"crds": {"enabled": True}}
    assert release["spec"]["install"]["crds"] == "CreateReplace"


def test_charts_are_at_the_collections_versions_unless_the_site_pins_one():
    def versions(site):
        rendered = render.render(site, "clusters/home")
        return {
            doc["metadata"]["name"]: doc["spec"]["chart"]["spec"]["version"]
            for path, docs_ in rendered.items()
            for doc in docs_
            if doc["kind"] == "HelmRelease" and "/apps/" not in path
        }

    # the example site has nfs and monitoring: csi-driver-nfs and kube-prometheus-stack are among them
    assert versions(SITE) == {"metallb": "0.15.2", "cert-manager": "v1.18.2", "traefik": "37.1.1",
                              "longhorn": "1.9.1", "csi-driver-nfs": "4.11.0",
                              "kube-prometheus-stack": "75.15.0"}  # fmt: skip
    pinned = copy.deepcopy(SITE)
    pinned["platform"]["versions"]["longhorn"] = "1.8.2"
    pinned["platform"]["versions"]["kube_prometheus_stack"] = "75.10.0"
    assert versions(pinned)["longhorn"] == "1.8.2" and versions(pinned)["traefik"] == "37.1.1"
    assert versions(pinned)["kube-prometheus-stack"] == "75.10.0"


def test_dashboards_are_served_for_the_sites_domain_with_its_ca():
    ingresses = docs("platform/home/platform/ingresses.yaml")
    hosts = [i["spec"]["rules"][0]["host"] for i in ingresses]
    # Traefik's own dashboard is the chart's IngressRoute (test_dashboards.py); Grafana: the site has monitoring
    assert hosts == [f"{name}.home.lab.example" for name in ("longhorn", "flux", "grafana")]
    names = ("traefik", "longhorn", "flux", "grafana")
    assert render.dashboards(SITE) == {name: f"https://{name}.home.lab.example/" for name in names}
    for ingress in ingresses:
        assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "site-ca"
        assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    (issuer,) = docs("platform/home/infrastructure-config/cluster-issuers.yaml")
    assert issuer["kind"] == "ClusterIssuer" and issuer["metadata"] == {"name": "site-ca"}
    assert issuer["spec"] == {"ca": {"secretName": "site-ca"}}, "it signs with the site CA's Secret, made nowhere here"
    (certificate,) = [d for docs_ in files().values() for d in docs_ if d["kind"] == "Certificate"]
    assert certificate["spec"]["issuerRef"] == {"kind": "ClusterIssuer", "name": "site-ca"}, "issued, no CA in-cluster"


def test_the_site_ca_secret_is_a_tls_secret_that_validates_against_the_kubernetes_schema():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (requirements-test.txt)"
    )
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.site_ca import new_site_ca

    certificate, key = new_site_ca("home CA", "home.lab.example")
    secret = render.site_ca_secret(certificate, key)
    assert secret["metadata"]["name"] == "site-ca" and secret["metadata"]["namespace"] == "cert-manager"
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["stringData"] == {"tls.crt": certificate, "tls.key": key, "ca.crt": certificate}
    kubernetes_validate.validate(secret, "1.31", strict=True)
    broken = copy.deepcopy(secret)
    broken["stringdata"] = broken.pop("stringData")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.31", strict=True)


def test_core_objects_validate_against_the_kubernetes_schema():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (requirements-test.txt)"
    )
    core_apis = ("v1", "networking.k8s.io/v1", "storage.k8s.io/v1")
    core = [d for docs_ in files().values() for d in docs_ if d["apiVersion"] in core_apis]
    assert {d["kind"] for d in core} == {"Namespace", "Ingress", "StorageClass", "NetworkPolicy"}
    for doc in core:
        kubernetes_validate.validate(doc, "1.31", strict=True)


def test_the_flux_dashboard_is_capacitor_applied_into_flux_system():
    source, kustomization, policy = docs("platform/home/platform/flux-dashboard.yaml")
    assert source["kind"] == "OCIRepository" and source["spec"]["url"] == render.CAPACITOR_MANIFESTS
    assert source["spec"]["ref"] == {"tag": "v0.4.8"}, "one exact release, not a range"
    # flux bootstrap's allow-egress policy admits only flux-system's own pods: Traefik is let in to Capacitor's port
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 9000}
    ]
    assert kustomization["spec"]["sourceRef"] == {"kind": "OCIRepository", "name": "capacitor"}
    assert kustomization["spec"]["targetNamespace"] == "flux-system"
    (flux_ingress,) = [
        i for i in docs("platform/home/platform/ingresses.yaml") if i["metadata"]["name"] == "flux-dashboard"
    ]
    backend = flux_ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert (flux_ingress["metadata"]["namespace"], backend) == (
        "flux-system",
        {"name": "capacitor", "port": {"number": 9000}},
    )


def test_the_sops_rule_of_a_site_is_put_first_and_other_rules_are_kept():
    own = {"path_regex": "^apps/.*$", "age": "age1other"}
    other_site = render.sops_rules({}, "platform/lab", ["age1lab"])["creation_rules"][0]
    config = render.sops_rules({"creation_rules": [other_site, own], "stores": {"yaml": {"indent": 2}}},
                               "platform/home", ["age1admin", "age1cluster"])  # fmt: skip
    rule = config["creation_rules"][0]
    assert rule == {"path_regex": "^platform/home/.*\\.sops\\.ya?ml$", "encrypted_regex": "^(data|stringData)$",
                    "age": "age1admin,age1cluster"}  # fmt: skip
    assert config["creation_rules"][1:] == [other_site, own] and config["stores"] == {"yaml": {"indent": 2}}
    again = render.sops_rules(config, "platform/home", ["age1admin", "age1cluster"])
    assert again == config, "the same recipients again are no change"
    assert re.search(rule["path_regex"], "platform/home/apps/db.sops.yaml")
    assert not re.search(rule["path_regex"], "platform/homelab/apps/db.sops.yaml")


def test_a_sops_config_that_is_not_a_mapping_is_refused():
    with pytest.raises(manifests.RenderError, match="not a mapping"):
        render.parse_sops_config("- a\n", "/repo/.sops.yaml")
    with pytest.raises(manifests.RenderError, match="not valid YAML"):
        render.parse_sops_config("a: [\n", "/repo/.sops.yaml")


def test_rendering_is_stable():
    assert manifests.dump(docs("clusters/home/stages.yaml")) == manifests.dump(docs("clusters/home/stages.yaml"))


# ---------------------------------------------------------------------------------------------------- NFS


def _with_nfs(**nfs) -> dict:
    """The example site with its nfs section changed (nfs=None: without one), normalised as load_site does."""
    data = yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())
    if nfs.pop("none", False):
        data.pop("nfs")
    data.get("nfs", {}).update(nfs)
    return parse_site(data)


def _docs(site, path):
    return render.render(site, "clusters/home")[f"platform/home/{path}"]


def test_the_nfs_section_installs_csi_driver_nfs_in_kube_system():
    assert "csi-driver-nfs" in manifests.active_charts(SITE)
    (release,) = docs("platform/home/infrastructure/csi-driver-nfs.yaml")
    assert release["metadata"] == {"name": "csi-driver-nfs", "namespace": "kube-system"}
    chart = release["spec"]["chart"]["spec"]
    source = {"kind": "HelmRepository", "name": "csi-driver-nfs", "namespace": "flux-system"}
    assert chart == {"chart": "csi-driver-nfs", "version": "4.11.0", "sourceRef": source}
    assert release["spec"]["values"] == {}, "the chart makes no StorageClass (storageClass.create is false)"
    repos = {r["metadata"]["name"]: r["spec"]["url"] for r in docs("platform/home/infrastructure/repositories.yaml")}
    assert repos["csi-driver-nfs"] == "https://raw.githubusercontent.com/kubernetes-csi/csi-driver-nfs/master/charts"
    names = [n["metadata"]["name"] for n in docs("platform/home/infrastructure/namespaces.yaml")]
    assert "kube-system" not in names, "kube-system is not ours"
    assert names == ["cert-manager", "longhorn-system", "metallb-system", "monitoring", "traefik"]


def test_the_nfs_class_follows_the_site_and_longhorn_stays_the_default():
    (storage_class,) = docs("platform/home/infrastructure/nfs-storage-class.yaml")
    assert storage_class == {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "nfs", "annotations": {"kustomize.toolkit.fluxcd.io/force": "enabled"}},
        "provisioner": "nfs.csi.k8s.io",
        "parameters": {
            "server": "192.168.10.4",
            "share": "/volume1/k8s-cluster-storage",
            "subDir": "${pvc.metadata.namespace}/${pvc.metadata.name}-${pv.metadata.name}",
        },
        "mountOptions": ["nfsvers=4", "rsize=1048576", "wsize=1048576", "hard"],
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }
    (longhorn,) = docs("platform/home/infrastructure/longhorn.yaml")
    assert "defaultClass" not in longhorn["spec"]["values"]["persistence"], "Longhorn's chart default: true"
    assert storage.default_storage_class(SITE) == "longhorn"


def test_a_default_nfs_class_takes_the_default_from_longhorn():
    site = _with_nfs(default_class=True, storage_class="nas", reclaim_policy="Delete", options=["nfsvers=4.1"])
    (storage_class,) = _docs(site, "infrastructure/nfs-storage-class.yaml")
    annotations = {
        "kustomize.toolkit.fluxcd.io/force": "enabled",
        "storageclass.kubernetes.io/is-default-class": "true",
    }
    assert storage_class["metadata"] == {"name": "nas", "annotations": annotations}
    assert (storage_class["reclaimPolicy"], storage_class["mountOptions"]) == ("Delete", ["nfsvers=4.1"])
    (longhorn,) = _docs(site, "infrastructure/longhorn.yaml")
    assert longhorn["spec"]["values"]["persistence"]["defaultClass"] is False
    assert storage.default_storage_class(site) == "nas"


def test_without_nfs_there_is_no_driver_no_class_and_longhorn_is_the_default():
    site = _with_nfs(none=True)
    rendered = render.render(site, "clusters/home")
    assert "csi-driver-nfs" not in manifests.active_charts(site)
    assert not [p for p in rendered if "nfs" in p]
    assert "csi-driver-nfs" not in manifests.dump([d for docs_ in rendered.values() for d in docs_])
    (config,) = rendered["platform/home/infrastructure-config/kustomization.yaml"]
    # example-proxmox backs its volumes up (backup.volumes): Longhorn's job is in this stage too
    assert config["resources"] == ["cluster-issuers.yaml", "metallb-pool.yaml", "site-ca.sops.yaml", "traefik.yaml",
                                   "volume-backups.yaml"]  # fmt: skip
    assert storage.default_storage_class(site) == "longhorn"
    (longhorn,) = rendered["platform/home/infrastructure/longhorn.yaml"]
    assert "defaultClass" not in longhorn["spec"]["values"]["persistence"]


def test_the_csi_driver_nfs_chart_version_is_the_sites_pin():
    data = yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())
    data["platform"] = {"versions": {"csi_driver_nfs": "v4.9.0"}}
    (release,) = _docs(parse_site(data), "infrastructure/csi-driver-nfs.yaml")
    assert release["spec"]["chart"]["spec"]["version"] == "v4.9.0"


@pytest.mark.parametrize("default_class", [False, True])
def test_the_nfs_storage_class_validates_against_the_kubernetes_schema(default_class):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (requirements-test.txt)"
    )
    (storage_class,) = _docs(_with_nfs(default_class=default_class), "infrastructure/nfs-storage-class.yaml")
    kubernetes_validate.validate(storage_class, "1.31", strict=True)
    broken = dict(storage_class, reclaimPolicy=["Retain"])
    with pytest.raises(Exception, match="reclaimPolicy|is not of type"):
        kubernetes_validate.validate(broken, "1.31", strict=True)

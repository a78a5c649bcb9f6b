"""The rendered platform: stage order, decryption, the site's pool and domain, and schema-valid core objects."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import gitops
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site

REPO = Path(__file__).resolve().parents[5]
SITE = load_site(str(REPO / "inventory" / "example-proxmox" / "site.yml"))


def files():
    return gitops.render(SITE, "clusters/home")


def docs(path):
    return files()[path]


def test_flux_applies_only_the_stages_which_run_in_order_and_decrypt():
    assert [p for p in files() if p.startswith("clusters/home/")] == ["clusters/home/stages.yaml"]
    stages = docs("clusters/home/stages.yaml")
    assert [d["metadata"]["name"] for d in stages] == list(gitops.STAGES)
    depends = [d["spec"].get("dependsOn") for d in stages]
    assert depends == [None, [{"name": "infrastructure"}], [{"name": "infrastructure-config"}], [{"name": "platform"}]]
    for stage in stages:
        spec = stage["spec"]
        assert spec["wait"] and spec["prune"] and spec["path"] == f"./platform/home/{stage['metadata']['name']}"
        assert spec["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}


def test_every_stage_directory_lists_exactly_its_files():
    """Its rendered files, and the sops files gitops_apply writes beside them (Grafana's admin Secret)."""
    rendered = files()
    assert gitops.sops_files(SITE) == {"infrastructure": ["grafana-admin.sops.yaml"]}
    for stage in gitops.STAGES:
        directory = f"platform/home/{stage}/"
        (kustomization,) = rendered[directory + "kustomization.yaml"]
        present = [p[len(directory) :] for p in rendered if p.startswith(directory)]
        present = sorted([*present, *gitops.sops_files(SITE).get(stage, [])])
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
        rendered = gitops.render(site, "clusters/home")
        return {
            doc["metadata"]["name"]: doc["spec"]["chart"]["spec"]["version"]
            for path, docs_ in rendered.items()
            for doc in docs_
            if doc["kind"] == "HelmRelease" and "/infrastructure/" in path
        }

    # the example site has monitoring: kube-prometheus-stack is among them
    assert versions(SITE) == {"metallb": "0.15.2", "cert-manager": "v1.18.2", "traefik": "37.1.1",
                              "longhorn": "1.9.1", "kube-prometheus-stack": "75.15.0"}  # fmt: skip
    pinned = copy.deepcopy(SITE)
    pinned["platform"]["versions"]["longhorn"] = "1.8.2"
    pinned["platform"]["versions"]["kube_prometheus_stack"] = "75.10.0"
    assert versions(pinned)["longhorn"] == "1.8.2" and versions(pinned)["traefik"] == "37.1.1"
    assert versions(pinned)["kube-prometheus-stack"] == "75.10.0"


def test_dashboards_are_served_for_the_sites_domain_with_its_ca():
    ingresses = docs("platform/home/platform/ingresses.yaml")
    hosts = [i["spec"]["rules"][0]["host"] for i in ingresses]
    names = ("traefik", "longhorn", "flux", "grafana")  # Grafana: the example site has monitoring
    assert hosts == [f"{name}.home.lab.example" for name in names]
    assert gitops.dashboards(SITE) == {name: f"https://{name}.home.lab.example/" for name in names}
    for ingress in ingresses:
        assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "site-ca"}
        assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    issuers = docs("platform/home/infrastructure-config/cluster-issuers.yaml")
    assert [d["kind"] for d in issuers] == ["ClusterIssuer", "Certificate", "ClusterIssuer"]


def test_core_objects_validate_against_the_kubernetes_schema():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (requirements-test.txt)"
    )
    core = [d for docs_ in files().values() for d in docs_ if d["apiVersion"] in ("v1", "networking.k8s.io/v1")]
    assert {d["kind"] for d in core} == {"Namespace", "Ingress"}
    for doc in core:
        kubernetes_validate.validate(doc, "1.31", strict=True)


def test_the_flux_dashboard_is_capacitor_applied_into_flux_system():
    source, kustomization = docs("platform/home/platform/flux-dashboard.yaml")
    assert source["kind"] == "OCIRepository" and source["spec"]["url"] == gitops.CAPACITOR_MANIFESTS
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
    other_site = gitops.sops_rules({}, "platform/lab", ["age1lab"])["creation_rules"][0]
    config = gitops.sops_rules({"creation_rules": [other_site, own], "stores": {"yaml": {"indent": 2}}},
                               "platform/home", ["age1admin", "age1cluster"])  # fmt: skip
    rule = config["creation_rules"][0]
    assert rule == {"path_regex": "^platform/home/.*\\.sops\\.ya?ml$", "encrypted_regex": "^(data|stringData)$",
                    "age": "age1admin,age1cluster"}  # fmt: skip
    assert config["creation_rules"][1:] == [other_site, own] and config["stores"] == {"yaml": {"indent": 2}}
    again = gitops.sops_rules(config, "platform/home", ["age1admin", "age1cluster"])
    assert again == config, "the same recipients again are no change"
    assert re.search(rule["path_regex"], "platform/home/apps/db.sops.yaml")
    assert not re.search(rule["path_regex"], "platform/homelab/apps/db.sops.yaml")


def test_a_sops_config_that_is_not_a_mapping_is_refused():
    with pytest.raises(gitops.RenderError, match="not a mapping"):
        gitops.parse_sops_config("- a\n", "/repo/.sops.yaml")
    with pytest.raises(gitops.RenderError, match="not valid YAML"):
        gitops.parse_sops_config("a: [\n", "/repo/.sops.yaml")


def test_rendering_is_stable():
    assert gitops.dump(docs("clusters/home/stages.yaml")) == gitops.dump(docs("clusters/home/stages.yaml"))

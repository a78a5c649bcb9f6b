"""Monitoring from the site's monitoring section: kube-prometheus-stack's release and values, Grafana behind the
site's CA, the admin Secret's plaintext shape, and the platform's PrometheusRule checked against its CRD's schema."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops import manifests, monitoring, render, storage
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import parse_site

REPO = Path(__file__).resolve().parents[6]
jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (requirements-test.txt)")

# Prometheus' duration, as the operator's CRD writes it
DURATION = "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# PrometheusRule monitoring.coreos.com/v1 from prometheus-operator's CRD (v0.82, the operator of
# kube-prometheus-stack 75): its required fields, types and patterns. No installable package models this CRD, so
# it is written out here; additionalProperties false stands for the API server pruning a field the CRD lacks.
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": DURATION},
                            "labels": STRING_MAP,
                            "limit": {"type": "integer"},
                            "partial_response_strategy": {"type": "string"},
                            "query_offset": {"type": "string", "pattern": DURATION},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": {"type": "string", "pattern": DURATION},
                                        "keep_firing_for": {"type": "string", "minLength": 1, "pattern": DURATION},
                                        "labels": STRING_MAP,
                                        "annotations": STRING_MAP,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}


def site_data(name: str = "example-proxmox") -> dict:
    return yaml.safe_load((REPO / "inventory" / name / "site.yml").read_text())


def site(monitoring=None, name: str = "example-proxmox") -> dict:
    data = site_data(name)
    if monitoring is not None:
        data["monitoring"] = monitoring
    return parse_site(data)


def release_values(rendered_site: dict) -> dict:
    (release,) = render.render(rendered_site, "clusters/home")[
        "platform/home/infrastructure/kube-prometheus-stack.yaml"
    ]
    return release["spec"]["values"]


def alerts_of(rendered_site: dict) -> list:
    return render.render(rendered_site, "clusters/home").get("platform/home/platform/platform-alerts.yaml", [])


def test_a_site_without_monitoring_renders_none_of_it():
    data = site_data()
    del data["monitoring"]
    plain = parse_site(data)
    files = render.render(plain, "clusters/home")
    assert "kube-prometheus-stack" not in manifests.active_charts(plain)
    assert not any("prometheus" in path or "alerts" in path for path in files)
    assert "grafana" not in render.dashboards(plain) and (
        "infrastructure",
        "grafana-admin.sops.yaml",
    ) not in render.made_once(plain)
    (infra,) = files["platform/home/infrastructure/kustomization.yaml"]
    assert "grafana-admin.sops.yaml" not in infra["resources"]
    namespaces = [n["metadata"]["name"] for n in files["platform/home/infrastructure/namespaces.yaml"]]
    assert "monitoring" not in namespaces


def test_the_chart_comes_from_prometheus_community_at_the_sites_version():
    monitored = site()
    files = render.render(monitored, "clusters/home")
    assert manifests.active_charts(monitored)[-1] == "kube-prometheus-stack"
    repos = {r["metadata"]["name"]: r["spec"]["url"] for r in files["platform/home/infrastructure/repositories.yaml"]}
    assert repos["prometheus-community"] == "https://prometheus-community.github.io/helm-charts"
    (release,) = files["platform/home/infrastructure/kube-prometheus-stack.yaml"]
    assert release["metadata"] == {"name": "kube-prometheus-stack", "namespace": "monitoring"}
    chart = release["spec"]["chart"]["spec"]
    assert (chart["chart"], chart["version"]) == ("kube-prometheus-stack", "75.15.0")
    assert chart["sourceRef"] == {"kind": "HelmRepository", "name": "prometheus-community", "namespace": "flux-system"}
    assert release["spec"]["dependsOn"] == [{"name": "longhorn", "namespace": "longhorn-system"}], "volumes first"
    (namespace,) = [
        n for n in files["platform/home/infrastructure/namespaces.yaml"] if n["metadata"]["name"] == "monitoring"
    ]
    assert namespace["metadata"]["labels"] == {"pod-security.kubernetes.io/enforce": "privileged"}
    data = site_data()
    data["platform"] = {"versions": {"kube_prometheus_stack": "76.0.1"}}
    (pinned,) = render.render(parse_site(data), "c")["platform/home/infrastructure/kube-prometheus-stack.yaml"]
    assert pinned["spec"]["chart"]["spec"]["version"] == "76.0.1"


def test_storage_retention_and_sizes_come_from_the_site_on_its_class():
    values = release_values(site({"retention": "30d", "prometheus_storage": "50Gi", "alertmanager_storage": "1Gi",
                                  "grafana_storage": "3Gi"}))  # fmt: skip
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "30d"
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim == {"storageClassName": "longhorn", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "50Gi"}}}  # fmt: skip
    alertmanager = values["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]["spec"]
    assert (alertmanager["storageClassName"], alertmanager["resources"]["requests"]["storage"]) == ("longhorn", "1Gi")
    persistence = values["grafana"]["persistence"]
    assert persistence == {"enabled": True, "type": "pvc", "storageClassName": "longhorn",
                           "accessModes": ["ReadWriteOnce"], "size": "3Gi"}  # fmt: skip
    assert values["grafana"]["deploymentStrategy"] == {"type": "Recreate"}, "RWO: the old pod must let go first"

    nfs = release_values(site({"storage_class": "nfs-csi"}))
    classes = {
        nfs["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]["storageClassName"],
        nfs["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]["spec"]["storageClassName"],
        nfs["grafana"]["persistence"]["storageClassName"],
    }
    assert classes == {"nfs-csi"}


def _classes(values: dict) -> list:
    return [
        values["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]["storageClassName"],
        values["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]["spec"]["storageClassName"],
        values["grafana"]["persistence"]["storageClassName"],
    ]


def _with_nfs(monitoring: dict, **nfs) -> dict:
    data = site_data()
    data["nfs"].update(nfs)
    data["monitoring"] = monitoring
    return parse_site(data)


def test_with_the_nfs_class_as_default_the_volumes_are_on_it_after_csi_driver_nfs():
    nas = _with_nfs({}, default_class=True, storage_class="nas")
    assert storage.default_storage_class(nas) == "nas"
    files = render.render(nas, "clusters/home")
    (release,) = files["platform/home/infrastructure/kube-prometheus-stack.yaml"]
    assert _classes(release["spec"]["values"]) == ["nas", "nas", "nas"]
    # the driver provisions them; Longhorn, no longer the default, is not waited for
    assert release["spec"]["dependsOn"] == [{"name": "csi-driver-nfs", "namespace": "kube-system"}]
    # the class is applied in the chart's own stage: a later one would wait for this chart to be Ready first
    (infra,) = files["platform/home/infrastructure/kustomization.yaml"]
    assert {"csi-driver-nfs.yaml", "nfs-storage-class.yaml", "kube-prometheus-stack.yaml"} <= set(infra["resources"])
    (storage_class,) = files["platform/home/infrastructure/nfs-storage-class.yaml"]
    assert storage_class["metadata"]["name"] == "nas"


@pytest.mark.parametrize(
    ("default_class", "monitoring", "classes", "depends"),
    [
        # the example's nfs section leaves Longhorn the default
        (False, {}, "longhorn", ("longhorn", "longhorn-system")),
        # named outright, the NFS class is waited for as when it is the default
        (False, {"storage_class": "nfs"}, "nfs", ("csi-driver-nfs", "kube-system")),
        # a class the platform does not make: Longhorn, as without nfs
        (True, {"storage_class": "nfs-csi"}, "nfs-csi", ("longhorn", "longhorn-system")),
        (True, {"storage_class": "longhorn"}, "longhorn", ("longhorn", "longhorn-system")),
    ],
)
def test_the_release_waits_for_whichever_release_provisions_its_class(default_class, monitoring, classes, depends):
    (release,) = render.render(_with_nfs(monitoring, default_class=default_class), "clusters/home")[
        "platform/home/infrastructure/kube-prometheus-stack.yaml"
    ]
    assert _classes(release["spec"]["values"]) == [classes] * 3
    assert release["spec"]["dependsOn"] == [{"name": depends[0], "namespace": depends[1]}]


def test_grafana_takes_its_admin_from_the_secret_and_no_password_is_in_the_values():
    values = release_values(site({}))
    assert values["grafana"]["admin"] == {"existingSecret": "grafana-admin", "userKey": "admin-user",
                                          "passwordKey": "admin-password"}  # fmt: skip
    assert "adminPassword" not in values["grafana"]
    assert values["grafana"]["ingress"] == {"enabled": False}, "served by the platform's own Ingress"
    secret = monitoring.grafana_admin_secret("canary-Pw-1")
    # marked as rendered, in the clear: the prune of apply.py reads it without decrypting
    assert secret["metadata"] == {"name": "grafana-admin", "namespace": "monitoring",
                                  "annotations": {manifests.RENDERED_ANNOTATION: "gitops_render"}}  # fmt: skip
    assert secret["stringData"] == {"admin-user": "admin", "admin-password": "canary-Pw-1"}
    assert re.fullmatch(manifests.SOPS_ENCRYPTED_REGEX, "stringData") and not re.fullmatch(
        manifests.SOPS_ENCRYPTED_REGEX, "metadata"
    )
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate")
    kubernetes_validate.validate(secret, "1.31", strict=True)


def test_k3s_components_that_cannot_be_scraped_are_off_and_node_exporter_runs_everywhere():
    values = release_values(site({}))
    for component in ("kubeControllerManager", "kubeScheduler", "kubeProxy", "kubeEtcd"):
        assert values[component] == {"enabled": False}, component
    assert values["nodeExporter"] == {"enabled": True}
    assert values["prometheus-node-exporter"]["tolerations"] == [{"operator": "Exists"}]
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["ruleSelectorNilUsesHelmValues"] is False, "Prometheus must pick up platform-alerts.yaml"


def test_kube_state_metrics_reports_every_flux_kind_the_platform_uses():
    monitored = site({})
    ksm = release_values(monitored)["kube-state-metrics"]
    resources = ksm["customResourceState"]["config"]["spec"]["resources"]
    assert ksm["customResourceState"]["enabled"]
    rendered_kinds = {
        (d["apiVersion"], d["kind"])
        for docs in render.render(monitored, "clusters/home").values()
        for d in docs
        if "toolkit.fluxcd.io" in d["apiVersion"]
    }
    reported = {(f"{r['groupVersionKind']['group']}/{r['groupVersionKind']['version']}", r["groupVersionKind"]["kind"])
                for r in resources}  # fmt: skip
    # flux bootstrap's GitRepository is not rendered here, but is reported too
    assert rendered_kinds | {("source.toolkit.fluxcd.io/v1", "GitRepository")} == reported
    for resource in resources:
        assert resource["metricNamePrefix"] == "gotk" and resource["metrics"][0]["name"] == "resource_info"
        assert resource["labelsFromPath"]["ready"] == ["status", "conditions", "[type=Ready]", "status"]
    (rule,) = ksm["rbac"]["extraRules"]
    assert rule["verbs"] == ["list", "watch"]
    plurals = {re.sub("y$", "ie", r["groupVersionKind"]["kind"].lower()) + "s" for r in resources}
    assert plurals == set(rule["resources"]), "kube-state-metrics may list what it reports"
    assert {r["groupVersionKind"]["group"] for r in resources} == set(rule["apiGroups"])


def test_grafana_is_a_dashboard_behind_the_sites_ca_on_its_host():
    monitored = site({})
    assert render.dashboards(monitored)["grafana"] == "https://grafana.home.lab.example/"
    ingresses = render.render(monitored, "clusters/home")["platform/home/platform/ingresses.yaml"]
    (grafana,) = [i for i in ingresses if i["metadata"]["name"] == "grafana-dashboard"]
    assert grafana["metadata"]["namespace"] == "monitoring"
    # TLS only, from the site CA; Grafana's own login (its admin Secret from sops), no second one in front
    assert grafana["metadata"]["annotations"] == {
        "cert-manager.io/cluster-issuer": "site-ca",
        "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
        "traefik.ingress.kubernetes.io/router.tls": "true",
    }
    assert grafana["spec"]["tls"] == [{"hosts": ["grafana.home.lab.example"], "secretName": "grafana-dashboard-tls"}]
    backend = grafana["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "kube-prometheus-stack-grafana", "port": {"number": 80}}
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate")
    kubernetes_validate.validate(grafana, "1.31", strict=True)

    moved = site({"grafana_host": "metrics.example.org"})
    assert render.dashboards(moved)["grafana"] == "https://metrics.example.org/"
    ingresses = render.render(moved, "c")["platform/home/platform/ingresses.yaml"]
    assert ingresses[-1]["spec"]["rules"][0]["host"] == "metrics.example.org"


def test_the_platform_alerts_match_the_prometheus_rule_crd_and_go_after_the_chart():
    (rule,) = alerts_of(site({}))
    jsonschema.validate(rule, PROMETHEUS_RULE)
    assert rule["metadata"]["namespace"] == "monitoring"
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(rules) == {"NodeNotReady", "FluxObjectNotReady", "VolumeFillingUp"}
    assert rules["NodeNotReady"]["expr"] == 'kube_node_status_condition{condition="Ready",status="true"} == 0'
    assert rules["NodeNotReady"]["for"] == "5m"
    assert 'gotk_resource_info{ready="False"}' in rules["FluxObjectNotReady"]["expr"]
    assert rules["VolumeFillingUp"]["expr"].endswith("kubelet_volume_stats_capacity_bytes > 85")
    # the CRD comes with the chart (infrastructure): the rule is applied two stages later
    files = render.render(site({}), "clusters/home")
    assert "platform-alerts.yaml" in files["platform/home/platform/kustomization.yaml"][0]["resources"]
    assert not any(path.endswith("alerts.yaml") for path in files if "/infrastructure" in path)


def test_the_schema_of_the_crd_catches_a_misspelt_field():
    (rule,) = alerts_of(site({}))
    typo = copy.deepcopy(rule)
    typo["spec"]["groups"][0]["rules"][0]["fro"] = typo["spec"]["groups"][0]["rules"][0].pop("for")
    with pytest.raises(jsonschema.ValidationError, match="fro"):
        jsonschema.validate(typo, PROMETHEUS_RULE)
    bad = copy.deepcopy(rule)
    bad["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    with pytest.raises(jsonschema.ValidationError, match="5 minutes"):
        jsonschema.validate(bad, PROMETHEUS_RULE)


def test_alerts_can_be_turned_off_one_by_one_and_the_threshold_set():
    (rule,) = alerts_of(site({"alerts": {"flux_not_ready": False, "volume_full_percent": 90}}))
    jsonschema.validate(rule, PROMETHEUS_RULE)
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(rules) == {"NodeNotReady", "VolumeFillingUp"}
    assert (
        rules["VolumeFillingUp"]["expr"].endswith("> 90")
        and "90%" in rules["VolumeFillingUp"]["annotations"]["summary"]
    )

    silent = site({"alerts": {"node_not_ready": False, "flux_not_ready": False, "volume_filling_up": False}})
    files = render.render(silent, "clusters/home")
    assert "platform/home/platform/platform-alerts.yaml" not in files
    assert "platform-alerts.yaml" not in files["platform/home/platform/kustomization.yaml"][0]["resources"]


def _with_exporters(**ports) -> dict:
    """The example with hosts[i].services.node_exporter = {port} for h<i>=port (True: the default port)."""
    data = site_data()
    for key, port in ports.items():
        data["hosts"][int(key[1:])]["services"] = {"node_exporter": True if port is True else {"port": port}}
    return data


def test_prometheus_scrapes_the_hosts_own_node_exporters():
    site = parse_site(_with_exporters(h0=9101, h2=9200))
    spec = monitoring.monitoring_values(site)["prometheus"]["prometheusSpec"]
    assert spec["additionalScrapeConfigs"] == [
        {
            "job_name": "home-services-node",
            "static_configs": [
                {"targets": ["192.168.10.21:9101"], "labels": {"host": "cp1"}},
                {"targets": ["192.168.10.32:9200"], "labels": {"host": "worker2"}},
            ],
        }
    ]
    # the rendered HelmRelease carries it: it is the values of the chart, not an object of its own
    release = render.render(site, "clusters/home")["platform/home/infrastructure/kube-prometheus-stack.yaml"][0]
    assert (
        release["spec"]["values"]["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]
        == (spec["additionalScrapeConfigs"])
    )


def test_without_host_exporters_there_is_no_extra_scrape():
    spec = monitoring.monitoring_values(parse_site(site_data()))["prometheus"]["prometheusSpec"]
    assert "additionalScrapeConfigs" not in spec


# Prometheus' scrape_config as its configuration reference describes the fields used here (job_name required, a
# label name [a-zA-Z_][a-zA-Z0-9_]*, targets host:port); additionalProperties false catches a misspelt field.
SCRAPE_CONFIG = {
    "type": "object",
    "additionalProperties": False,
    "required": ["job_name"],
    "properties": {
        "job_name": {"type": "string", "minLength": 1},
        "static_configs": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "targets": {"type": "array", "items": {"type": "string", "pattern": "^[^/:\\s]+:[0-9]{1,5}$"}},
                    "labels": {
                        "type": "object",
                        "propertyNames": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                        "additionalProperties": {"type": "string"},
                    },
                },
            },
        },
    },
}


def test_the_scrape_configs_have_prometheus_shape():
    scrapes = monitoring.host_exporter_scrapes(parse_site(_with_exporters(h1=9101)))
    validator = jsonschema.Draft202012Validator(SCRAPE_CONFIG)
    assert [list(validator.iter_errors(s)) for s in scrapes] == [[]]
    broken = copy.deepcopy(scrapes[0])
    broken["static_config"] = broken.pop("static_configs")
    assert list(validator.iter_errors(broken))

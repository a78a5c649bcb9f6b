# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Monitoring from the site's monitoring section: kube-prometheus-stack, Grafana's Ingress and admin Secret (its
plaintext here, encrypted by apply.py), the platform's alerts, and the scrape of the hosts' own node exporters
(hosts[].services.node_exporter). Pure data: no I/O here."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.manifests import (
    CHARTS,
    helm_release,
    object_meta,
    rendered_meta,
)
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.storage import default_storage_class
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.kube import FLUX_KINDS
from ansible_collections.nerv.homelab.plugins.module_utils.site.endpoints import (
    MONITORING_NAMESPACE,
    MONITORING_RELEASE,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import NODE_EXPORTER_PORT
from ansible_collections.nerv.homelab.plugins.module_utils.site.services import service

GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_USER = "admin"
# In the chart's stage: Grafana's pod needs the Secret to start, and the HelmRelease waits for the pod
GRAFANA_ADMIN_STAGE = "infrastructure"
GRAFANA_ADMIN_FILE = "grafana-admin.sops.yaml"


def grafana_admin_secret(password: str) -> dict:
    """The plaintext of Grafana's admin Secret, for apply.py to encrypt (stringData: sops encrypts it). Marked
    as rendered (readable without decrypting it): when the site drops monitoring, the prune removes it with the rest."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": rendered_meta(GRAFANA_ADMIN_SECRET, MONITORING_NAMESPACE),
        "type": "Opaque",
        "stringData": {"admin-user": GRAFANA_ADMIN_USER, "admin-password": password},
    }


# The scrape job of the hosts' own node exporters (hosts[].services.node_exporter)
HOST_EXPORTER_JOB = "home-services-node"


def host_exporter_targets(site: dict) -> list:
    """(host name, address:port) of every host that runs the node exporter of the home services, in site order."""
    exporters = [(host, service(host, "node_exporter")) for host in site["hosts"]]
    return [
        (host["name"], f"{host['address']}:{exporter.get('port', NODE_EXPORTER_PORT)}")
        for host, exporter in exporters
        if exporter is not None
    ]


def host_exporter_scrapes(site: dict) -> list:
    """Prometheus' scrape configs (additionalScrapeConfigs) for the hosts' own node exporters, one target per host
    labelled with its name; none when no host runs one. The chart's own node exporter (a DaemonSet on port 9100)
    covers the nodes inside the cluster; these are the exporters the site's hosts run under NixOS."""
    targets = host_exporter_targets(site)
    if not targets:
        return []
    static = [{"targets": [target], "labels": {"host": name}} for name, target in targets]
    return [{"job_name": HOST_EXPORTER_JOB, "static_configs": static}]


def _claim(storage_class: str, size: str) -> dict:
    return {"spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": size}}}}  # fmt: skip


def monitoring_values(site: dict) -> dict:
    """kube-prometheus-stack's values from the site's monitoring section."""
    monitoring = site["monitoring"]
    storage_class = monitoring.get("storage_class") or default_storage_class(site)
    disabled = {"enabled": False}
    return {
        # K3s runs the controller manager, scheduler and proxy inside its own process, listening on 127.0.0.1, and
        # has no etcd pods: their ServiceMonitors would find nothing and their "down" alerts would fire for ever
        "kubeControllerManager": disabled,
        "kubeScheduler": disabled,
        "kubeProxy": disabled,
        "kubeEtcd": disabled,
        "prometheus": {"prometheusSpec": {
            "retention": monitoring["retention"],
            "storageSpec": {"volumeClaimTemplate": _claim(storage_class, monitoring["prometheus_storage"])},
            # every rule and monitor in the cluster (platform-alerts.yaml, the apps' own), not only the chart's
            "ruleSelectorNilUsesHelmValues": False,
            "serviceMonitorSelectorNilUsesHelmValues": False,
            "podMonitorSelectorNilUsesHelmValues": False,
            "probeSelectorNilUsesHelmValues": False,
            **({"additionalScrapeConfigs": host_exporter_scrapes(site)} if host_exporter_scrapes(site) else {}),
        }},
        "alertmanager": {"alertmanagerSpec": {
            "storage": {"volumeClaimTemplate": _claim(storage_class, monitoring["alertmanager_storage"])}}},
        "grafana": {
            # the password lives in a sops-encrypted Secret in Git, never in these values
            "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
            # served by the Ingress of platform/ingresses.yaml, like every dashboard
            "ingress": {"enabled": False},
            "persistence": {"enabled": True, "type": "pvc", "storageClassName": storage_class,
                            "accessModes": ["ReadWriteOnce"], "size": monitoring["grafana_storage"]},
            # a ReadWriteOnce volume cannot attach to the new pod while the old one still holds it
            "deploymentStrategy": {"type": "Recreate"},
        },
        "nodeExporter": {"enabled": True},
        # a DaemonSet on every node, control-plane nodes (and any other taint) included
        "prometheus-node-exporter": {"tolerations": [{"operator": "Exists"}]},
        "kube-state-metrics": flux_state_metrics(),
    }  # fmt: skip


def monitoring_storage_release(site: dict) -> str:
    """The release that provisions the monitoring volumes: csi-driver-nfs for the site's NFS class, else Longhorn
    (its own class, and the one to wait for when the site names a class of its own)."""
    storage_class = site["monitoring"].get("storage_class") or default_storage_class(site)
    nfs = site.get("nfs") or {}
    return "csi-driver-nfs" if nfs and storage_class == nfs.get("storage_class", "nfs") else "longhorn"


def monitoring_release(site: dict) -> dict:
    """kube-prometheus-stack's HelmRelease: after the release whose StorageClass its volumes are on (and the chart
    is large: it gets the stage's whole timeout)."""
    release = helm_release(site, MONITORING_RELEASE, monitoring_values(site))
    storage = monitoring_storage_release(site)
    release["spec"]["dependsOn"] = [{"name": storage, "namespace": CHARTS[storage][0]}]
    release["spec"]["timeout"] = "10m"
    return release


def _metrics_order(kind: str) -> tuple:
    """The Flux sources by name, then the others as FLUX_KINDS lists them: the order these values have always had."""
    source = FLUX_KINDS[kind][0] == "source.toolkit.fluxcd.io"
    return (not source, kind if source else "")


def flux_state_metrics() -> dict:
    """kube-state-metrics values that export gotk_resource_info{ready=...} for Flux's objects: the controllers of
    Flux 2.6 no longer export their objects' readiness themselves (gotk_reconcile_condition is gone)."""
    kinds = sorted(FLUX_KINDS, key=_metrics_order)
    resources = []
    for kind in kinds:
        group, version, _plural = FLUX_KINDS[kind]
        resources.append({
            "groupVersionKind": {"group": group, "version": version, "kind": kind},
            "metricNamePrefix": "gotk",
            "metrics": [{"name": "resource_info", "help": "The current state of a Flux object.",
                         "each": {"type": "Info", "info": {"labelsFromPath": {"name": ["metadata", "name"]}}}}],
            "labelsFromPath": {"exported_namespace": ["metadata", "namespace"],
                               "ready": ["status", "conditions", "[type=Ready]", "status"],
                               "suspended": ["spec", "suspend"]},
        })  # fmt: skip
    rule = {"apiGroups": sorted({group for group, _version, _plural in FLUX_KINDS.values()}),
            "resources": [FLUX_KINDS[kind][2] for kind in kinds], "verbs": ["list", "watch"]}  # fmt: skip
    return {
        "rbac": {"extraRules": [rule]},
        "customResourceState": {"enabled": True,
                                "config": {"kind": "CustomResourceStateMetrics", "spec": {"resources": resources}}},
    }  # fmt: skip


# site key -> (alert, PromQL, for, severity, summary); PERCENT is monitoring.alerts.volume_full_percent
PLATFORM_ALERTS = {
    "node_not_ready": (
        "NodeNotReady",
        'kube_node_status_condition{condition="Ready",status="true"} == 0',
        "5m",
        "critical",
        "Node {{ $labels.node }} has not been Ready for 5 minutes.",
    ),
    "flux_not_ready": (
        "FluxObjectNotReady",
        'max by (customresource_kind, exported_namespace, name) (gotk_resource_info{ready="False"}) > 0',
        "10m",
        "warning",
        "{{ $labels.customresource_kind }} {{ $labels.exported_namespace }}/{{ $labels.name }} has not been Ready "
        "for 10 minutes.",
    ),
    "volume_filling_up": (
        "VolumeFillingUp",
        "100 * kubelet_volume_stats_used_bytes / kubelet_volume_stats_capacity_bytes > PERCENT",
        "5m",
        "warning",
        "PersistentVolumeClaim {{ $labels.namespace }}/{{ $labels.persistentvolumeclaim }} is over PERCENT% full.",
    ),
}


def platform_alerts(site: dict) -> list:
    """The platform's PrometheusRule, none when every alert is off (the operator's CRD comes with the chart: this
    goes in a later stage)."""
    alerts = site["monitoring"]["alerts"]
    percent = str(alerts["volume_full_percent"])
    rules = [
        {"alert": alert, "expr": expr.replace("PERCENT", percent), "for": duration, "labels": {"severity": severity},
         "annotations": {"summary": summary.replace("PERCENT", percent)}}
        for key, (alert, expr, duration, severity, summary) in PLATFORM_ALERTS.items()
        if alerts[key]
    ]  # fmt: skip
    if not rules:
        return []
    return [{
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": object_meta("platform", MONITORING_NAMESPACE, {"release": MONITORING_RELEASE}),
        "spec": {"groups": [{"name": "platform", "rules": rules}]},
    }]  # fmt: skip

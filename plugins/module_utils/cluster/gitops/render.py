# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's Git content, rendered from the site model: Flux Kustomizations and the platform's releases.

clusters/<site>/ (what flux-system applies) holds only four Flux Kustomizations, applied in order (infrastructure
-> infrastructure-config -> platform -> apps, each dependsOn the one before, with wait, prune and sops decryption).
Their content lives outside it, in platform/<site>/<stage>/ - inside clusters/<site>/ flux-system would apply it
all at once and the order would be lost: the HelmRepositories and HelmReleases of MetalLB, cert-manager, Traefik
and Longhorn (with the site's nfs section csi-driver-nfs and its StorageClass, with monitoring kube-prometheus-stack),
MetalLB's pool from the site, the issuer of the site CA (its Secret written by apply.py), the dashboards' ingresses
and the site's apps.
The parts live beside this file: manifests.py (charts, versions, HelmReleases), storage.py,
monitoring.py, dashboards.py and apps.py; this file puts them into stages. Pure data: no I/O here.
"""

from __future__ import annotations

import re

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.flux import SOPS_SECRET
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.apps import app_files, app_values_file
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.backups import (
    BACKUP_FILE,
    longhorn_backup_values,
    recurring_jobs,
)
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.dashboards import (
    DASHBOARD_AUTH,
    DASHBOARD_AUTH_FILE,
    DASHBOARD_AUTH_STAGE,
    TRAEFIK_NAMESPACE,
    auth_secret,
    dashboard_access,
    ingresses,
    traefik_dashboard,
)
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.manifests import (
    SITE_CA_ISSUER,
    SOPS_ENCRYPTED_REGEX,
    RenderError,
    chart_version,
    helm_release,
    helm_repositories,
    kustomization,
    namespaces,
    object_meta,
    rendered_meta,
)
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.monitoring import (
    GRAFANA_ADMIN_FILE,
    GRAFANA_ADMIN_SECRET,
    GRAFANA_ADMIN_STAGE,
    grafana_admin_secret,
    monitoring_release,
    platform_alerts,
)
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.storage import (
    default_storage_class,
    nfs_storage_class,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.endpoints import (
    MONITORING_NAMESPACE,
    monitoring_on,
    site_dashboards,
    traefik_address,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.reader import yaml

STAGES = ("infrastructure", "infrastructure-config", "platform", "apps")

# Releases with a LoadBalancer Service go in the pool's stage, not MetalLB's: helm-controller installs with Helm's
# wait, which holds a LoadBalancer Service not ready until it has an address (Helm v3.17.3 pkg/kube/ready.go,
# serviceReady), and MetalLB hands out addresses only from an IPAddressPool, which needs MetalLB's CRDs and webhook
# (so a stage after MetalLB's). In MetalLB's stage Traefik would never become Ready, and the stage with the pool,
# which waits for it, would never be applied.
AFTER_POOL = ("traefik",)


def flux_kustomizations(stage_root: str) -> list:
    """The four stages, each waiting for the one before (MetalLB's CRs need its webhook up first)."""
    docs = []
    for index, stage in enumerate(STAGES):
        spec = {
            "interval": "10m",
            "retryInterval": "1m",
            "timeout": "10m",
            "path": f"./{stage_root}/{stage}",
            "prune": True,
            "wait": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            # flux-system's own Kustomization (written by bootstrap) has no decryption: the stages carry it
            "decryption": {"provider": "sops", "secretRef": {"name": SOPS_SECRET}},
        }
        if index:
            spec["dependsOn"] = [{"name": STAGES[index - 1]}]
        docs.append({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                     "metadata": object_meta(stage, "flux-system"), "spec": spec})  # fmt: skip
    return docs


def releases(site: dict) -> dict:
    replicas = min(3, len(site["hosts"]))
    traefik = {
        "ingressClass": {"enabled": True, "isDefaultClass": True},
        # pinned: the LAN's DNS (home services, site/services.py) points the ingress hosts at this address
        "service": {"type": "LoadBalancer", "annotations": {"metallb.io/loadBalancerIPs": traefik_address(site)}},
        # the dashboard as the chart publishes it, on websecure behind the dashboards' login (dashboards.py)
        "ingressRoute": {"dashboard": traefik_dashboard(site)},
        "providers": {"kubernetesIngress": {"publishedService": {"enabled": True}}},
    }
    longhorn = {
        "defaultSettings": {"defaultReplicaCount": replicas},
        "persistence": {"defaultClassReplicaCount": replicas},
        **longhorn_backup_values(site),
    }
    if default_storage_class(site) != "longhorn":
        longhorn["persistence"]["defaultClass"] = False  # one default StorageClass: the site's NFS class
    out = {
        "metallb": helm_release(site, "metallb", {}),
        # crds.enabled: installCRDs is deprecated
        "cert-manager": helm_release(site, "cert-manager", {"crds": {"enabled": True}}),
        "traefik": helm_release(site, "traefik", traefik),
        "longhorn": helm_release(site, "longhorn", longhorn),
    }
    if site.get("nfs"):
        # the chart makes no StorageClass of its own (storageClass.create defaults to false): nfs_storage_class
        # renders the site's
        out["csi-driver-nfs"] = helm_release(site, "csi-driver-nfs", {})
    if monitoring_on(site):
        out["kube-prometheus-stack"] = monitoring_release(site)
    return out


def metallb_pool(site: dict) -> list:
    addresses = [a if "/" in a else a.replace(" ", "") for a in site["metallb"]["addresses"]]
    site_meta = object_meta("site", "metallb-system")
    return [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": site_meta,
         "spec": {"addresses": addresses}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": dict(site_meta),
         "spec": {"ipAddressPools": ["site"]}},
    ]  # fmt: skip


# The site CA (made once on the controller, secrets/site_ca.py) as the Secret the ClusterIssuer signs with; a CA
# issuer reads its Secret from cert-manager's own namespace. apply.py writes the file, sops-encrypted for Flux.
SITE_CA_SECRET = "site-ca"
SITE_CA_NAMESPACE = "cert-manager"
SITE_CA_STAGE = "infrastructure-config"
SITE_CA_FILE = "site-ca.sops.yaml"


def cluster_issuers() -> list:
    """The issuer that signs with the site CA (Secret cert-manager/site-ca, the CA the site's Caddy hosts share)."""
    return [
        {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": object_meta(SITE_CA_ISSUER),
         "spec": {"ca": {"secretName": SITE_CA_SECRET}}},
    ]  # fmt: skip


def site_ca_secret(certificate: str, key: str) -> dict:
    """The site CA as a TLS Secret for cert-manager (its ca.crt too: cert-manager copies it into every certificate's
    Secret, so workloads find the root there); marked as rendered, as the other Secrets made here are."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": rendered_meta(SITE_CA_SECRET, SITE_CA_NAMESPACE),
            "stringData": {"tls.crt": certificate, "tls.key": key, "ca.crt": certificate}}  # fmt: skip


def made_once(site: dict) -> dict:
    """(stage, file) -> (the Secret's namespace/name, password -> its plaintext): the Secrets apply.py makes once
    with a new random password, sops-encrypted, and then keeps (made again, a password would change under a running
    UI): the dashboards' login, and Grafana's admin with monitoring."""
    out = {(DASHBOARD_AUTH_STAGE, DASHBOARD_AUTH_FILE): (f"{TRAEFIK_NAMESPACE}/{DASHBOARD_AUTH}", auth_secret)}
    if monitoring_on(site):
        grafana = (f"{MONITORING_NAMESPACE}/{GRAFANA_ADMIN_SECRET}", grafana_admin_secret)
        out[(GRAFANA_ADMIN_STAGE, GRAFANA_ADMIN_FILE)] = grafana
    return out


CAPACITOR_MANIFESTS = "oci://ghcr.io/gimlet-io/capacitor-manifests"


def dashboards(site: dict) -> dict:
    """dashboard -> its URL on the site's domain."""
    return {name: f"https://{target[3]}/" for name, target in site_dashboards(site).items()}


def flux_dashboard(site: dict) -> list:
    """Capacitor's manifests as an OCI artifact at the site's tag, applied into flux-system by a Kustomization of its
    own, and the NetworkPolicy that lets Traefik reach it: flux bootstrap's allow-egress policy (Flux v2.6.1
    manifests/policies/allow-egress.yaml) admits traffic into flux-system only from flux-system itself."""
    tag = chart_version(site, "capacitor")
    from_traefik = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": TRAEFIK_NAMESPACE}}}
    return [
        {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
         "metadata": object_meta("capacitor", "flux-system"),
         "spec": {"interval": "12h", "url": CAPACITOR_MANIFESTS, "ref": {"tag": tag}}},
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
         "metadata": object_meta("capacitor", "flux-system"),
         "spec": {"targetNamespace": "flux-system", "interval": "1h", "retryInterval": "2m", "timeout": "5m",
                  "wait": True, "prune": True, "path": "./",
                  "sourceRef": {"kind": "OCIRepository", "name": "capacitor"}}},
        # the pods of Capacitor's manifests (deploy/k8s/manifest.yaml of capacitor-v0.4.8) carry this label
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": object_meta("capacitor-from-traefik", "flux-system"),
         "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "capacitor"}},
                  "policyTypes": ["Ingress"],
                  "ingress": [{"from": [from_traefik], "ports": [{"protocol": "TCP", "port": 9000}]}]}},
    ]  # fmt: skip


def parse_sops_config(text: str, path: str) -> dict:
    """An existing .sops.yaml as a mapping; RenderError naming the file when it is not one."""
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise RenderError(f"{path} is not valid YAML ({exc}): mend it or remove it") from None
    if not isinstance(config, dict):
        raise RenderError(f"{path} is not a mapping of sops settings: mend it or remove it")
    return config


def sops_rules(existing: dict | None, stage_root: str, recipients: list) -> dict:
    """The repository's .sops.yaml with this site's rule (secrets under stage_root, encrypted to recipients: the
    admins and the cluster's Flux key) put first; the rules of other sites and the user's own are kept."""
    path_regex = f"^{re.escape(stage_root)}/.*\\.sops\\.ya?ml$"
    rule = {"path_regex": path_regex, "encrypted_regex": SOPS_ENCRYPTED_REGEX, "age": ",".join(recipients)}
    config = dict(existing or {})
    rules = config.get("creation_rules") or []
    others = [r for r in rules if not (isinstance(r, dict) and r.get("path_regex") == path_regex)]
    config["creation_rules"] = [rule, *others]
    return config


def render(site: dict, site_path: str, stage_root: str | None = None) -> dict:
    """relative path -> list of documents: site_path (clusters/<site>) and stage_root (platform/<site>)."""
    site_path = site_path.strip("/")
    stage_root = (stage_root or f"platform/{site['site']['name']}").strip("/")
    charts = releases(site)
    infra = {
        "namespaces.yaml": namespaces(site),
        "repositories.yaml": helm_repositories(site),
        **{f"{name}.yaml": [release] for name, release in charts.items() if name not in AFTER_POOL},
    }
    infra.update({"nfs-storage-class.yaml": nfs_storage_class(site)} if site.get("nfs") else {})
    config = {"metallb-pool.yaml": metallb_pool(site), "cluster-issuers.yaml": cluster_issuers(),
              **{f"{name}.yaml": [charts[name]] for name in AFTER_POOL}}  # fmt: skip
    # Longhorn's RecurringJob needs the CRDs its chart installs (infrastructure): the stage after it
    config.update({BACKUP_FILE: recurring_jobs(site)} if recurring_jobs(site) else {})
    platform = {"ingresses.yaml": ingresses(site), "flux-dashboard.yaml": flux_dashboard(site),
                "dashboard-access.yaml": dashboard_access(site)}  # fmt: skip
    if monitoring_on(site) and platform_alerts(site):
        platform["platform-alerts.yaml"] = platform_alerts(site)
    files = {f"{site_path}/stages.yaml": flux_kustomizations(stage_root)}
    # each stage's sops files (apply.py writes them): in its kustomization.yaml, not rendered here
    secret = {SITE_CA_STAGE: [SITE_CA_FILE]}
    secret["apps"] = [app_values_file(app) for app in site.get("apps") or [] if app.get("values_sops")]
    for stage, name in made_once(site):
        secret.setdefault(stage, []).append(name)
    for stage, content in zip(STAGES, (infra, config, platform, app_files(site)), strict=True):
        for name, docs in content.items():
            files[f"{stage_root}/{stage}/{name}"] = docs
        files[f"{stage_root}/{stage}/kustomization.yaml"] = [kustomization(sorted([*content, *secret.get(stage, [])]))]
    return files

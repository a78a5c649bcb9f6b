# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's Git content, rendered from the site model: Flux Kustomizations and the platform's releases.

clusters/<site>/ (what flux-system applies) holds only four Flux Kustomizations, applied in order (infrastructure
-> infrastructure-config -> platform -> apps, each dependsOn the one before, with wait, prune and sops decryption).
Their content lives outside it, in platform/<site>/<stage>/ - inside clusters/<site>/ flux-system would apply it
all at once and the order would be lost: the HelmRepositories and HelmReleases of MetalLB, cert-manager, Traefik
and Longhorn (with the site's nfs section csi-driver-nfs and its StorageClass, with monitoring kube-prometheus-stack),
MetalLB's pool from the site, a self-signed CA for the site's domain, the dashboards' ingresses and the site's apps.
Pure data: no I/O here.
"""

from __future__ import annotations

import re

from ansible_collections.nerv.homelab.plugins.module_utils.site.checks import PLATFORM_NAMESPACES
from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import PLATFORM_VERSIONS

try:
    import yaml
except ImportError:
    yaml = None

CSI_DRIVER_NFS_CHARTS = "https://raw.githubusercontent.com/kubernetes-csi/csi-driver-nfs/master/charts"
CHARTS = {
    # release: (namespace, repository name, repository URL, chart); the version is the site's
    # (platform.versions.<release with '_' for '-'>), defaulted by the schema
    "metallb": ("metallb-system", "metallb", "https://metallb.github.io/metallb", "metallb"),
    "cert-manager": ("cert-manager", "jetstack", "https://charts.jetstack.io", "cert-manager"),
    "traefik": ("traefik", "traefik", "https://traefik.github.io/charts", "traefik"),
    "longhorn": ("longhorn-system", "longhorn", "https://charts.longhorn.io", "longhorn"),
    # only with the site's nfs section; kube-system, as upstream installs it
    "csi-driver-nfs": ("kube-system", "csi-driver-nfs", CSI_DRIVER_NFS_CHARTS, "csi-driver-nfs"),
    "kube-prometheus-stack": (
        "monitoring",
        "prometheus-community",
        "https://prometheus-community.github.io/helm-charts",
        "kube-prometheus-stack",
    ),
}
CORE_RELEASES = ("metallb", "cert-manager", "traefik", "longhorn")
STAGES = ("infrastructure", "infrastructure-config", "platform", "apps")
SOPS_SECRET = "sops-age"
# Namespaces every cluster has: a release may live there, but the platform must not own (and prune) them.
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NFS_PROVISIONER = "nfs.csi.k8s.io"
# What sops encrypts in the site's Kubernetes Secrets (Flux's convention): their data, never their metadata
SOPS_ENCRYPTED_REGEX = "^(data|stringData)$"


class RenderError(Exception):
    """Bad input for rendering (the checkout is missing, say)."""


def dump(docs: list) -> str:
    """Documents as one multi-document YAML text, keys in the order they were built."""
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=120)


def _meta(name: str, namespace: str | None = None, labels: dict | None = None) -> dict:
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return meta


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
                     "metadata": _meta(stage, "flux-system"), "spec": spec})  # fmt: skip
    return docs


def _kustomization(resources: list) -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}


def active_charts(site: dict) -> list:
    """The releases this site's platform holds, in CHARTS order (optional ones only when the site asks)."""
    return [release for release in CHARTS if release in CORE_RELEASES or _optional_wanted(site, release)]


def _optional_wanted(site: dict, release: str) -> bool:
    if release == "csi-driver-nfs":
        return bool(site.get("nfs"))
    return release == "kube-prometheus-stack" and monitoring_on(site)


def chart_version(site: dict, release: str) -> str:
    """The chart version the site pins (platform.versions), else the collection's default."""
    key = release.replace("-", "_")
    pinned = ((site.get("platform") or {}).get("versions") or {}).get(key)
    return pinned or PLATFORM_VERSIONS[key]


def helm_repositories(site: dict) -> list:
    repos = {}
    for release in active_charts(site):
        _namespace, name, url, _chart = CHARTS[release]
        repos[name] = url
    return [
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": _meta(name, "flux-system"),
            "spec": {"interval": "1h", "url": url},
        }  # fmt: skip
        for name, url in repos.items()
    ]


def helm_release(site: dict, release: str, values: dict) -> dict:
    namespace, repo, _url, chart = CHARTS[release]
    version = chart_version(site, release)
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": _meta(release, namespace),
        "spec": {
            "interval": "30m",
            "chart": {
                "spec": {
                    "chart": chart,
                    "version": version,
                    "sourceRef": {"kind": "HelmRepository", "name": repo, "namespace": "flux-system"},
                }
            },  # fmt: skip
            "install": {"crds": "CreateReplace", "remediation": {"retries": 3}},
            "upgrade": {"crds": "CreateReplace", "remediation": {"retries": 3}},
            "values": values,
        },
    }


def namespaces(site: dict) -> list:
    names = sorted({CHARTS[release][0] for release in active_charts(site)} - set(BUILTIN_NAMESPACES))
    labels = {"longhorn-system": {"pod-security.kubernetes.io/enforce": "privileged"},
              "metallb-system": {"pod-security.kubernetes.io/enforce": "privileged"},
              # node exporter reads the host (hostNetwork, hostPID, host paths)
              "monitoring": {"pod-security.kubernetes.io/enforce": "privileged"}}  # fmt: skip
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(n, labels=labels.get(n))} for n in names]


def releases(site: dict) -> dict:
    replicas = min(3, len(site["hosts"]))
    traefik = {
        "ingressClass": {"enabled": True, "isDefaultClass": True},
        "service": {"type": "LoadBalancer"},
        # the dashboard gets an Ingress of its own (platform/ingresses.yaml), behind the site's CA
        "ingressRoute": {"dashboard": {"enabled": True, "matchRule": f"Host(`traefik.{site['network']['domain']}`)"}},
        "providers": {"kubernetesIngress": {"publishedService": {"enabled": True}}},
    }
    longhorn = {
        "defaultSettings": {"defaultReplicaCount": replicas},
        "persistence": {"defaultClassReplicaCount": replicas},
    }
    if default_storage_class(site) != "longhorn":
        longhorn["persistence"]["defaultClass"] = False  # one default StorageClass: the site's NFS class
    out = {
        "metallb": helm_release(site, "metallb", {}),
        # crds.enabled: installCRDs is deprecated
        "cert-manager": helm_release(site, "cert-manager", {"crds": {"enabled": True}}),
        "traefik": helm_release(site, "traefik", traefik),
        "longhorn": helm_release(site, "longhorn", longhorn),
        **nfs_releases(site),
    }
    if monitoring_on(site):
        out["kube-prometheus-stack"] = monitoring_release(site)
    return out


def metallb_pool(site: dict) -> list:
    addresses = [a if "/" in a else a.replace(" ", "") for a in site["metallb"]["addresses"]]
    return [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": _meta("site", "metallb-system"),
         "spec": {"addresses": addresses}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": _meta("site", "metallb-system"),
         "spec": {"ipAddressPools": ["site"]}},
    ]  # fmt: skip


def default_storage_class(site: dict) -> str:
    """The name of the cluster's default StorageClass: longhorn, or the NFS class when the site says so."""
    nfs = site.get("nfs") or {}
    return nfs.get("storage_class", "nfs") if nfs.get("default_class") else "longhorn"


def nfs_releases(site: dict) -> dict:
    """csi-driver-nfs's HelmRelease when the site has an nfs section (the chart makes no StorageClass of its own:
    storageClass.create defaults to false, and nfs_storage_class renders the site's)."""
    return {"csi-driver-nfs": helm_release(site, "csi-driver-nfs", {})} if site.get("nfs") else {}


def nfs_storage_class(site: dict) -> list:
    """The StorageClass of the site's NFS export, in the driver's stage (infrastructure): a StorageClass needs no CRD
    or webhook, and a chart there whose volumes are on it (kube-prometheus-stack's, with nfs.default_class) waits
    for csi-driver-nfs, not for a later stage that could only start once that chart is Ready.

    Each volume is a directory <namespace>/<claim>-<volume> under the export: readable on the NAS, and never the
    directory of an earlier volume (with reclaim Retain, a claim made again under the same name would otherwise
    find the old data)."""
    nfs = site.get("nfs")
    if not nfs:
        return []
    # A StorageClass's parameters are immutable: Flux recreates it when the site changes them (volumes made from
    # it keep theirs)
    annotations = {"kustomize.toolkit.fluxcd.io/force": "enabled"}
    if default_storage_class(site) == nfs["storage_class"]:
        annotations["storageclass.kubernetes.io/is-default-class"] = "true"
    meta = {**_meta(nfs["storage_class"]), "annotations": annotations}
    return [{
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": meta,
        "provisioner": NFS_PROVISIONER,
        "parameters": {"server": nfs["server"], "share": nfs["export"],
                       "subDir": "${pvc.metadata.namespace}/${pvc.metadata.name}-${pv.metadata.name}"},
        "mountOptions": list(nfs["options"]),
        "reclaimPolicy": nfs["reclaim_policy"],
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }]  # fmt: skip


def cluster_issuers(site: dict) -> list:
    """A self-signed root, a CA certificate for the site's domain made from it, and the issuer that signs with it."""
    domain = site["network"]["domain"]
    return [
        {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": _meta("selfsigned"),
         "spec": {"selfSigned": {}}},
        {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": _meta("site-ca", "cert-manager"),
         "spec": {"isCA": True, "commonName": f"{site['site']['name']} CA ({domain})", "secretName": "site-ca",
                  "duration": "87600h", "privateKey": {"algorithm": "ECDSA", "size": 256},
                  "issuerRef": {"name": "selfsigned", "kind": "ClusterIssuer", "group": "cert-manager.io"}}},
        {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": _meta("site-ca"),
         "spec": {"ca": {"secretName": "site-ca"}}},
    ]  # fmt: skip


# dashboard: (namespace, service, port); the host is <dashboard>.<domain>
DASHBOARDS = {
    "traefik": ("traefik", "traefik", 8080),
    "longhorn": ("longhorn-system", "longhorn-frontend", 80),
    # Capacitor, a UI for Flux itself (Flux has none of its own), from its published manifests
    "flux": ("flux-system", "capacitor", 9000),
}
CAPACITOR_MANIFESTS = "oci://ghcr.io/gimlet-io/capacitor-manifests"


def site_dashboards(site: dict) -> dict:
    """dashboard -> (namespace, service, port, host): the platform's, and Grafana when the site has monitoring."""
    domain = site["network"]["domain"]
    out = {name: (*target, f"{name}.{domain}") for name, target in DASHBOARDS.items()}
    if monitoring_on(site):
        out["grafana"] = (MONITORING_NAMESPACE, GRAFANA_SERVICE, 80, grafana_host(site))
    return out


def dashboards(site: dict) -> dict:
    """dashboard -> its URL on the site's domain."""
    return {name: f"https://{target[3]}/" for name, target in site_dashboards(site).items()}


def ingresses(site: dict) -> list:
    """Ingresses for the dashboards, with certificates from the site's CA."""
    docs = []
    for name, (namespace, service, port, host) in site_dashboards(site).items():
        docs.append({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {**_meta(f"{name}-dashboard", namespace),
                         "annotations": {"cert-manager.io/cluster-issuer": "site-ca"}},
            "spec": {
                "ingressClassName": "traefik",
                "tls": [{"hosts": [host], "secretName": f"{name}-dashboard-tls"}],
                "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                    "service": {"name": service, "port": {"number": port}}}}]}}],
            },
        })  # fmt: skip
    return docs


def flux_dashboard() -> list:
    """Capacitor's manifests as an OCI artifact, applied into flux-system by a Kustomization of its own."""
    return [
        {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
         "metadata": _meta("capacitor", "flux-system"),
         "spec": {"interval": "12h", "url": CAPACITOR_MANIFESTS, "ref": {"semver": ">=0.1.0"}}},
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
         "metadata": _meta("capacitor", "flux-system"),
         "spec": {"targetNamespace": "flux-system", "interval": "1h", "retryInterval": "2m", "timeout": "5m",
                  "wait": True, "prune": True, "path": "./",
                  "sourceRef": {"kind": "OCIRepository", "name": "capacitor"}}},
    ]  # fmt: skip


# ---- the site's apps (the apps stage): one file per app, so removing an app removes its file ---------------------

# The layer of an OCI artifact that is a Helm chart: OCIRepository hands the chart itself to helm-controller
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
# Marks the objects of an app's values Secret (readable without decrypting it) as rendered, for pruning
RENDERED_ANNOTATION = "nerv.homelab/rendered-by"


def _app_source_name(app: dict) -> str:
    # one source per app (not one per URL): the app's file then holds all of it and goes with it
    return f"app-{app['name']}"


def _is_oci(app: dict) -> bool:
    return app["repository"].startswith("oci://")


def app_source(app: dict) -> dict:
    """The app's chart source in flux-system: a HelmRepository, or for oci:// an OCIRepository of the chart."""
    meta = _meta(_app_source_name(app), "flux-system")
    if not _is_oci(app):
        return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "metadata": meta,
                "spec": {"interval": "1h", "url": app["repository"]}}  # fmt: skip
    url = f"{app['repository'].rstrip('/')}/{app['chart']}"
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository", "metadata": meta,
            "spec": {"interval": "1h", "url": url, "ref": {"tag": app["version"]},
                     "layerSelector": {"mediaType": HELM_CHART_LAYER, "operation": "copy"}}}  # fmt: skip


def app_release(app: dict) -> dict:
    """The app's HelmRelease, shaped as the platform's (helm_release); values_sops arrive through valuesFrom."""
    source = {"name": _app_source_name(app), "namespace": "flux-system"}
    spec = {"interval": "30m"}
    if _is_oci(app):
        spec["chartRef"] = {"kind": "OCIRepository", **source}
    else:
        spec["chart"] = {"spec": {"chart": app["chart"], "version": app["version"],
                                  "sourceRef": {"kind": "HelmRepository", **source}}}  # fmt: skip
    spec["install"] = {"crds": "CreateReplace", "remediation": {"retries": 3}}
    spec["upgrade"] = {"crds": "CreateReplace", "remediation": {"retries": 3}}
    if app.get("values_sops"):
        # merged before spec.values: a key given in both takes the site file's value
        spec["valuesFrom"] = [{"kind": "Secret", "name": app_values_secret(app), "valuesKey": "values.yaml"}]
    spec["values"] = app.get("values") or {}
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": _meta(app["name"], app["namespace"]), "spec": spec}  # fmt: skip


def app_ingress(app: dict) -> dict:
    """The app's Ingress through Traefik, its certificate from the site CA (as the dashboards' ingresses)."""
    ingress = app["ingress"]
    host, name = ingress["host"], app["name"]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {**_meta(name, app["namespace"]), "annotations": {"cert-manager.io/cluster-issuer": "site-ca"}},
        "spec": {
            "ingressClassName": "traefik",
            "tls": [{"hosts": [host], "secretName": f"{name}-tls"}],
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": ingress["service"], "port": {"number": ingress["port"]}}}}]}}],
        },
    }  # fmt: skip


def app_values_secret(app: dict) -> str:
    return f"{app['name']}-values"


def app_values_file(app: dict) -> str:
    """The name, in the apps stage, of the sops-encrypted Secret holding the app's values_sops."""
    return f"{app['name']}-values.sops.yaml"


def app_values_manifest(app: dict, values_text: str) -> dict:
    """The Secret (before encryption) that carries the app's values_sops text to helm-controller."""
    meta = {**_meta(app_values_secret(app), app["namespace"]), "annotations": {RENDERED_ANNOTATION: "gitops_render"}}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "stringData": {"values.yaml": values_text}}  # fmt: skip


def app_files(site: dict) -> dict:
    """apps-stage file name -> documents: per app its Namespace (in the first app that uses it), chart source,
    HelmRelease and Ingress. The values Secrets are not here: gitops_apply encrypts them (see app_values_file)."""
    files, seen = {}, set()
    for app in site.get("apps") or []:
        if app["namespace"] in PLATFORM_NAMESPACES:
            raise RenderError(f"app {app['name']}: namespace {app['namespace']} is the platform's: give it its own")
        docs = []
        if app["namespace"] not in seen:
            seen.add(app["namespace"])
            docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(app["namespace"])})
        docs += [app_source(app), app_release(app)]
        if app.get("ingress"):
            docs.append(app_ingress(app))
        files[f"{app['name']}.yaml"] = docs
    return files


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
    infra = {
        "namespaces.yaml": namespaces(site),
        "repositories.yaml": helm_repositories(site),
        **{f"{name}.yaml": [release] for name, release in releases(site).items()},
    }
    infra.update({"nfs-storage-class.yaml": nfs_storage_class(site)} if site.get("nfs") else {})
    config = {"metallb-pool.yaml": metallb_pool(site), "cluster-issuers.yaml": cluster_issuers(site)}
    platform = {"ingresses.yaml": ingresses(site), "flux-dashboard.yaml": flux_dashboard()}
    if monitoring_on(site) and platform_alerts(site):
        platform["platform-alerts.yaml"] = platform_alerts(site)
    files = {f"{site_path}/stages.yaml": flux_kustomizations(stage_root)}
    secret = sops_files(site)
    for stage, content in (("infrastructure", infra), ("infrastructure-config", config), ("platform", platform)):
        for name, docs in content.items():
            files[f"{stage_root}/{stage}/{name}"] = docs
        files[f"{stage_root}/{stage}/kustomization.yaml"] = [_kustomization(sorted([*content, *secret.get(stage, [])]))]
    apps = app_files(site)
    for name, docs in apps.items():
        files[f"{stage_root}/apps/{name}"] = docs
    secrets = [app_values_file(app) for app in site.get("apps") or [] if app.get("values_sops")]
    files[f"{stage_root}/apps/kustomization.yaml"] = [_kustomization(sorted([*apps, *secrets]))]
    return files


# ---- monitoring: kube-prometheus-stack, Grafana's admin Secret, the platform's alerts ----------------------------

MONITORING_NAMESPACE = "monitoring"
MONITORING_RELEASE = "kube-prometheus-stack"
# the grafana subchart's Service: <release>-grafana, port 80
GRAFANA_SERVICE = f"{MONITORING_RELEASE}-grafana"
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_ADMIN_USER = "admin"
# In the chart's stage: Grafana's pod needs the Secret to start, and the HelmRelease waits for the pod
GRAFANA_ADMIN_STAGE = "infrastructure"
GRAFANA_ADMIN_FILE = "grafana-admin.sops.yaml"
# The Flux kinds this platform holds, as the kube-state-metrics of the chart reports them (gotk_resource_info)
FLUX_KINDS = (
    ("source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories"),
    ("source.toolkit.fluxcd.io", "v1", "HelmRepository", "helmrepositories"),
    ("source.toolkit.fluxcd.io", "v1", "OCIRepository", "ocirepositories"),
    ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"),
    ("helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases"),
)


def monitoring_on(site: dict) -> bool:
    return site.get("monitoring") is not None


def grafana_host(site: dict) -> str:
    return site["monitoring"].get("grafana_host") or f"grafana.{site['network']['domain']}"


def sops_files(site: dict) -> dict:
    """stage -> the sops-encrypted files its kustomization.yaml lists; gitops_apply writes them (secret content is
    never rendered here)."""
    return {GRAFANA_ADMIN_STAGE: [GRAFANA_ADMIN_FILE]} if monitoring_on(site) else {}


def grafana_admin_secret(password: str) -> dict:
    """The plaintext of Grafana's admin Secret, for gitops_apply to encrypt (stringData: sops encrypts it). Marked
    as rendered (readable without decrypting it): when the site drops monitoring, the prune removes it with the rest."""
    meta = {**_meta(GRAFANA_ADMIN_SECRET, MONITORING_NAMESPACE), "annotations": {RENDERED_ANNOTATION: "gitops_render"}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "stringData": {"admin-user": GRAFANA_ADMIN_USER, "admin-password": password},
    }


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


def flux_state_metrics() -> dict:
    """kube-state-metrics values that export gotk_resource_info{ready=...} for Flux's objects: the controllers of
    Flux 2.6 no longer export their objects' readiness themselves (gotk_reconcile_condition is gone)."""
    resources = []
    for group, version, kind, _plural in FLUX_KINDS:
        resources.append({
            "groupVersionKind": {"group": group, "version": version, "kind": kind},
            "metricNamePrefix": "gotk",
            "metrics": [{"name": "resource_info", "help": "The current state of a Flux object.",
                         "each": {"type": "Info", "info": {"labelsFromPath": {"name": ["metadata", "name"]}}}}],
            "labelsFromPath": {"exported_namespace": ["metadata", "namespace"],
                               "ready": ["status", "conditions", "[type=Ready]", "status"],
                               "suspended": ["spec", "suspend"]},
        })  # fmt: skip
    rule = {"apiGroups": sorted({group for group, *_rest in FLUX_KINDS}),
            "resources": [plural for *_rest, plural in FLUX_KINDS], "verbs": ["list", "watch"]}  # fmt: skip
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
        "metadata": _meta("platform", MONITORING_NAMESPACE, {"release": MONITORING_RELEASE}),
        "spec": {"groups": [{"name": "platform", "rules": rules}]},
    }]  # fmt: skip

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pieces every part of the rendered platform is made of: the charts and which of them a site holds, object
metadata, and the HelmRepositories and HelmReleases at the site's versions. Pure data: no I/O here."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError
from ansible_collections.nerv.homelab.plugins.module_utils.site.endpoints import monitoring_on
from ansible_collections.nerv.homelab.plugins.module_utils.site.reader import yaml
from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import PLATFORM_VERSIONS

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

# Namespaces every cluster has: a release may live there, but the platform must not own (and prune) them.
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# The ClusterIssuer that signs with the site CA (gitops.cluster_issuers): the platform's and the apps' certificates
SITE_CA_ISSUER = "site-ca"

# What sops encrypts in the site's Kubernetes Secrets (Flux's convention): their data, never their metadata
SOPS_ENCRYPTED_REGEX = "^(data|stringData)$"


class RenderError(NervError):
    """Bad input for rendering (the checkout is missing, say)."""


def dump(docs: list) -> str:
    """Documents as one multi-document YAML text, keys in the order they were built."""
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=120)


def object_meta(name: str, namespace: str | None = None, labels: dict | None = None) -> dict:
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return meta


def rendered_meta(name: str, namespace: str) -> dict:
    """The metadata of a Secret made here, marked as rendered (readable without decrypting it) for the prune."""
    return {**object_meta(name, namespace), "annotations": {RENDERED_ANNOTATION: "gitops_render"}}


def ingress(name: str, namespace: str, annotations: dict, host: str, service: str, port: int) -> dict:
    """An Ingress through Traefik: host's every path to service:port, its certificate in Secret <name>-tls."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {**object_meta(name, namespace), "annotations": annotations},
        "spec": {
            "ingressClassName": "traefik",
            "tls": [{"hosts": [host], "secretName": f"{name}-tls"}],
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": service, "port": {"number": port}}}}]}}],
        },
    }  # fmt: skip


def kustomization(resources: list) -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": resources}


def active_charts(site: dict) -> list:
    """The releases this site's platform holds, in CHARTS order (optional ones only when the site asks)."""
    optional = {"csi-driver-nfs": bool(site.get("nfs")), "kube-prometheus-stack": monitoring_on(site)}
    return [release for release in CHARTS if optional.get(release, True)]


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
            "metadata": object_meta(name, "flux-system"),
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
        "metadata": object_meta(release, namespace),
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
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": object_meta(n, labels=labels.get(n))} for n in names]


# Marks the objects of an app's values Secret (readable without decrypting it) as rendered, for pruning
RENDERED_ANNOTATION = "nerv.homelab/rendered-by"

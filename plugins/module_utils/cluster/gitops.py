# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's Git content, rendered from the site model: Flux Kustomizations and the platform's releases.

clusters/<site>/ (what flux-system applies) holds only four Flux Kustomizations, applied in order (infrastructure
-> infrastructure-config -> platform -> apps, each dependsOn the one before, with wait, prune and sops decryption).
Their content lives outside it, in platform/<site>/<stage>/ - inside clusters/<site>/ flux-system would apply it
all at once and the order would be lost: the HelmRepositories and HelmReleases of MetalLB, cert-manager, Traefik
and Longhorn, MetalLB's pool from the site, a self-signed CA for the site's domain, and the dashboards' ingresses.
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

CHARTS = {
    # release: (namespace, repository name, repository URL, chart); the version is the site's
    # (platform.versions.<release with '_' for '-'>), defaulted by the schema
    "metallb": ("metallb-system", "metallb", "https://metallb.github.io/metallb", "metallb"),
    "cert-manager": ("cert-manager", "jetstack", "https://charts.jetstack.io", "cert-manager"),
    "traefik": ("traefik", "traefik", "https://traefik.github.io/charts", "traefik"),
    "longhorn": ("longhorn-system", "longhorn", "https://charts.longhorn.io", "longhorn"),
}
CORE_RELEASES = ("metallb", "cert-manager", "traefik", "longhorn")
STAGES = ("infrastructure", "infrastructure-config", "platform", "apps")
SOPS_SECRET = "sops-age"


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
    return [release for release in CHARTS if release in CORE_RELEASES]


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
    names = sorted({CHARTS[release][0] for release in active_charts(site)})
    labels = {"longhorn-system": {"pod-security.kubernetes.io/enforce": "privileged"},
              "metallb-system": {"pod-security.kubernetes.io/enforce": "privileged"}}  # fmt: skip
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
    return {
        "metallb": helm_release(site, "metallb", {}),
        # crds.enabled: installCRDs is deprecated
        "cert-manager": helm_release(site, "cert-manager", {"crds": {"enabled": True}}),
        "traefik": helm_release(site, "traefik", traefik),
        "longhorn": helm_release(site, "longhorn", longhorn),
    }


def metallb_pool(site: dict) -> list:
    addresses = [a if "/" in a else a.replace(" ", "") for a in site["metallb"]["addresses"]]
    return [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": _meta("site", "metallb-system"),
         "spec": {"addresses": addresses}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": _meta("site", "metallb-system"),
         "spec": {"ipAddressPools": ["site"]}},
    ]  # fmt: skip


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


def dashboards(site: dict) -> dict:
    """dashboard -> its URL on the site's domain."""
    return {name: f"https://{name}.{site['network']['domain']}/" for name in DASHBOARDS}


def ingresses(site: dict) -> list:
    """Ingresses for the dashboards, with certificates from the site's CA."""
    domain = site["network"]["domain"]
    docs = []
    for name, (namespace, service, port) in DASHBOARDS.items():
        host = f"{name}.{domain}"
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
    rule = {"path_regex": path_regex, "encrypted_regex": "^(data|stringData)$", "age": ",".join(recipients)}
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
    config = {"metallb-pool.yaml": metallb_pool(site), "cluster-issuers.yaml": cluster_issuers(site)}
    platform = {"ingresses.yaml": ingresses(site), "flux-dashboard.yaml": flux_dashboard()}
    files = {f"{site_path}/stages.yaml": flux_kustomizations(stage_root)}
    for stage, content in (("infrastructure", infra), ("infrastructure-config", config), ("platform", platform)):
        for name, docs in content.items():
            files[f"{stage_root}/{stage}/{name}"] = docs
        files[f"{stage_root}/{stage}/kustomization.yaml"] = [_kustomization(sorted(content))]
    apps = app_files(site)
    for name, docs in apps.items():
        files[f"{stage_root}/apps/{name}"] = docs
    secrets = [app_values_file(app) for app in site.get("apps") or [] if app.get("values_sops")]
    files[f"{stage_root}/apps/kustomization.yaml"] = [_kustomization(sorted([*apps, *secrets]))]
    return files

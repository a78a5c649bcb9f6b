# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site's apps (the apps stage): one file per app (Namespace, chart source, HelmRelease, Ingress), so removing an
app from the site removes its file; an app's values_sops becomes a Secret apply.py encrypts. Pure data."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.manifests import (
    SITE_CA_ISSUER,
    RenderError,
    ingress,
    object_meta,
    rendered_meta,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.checks import PLATFORM_NAMESPACES

# The layer of an OCI artifact that is a Helm chart: OCIRepository hands the chart itself to helm-controller
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def _app_source_name(app: dict) -> str:
    # one source per app (not one per URL): the app's file then holds all of it and goes with it
    return f"app-{app['name']}"


def _is_oci(app: dict) -> bool:
    return app["repository"].startswith("oci://")


def app_source(app: dict) -> dict:
    """The app's chart source in flux-system: a HelmRepository, or for oci:// an OCIRepository of the chart."""
    meta = object_meta(_app_source_name(app), "flux-system")
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
            "metadata": object_meta(app["name"], app["namespace"]), "spec": spec}  # fmt: skip


def app_ingress(app: dict) -> dict:
    """The app's Ingress through Traefik, its certificate from the site CA (as the dashboards' ingresses)."""
    annotations = {"cert-manager.io/cluster-issuer": SITE_CA_ISSUER}
    wanted = app["ingress"]
    return ingress(app["name"], app["namespace"], annotations, wanted["host"], wanted["service"], wanted["port"])


def app_values_secret(app: dict) -> str:
    return f"{app['name']}-values"


def app_values_file(app: dict) -> str:
    """The name, in the apps stage, of the sops-encrypted Secret holding the app's values_sops."""
    return f"{app['name']}-values.sops.yaml"


def app_values_manifest(app: dict, values_text: str) -> dict:
    """The Secret (before encryption) that carries the app's values_sops text to helm-controller."""
    meta = rendered_meta(app_values_secret(app), app["namespace"])
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "stringData": {"values.yaml": values_text}}  # fmt: skip


def app_files(site: dict) -> dict:
    """apps-stage file name -> documents: per app its Namespace (in the first app that uses it), chart source,
    HelmRelease and Ingress. The values Secrets are not here: apply.py encrypts them (see app_values_file)."""
    files, seen = {}, set()
    for app in site.get("apps") or []:
        if app["namespace"] in PLATFORM_NAMESPACES:
            raise RenderError(f"app {app['name']}: namespace {app['namespace']} is the platform's: give it its own")
        docs = []
        if app["namespace"] not in seen:
            seen.add(app["namespace"])
            docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": object_meta(app["namespace"])})
        docs += [app_source(app), app_release(app)]
        if app.get("ingress"):
            docs.append(app_ingress(app))
        files[f"{app['name']}.yaml"] = docs
    return files

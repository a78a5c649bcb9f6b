# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The platform's UIs on the site's domain, each over TLS from the site CA on Traefik's websecure entry point (one
the chart's Service exposes) and behind a login: Traefik's own dashboard as the chart's IngressRoute, Longhorn's and
Capacitor's (Flux) as Ingresses behind one basic-auth Middleware whose Secret apply.py makes once, sops-encrypted;
Grafana behind its own login (its admin Secret, monitoring.py). Pure data: no I/O here."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.manifests import (
    CHARTS,
    SITE_CA_ISSUER,
    ingress,
    object_meta,
    rendered_meta,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.endpoints import site_dashboards

TRAEFIK_NAMESPACE = CHARTS["traefik"][0]
# The basic-auth Middleware and its Secret (type kubernetes.io/basic-auth: username and password, which Traefik's
# basicAuth middleware reads as one user), in Traefik's namespace, in the stage after Traefik's (the Middleware's
# CRD comes with the chart)
DASHBOARD_AUTH = "dashboard-auth"
DASHBOARD_AUTH_STAGE = "platform"
DASHBOARD_AUTH_FILE = "dashboard-auth.sops.yaml"
DASHBOARD_USER = "admin"
# How an Ingress names a Middleware of the CRD provider: <namespace>-<name>@kubernetescrd
AUTH_REFERENCE = f"{TRAEFIK_NAMESPACE}-{DASHBOARD_AUTH}@kubernetescrd"
# Traefik's TLS entry point (port 443 of the chart's Service): the dashboards answer there only
SECURE_ENTRYPOINT = "websecure"
# The Secret cert-manager keeps the certificate of Traefik's own dashboard in
TRAEFIK_DASHBOARD_TLS = "traefik-dashboard-tls"
# UIs with a login of their own: no second one in front
OWN_LOGIN = ("grafana",)


def traefik_dashboard(site: dict) -> dict:
    """The chart's ingressRoute.dashboard value: on websecure, for its host, TLS from traefik_certificate, behind the
    Middleware. The dashboard's API listens on the traefik entry point, which the chart's Service does not expose:
    the IngressRoute routes to it (api@internal) from an entry point it does expose."""
    host = site_dashboards(site)["traefik"][3]
    return {"enabled": True, "matchRule": f"Host(`{host}`)", "entryPoints": [SECURE_ENTRYPOINT],
            "middlewares": [{"name": DASHBOARD_AUTH}], "tls": {"secretName": TRAEFIK_DASHBOARD_TLS}}  # fmt: skip


def traefik_certificate(site: dict) -> dict:
    """The dashboard IngressRoute's certificate: cert-manager makes certificates from Ingresses only, so Traefik's
    IngressRoute gets a Certificate of its own."""
    host = site_dashboards(site)["traefik"][3]
    return {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": object_meta("traefik-dashboard", TRAEFIK_NAMESPACE),
            "spec": {"secretName": TRAEFIK_DASHBOARD_TLS, "dnsNames": [host],
                     "issuerRef": {"kind": "ClusterIssuer", "name": SITE_CA_ISSUER}}}  # fmt: skip


def auth_middleware() -> dict:
    return {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
            "metadata": object_meta(DASHBOARD_AUTH, TRAEFIK_NAMESPACE),
            "spec": {"basicAuth": {"secret": DASHBOARD_AUTH}}}  # fmt: skip


def auth_secret(password: str) -> dict:
    """The plaintext of the dashboards' login, for apply.py to encrypt (stringData: sops encrypts it); marked as
    rendered (readable without decrypting it)."""
    meta = rendered_meta(DASHBOARD_AUTH, TRAEFIK_NAMESPACE)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth", "metadata": meta,
            "stringData": {"username": DASHBOARD_USER, "password": password}}  # fmt: skip


def ingress_annotations(name: str) -> dict:
    """TLS only, the certificate from the site CA, and the login unless the UI has its own."""
    annotations = {
        "cert-manager.io/cluster-issuer": SITE_CA_ISSUER,
        "traefik.ingress.kubernetes.io/router.entrypoints": SECURE_ENTRYPOINT,
        "traefik.ingress.kubernetes.io/router.tls": "true",
    }
    if name not in OWN_LOGIN:
        annotations["traefik.ingress.kubernetes.io/router.middlewares"] = AUTH_REFERENCE
    return annotations


def ingresses(site: dict) -> list:
    """Ingresses for the dashboards Traefik does not publish itself."""
    return [
        ingress(f"{name}-dashboard", namespace, ingress_annotations(name), host, service, port)
        for name, (namespace, service, port, host) in site_dashboards(site).items()
        if service is not None
    ]


def dashboard_access(site: dict) -> list:
    """The platform stage's dashboard-access.yaml: the login's Middleware and the certificate of Traefik's own
    dashboard (the Ingresses have their file, the login's Secret is made once by apply.py)."""
    return [auth_middleware(), traefik_certificate(site)]

"""The platform's UIs: Traefik's own dashboard as the chart publishes it, the others' Ingresses, all on websecure
behind a login. The Middleware is checked against a JSON Schema taken from Traefik's CRD and the chart's value keys
against its values.yaml: no installable package carries either (test_gitops_converges.py follows every UI from its
URL to its backend and its login on the built tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops import dashboards, render
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import load_site

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (requirements-test.txt)")

REPO = Path(__file__).resolve().parents[6]
SITE = load_site(str(REPO / "inventory" / "example-proxmox" / "site.yml"))

# traefik.io/v1alpha1 Middleware, from crds/traefik.io_middlewares.yaml of traefik-helm-chart v37.1.1 (Traefik
# v3.5.2): the basicAuth part; the API server prunes what the CRD lacks, hence no other properties here
MIDDLEWARE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "traefik.io/v1alpha1"},
        "kind": {"const": "Middleware"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "basicAuth": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "headerField": {"type": "string"},
                        "realm": {"type": "string"},
                        "removeHeader": {"type": "boolean"},
                        "secret": {"type": "string"},
                    },
                }
            },
        },
    },
}
# ingressRoute.<name> keys the chart's templates/ingressroute.yaml reads (traefik-helm-chart v37.1.1); any other
# key would be ignored without a word
INGRESS_ROUTE_KEYS = {"enabled", "annotations", "labels", "matchRule", "services", "entryPoints", "middlewares", "tls"}


def test_the_middleware_matches_its_crd_and_a_misspelt_field_is_caught():
    middleware = dashboards.auth_middleware()
    jsonschema.validate(middleware, MIDDLEWARE)
    typo = {**middleware, "spec": {"basicAuth": {"secrets": "dashboard-auth"}}}
    with pytest.raises(jsonschema.ValidationError, match="secrets"):
        jsonschema.validate(typo, MIDDLEWARE)


def test_traefiks_dashboard_is_the_charts_ingress_route_on_websecure_behind_the_login():
    (release,) = render.render(SITE, "clusters/home")["platform/home/infrastructure-config/traefik.yaml"]
    route = release["spec"]["values"]["ingressRoute"]["dashboard"]
    assert set(route) <= INGRESS_ROUTE_KEYS
    # not the chart's default entry point traefik (port 8080, ports.traefik.expose.default false): websecure (443)
    assert route["entryPoints"] == ["websecure"]
    assert route["matchRule"] == "Host(`traefik.home.lab.example`)"
    assert route["middlewares"] == [{"name": "dashboard-auth"}], "the Middleware in the release's namespace"
    assert route["tls"] == {"secretName": "traefik-dashboard-tls"}
    assert "services" not in route, "the chart's default: api@internal"


def test_the_login_secret_is_a_basic_auth_secret_kubernetes_accepts():
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate")
    secret = dashboards.auth_secret("canary-password")
    kubernetes_validate.validate(secret, "1.31", strict=True)
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert secret["stringData"] == {"username": "admin", "password": "canary-password"}


def test_every_ui_but_grafana_has_the_login_and_all_are_tls_only():
    for ingress in dashboards.ingresses(SITE):
        annotations = ingress["metadata"]["annotations"]
        assert annotations["traefik.ingress.kubernetes.io/router.entrypoints"] == "websecure"
        assert annotations["traefik.ingress.kubernetes.io/router.tls"] == "true"
        login = annotations.get("traefik.ingress.kubernetes.io/router.middlewares")
        if ingress["metadata"]["name"] == "grafana-dashboard":
            assert login is None, "Grafana has its own login (its admin Secret from sops)"
        else:
            assert login == "traefik-dashboard-auth@kubernetescrd"

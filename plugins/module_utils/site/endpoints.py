# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the cluster answers on the site's domain: the host names of its ingresses (the dashboards, Grafana with
monitoring, the apps) and the address Traefik serves them on. One definition for the renderer (cluster/gitops: the
Ingresses, Traefik's pinned address) and for the hosts' DNS records (site/services.py), so the names the cluster
serves are the names the LAN's DNS answers. Works on the raw site file's data as well as the model. Pure data."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.common.names import is_dns_label

MONITORING_NAMESPACE = "monitoring"
MONITORING_RELEASE = "kube-prometheus-stack"
# the grafana subchart's Service: <release>-grafana, port 80
GRAFANA_SERVICE = f"{MONITORING_RELEASE}-grafana"

# dashboard: (namespace, service, port) its Ingress sends to; the host is <dashboard>.<domain>. Traefik's own has
# none: its API listens on the traefik entry point, which the chart's Service does not expose, and the chart publishes
# it itself (ingressRoute.dashboard, cluster/gitops/dashboards.py)
DASHBOARDS = {
    "traefik": ("traefik", None, None),
    "longhorn": ("longhorn-system", "longhorn-frontend", 80),
    # Capacitor, a UI for Flux itself (Flux has none of its own), from its published manifests
    "flux": ("flux-system", "capacitor", 9000),
}


def monitoring_on(site: dict) -> bool:
    return site.get("monitoring") is not None


def grafana_host(site: dict) -> str:
    return site["monitoring"].get("grafana_host") or f"grafana.{site['network']['domain']}"


def app_host(host: str, domain: str) -> str:
    """An app's ingress host as a full name: a bare label joins the site's domain."""
    return f"{host}.{domain}" if is_dns_label(host) else host


def site_dashboards(site: dict) -> dict:
    """dashboard -> (namespace, service, port, host): the platform's, and Grafana when the site has monitoring."""
    domain = site["network"]["domain"]
    out = {name: (*target, f"{name}.{domain}") for name, target in DASHBOARDS.items()}
    if monitoring_on(site):
        out["grafana"] = (MONITORING_NAMESPACE, GRAFANA_SERVICE, 80, grafana_host(site))
    return out


def ingress_hosts(site: dict) -> list:
    """Every host name the cluster's Ingresses serve, in order: the dashboards', then the apps'."""
    hosts = [target[3] for target in site_dashboards(site).values()]
    domain = site["network"]["domain"]
    for app in site.get("apps") or []:
        ingress = app.get("ingress") if isinstance(app, dict) else None
        if isinstance(ingress, dict) and isinstance(ingress.get("host"), str):
            hosts.append(app_host(ingress["host"], domain))
    return list(dict.fromkeys(hosts))


def traefik_address(site: dict) -> str:
    """The address Traefik's LoadBalancer Service is pinned to: the first of MetalLB's pool (metallb.addresses[0],
    FIRST-LAST or a CIDR). Pinned, not left to MetalLB's choice, because the LAN's DNS records point at it."""
    first = site["metallb"]["addresses"][0].replace(" ", "")
    return first.split("-", 1)[0].split("/", 1)[0]

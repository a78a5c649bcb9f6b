# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The home services of a site's hosts (hosts[].services), resolved for the flake's hosts.json: which host runs a
DNS server, Caddy or the node exporter, with what settings, and the DNS records every DNS server answers - the
cluster's ingress hosts at Traefik's address (site/endpoints.py, the renderer's own definition), each host's
<name>.<domain>, each Caddy proxy name at its Caddy host, and the records the site adds."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.site.endpoints import (
    app_host,
    ingress_hosts,
    traefik_address,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import (
    DNS_DEFAULT_UPSTREAMS,
    NODE_EXPORTER_PORT,
)


def service(host: dict, name: str) -> dict | None:
    """A service's settings on host: None when off (absent or false), {} for true, else the mapping."""
    services = host.get("services")
    value = services.get(name) if isinstance(services, dict) else None
    if value is None or value is False:
        return None
    return value if isinstance(value, dict) else {}


def _address(host: dict) -> str:
    return host.get("address") or str(host["ip"]).split("/", 1)[0]


def caddy_proxies(site: dict, host: dict) -> dict:
    """Full name -> upstream URL of the host's Caddy (empty without Caddy)."""
    caddy = service(host, "caddy") or {}
    domain = site["network"]["domain"]
    return {app_host(p["name"], domain): p["upstream"] for p in caddy.get("proxies") or []}


def dns_records(site: dict) -> dict:
    """Every local A record a DNS host of the site answers: fully qualified name -> IPv4 address."""
    domain = site["network"]["domain"]
    records = {f"{host['name']}.{domain}": _address(host) for host in site["hosts"]}
    address = traefik_address(site)
    records.update({name: address for name in ingress_hosts(site)})
    for host in site["hosts"]:
        records.update({name: _address(host) for name in caddy_proxies(site, host)})
    # the records the DNS hosts add (hosts[].services.dns.records) come last: a name above, or an earlier record, wins
    for host in site["hosts"]:
        for record in (service(host, "dns") or {}).get("records") or []:
            records.setdefault(app_host(record["name"], domain), record["address"])
    return dict(sorted(records.items()))


def host_services(site: dict, host: dict) -> dict:
    """hosts.json's services of one host: dns, caddy and node_exporter, each None when the host does not run it."""
    dns, exporter = service(host, "dns"), service(host, "node_exporter")
    proxies = caddy_proxies(site, host)
    return {
        "dns": None
        if dns is None
        else {
            "engine": dns.get("engine") or "blocky",
            "upstreams": list(dns.get("upstreams") or DNS_DEFAULT_UPSTREAMS),
            "records": dns_records(site),
        },
        "caddy": {"proxies": proxies} if proxies else None,
        "node_exporter": None if exporter is None else {"port": exporter.get("port") or NODE_EXPORTER_PORT},
    }

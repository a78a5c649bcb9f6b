# The home services the collection ships, as plain NixOS options under nerv.services: DNS (Blocky
# or AdGuard Home, BIND, DNSdist), reverse proxies and load balancers (Caddy, HAProxy, Nginx), the
# Prometheus node exporter, containers run by Podman, Glances, and the UniFi and Omada network
# controllers. Each is off until enabled, so a user's flake can import this (the flake's
# nixosModules.homeServices) without the site; host.nix imports it for site hosts and sets the
# options from hosts.json. checks.nix collects the services' health checks (nerv.healthChecks)
# and refuses two services on one port.
{
  imports = [
    ./checks.nix
    ./dns.nix
    ./caddy.nix
    ./node-exporter.nix
    ./bind.nix
    ./dnsdist.nix
    ./haproxy.nix
    ./nginx.nix
    ./podman.nix
    ./glances.nix
    ./unifi.nix
    ./omada.nix
  ];
}

# The home services the collection ships, as plain NixOS options under nerv.services: a DNS server
# (Blocky or AdGuard Home) answering for the site's names, Caddy as reverse proxy on the site's
# domain, and the Prometheus node exporter. Each is off until enabled, so a user's flake can import
# this (the flake's nixosModules.homeServices) without the site; host.nix imports it for site hosts
# and sets the options from hosts.json.
{
  imports = [
    ./dns.nix
    ./caddy.nix
    ./node-exporter.nix
  ];
}

# K3s on one host, from the settings nix/lib/hosts.nix computed for it: the first
# control-plane host starts the cluster (clusterInit, embedded etcd), every other node joins
# it through serverAddr, and all of them read the one cluster token from sops (sops.nix).
#
# Uses no lib, so tests evaluate this function with stub arguments.
{
  config,
  pkgs,
  host,
  site,
  ...
}:
let
  wanted = site.k3s.package;
  # The release comes from the nixpkgs pin, never from a fetcher here: nixpkgs carries one
  # package per supported minor release (k3s_1_31, ...), each at one patch release.
  package =
    pkgs.${wanted.attr} or (throw (
      if wanted.version == null then
        "hosts.json: this nixpkgs has no ${wanted.attr} (K3s 1.31, the collection's default): set k3s.version in the site file to a release it packages, or move the nixpkgs pin"
      else
        "hosts.json: k3s.version ${site.k3s.version}: this nixpkgs has no ${wanted.attr}; choose a release it packages or move the nixpkgs pin"
    ));
in
{
  services.k3s = {
    enable = true;
    inherit package;
    inherit (host.k3s) role clusterInit extraFlags;
    tokenFile = config.sops.secrets.k3s-token.path;
  }
  // (if host.k3s.serverAddr == null then { } else { inherit (host.k3s) serverAddr; });

  # Running another patch release than the site file names would hide a version skew.
  assertions =
    if wanted.version == null then
      [ ]
    else
      [
        {
          assertion = package.version == wanted.version;
          message = "hosts.json: k3s.version is ${site.k3s.version}, but this nixpkgs pin's ${wanted.attr} is ${package.version}: move the pin (flake.lock) or change k3s.version in the site file";
        }
      ];

  networking.firewall = {
    enable = true;
    allowedTCPPorts = host.firewall.tcp;
    allowedTCPPortRanges = host.firewall.tcpRanges;
    allowedUDPPorts = host.firewall.udp;
  };
}

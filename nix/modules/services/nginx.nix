# nerv.services.nginx: Nginx as reverse proxy and load balancer: each name in `sites` is a virtual
# host on `port` (plain HTTP) whose requests go round-robin to its servers. With `throughCaddy`,
# Caddy serves each name over HTTPS with the site CA and Nginx listens on loopback only; otherwise
# the port opens. Not on 80/443: those are Caddy's.
{ config, lib, ... }:
let
  cfg = config.nerv.services.nginx;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;
  names = builtins.attrNames cfg.sites;
  upstream = name: "nerv_" + builtins.replaceStrings [ "." "-" ] [ "_" "_" ] name;
  address = if cfg.throughCaddy then "127.0.0.1" else "0.0.0.0";
in
{
  options.nerv.services.nginx = {
    enable = mkEnableOption "Nginx as reverse proxy and load balancer";
    sites = mkOption {
      type = types.attrsOf (types.listOf types.str);
      default = { };
      example = {
        "wiki.lab.example" = [
          "192.168.10.31:3000"
          "192.168.10.32:3000"
        ];
      };
      description = "Fully qualified name -> the servers (address:port, plain HTTP) its requests are spread over.";
    };
    port = mkOption {
      type = types.port;
      default = 8081;
      description = "Port the virtual hosts listen on (plain HTTP).";
    };
    throughCaddy = mkOption {
      type = types.bool;
      default = false;
      description = "Serve every name through nerv.services.caddy (HTTPS, site CA); Nginx then listens on 127.0.0.1 only.";
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open the port (TCP) in the firewall, unless throughCaddy.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      services.nginx = {
        enable = true;
        recommendedProxySettings = true;
        upstreams = builtins.listToAttrs (
          map (name: {
            name = upstream name;
            value.servers = builtins.listToAttrs (
              map (s: {
                name = s;
                value = { };
              }) cfg.sites.${name}
            );
          }) names
        );
        virtualHosts = builtins.mapAttrs (name: _servers: {
          listen = [
            {
              addr = address;
              inherit (cfg) port;
            }
          ];
          locations."/".proxyPass = "http://${upstream name}";
        }) cfg.sites;
      };
      nerv.listenPorts = [ (common.tcp "nerv.services.nginx.port" cfg.port) ];
      nerv.healthChecks = [
        (common.active "nginx.service")
        (common.tcpProbe "127.0.0.1" cfg.port)
      ];
      assertions = [
        (common.needsCaddy config "nerv.services.nginx.throughCaddy" cfg.throughCaddy)
      ]
      ++ map (name: {
        assertion = cfg.sites.${name} != [ ];
        message = "nerv.services.nginx.sites.\"${name}\" is empty: give the servers behind it as address:port";
      }) names;
    }
    (mkIf cfg.throughCaddy {
      nerv.services.caddy.proxies = builtins.mapAttrs (_: _: "http://127.0.0.1:${toString cfg.port}") cfg.sites;
    })
    (mkIf (cfg.openFirewall && !cfg.throughCaddy) {
      networking.firewall.allowedTCPPorts = [ cfg.port ];
    })
  ]);
}

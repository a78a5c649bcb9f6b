# nerv.services.haproxy: HAProxy as load balancer: each of `frontends` listens on its port and
# spreads connections (TCP) or requests (HTTP) round-robin over its servers, each health-checked.
# The frontends' ports open; the stats page listens on loopback only, reachable as
# `stats.hostName` through Caddy with the site CA.
{ config, lib, ... }:
let
  cfg = config.nerv.services.haproxy;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;
  names = builtins.attrNames cfg.frontends;
  section =
    name:
    let
      f = cfg.frontends.${name};
    in
    ''

      frontend ${name}
        mode ${f.mode}
        bind :${toString f.port}
        default_backend ${name}

      backend ${name}
        mode ${f.mode}
        balance roundrobin
    ''
    + lib.concatStrings (
      builtins.genList (
        i: "  server ${name}${toString i} ${builtins.elemAt f.servers i} check\n"
      ) (builtins.length f.servers)
    );
  # The nixpkgs module writes its own `global` section (the stats socket) before this text.
  text = ''
    defaults
      timeout connect 5s
      timeout client 1m
      timeout server 1m

    frontend stats
      mode http
      bind 127.0.0.1:${toString cfg.stats.port}
      stats enable
      stats uri /
      stats refresh 10s
  ''
  + lib.concatMapStrings section names;
in
{
  options.nerv.services.haproxy = {
    enable = mkEnableOption "HAProxy as load balancer";
    frontends = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            port = mkOption {
              type = types.port;
              description = "Port the frontend listens on (all addresses).";
            };
            servers = mkOption {
              type = types.listOf types.str;
              description = "The servers behind it, as address:port.";
            };
            mode = mkOption {
              type = types.enum [
                "tcp"
                "http"
              ];
              default = "tcp";
              description = "Balance TCP connections or HTTP requests.";
            };
          };
        }
      );
      default = { };
      example = {
        k3s-api = {
          port = 7443;
          servers = [
            "192.168.10.21:6443"
            "192.168.10.22:6443"
          ];
        };
      };
      description = "Name (letters, digits, - and _) -> a frontend and the servers behind it.";
    };
    stats = {
      port = mkOption {
        type = types.port;
        default = 8404;
        description = "Port of the stats page, on 127.0.0.1.";
      };
      hostName = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "haproxy.lab.example";
        description = "A name on the site's domain Caddy serves the stats page as (needs nerv.services.caddy).";
      };
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open the frontends' ports (TCP) in the firewall.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      services.haproxy = {
        enable = true;
        config = text;
      };
      nerv.listenPorts = [
        (common.tcp "nerv.services.haproxy.stats.port" cfg.stats.port)
      ]
      ++ map (n: common.tcp "nerv.services.haproxy.frontends.${n}.port" cfg.frontends.${n}.port) names;
      nerv.healthChecks = [
        (common.active "haproxy.service")
        (common.tcpProbe "127.0.0.1" cfg.stats.port)
      ]
      ++ map (n: common.tcpProbe "127.0.0.1" cfg.frontends.${n}.port) names;
      assertions = [
        (common.needsCaddy config "nerv.services.haproxy.stats.hostName" cfg.stats.hostName)
      ]
      ++ map (n: {
        assertion = cfg.frontends.${n}.servers != [ ];
        message = "nerv.services.haproxy.frontends.${n}.servers is empty: give the servers behind it as address:port";
      }) names
      ++ map (n: {
        assertion = builtins.match "[A-Za-z0-9_-]+" n != null;
        message = "nerv.services.haproxy.frontends: '${n}' is not a HAProxy section name: use letters, digits, - and _";
      }) names;
    }
    (mkIf (cfg.stats.hostName != null) {
      nerv.services.caddy.proxies.${cfg.stats.hostName} = "http://127.0.0.1:${toString cfg.stats.port}";
    })
    (mkIf (cfg.openFirewall && names != [ ]) {
      networking.firewall.allowedTCPPorts = map (n: cfg.frontends.${n}.port) names;
    })
  ]);
}

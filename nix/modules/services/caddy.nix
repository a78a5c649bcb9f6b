# nerv.services.caddy: Caddy as reverse proxy for names on the site's domain, each `proxies` name
# served over HTTPS with a certificate Caddy issues itself: from the site CA when `ca` names its
# certificate and key (the CA the cluster's cert-manager signs with, so browsers that trust it trust
# both), else from Caddy's own local CA. Ports 80 and 443 open. Other nerv.services add their web
# UIs to `proxies` (their hostName options).
{ config, lib, ... }:
let
  cfg = config.nerv.services.caddy;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkOption types;
  # Caddy's internal issuer signs with the CA named here (Caddyfile global option `pki`).
  caId = "site";
  tls = if cfg.ca == null then "tls internal" else "tls {\n  issuer internal {\n    ca ${caId}\n  }\n}";
in
{
  options.nerv.services.caddy = {
    enable = mkEnableOption "Caddy as reverse proxy on the site's domain";
    proxies = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        "nas.lab.example" = "http://192.168.10.4:5000";
      };
      description = "Fully qualified name -> the http(s) URL Caddy forwards it to.";
    };
    insecureUpstreams = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "unifi.lab.example" ];
      description = "Names of `proxies` whose https:// upstream's certificate Caddy does not verify (a controller's self-signed one on loopback).";
    };
    ca = mkOption {
      type = types.nullOr (
        types.submodule {
          options = {
            certFile = mkOption {
              type = types.str;
              description = "PEM certificate of the CA (readable by the caddy user).";
            };
            keyFile = mkOption {
              type = types.str;
              description = "PEM private key of the CA (readable by the caddy user only, e.g. a sops-nix secret).";
            };
          };
        }
      );
      default = null;
      description = "The CA Caddy issues its certificates from; null: Caddy's own local CA.";
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open ports 80 and 443 (TCP) in the firewall.";
    };
  };

  config = mkIf cfg.enable {
    services.caddy = {
      enable = true;
      # The CA's root goes to browsers by hand: Caddy (not root) cannot add it to the host's trust store.
      globalConfig =
        "skip_install_trust\n"
        + (
          if cfg.ca == null then
            ""
          else
            ''
              pki {
                ca ${caId} {
                  name "site CA"
                  root {
                    cert ${cfg.ca.certFile}
                    key ${cfg.ca.keyFile}
                  }
                }
              }
            ''
        );
      virtualHosts = builtins.mapAttrs (name: upstream: {
        extraConfig =
          if builtins.elem name cfg.insecureUpstreams then
            "reverse_proxy ${upstream} {\n  transport http {\n    tls_insecure_skip_verify\n  }\n}\n${tls}\n"
          else
            "reverse_proxy ${upstream}\n${tls}\n";
      }) cfg.proxies;
    };
    nerv.listenPorts = [
      (common.tcp "nerv.services.caddy" 80)
      (common.tcp "nerv.services.caddy" 443)
    ];
    nerv.healthChecks = [
      (common.active "caddy.service")
      (common.tcpProbe "127.0.0.1" 443)
    ];
    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall [
      80
      443
    ];
  };
}

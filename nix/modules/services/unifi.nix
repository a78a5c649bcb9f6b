# nerv.services.unifi: the UniFi Network controller (nixpkgs' services.unifi, with its default
# package and MongoDB). The ports devices need open (inform 8080, STUN 3478/udp, discovery
# 10001/udp, speed test 6789); the UI (HTTPS, 8443, a self-signed certificate) is reached as
# `hostName` through Caddy with the site CA, or opens on 8443 without one.
{ config, lib, ... }:
let
  cfg = config.nerv.services.unifi;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;
  owner = "nerv.services.unifi";
  ui = 8443;
  # The controller's fixed ports: inform, UI, guest portal (HTTP, HTTPS), speed test, its MongoDB.
  tcpPorts = [
    8080
    ui
    8880
    8843
    6789
    27117
  ];
  udpPorts = [
    3478
    10001
  ];
in
{
  options.nerv.services.unifi = {
    enable = mkEnableOption "the UniFi Network controller";
    hostName = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "unifi.lab.example";
      description = "A name on the site's domain Caddy serves the UI as (needs nerv.services.caddy); port 8443 then stays closed.";
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open the ports devices use (8080, 6789; 3478 and 10001 UDP), and 8443 without hostName.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      # Its own openFirewall would open 8443 too: the ports are opened below instead.
      services.unifi.enable = true;
      nerv.listenPorts = map (common.tcp owner) tcpPorts ++ map (common.udp owner) udpPorts;
      nerv.healthChecks = [
        (common.active "unifi.service")
        (common.tcpProbe "127.0.0.1" ui)
      ];
      assertions = [ (common.needsCaddy config "nerv.services.unifi.hostName" cfg.hostName) ];
    }
    (mkIf (cfg.hostName != null) {
      nerv.services.caddy.proxies.${cfg.hostName} = "https://127.0.0.1:${toString ui}";
      # The controller's certificate is its own self-signed one.
      nerv.services.caddy.insecureUpstreams = [ cfg.hostName ];
    })
    (mkIf cfg.openFirewall {
      networking.firewall.allowedTCPPorts = [
        8080
        6789
      ]
      ++ lib.optional (cfg.hostName == null) ui;
      networking.firewall.allowedUDPPorts = udpPorts;
    })
  ]);
}

# nerv.services.omada: the TP-Link Omada controller. nixpkgs 25.05 has neither a module nor a
# package for it, so it runs as a container of nerv.services.podman (mbentley/omada-controller,
# the image its users run, at a pinned tag) on the host's network, as Omada's device discovery
# needs. The ports devices use open; the UI (HTTPS, 8043, a self-signed certificate) is reached as
# `hostName` through Caddy with the site CA, or opens on 8043 (and 8088) without one.
{ config, lib, ... }:
let
  cfg = config.nerv.services.omada;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;
  owner = "nerv.services.omada";
  ui = 8043;
  # Devices: adoption and management (29811-29816); discovery (29810, 19810), 27001 the app's.
  deviceTcp = [
    29811
    29812
    29813
    29814
    29815
    29816
  ];
  deviceUdp = [
    19810
    27001
    29810
  ];
  # The UI over HTTP and HTTPS, the guest portal (HTTPS), its MongoDB.
  otherTcp = [
    8088
    ui
    8843
    27217
  ];
in
{
  options.nerv.services.omada = {
    enable = mkEnableOption "the Omada controller (a Podman container)";
    image = mkOption {
      type = types.str;
      default = "docker.io/mbentley/omada-controller:5.15";
      description = "The controller's image, at a pinned tag (nerv.services.podman refuses none or latest).";
    };
    dataDir = mkOption {
      type = types.str;
      default = "/var/lib/omada";
      description = "Where the controller keeps its data and logs on the host.";
    };
    autoUpdate = mkOption {
      type = types.bool;
      default = false;
      description = "Let podman auto-update pull a newer image of the same tag.";
    };
    hostName = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "omada.lab.example";
      description = "A name on the site's domain Caddy serves the UI as (needs nerv.services.caddy); 8043 and 8088 then stay closed.";
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open the ports devices use (29811-29816; 19810, 27001, 29810 UDP), and 8043, 8088 without hostName.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      nerv.services.podman = {
        enable = true;
        containers.omada = {
          inherit (cfg) image autoUpdate;
          # On the host's network: no ports are published, the controller binds them itself.
          extraOptions = [ "--network=host" ];
          volumes = [
            "${cfg.dataDir}/data:/opt/tplink/EAPController/data"
            "${cfg.dataDir}/logs:/opt/tplink/EAPController/logs"
          ];
          environment = {
            MANAGE_HTTP_PORT = "8088";
            MANAGE_HTTPS_PORT = toString ui;
          };
        };
      };
      systemd.tmpfiles.rules = [
        "d ${cfg.dataDir}/data 0750 root root -"
        "d ${cfg.dataDir}/logs 0750 root root -"
      ];
      nerv.listenPorts = map (common.tcp owner) (deviceTcp ++ otherTcp) ++ map (common.udp owner) deviceUdp;
      nerv.healthChecks = [ (common.tcpProbe "127.0.0.1" ui) ];
      assertions = [ (common.needsCaddy config "nerv.services.omada.hostName" cfg.hostName) ];
    }
    (mkIf (cfg.hostName != null) {
      nerv.services.caddy.proxies.${cfg.hostName} = "https://127.0.0.1:${toString ui}";
      # The controller's certificate is its own self-signed one.
      nerv.services.caddy.insecureUpstreams = [ cfg.hostName ];
    })
    (mkIf cfg.openFirewall {
      networking.firewall.allowedTCPPorts =
        deviceTcp
        ++ lib.optionals (cfg.hostName == null) [
          8088
          ui
        ];
      networking.firewall.allowedUDPPorts = deviceUdp;
    })
  ]);
}

# nerv.services.glances: Glances' web UI and REST API on `port`, as a systemd service of
# pkgs.glances (not nixpkgs' services.glances, which 25.05 may lack: see docs/home-services.md).
# With `hostName`, Caddy serves it over HTTPS with the site CA and Glances listens on loopback
# only; otherwise the port opens. Glances' web UI has no login: prefer hostName.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.nerv.services.glances;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;
  local = cfg.hostName != null;
  address = if local then "127.0.0.1" else "0.0.0.0";
in
{
  options.nerv.services.glances = {
    enable = mkEnableOption "the Glances web UI";
    port = mkOption {
      type = types.port;
      default = 61208;
      description = "TCP port of the web UI.";
    };
    hostName = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "glances.lab.example";
      description = "A name on the site's domain Caddy serves the UI as (needs nerv.services.caddy); Glances then listens on 127.0.0.1.";
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open the port (TCP) in the firewall, unless hostName is set.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      systemd.services.glances = {
        description = "Glances web server";
        after = [ "network.target" ];
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          ExecStart = "${pkgs.glances}/bin/glances --webserver --bind ${address} --port ${toString cfg.port}";
          DynamicUser = true;
          Restart = "on-failure";
          NoNewPrivileges = true;
          ProtectSystem = "full";
          ProtectHome = true;
          PrivateTmp = true;
        };
      };
      nerv.listenPorts = [ (common.tcp "nerv.services.glances.port" cfg.port) ];
      nerv.healthChecks = [
        (common.active "glances.service")
        (common.tcpProbe "127.0.0.1" cfg.port)
      ];
      assertions = [ (common.needsCaddy config "nerv.services.glances.hostName" cfg.hostName) ];
    }
    (mkIf local {
      nerv.services.caddy.proxies.${cfg.hostName} = "http://127.0.0.1:${toString cfg.port}";
    })
    (mkIf (cfg.openFirewall && !local) {
      networking.firewall.allowedTCPPorts = [ cfg.port ];
    })
  ]);
}

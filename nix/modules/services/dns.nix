# nerv.services.dns: a DNS server for the LAN that answers the site's own names from `records`
# (on site hosts: every host, every cluster ingress host -> Traefik's address, every Caddy proxy
# name -> its Caddy host) and forwards everything else to `upstreams`. Port 53 (UDP and TCP) opens.
{ config, lib, ... }:
let
  cfg = config.nerv.services.dns;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;
  port = 53;
  # "a.b.c.d:53" for each listen address (the wildcard: the bare port), comma-separated: the form
  # every Blocky release reads (newer ones also take a YAML list).
  binds = lib.concatStringsSep "," (
    map (a: if a == "0.0.0.0" then ":${toString port}" else "${a}:${toString port}") cfg.listenAddresses
  );
in
{
  options.nerv.services.dns = {
    enable = mkEnableOption "a DNS server for the LAN with the site's local records";
    engine = mkOption {
      type = types.enum [
        "blocky"
        "adguardhome"
      ];
      default = "blocky";
      description = "Which server answers: Blocky (configured only here) or AdGuard Home (its web UI on 127.0.0.1:3000, settings from here only).";
    };
    upstreams = mkOption {
      type = types.listOf types.str;
      default = [
        "1.1.1.1"
        "9.9.9.9"
      ];
      description = "IPv4 addresses of the DNS servers every other name is forwarded to.";
    };
    records = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        "grafana.lab.example" = "192.168.10.200";
      };
      description = "Local A records: fully qualified name -> IPv4 address.";
    };
    listenAddresses = mkOption {
      type = types.listOf types.str;
      default = [ "0.0.0.0" ];
      description = ''
        IPv4 addresses to answer on (0.0.0.0: all). With systemd-resolved's stub listener on
        127.0.0.53, name the host's own addresses (and 127.0.0.1) instead of the wildcard.
      '';
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open port 53 (UDP and TCP) in the firewall.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      nerv.listenPorts = common.dns "nerv.services.dns" port;
      nerv.healthChecks = [
        (common.active "${cfg.engine}.service")
        (common.tcpProbe (common.probeAddress (builtins.head cfg.listenAddresses)) port)
      ];
    }
    (mkIf (cfg.engine == "blocky") {
      services.blocky = {
        enable = true;
        settings = {
          ports.dns = binds;
          upstreams.groups.default = cfg.upstreams;
          customDNS.mapping = cfg.records;
        };
      };
    })
    (mkIf (cfg.engine == "adguardhome") {
      services.adguardhome = {
        enable = true;
        # The web UI has no users when configured from here: only this host reaches it.
        host = "127.0.0.1";
        # Changes made in the UI would be lost at the next start: the records belong here.
        mutableSettings = false;
        settings = {
          dns = {
            bind_hosts = cfg.listenAddresses;
            inherit port;
            upstream_dns = cfg.upstreams;
            # Upstreams are addresses, so they also resolve the names of any DoH/DoT servers.
            bootstrap_dns = cfg.upstreams;
          };
          filtering.rewrites = lib.mapAttrsToList (domain: answer: { inherit domain answer; }) cfg.records;
        };
      };
    })
    (mkIf cfg.openFirewall {
      networking.firewall.allowedUDPPorts = [ port ];
      networking.firewall.allowedTCPPorts = [ port ];
    })
  ]);
}

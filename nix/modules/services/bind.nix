# nerv.services.bind: BIND as the LAN's DNS server, authoritative for `zone` with the A records in
# `records` (a zone file in the Nix store, so nixpkgs' named-checkconf check at build time loads
# it too) and a forwarding resolver for the networks in `allowRecursionFrom`, everything else going
# to `forwarders`. Port 53 (UDP and TCP) opens.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.nerv.services.bind;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;
  owner = "nerv.services.bind";
  inZone = name: name == cfg.zone || lib.hasSuffix ".${cfg.zone}" name;
  # BIND wants an address for an NS name inside the zone; localhost. needs none.
  zoneText = ''
    $TTL 300
    @ IN SOA localhost. hostmaster.${cfg.zone}. ( 1 3600 600 604800 300 )
    @ IN NS localhost.
  ''
  + lib.concatStrings (lib.mapAttrsToList (name: address: "${name}. IN A ${address}\n") cfg.records);
in
{
  options.nerv.services.bind = {
    enable = mkEnableOption "BIND as the LAN's DNS server";
    zone = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "lab.example";
      description = "The zone BIND answers with authority from `records`; null: a forwarding resolver only.";
    };
    records = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        "nas.lab.example" = "192.168.10.4";
      };
      description = "A records of the zone: fully qualified name (inside `zone`) -> IPv4 address.";
    };
    forwarders = mkOption {
      type = types.listOf types.str;
      default = [
        "1.1.1.1"
        "9.9.9.9"
      ];
      description = "IPv4 addresses of the DNS servers every other name is forwarded to.";
    };
    allowRecursionFrom = mkOption {
      type = types.listOf types.str;
      default = [ "127.0.0.0/8" ];
      example = [
        "127.0.0.0/8"
        "192.168.10.0/24"
      ];
      description = "Networks (CIDR) BIND resolves other names for; the zone itself answers everyone.";
    };
    listenAddresses = mkOption {
      type = types.listOf types.str;
      default = [ "any" ];
      description = ''
        IPv4 addresses to answer on ("any": all). With systemd-resolved's stub listener on
        127.0.0.53, name the host's own addresses (and 127.0.0.1) instead.
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
      services.bind = {
        enable = true;
        listenOn = cfg.listenAddresses;
        inherit (cfg) forwarders;
        cacheNetworks = cfg.allowRecursionFrom;
      };
      nerv.listenPorts = common.dns owner 53;
      nerv.healthChecks = [
        (common.active "bind.service")
        (common.tcpProbe (common.probeAddress (builtins.head cfg.listenAddresses)) 53)
      ];
      assertions = [
        {
          assertion = cfg.records == { } || cfg.zone != null;
          message = "nerv.services.bind.records needs nerv.services.bind.zone: name the zone the records belong to";
        }
        {
          assertion = cfg.listenAddresses != [ ];
          message = "nerv.services.bind.listenAddresses is empty: give at least one address, or \"any\"";
        }
      ]
      ++ map (name: {
        assertion = cfg.zone == null || inZone name;
        message = "nerv.services.bind.records: '${name}' is outside the zone ${toString cfg.zone}: use a name ending in .${toString cfg.zone}";
      }) (builtins.attrNames cfg.records);
    }
    (mkIf (cfg.zone != null) {
      # A changed zone is a new store path, so a new named.conf and a restart (the serial stays 1).
      services.bind.zones.${cfg.zone} = {
        master = true;
        file = pkgs.writeText "${cfg.zone}.zone" zoneText;
      };
    })
    (mkIf cfg.openFirewall {
      networking.firewall.allowedUDPPorts = [ 53 ];
      networking.firewall.allowedTCPPorts = [ 53 ];
    })
  ]);
}

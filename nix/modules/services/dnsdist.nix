# nerv.services.dnsdist: DNSdist as the LAN's DNS front, spreading queries over the DNS servers in
# `servers` (dnsdist's own ACL answers only loopback and the private ranges). Its port (53 by
# default, UDP and TCP) opens. In front of BIND or nerv.services.dns on the same host, give it
# another port: two DNS servers on port 53 are refused.
{ config, lib, ... }:
let
  cfg = config.nerv.services.dnsdist;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;
  owner = "nerv.services.dnsdist.port";
in
{
  options.nerv.services.dnsdist = {
    enable = mkEnableOption "DNSdist as the LAN's DNS front";
    servers = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "192.168.10.21:53"
        "192.168.10.22:53"
      ];
      description = "The DNS servers queries go to, as address:port (dnsdist's newServer).";
    };
    listenAddress = mkOption {
      type = types.str;
      default = "0.0.0.0";
      description = "IPv4 address to answer on (0.0.0.0: all).";
    };
    port = mkOption {
      type = types.port;
      default = 53;
      description = "Port to answer on, UDP and TCP.";
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open the port (UDP and TCP) in the firewall.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      services.dnsdist = {
        enable = true;
        inherit (cfg) listenAddress;
        listenPort = cfg.port;
        extraConfig = lib.concatMapStrings (s: "newServer({address=\"${s}\"})\n") cfg.servers;
      };
      nerv.listenPorts = common.dns owner cfg.port;
      nerv.healthChecks = [
        (common.active "dnsdist.service")
        (common.tcpProbe (common.probeAddress cfg.listenAddress) cfg.port)
      ];
      assertions = [
        {
          assertion = cfg.servers != [ ];
          message = "nerv.services.dnsdist.servers is empty: give the DNS servers to forward to, e.g. [ \"192.168.10.21:53\" ]";
        }
      ];
    }
    (mkIf cfg.openFirewall {
      networking.firewall.allowedUDPPorts = [ cfg.port ];
      networking.firewall.allowedTCPPorts = [ cfg.port ];
    })
  ]);
}

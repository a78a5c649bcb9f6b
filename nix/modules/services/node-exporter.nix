# nerv.services.nodeExporter: the Prometheus node exporter, its port open only to the networks in
# `allowFrom` (on site hosts: network.cidr), so the cluster's Prometheus scrapes it and the rest of
# the world does not.
{ config, lib, ... }:
let
  cfg = config.nerv.services.nodeExporter;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;
  port = toString cfg.port;
  nftables = config.networking.nftables.enable;
in
{
  options.nerv.services.nodeExporter = {
    enable = mkEnableOption "the Prometheus node exporter";
    port = mkOption {
      type = types.port;
      default = 9100;
      description = "TCP port the exporter listens on.";
    };
    allowFrom = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "192.168.10.0/24" ];
      description = "IPv4 networks (CIDR) allowed to reach the port; empty: the firewall stays closed.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      services.prometheus.exporters.node = {
        enable = true;
        inherit (cfg) port;
        # The exporter's own openFirewall passes one filter to ip46tables, and an IPv4 source
        # breaks its ip6tables half: the rules below are IPv4 only.
        openFirewall = false;
      };
      nerv.listenPorts = [ (common.tcp "nerv.services.nodeExporter.port" cfg.port) ];
      nerv.healthChecks = [
        (common.active "prometheus-node-exporter.service")
        (common.tcpProbe "127.0.0.1" cfg.port)
      ];
    }
    (mkIf (cfg.allowFrom != [ ] && !nftables) {
      networking.firewall.extraCommands = lib.concatMapStrings (
        net: "iptables -A nixos-fw -p tcp -s ${net} --dport ${port} -j nixos-fw-accept\n"
      ) cfg.allowFrom;
    })
    (mkIf (cfg.allowFrom != [ ] && nftables) {
      networking.firewall.extraInputRules = "ip saddr { ${lib.concatStringsSep ", " cfg.allowFrom} } tcp dport ${port} accept\n";
    })
  ]);
}

# What the nerv.services modules share across services: `nerv.healthChecks`, the shell commands
# each enabled service adds for the fleet deploy to run on the host after a switch (a flake
# exports them as nerv.healthChecks.<host>, docs/home-services.md), and the refusal of two
# services on one port: every module lists its ports in `nerv.listenPorts`, and an assertion
# names both owners of a port taken twice (two DNS servers on port 53 with their own message).
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  ports = config.nerv.listenPorts;
  key = p: "${toString p.port}/${p.protocol}";
  groups = builtins.groupBy key ports;
  owners = entries: builtins.concatStringsSep " and " (unique (map (p: p.owner) entries));
  unique = builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];
  dnsOn53 = unique (map (p: p.owner) (builtins.filter (p: p.dns && p.port == 53) ports));
  # Groups of one port taken twice, but not those of DNS servers only on 53 (reported below).
  clashes = builtins.filter (
    k:
    let
      g = groups.${k};
    in
    builtins.length g > 1 && !(builtins.all (p: p.dns && p.port == 53) g)
  ) (builtins.attrNames groups);
in
{
  options.nerv = {
    healthChecks = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "systemctl is-active --quiet bind.service" ];
      description = "Shell commands the fleet deploy runs on the host after a switch; each must exit 0.";
    };
    listenPorts = mkOption {
      type = types.listOf types.attrs;
      default = [ ];
      internal = true;
      description = "The ports the enabled nerv.services take on the host: { port; protocol; owner; dns; }.";
    };
  };

  config.assertions =
    map (k: {
      assertion = false;
      message = "nerv.services: port ${k} is taken by both ${owners groups.${k}}: give one of them another port or disable it";
    }) clashes
    ++ [
      {
        assertion = builtins.length dnsOn53 < 2;
        message = "nerv.services: two DNS servers on port 53 (${builtins.concatStringsSep " and " dnsOn53}): enable only one, or put DNSdist on another port (nerv.services.dnsdist.port)";
      }
    ];
}

# Helpers the nerv.services modules share: plain functions on builtins only (not a NixOS module).
rec {
  # Health checks (nerv.healthChecks): the fleet deploy runs each on the host after a switch and
  # fails on a non-zero exit. A unit's state, and a TCP connection within 5 seconds (bash's
  # /dev/tcp: no tool beyond bash and coreutils' timeout).
  active = unit: "systemctl is-active --quiet ${unit}";
  tcpProbe = address: port: "timeout 5 bash -c '</dev/tcp/${address}/${toString port}'";
  # The address a probe on the host itself uses for a listen address (a wildcard: loopback).
  probeAddress =
    address:
    if
      builtins.elem address [
        "0.0.0.0"
        "any"
        "*"
        ""
      ]
    then
      "127.0.0.1"
    else
      address;

  # Entries of nerv.listenPorts, the ports a service takes on the host (checks.nix refuses a
  # port two of them take).
  tcp = owner: port: {
    inherit owner port;
    protocol = "tcp";
    dns = false;
  };
  udp = owner: port: {
    inherit owner port;
    protocol = "udp";
    dns = false;
  };
  # A DNS server's port, UDP and TCP (checks.nix reports two on port 53 on their own).
  dns = owner: port: [
    ((tcp owner port) // { dns = true; })
    ((udp owner port) // { dns = true; })
  ];

  # The assertion of an option that serves a web UI through Caddy (`value` a host name, or true):
  # Caddy must run on the host.
  needsCaddy = config: option: value: {
    assertion = value == null || value == false || config.nerv.services.caddy.enable;
    message = "${option} serves its web UI through Caddy: set nerv.services.caddy.enable = true, or unset ${option}";
  };
}

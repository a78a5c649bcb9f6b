# nerv.services.podman: declared containers run by Podman (NixOS' oci-containers, one systemd unit
# podman-<name> each), with their published ports, volumes and environment. An image must name
# its version (a tag other than latest, or a digest); `autoUpdate` labels the container for
# `podman auto-update`, whose timer (from the Podman package) then pulls a newer image of that
# same tag daily and restarts it. Published ports open unless bound to an address of loopback; a
# container's web UI can be reached as `hostName` through Caddy with the site CA instead.
{ config, lib, ... }:
let
  cfg = config.nerv.services.podman;
  common = import ./common.nix;
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types;
  names = builtins.attrNames cfg.containers;
  # "[ip:]hostPort:containerPort[/tcp|/udp]" -> { ip; port; protocol; } (null: another form).
  parsePort =
    spec:
    let
      m = builtins.match "(([0-9.]+):)?([0-9]+):([0-9]+)(/(tcp|udp))?" spec;
    in
    if m == null then
      null
    else
      {
        ip = builtins.elemAt m 1;
        port = lib.toInt (builtins.elemAt m 2);
        protocol = if builtins.elemAt m 5 == null then "tcp" else builtins.elemAt m 5;
      };
  published = name: builtins.filter (p: p != null) (map parsePort cfg.containers.${name}.ports);
  # Published on every address (or one that is not loopback's): the firewall opens them.
  open = p: p.ip == null || builtins.match "127[.].*" p.ip == null;
  allPublished = builtins.concatLists (map published names);
  opened = protocol: map (p: p.port) (builtins.filter (p: open p && p.protocol == protocol) allPublished);
  # The image's last path part carries its tag; a digest (@sha256:...) pins it too.
  lastPart = image: lib.last (lib.splitString "/" image);
  pinned =
    image:
    lib.hasInfix "@" image
    || (
      let
        tag = builtins.match "[^:]+:(.+)" (lastPart image);
      in
      tag != null && builtins.head tag != "latest"
    );
  # podman auto-update needs the registry in the name (docker.io/library/nginx, not nginx).
  qualified =
    image:
    let
      first = builtins.head (lib.splitString "/" image);
    in
    lib.hasInfix "/" image && (lib.hasInfix "." first || lib.hasInfix ":" first || first == "localhost");
  container = name: c: {
    inherit (c)
      image
      ports
      volumes
      environment
      extraOptions
      ;
    labels = lib.optionalAttrs c.autoUpdate {
      "io.containers.autoupdate" = "registry";
      # The unit podman auto-update restarts; podman reads it from this label.
      PODMAN_SYSTEMD_UNIT = "podman-${name}.service";
    };
  };
  at = name: "nerv.services.podman.containers.${name}";
in
{
  options.nerv.services.podman = {
    enable = mkEnableOption "containers run by Podman";
    containers = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            image = mkOption {
              type = types.str;
              example = "docker.io/louislam/uptime-kuma:1.23.16";
              description = "The image, with its tag (not latest) or digest.";
            };
            ports = mkOption {
              type = types.listOf types.str;
              default = [ ];
              example = [
                "3001:3001"
                "127.0.0.1:8080:80"
                "514:514/udp"
              ];
              description = "Published ports, [address:]hostPort:containerPort[/udp].";
            };
            volumes = mkOption {
              type = types.listOf types.str;
              default = [ ];
              example = [ "/var/lib/uptime-kuma:/app/data" ];
              description = "Volumes, hostPathOrVolume:containerPath[:options].";
            };
            environment = mkOption {
              type = types.attrsOf types.str;
              default = { };
              description = "Environment variables of the container.";
            };
            extraOptions = mkOption {
              type = types.listOf types.str;
              default = [ ];
              example = [ "--network=host" ];
              description = "Further options of podman run.";
            };
            autoUpdate = mkOption {
              type = types.bool;
              default = false;
              description = "Let podman auto-update pull a newer image of the same tag and restart the container (needs a registry in the image name).";
            };
            hostName = mkOption {
              type = types.nullOr types.str;
              default = null;
              example = "status.lab.example";
              description = "A name on the site's domain Caddy serves the container's web UI as (needs webPort and nerv.services.caddy).";
            };
            webPort = mkOption {
              type = types.nullOr types.port;
              default = null;
              description = "The host port of the container's web UI (plain HTTP) Caddy forwards hostName to.";
            };
          };
        }
      );
      default = { };
      description = "Name -> a container (its unit: podman-<name>.service).";
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open the published ports that are not bound to loopback.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      virtualisation.podman.enable = true;
      virtualisation.oci-containers = {
        backend = "podman";
        containers = builtins.mapAttrs container cfg.containers;
      };
      nerv.listenPorts = builtins.concatMap (
        name: map (p: common.${p.protocol} "${at name}.ports" p.port) (published name)
      ) names;
      nerv.healthChecks = map (name: common.active "podman-${name}.service") names;
      assertions = builtins.concatMap (
        name:
        let
          c = cfg.containers.${name};
        in
        [
          {
            assertion = pinned c.image;
            message = "${at name}.image '${c.image}' has no tag or uses latest: pin a version, e.g. '${c.image}:1.2.3' (autoUpdate then follows that tag)";
          }
          {
            assertion = !c.autoUpdate || qualified c.image;
            message = "${at name}.autoUpdate needs the registry in the image name: write 'docker.io/${c.image}' (or the image's own registry)";
          }
          {
            assertion = (c.hostName == null) == (c.webPort == null);
            message = "${at name}.hostName and ${at name}.webPort go together: set both, or neither";
          }
          (common.needsCaddy config "${at name}.hostName" c.hostName)
        ]
        ++ map (spec: {
          assertion = parsePort spec != null;
          message = "${at name}.ports: '${spec}' is not [address:]hostPort:containerPort[/tcp|/udp] (one port each)";
        }) c.ports
      ) names;
    }
    (mkIf (builtins.any (name: cfg.containers.${name}.autoUpdate) names) {
      # The timer ships with Podman (systemd.packages); this starts it.
      systemd.timers.podman-auto-update.wantedBy = [ "timers.target" ];
    })
    {
      nerv.services.caddy.proxies = builtins.listToAttrs (
        map (name: {
          name = cfg.containers.${name}.hostName;
          value = "http://127.0.0.1:${toString cfg.containers.${name}.webPort}";
        }) (builtins.filter (name: cfg.containers.${name}.hostName != null) names)
      );
    }
    (mkIf cfg.openFirewall {
      networking.firewall.allowedTCPPorts = opened "tcp";
      networking.firewall.allowedUDPPorts = opened "udp";
    })
  ]);
}

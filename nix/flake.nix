{
  description = "nerv.homelab: the NixOS base template, the self-installing installer ISO that makes it, and one NixOS configuration per site host";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
  # Partitions bare-metal hosts (nixos-anywhere runs it) and gives every host its fileSystems.
  inputs.disko.url = "github:nix-community/disko";
  inputs.disko.inputs.nixpkgs.follows = "nixpkgs";
  # Decrypts the K3s token on each host with the host's SSH key.
  inputs.sops-nix.url = "github:Mic92/sops-nix";
  inputs.sops-nix.inputs.nixpkgs.follows = "nixpkgs";

  outputs =
    {
      self,
      nixpkgs,
      disko,
      sops-nix,
    }:
    let
      system = "x86_64-linux";
      nervLib = import ./lib;
      # The template's site input: written by the Ansible role, checked here (throws on bad data).
      site = nervLib.site (builtins.fromJSON (builtins.readFile ./site.json));
      # The site's hosts, also written by the Ansible side and checked (throws on bad data).
      hostsData = nervLib.hosts (builtins.fromJSON (builtins.readFile ./hosts.json));
      layout = nervLib.partitions;
      platform = {
        nixpkgs.hostPlatform = system;
      };
    in
    {
      lib = nervLib;

      nixosModules = {
        base = ./modules/base.nix;
        installer = ./modules/installer.nix;
        # Needs disko's and sops-nix's modules too, and `host`, `site` (nix/lib/hosts.nix) and
        # `layout` as specialArgs: see nixosConfigurations below.
        host = ./modules/host.nix;
        # DNS (Blocky, AdGuard Home, BIND, DNSdist), Caddy, HAProxy, Nginx, Podman containers, Glances,
        # UniFi, Omada and the node exporter as plain nerv.services options, all off until enabled:
        # usable in any NixOS flake, without the site (docs/home-services.md).
        homeServices = ./modules/services;
      };

      nixosConfigurations = {
        # The system the installer puts on the template's disk.
        base = nixpkgs.lib.nixosSystem {
          specialArgs = { inherit site layout; };
          modules = [
            platform
            ./modules/base.nix
          ];
        };

        # nix build ./nix#nixosConfigurations.installer.config.system.build.isoImage
        installer = nixpkgs.lib.nixosSystem {
          specialArgs = {
            inherit site layout;
            baseSystem = self.nixosConfigurations.base;
          };
          modules = [
            platform
            ./modules/installer.nix
          ];
        };
      }
      # One per host of hosts.json; hosts.nix refuses the names base and installer.
      # nixos-anywhere --flake ./nix#<host>, or nixos-rebuild switch --flake ./nix#<host>.
      // builtins.mapAttrs (
        _name: host:
        nixpkgs.lib.nixosSystem {
          specialArgs = {
            inherit host layout;
            site = hostsData;
          };
          modules = [
            platform
            disko.nixosModules.disko
            sops-nix.nixosModules.sops
            ./modules/host.nix
          ];
        }
      ) hostsData.hosts;

      packages.${system} = {
        iso = self.nixosConfigurations.installer.config.system.build.isoImage;
        base = self.nixosConfigurations.base.config.system.build.toplevel;
        default = self.packages.${system}.iso;
      };
    };
}

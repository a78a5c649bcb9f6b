{
  description = "nerv.homelab: the NixOS base template and the self-installing installer ISO that makes it";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      system = "x86_64-linux";
      nervLib = import ./lib;
      # The only site input: written by the Ansible role, checked here (throws on bad data).
      site = nervLib.site (builtins.fromJSON (builtins.readFile ./site.json));
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
      };

      # The system the installer puts on the template's disk.
      nixosConfigurations.base = nixpkgs.lib.nixosSystem {
        specialArgs = { inherit site layout; };
        modules = [
          platform
          ./modules/base.nix
        ];
      };

      # nix build ./nix#nixosConfigurations.installer.config.system.build.isoImage
      nixosConfigurations.installer = nixpkgs.lib.nixosSystem {
        specialArgs = {
          inherit site layout;
          baseSystem = self.nixosConfigurations.base;
        };
        modules = [
          platform
          ./modules/installer.nix
        ];
      };

      packages.${system} = {
        iso = self.nixosConfigurations.installer.config.system.build.isoImage;
        base = self.nixosConfigurations.base.config.system.build.toplevel;
        default = self.packages.${system}.iso;
      };
    };
}

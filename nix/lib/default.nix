# The pure parts of the nerv NixOS flake: builtins only, no nixpkgs, so they
# evaluate offline (`nix-instantiate --eval --strict -E 'import ./nix/lib'`).
{
  # Site data: `site (builtins.fromJSON (builtins.readFile ../site.json))`.
  site = import ./site.nix;
  # Host data: `hosts (builtins.fromJSON (builtins.readFile ../hosts.json))` -> per-host settings.
  hosts = import ./hosts.nix;
  sshKeys = import ./ssh-keys.nix;
  # The disk layout (data) shared by the install script and the base system.
  partitions = import ./partitions.nix;
  # `installScript { systemToplevel = "..."; bootDisk = "/dev/sda"; }` -> script text.
  installScript = import ./install-script.nix;
}

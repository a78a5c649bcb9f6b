# The self-installing installer ISO: boots, runs the QEMU guest agent, lets the
# site's admins in over SSH (keys only), and runs nerv-install.service, which
# installs the base system (built into the ISO, so no network is needed) on the
# VM's disk and powers off. See nix/lib/install-script.nix for the guard that
# never reinstalls a disk holding a nerv install.
#
# Kernel parameters (append at the boot menu, or in the Proxmox VM's args):
#   nerv.disk=/dev/vda  the target disk (default: site.json "disk", else /dev/sda);
#                       must be the disk the base system's GRUB is built for
#   nerv.wipe=1         allow wiping a disk that holds other (non-nerv) data
#   nerv.noinstall      boot the ISO without running the install
{
  config,
  lib,
  pkgs,
  modulesPath,
  site,
  layout,
  baseSystem,
  ...
}:
let
  toplevel = baseSystem.config.system.build.toplevel;
  installScript = import ../lib/install-script.nix {
    inherit layout;
    systemToplevel = "${toplevel}";
    bootDisk = baseSystem.config.boot.loader.grub.device;
  };
in
{
  imports = [ "${modulesPath}/installer/cd-dvd/installation-cd-minimal.nix" ];

  # The base system's whole closure goes into the ISO's store (and its Nix
  # database), so nixos-install copies it from there without a network.
  isoImage.storeContents = [ toplevel ];
  # Only the local store: never wait for cache.nixos.org during the install.
  nix.settings.substituters = lib.mkForce [ ];

  services.qemuGuest.enable = true;

  users.users.root.openssh.authorizedKeys.keys = site.adminSshKeys;
  # The installer profile gives root an empty password: SSH takes keys only.
  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = lib.mkForce false;
      KbdInteractiveAuthentication = lib.mkForce false;
      PermitRootLogin = lib.mkForce "prohibit-password";
    };
  };

  boot.kernelParams = [
    "console=tty0"
    "console=ttyS0,115200"
  ];

  # site.json's "disk", when it names one: the install then trusts it even with several disks.
  environment.etc."nerv/disk" = lib.mkIf site.diskExplicit { text = "${site.disk}\n"; };

  systemd.services.nerv-install = {
    description = "Install the nerv base NixOS on this VM's disk, then power off";
    wantedBy = [ "multi-user.target" ];
    wants = [ "network-online.target" ];
    after = [ "network-online.target" ];
    unitConfig.ConditionKernelCommandLine = "!nerv.noinstall";
    restartIfChanged = false;
    path = map lib.getBin [
      config.system.build.nixos-install
      config.nix.package
      pkgs.util-linux
      pkgs.gptfdisk
      pkgs.lvm2
      pkgs.dosfstools
      pkgs.e2fsprogs
      pkgs.coreutils
      pkgs.gnugrep
      config.systemd.package
    ];
    serviceConfig = {
      Type = "oneshot";
      StandardOutput = "journal+console";
      StandardError = "journal+console";
    };
    script = installScript;
  };
}

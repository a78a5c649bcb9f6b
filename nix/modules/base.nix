# The installed base system: what the Proxmox template holds and every clone
# boots first. Clones take their network, user keys and instance identity from
# Proxmox cloud-init; each clone makes its own SSH host keys at first boot
# (none are baked in: services.openssh.hostKeys keeps its default of files in
# /etc/ssh that sshd-keygen creates on the machine, and the installer deletes
# any that exist before the template is sealed).
#
# Uses no pkgs and only lib.mkDefault, so tests can evaluate this function with
# stub arguments and read its definitions (they do not run the module system).
{
  lib,
  modulesPath,
  site,
  layout,
  ...
}:
{
  imports = [
    "${modulesPath}/profiles/qemu-guest.nix"
    ./growroot.nix
    # The site's NAS, if it has one (site.json's nfs), mounted on first access.
    (import ./nfs.nix site.nfs)
  ];

  system.stateVersion = "25.05";

  # The template's name; a host's own configuration (deployed later) sets its real one.
  networking.hostName = lib.mkDefault site.hostname;

  # GRUB for both firmwares: i386-pc into the BIOS boot partition of the disk
  # (SeaBIOS) and x86_64-efi as the removable fallback path EFI/BOOT/BOOTX64.EFI
  # on the ESP (OVMF), which needs no NVRAM entry, so it survives cloning.
  boot.loader.grub = {
    enable = true;
    device = site.disk;
    efiSupport = true;
    efiInstallAsRemovable = true;
  };
  boot.loader.efi.canTouchEfiVariables = false;
  boot.loader.efi.efiSysMountPoint = (builtins.elemAt layout.partitions 1).mountpoint;

  boot.initrd.availableKernelModules = [
    "ahci"
    "sd_mod"
    "sr_mod"
    "virtio_pci"
    "virtio_scsi"
    "virtio_blk"
  ];
  # Root is on LVM (VG "nerv"), as nixos-generate-config would write it.
  boot.initrd.kernelModules = [ "dm-snapshot" ];
  boot.kernelParams = [
    "console=tty0"
    "console=ttyS0,115200"
  ];

  # By label (nerv-root, NERV-ESP): see nix/lib/partitions.nix.
  fileSystems = layout.fileSystems;

  services.qemuGuest.enable = true;

  # Proxmox cloud-init (NoCloud drive): network (ipconfig0, nameserver), ciuser and
  # sshkeys reach each clone. cloud-init renders systemd-networkd files.
  services.cloud-init.enable = true;
  services.cloud-init.network.enable = true;
  networking.useNetworkd = true;
  networking.useDHCP = false;

  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };
  users.users.root.openssh.authorizedKeys.keys = site.adminSshKeys;

  nix.settings.experimental-features = [
    "nix-command"
    "flakes"
  ];
}

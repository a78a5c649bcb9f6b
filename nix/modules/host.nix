# One host of the site (nix/hosts.json): a Proxmox VM cloned from the base template, or a
# bare-metal machine that nixos-anywhere installs with disko. `host` is that host's settings
# and `site` the checked site data, both from nix/lib/hosts.nix, passed as specialArgs; the
# flake also adds disko's and sops-nix's NixOS modules, which disko.nix and sops.nix use.
#
# It does not import base.nix, not even for VMs: base.nix is the template's system, whose
# cloud-init would rewrite the network this module makes static, and whose GRUB device
# (site.json's disk) would clash with the one disko sets. What a host keeps from the template
# is restated here (keys-only sshd, GRUB for BIOS and UEFI, the partition layout), so a clone
# switches to this configuration in place and bare metal gets the same system.
#
# Uses no pkgs and no lib, so tests evaluate this function with stub arguments.
{
  config,
  modulesPath,
  host,
  site,
  layout,
  ...
}:
let
  esp = builtins.elemAt layout.partitions 1;
  # Caddy issues from the site CA, decrypted by sops-nix (sops.nix declares it for Caddy hosts only).
  caddy =
    if host.services.caddy.enable then
      host.services.caddy
      // {
        ca = {
          certFile = config.sops.secrets."site-ca.crt".path;
          keyFile = config.sops.secrets."site-ca.key".path;
        };
      }
    else
      host.services.caddy;
in
{
  imports = [
    ./disko.nix
    ./k3s.nix
    ./longhorn.nix
    ./sops.nix
    # The site's NAS on this host (hosts.json's nfs; null when none or the host opts out).
    (import ./nfs.nix host.nfs)
    # The home services (DNS, Caddy, node exporter): options only, set below from hosts.json.
    ./services
  ]
  ++ (
    if host.isVm then
      [
        "${modulesPath}/profiles/qemu-guest.nix"
        # Clones get larger disks than the template's; disko already fills a bare-metal disk.
        ./growroot.nix
      ]
    else
      [ ]
  );

  system.stateVersion = "25.05";

  nerv.services = host.services // {
    inherit caddy;
  };

  networking.hostName = host.hostname;
  networking.domain = host.domain;

  # Static IPv4 on the LAN NIC. Bare metal may have several NICs, so its network is matched by
  # MAC; a VM from the template has one NIC (ens18 on Proxmox), so "en*" finds it unless the
  # site pins a MAC.
  networking.useNetworkd = true;
  networking.useDHCP = false;
  # Reaches /etc/resolv.conf with or without systemd-resolved; the link's DNS is what
  # resolved uses for the LAN.
  networking.nameservers = host.nameservers;
  systemd.network.networks."10-lan" = {
    matchConfig = if host.mac != null then { MACAddress = host.mac; } else { Name = "en*"; };
    address = [ "${host.address}/${toString host.prefix}" ];
    gateway = [ host.gateway ];
    dns = host.nameservers;
    domains = [ host.domain ];
    networkConfig.DHCP = "no";
    # network-online.target (and so K3s's first contact with its server) waits for the address.
    linkConfig.RequiredForOnline = "routable";
  };

  services.openssh = {
    enable = true;
    # Only the ed25519 key: it is the host's sops-nix identity (sops.nix) and what the Ansible
    # side pins in known_hosts. It is never built into the system: nixos-anywhere's
    # --extra-files puts it on bare metal before first boot, and a clone makes its own at
    # first boot (the template holds none).
    hostKeys = [
      {
        path = "/etc/ssh/ssh_host_ed25519_key";
        type = "ed25519";
      }
    ];
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };
  users.users.root.openssh.authorizedKeys.keys = site.adminSshKeys;

  services.qemuGuest.enable = host.isVm;

  # GRUB for both firmwares, as on the template: i386-pc into the BIOS boot partition and the
  # removable-media path on the ESP, which needs no NVRAM entry. The disk comes from disko
  # (disko.nix).
  boot.loader.grub = {
    enable = true;
    efiSupport = true;
    efiInstallAsRemovable = true;
  };
  boot.loader.efi.canTouchEfiVariables = false;
  boot.loader.efi.efiSysMountPoint = esp.mountpoint;

  # No generated hardware-configuration.nix: the storage drivers common mini PCs and servers
  # boot from (SATA, NVMe, USB); qemu-guest.nix adds virtio for VMs.
  boot.initrd.availableKernelModules = [
    "ahci"
    "nvme"
    "sd_mod"
    "xhci_pci"
    "usb_storage"
    "usbhid"
  ];
  # Root is on LVM.
  boot.initrd.kernelModules = [ "dm-snapshot" ];
  # Proxmox's serial console for VMs; on bare metal a console=ttyS0 last would take systemd's
  # boot output off the screen.
  boot.kernelParams =
    if host.isVm then
      [
        "console=tty0"
        "console=ttyS0,115200"
      ]
    else
      [ ];
  # NICs and microcode on real hardware often need linux-firmware blobs.
  hardware.enableRedistributableFirmware = !host.isVm;

  nix.settings.experimental-features = [
    "nix-command"
    "flakes"
  ];
}

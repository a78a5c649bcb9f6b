# The disk layout of the installed base system, as plain data (builtins only).
# The install script (install-script.nix) and the base system's fileSystems
# (modules/base.nix) are both derived from it, so they cannot drift apart.
#
# GPT, in this order:
#   1  nerv-bios  1M     EF02  BIOS boot partition: GRUB's core image on SeaBIOS
#   2  nerv-esp   512M   EF00  EFI system partition, vfat, mounted at /boot
#   3  nerv-lvm   rest   8E00  LVM physical volume of the volume group "nerv"
# and in VG "nerv" the LV "root" (all free space), ext4, mounted at /.
# File systems are mounted by label, so clones on another bus still boot.
rec {
  partitions = [
    {
      number = 1;
      name = "nerv-bios";
      size = "1M";
      typecode = "EF02";
      format = null;
    }
    {
      number = 2;
      name = "nerv-esp";
      size = "512M";
      typecode = "EF00";
      format = "vfat";
      label = "NERV-ESP";
      mountpoint = "/boot";
      options = [
        "fmask=0077"
        "dmask=0077"
      ];
    }
    {
      number = 3;
      name = "nerv-lvm";
      size = null; # the rest of the disk
      typecode = "8E00";
      format = "lvm";
      vg = lvm.vg;
    }
  ];

  lvm = {
    vg = "nerv";
    lvs = [
      {
        name = "root";
        size = "100%FREE";
        format = "ext4";
        label = "nerv-root";
        mountpoint = "/";
        options = [ ];
      }
    ];
  };

  # Written on the root file system as the very last install step; its presence
  # means "a finished nerv install lives here" (see install-script.nix).
  marker = "/nerv-installed";

  # sgdisk arguments creating the partitions above, in order.
  sgdiskArgs = builtins.concatLists (
    map (
      p:
      let
        n = toString p.number;
      in
      [
        "-n"
        "${n}:0:${if p.size == null then "0" else "+${p.size}"}"
        "-t"
        "${n}:${p.typecode}"
        "-c"
        "${n}:${p.name}"
      ]
    ) partitions
  );

  # NixOS fileSystems entries, by label.
  fileSystems =
    let
      esp = builtins.elemAt partitions 1;
      root = builtins.head lvm.lvs;
    in
    {
      ${root.mountpoint} = {
        device = "/dev/disk/by-label/${root.label}";
        fsType = root.format;
        options = root.options;
      };
      ${esp.mountpoint} = {
        device = "/dev/disk/by-label/${esp.label}";
        fsType = esp.format;
        options = esp.options;
      };
    };
}

# Clones may get a larger disk than the template ("disks only grow"): at boot,
# grow the LVM partition, its physical volume, the root LV and its ext4 file
# system. Each step is a no-op when there is nothing to grow.
{
  lib,
  pkgs,
  layout,
  ...
}:
let
  lvmPart = builtins.elemAt layout.partitions 2;
  root = builtins.head layout.lvm.lvs;
  rootDev = "/dev/${layout.lvm.vg}/${root.name}";
in
{
  systemd.services.nerv-growroot = {
    description = "Grow the nerv root LV to fill its disk";
    wantedBy = [ "multi-user.target" ];
    after = [ "local-fs.target" ];
    path = map lib.getBin [
      pkgs.cloud-utils
      pkgs.lvm2
      pkgs.e2fsprogs
      pkgs.util-linux
      pkgs.gawk
      pkgs.gnused
    ];
    serviceConfig.Type = "oneshot";
    script = ''
      pv=$(readlink -f /dev/disk/by-partlabel/${lvmPart.name})
      disk=/dev/$(lsblk -ndo PKNAME "$pv")
      # growpart exits 1 with NOCHANGE when the partition already fills the disk.
      growpart "$disk" ${toString lvmPart.number} || true
      pvresize "$pv"
      if [ "$(vgs --noheadings -o vg_free_count ${layout.lvm.vg} | tr -d ' ')" != 0 ]; then
        lvextend -l +100%FREE ${rootDev}
      fi
      resize2fs ${rootDev}
    '';
  };
}

# The host's disk in disko's terms, derived from nix/lib/partitions.nix: the same data the
# installer ISO's script partitions the template's disk from. A VM cloned from the template
# and a bare-metal host that nixos-anywhere partitions with disko therefore end up with the
# same GPT names and type codes, the same volume group and LV, and the same labels, and this
# module's fileSystems fit both.
#
# For a VM disko never runs (its disk came from the template); the module is still imported
# so the VM's fileSystems and GRUB device come from the same place as bare metal's. disko
# puts GRUB on every disk with an EF02 partition (boot.loader.grub.devices), so no module
# here sets boot.loader.grub.device: a second entry for the same disk fails evaluation.
#
# Uses no pkgs and no lib, so tests evaluate this function with stub arguments.
{ host, layout, ... }:
let
  # mkfs arguments, as install-script.nix formats the template's disk (mkfs.fat -F 32 -n,
  # mkfs.ext4 -L): the same FAT size and labels, so mounts by label work on both.
  mkfsArgs = {
    vfat = fs: [
      "-F"
      "32"
      "-n"
      fs.label
    ];
    ext4 = fs: [
      "-L"
      fs.label
    ];
  };

  filesystem =
    fs:
    {
      type = "filesystem";
      inherit (fs) format mountpoint;
      extraArgs = mkfsArgs.${fs.format} fs;
    }
    # An empty list means "no options"; disko's default ([ "defaults" ]) says the same, and
    # NixOS wants the list non-empty.
    // (if fs.options == [ ] then { } else { mountOptions = fs.options; });

  content =
    p:
    if p.format == null then
      { }
    else if p.format == "lvm" then
      {
        content = {
          type = "lvm_pv";
          inherit (p) vg;
        };
      }
    else
      { content = filesystem p; };

  # disko orders partitions by priority and names them by label (sgdisk --change-name):
  # the layout's number and name keep the order and the by-partlabel paths of the template.
  partition = p: {
    name = p.name;
    value = {
      priority = p.number;
      label = p.name;
      type = p.typecode;
      size = if p.size == null then "100%" else p.size;
    }
    // content p;
  };
in
{
  disko.devices = {
    disk.main = {
      type = "disk";
      device = host.disk;
      content = {
        type = "gpt";
        partitions = builtins.listToAttrs (map partition layout.partitions);
      };
    };
    lvm_vg.${layout.lvm.vg} = {
      type = "lvm_vg";
      lvs = builtins.listToAttrs (
        map (lv: {
          inherit (lv) name;
          value = {
            inherit (lv) size;
            content = filesystem lv;
          };
        }) layout.lvm.lvs
      );
    };
  };
}

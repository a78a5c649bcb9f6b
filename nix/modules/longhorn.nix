# What Longhorn (the platform's storage, deployed by Flux) needs from every K3s host. Longhorn's
# manager runs host tools through nsenter with FHS paths, which NixOS does not have: iscsiadm for
# its block volumes, the NFS client for RWX volumes, and whatever it calls from /usr/local/bin,
# which therefore points at the system's tools. Each host gets an iSCSI initiator name of its own.
#
# Uses no lib, so tests evaluate this function with stub arguments.
{
  pkgs,
  host,
  ...
}:
{
  services.openiscsi = {
    enable = true;
    name = "iqn.2025-01.lab.nerv-homelab:${host.hostname}";
  };
  environment.systemPackages = [ pkgs.nfs-utils ];
  systemd.tmpfiles.rules = [ "L+ /usr/local/bin - - - - /run/current-system/sw/bin" ];
}

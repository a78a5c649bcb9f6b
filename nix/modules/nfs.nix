# The site's NFS export, mounted on first access: `mount` is null (no nfs section, or a host that
# opts out) or the checked settings { server, export, mountPoint, options } from nix/lib/nfs.nix,
# site.json's for the template (base.nix) and the host's own from hosts.json (host.nix):
#
#   imports = [ (import ./nfs.nix site.nfs) ];
#
# A function of the data rather than a module reading an argument: which attributes a module
# defines must not depend on the module system's own arguments, or evaluating them recurses.
#
# systemd automount with noauto: boot never waits for the NAS, the first access mounts it, and
# an idle mount is let go after 10 minutes; nofail and _netdev keep the mount out of boot's
# ordering, and the mount timeout bounds how long the access that triggers it waits.
# Uses no pkgs and no lib, so tests evaluate it with nix-instantiate alone.
mount:
if mount == null then
  { }
else
  {
    fileSystems.${mount.mountPoint} = {
      device = "${mount.server}:${mount.export}";
      fsType = "nfs";
      options = [
        "x-systemd.automount"
        "noauto"
        "nofail"
        "_netdev"
        "x-systemd.idle-timeout=600"
        "x-systemd.mount-timeout=30s"
      ]
      ++ mount.options;
    };
    # The NFS client (mount.nfs, nfs-utils) and, for NFSv3's locking, rpcbind and rpc-statd:
    # NixOS's nfs support turns on with the file system type.
    boot.supportedFilesystems = [ "nfs" ];
    services.rpcbind.enable = true;
  }

# Parses and checks the site data (nix/site.json) in plain Nix, builtins only.
#
#   import ./site.nix (builtins.fromJSON (builtins.readFile ../site.json))
#
# returns { hostname, disk, diskExplicit, adminSshKeys, nfs } or throws one message
# naming every problem, prefixed with "site.json:". An Ansible role writes
# site.json; nothing else feeds site data into the flake.
raw:
let
  sshKeys = import ./ssh-keys.nix;
  nfsLib = import ./nfs.nix;

  known = [
    "hostname"
    "disk"
    "admin_ssh_keys"
    "nfs"
  ];
  defaultDisk = "/dev/sda";
  defaultHostname = "nixos-base";

  has = name: builtins.isAttrs raw && builtins.hasAttr name raw && raw.${name} != null;
  get = name: default: if has name then raw.${name} else default;

  hostname = get "hostname" defaultHostname;
  disk = get "disk" defaultDisk;
  keys = get "admin_ssh_keys" null;
  # The site-wide NFS mount (null: none); absent means none too.
  nfs = get "nfs" null;

  unknown = if builtins.isAttrs raw then builtins.filter (k: !(builtins.elem k known)) (builtins.attrNames raw) else [ ];

  keyProblems =
    if keys == null then
      [ "admin_ssh_keys is missing: give at least one admin SSH public key (TYPE BASE64 [comment])" ]
    else if !(builtins.isList keys) then
      [ "admin_ssh_keys must be a list of SSH public key lines" ]
    else if keys == [ ] then
      [ "admin_ssh_keys is empty: give at least one admin SSH public key (TYPE BASE64 [comment])" ]
    else
      builtins.filter (p: p != null) (
        builtins.genList (
          i:
          let
            p = sshKeys.problem (builtins.elemAt keys i);
          in
          if p == null then null else "admin_ssh_keys[${toString i}] ${p}"
        ) (builtins.length keys)
      );

  errors =
    (if builtins.isAttrs raw then [ ] else [ "the site data must be a JSON object" ])
    ++ map (k: "unknown key '${k}' (known: ${builtins.concatStringsSep ", " known})") unknown
    ++ (
      if builtins.isString hostname && builtins.match "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?" hostname != null then
        [ ]
      else
        [ "hostname must be a DNS label (a-z, 0-9, '-', at most 63 characters)" ]
    )
    ++ (
      if builtins.isString disk && builtins.match "/dev/[A-Za-z0-9/._:-]+" disk != null then
        [ ]
      else
        [ "disk must be a block device path such as /dev/sda (Proxmox scsi0) or /dev/vda (virtio0)" ]
    )
    ++ keyProblems
    ++ nfsLib.problems "nfs" nfs;
in
if errors != [ ] then
  throw "site.json: ${builtins.concatStringsSep "; " errors}"
else
  {
    inherit hostname disk;
    # True when site.json names the disk: the installer then trusts it even with several disks attached.
    diskExplicit = has "disk";
    adminSshKeys = keys;
    nfs = nfsLib.settings nfs;
  }

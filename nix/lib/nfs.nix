# Checks one NFS mount of the site data in plain Nix (builtins only), for site.json (the template's
# mount) and hosts.json (each host's): null, or { server, export, mount_point, options }.
#
# The rules match the Ansible site validator (plugins/module_utils/site/schema.py and checks.py,
# nfs and hosts[].nfs), so data written by hand or by an older collection is refused here too:
#
#   problems "nfs" value   -> list of messages, each starting with the path given
#   settings value         -> null, or { server, export, mountPoint, options } of a checked value
let
  inherit (builtins)
    any
    attrNames
    concatLists
    elem
    elemAt
    filter
    genList
    hasAttr
    isAttrs
    isList
    isString
    length
    match
    ;

  fields = [
    "server"
    "export"
    "mount_point"
    "options"
  ];

  matches = re: s: isString s && match re s != null;
  octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
  # Digits and dots alone must be an IPv4 address (192.168.1.300 is neither an address nor a name).
  isServer =
    s:
    if matches "[0-9.]+" s then
      matches "${octet}[.]${octet}[.]${octet}[.]${octet}" s
    else
      matches "(${label}[.])*${label}[.]?" s && builtins.stringLength s <= 253;
  components = s: filter isString (builtins.split "/" s);
  isExport =
    s:
    matches "/([A-Za-z0-9_.+@:-]+(/[A-Za-z0-9_.+@:-]+)*)?" s
    && !(any (c: c == "." || c == "..") (components s));
  isMountPoint = matches "(/[A-Za-z0-9_][A-Za-z0-9._-]*)+";
  isOption = matches "[A-Za-z0-9_][A-Za-z0-9_.:=+/@-]*";

  # Mounting on (or above) these would hide what the system needs; nothing goes inside `trees`.
  systemPaths = [
    "/"
    "/nix"
    "/boot"
    "/etc"
    "/var"
    "/usr"
    "/home"
    "/root"
    "/tmp"
    "/run"
    "/proc"
    "/sys"
    "/dev"
    "/var/lib/longhorn"
    "/var/lib/rancher"
    "/var/lib/kubelet"
  ];
  trees = [
    "/nix"
    "/boot"
    "/etc"
    "/proc"
    "/sys"
    "/dev"
    "/run"
    "/usr"
    "/tmp"
    "/var/lib/longhorn"
    "/var/lib/rancher"
    "/var/lib/kubelet"
  ];
  startsWith = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  clashes =
    s: any (p: s == p || startsWith "${s}/" p) systemPaths || any (t: startsWith "${t}/" s) trees;

  # Set by modules/nfs.nix itself, so a NAS that is down never holds up boot.
  managed = [
    "auto"
    "defaults"
    "noauto"
    "nofail"
    "_netdev"
  ];
  optionName = o: elemAt (builtins.split "=" o) 0;
  isManaged = o: elem (optionName o) managed || startsWith "x-systemd." o;

  show = v: if isString v then "'${v}'" else builtins.toJSON v;
  at = path: key: "${path}.${key}";
  get = set: key: if isAttrs set && hasAttr key set then set.${key} else null;

  optionProblems =
    path: options:
    if !(isList options) || options == [ ] then
      [ "${path} must be a non-empty list of mount options" ]
    else
      concatLists (
        genList (
          i:
          let
            o = elemAt options i;
            where = "${path}[${toString i}] ${show o}";
          in
          if !(isOption o) then
            [ "${where} must be one mount option (no commas, spaces or quotes)" ]
          else if isManaged o then
            [ "${where} is set by the collection (systemd automount, so a NAS that is down never blocks boot)" ]
          else
            [ ]
        ) (length options)
      );

  problems =
    path: value:
    if value == null then
      [ ]
    else if !(isAttrs value) then
      [ "${path} must be null or an object with ${builtins.concatStringsSep ", " fields}" ]
    else
      map (k: "unknown key '${at path k}' (known: ${builtins.concatStringsSep ", " fields})") (
        filter (k: !(elem k fields)) (attrNames value)
      )
      ++ map (k: "${at path k} is missing") (filter (k: !(hasAttr k value)) fields)
      ++ (
        let
          v = get value "server";
        in
        if hasAttr "server" value && !(isServer v) then
          [ "${at path "server"} ${show v} is neither an IPv4 address nor a DNS name" ]
        else
          [ ]
      )
      ++ (
        let
          v = get value "export";
        in
        if hasAttr "export" value && !(isExport v) then
          [ "${at path "export"} ${show v} must be an absolute path without '.' or '..' (e.g. /volume1/k8s)" ]
        else
          [ ]
      )
      ++ (
        let
          v = get value "mount_point";
        in
        if !(hasAttr "mount_point" value) then
          [ ]
        else if !(isMountPoint v) then
          [ "${at path "mount_point"} ${show v} must be an absolute directory such as /mnt/nfs" ]
        else if clashes v then
          [ "${at path "mount_point"} ${show v} clashes with a directory the system needs: use one of its own, e.g. /mnt/nfs" ]
        else
          [ ]
      )
      ++ (if hasAttr "options" value then optionProblems (at path "options") value.options else [ ]);

  settings =
    value:
    if value == null then
      null
    else
      {
        inherit (value) server export options;
        mountPoint = value.mount_point;
      };
in
{
  inherit problems settings;
  # The same lists as plugins/module_utils/site/checks.py (tests/unit/test_nix_nfs.py compares them).
  inherit systemPaths trees managed;
}

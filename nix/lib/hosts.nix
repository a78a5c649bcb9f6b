# Parses and checks a site's host data (nix/hosts.json) in plain Nix, builtins only.
#
#   import ./hosts.nix (builtins.fromJSON (builtins.readFile ../hosts.json))
#
# returns { site, domain, network, adminSshKeys, k3s, siteCa, hosts, names } or throws one message
# naming every problem, prefixed with "hosts.json:". `hosts.<name>` holds, as plain data,
# everything that host's NixOS configuration is made from (address, disk, K3s role and
# flags, firewall ports), so the whole mapping evaluates offline. An Ansible role writes
# hosts.json from the site file; nothing else feeds host data into the flake.
raw:
let
  sshKeys = import ./ssh-keys.nix;
  nfsLib = import ./nfs.nix;
  servicesLib = import ./services.nix;

  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    elem
    elemAt
    filter
    genList
    hasAttr
    head
    isAttrs
    isInt
    isList
    isString
    length
    match
    ;

  topFields = [
    "site"
    "domain"
    "network"
    "admin_ssh_keys"
    "k3s"
    "site_ca_sops_file"
    "hosts"
  ];
  networkFields = [
    "cidr"
    "prefix"
    "gateway"
    "dns"
  ];
  k3sFields = [
    "version"
    "cluster_cidr"
    "service_cidr"
    "disable"
    "extra_args"
    "token_sops_file"
    "token_sops_key"
  ];
  hostFields = [
    "name"
    "role"
    "kind"
    "address"
    "mac"
    "disk"
    "nfs"
    "services"
  ];
  roles = [
    "control-plane"
    "worker"
  ];
  kinds = [
    "vm"
    "baremetal"
  ];
  # As the Ansible site schema allows (plugins/module_utils/site/schema.py, k3s.disable).
  disableable = [
    "servicelb"
    "traefik"
    "local-storage"
    "metrics-server"
  ];
  # The flake's own configurations: a host of that name would replace them.
  reserved = [
    "base"
    "installer"
  ];
  # sops-nix's `format` for each file name ending the Ansible side encrypts.
  sopsFormats = {
    yaml = "yaml";
    yml = "yaml";
    json = "json";
    env = "dotenv";
  };

  # ---------------------------------------------------------------------------------- helpers

  matches = re: s: isString s && match re s != null;
  dnsLabel = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
  isLabel = matches dnsLabel;
  isDomain = matches "(${dnsLabel}[.])*${dnsLabel}";
  isMac = matches "[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}";
  # No whitespace or quotes: disko and the install tooling pass it on unquoted.
  isDevice = matches "/dev/[A-Za-z0-9/._:+@-]+";
  isDiskById = matches "/dev/disk/by-id/[A-Za-z0-9._:+@-]+";
  k3sVersion = "v([0-9]+)[.]([0-9]+)[.]([0-9]+)[+]k3s([0-9]+)";
  relativePath = "[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*";
  sopsKeyPath = "[A-Za-z0-9_-]+([./][A-Za-z0-9_-]+)*";

  # Each extraFlags item is one k3s argument, but the NixOS module joins them into the
  # unit's ExecStart, where whitespace splits words, quotes and '\' are parsed, and '$' and
  # '%' expand: refuse those rather than hand systemd a different command line.
  unsafeInArgument = [
    "\""
    "'"
    "\\"
    "$"
    "%"
    ";"
    "`"
  ];
  isArgument =
    s:
    matches "[^[:space:]]+" s
    && builtins.replaceStrings unsafeInArgument (map (_: "") unsafeInArgument) s == s;

  lower = builtins.replaceStrings [ "A" "B" "C" "D" "E" "F" ] [ "a" "b" "c" "d" "e" "f" ];

  # A value as it appears in a message.
  show = v: if isString v then "'${v}'" else builtins.toJSON v;

  # IPv4 address -> integer, or null.
  octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  ipv4 =
    s:
    let
      m = if isString s then match "${octet}[.]${octet}[.]${octet}[.]${octet}" s else null;
    in
    if m == null then null else builtins.foldl' (acc: o: acc * 256 + builtins.fromJSON o) 0 m;
  pow2 = n: builtins.foldl' (x: _: x * 2) 1 (genList (i: i) n);
  # "a.b.c.d/n" -> { address; prefix; } with no host bits set, or null.
  parseCidr =
    s:
    let
      m = if isString s then match "([0-9.]+)/(3[0-2]|[12]?[0-9])" s else null;
      address = if m == null then null else ipv4 (head m);
      prefix = builtins.fromJSON (elemAt m 1);
      size = pow2 (32 - prefix);
    in
    if address == null || address - (address / size) * size != 0 then null else { inherit address prefix; };
  inNetwork = net: ip: ip / pow2 (32 - net.prefix) == net.address / pow2 (32 - net.prefix);
  overlap =
    a: b:
    let
      shorter = if a.prefix < b.prefix then a else b;
    in
    inNetwork shorter a.address && inNetwork shorter b.address;

  present = set: key: isAttrs set && hasAttr key set;
  get = set: key: if present set key then set.${key} else null;

  # Unknown and missing fields of an object at `path` ("" for the top level).
  shape =
    path: known: value:
    let
      dot = if path == "" then "" else "${path}.";
    in
    if !(isAttrs value) then
      [ "${if path == "" then "the host data" else path} must be a JSON object" ]
    else
      map (k: "unknown key '${dot}${k}' (known: ${concatStringsSep ", " known})") (
        filter (k: !(elem k known)) (attrNames value)
      )
      ++ map (k: "${dot}${k} is missing") (filter (k: !(hasAttr k value)) known);

  # One problem when `key` is present in `set` but its value fails `ok`.
  check =
    path: set: key: ok: message:
    if present set key && !(ok set.${key}) then
      [ "${if path == "" then "" else "${path}."}${key} ${show set.${key}} ${message}" ]
    else
      [ ];

  # One problem per list item that fails `ok` (or one when it is not a list).
  checkList =
    path: value: ok: message:
    if !(isList value) then
      [ "${path} must be a list" ]
    else
      concatLists (
        genList (
          i:
          let
            v = elemAt value i;
          in
          if ok v then [ ] else [ "${path}[${toString i}] ${show v} ${message}" ]
        ) (length value)
      );

  indices = n: genList (i: i) n;

  # "<what> 'x' is used by hosts[0], hosts[2]" for each value given more than once.
  duplicates =
    what: values:
    let
      n = length values;
      at = i: elemAt values i;
      same = v: filter (j: at j == v) (indices n);
    in
    concatLists (
      map (
        i:
        let
          v = at i;
          uses = same v;
        in
        if v == null || length uses < 2 || head uses != i then
          [ ]
        else
          [
            "${what} ${show v} is used by ${concatStringsSep ", " (map (j: "hosts[${toString j}]") uses)}"
          ]
      ) (indices n)
    );

  # ---------------------------------------------------------------------------------- checks

  net = get raw "network";
  netCidr = parseCidr (get net "cidr");
  inLan = s: netCidr != null && ipv4 s != null && inNetwork netCidr (ipv4 s);
  netErrors =
    (if present raw "network" then shape "network" networkFields net else [ ])
    ++ check "network" net "cidr" (
      v: parseCidr v != null
    ) "is not an IPv4 network in CIDR form with no host bits set (e.g. 192.168.10.0/24)"
    ++ check "network" net "prefix" (
      v: isInt v && v >= 0 && v <= 32 && (netCidr == null || v == netCidr.prefix)
    ) "must be the prefix length of network.cidr"
    ++ check "network" net "gateway" (
      v: ipv4 v != null && (netCidr == null || inLan v)
    ) "must be an IPv4 address inside network.cidr"
    ++ (
      if present net "dns" then
        (if net.dns == [ ] then [ "network.dns is empty: give at least one DNS server" ] else [ ])
        ++ checkList "network.dns" net.dns (v: ipv4 v != null) "is not an IPv4 address"
      else
        [ ]
    );

  keys = get raw "admin_ssh_keys";
  keyErrors =
    if !(present raw "admin_ssh_keys") then
      [ ]
    else if !(isList keys) then
      [ "admin_ssh_keys must be a list of SSH public key lines" ]
    else if keys == [ ] then
      [ "admin_ssh_keys is empty: give at least one admin SSH public key (TYPE BASE64 [comment])" ]
    else
      concatLists (
        genList (
          i:
          let
            p = sshKeys.problem (elemAt keys i);
          in
          if p == null then [ ] else [ "admin_ssh_keys[${toString i}] ${p}" ]
        ) (length keys)
      );

  k3s = get raw "k3s";
  clusterCidr = parseCidr (get k3s "cluster_cidr");
  serviceCidr = parseCidr (get k3s "service_cidr");
  sopsSuffix =
    let
      file = get k3s "token_sops_file";
      m = if isString file then match ".*[.]sops[.]([a-z]+)" file else null;
    in
    if m == null then null else head m;
  k3sErrors =
    (if present raw "k3s" then shape "k3s" k3sFields k3s else [ ])
    ++ check "k3s" k3s "version" (
      v: v == null || matches k3sVersion v
    ) "is not a K3s release such as v1.31.4+k3s1 (or null for the one in nixpkgs)"
    ++ check "k3s" k3s "cluster_cidr" (v: parseCidr v != null) "is not an IPv4 network in CIDR form"
    ++ check "k3s" k3s "service_cidr" (v: parseCidr v != null) "is not an IPv4 network in CIDR form"
    ++ (
      if clusterCidr != null && serviceCidr != null && overlap clusterCidr serviceCidr then
        [ "k3s.cluster_cidr and k3s.service_cidr overlap" ]
      else
        [ ]
    )
    ++ concatLists (
      map (
        key:
        let
          c = parseCidr (get k3s key);
        in
        if c != null && netCidr != null && overlap c netCidr then [ "k3s.${key} overlaps network.cidr" ] else [ ]
      ) [ "cluster_cidr" "service_cidr" ]
    )
    ++ (
      if present k3s "disable" then
        checkList "k3s.disable" k3s.disable (v: elem v disableable) "is not one of ${concatStringsSep ", " disableable}"
      else
        [ ]
    )
    ++ (
      if present k3s "extra_args" then
        checkList "k3s.extra_args" k3s.extra_args isArgument
          "must be one argument without whitespace, quotes, backslashes, '$', '%', semicolons or backticks (write --flag=value)"
      else
        [ ]
    )
    ++ check "k3s" k3s "token_sops_file" (
      v:
      matches relativePath v && sopsSuffix != null && hasAttr sopsSuffix sopsFormats
    ) "must be a path relative to nix/ (no '..', no leading '/') ending in .sops.yaml, .sops.yml, .sops.json or .sops.env"
    ++ check "k3s" k3s "token_sops_key" (matches sopsKeyPath) "must be a key path such as token or k3s.token";

  hostList = get raw "hosts";
  hostErrors =
    if !(present raw "hosts") then
      [ ]
    else if !(isList hostList) then
      [ "hosts must be a list" ]
    else if hostList == [ ] then
      [ "hosts is empty: give at least one control-plane host" ]
    else
      concatLists (
        genList (
          i:
          let
            h = elemAt hostList i;
            path = "hosts[${toString i}]";
            bare = get h "kind" == "baremetal";
          in
          shape path hostFields h
          ++ check path h "name" isLabel "is not a DNS label (a-z, 0-9, '-', at most 63 characters)"
          ++ check path h "name" (
            v: !(elem v reserved)
          ) "is reserved: the flake's own configurations are called ${concatStringsSep " and " reserved}"
          ++ check path h "role" (v: elem v roles) "must be ${concatStringsSep " or " roles}"
          ++ check path h "kind" (v: elem v kinds) "must be ${concatStringsSep " or " kinds}"
          ++ check path h "address" (v: ipv4 v != null) "is not an IPv4 address"
          ++ check path h "address" (
            v: ipv4 v == null || netCidr == null || inLan v
          ) "is outside network.cidr"
          ++ check path h "address" (v: v != get net "gateway") "is the gateway's address"
          ++ check path h "mac" (v: v == null || isMac v) "is not a MAC address (six colon-separated hex pairs)"
          ++ check path h "mac" (
            v: !bare || v != null
          ) "must be set on a baremetal host: its network is matched to the NIC with this MAC"
          ++ check path h "disk" isDevice "is not a block device path under /dev"
          ++ check path h "disk" (
            v: !bare || isDiskById v
          ) "must be a /dev/disk/by-id/... path on a baremetal host (disko wipes the disk it names, and /dev/sdX names can change between boots)"
          ++ (if present h "nfs" then nfsLib.problems "${path}.nfs" h.nfs else [ ])
          ++ (
            if present h "services" then
              servicesLib.problems (if isString (get raw "domain") then raw.domain else "") "${path}.services" h.services
            else
              [ ]
          )
        ) (length hostList)
      )
      ++ duplicates "name" (map (h: get h "name") hostList)
      ++ duplicates "address" (map (h: get h "address") hostList)
      ++ duplicates "mac" (map (h: let m = get h "mac"; in if isString m then lower m else m) hostList)
      ++ (
        if builtins.any (h: get h "role" == "control-plane") hostList then
          [ ]
        else
          [ "no host has role control-plane: K3s needs one to start the cluster" ]
      );

  errors =
    (if isAttrs raw then shape "" topFields raw else [ "the host data must be a JSON object" ])
    ++ check "" raw "site" isLabel "is not a DNS label"
    ++ check "" raw "domain" isDomain "is not a lower-case DNS name such as lab.example"
    ++ check "" raw "site_ca_sops_file" (
      v: matches relativePath v && matches ".*[.]sops[.]ya?ml" v
    ) "must be a path relative to nix/ (no '..', no leading '/') ending in .sops.yaml or .sops.yml"
    ++ netErrors
    ++ keyErrors
    ++ k3sErrors
    ++ hostErrors;

  # ---------------------------------------------------------------------------------- result

  servers = filter (h: h.role == "control-plane") hostList;
  # The first control-plane host in list order starts the cluster (embedded etcd); every
  # other node joins through it.
  first = head servers;
  firstServer = "https://${first.address}:6443";

  version = raw.k3s.version;
  versionParts = match k3sVersion version;

  settings =
    h:
    let
      isServer = h.role == "control-plane";
      isFirst = h.name == first.name;
      nodeFlags = [ "--node-ip=${h.address}" ];
      # One list item per argument, in the --flag=value form: see isArgument.
      serverFlags = [
        "--cluster-cidr=${raw.k3s.cluster_cidr}"
        "--service-cidr=${raw.k3s.service_cidr}"
      ]
      ++ map (c: "--disable=${c}") raw.k3s.disable
      ++ nodeFlags
      ++ [ "--tls-san=${h.address}" ];
    in
    {
      hostname = h.name;
      inherit (h) address disk;
      inherit (raw.network) prefix gateway;
      nameservers = raw.network.dns;
      domain = raw.domain;
      isVm = h.kind == "vm";
      mac = if h.mac == null then null else lower h.mac;
      # The NFS mount of this host (null: none), already resolved from the site's nfs section and
      # the host's own hosts[].nfs by the Ansible side.
      nfs = nfsLib.settings h.nfs;
      # The nerv.services options of this host (modules/services): DNS with the site's records,
      # Caddy's proxies, the node exporter open to the LAN; each off when the host has none.
      # The exporter is open to the LAN and to the pods: a Prometheus pod on this very node reaches the
      # node's address from its pod address, which nothing translates on the way in.
      services = servicesLib.options h.address [
        raw.network.cidr
        raw.k3s.cluster_cidr
      ] h.services;
      k3s = {
        role = if isServer then "server" else "agent";
        clusterInit = isFirst;
        serverAddr = if isFirst then null else firstServer;
        extraFlags = (if isServer then serverFlags else nodeFlags) ++ raw.k3s.extra_args;
      };
      # kubelet (metrics, logs, exec) and flannel VXLAN on every node; the API server and
      # etcd's client and peer ports on servers.
      firewall = {
        tcp = (if isServer then [ 6443 ] else [ ]) ++ [ 10250 ];
        tcpRanges =
          if isServer then
            [
              {
                from = 2379;
                to = 2380;
              }
            ]
          else
            [ ];
        udp = [ 8472 ];
      };
    };
in
if errors != [ ] then
  throw "hosts.json: ${concatStringsSep "; " errors}"
else
  {
    inherit (raw) site domain;
    network = {
      inherit (raw.network) cidr prefix gateway dns;
    };
    adminSshKeys = raw.admin_ssh_keys;
    k3s = {
      inherit version;
      # The nixpkgs attribute of the minor release and, when the site pins one, the exact
      # version it must hold (modules/k3s.nix asserts it). Unpinned: the collection's K3s
      # 1.31, whatever patch release the nixpkgs pin carries - not the pin's default k3s,
      # which moves to a new minor release with the channel.
      package =
        if version == null then
          {
            attr = "k3s_1_31";
            version = null;
          }
        else
          {
            attr = "k3s_${elemAt versionParts 0}_${elemAt versionParts 1}";
            version = builtins.substring 1 (builtins.stringLength version) version;
          };
      clusterCidr = raw.k3s.cluster_cidr;
      serviceCidr = raw.k3s.service_cidr;
      inherit (raw.k3s) disable;
      extraArgs = raw.k3s.extra_args;
      # Relative to nix/, the flake root (the Ansible side copies the site's file there).
      tokenSopsFile = raw.k3s.token_sops_file;
      # sops-nix separates nested keys with '/'; the Ansible site file writes them with '.'.
      tokenSopsKey = builtins.replaceStrings [ "." ] [ "/" ] raw.k3s.token_sops_key;
      tokenSopsFormat = sopsFormats.${sopsSuffix};
    };
    # The site CA (tls.crt, tls.key), relative to nix/ where the Ansible side copies it for the hosts that run
    # Caddy; sops.nix declares it on those hosts only.
    siteCa = {
      sopsFile = raw.site_ca_sops_file;
      format = "yaml";
    };
    hosts = builtins.listToAttrs (
      map (h: {
        name = h.name;
        value = settings h;
      }) hostList
    );
    names = map (h: h.name) hostList;
  }

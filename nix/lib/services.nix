# Checks one host's home services of the site data (hosts.json's hosts[].services) in plain Nix,
# builtins only: { dns, caddy, node_exporter }, each null (off) or the settings the Ansible side
# resolved from the site file (plugins/module_utils/site/services.py):
#
#   dns            { engine, upstreams, records }   records: fully qualified name -> IPv4 address
#   caddy          { proxies }                      proxies: fully qualified name -> http(s) URL
#   node_exporter  { port }
#
# The rules match the Ansible site validator (schema.py and checks.py, hosts[].services), so data
# written by hand or by an older collection is refused here too:
#
#   problems domain "hosts[0].services" value  -> list of messages, each starting with the path given
#   options address allowFrom value            -> the nerv.services options of a checked value
let
  inherit (builtins)
    attrNames
    concatLists
    elem
    elemAt
    filter
    genList
    hasAttr
    isAttrs
    isInt
    isList
    isString
    length
    match
    ;

  fields = [
    "dns"
    "caddy"
    "node_exporter"
  ];
  dnsFields = [
    "engine"
    "upstreams"
    "records"
  ];
  engines = [
    "blocky"
    "adguardhome"
  ];
  # Ports the exporter may not take: DNS, Caddy, and K3s's (API server, etcd, kubelet).
  reservedPorts = [
    53
    80
    443
    2379
    2380
    6443
    10250
  ];
  lowestPort = 1024;

  matches = re: s: isString s && match re s != null;
  octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  isIpv4 = matches "${octet}[.]${octet}[.]${octet}[.]${octet}";
  label = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
  # As the site schema's pattern for names (labels of at most 63 characters).
  isName = matches "(${label}[.])*${label}";
  # As the site schema's upstream pattern: a scheme, a host part, an optional path, no whitespace.
  isUrl = matches "https?://[^/[:space:]]+(/[^[:space:]]*)?";
  inDomain = domain: s: s == domain || matches "(.*)[.]${builtins.replaceStrings [ "." ] [ "[.]" ] domain}" s;

  show = v: if isString v then "'${v}'" else builtins.toJSON v;
  at = path: key: "${path}.${key}";

  shape =
    path: known: value:
    if !(isAttrs value) then
      [ "${path} must be null or an object with ${builtins.concatStringsSep ", " known}" ]
    else
      map (k: "unknown key '${at path k}' (known: ${builtins.concatStringsSep ", " known})") (
        filter (k: !(elem k known)) (attrNames value)
      )
      ++ map (k: "${at path k} is missing") (filter (k: !(hasAttr k value)) known);

  # One message per entry of a name -> value mapping whose name or value fails.
  mapping =
    path: value: okName: nameMessage: okValue: valueMessage:
    if !(isAttrs value) then
      [ "${path} must be an object" ]
    else
      concatLists (
        map (
          n:
          (if okName n then [ ] else [ "${path} name ${show n} ${nameMessage}" ])
          ++ (if okValue value.${n} then [ ] else [ "${path}.${show n} ${show value.${n}} ${valueMessage}" ])
        ) (attrNames value)
      );

  dnsProblems =
    path: dns:
    if dns == null then
      [ ]
    else
      let
        s = shape path dnsFields dns;
      in
      if s != [ ] then
        s
      else
        (if elem dns.engine engines then [ ] else [ "${at path "engine"} ${show dns.engine} must be blocky or adguardhome" ])
        ++ (
          if !(isList dns.upstreams) || dns.upstreams == [ ] then
            [ "${at path "upstreams"} must be a non-empty list of IPv4 addresses" ]
          else
            concatLists (
              genList (
                i:
                let
                  u = elemAt dns.upstreams i;
                in
                if isIpv4 u then [ ] else [ "${at path "upstreams"}[${toString i}] ${show u} is not an IPv4 address" ]
              ) (length dns.upstreams)
            )
        )
        ++ mapping (at path "records") dns.records isName "is not a lower-case DNS name" isIpv4 "is not an IPv4 address";

  caddyProblems =
    domain: path: caddy:
    if caddy == null then
      [ ]
    else
      let
        s = shape path [ "proxies" ] caddy;
      in
      if s != [ ] then
        s
      else if isAttrs caddy.proxies && caddy.proxies == { } then
        [ "${at path "proxies"} is empty: give at least one name and upstream" ]
      else
        mapping (at path "proxies") caddy.proxies (
          n: isName n && inDomain domain n
        ) "must be a lower-case DNS name inside the site's domain ${domain}" isUrl "is not an http:// or https:// URL";

  exporterProblems =
    path: exporter:
    if exporter == null then
      [ ]
    else
      let
        s = shape path [ "port" ] exporter;
        p = exporter.port;
      in
      if s != [ ] then
        s
      else if !(isInt p) || p < lowestPort || p > 65535 then
        [ "${at path "port"} ${show p} must be a port from ${toString lowestPort} to 65535" ]
      else if elem p reservedPorts then
        [ "${at path "port"} ${show p} is taken by DNS, Caddy or K3s on the host" ]
      else
        [ ];

  problems =
    domain: path: value:
    if !(isAttrs value) then
      [ "${path} must be an object with ${builtins.concatStringsSep ", " fields}" ]
    else
      let
        s = shape path fields value;
      in
      if s != [ ] then
        s
      else
        dnsProblems (at path "dns") value.dns
        ++ caddyProblems domain (at path "caddy") value.caddy
        ++ exporterProblems (at path "node_exporter") value.node_exporter;

  # The nerv.services options (nix/modules/services) of a checked value, for a host at `address`
  # whose exporter the networks `allowFrom` may reach.
  options =
    address: allowFrom: value:
    {
      dns =
        if value.dns == null then
          { enable = false; }
        else
          {
            enable = true;
            inherit (value.dns) engine upstreams records;
            # Its own LAN address and loopback, clear of systemd-resolved's 127.0.0.53.
            listenAddresses = [
              address
              "127.0.0.1"
            ];
          };
      caddy =
        if value.caddy == null then
          { enable = false; }
        else
          {
            enable = true;
            inherit (value.caddy) proxies;
          };
      nodeExporter =
        if value.node_exporter == null then
          { enable = false; }
        else
          {
            enable = true;
            inherit (value.node_exporter) port;
            inherit allowFrom;
          };
    };
in
{
  inherit problems options;
  # The same values as plugins/module_utils/site (tests/unit/test_nix_services.py compares them).
  inherit engines reservedPorts lowestPort;
}

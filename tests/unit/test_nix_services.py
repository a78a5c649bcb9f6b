"""The home services on the NixOS side: the modules in nix/modules/services (nerv.services options -> the NixOS
options of Blocky, AdGuard Home, Caddy and the node exporter), nix/lib/services.nix (hosts.json's hosts[].services
checked again) and the whole chain from the site file through the filter nix_hosts and hosts.nix to the values the
modules set, all evaluated by the real nix-instantiate.

nixpkgs is not reachable here, so the NixOS module system does not run: each module is called as a function with a
stub `lib` (mkOption, mkIf and mkMerge build tagged sets as nixpkgs' do) and a `config` holding its own options'
defaults with the values given; STUB resolves the mkIf/mkMerge tags the way the module system merges them (lists
joined, attribute sets merged). That checks what each module sets, not that nixpkgs has those option names: those
were checked by reading nixpkgs' modules (docs/home-services.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from nix_helpers import NIX_DIR, REPO, nix_eval, nix_eval_error, nix_string

from ansible_collections.nerv.homelab.plugins.filter.nix_hosts import nix_hosts
from ansible_collections.nerv.homelab.plugins.module_utils.site import schema
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import normalise_site, parse_site, validate_site

STUB = """
let
  lib = rec {
    mkOption = o: o // { _type = "option"; };
    mkEnableOption = d: { _type = "option"; default = false; description = "Whether to enable ${d}."; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    types = {
      str = "str"; bool = "bool"; port = "port"; attrs = "attrs";
      enum = e: { enum = e; }; listOf = t: { listOf = t; }; attrsOf = t: { attrsOf = t; };
      nullOr = t: { nullOr = t; }; submodule = m: { submodule = m; };
    };
    mapAttrsToList = f: s: map (n: f n s.${n}) (builtins.attrNames s);
    concatMapStrings = f: l: builtins.concatStringsSep "" (map f l);
    concatStringsSep = builtins.concatStringsSep;
    concatStrings = builtins.concatStringsSep "";
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: l: if c then l else [ ];
    optionalAttrs = c: s: if c then s else { };
    hasSuffix = suffix: s:
      let n = builtins.stringLength s; m = builtins.stringLength suffix;
      in n >= m && builtins.substring (n - m) m s == suffix;
    hasInfix = infix: s:
      let n = builtins.stringLength s; m = builtins.stringLength infix;
      in n >= m && builtins.any (i: builtins.substring i m s == infix) (builtins.genList (i: i) (n - m + 1));
    # for separators without regex meaning (the modules split at "/")
    splitString = sep: s: builtins.filter builtins.isString (builtins.split sep s);
    last = l: builtins.elemAt l (builtins.length l - 1);
    toInt = s: builtins.fromJSON s;
  };
  # What the module system does with mkIf and mkMerge: definitions under a false condition vanish, merged
  # definitions join (lists concatenated, attribute sets merged key by key).
  merge2 = a: b:
    if a == null then b else if b == null then a
    else if builtins.isAttrs a && builtins.isAttrs b then
      a // b // builtins.mapAttrs (n: v: merge2 a.${n} v) (builtins.intersectAttrs a b)
    else if builtins.isList a && builtins.isList b then a ++ b
    else throw "two definitions of one value";
  clean = s: builtins.removeAttrs s (builtins.filter (n: s.${n} == null) (builtins.attrNames s));
  resolve = v:
    if builtins.isAttrs v && (v._type or "") == "if" then (if v.condition then resolve v.content else null)
    else if builtins.isAttrs v && (v._type or "") == "merge" then builtins.foldl' merge2 null (map resolve v.contents)
    else if builtins.isAttrs v then clean (builtins.mapAttrs (_: resolve) v)
    else v;
  defaults = opts: builtins.mapAttrs (_: o: o.default or null) opts;
  # One module of nix/modules/services with nerv.services.<name> = its defaults // given.
  evaluate = file: name: given: nftables:
    let
      call = values: import file {
        inherit lib;
        config = { nerv.services.${name} = values; networking.nftables.enable = nftables; };
      };
      opts = (call { }).options.nerv.services.${name};
      m = call (defaults opts // given);
      c = resolve m.config;
    in { options = builtins.attrNames opts; config = if c == null then { } else c; };
in
"""

DNS = "./nix/modules/services/dns.nix"
CADDY = "./nix/modules/services/caddy.nix"
EXPORTER = "./nix/modules/services/node-exporter.nix"


def module(nix_instantiate, file: str, name: str, given: dict, nftables: bool = False) -> dict:
    """One module's options and what it sets, without nerv.* (its ports and health checks: test_nix_services_more)."""
    expr = STUB + f"evaluate {file} {nix_string(name)} (builtins.fromJSON {nix_string(json.dumps(given))}) "
    expr += "true" if nftables else "false"
    out = nix_eval(nix_instantiate, expr)
    out["config"].pop("nerv", None)
    return out


RECORDS = {"grafana.lab.example": "192.168.10.200", "cp1.lab.example": "192.168.10.21"}


# ---------------------------------------------------------------------------------------------------- modules


@pytest.mark.parametrize(("file", "name"), [(DNS, "dns"), (CADDY, "caddy"), (EXPORTER, "nodeExporter")])
def test_every_service_is_off_until_enabled(nix_instantiate, file, name):
    out = module(nix_instantiate, file, name, {})
    assert out["config"] == {} and "enable" in out["options"]


def test_blocky_answers_the_records_and_forwards_the_rest(nix_instantiate):
    given = {"enable": True, "records": RECORDS, "listenAddresses": ["192.168.10.21", "127.0.0.1"]}
    out = module(nix_instantiate, DNS, "dns", given)
    assert out["options"] == ["enable", "engine", "listenAddresses", "openFirewall", "records", "upstreams"]
    assert out["config"] == {
        "services": {
            "blocky": {
                "enable": True,
                "settings": {
                    "ports": {"dns": "192.168.10.21:53,127.0.0.1:53"},
                    "upstreams": {"groups": {"default": ["1.1.1.1", "9.9.9.9"]}},
                    "customDNS": {"mapping": RECORDS},
                },
            }
        },
        "networking": {"firewall": {"allowedUDPPorts": [53], "allowedTCPPorts": [53]}},
    }


def test_blocky_on_the_wildcard_binds_the_bare_port(nix_instantiate):
    out = module(nix_instantiate, DNS, "dns", {"enable": True, "openFirewall": False})
    assert out["config"]["services"]["blocky"]["settings"]["ports"] == {"dns": ":53"}
    assert "networking" not in out["config"]


def test_adguard_home_takes_the_records_as_rewrites_and_keeps_its_ui_local(nix_instantiate):
    given = {"enable": True, "engine": "adguardhome", "records": RECORDS, "upstreams": ["9.9.9.9"]}
    out = module(nix_instantiate, DNS, "dns", given)
    assert "blocky" not in out["config"]["services"]
    assert out["config"]["services"]["adguardhome"] == {
        "enable": True,
        "host": "127.0.0.1",
        "mutableSettings": False,
        "settings": {
            "dns": {"bind_hosts": ["0.0.0.0"], "port": 53, "upstream_dns": ["9.9.9.9"], "bootstrap_dns": ["9.9.9.9"]},
            "filtering": {
                "rewrites": [
                    {"domain": "cp1.lab.example", "answer": "192.168.10.21"},
                    {"domain": "grafana.lab.example", "answer": "192.168.10.200"},
                ]
            },
        },
    }
    assert out["config"]["networking"]["firewall"]["allowedUDPPorts"] == [53]


def test_caddy_proxies_each_name_with_its_own_ca_by_default(nix_instantiate):
    given = {"enable": True, "proxies": {"nas.lab.example": "http://192.168.10.4:5000"}}
    out = module(nix_instantiate, CADDY, "caddy", given)
    assert out["config"] == {
        "services": {
            "caddy": {
                "enable": True,
                # Caddy does not run as root: its CA's root goes to browsers by hand
                "globalConfig": "skip_install_trust\n",
                "virtualHosts": {
                    "nas.lab.example": {"extraConfig": "reverse_proxy http://192.168.10.4:5000\ntls internal\n"}
                },
            }
        },
        "networking": {"firewall": {"allowedTCPPorts": [80, 443]}},
    }


def test_caddy_issues_from_the_site_ca_when_given(nix_instantiate):
    ca = {"certFile": "/run/secrets/site-ca.crt", "keyFile": "/run/secrets/site-ca.key"}
    given = {"enable": True, "proxies": {"nas.lab.example": "http://nas:5000"}, "ca": ca, "openFirewall": False}
    caddy = module(nix_instantiate, CADDY, "caddy", given)["config"]["services"]["caddy"]
    assert caddy["globalConfig"].startswith("skip_install_trust\npki {\n  ca site {\n")
    assert "cert /run/secrets/site-ca.crt" in caddy["globalConfig"]
    assert "key /run/secrets/site-ca.key" in caddy["globalConfig"]
    extra = caddy["virtualHosts"]["nas.lab.example"]["extraConfig"]
    assert extra == "reverse_proxy http://nas:5000\ntls {\n  issuer internal {\n    ca site\n  }\n}\n"


def test_the_exporter_is_open_to_the_allowed_networks_only(nix_instantiate):
    given = {"enable": True, "port": 9101, "allowFrom": ["192.168.10.0/24", "10.8.0.0/16"]}
    out = module(nix_instantiate, EXPORTER, "nodeExporter", given)
    assert out["config"] == {
        "services": {"prometheus": {"exporters": {"node": {"enable": True, "port": 9101, "openFirewall": False}}}},
        "networking": {
            "firewall": {
                "extraCommands": "iptables -A nixos-fw -p tcp -s 192.168.10.0/24 --dport 9101 -j nixos-fw-accept\n"
                "iptables -A nixos-fw -p tcp -s 10.8.0.0/16 --dport 9101 -j nixos-fw-accept\n"
            }
        },
    }
    nft = module(nix_instantiate, EXPORTER, "nodeExporter", given, nftables=True)["config"]["networking"]
    assert nft == {"firewall": {"extraInputRules": "ip saddr { 192.168.10.0/24, 10.8.0.0/16 } tcp dport 9101 accept\n"}}


def test_the_exporter_without_allowed_networks_opens_nothing(nix_instantiate):
    out = module(nix_instantiate, EXPORTER, "nodeExporter", {"enable": True})
    assert out["config"] == {
        "services": {"prometheus": {"exporters": {"node": {"enable": True, "port": 9100, "openFirewall": False}}}}
    }


def test_the_flake_exports_the_services_for_user_flakes(nix_instantiate):
    expr = """
    let
      flake = import ./nix/flake.nix;
      self = flake.outputs {
        self = self; nixpkgs.lib.nixosSystem = a: a;
        disko.nixosModules.disko = "disko-module"; sops-nix.nixosModules.sops = "sops-module";
      };
      services = self.nixosModules.homeServices;
    in { module = toString services; imports = map toString (import services).imports; }
    """
    out = nix_eval(nix_instantiate, expr)
    services = NIX_DIR / "modules" / "services"
    assert out["module"] == str(services)
    files = ["checks.nix", "dns.nix", "caddy.nix", "node-exporter.nix", "bind.nix", "dnsdist.nix", "haproxy.nix"]
    files += ["nginx.nix", "podman.nix", "glances.nix", "unifi.nix", "omada.nix"]
    assert out["imports"] == [str(services / f) for f in files]


# ---------------------------------------------------------------------------------------------------- site to module


def _site(**services) -> dict:
    data = yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())
    for key, value in services.items():
        data["hosts"][int(key[1:])]["services"] = value
    return data


def _hosts_expr(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(data))
    return f"import ./nix/lib/hosts.nix (builtins.fromJSON (builtins.readFile {nix_string(str(path))}))"


def test_the_site_file_reaches_the_modules_through_hosts_json(nix_instantiate, tmp_path):
    site = parse_site(_site(h2={"node_exporter": {"port": 9101}}))
    exported = nix_hosts(site)
    expr = (
        STUB
        + f"""
    let
      site = {_hosts_expr(tmp_path, exported)};
      host = site.hosts;
      hostModule = h: import ./nix/modules/host.nix {{
        inherit site; host = h; layout = import ./nix/lib/partitions.nix; modulesPath = "/stub";
        # where sops-nix puts the site CA's secrets (sops.nix declares them on Caddy hosts)
        config.sops.secrets = {{
          "site-ca.crt".path = "/run/secrets/site-ca.crt";
          "site-ca.key".path = "/run/secrets/site-ca.key";
        }};
      }};
      run = file: name: h: (evaluate file name h.services.${{name}} false).config;
    in {{
      options = builtins.mapAttrs (_: h: (hostModule h).nerv.services) host;
      dns = run {DNS} "dns" host.cp1;
      # through host.nix, which hands Caddy the site CA
      caddy = (evaluate {CADDY} "caddy" (hostModule host.worker1).nerv.services.caddy false).config;
      exporter = run {EXPORTER} "nodeExporter" host.worker2;
      off = map (n: run {DNS} "dns" host.${{n}}) [ "worker1" "worker2" ];
    }}
    """
    )
    out = nix_eval(nix_instantiate, expr)
    assert out["options"]["cp1"]["dns"]["listenAddresses"] == ["192.168.10.21", "127.0.0.1"]
    assert out["options"]["worker2"] == {
        "dns": {"enable": False},
        "caddy": {"enable": False},
        # the LAN and the pods (k3s.cluster_cidr): a Prometheus pod on the node itself comes from its pod address
        "nodeExporter": {"enable": True, "port": 9101, "allowFrom": ["192.168.10.0/24", "10.42.0.0/16"]},
    }
    mapping = out["dns"]["services"]["blocky"]["settings"]["customDNS"]["mapping"]
    assert mapping["grafana.home.lab.example"] == "192.168.10.200"
    assert mapping["nas.home.lab.example"] == "192.168.10.31"
    assert mapping["worker2.home.lab.example"] == "192.168.10.32"
    assert out["dns"]["services"]["blocky"]["settings"]["ports"]["dns"] == "192.168.10.21:53,127.0.0.1:53"
    # the site CA (the one cert-manager signs with), from sops-nix's paths
    tls = "tls {\n  issuer internal {\n    ca site\n  }\n}"
    assert out["caddy"]["services"]["caddy"]["virtualHosts"] == {
        "nas.home.lab.example": {"extraConfig": f"reverse_proxy http://192.168.10.4:5000\n{tls}\n"}
    }
    assert out["options"]["worker1"]["caddy"]["ca"] == {
        "certFile": "/run/secrets/site-ca.crt",
        "keyFile": "/run/secrets/site-ca.key",
    }
    assert "cert /run/secrets/site-ca.crt" in out["caddy"]["services"]["caddy"]["globalConfig"]
    assert "key /run/secrets/site-ca.key" in out["caddy"]["services"]["caddy"]["globalConfig"]
    rules = out["exporter"]["networking"]["firewall"]["extraCommands"]
    assert rules == (
        "iptables -A nixos-fw -p tcp -s 192.168.10.0/24 --dport 9101 -j nixos-fw-accept\n"
        "iptables -A nixos-fw -p tcp -s 10.42.0.0/16 --dport 9101 -j nixos-fw-accept\n"
    )
    assert out["off"] == [{}, {}]


BAD = [
    ("not an object", "dns", "hosts[0].services must be an object with dns, caddy, node_exporter"),
    ("unknown service", {"dns": None, "caddy": None, "node_exporter": None, "samba": {}},
     "unknown key 'hosts[0].services.samba'"),
    ("missing service", {"dns": None, "caddy": None}, "hosts[0].services.node_exporter is missing"),
    ("unknown engine", {"dns": {"engine": "bind", "upstreams": ["1.1.1.1"], "records": {}}},
     "hosts[0].services.dns.engine 'bind' must be blocky or adguardhome"),
    ("upstream name", {"dns": {"engine": "blocky", "upstreams": ["dns.google"], "records": {}}},
     "hosts[0].services.dns.upstreams[0] 'dns.google' is not an IPv4 address"),
    ("record address", {"dns": {"engine": "blocky", "upstreams": ["1.1.1.1"], "records": {"a.demo.lab.example": "x"}}},
     "hosts[0].services.dns.records.'a.demo.lab.example' 'x' is not an IPv4 address"),
    ("proxy outside", {"caddy": {"proxies": {"nas.example.org": "http://nas"}}},
     "hosts[0].services.caddy.proxies name 'nas.example.org' must be a lower-case DNS name inside the site's domain"),
    ("proxy upstream", {"caddy": {"proxies": {"nas.demo.lab.example": "nas:80"}}},
     "hosts[0].services.caddy.proxies.'nas.demo.lab.example' 'nas:80' is not an http:// or https:// URL"),
    ("no proxies", {"caddy": {"proxies": {}}}, "hosts[0].services.caddy.proxies is empty"),
    ("exporter port", {"node_exporter": {"port": 80}}, "hosts[0].services.node_exporter.port 80 must be a port from"),
    ("exporter on k3s", {"node_exporter": {"port": 6443}}, "hosts[0].services.node_exporter.port 6443 is taken"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "services", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_services_in_hosts_json_fail_with_a_clear_message(nix_instantiate, tmp_path, case, services, message):
    data = json.loads((NIX_DIR / "hosts.json").read_text())
    value = services
    if isinstance(services, dict) and len(services) == 1:
        value = {"dns": None, "caddy": None, "node_exporter": None, **services}
    data["hosts"][0]["services"] = value
    err = nix_eval_error(nix_instantiate, _hosts_expr(tmp_path, data))
    assert err.count("hosts.json: ") == 1 and message in err, err


# ---------------------------------------------------------------------------------------------------- agreement


def test_nix_and_python_agree_on_the_engines_and_ports(nix_instantiate):
    lists = nix_eval(
        nix_instantiate, "let s = import ./nix/lib/services.nix; in { inherit (s) engines reservedPorts lowestPort; }"
    )
    assert lists == {
        "engines": list(schema.DNS_ENGINES),
        "reservedPorts": list(schema.SERVICE_RESERVED_PORTS),
        "lowestPort": schema._HOST_NODE_EXPORTER["properties"]["port"]["minimum"],
    }


PROXY_NAMES = ["nas", "nas.home.lab.example", "home.lab.example", "a.b.home.lab.example", "nas.example.org", "NAS",
               "nas_1", "-nas", "nas.home.lab.example.evil", "xhome.lab.example", "a" * 63, "a" * 64,
               ".".join(["abcdefghij"] * 30)]  # fmt: skip
UPSTREAMS = ["http://192.168.10.4:5000", "https://nas.lab/ui/", "http://nas", "ftp://nas", "nas:80", "http://",
             "http://a b", "https://x/y z", "HTTP://nas"]  # fmt: skip
PORTS = [1023, 1024, 9100, 9101, 6443, 10250, 2379, 2380, 65535, 65536]
DNS_UPSTREAMS = ["1.1.1.1", "192.168.10.300", "dns.google", "01.1.1.1", "10.0.0"]


def _alone(services: dict) -> dict:
    """The example without its own services or monitoring (the site-only rule on port 9100, the cluster's own
    exporter, aside), hosts[0] running the services given."""
    data = _site()
    for host in data["hosts"]:
        host.pop("services", None)
    del data["monitoring"]
    data["hosts"][0]["services"] = services
    return data


def _nix_ok(nix_instantiate, site: dict, host: int) -> bool:
    value = nix_hosts(site)["hosts"][host]["services"]
    value_expr = f"builtins.fromJSON {nix_string(json.dumps(value))}"
    expr = f'(import ./nix/lib/services.nix).problems "home.lab.example" "s" ({value_expr}) == [ ]'
    return nix_eval(nix_instantiate, expr)


@pytest.mark.parametrize(
    ("kind", "value"),
    [("name", v) for v in PROXY_NAMES] + [("upstream", v) for v in UPSTREAMS] + [("port", v) for v in PORTS]
    + [("dns", v) for v in DNS_UPSTREAMS],
)  # fmt: skip
def test_nix_and_python_agree_on_each_value(nix_instantiate, kind, value):
    if kind in ("name", "upstream"):
        proxy = {"name": "nas", "upstream": "http://nas:80", kind: value}
        services = {"caddy": {"proxies": [proxy]}}
    elif kind == "port":
        services = {"node_exporter": {"port": value}}
    else:
        services = {"dns": {"upstreams": [value]}}
    data = _alone(services)
    python_ok = validate_site(data).errors == []
    # what Python refuses never reaches hosts.json from the site: export it unchecked to ask Nix too
    site = parse_site(data) if python_ok else normalise_site(data)
    assert _nix_ok(nix_instantiate, site, 0) is python_ok, (kind, value, python_ok)

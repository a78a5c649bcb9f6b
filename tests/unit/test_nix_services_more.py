"""The home services added on top of DNS, Caddy and the node exporter (BIND, DNSdist, HAProxy, Nginx, Podman
containers, Glances, UniFi, Omada) and what they share (nerv.healthChecks, the refusal of two services on one port),
evaluated by the real nix-instantiate.

As in test_nix_services.py, nixpkgs is not here and the NixOS module system does not run. EVAL_ALL below stands in
for the part of it these modules rely on: every module of nix/modules/services is called with one `config`, whose
nerv.* values are each option's definitions from all modules (mkIf/mkMerge pushed down as nixpkgs does, so a module
may define another's options, e.g. a hostName adding a Caddy proxy) merged, or its default; submodule values get
their options' defaults. The rest of what the modules set (services.*, networking.*, assertions) is merged as
test_nix_services.py's STUB does. That checks what the modules set and refuse, not that nixpkgs has those option
names: docs/home-services.md says which nixpkgs files were read for them."""

from __future__ import annotations

import json

import pytest
from nix_helpers import nix_eval, nix_string
from test_nix_services import STUB

EVAL_ALL = """
  # As STUB's merge2, but equal values may be defined twice (nixpkgs merges equal bools and strings).
  mergeEq = a: b:
    if a == null then b else if b == null then a
    else if builtins.isAttrs a && builtins.isAttrs b then
      a // b // builtins.mapAttrs (n: v: mergeEq a.${n} v) (builtins.intersectAttrs a b)
    else if builtins.isList a && builtins.isList b then a ++ b
    else if a == b then a
    else throw "conflicting definitions: ${builtins.toJSON a} and ${builtins.toJSON b}";
  isOption = v: builtins.isAttrs v && (v._type or "") == "option";
  mergeTrees = a: b:
    a // builtins.mapAttrs (n: v: if a ? ${n} && !(isOption v) then mergeTrees a.${n} v else v) b;
  # The definitions a module's config makes at one option path, looking into mkIf's condition only when its
  # content defines that path (what nixpkgs' pushDownProperties allows: no recursion through other options).
  defsAt = path: v:
    if builtins.isAttrs v && (v._type or "") == "if" then
      (let inner = defsAt path v.content; in if inner == [ ] then [ ] else if v.condition then inner else [ ])
    else if builtins.isAttrs v && (v._type or "") == "merge" then builtins.concatMap (defsAt path) v.contents
    else if path == [ ] then [ (resolve v) ]
    else if builtins.isAttrs v && v ? ${builtins.head path} then defsAt (builtins.tail path) v.${builtins.head path}
    else [ ];
  # A submodule's values get its options' defaults (one level of submodules, as the modules use).
  fill = t: v:
    if v == null then null
    else if builtins.isAttrs t && t ? submodule then defaults t.submodule.options // v
    else if builtins.isAttrs t && t ? attrsOf then builtins.mapAttrs (_: fill t.attrsOf) v
    else if builtins.isAttrs t && t ? listOf then map (fill t.listOf) v
    else if builtins.isAttrs t && t ? nullOr then fill t.nullOr v
    else v;
  evalAll = given: nftables:
    let
      files = (import ./nix/modules/services).imports;
      config = { nerv = nerv; networking.nftables.enable = nftables; };
      # what the modules take of pkgs: a package's path, and writeText as its name and text (to assert on)
      pkgs = { glances = "/nix/store/glances"; writeText = name: text: { writeText = name; inherit text; }; };
      mods = map (f: import f { inherit lib config pkgs; }) files;
      tree = builtins.foldl' mergeTrees { } (map (m: m.options) mods);
      valueAt = path: opt:
        let defs = builtins.concatMap (m: defsAt path (m.config or { })) (mods ++ [ { config.nerv = given; } ]);
        in fill (opt.type or null) (if defs == [ ] then opt.default or null else builtins.foldl' mergeEq null defs);
      walk = path: t: if isOption t then valueAt path t else builtins.mapAttrs (n: walk (path ++ [ n ])) t;
      nerv = (walk [ ] tree).nerv;
      merged = builtins.foldl' mergeEq { } (map (m: resolve (m.config or { })) mods);
      set = builtins.removeAttrs merged [ "nerv" "assertions" ];
    in {
      config = set;
      inherit (nerv) healthChecks;
      proxies = nerv.services.caddy.proxies;
      ports = map (p: "${toString p.port}/${p.protocol} ${p.owner}") nerv.listenPorts;
      failed = map (a: a.message) (builtins.filter (a: !a.assertion) (merged.assertions or [ ]));
    };
in
"""


def evaluate(nix_instantiate, given: dict, nftables: bool = False) -> dict:
    """All of nix/modules/services with nerv.* = `given` (only what differs from the defaults)."""
    expr = STUB.rstrip().removesuffix("in") + EVAL_ALL
    expr += f"evalAll (builtins.fromJSON {nix_string(json.dumps(given))}) {'true' if nftables else 'false'}"
    return nix_eval(nix_instantiate, expr)


def services(**enabled) -> dict:
    return {"services": enabled}


def firewall(out: dict) -> dict:
    return out["config"].get("networking", {}).get("firewall", {})


ACTIVE = "systemctl is-active --quiet {}"
PROBE = "timeout 5 bash -c '</dev/tcp/{}/{}'"
CADDY = {"enable": True}


# ---------------------------------------------------------------------------------------------------- shared


ALONE = [
    ("bind", {"enable": True}, "bind.service"),
    ("dnsdist", {"enable": True, "servers": ["192.168.10.21:53"]}, "dnsdist.service"),
    ("haproxy", {"enable": True}, "haproxy.service"),
    ("nginx", {"enable": True}, "nginx.service"),
    ("podman", {"enable": True, "containers": {"kuma": {"image": "docker.io/louislam/uptime-kuma:1.23.16",
                                                        "ports": ["3001:3001"]}}}, "podman-kuma.service"),
    ("glances", {"enable": True}, "glances.service"),
    ("unifi", {"enable": True}, "unifi.service"),
    ("omada", {"enable": True}, "podman-omada.service"),
]  # fmt: skip


def test_every_service_is_off_until_enabled(nix_instantiate):
    assert evaluate(nix_instantiate, {}) == {"config": {}, "healthChecks": [], "ports": [], "proxies": {}, "failed": []}


@pytest.mark.parametrize(("name", "given", "unit"), ALONE, ids=[a[0] for a in ALONE])
def test_each_service_alone_is_accepted_and_checked_after_a_switch(nix_instantiate, name, given, unit):
    out = evaluate(nix_instantiate, services(**{name: given}))
    assert out["failed"] == []
    assert ACTIVE.format(unit) in out["healthChecks"]
    assert out["ports"], "its ports are declared for the clash check"


CLASHES = [
    ("dns and bind", {"dns": {"enable": True}, "bind": {"enable": True}},
     "nerv.services: two DNS servers on port 53 (nerv.services.dns and nerv.services.bind): enable only one, "
     "or put DNSdist on another port (nerv.services.dnsdist.port)"),
    ("dns and dnsdist", {"dns": {"enable": True}, "dnsdist": {"enable": True, "servers": ["10.0.0.1:53"]}},
     "two DNS servers on port 53 (nerv.services.dns and nerv.services.dnsdist.port)"),
    ("bind and dnsdist", {"bind": {"enable": True}, "dnsdist": {"enable": True, "servers": ["127.0.0.1:53"]}},
     "two DNS servers on port 53 (nerv.services.bind and nerv.services.dnsdist.port)"),
    ("nginx on unifi's inform port", {"nginx": {"enable": True, "port": 8080}, "unifi": {"enable": True}},
     "nerv.services: port 8080/tcp is taken by both nerv.services.nginx.port and nerv.services.unifi: "
     "give one of them another port or disable it"),
    ("haproxy frontend on caddy's port", {"caddy": CADDY, "haproxy": {"enable": True, "frontends": {
        "web": {"port": 443, "servers": ["10.0.0.5:443"]}}}},
     "port 443/tcp is taken by both nerv.services.caddy and nerv.services.haproxy.frontends.web.port"),
    ("exporter and glances", {"nodeExporter": {"enable": True, "port": 61208}, "glances": {"enable": True}},
     "port 61208/tcp is taken by both nerv.services.nodeExporter.port and nerv.services.glances.port"),
    ("haproxy on dns", {"dns": {"enable": True}, "haproxy": {"enable": True, "frontends": {
        "dns": {"port": 53, "servers": ["10.0.0.5:53"]}}}},
     "port 53/tcp is taken by both nerv.services.dns and nerv.services.haproxy.frontends.dns.port"),
    ("container on omada's ui", {"omada": {"enable": True}, "podman": {"enable": True, "containers": {
        "web": {"image": "docker.io/library/nginx:1.27", "ports": ["8043:80"]}}}},
     "port 8043/tcp is taken by both nerv.services.podman.containers.web.ports and nerv.services.omada"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "given", "message"), CLASHES, ids=[c[0] for c in CLASHES])
def test_two_services_on_one_port_are_refused(nix_instantiate, case, given, message):
    failed = evaluate(nix_instantiate, services(**given))["failed"]
    assert len(failed) == 1 and message in failed[0], failed


def test_dnsdist_in_front_of_bind_on_another_port_is_fine(nix_instantiate):
    given = {"bind": {"enable": True, "listenAddresses": ["127.0.0.1"]},
             "dnsdist": {"enable": True, "port": 5353, "servers": ["127.0.0.1:53"]}}  # fmt: skip
    out = evaluate(nix_instantiate, services(**given))
    assert out["failed"] == []
    assert "5353/udp nerv.services.dnsdist.port" in out["ports"]
    assert PROBE.format("127.0.0.1", 53) in out["healthChecks"]


WITHOUT_CADDY = [
    ("glances", {"enable": True, "hostName": "glances.lab.example"}, "nerv.services.glances.hostName"),
    ("unifi", {"enable": True, "hostName": "unifi.lab.example"}, "nerv.services.unifi.hostName"),
    ("omada", {"enable": True, "hostName": "omada.lab.example"}, "nerv.services.omada.hostName"),
    ("haproxy", {"enable": True, "stats": {"hostName": "lb.lab.example"}}, "nerv.services.haproxy.stats.hostName"),
    ("nginx", {"enable": True, "throughCaddy": True}, "nerv.services.nginx.throughCaddy"),
    ("podman", {"enable": True, "containers": {"kuma": {"image": "docker.io/louislam/uptime-kuma:1.23.16",
                                                        "hostName": "kuma.lab.example", "webPort": 3001}}},
     "nerv.services.podman.containers.kuma.hostName"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "given", "option"), WITHOUT_CADDY, ids=[w[0] for w in WITHOUT_CADDY])
def test_a_web_ui_through_caddy_needs_caddy(nix_instantiate, name, given, option):
    failed = evaluate(nix_instantiate, services(**{name: given}))["failed"]
    assert failed == [
        f"{option} serves its web UI through Caddy: set nerv.services.caddy.enable = true, or unset {option}"
    ]
    assert evaluate(nix_instantiate, services(**{name: given, "caddy": CADDY}))["failed"] == []


# ---------------------------------------------------------------------------------------------------- DNS


def test_bind_answers_its_zone_and_forwards_for_the_lan(nix_instantiate):
    given = {"enable": True, "zone": "lab.example", "records": {"nas.lab.example": "192.168.10.4"},
             "allowRecursionFrom": ["127.0.0.0/8", "192.168.10.0/24"],
             "listenAddresses": ["192.168.10.21"]}  # fmt: skip
    out = evaluate(nix_instantiate, services(bind=given))
    zone = {
        "writeText": "lab.example.zone",
        "text": "$TTL 300\n@ IN SOA localhost. hostmaster.lab.example. ( 1 3600 600 604800 300 )\n@ IN NS localhost.\n"
        "nas.lab.example. IN A 192.168.10.4\n",
    }
    assert out["config"]["services"] == {
        "bind": {
            "enable": True,
            "listenOn": ["192.168.10.21"],
            "forwarders": ["1.1.1.1", "9.9.9.9"],
            "cacheNetworks": ["127.0.0.0/8", "192.168.10.0/24"],
            # in the store: nixpkgs' build-time named-checkconf -z loads it
            "zones": {"lab.example": {"master": True, "file": zone}},
        }
    }
    assert firewall(out) == {"allowedUDPPorts": [53], "allowedTCPPorts": [53]}
    assert out["healthChecks"] == [ACTIVE.format("bind.service"), PROBE.format("192.168.10.21", 53)]
    assert out["ports"] == ["53/tcp nerv.services.bind", "53/udp nerv.services.bind"]


def test_bind_refuses_records_outside_its_zone_or_without_one(nix_instantiate):
    given = {"enable": True, "zone": "lab.example", "records": {"nas.example.org": "192.168.10.4"}}
    assert evaluate(nix_instantiate, services(bind=given))["failed"] == [
        "nerv.services.bind.records: 'nas.example.org' is outside the zone lab.example: "
        "use a name ending in .lab.example"
    ]
    failed = evaluate(nix_instantiate, services(bind={"enable": True, "records": {"nas.lab.example": "1.2.3.4"}}))
    assert failed["failed"] == [
        "nerv.services.bind.records needs nerv.services.bind.zone: name the zone the records belong to"
    ]
    out = evaluate(nix_instantiate, services(bind={"enable": True, "openFirewall": False}))
    assert "zones" not in out["config"]["services"]["bind"] and firewall(out) == {}


def test_dnsdist_spreads_queries_over_its_servers(nix_instantiate):
    given = {"enable": True, "servers": ["192.168.10.21:53", "192.168.10.22:53"], "port": 5300}
    out = evaluate(nix_instantiate, services(dnsdist=given))
    assert out["config"]["services"] == {
        "dnsdist": {
            "enable": True,
            "listenAddress": "0.0.0.0",
            "listenPort": 5300,
            "extraConfig": 'newServer({address="192.168.10.21:53"})\nnewServer({address="192.168.10.22:53"})\n',
        }
    }
    assert firewall(out) == {"allowedUDPPorts": [5300], "allowedTCPPorts": [5300]}
    assert out["healthChecks"] == [ACTIVE.format("dnsdist.service"), PROBE.format("127.0.0.1", 5300)]
    assert evaluate(nix_instantiate, services(dnsdist={"enable": True}))["failed"] == [
        'nerv.services.dnsdist.servers is empty: give the DNS servers to forward to, e.g. [ "192.168.10.21:53" ]'
    ]


def test_the_existing_services_add_their_checks_and_ports(nix_instantiate):
    given = {"dns": {"enable": True, "engine": "adguardhome", "listenAddresses": ["192.168.10.21", "127.0.0.1"]},
             "caddy": CADDY, "nodeExporter": {"enable": True, "port": 9101}}  # fmt: skip
    out = evaluate(nix_instantiate, services(**given))
    assert out["failed"] == []
    assert out["healthChecks"] == [
        ACTIVE.format("adguardhome.service"),
        PROBE.format("192.168.10.21", 53),
        ACTIVE.format("caddy.service"),
        PROBE.format("127.0.0.1", 443),
        ACTIVE.format("prometheus-node-exporter.service"),
        PROBE.format("127.0.0.1", 9101),
    ]
    assert out["ports"] == [
        "53/tcp nerv.services.dns",
        "53/udp nerv.services.dns",
        "80/tcp nerv.services.caddy",
        "443/tcp nerv.services.caddy",
        "9101/tcp nerv.services.nodeExporter.port",
    ]


# ---------------------------------------------------------------------------------------------------- proxies


def test_haproxy_balances_each_frontend_and_keeps_its_stats_local(nix_instantiate):
    frontends = {
        "k3s-api": {"port": 7443, "servers": ["192.168.10.21:6443", "192.168.10.22:6443"]},
        "web": {"port": 8000, "servers": ["192.168.10.31:80"], "mode": "http"},
    }
    given = {"enable": True, "frontends": frontends, "stats": {"hostName": "lb.lab.example"}}
    out = evaluate(nix_instantiate, services(haproxy=given, caddy=CADDY))
    assert out["failed"] == []
    assert out["config"]["services"]["haproxy"] == {
        "enable": True,
        "config": "defaults\n  timeout connect 5s\n  timeout client 1m\n  timeout server 1m\n\n"
        "frontend stats\n  mode http\n  bind 127.0.0.1:8404\n  stats enable\n  stats uri /\n  stats refresh 10s\n"
        "\nfrontend k3s-api\n  mode tcp\n  bind :7443\n  default_backend k3s-api\n"
        "\nbackend k3s-api\n  mode tcp\n  balance roundrobin\n"
        "  server k3s-api0 192.168.10.21:6443 check\n  server k3s-api1 192.168.10.22:6443 check\n"
        "\nfrontend web\n  mode http\n  bind :8000\n  default_backend web\n"
        "\nbackend web\n  mode http\n  balance roundrobin\n  server web0 192.168.10.31:80 check\n",
    }
    assert out["proxies"] == {"lb.lab.example": "http://127.0.0.1:8404"}
    assert firewall(out) == {"allowedTCPPorts": [80, 443, 7443, 8000]}
    assert out["healthChecks"][-4:] == [
        ACTIVE.format("haproxy.service"),
        PROBE.format("127.0.0.1", 8404),
        PROBE.format("127.0.0.1", 7443),
        PROBE.format("127.0.0.1", 8000),
    ]


def test_haproxy_refuses_a_frontend_without_servers_or_with_a_bad_name(nix_instantiate):
    given = {"enable": True, "frontends": {"k3s api": {"port": 7443, "servers": []}}}
    assert evaluate(nix_instantiate, services(haproxy=given))["failed"] == [
        "nerv.services.haproxy.frontends.k3s api.servers is empty: give the servers behind it as address:port",
        "nerv.services.haproxy.frontends: 'k3s api' is not a HAProxy section name: use letters, digits, - and _",
    ]


def test_nginx_balances_each_site_and_opens_its_port(nix_instantiate):
    given = {"enable": True, "sites": {"wiki.lab.example": ["192.168.10.31:3000", "192.168.10.32:3000"]}}
    out = evaluate(nix_instantiate, services(nginx=given))
    assert out["config"]["services"]["nginx"] == {
        "enable": True,
        "recommendedProxySettings": True,
        "upstreams": {"nerv_wiki_lab_example": {"servers": {"192.168.10.31:3000": {}, "192.168.10.32:3000": {}}}},
        "virtualHosts": {
            "wiki.lab.example": {
                "listen": [{"addr": "0.0.0.0", "port": 8081}],
                "locations": {"/": {"proxyPass": "http://nerv_wiki_lab_example"}},
            }
        },
    }
    assert firewall(out) == {"allowedTCPPorts": [8081]}
    assert out["proxies"] == {}


def test_nginx_through_caddy_listens_on_loopback(nix_instantiate):
    given = {"enable": True, "throughCaddy": True, "sites": {"wiki.lab.example": ["192.168.10.31:3000"]}}
    out = evaluate(nix_instantiate, services(nginx=given, caddy=CADDY))
    vhost = out["config"]["services"]["nginx"]["virtualHosts"]["wiki.lab.example"]
    assert vhost["listen"] == [{"addr": "127.0.0.1", "port": 8081}]
    assert out["proxies"] == {"wiki.lab.example": "http://127.0.0.1:8081"}
    assert firewall(out) == {"allowedTCPPorts": [80, 443]}
    caddy = out["config"]["services"]["caddy"]["virtualHosts"]
    assert caddy == {"wiki.lab.example": {"extraConfig": "reverse_proxy http://127.0.0.1:8081\ntls internal\n"}}
    empty = evaluate(nix_instantiate, services(nginx={"enable": True, "sites": {"a.lab.example": []}}))
    assert empty["failed"] == [
        'nerv.services.nginx.sites."a.lab.example" is empty: give the servers behind it as address:port'
    ]


# ---------------------------------------------------------------------------------------------------- containers


def test_podman_runs_each_container_with_its_ports_volumes_and_updates(nix_instantiate):
    containers = {
        "kuma": {
            "image": "docker.io/louislam/uptime-kuma:1.23.16",
            "ports": ["127.0.0.1:3001:3001", "8443:443", "514:514/udp"],
            "volumes": ["/var/lib/kuma:/app/data"],
            "environment": {"TZ": "UTC"},
            "autoUpdate": True,
            "hostName": "kuma.lab.example",
            "webPort": 3001,
        },
        "pinned": {"image": "ghcr.io/example/app@sha256:0123abcd"},
    }
    out = evaluate(nix_instantiate, services(podman={"enable": True, "containers": containers}, caddy=CADDY))
    assert out["failed"] == []
    assert out["config"]["virtualisation"] == {
        "podman": {"enable": True},
        "oci-containers": {
            "backend": "podman",
            "containers": {
                "kuma": {
                    "image": "docker.io/louislam/uptime-kuma:1.23.16",
                    "ports": ["127.0.0.1:3001:3001", "8443:443", "514:514/udp"],
                    "volumes": ["/var/lib/kuma:/app/data"],
                    "environment": {"TZ": "UTC"},
                    "extraOptions": [],
                    "labels": {"io.containers.autoupdate": "registry", "PODMAN_SYSTEMD_UNIT": "podman-kuma.service"},
                },
                "pinned": {
                    "image": "ghcr.io/example/app@sha256:0123abcd",
                    "ports": [],
                    "volumes": [],
                    "environment": {},
                    "extraOptions": [],
                    "labels": {},
                },
            },
        },
    }
    assert out["config"]["systemd"] == {"timers": {"podman-auto-update": {"wantedBy": ["timers.target"]}}}
    # loopback's port stays closed; the others open with their protocol
    assert firewall(out) == {"allowedTCPPorts": [80, 443, 8443], "allowedUDPPorts": [514]}
    assert out["proxies"] == {"kuma.lab.example": "http://127.0.0.1:3001"}
    assert out["ports"][2:] == [
        "3001/tcp nerv.services.podman.containers.kuma.ports",
        "8443/tcp nerv.services.podman.containers.kuma.ports",
        "514/udp nerv.services.podman.containers.kuma.ports",
    ]
    assert out["healthChecks"][2:] == [ACTIVE.format("podman-kuma.service"), ACTIVE.format("podman-pinned.service")]


BAD_CONTAINERS = [
    ("no tag", {"image": "docker.io/library/nginx"},
     "nerv.services.podman.containers.c.image 'docker.io/library/nginx' has no tag or uses latest: pin a version, "
     "e.g. 'docker.io/library/nginx:1.2.3' (autoUpdate then follows that tag)"),
    ("latest", {"image": "nginx:latest"}, "nerv.services.podman.containers.c.image 'nginx:latest' has no tag"),
    ("registry port, no tag", {"image": "registry.lan:5000/app"},
     "nerv.services.podman.containers.c.image 'registry.lan:5000/app' has no tag"),
    ("update without registry", {"image": "louislam/uptime-kuma:1", "autoUpdate": True},
     "nerv.services.podman.containers.c.autoUpdate needs the registry in the image name: write "
     "'docker.io/louislam/uptime-kuma:1' (or the image's own registry)"),
    ("port range", {"image": "nginx:1.27", "ports": ["8000-8002:80"]},
     "nerv.services.podman.containers.c.ports: '8000-8002:80' is not [address:]hostPort:containerPort[/tcp|/udp]"),
    ("host name without port", {"image": "nginx:1.27", "hostName": "web.lab.example"},
     "nerv.services.podman.containers.c.hostName and nerv.services.podman.containers.c.webPort go together"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "container", "message"), BAD_CONTAINERS, ids=[b[0] for b in BAD_CONTAINERS])
def test_podman_refuses_a_bad_container(nix_instantiate, case, container, message):
    given = services(podman={"enable": True, "containers": {"c": container}}, caddy=CADDY)
    failed = evaluate(nix_instantiate, given)["failed"]
    assert len(failed) == 1 and failed[0].startswith(message), failed


# ---------------------------------------------------------------------------------------------------- web UIs


def test_glances_opens_its_port_or_goes_through_caddy(nix_instantiate):
    out = evaluate(nix_instantiate, services(glances={"enable": True}))
    assert out["config"]["systemd"]["services"]["glances"] == {
        "description": "Glances web server",
        "after": ["network.target"],
        "wantedBy": ["multi-user.target"],
        "serviceConfig": {
            "ExecStart": "/nix/store/glances/bin/glances --webserver --bind 0.0.0.0 --port 61208",
            "DynamicUser": True,
            "Restart": "on-failure",
            "NoNewPrivileges": True,
            "ProtectSystem": "full",
            "ProtectHome": True,
            "PrivateTmp": True,
        },
    }
    assert "services" not in out["config"], "not nixpkgs' services.glances"
    assert firewall(out) == {"allowedTCPPorts": [61208]}
    given = services(glances={"enable": True, "hostName": "glances.lab.example"}, caddy=CADDY)
    out = evaluate(nix_instantiate, given)
    exec_start = out["config"]["systemd"]["services"]["glances"]["serviceConfig"]["ExecStart"]
    assert exec_start == "/nix/store/glances/bin/glances --webserver --bind 127.0.0.1 --port 61208"
    assert firewall(out) == {"allowedTCPPorts": [80, 443]}
    assert out["proxies"] == {"glances.lab.example": "http://127.0.0.1:61208"}


def test_unifi_opens_the_device_ports_and_its_ui_goes_through_caddy(nix_instantiate):
    out = evaluate(nix_instantiate, services(unifi={"enable": True}))
    assert out["config"]["services"] == {"unifi": {"enable": True}}
    assert firewall(out) == {"allowedTCPPorts": [8080, 6789, 8443], "allowedUDPPorts": [3478, 10001]}
    out = evaluate(nix_instantiate, services(unifi={"enable": True, "hostName": "unifi.lab.example"}, caddy=CADDY))
    assert firewall(out) == {"allowedTCPPorts": [80, 443, 8080, 6789], "allowedUDPPorts": [3478, 10001]}
    assert out["proxies"] == {"unifi.lab.example": "https://127.0.0.1:8443"}
    # its own self-signed certificate, on loopback
    assert out["config"]["services"]["caddy"]["virtualHosts"]["unifi.lab.example"] == {
        "extraConfig": "reverse_proxy https://127.0.0.1:8443 {\n  transport http {\n    tls_insecure_skip_verify\n"
        "  }\n}\ntls internal\n"
    }
    assert out["healthChecks"][-2:] == [ACTIVE.format("unifi.service"), PROBE.format("127.0.0.1", 8443)]


def test_omada_runs_as_a_pinned_container_on_the_host_network(nix_instantiate):
    out = evaluate(nix_instantiate, services(omada={"enable": True, "hostName": "omada.lab.example"}, caddy=CADDY))
    assert out["failed"] == []
    assert out["config"]["virtualisation"]["oci-containers"]["containers"] == {
        "omada": {
            "image": "docker.io/mbentley/omada-controller:5.15",
            "ports": [],
            "volumes": [
                "/var/lib/omada/data:/opt/tplink/EAPController/data",
                "/var/lib/omada/logs:/opt/tplink/EAPController/logs",
            ],
            "environment": {"MANAGE_HTTP_PORT": "8088", "MANAGE_HTTPS_PORT": "8043"},
            "extraOptions": ["--network=host"],
            "labels": {},
        }
    }
    assert out["config"]["systemd"]["tmpfiles"]["rules"] == [
        "d /var/lib/omada/data 0750 root root -",
        "d /var/lib/omada/logs 0750 root root -",
    ]
    assert firewall(out) == {
        "allowedTCPPorts": [80, 443, 29811, 29812, 29813, 29814, 29815, 29816],
        "allowedUDPPorts": [19810, 27001, 29810],
    }
    assert out["proxies"] == {"omada.lab.example": "https://127.0.0.1:8043"}
    assert out["healthChecks"][-2:] == [ACTIVE.format("podman-omada.service"), PROBE.format("127.0.0.1", 8043)]
    # the container's image goes through the Podman module's checks
    failed = evaluate(nix_instantiate, services(omada={"enable": True, "image": "mbentley/omada-controller"}))
    assert failed["failed"][0].startswith("nerv.services.podman.containers.omada.image 'mbentley/omada-controller'")

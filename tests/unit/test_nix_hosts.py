"""The flake's host configurations: nix/hosts.json, its checks (nix/lib/hosts.nix) and the host modules.

nixpkgs, disko and sops-nix cannot be fetched here, so no host system is built or evaluated by the NixOS module
system. What runs, with Nix itself: the builtins-only mapping from hosts.json to per-host settings (asserted in full),
its refusals, the flake's wiring (its `outputs` with a stub `nixosSystem` that returns its arguments) and the host
modules as plain functions with stub arguments, which reads each module's own definitions but does not check option
names against nixpkgs, disko or sops-nix.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from nix_helpers import NIX_DIR, REPO, nix_eval, nix_eval_error, nix_string, run_nix

from ansible_collections.nerv.homelab.plugins.module_utils.site import formats as site_formats
from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import SITE_SCHEMA

HOSTS_JSON = NIX_DIR / "hosts.json"
NEW_NIX_FILES = [
    "lib/hosts.nix",
    "modules/host.nix",
    "modules/disko.nix",
    "modules/k3s.nix",
    "modules/longhorn.nix",
    "modules/sops.nix",
]
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
ADMIN_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINU9pb4AcSwRvvlx7xnotXk8P/jB2vMcsoOo2WrkuQWN admin1@laptop"
FIRST_SERVER = "https://10.77.0.11:6443"
# The collection's K3s 1.31 and the nixpkgs pin's default k3s (a newer minor release: never the one taken)
STUB_K3S = {"name": "k3s_1_31-stub", "version": "1.31.9+k3s1"}
STUB_K3S_DEFAULT = {"name": "k3s-stub", "version": "1.32.5+k3s1"}


def example() -> dict:
    return json.loads(HOSTS_JSON.read_text())


def read_hosts(path: Path) -> str:
    return f"import ./nix/lib/hosts.nix (builtins.fromJSON (builtins.readFile {nix_string(str(path))}))"


def hosts_of(nix_instantiate, tmp_path, data: dict) -> dict:
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(data))
    return nix_eval(nix_instantiate, read_hosts(path))


def hosts_error(nix_instantiate, tmp_path, data: dict) -> str:
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(data))
    return nix_eval_error(nix_instantiate, read_hosts(path))


# ---------------------------------------------------------------------------------------------------- files


def test_the_host_files_exist():
    for name in [*NEW_NIX_FILES, "hosts.json", "secrets/README.md"]:
        assert (NIX_DIR / name).is_file(), name


@pytest.mark.parametrize("name", NEW_NIX_FILES)
def test_the_new_nix_files_parse(nix_instantiate, name):
    proc = run_nix(nix_instantiate, "--parse", f"nix/{name}")
    assert proc.returncode == 0, f"nix/{name} does not parse:\n{proc.stderr}"


def test_the_secrets_note_says_the_token_file_is_encrypted():
    text = (NIX_DIR / "secrets" / "README.md").read_text()
    assert "k3s.sops.yaml" in text
    assert "sops-encrypted" in text and "never plaintext" in text


def test_nothing_under_nix_secrets_is_plaintext():
    for path in (NIX_DIR / "secrets").iterdir():
        if path.name != "README.md":
            assert ".sops." in path.name and "sops" in path.read_text(), f"{path} is not a sops file"


# ---------------------------------------------------------------------------------------------------- the example


def expected_host(name, address, *, server, first, vm, disk, mac=None):
    flags = [f"--node-ip={address}"]
    if server:
        flags = [
            "--cluster-cidr=10.42.0.0/16",
            "--service-cidr=10.43.0.0/16",
            "--disable=servicelb",
            "--disable=traefik",
            f"--node-ip={address}",
            f"--tls-san={address}",
        ]
    return {
        "hostname": name,
        "address": address,
        "prefix": 24,
        "gateway": "10.77.0.1",
        "nameservers": ["10.77.0.1"],
        "domain": "demo.lab.example",
        "isVm": vm,
        "disk": disk,
        "mac": mac,
        "nfs": None,
        # no home services on the example's hosts: every one off
        "services": {"dns": {"enable": False}, "caddy": {"enable": False}, "nodeExporter": {"enable": False}},
        "k3s": {
            "role": "server" if server else "agent",
            "clusterInit": first,
            "serverAddr": None if first else FIRST_SERVER,
            "extraFlags": flags,
        },
        "firewall": {
            "tcp": [6443, 10250] if server else [10250],
            "tcpRanges": [{"from": 2379, "to": 2380}] if server else [],
            "udp": [8472],
        },
    }


def test_example_hosts_evaluate_in_full(nix_instantiate):
    data = nix_eval(nix_instantiate, read_hosts(HOSTS_JSON))
    assert data == {
        "site": "demo",
        "domain": "demo.lab.example",
        "network": {"cidr": "10.77.0.0/24", "prefix": 24, "gateway": "10.77.0.1", "dns": ["10.77.0.1"]},
        "adminSshKeys": [ADMIN_KEY],
        "k3s": {
            "version": None,
            "package": {"attr": "k3s_1_31", "version": None},
            "clusterCidr": "10.42.0.0/16",
            "serviceCidr": "10.43.0.0/16",
            "disable": ["servicelb", "traefik"],
            "extraArgs": [],
            "tokenSopsFile": "secrets/k3s.sops.yaml",
            "tokenSopsKey": "token",
            "tokenSopsFormat": "yaml",
        },
        "siteCa": {"sopsFile": "secrets/site-ca.sops.yaml", "format": "yaml"},
        "hosts": {
            "cp1": expected_host("cp1", "10.77.0.11", server=True, first=True, vm=True, disk="/dev/sda"),
            "worker1": expected_host("worker1", "10.77.0.12", server=False, first=False, vm=True, disk="/dev/sda"),
            "mini1": expected_host(
                "mini1",
                "10.77.0.21",
                server=False,
                first=False,
                vm=False,
                disk="/dev/disk/by-id/nvme-DEMO_SSD_256GB_0000000021",
                mac="58:47:ca:77:00:21",
            ),
        },
        "names": ["cp1", "worker1", "mini1"],
    }


def test_the_library_exports_the_host_checks(nix_instantiate):
    expr = f"(import ./nix/lib).hosts (builtins.fromJSON (builtins.readFile {nix_string(str(HOSTS_JSON))}))"
    assert nix_eval(nix_instantiate, expr)["names"] == ["cp1", "worker1", "mini1"]


def test_the_example_admin_key_passes_the_python_site_validator():
    for key in example()["admin_ssh_keys"]:
        assert site_formats.check_ssh_public_key(key) is None


def test_the_first_control_plane_in_list_order_starts_the_cluster(nix_instantiate, tmp_path):
    data = example()
    worker, cp1 = data["hosts"][1], data["hosts"][0]
    cp2 = {**cp1, "name": "cp2", "address": "10.77.0.13"}
    cp3 = {**cp1, "name": "cp0", "address": "10.77.0.14"}
    # A worker first and a later server whose name sorts first: neither may become the cluster's first server.
    data["hosts"] = [worker, cp2, cp1, cp3]
    hosts = hosts_of(nix_instantiate, tmp_path, data)["hosts"]
    first = "https://10.77.0.13:6443"
    assert hosts["cp2"]["k3s"] == {
        "role": "server",
        "clusterInit": True,
        "serverAddr": None,
        "extraFlags": expected_host("cp2", "10.77.0.13", server=True, first=True, vm=True, disk="")["k3s"][
            "extraFlags"
        ],
    }
    for name, address in (("cp1", "10.77.0.11"), ("cp0", "10.77.0.14")):
        k3s = hosts[name]["k3s"]
        assert (k3s["role"], k3s["clusterInit"], k3s["serverAddr"]) == ("server", False, first), name
        assert k3s["extraFlags"][-2:] == [f"--node-ip={address}", f"--tls-san={address}"]
        assert hosts[name]["firewall"]["tcpRanges"] == [{"from": 2379, "to": 2380}]
    assert hosts["worker1"]["k3s"] == {
        "role": "agent",
        "clusterInit": False,
        "serverAddr": first,
        "extraFlags": ["--node-ip=10.77.0.12"],
    }


def test_extra_args_follow_each_nodes_own_flags(nix_instantiate, tmp_path):
    data = example()
    data["k3s"]["extra_args"] = ["--kubelet-arg=max-pods=200", "--node-label=site=demo"]
    data["k3s"]["disable"] = []
    hosts = hosts_of(nix_instantiate, tmp_path, data)["hosts"]
    assert hosts["cp1"]["k3s"]["extraFlags"] == [
        "--cluster-cidr=10.42.0.0/16",
        "--service-cidr=10.43.0.0/16",
        "--node-ip=10.77.0.11",
        "--tls-san=10.77.0.11",
        "--kubelet-arg=max-pods=200",
        "--node-label=site=demo",
    ]
    assert hosts["mini1"]["k3s"]["extraFlags"] == [
        "--node-ip=10.77.0.21",
        "--kubelet-arg=max-pods=200",
        "--node-label=site=demo",
    ]


def test_a_k3s_version_names_the_nixpkgs_package_of_its_minor_release(nix_instantiate, tmp_path):
    data = example()
    data["k3s"]["version"] = "v1.31.4+k3s1"
    k3s = hosts_of(nix_instantiate, tmp_path, data)["k3s"]
    assert k3s["version"] == "v1.31.4+k3s1"
    assert k3s["package"] == {"attr": "k3s_1_31", "version": "1.31.4+k3s1"}


@pytest.mark.parametrize(
    ("file", "key", "fmt", "sops_key"),
    [
        ("secrets/k3s.sops.json", "token", "json", "token"),
        ("secrets/k3s.sops.yml", "k3s.token", "yaml", "k3s/token"),
        ("k3s.sops.env", "K3S_TOKEN", "dotenv", "K3S_TOKEN"),
    ],
)
def test_the_token_file_format_and_key_path_suit_sops_nix(nix_instantiate, tmp_path, file, key, fmt, sops_key):
    data = example()
    data["k3s"]["token_sops_file"] = file
    data["k3s"]["token_sops_key"] = key
    k3s = hosts_of(nix_instantiate, tmp_path, data)["k3s"]
    assert (k3s["tokenSopsFile"], k3s["tokenSopsFormat"], k3s["tokenSopsKey"]) == (file, fmt, sops_key)


# ---------------------------------------------------------------------------------------------------- bad data


def host(data, name):
    return next(h for h in data["hosts"] if h["name"] == name)


def mutate(change):
    def apply():
        data = example()
        change(data)
        return data

    return apply


BAD = {
    "unknown top-level key": (
        mutate(lambda d: d.update(hosts_extra=[])),
        ["unknown key 'hosts_extra' (known: site, domain, network, admin_ssh_keys, k3s, site_ca_sops_file, hosts)"],
    ),
    "missing keys": (
        mutate(lambda d: (d.pop("k3s"), d["network"].pop("gateway"), host(d, "cp1").pop("disk"))),
        ["k3s is missing", "network.gateway is missing", "hosts[0].disk is missing"],
    ),
    "unknown host key": (
        mutate(lambda d: host(d, "cp1").update(ip="10.77.0.11/24")),
        ["unknown key 'hosts[0].ip' (known: name, role, kind, address, mac, disk, nfs, services)"],
    ),
    "bare-metal disk by kernel name": (
        mutate(lambda d: host(d, "mini1").update(disk="/dev/sda")),
        ["hosts[2].disk '/dev/sda' must be a /dev/disk/by-id/... path on a baremetal host"],
    ),
    "bare metal without a MAC": (
        mutate(lambda d: host(d, "mini1").update(mac=None)),
        ["hosts[2].mac null must be set on a baremetal host"],
    ),
    "duplicate names and addresses": (
        mutate(lambda d: host(d, "worker1").update(name="cp1", address="10.77.0.21")),
        ["name 'cp1' is used by hosts[0], hosts[1]", "address '10.77.0.21' is used by hosts[1], hosts[2]"],
    ),
    "duplicate MACs in another case": (
        mutate(lambda d: host(d, "cp1").update(mac="58:47:CA:77:00:21")),
        ["mac '58:47:ca:77:00:21' is used by hosts[0], hosts[2]"],
    ),
    "a host called installer": (
        mutate(lambda d: host(d, "worker1").update(name="installer")),
        ["hosts[1].name 'installer' is reserved"],
    ),
    "a host called base": (
        mutate(lambda d: host(d, "mini1").update(name="base")),
        ["hosts[2].name 'base' is reserved"],
    ),
    "no control-plane": (
        mutate(lambda d: host(d, "cp1").update(role="worker")),
        ["no host has role control-plane"],
    ),
    "names, roles and kinds": (
        mutate(lambda d: host(d, "cp1").update(name="CP_1", role="master", kind="lxc")),
        [
            "hosts[0].name 'CP_1' is not a DNS label",
            "hosts[0].role 'master' must be control-plane or worker",
            "hosts[0].kind 'lxc' must be vm or baremetal",
            "no host has role control-plane",
        ],
    ),
    "addresses outside the LAN or on the gateway": (
        mutate(lambda d: (host(d, "cp1").update(address="10.78.0.11"), host(d, "mini1").update(address="10.77.0.1"))),
        ["hosts[0].address '10.78.0.11' is outside network.cidr", "hosts[2].address '10.77.0.1' is the gateway's"],
    ),
    "a bad admin key": (
        mutate(lambda d: d.update(admin_ssh_keys=["ssh-rsa " + ADMIN_KEY.split()[1]])),
        ["admin_ssh_keys[0] has a key body that is not a ssh-rsa key"],
    ),
    "no admin key": (
        mutate(lambda d: d.update(admin_ssh_keys=[])),
        ["admin_ssh_keys is empty"],
    ),
    "a bad network": (
        mutate(lambda d: d["network"].update(cidr="10.77.0.1/24", dns=["10.77.0"])),
        ["network.cidr '10.77.0.1/24' is not an IPv4 network", "network.dns[0] '10.77.0' is not an IPv4 address"],
    ),
    "a prefix that is not the network's": (
        mutate(lambda d: d["network"].update(prefix=16)),
        ["network.prefix 16 must be the prefix length of network.cidr"],
    ),
    "cluster networks on the LAN": (
        mutate(lambda d: d["k3s"].update(cluster_cidr="10.77.0.0/16", service_cidr="10.77.0.128/25")),
        [
            "k3s.cluster_cidr and k3s.service_cidr overlap",
            "k3s.cluster_cidr overlaps network.cidr",
            "k3s.service_cidr overlaps network.cidr",
        ],
    ),
    "k3s settings": (
        mutate(
            lambda d: d["k3s"].update(
                version="1.31.4",
                disable=["coredns"],
                extra_args=["--node-label foo=bar", "--x=$HOME"],
                token_sops_file="../inventory/demo/secrets/k3s.sops.yaml",
                token_sops_key="",
            )
        ),
        [
            "k3s.version '1.31.4' is not a K3s release",
            "k3s.disable[0] 'coredns' is not one of servicelb, traefik, local-storage, metrics-server",
            "k3s.extra_args[0] '--node-label foo=bar' must be one argument",
            "k3s.extra_args[1] '--x=$HOME' must be one argument",
            "k3s.token_sops_file '../inventory/demo/secrets/k3s.sops.yaml' must be a path relative to nix/",
            "k3s.token_sops_key '' must be a key path",
        ],
    ),
    "a site CA outside the flake": (
        mutate(lambda d: d.update(site_ca_sops_file="../inventory/demo/secrets/site-ca.sops.yaml")),
        ["site_ca_sops_file '../inventory/demo/secrets/site-ca.sops.yaml' must be a path relative to nix/"],
    ),
    "a plaintext site CA": (
        mutate(lambda d: d.update(site_ca_sops_file="secrets/site-ca.pem")),
        ["site_ca_sops_file 'secrets/site-ca.pem' must be a path relative to nix/"],
    ),
    "a plaintext token file": (
        mutate(lambda d: d["k3s"].update(token_sops_file="secrets/k3s.yaml")),
        ["k3s.token_sops_file 'secrets/k3s.yaml' must be a path relative to nix/"],
    ),
    "everything at once": (
        mutate(
            lambda d: (
                host(d, "cp1").update(role="worker", name="installer"),
                host(d, "mini1").update(disk="/dev/nvme0n1"),
                host(d, "worker1").update(name="mini1"),
            )
        ),
        [
            "hosts[0].name 'installer' is reserved",
            "hosts[2].disk '/dev/nvme0n1' must be a /dev/disk/by-id/... path",
            "name 'mini1' is used by hosts[1], hosts[2]",
            "no host has role control-plane",
        ],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_host_data_fails_with_one_message_naming_each_problem(nix_instantiate, tmp_path, case):
    make, messages = BAD[case]
    err = hosts_error(nix_instantiate, tmp_path, make())
    assert err.count("hosts.json: ") == 1, err
    problems = err.split("hosts.json: ", 1)[1]
    for message in messages:
        assert message in problems, f"{message!r} not in {problems!r}"


def test_not_an_object_is_refused(nix_instantiate, tmp_path):
    path = tmp_path / "hosts.json"
    path.write_text("[]")
    assert "hosts.json: the host data must be a JSON object" in nix_eval_error(nix_instantiate, read_hosts(path))


@pytest.mark.parametrize("component", SITE_SCHEMA["properties"]["k3s"]["properties"]["disable"]["items"]["enum"])
def test_every_component_the_site_schema_disables_is_accepted(nix_instantiate, tmp_path, component):
    data = example()
    data["k3s"]["disable"] = [component]
    assert hosts_of(nix_instantiate, tmp_path, data)["hosts"]["cp1"]["k3s"]["extraFlags"][2] == f"--disable={component}"


@pytest.mark.parametrize("version", ["v1.31.4+k3s1", "v1.32.10+k3s12", "1.31.4+k3s1", "v1.31+k3s1", "v1.31.4"])
def test_nix_and_the_site_schema_agree_on_k3s_versions(nix_instantiate, tmp_path, version):
    data = example()
    data["k3s"]["version"] = version
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(data))
    proc = run_nix(nix_instantiate, "--eval", "--strict", "--json", "-E", read_hosts(path))
    pattern = SITE_SCHEMA["properties"]["k3s"]["properties"]["version"]["pattern"]
    assert (proc.returncode == 0) is bool(re.search(pattern, version)), proc.stderr


# ---------------------------------------------------------------------------------------------------- modules


def module_args(hosts_expr: str, pkgs: str) -> str:
    """The head of a `let` binding `site`, `layout` and `args host` (the stub arguments every host module takes)."""
    return f"""
    let
      nerv = import ./nix/lib;
      site = {hosts_expr};
      layout = nerv.partitions;
      args = host: {{
        inherit site layout host;
        modulesPath = "/stub/nixos/modules";
        config.sops.secrets = {{
          k3s-token.path = "/run/secrets/k3s-token";
          "site-ca.crt".path = "/run/secrets/site-ca.crt";
          "site-ca.key".path = "/run/secrets/site-ca.key";
        }};
        pkgs = {pkgs};
      }};
    """


def stub_pkgs(**packages: dict) -> str:
    return (
        "{ "
        + " ".join(f"{name} = builtins.fromJSON {nix_string(json.dumps(p))};" for name, p in packages.items())
        + " }"
    )


@pytest.fixture(scope="module")
def modules(nix_instantiate):
    expr = (
        module_args(
            read_hosts(HOSTS_JSON),
            stub_pkgs(k3s=STUB_K3S_DEFAULT, k3s_1_31=STUB_K3S, **{"nfs-utils": {"name": "nfs-utils"}}),
        )
        + """
      evaluate = host:
        let
          a = args host;
          h = import ./nix/modules/host.nix a;
          s = import ./nix/modules/sops.nix a;
          secret = s.sops.secrets.k3s-token;
        in {
          host = h // { imports = map (i: if builtins.isAttrs i then i else toString i) h.imports; };
          k3s = import ./nix/modules/k3s.nix a;
          longhorn = import ./nix/modules/longhorn.nix a;
          # toString: the file need not exist, and --json would copy a path into the store.
          sops = s.sops // { secrets.k3s-token = secret // { sopsFile = toString secret.sopsFile; }; };
          disko = import ./nix/modules/disko.nix a;
        };
    in {
      hosts = builtins.mapAttrs (_: evaluate) site.hosts;
      layout = layout;
      script = nerv.installScript { systemToplevel = "/nix/store/x"; bootDisk = "/dev/sda"; };
    }
    """
    )
    return nix_eval(nix_instantiate, expr)


def test_disko_partitions_are_the_layouts_in_order(modules):
    layout = modules["layout"]
    for name in ("cp1", "mini1"):
        disk = modules["hosts"][name]["disko"]["disko"]["devices"]["disk"]
        assert list(disk) == ["main"]
        assert disk["main"]["type"] == "disk"
        table = disk["main"]["content"]
        assert table["type"] == "gpt"
        parts = sorted(table["partitions"].items(), key=lambda item: item[1]["priority"])
        assert [(key, p["label"], p["size"], p["type"], p["priority"]) for key, p in parts] == [
            (q["name"], q["name"], q["size"] or "100%", q["typecode"], q["number"]) for q in layout["partitions"]
        ]


def test_disko_uses_the_hosts_disk(modules, nix_instantiate):
    data = nix_eval(nix_instantiate, read_hosts(HOSTS_JSON))["hosts"]
    for name, settings in data.items():
        assert modules["hosts"][name]["disko"]["disko"]["devices"]["disk"]["main"]["device"] == settings["disk"]


def test_disko_file_systems_and_lvm_match_the_template(modules):
    layout = modules["layout"]
    devices = modules["hosts"]["mini1"]["disko"]["disko"]["devices"]
    parts = devices["disk"]["main"]["content"]["partitions"]
    bios, esp, pv = layout["partitions"]
    assert "content" not in parts[bios["name"]]
    assert parts[esp["name"]]["content"] == {
        "type": "filesystem",
        "format": esp["format"],
        "mountpoint": esp["mountpoint"],
        "mountOptions": esp["options"],
        "extraArgs": ["-F", "32", "-n", esp["label"]],
    }
    assert parts[pv["name"]]["content"] == {"type": "lvm_pv", "vg": layout["lvm"]["vg"]}
    root = layout["lvm"]["lvs"][0]
    assert devices["lvm_vg"] == {
        layout["lvm"]["vg"]: {
            "type": "lvm_vg",
            "lvs": {
                root["name"]: {
                    "size": root["size"],
                    "content": {
                        "type": "filesystem",
                        "format": root["format"],
                        "mountpoint": root["mountpoint"],
                        "extraArgs": ["-L", root["label"]],
                    },
                }
            },
        }
    }
    # The installer formats the template's disk with the same arguments.
    assert f"mkfs.fat -F 32 -n '{esp['label']}'" in modules["script"]
    assert f"mkfs.{root['format']} -F -L '{root['label']}'" in modules["script"]
    assert f"lvcreate -y -l '{root['size']}' -n '{root['name']}' '{layout['lvm']['vg']}'" in modules["script"]


def test_host_module_imports_vm_support_only_for_vms(modules):
    own = ["disko.nix", "k3s.nix", "longhorn.nix", "sops.nix"]
    for name in ("cp1", "worker1"):
        imports = modules["hosts"][name]["host"]["imports"]
        assert [Path(i).name for i in imports[:4]] == own
        assert imports[4] == {}, "the NFS module of a host without a mount defines nothing"
        assert imports[5] == str(NIX_DIR / "modules/services"), "the home services' options, on every host"
        assert imports[6:8] == ["/stub/nixos/modules/profiles/qemu-guest.nix", str(NIX_DIR / "modules/growroot.nix")]
        assert len(imports) == 8
    mini1 = modules["hosts"]["mini1"]["host"]["imports"]
    assert [Path(i).name for i in mini1[:4]] == own and mini1[4:] == [{}, str(NIX_DIR / "modules/services")]
    for name in modules["hosts"]:
        assert not any(str(i).endswith("/base.nix") for i in modules["hosts"][name]["host"]["imports"])


def test_host_module_sets_name_and_static_network(modules):
    cp1 = modules["hosts"]["cp1"]["host"]
    mini1 = modules["hosts"]["mini1"]["host"]
    assert cp1["networking"] == {
        "hostName": "cp1",
        "domain": "demo.lab.example",
        "useNetworkd": True,
        "useDHCP": False,
        "nameservers": ["10.77.0.1"],
    }
    lan = {
        "address": ["10.77.0.11/24"],
        "gateway": ["10.77.0.1"],
        "dns": ["10.77.0.1"],
        "domains": ["demo.lab.example"],
        "networkConfig": {"DHCP": "no"},
        "linkConfig": {"RequiredForOnline": "routable"},
    }
    assert cp1["systemd"]["network"]["networks"] == {"10-lan": {"matchConfig": {"Name": "en*"}, **lan}}
    mini_lan = mini1["systemd"]["network"]["networks"]["10-lan"]
    assert mini_lan["matchConfig"] == {"MACAddress": "58:47:ca:77:00:21"}
    assert mini_lan["address"] == ["10.77.0.21/24"]
    assert mini1["networking"]["hostName"] == "mini1"


def test_host_module_sshd_takes_keys_only_with_the_hosts_own_key(modules):
    for name, evaluated in modules["hosts"].items():
        host = evaluated["host"]
        assert host["services"]["openssh"] == {
            "enable": True,
            "hostKeys": [{"path": HOST_KEY, "type": "ed25519"}],
            "settings": {
                "PasswordAuthentication": False,
                "KbdInteractiveAuthentication": False,
                "PermitRootLogin": "prohibit-password",
            },
        }, name
        assert host["users"]["users"]["root"]["openssh"]["authorizedKeys"]["keys"] == [ADMIN_KEY]
        assert host["system"]["stateVersion"] == "25.05"


def test_host_module_boot_and_guest_agent_follow_the_kind(modules):
    for name, vm in (("cp1", True), ("worker1", True), ("mini1", False)):
        host = modules["hosts"][name]["host"]
        assert host["services"]["qemuGuest"] == {"enable": vm}, name
        assert host["hardware"]["enableRedistributableFirmware"] is (not vm)
        assert host["boot"]["kernelParams"] == (["console=tty0", "console=ttyS0,115200"] if vm else [])
        # disko names GRUB's disk (EF02): a device here too would list the disk twice.
        assert host["boot"]["loader"]["grub"] == {"enable": True, "efiSupport": True, "efiInstallAsRemovable": True}
        assert host["boot"]["loader"]["efi"] == {"canTouchEfiVariables": False, "efiSysMountPoint": "/boot"}
        assert "dm-snapshot" in host["boot"]["initrd"]["kernelModules"]
        assert {"nvme", "ahci", "sd_mod"} <= set(host["boot"]["initrd"]["availableKernelModules"])


def test_k3s_module_first_server_inits_and_the_others_join(modules):
    k3s = {name: evaluated["k3s"]["services"]["k3s"] for name, evaluated in modules["hosts"].items()}
    assert k3s["cp1"] == {
        "enable": True,
        "package": STUB_K3S,
        "role": "server",
        "clusterInit": True,
        "tokenFile": "/run/secrets/k3s-token",
        "extraFlags": expected_host("cp1", "10.77.0.11", server=True, first=True, vm=True, disk="")["k3s"][
            "extraFlags"
        ],
    }
    for name in ("worker1", "mini1"):
        assert k3s[name]["role"] == "agent"
        assert k3s[name]["clusterInit"] is False
        assert k3s[name]["serverAddr"] == FIRST_SERVER
        assert k3s[name]["tokenFile"] == "/run/secrets/k3s-token"
    assert modules["hosts"]["cp1"]["k3s"]["assertions"] == []


def test_k3s_module_opens_the_ports_of_the_role(modules):
    server = modules["hosts"]["cp1"]["k3s"]["networking"]["firewall"]
    agent = modules["hosts"]["mini1"]["k3s"]["networking"]["firewall"]
    assert server == {
        "enable": True,
        "allowedTCPPorts": [6443, 10250],
        "allowedTCPPortRanges": [{"from": 2379, "to": 2380}],
        "allowedUDPPorts": [8472],
    }
    assert agent == {"enable": True, "allowedTCPPorts": [10250], "allowedTCPPortRanges": [], "allowedUDPPorts": [8472]}


def test_longhorn_module_gives_every_host_iscsi_nfs_and_the_fhs_tool_path(modules):
    initiators = set()
    for name, evaluated in modules["hosts"].items():
        longhorn = evaluated["longhorn"]
        assert longhorn["services"]["openiscsi"]["enable"] is True
        initiators.add(longhorn["services"]["openiscsi"]["name"])
        assert longhorn["services"]["openiscsi"]["name"].endswith(f":{name}")
        assert longhorn["environment"]["systemPackages"] == [{"name": "nfs-utils"}]
        assert longhorn["systemd"]["tmpfiles"]["rules"] == ["L+ /usr/local/bin - - - - /run/current-system/sw/bin"]
    assert len(initiators) == len(modules["hosts"]), "each host needs an initiator name of its own"


def test_sops_module_reads_the_token_with_the_host_key(modules):
    for name, evaluated in modules["hosts"].items():
        sops = evaluated["sops"]
        assert sops == {
            "age": {"sshKeyPaths": [HOST_KEY]},
            "gnupg": {"sshKeyPaths": []},
            "secrets": {
                "k3s-token": {
                    "sopsFile": str(NIX_DIR / "secrets" / "k3s.sops.yaml"),
                    "format": "yaml",
                    "key": "token",
                }
            },
        }, name
        assert sops["age"]["sshKeyPaths"] == [k["path"] for k in evaluated["host"]["services"]["openssh"]["hostKeys"]]


def test_a_caddy_host_gets_the_site_ca_owned_by_caddy_and_issues_from_it(nix_instantiate, tmp_path):
    """sops.nix declares the site CA for a host running Caddy only; host.nix gives their paths to Caddy's ca."""
    data = example()
    host(data, "worker1")["services"]["caddy"] = {"proxies": {"nas.demo.lab.example": "http://10.77.0.4:5000"}}
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(data))
    expr = (
        module_args(read_hosts(path), stub_pkgs())
        + """
      evaluate = name: let
        a = args site.hosts.${name};
        secrets = (import ./nix/modules/sops.nix a).sops.secrets;
      in {
        secrets = builtins.mapAttrs (_: s: s // { sopsFile = toString s.sopsFile; }) secrets;
        caddy = (import ./nix/modules/host.nix a).nerv.services.caddy;
      };
    in { worker1 = evaluate "worker1"; cp1 = evaluate "cp1"; }
    """
    )
    out = nix_eval(nix_instantiate, expr)
    ca = {"sopsFile": str(NIX_DIR / "secrets" / "site-ca.sops.yaml"), "format": "yaml", "owner": "caddy",
          "group": "caddy", "mode": "0400", "restartUnits": ["caddy.service"]}  # fmt: skip
    secrets = out["worker1"]["secrets"]
    assert sorted(secrets) == ["k3s-token", "site-ca.crt", "site-ca.key"]
    assert secrets["site-ca.crt"] == {**ca, "key": "tls.crt"} and secrets["site-ca.key"] == {**ca, "key": "tls.key"}
    assert out["worker1"]["caddy"] == {
        "enable": True,
        "proxies": {"nas.demo.lab.example": "http://10.77.0.4:5000"},
        "ca": {"certFile": "/run/secrets/site-ca.crt", "keyFile": "/run/secrets/site-ca.key"},
    }
    assert sorted(out["cp1"]["secrets"]) == ["k3s-token"], "a host without Caddy gets no CA"
    assert out["cp1"]["caddy"] == {"enable": False}


def pinned(tmp_path, pkgs: str) -> str:
    """cp1's K3s module for a site that pins K3s v1.31.4+k3s1, with `pkgs` as the nixpkgs stub."""
    data = example()
    data["k3s"]["version"] = "v1.31.4+k3s1"
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(data))
    return module_args(read_hosts(path), pkgs) + "k3s = import ./nix/modules/k3s.nix (args site.hosts.cp1); in k3s"


def test_a_pinned_k3s_release_comes_from_its_nixpkgs_package(nix_instantiate, tmp_path):
    package = {"name": "k3s_1_31", "version": "1.31.4+k3s1"}
    expr = pinned(tmp_path, stub_pkgs(k3s=STUB_K3S_DEFAULT, k3s_1_31=package))
    k3s = nix_eval(
        nix_instantiate, f"let m = {expr}; in {{ inherit (m) assertions; package = m.services.k3s.package; }}"
    )
    assert k3s["package"] == package
    assert [a["assertion"] for a in k3s["assertions"]] == [True]


def test_a_pinned_k3s_release_the_nixpkgs_pin_lacks_is_refused(nix_instantiate, tmp_path):
    other_patch = {"name": "k3s_1_31", "version": "1.31.14+k3s1"}
    expr = pinned(tmp_path, stub_pkgs(k3s=STUB_K3S_DEFAULT, k3s_1_31=other_patch))
    (check,) = nix_eval(nix_instantiate, f"({expr}).assertions")
    assert check["assertion"] is False
    assert "v1.31.4+k3s1" in check["message"] and "1.31.14+k3s1" in check["message"]
    expr = pinned(tmp_path, stub_pkgs(k3s=STUB_K3S_DEFAULT))
    err = nix_eval_error(nix_instantiate, f"({expr}).services.k3s.package")
    assert "this nixpkgs has no k3s_1_31" in err


def test_an_unpinned_k3s_is_1_31_and_a_nixpkgs_without_it_is_refused(nix_instantiate):
    args = module_args(read_hosts(HOSTS_JSON), stub_pkgs(k3s=STUB_K3S_DEFAULT))
    err = nix_eval_error(
        nix_instantiate, args + "in (import ./nix/modules/k3s.nix (args site.hosts.cp1)).services.k3s.package"
    )
    assert "this nixpkgs has no k3s_1_31 (K3s 1.31, the collection's default)" in err and "k3s.version" in err


def test_host_modules_only_name_the_host_key_path():
    """test_nix_files.py lets these two files mention host keys: all they may do is name the key's path."""
    for name in ("modules/host.nix", "modules/sops.nix"):
        text = (NIX_DIR / name).read_text()
        assert text.count("ssh_host_") == text.count(HOST_KEY) >= 1, name
        for forbidden in ("ssh-keygen", "PRIVATE KEY", "readFile", "extraFiles"):
            assert forbidden not in text, (name, forbidden)


# ---------------------------------------------------------------------------------------------------- flake


STUB_INPUTS = (
    "inherit self; nixpkgs = { lib.nixosSystem = args: args; };"
    ' disko.nixosModules.disko = "disko-module"; sops-nix.nixosModules.sops = "sops-module";'
)


def test_flake_makes_one_configuration_per_host(nix_instantiate):
    expr = f"""
    let
      flake = import ./nix/flake.nix;
      self = flake.outputs {{ {STUB_INPUTS} }};
      hosts = import ./nix/lib/hosts.nix (builtins.fromJSON (builtins.readFile ./nix/hosts.json));
      describe = c: {{
        files = map baseNameOf (builtins.filter builtins.isPath c.modules);
        other = builtins.filter (m: !(builtins.isPath m)) c.modules;
        special = builtins.attrNames c.specialArgs;
        hostIsItsOwn = c.specialArgs.host == hosts.hosts.${{c.specialArgs.host.hostname}};
        siteIsChecked = c.specialArgs.site == hosts;
        layoutIsShared = c.specialArgs.layout == import ./nix/lib/partitions.nix;
      }};
    in {{
      configurations = builtins.attrNames self.nixosConfigurations;
      hosts = builtins.mapAttrs (name: _: describe self.nixosConfigurations.${{name}}) hosts.hosts;
      names = builtins.mapAttrs (name: _: self.nixosConfigurations.${{name}}.specialArgs.host.hostname) hosts.hosts;
      hostModule = baseNameOf self.nixosModules.host;
      libHosts = builtins.isFunction self.lib.hosts;
      packages = builtins.attrNames self.packages.x86_64-linux;
    }}
    """
    out = nix_eval(nix_instantiate, expr)
    assert sorted(out["configurations"]) == sorted(["base", "installer", "cp1", "worker1", "mini1"])
    assert out["names"] == {"cp1": "cp1", "worker1": "worker1", "mini1": "mini1"}
    for name, described in out["hosts"].items():
        assert described == {
            "files": ["host.nix"],
            "other": [{"nixpkgs": {"hostPlatform": "x86_64-linux"}}, "disko-module", "sops-module"],
            "special": ["host", "layout", "site"],
            "hostIsItsOwn": True,
            "siteIsChecked": True,
            "layoutIsShared": True,
        }, name
    assert out["hostModule"] == "host.nix"
    assert out["libHosts"] is True
    assert set(out["packages"]) == {"iso", "base", "default"}


def test_flake_text_wires_the_hosts_and_follows_nixpkgs():
    text = (NIX_DIR / "flake.nix").read_text()
    for needle in (
        'inputs.disko.url = "github:nix-community/disko";',
        'inputs.disko.inputs.nixpkgs.follows = "nixpkgs";',
        'inputs.sops-nix.url = "github:Mic92/sops-nix";',
        'inputs.sops-nix.inputs.nixpkgs.follows = "nixpkgs";',
        "builtins.fromJSON (builtins.readFile ./hosts.json)",
        "nixosConfigurations",
        ") hostsData.hosts;",
        "disko.nixosModules.disko",
        "sops-nix.nixosModules.sops",
        "./modules/host.nix",
    ):
        assert needle in text, needle


def test_bad_hosts_json_stops_the_host_configurations(nix_instantiate, tmp_path):
    flake = tmp_path / "nix"
    shutil.copytree(NIX_DIR, flake, symlinks=True, ignore=shutil.ignore_patterns("result*"))
    data = example()
    host(data, "mini1")["disk"] = "/dev/sda"
    (flake / "hosts.json").write_text(json.dumps(data))
    expr = f"""
    let self = (import {nix_string(str(flake / "flake.nix"))}).outputs {{ {STUB_INPUTS} }};
    in self.nixosConfigurations.cp1.specialArgs.host
    """
    assert "hosts.json: hosts[2].disk '/dev/sda'" in nix_eval_error(nix_instantiate, expr)


# ---------------------------------------------------------------------------------------------------- docs


def test_docs_describe_the_host_configurations():
    text = (REPO / "docs" / "nix.md").read_text()
    for needle in (
        "## Host configurations: `nix/hosts.json`",
        "clusterInit",
        "serverAddr",
        "tokenFile",
        'sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ]',
        "sops.gnupg.sshKeyPaths = [ ]",
        "tests/unit/test_nix_hosts.py",
        "not built",
        "`nixosConfigurations.<host>`",
    ):
        assert needle in text, needle
    assert "input: `nixpkgs` at `github:NixOS/nixpkgs/nixos-25.05`, nothing else" not in text

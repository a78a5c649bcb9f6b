"""playbooks/upgrade.yml on a two-host site: each host is a real sshd in a network namespace running its "old"
system (/run/current-system), the flake is input-less (its systems are plain derivations the real `nix eval` can
evaluate: nixpkgs is not reachable), nixos-rebuild is the recording fake that switches by relinking over SSH, and the
cluster is the Kubernetes API emulator, reached from the controller's namespace. A thread plays the kubelets: a node
is Ready unless the test has broken the host's newest system, and Ready again once it was rolled back.

Checked: one host at a time (drain, switch with the watchdog armed and the health check run, Ready, uncordon; then
the next); a second run leaves everything alone; a host that does not come back Ready is switched back, waited for,
uncordoned, and the run stops before the next; a host that fails its health check is switched back by the deploy
module itself; a host whose drain fails is not switched back (it was never switched), only uncordoned, and the
message says so. The hosts' systemctl and systemd-run are the recording fakes of fixtures/fake_host_tools.py.

Refused before the flake is assembled and before any SSH (a recording fake ssh on the controller, no hosts at all):
a run without -e confirm=<site>, a site without a kubeconfig, a kubeconfig that is broken or whose API does not
answer, a host to upgrade that is not a Ready node; and a host that does not answer over SSH is not drained.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from .._ansible import AnsibleCli
from .._netns import Lan, Machine, inside, keygen
from .._skips import require_commands, require_netns
from ..nixos.test_flake_deploy import host_tools, stop_watchdogs

pytest.importorskip("kubernetes", reason="the kubernetes client (requirements.txt)")

REPO = Path(__file__).resolve().parents[3]
FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_nixos_rebuild.py"
SITE = "minis"
# ssh on a controller that reaches no host: it records its arguments and fails as an unreachable host does
FAKE_SSH = """#!/bin/sh
echo "$*" >> "{record}"
echo "ssh: connect to host $1 port 22: Connection refused" >&2
exit 255
"""
OLD_SYSTEM = "/nix/store/" + "0" * 32 + "-nixos-system-old"
FLAKE = """{
  outputs = { self }: {
    nixosConfigurations = builtins.listToAttrs (map (host: {
      name = host;
      value.config.system.build.toplevel = derivation {
        name = "nixos-system-${host}-@VERSION@";
        system = "x86_64-linux";
        builder = "/bin/sh";
        args = [ "-c" "echo @VERSION@ > $out" ];
      };
    }) [ "mini1" "mini2" ]);
  };
}
"""


class Kubelets(threading.Thread):
    """Nodes mini1 and mini2 with a pod each; a host listed in broken is NotReady after its next switch, until it
    is rolled back."""

    def __init__(self, api, record: Path, addresses: dict):
        super().__init__(daemon=True)
        self.api, self.record, self.addresses = api, record, addresses
        self.done, self.broken = threading.Event(), set()
        self.seen = 0

    def kind(self, name):
        from kube_emulator import KINDS

        return next(k for k in KINDS if k.kind == name)

    def start_cluster(self):
        for host in self.addresses.values():
            self.api.store.create(self.kind("Node"), None, {"metadata": {"name": host}, "spec": {}})
            self.ready(host, True)
            pod = {
                "metadata": {"name": f"web-{host}"},
                "spec": {"nodeName": host, "containers": []},
                "status": {"phase": "Running"},
            }
            self.api.store.create(self.kind("Pod"), "apps", pod)

    def ready(self, host, ready):
        set_ready(self.api, host, ready)

    def run(self):
        while not self.done.wait(0.2):
            lines = self.record.read_text().splitlines() if self.record.exists() else []
            for line in lines[self.seen :]:
                argv = json.loads(line)["argv"]
                host = self.addresses[argv[argv.index("--target-host") + 1].split("@", 1)[1]]
                if host in self.broken:
                    self.ready(host, "--rollback" in argv)
            self.seen = len(lines)


def site(tmp_path):
    """The first two hosts of the bare-metal example, the input-less flake and the fake nixos-rebuild."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text((REPO / "inventory" / "example-baremetal" / "hosts.yml").read_text())
    data = yaml.safe_load((REPO / "inventory" / "example-baremetal" / "site.yml").read_text())
    data["hosts"] = data["hosts"][:2]
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    flake = tmp_path / "flake"
    flake.mkdir()
    (flake / "flake.nix").write_text(FLAKE.replace("@VERSION@", "2"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nixos-rebuild").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    (bin_dir / "nixos-rebuild").chmod(0o755)
    return data, inventory, flake


def set_ready(api, host, ready):
    condition = {"type": "Ready", "status": "True" if ready else "False",
                 "reason": "KubeletReady" if ready else "KubeletNotReady", "message": "kubelet"}  # fmt: skip
    api.store.set_status("Node", None, host, {"conditions": [condition]})


@pytest.fixture
def rig(tmp_path):
    require_netns()
    require_commands("sshd", "ssh", "ssh-keygen", "nix")
    data, inventory, flake = site(tmp_path)
    client = keygen(tmp_path / "id_ed25519")
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(Path(f"{client}.pub").read_text())

    lan = Lan(tmp_path, "192.168.20.1", 24)
    api = kubelets = None
    try:
        pinned = []
        addresses = {}
        for host in data["hosts"]:
            address = host["ip"].split("/")[0]
            key = keygen(tmp_path / f"{host['name']}_host_key")
            pinned.append(f"{address} {' '.join(Path(f'{key}.pub').read_text().split()[:2])}")
            machine = Machine(host_key=key, authorized_keys=authorized, hostname=host["name"],
                              run_links={"current-system": OLD_SYSTEM},
                              local_bin=host_tools(tmp_path, host["name"]))  # fmt: skip
            lan.add(host["mac"], address, machine=machine)
            addresses[address] = host["name"]
        (inventory / "known_hosts").write_text("\n".join(pinned) + "\n")
        from kube_emulator import KubeEmulator

        with inside(lan.ctl):  # the controller's namespace reaches the API on its loopback
            api = KubeEmulator("127.0.0.1", 0)
        api.start()
        (inventory / ".state").mkdir(mode=0o700)
        api.kubeconfig(inventory / ".state" / "kubeconfig")
        kubelets = Kubelets(api, tmp_path / "record.jsonl", addresses)
        kubelets.start_cluster()
        kubelets.start()
        yield lan, api, kubelets, inventory, flake
    finally:
        if kubelets:
            kubelets.done.set()
        if api:
            api.stop()
        stop_watchdogs(tmp_path, ("mini1", "mini2"))
        lan.close()


@pytest.fixture
def controller(tmp_path):
    """The site without its hosts: ssh is the recording fake, and nothing answers on the hosts' addresses."""
    _data, inventory, flake = site(tmp_path)
    (inventory / "known_hosts").write_text("")
    (tmp_path / "bin" / "ssh").write_text(FAKE_SSH.format(record=tmp_path / "ssh.log"))
    (tmp_path / "bin" / "ssh").chmod(0o755)
    return inventory, flake


def upgrade(rig, tmp_path, check=False, confirm=SITE, **extra_vars):
    lan, _api, _kubelets, inventory, flake = rig
    extra = {"upgrade_assemble_flake": False, "upgrade_flake_dir": str(flake), **extra_vars}
    return run_upgrade(tmp_path, inventory, lan.command(), check, confirm, extra)


def run_upgrade(tmp_path, inventory, wrapper, check, confirm, extra_vars):
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "FAKE_NIXOS_REBUILD_RECORD": str(tmp_path / "record.jsonl"),
    }
    extra = {
        "upgrade_identity_file": str(tmp_path / "id_ed25519"),
        "upgrade_interval": 0.3,
        "upgrade_ready_timeout": 8,
        "upgrade_drain_timeout": 20,
        "upgrade_health_timeout": 4,
        "upgrade_confirm_timeout": 20,
        **({"confirm": confirm} if confirm else {}),
        **extra_vars,
    }
    cli = AnsibleCli(tmp_path, wrapper=wrapper)
    return cli.playbook(REPO / "playbooks" / "upgrade.yml", inventory=inventory / "hosts.yml", env=env,
                        extra_vars=extra, check=check)  # fmt: skip


def running(lan, tmp_path, inventory, address):
    done = subprocess.run(
        lan.command("ssh", "-o", f"UserKnownHostsFile={inventory / 'known_hosts'}", "-o", "BatchMode=yes",
                    "-i", str(tmp_path / "id_ed25519"), f"root@{address}", "readlink /run/current-system"),
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip()


def node_writes(api):
    return [path.rsplit("/", 1)[1] for method, path in api.store.requests if method == "PATCH" and "/nodes/" in path]


def test_hosts_are_upgraded_one_at_a_time_then_left_alone(rig, tmp_path):
    lan, api, _kubelets, inventory, _flake = rig
    checked = upgrade(rig, tmp_path, check=True, confirm=None)
    assert checked.rc == 0, checked.describe()
    assert not (tmp_path / "record.jsonl").exists() and node_writes(api) == [], "check mode changed something"

    first = upgrade(rig, tmp_path)
    assert first.rc == 0, first.describe()
    assert node_writes(api) == ["mini1", "mini1", "mini2", "mini2"], "cordon and uncordon each host in turn"
    for address in ("192.168.20.11", "192.168.20.12"):
        assert running(lan, tmp_path, inventory, address).endswith("-2")
    nodes = {n["metadata"]["name"]: n["spec"].get("unschedulable") for n in api.store.list(_kind("Node"), None)}
    assert nodes == {"mini1": False, "mini2": False}, "both back in service"
    assert api.store.list(_kind("Pod"), None) == [], "each host's pod was evicted"

    for host in ("mini1", "mini2"):
        (armed,) = host_calls(tmp_path, host, "systemd-run")
        assert armed[0].startswith("--unit=nerv-rollback-") and OLD_SYSTEM in armed[-1], "the watchdog was armed"
        assert ["is-active", "k3s.service"] in host_calls(tmp_path, host, "systemctl"), "the health check ran"
        assert host_calls(tmp_path, host, "systemctl")[-1] == ["stop", f"{armed[0].split('=')[1]}.service"]
        assert ["--failed", "--no-legend", "--plain"] not in host_calls(tmp_path, host, "systemctl")

    writes = [r for r in api.store.requests if r[0] != "GET"]
    second = upgrade(rig, tmp_path)
    assert second.rc == 0 and second.stats()["changed"] == 0, second.describe()
    assert [r for r in api.store.requests if r[0] != "GET"] == writes, "an up-to-date site was drained"
    assert len((tmp_path / "record.jsonl").read_text().splitlines()) == 2


def test_a_host_that_does_not_come_back_is_rolled_back_and_the_rest_left(rig, tmp_path):
    lan, api, kubelets, inventory, flake = rig
    assert upgrade(rig, tmp_path).rc == 0
    before = running(lan, tmp_path, inventory, "192.168.20.11")
    (flake / "flake.nix").write_text(FLAKE.replace("@VERSION@", "3"))
    kubelets.broken.add("mini1")
    records = len((tmp_path / "record.jsonl").read_text().splitlines())

    failed = upgrade(rig, tmp_path)
    assert failed.rc != 0, failed.describe()
    message = failed.task("Stop the upgrade at mini1")["msg"]
    assert "The upgrade stopped at mini1" in message and f"switched back: it runs {before} again" in message, message
    assert "This run drained it; it is uncordoned again." in message, message
    assert running(lan, tmp_path, inventory, "192.168.20.11") == before, "mini1 runs its old system again"
    assert running(lan, tmp_path, inventory, "192.168.20.12").endswith("-2"), "mini2 was not touched"
    runs = [json.loads(line)["argv"] for line in (tmp_path / "record.jsonl").read_text().splitlines()[records:]]
    assert ["--rollback" in argv for argv in runs] == [False, True], runs
    node = api.store.get(_kind("Node"), None, "mini1")
    assert node["spec"]["unschedulable"] is False and node["status"]["conditions"][0]["status"] == "True"
    assert not api.store.get(_kind("Node"), None, "mini2")["spec"].get("unschedulable")


def test_a_host_that_fails_its_health_check_is_switched_back_by_the_module(rig, tmp_path):
    lan, api, _kubelets, inventory, _flake = rig
    failed = upgrade(rig, tmp_path, upgrade_health_checks=["echo k3s is down; exit 3"])
    assert failed.rc != 0, failed.describe()
    switch = failed.task("Switch to its configuration mini1")
    assert switch["rolled_back"] and switch["rolled_back_by"] == "controller", switch
    assert "health check 'echo k3s is down; exit 3' failed (exit 3): k3s is down" in switch["msg"], switch["msg"]
    message = failed.task("Stop the upgrade at mini1")["msg"]
    assert "failed its health checks, so it was switched back (by the controller)" in message, message
    assert running(lan, tmp_path, inventory, "192.168.20.11") == OLD_SYSTEM
    assert running(lan, tmp_path, inventory, "192.168.20.12") == OLD_SYSTEM, "mini2 was not touched"
    runs = [json.loads(line)["argv"] for line in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert ["--rollback" in argv for argv in runs] == [False, True], runs
    assert not api.store.get(_kind("Node"), None, "mini1")["spec"]["unschedulable"], "uncordoned again"


def test_a_host_whose_drain_fails_is_not_switched_back_and_the_rest_left(rig, tmp_path):
    lan, api, _kubelets, inventory, _flake = rig
    api.store.evictions_refused.add(("apps", "web-mini2"))  # a disruption budget holds mini2's pod

    failed = upgrade(rig, tmp_path, upgrade_drain_timeout=1)
    assert failed.rc != 0, failed.describe()
    assert running(lan, tmp_path, inventory, "192.168.20.11").endswith("-2"), "mini1 was upgraded before"
    assert running(lan, tmp_path, inventory, "192.168.20.12") == OLD_SYSTEM, "mini2 keeps its system"
    runs = [json.loads(line)["argv"] for line in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert [argv[argv.index("--target-host") + 1] for argv in runs] == ["root@192.168.20.11"], runs
    assert not any("--rollback" in argv for argv in runs), "a host never switched was rolled back"
    assert failed.task("Switch back to the system it ran mini2").get("skipped"), failed.describe()
    message = failed.task("Stop the upgrade at mini2")["msg"]
    assert "web-mini2" in message and f"It was not switched: it still runs {OLD_SYSTEM}." in message, message
    assert "This run cordoned it and began to drain it" in message and "uncordoned again" in message, message
    assert node_writes(api) == ["mini1", "mini1", "mini2", "mini2"], "mini2 cordoned, then uncordoned again"
    assert not api.store.get(_kind("Node"), None, "mini2")["spec"]["unschedulable"]


def refused(tmp_path, inventory, confirm=SITE, **extra_vars):
    """A run of the whole playbook on the controller alone, the site's flake assembled into tmp_path/flake-cache."""
    extra = {"upgrade_flake_dir": str(tmp_path / "flake-cache"), "upgrade_cluster_timeout": 1, **extra_vars}
    run = run_upgrade(tmp_path, inventory, [], False, confirm, extra)
    assert run.rc != 0, run.describe()
    assert not (tmp_path / "flake-cache").exists(), f"the flake was assembled\n{run.describe()}"
    assert not (tmp_path / "ssh.log").exists(), f"a host was reached for\n{run.describe()}"
    assert not (tmp_path / "record.jsonl").exists(), f"nixos-rebuild ran\n{run.describe()}"
    return run


def kubeconfig(path, server):
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": SITE, "cluster": {"server": server}}],
        "users": [{"name": "admin", "user": {"token": "token"}}],
        "contexts": [{"name": SITE, "context": {"cluster": SITE, "user": "admin"}}],
        "current-context": SITE,
    }
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps(config))


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("confirm", [None, "other-site"])
def test_a_run_without_the_site_name_is_refused_before_anything(controller, tmp_path, confirm):
    inventory, _flake = controller
    kubeconfig(inventory / ".state" / "kubeconfig", f"http://127.0.0.1:{closed_port()}")
    run = refused(tmp_path, inventory, confirm=confirm)
    message = run.task("Refuse without the site's name as confirmation")["msg"]
    assert "drains and switches, one at a time, each host of site minis" in message, message
    assert "mini1, mini2" in message and "run again with -e confirm=minis" in message, message
    assert "--check" in message, message


def test_a_site_without_a_kubeconfig_is_refused_before_anything(controller, tmp_path):
    inventory, _flake = controller
    run = refused(tmp_path, inventory)
    message = run.task("Refuse before the cluster is up")["msg"]
    assert f"{inventory.resolve() / '.state' / 'kubeconfig'} does not exist" in message, message
    assert "playbooks/bootstrap.yml" in message, message


@pytest.mark.parametrize(
    ("content", "told"),
    [
        (None, "The cluster's API did not answer through"),
        ("not: a kubeconfig\n", "is not a usable kubeconfig: fetch it again from the first control-plane"),
    ],
    ids=["closed-port", "broken-file"],
)
def test_a_cluster_that_does_not_answer_is_refused_before_anything(controller, tmp_path, content, told):
    inventory, _flake = controller
    path = inventory / ".state" / "kubeconfig"
    kubeconfig(path, f"http://127.0.0.1:{closed_port()}")
    if content:
        path.write_text(content)
    run = refused(tmp_path, inventory)
    message = run.task("Stop before touching any host")["msg"]
    assert told in message and "playbooks/bootstrap.yml" in message and "Nothing was done." in message, message


@pytest.fixture
def cluster(controller):
    """The Kubernetes API emulator on the controller's loopback with nodes mini1 and mini2, both Ready."""
    from kube_emulator import KubeEmulator

    inventory, _flake = controller
    api = KubeEmulator("127.0.0.1", 0).start()
    try:
        (inventory / ".state").mkdir(mode=0o700)
        api.kubeconfig(inventory / ".state" / "kubeconfig")
        for host in ("mini1", "mini2"):
            api.store.create(_kind("Node"), None, {"metadata": {"name": host}, "spec": {}})
            set_ready(api, host, True)
        yield api
    finally:
        api.stop()


def test_a_host_that_is_not_a_ready_node_is_refused_before_anything(controller, cluster, tmp_path):
    inventory, _flake = controller
    set_ready(cluster, "mini2", False)
    run = refused(tmp_path, inventory)
    message = run.task("Stop before touching any host")["msg"]
    assert "1 of 2 nodes are not Ready" in message and "bring mini2 back" in message, message
    assert [r for r in cluster.store.requests if r[0] != "GET"] == []


def test_a_host_that_does_not_answer_over_ssh_is_not_drained(controller, cluster, tmp_path):
    inventory, flake = controller
    extra = {"upgrade_assemble_flake": False, "upgrade_flake_dir": str(flake)}
    run = run_upgrade(tmp_path, inventory, [], False, SITE, extra)
    assert run.rc != 0, run.describe()
    message = run.task("Stop at a host that does not answer mini1")["msg"]
    assert "it does not answer over SSH at 192.168.20.11, or its key is not pinned in" in message, message
    assert "so it was not drained or switched" in message, message
    assert [r for r in cluster.store.requests if r[0] != "GET"] == [], "a host that does not answer was drained"
    assert not (tmp_path / "record.jsonl").exists(), "nixos-rebuild ran"


def host_calls(tmp_path, host, tool):
    path = tmp_path / f"{host}-state" / "calls.jsonl"
    calls = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [c["argv"] for c in calls if c["tool"] == tool]


def _kind(name):
    from kube_emulator import KINDS

    return next(k for k in KINDS if k.kind == name)

"""playbooks/upgrade.yml on a two-host site: each host is a real sshd in a network namespace running its "old"
system (/run/current-system), the flake is input-less (its systems are plain derivations the real `nix eval` can
evaluate: nixpkgs is not reachable), nixos-rebuild is the recording fake that switches by relinking over SSH, and the
cluster is the Kubernetes API emulator, reached from the controller's namespace. A thread plays the kubelets: a node
is Ready unless the test has broken the host's newest system, and Ready again once it was rolled back.

Checked: one host at a time (drain, switch, Ready, uncordon; then the next); a second run leaves everything alone;
a host that does not come back Ready is switched back, waited for, uncordoned, and the run stops before the next.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from .._ansible import AnsibleCli
from .._netns import Lan, Machine, inside, keygen
from .._skips import require_commands, require_netns

pytest.importorskip("kubernetes", reason="the kubernetes client (requirements.txt)")

REPO = Path(__file__).resolve().parents[3]
FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_nixos_rebuild.py"
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
        condition = {"type": "Ready", "status": "True" if ready else "False",
                     "reason": "KubeletReady" if ready else "KubeletNotReady", "message": "kubelet"}  # fmt: skip
        self.api.store.set_status("Node", None, host, {"conditions": [condition]})

    def run(self):
        while not self.done.wait(0.2):
            lines = self.record.read_text().splitlines() if self.record.exists() else []
            for line in lines[self.seen :]:
                argv = json.loads(line)["argv"]
                host = self.addresses[argv[argv.index("--target-host") + 1].split("@", 1)[1]]
                if host in self.broken:
                    self.ready(host, "--rollback" in argv)
            self.seen = len(lines)


@pytest.fixture
def rig(tmp_path):
    require_netns()
    require_commands("sshd", "ssh", "ssh-keygen", "nix")
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text((REPO / "inventory" / "example-baremetal" / "hosts.yml").read_text())
    data = yaml.safe_load((REPO / "inventory" / "example-baremetal" / "site.yml").read_text())
    data["hosts"] = data["hosts"][:2]
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    client = keygen(tmp_path / "id_ed25519")
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(Path(f"{client}.pub").read_text())
    flake = tmp_path / "flake"
    flake.mkdir()
    (flake / "flake.nix").write_text(FLAKE.replace("@VERSION@", "2"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nixos-rebuild").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    (bin_dir / "nixos-rebuild").chmod(0o755)

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
                              run_links={"current-system": OLD_SYSTEM})  # fmt: skip
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
        lan.close()


def upgrade(rig, tmp_path, check=False):
    lan, _api, _kubelets, inventory, flake = rig
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "FAKE_NIXOS_REBUILD_RECORD": str(tmp_path / "record.jsonl"),
    }
    extra = {
        "upgrade_assemble_flake": False,
        "upgrade_flake_dir": str(flake),
        "upgrade_identity_file": str(tmp_path / "id_ed25519"),
        "upgrade_interval": 0.3,
        "upgrade_ready_timeout": 8,
        "upgrade_drain_timeout": 20,
    }
    cli = AnsibleCli(tmp_path, wrapper=lan.command())
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
    checked = upgrade(rig, tmp_path, check=True)
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
    assert "The upgrade stopped at mini1" in message and before in message, message
    assert running(lan, tmp_path, inventory, "192.168.20.11") == before, "mini1 runs its old system again"
    assert running(lan, tmp_path, inventory, "192.168.20.12").endswith("-2"), "mini2 was not touched"
    runs = [json.loads(line)["argv"] for line in (tmp_path / "record.jsonl").read_text().splitlines()[records:]]
    assert ["--rollback" in argv for argv in runs] == [False, True], runs
    node = api.store.get(_kind("Node"), None, "mini1")
    assert node["spec"]["unschedulable"] is False and node["status"]["conditions"][0]["status"] == "True"
    assert not api.store.get(_kind("Node"), None, "mini2")["spec"].get("unschedulable")


def _kind(name):
    from kube_emulator import KINDS

    return next(k for k in KINDS if k.kind == name)

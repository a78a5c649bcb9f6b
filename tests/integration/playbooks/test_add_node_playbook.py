"""playbooks/add_node.yml: a running one-host site (mini1) declares a second bare-metal host (mini2), which add_node
keys, installs (a recording fake nixos-anywhere against a real sshd in a network namespace, as in
test_install_playbook.py) and waits for until the Kubernetes API emulator lists it Ready - a thread plays mini2's
kubelet, registering the node once its install ran. Also: an undeclared node, or no cluster yet, is refused before
anything is written."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

import pytest

from .._ansible import AnsibleCli
from .._netns import Lan, Machine, inside
from .._sites import baremetal_site
from .._skips import require_commands, require_netns
from .test_install_playbook import INSTALLER
from .test_install_playbook import run as install_run

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")
pytest.importorskip("kubernetes", reason="the kubernetes client (requirements.txt)")

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def site(tmp_path):
    """The bare-metal example with mini1 (already in the cluster) and mini2 (just declared), a fresh admin."""
    require_netns()
    require_commands("sshd", "ssh", "ssh-keygen", "ssh-keyscan")
    return baremetal_site(tmp_path, 2)


def run(cli, inventory, admin, tmp_path, playbook, **extra):
    return install_run(cli, inventory, admin, tmp_path, playbook, add_node_interval=0.5, add_node_timeout=60, **extra)


def files(directory):
    return {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_an_undeclared_node_or_a_site_without_a_cluster_is_refused(site, tmp_path):
    inventory, admin, _data = site
    cli = AnsibleCli(tmp_path)
    before = files(inventory)
    for extra, words in (({"node": "mini9"}, "Declare the host"), ({}, "Declare the host"),
                         ({"node": "mini2"}, "bring the cluster up first")):  # fmt: skip
        refused = run(cli, inventory, admin, tmp_path, "add_node.yml", **extra)
        assert refused.rc != 0 and words in refused.output, refused.describe()
    assert files(inventory) == before, "a refused add_node wrote files"
    assert not (tmp_path / "record.jsonl").exists()


class Kubelet(threading.Thread):
    """mini1 is a node already; mini2 registers Ready once nixos-anywhere has installed it."""

    def __init__(self, api, record: Path):
        super().__init__(daemon=True)
        self.api, self.record, self.done = api, record, threading.Event()

    def register(self, name):
        from kube_emulator import KINDS, ApiError

        node = next(k for k in KINDS if k.kind == "Node")
        status = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}
        with contextlib.suppress(ApiError):  # registered already
            self.api.store.create(node, None, {"metadata": {"name": name}, "status": status})

    def run(self):
        self.register("mini1")
        while not self.done.wait(0.3):
            if self.record.exists() and "#mini2" in self.record.read_text():
                self.register("mini2")


def test_a_declared_bare_metal_node_is_installed_and_waited_for(site, tmp_path):
    from kube_emulator import KubeEmulator

    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

    inventory, admin, data = site
    keys = run(AnsibleCli(tmp_path), inventory, admin, tmp_path, "keys.yml")
    assert keys.rc == 0, keys.describe()
    mini1, mini2 = data["hosts"]

    def host_key(name):
        plain = sops_files.decrypt_file(
            str(inventory / "secrets" / "host-keys" / f"{name}.sops.yaml"), age.load_identities({}, [str(admin)])
        )
        path = tmp_path / f"{name}_host_key"
        path.write_text(plain["ssh_host_ed25519_key"])
        path.chmod(0o600)
        return path

    (tmp_path / "os-release").write_text(INSTALLER)  # mini2 boots the installer
    (tmp_path / "os-release-mini1").write_text('ID=nixos\nPRETTY_NAME="NixOS 25.05 (Warbler)"\n')  # installed
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "id_ed25519.pub").read_text())

    lan = Lan(tmp_path, "192.168.20.1", 24)
    api = kubelet = None
    try:
        for host, release in ((mini1, "os-release-mini1"), (mini2, "os-release")):
            machine = Machine(host_key=host_key(host["name"]), authorized_keys=authorized, hostname=host["name"],
                              os_release=tmp_path / release, disks=(Path(host["disk_id"]).name,))  # fmt: skip
            lan.add(host["mac"], host["ip"].split("/")[0], machine=machine)
        with inside(lan.ctl):  # the controller reaches the cluster's API from its own namespace
            api = KubeEmulator("127.0.0.1", 0)
        api.start()
        state = inventory / ".state"
        state.mkdir(mode=0o700)
        api.kubeconfig(state / "kubeconfig")
        kubelet = Kubelet(api, tmp_path / "record.jsonl")
        kubelet.start()
        cli = AnsibleCli(tmp_path, wrapper=lan.command())
        added = run(cli, inventory, admin, tmp_path, "add_node.yml", node="mini2")
    finally:
        if kubelet:
            kubelet.done.set()
        if api:
            api.stop()
        lan.close()
    assert added.rc == 0, added.describe()
    records = [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert [r["argv"][1].split("#")[1] for r in records] == ["mini2"], records
    ready = added.task("Wait until the new node is Ready")
    assert ready["nodes"]["mini2"]["ready"] == "True", added.describe()
    assert "mini2: Ready=True" in added.output and "mini1: Ready=True" in added.output

"""k3s_kubeconfig against a real sshd "K3s server" in a network namespace, whose /etc/rancher/k3s/k3s.yaml (in a
private copy of /etc) holds canary credentials that must never reach the output."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from .._ansible import AnsibleCli
from .._netns import Lan, Machine, keygen
from .._skips import require_commands, require_netns

ADDRESS = "10.77.0.11"
CANARY = "Y2FuYXJ5LWNsaWVudC1rZXktZGF0YS1ub3QtYS1rZXk="
K3S_YAML = f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTg==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {{}}
users:
- name: default
  user:
    client-certificate-data: LS0tLS1DRVJU
    client-key-data: {CANARY}
"""


@pytest.fixture
def server(tmp_path):
    require_netns()
    require_commands("sshd", "ssh", "ssh-keygen")
    client = keygen(tmp_path / "id_ed25519")
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(Path(f"{client}.pub").read_text())
    host_key = keygen(tmp_path / "host_key")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"{ADDRESS} {' '.join(Path(f'{host_key}.pub').read_text().split()[:2])}\n")
    lan = Lan(tmp_path, "10.77.0.1", 24)
    machine = Machine(host_key=host_key, authorized_keys=authorized, hostname="cp1",
                      etc_files={"rancher/k3s/k3s.yaml": K3S_YAML})  # fmt: skip
    lan.add("58:47:ca:77:00:11", ADDRESS, machine=machine)
    try:
        yield lan, client, known_hosts
    finally:
        lan.close()


def fetch(tmp_path, server, check=False, **overrides):
    lan, client, known_hosts = server
    options = {"host": "cp1", "address": ADDRESS, "identity_file": str(client), "known_hosts": str(known_hosts),
               "dest": str(tmp_path / "state" / "kubeconfig"), "name": "home", **overrides}  # fmt: skip
    play = [{"name": "k", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "fetch", "nerv.homelab.k3s_kubeconfig": options}]}]  # fmt: skip
    result = AnsibleCli(tmp_path, wrapper=lan.command()).playbook(play, "-v", "--diff", check=check)
    assert CANARY not in result.output, "the kubeconfig's credentials reached the output"
    return result, result.task("fetch")


def test_fetched_once_pointed_at_the_server_and_private(tmp_path, server):
    dest = tmp_path / "state" / "kubeconfig"
    checked, outcome = fetch(tmp_path, server, check=True)
    assert checked.rc == 0 and outcome["changed"] and not dest.exists(), checked.describe()
    first, outcome = fetch(tmp_path, server)
    assert first.rc == 0 and outcome["changed"], first.describe()
    assert (outcome["server"], outcome["context"]) == (f"https://{ADDRESS}:6443", "home")
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    config = yaml.safe_load(dest.read_text())
    assert (
        config["users"][0]["user"]["client-key-data"] == CANARY and config["contexts"][0]["context"]["user"] == "home"
    )
    second, outcome = fetch(tmp_path, server)
    assert second.rc == 0 and not outcome["changed"], second.describe()


def test_a_server_presenting_another_key_is_refused(tmp_path, server):
    _lan, _client, known_hosts = server
    other = keygen(tmp_path / "other")
    known_hosts.write_text(f"{ADDRESS} {' '.join(Path(f'{other}.pub').read_text().split()[:2])}\n")
    result, outcome = fetch(tmp_path, server)
    assert result.rc != 0 and "does not match the pinned one" in outcome["msg"], outcome["msg"]
    assert not (tmp_path / "state" / "kubeconfig").exists()


def test_a_host_without_k3s_says_so(tmp_path, server):
    result, outcome = fetch(tmp_path, server, remote_path="/etc/hostname")
    assert result.rc != 0 and "not a kubeconfig" in outcome["msg"], outcome["msg"]


def test_a_server_that_does_not_answer_is_planned_in_check_mode_and_fails_for_real(tmp_path, server):
    dest, known_hosts = tmp_path / "state" / "kubeconfig", server[2]
    key = known_hosts.read_text().split(None, 1)[1]
    known_hosts.write_text(known_hosts.read_text() + f"10.77.0.99 {key}")  # pinned, but nothing answers there
    checked, outcome = fetch(tmp_path, server, check=True, address="10.77.0.99")
    assert checked.rc == 0 and outcome["changed"] and not dest.exists(), checked.describe()
    assert any("Check mode plans fetching the kubeconfig" in w for w in outcome.get("warnings", [])), outcome
    refused, outcome = fetch(tmp_path, server, address="10.77.0.99")
    assert refused.rc != 0 and "cannot read /etc/rancher/k3s/k3s.yaml" in outcome["msg"] and not dest.exists()


def test_a_server_whose_key_is_not_pinned_is_planned_without_connecting_and_refused_for_real(tmp_path, server):
    dest = tmp_path / "state" / "kubeconfig"
    checked, outcome = fetch(tmp_path, server, check=True, address="10.77.0.98")
    assert checked.rc == 0 and outcome["changed"] and not dest.exists(), checked.describe()
    warning = next(w for w in outcome.get("warnings", []) if "Check mode plans fetching the kubeconfig" in w)
    assert "no key of cp1 (10.77.0.98) is pinned in" in warning and "its key is not pinned yet" in warning
    refused, outcome = fetch(tmp_path, server, address="10.77.0.98")
    assert refused.rc != 0 and "the host's key must be pinned first" in outcome["msg"] and not dest.exists()

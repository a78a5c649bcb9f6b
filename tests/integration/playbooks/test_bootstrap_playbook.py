"""playbooks/bootstrap.yml end to end: a K3s server that is a real sshd in a network namespace (its private /etc
holds k3s.yaml), the Kubernetes API emulator serving HTTPS on that server's address, a local bare Git repository
standing in for GitHub, and a recording fake flux CLI on PATH (the real one needs a cluster and a Git host).

The test plays the cluster's controllers in a thread: the kubelet registers the node Ready; once the fake bootstrap
has made flux-system, the readiness model (hacking/readiness.py) reconciles what the playbook pushed to Git, stage by
stage, under upstream's rules, and its verdict is what the API shows: every object of a kind the emulator serves,
each Flux object Ready or not as the model found it, Traefik's Service with the address MetalLB gave it from the
site's pool. Run twice: the first run fetches, renders, pushes and bootstraps; the second changes
nothing and writes nothing to the cluster.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import stat
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from .._ansible import AnsibleCli, files_holding
from .._netns import Lan, Machine, inside
from .._sites import bare_repository, baremetal_site, git
from .._skips import require_commands, require_netns

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")
pytest.importorskip("kubernetes", reason="the kubernetes client (requirements.txt)")

REPO = Path(__file__).resolve().parents[3]
FAKE_FLUX = Path(__file__).resolve().parents[1] / "fixtures" / "fake_flux.py"
TOKEN = "ghp_canaryTokenThatMustNeverBeShown0000000"
FLUX_KINDS = ("GitRepository", "OCIRepository", "HelmRepository", "Kustomization", "HelmRelease")


@pytest.fixture
def site(tmp_path):
    """The bare-metal example trimmed to mini1 (the first control-plane), with monitoring, a fresh admin identity, an
    SSH client key and an empty GitOps repository."""
    require_netns()
    require_commands("sshd", "ssh", "ssh-keygen", "git")
    inventory, admin, data = baremetal_site(tmp_path, 1)
    data["monitoring"] = {}
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return inventory, admin, data, bare_repository(tmp_path)


def k3s_yaml(tmp_path, address):
    """A k3s.yaml as K3s writes it (server 127.0.0.1), with a CA that verifies the emulator's certificate for the
    node's address, and a real client certificate whose key is the canary."""
    from fakepve.certs import make_cert

    server_cert, server_key, _der = make_cert(str(tmp_path), name="apiserver", hosts=(address,))
    client_cert, client_key, _der = make_cert(str(tmp_path), name="client")

    def b64(path):
        return base64.b64encode(Path(path).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": {"server": "https://127.0.0.1:6443",
                                                     "certificate-authority-data": b64(server_cert)}}],
        "users": [{"name": "default", "user": {"client-certificate-data": b64(client_cert),
                                               "client-key-data": b64(client_key)}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
    }  # fmt: skip
    return yaml.safe_dump(config), (server_cert, server_key), b64(client_key)


class Controllers(threading.Thread):
    """The kubelet, Flux's controllers, Helm and MetalLB, as far as the playbook can see them. What becomes Ready is
    the readiness model's verdict (hacking/readiness.py: kstatus, Helm's wait, dependsOn and wait, MetalLB's pools)
    on what was pushed to Git, never the test's word: a tree that would deadlock on a real cluster leaves its objects
    not Ready here too, with the model's reason, and the playbook's wait fails on them."""

    def __init__(self, api, bare: Path, site: dict):
        super().__init__(daemon=True)
        self.api, self.bare, self.site = api, bare, site
        self.stopping = threading.Event()
        self.applied_revision = None
        self.verdict = None
        self.errors: list = []

    def run(self):
        while not self.stopping.wait(0.2):
            try:
                self.step()
            except Exception as exc:  # reported by the test, not swallowed
                self.errors.append(repr(exc))

    def kind(self, name):
        from kube_emulator import KINDS

        return next((k for k in KINDS if k.kind == name), None)

    def ensure(self, kind_name, namespace, obj):
        from kube_emulator import ApiError

        with contextlib.suppress(ApiError):  # already there: the controllers do not fight the playbook
            self.api.store.create(self.kind(kind_name), namespace, obj)

    def step(self):
        store = self.api.store
        for host in self.site["hosts"]:
            ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready"}
            self.ensure("Node", None, {"metadata": {"name": host["name"]}, "status": {"conditions": [ready]}})
        if store.list(self.kind("GitRepository"), "flux-system"):
            self.apply_git()
        for kind_name in FLUX_KINDS:
            for obj in store.list(self.kind(kind_name), None):
                status = obj.get("status") or {}
                if status.get("observedGeneration") != obj["metadata"]["generation"]:
                    meta = obj["metadata"]
                    store.set_status(kind_name, meta.get("namespace"), meta["name"], self.status_of(obj))

    def status_of(self, obj: dict) -> dict:
        """The Ready condition the model's verdict gives obj; flux-system's own objects (the bootstrap's) sync."""
        from kube_emulator import ready_status
        from readiness import key, label

        stuck = {s.object: s for s in (self.verdict.stuck if self.verdict else [])}
        ours = label(key(obj))
        if ours in stuck:
            return ready_status(obj, ready=False, reason="DependencyNotReady", message=stuck[ours].waits_for)
        if self.verdict is None or ours not in self.verdict.ready:
            # sources are fetched (the model takes them as reachable), flux-system applied what it found
            if obj["kind"] not in ("Kustomization", "HelmRelease") or obj["metadata"]["name"] == "flux-system":
                return ready_status(obj)
            return ready_status(obj, ready=False, reason="Progressing", message="not reconciled yet")
        return ready_status(obj)

    def build(self, files: list):
        """What Flux builds from a path of the pushed tree: the files its kustomization.yaml names, else every
        .yaml below it."""

        def show(path):
            return [d for d in yaml.safe_load_all(git("--git-dir", str(self.bare), "show", f"main:{path}")) if d]

        def build(path: str) -> list:
            path = path.removeprefix("./").rstrip("/")
            kustomization = f"{path}/kustomization.yaml"
            if kustomization in files:
                names = [f"{path}/{name}" for name in show(kustomization)[0]["resources"]]
            else:
                names = [f for f in files if f.startswith(f"{path}/") and f.endswith(".yaml")]
            return [doc for name in names for doc in show(name)]

        return build

    def apply_git(self):
        """What the model says flux-system and the stages make of what was pushed, in the API: every object of a
        kind the emulator serves, with the status its controllers gave it (MetalLB's address on Traefik's Service)."""
        from readiness import Cluster

        head = git("--git-dir", str(self.bare), "rev-parse", "main").strip()
        if head == self.applied_revision:
            return
        files = git("--git-dir", str(self.bare), "ls-tree", "-r", "--name-only", "main").splitlines()
        build = self.build(files)
        self.verdict = Cluster(build).reconcile(build(f"clusters/{self.site['site']['name']}"))
        for doc in self.verdict.objects.values():
            kind = self.kind(doc.get("kind", ""))
            if kind and doc["apiVersion"] == kind.group_version:
                self.ensure(doc["kind"], doc["metadata"].get("namespace"), doc)
        self.applied_revision = head


def run(cli, inventory, admin, tmp_path, bare, playbook="bootstrap.yml"):
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        (bin_dir / "flux").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_FLUX}" "$@"\n')
        (bin_dir / "flux").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "SOPS_AGE_KEY_FILE": str(admin),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "SOPS_AGE_SSH_PRIVATE_KEY_FILE": "/dev/null",
        "GITHUB_TOKEN": TOKEN,
        "FAKE_FLUX_EXPECT_TOKEN": TOKEN,
        "FAKE_FLUX_RECORD": str(tmp_path / "flux-record.jsonl"),
    }
    extra = {
        "bootstrap_ssh_identity_file": str(tmp_path / "id_ed25519"),
        "bootstrap_interval": 0.5,
        "bootstrap_nodes_timeout": 60,
        "bootstrap_flux_timeout": 60,
        "gitops_platform_repo_url": f"file://{bare}",
        "gitops_platform_checkout": str(tmp_path / "checkout"),
    }
    return cli.playbook(REPO / "playbooks" / playbook, "--diff", inventory=inventory / "hosts.yml", env=env,
                        extra_vars=extra)  # fmt: skip


def test_bootstrap_playbook_brings_up_the_platform_once(site, tmp_path):
    from kube_emulator import KubeEmulator

    from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
    from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

    inventory, admin, data, bare = site
    keys = run(AnsibleCli(tmp_path), inventory, admin, tmp_path, bare, "keys.yml")
    assert keys.rc == 0, keys.describe()
    mini1 = data["hosts"][0]
    address = mini1["ip"].split("/")[0]
    plain = sops_files.decrypt_file(
        str(inventory / "secrets" / "host-keys" / "mini1.sops.yaml"), age.load_identities({}, [str(admin)])
    )
    host_key = tmp_path / "mini1_host_key"
    host_key.write_text(plain["ssh_host_ed25519_key"])
    host_key.chmod(0o600)
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "id_ed25519.pub").read_text())
    kubeconfig_text, tls, client_key = k3s_yaml(tmp_path, address)

    lan = Lan(tmp_path, "192.168.20.1", 24)
    api = controllers = None
    try:
        machine = Machine(host_key=host_key, authorized_keys=authorized, hostname="mini1",
                          etc_files={"rancher/k3s/k3s.yaml": kubeconfig_text})  # fmt: skip
        namespace = lan.add(mini1["mac"], address, machine=machine)
        with inside(namespace):  # the API server listens on the node's own address, as K3s does
            api = KubeEmulator(address, 6443, tls=tls)
        api.start()
        controllers = Controllers(api, bare, data)
        controllers.start()
        cli = AnsibleCli(tmp_path, wrapper=lan.command())

        first = run(cli, inventory, admin, tmp_path, bare)
        assert first.rc == 0, first.describe()
        assert not controllers.errors, controllers.errors
        for secret in (TOKEN, client_key, "AGE-SECRET-KEY"):
            assert secret not in first.output, "a secret reached the output"
        # flux bootstrap ran as an async job with the age key among its arguments: no job file holds it, and the
        # module that carried it is gone once the job's watcher has seen the job end (it looks every 5 s)
        deadline = time.monotonic() + 20
        while (holding := files_holding(tmp_path / "ansible-tmp", b"AGE-SECRET-KEY")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert holding == [], holding

        kubeconfig = inventory / ".state" / "kubeconfig"
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == f"https://{address}:6443"

        (record,) = [json.loads(line) for line in (tmp_path / "flux-record.jsonl").read_text().splitlines()]
        assert record["argv"][:2] == ["bootstrap", "github"] and record["token_in_env"]
        assert TOKEN not in " ".join(record["argv"])
        assert f"--path={data['flux']['path']}" in record["argv"]
        assert "--version=v2.6.1" in record["argv"], "the site's Flux release (platform.versions.flux, default)"

        # Flux holds the cluster's age key, and the repository's rule encrypts the site's secrets to it
        secret = api.store.get(controllers.kind("Secret"), "flux-system", "sops-age")
        identity = base64.b64decode(secret["data"]["age.agekey"]).decode().strip()
        stored = sops_files.decrypt_file(
            str(inventory / "secrets" / "cluster" / "flux.agekey.sops.yaml"), age.load_identities({}, [str(admin)])
        )
        assert identity == stored["identity"]
        rules = yaml.safe_load(git("--git-dir", str(bare), "show", "main:.sops.yaml"))["creation_rules"]
        recipients = rules[0]["age"].split(",")
        assert str(pyrage.x25519.Identity.from_str(identity).to_public()) in recipients
        assert data["sops"]["admin_recipients"][0] in recipients

        # what was pushed was applied and is Ready; the summary names the dashboards and MetalLB's address
        name = data["site"]["name"]
        releases = [o["metadata"]["name"] for o in api.store.list(controllers.kind("HelmRelease"), None)]
        assert sorted(releases) == ["cert-manager", "kube-prometheus-stack", "longhorn", "metallb", "traefik"]
        stages = [o["metadata"]["name"] for o in api.store.list(controllers.kind("Kustomization"), "flux-system")]
        assert {"flux-system", "infrastructure", "platform", "apps", "capacitor"} <= set(stages)
        status = first.task("Wait until every Flux object is Ready")
        assert not status.get("failed"), status
        # the waits run as tries that say how far they got (printed by nerv.homelab.progress while they wait)
        flux_objects = len(status["objects"])
        assert status["progress"] == f"{flux_objects} of {flux_objects} Flux objects Ready", status
        assert first.task("Wait until every host of the site is a Ready node")["progress"] == "1 of 1 nodes Ready"
        assert "FAILED - RETRYING" not in first.output and "ASYNC POLL" not in first.output
        domain = data["network"]["domain"]
        for dashboard in ("traefik", "longhorn", "flux", "grafana"):
            assert f"https://{dashboard}.{domain}/" in first.output
        # Grafana's admin password went to Git encrypted (to the admins and the cluster), and was never shown
        grafana = inventory.parent / "grafana-admin.sops.yaml"
        grafana.write_text(
            git("--git-dir", str(bare), "show", f"main:platform/{name}/infrastructure/grafana-admin.sops.yaml")
        )
        password = sops_files.decrypt_file(str(grafana), age.load_identities({}, [str(admin)]))["stringData"][
            "admin-password"
        ]
        assert password not in first.output and password not in grafana.read_text()
        first_address = data["metallb"]["addresses"][0].split("-")[0].split("/")[0]
        assert f"traefik/traefik: {first_address}" in first.output
        assert (
            git("--git-dir", str(bare), "log", "--format=%s", "main")
            .splitlines()[0]
            .startswith(f"nerv.homelab: platform of site {name}")
        )

        writes_before = [r for r in api.store.requests if r[0] != "GET"]
        commits = git("--git-dir", str(bare), "rev-list", "--count", "main")
        second = run(cli, inventory, admin, tmp_path, bare)
        assert second.rc == 0, second.describe()
        assert second.stats()["changed"] == 0, second.describe()
        assert [r for r in api.store.requests if r[0] != "GET"] == writes_before, "the second run wrote to the cluster"
        assert git("--git-dir", str(bare), "rev-list", "--count", "main") == commits
        assert len((tmp_path / "flux-record.jsonl").read_text().splitlines()) == 1, "flux bootstrap ran again"
    finally:
        if controllers:
            controllers.stopping.set()
        if api:
            api.stop()
        lan.close()
        shutil.rmtree(tmp_path / "checkout", ignore_errors=True)

"""playbooks/restore_volume.yml against the Kubernetes API emulator, as a user runs it: the claim's newest completed
Longhorn Backup is restored into a new Volume, a PersistentVolume and a claim beside the old one. The objects are
Longhorn's own (longhorn.io/v1beta2 Backup and Volume of longhorn 1.9.1) and the wait is on their real status fields,
moved by models of Longhorn's volume controller and Kubernetes' PersistentVolume controller
(hacking/storage_controllers.py), never set by the test."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
import yaml

pytest.importorskip("kubernetes", reason="kubernetes (requirements.txt) is the client the module uses")
from storage_controllers import bind_step, kind, longhorn_step  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "playbooks" / "restore_volume.yml"
TARGET = "nfs://nas.lan:/export/longhorn"
GIB = str(2**30)


def backup(api, name, claim, created, state="Completed"):
    namespace, pvc = claim.split("/")
    api.store.create(kind("Backup"), "longhorn-system", {"metadata": {"name": name}, "spec": {"snapshotName": name}})
    status = {
        "state": state,
        "url": f"{TARGET}?backup={name}&volume=pvc-{pvc}",
        "volumeName": f"pvc-{pvc}",
        "volumeSize": GIB,
        "size": "52428800",
        "backupCreatedAt": created,
        "labels": {"KubernetesStatus": json.dumps({"namespace": namespace, "pvcName": pvc, "pvName": f"pvc-{pvc}"})},
    }
    api.store.set_status("Backup", "longhorn-system", name, status)


@pytest.fixture
def site(tmp_path, kube_api):
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "inventory" / "example-baremetal", inventory)
    data = yaml.safe_load((inventory / "site.yml").read_text())
    data["backup"] = {"volumes": {"target": TARGET}}
    (inventory / "site.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    (inventory / ".state").mkdir()
    kube_api.kubeconfig(inventory / ".state" / "kubeconfig")
    backup(kube_api, "backup-old", "podinfo/data", "2026-12-05T03:00:00Z")
    backup(kube_api, "backup-new", "podinfo/data", "2026-12-06T03:00:00Z")
    backup(kube_api, "backup-running", "podinfo/data", "2026-12-07T03:00:00Z", state="InProgress")
    backup(kube_api, "backup-other", "other/data", "2026-12-07T03:00:00Z")
    return inventory


@pytest.fixture
def controllers(kube_api):
    """Longhorn's volume controller and the PersistentVolume controller, a pass every 0.3 s."""
    stop = threading.Event()

    def run():
        while not stop.wait(0.3):
            longhorn_step(kube_api.store)
            bind_step(kube_api.store)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


def restore(ansible_cli, inventory, check=False, **extra):
    extra = {"volume": "podinfo/data", "restore_volume_progress_every": 2, **extra}
    return ansible_cli.playbook(PLAYBOOK, inventory=inventory / "hosts.yml", check=check, extra_vars=extra)


def test_the_newest_completed_backup_is_restored_into_a_new_bound_claim(ansible_cli, site, kube_api, controllers):
    checked = restore(ansible_cli, site, check=True)
    assert checked.rc == 0 and checked.stats()["changed"] == 1, checked.describe()
    task = checked.task("Restore the claim's newest backup into a new claim beside it")
    assert task["backup"] == "backup-new" and task["restore_claim"] == "podinfo/data-restored"
    assert kube_api.store.list(kind("Volume"), "longhorn-system") == [], "check mode made a volume"

    done = restore(ansible_cli, site)
    assert done.rc == 0 and done.stats()["changed"] == 1, done.describe()
    (volume,) = kube_api.store.list(kind("Volume"), "longhorn-system")
    assert volume["spec"]["fromBackup"] == f"{TARGET}?backup=backup-new&volume=pvc-data"
    assert volume["spec"]["size"] == GIB
    assert volume["status"]["restoreInitiated"] and not volume["status"]["restoreRequired"]
    (pv,) = kube_api.store.list(kind("PersistentVolume"), None)
    assert pv["spec"]["csi"] == {
        "driver": "driver.longhorn.io",
        "fsType": "ext4",
        "volumeHandle": volume["metadata"]["name"],
    }
    assert pv["spec"]["claimRef"]["name"] == "data-restored" and pv["status"]["phase"] == "Bound"
    claim = kube_api.store.get(kind("PersistentVolumeClaim"), "podinfo", "data-restored")
    assert claim["status"]["phase"] == "Bound" and claim["spec"]["volumeName"] == volume["metadata"]["name"]
    assert "Restored Longhorn backup backup-new" in done.stdout, done.stdout
    assert "FAILED - RETRYING" not in done.output

    again = restore(ansible_cli, site)
    assert again.rc == 0 and again.stats()["changed"] == 0, again.describe()
    assert len(kube_api.store.list(kind("Volume"), "longhorn-system")) == 1


def test_a_named_older_backup_and_a_claim_with_no_backup(ansible_cli, site, kube_api, controllers):
    older = restore(ansible_cli, site, restore_backup="backup-old", restore_claim="data-monday")
    assert older.rc == 0, older.describe()
    (volume,) = kube_api.store.list(kind("Volume"), "longhorn-system")
    assert "backup=backup-old" in volume["spec"]["fromBackup"]
    none = restore(ansible_cli, site, volume="podinfo/cache")
    assert none.rc != 0 and "Longhorn has no completed backup of claim podinfo/cache" in none.output, none.describe()


def test_a_restore_longhorn_does_not_start_says_so_as_it_waits_and_fails_at_the_deadline(ansible_cli, site, kube_api):
    # no controllers: the Volume is made, and nothing restores it
    stuck = restore(ansible_cli, site, restore_volume_timeout=5)
    assert stuck.rc != 0, stuck.describe()
    assert "waiting for Longhorn to start restoring volume restore-" in stuck.stdout, stuck.stdout
    assert "not restored after 5 s" in stuck.output and "FAILED - RETRYING" not in stuck.output
    assert kube_api.store.list(kind("PersistentVolumeClaim"), None) == [], "no claim before the data is there"


def test_a_claim_the_restore_would_make_that_exists_is_not_taken_over(ansible_cli, site, kube_api, controllers):
    spec = {"volumeName": "someone-else", "resources": {"requests": {"storage": "1Gi"}}}
    claim = {"metadata": {"name": "data-restored"}, "spec": spec}
    kube_api.store.create(kind("PersistentVolumeClaim"), "podinfo", claim)
    refused = restore(ansible_cli, site)
    assert refused.rc != 0 and "exists and is not this restore's" in refused.output, refused.describe()
    assert kube_api.store.list(kind("Volume"), "longhorn-system") == []

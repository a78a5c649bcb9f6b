"""A volume restore's pure parts: which backup, the names it makes, and the objects it creates checked against the
schemas of Longhorn 1.9.1's CRDs and the Kubernetes core API."""

from __future__ import annotations

import json

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import restore
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.kube import KubeError

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (requirements-test.txt)")

# Volume longhorn.io/v1beta2 from the CRD of Longhorn 1.9.1 (chart/templates/crds.yaml at tag v1.9.1): the spec
# fields a restore sets, with their types and enums as the CRD gives them. additionalProperties false: a field the
# CRD lacks would be pruned by the API server and the restore would silently lose it.
VOLUME_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "fromBackup": {"type": "string"},
        "size": {"type": "string", "pattern": "^[0-9]+$"},  # format int64, as a string
        "numberOfReplicas": {"type": "integer"},
        "frontend": {"type": "string", "enum": ["blockdev", "iscsi", "nvmf", "ublk", ""]},
        "accessMode": {"type": "string", "enum": ["rwo", "rwx"]},
        "dataEngine": {"type": "string", "enum": ["v1", "v2"]},
    },
}
GIB = str(2**30)


def backup(name, claim="podinfo/data", created="2026-12-06T03:00:00Z", state="Completed"):
    namespace, pvc = claim.split("/")
    kubernetes_status = json.dumps({"namespace": namespace, "pvcName": pvc})
    return {"metadata": {"name": name},
            "status": {"state": state, "url": f"nfs://nas:/b?backup={name}&volume=v", "volumeSize": GIB,
                       "backupCreatedAt": created, "labels": {"KubernetesStatus": kubernetes_status}}}  # fmt: skip


@pytest.fixture
def backups(monkeypatch):
    listed = [
        backup("old", created="2026-12-05T03:00:00Z"),
        backup("new", created="2026-12-06T03:00:00Z"),
        backup("running", created="2026-12-07T03:00:00Z", state="InProgress"),
        backup("elsewhere", claim="other/data", created="2026-12-08T03:00:00Z"),
        {"metadata": {"name": "no-status"}},
    ]
    monkeypatch.setattr(restore, "_objects", lambda _api, plural: listed if plural == "backups" else [])
    return listed


def test_the_newest_completed_backup_of_the_claim_is_chosen(backups):
    assert restore.newest_backup(None, "podinfo", "data")["metadata"]["name"] == "new"
    assert restore.newest_backup(None, "podinfo", "data", "old")["metadata"]["name"] == "old"


def test_no_backup_says_how_many_there_are_in_any_state(backups):
    with pytest.raises(KubeError, match=r"no completed backup of claim podinfo/cache \(0 backup"):
        restore.newest_backup(None, "podinfo", "cache")
    with pytest.raises(KubeError, match=r"no completed backup running of claim podinfo/data \(3 backup"):
        restore.newest_backup(None, "podinfo", "data", "running")


def test_the_names_are_the_same_for_the_same_restore_and_fit_kubernetes():
    volume, claim = restore.restored_names("podinfo", "data", "new")
    assert (volume, claim) == restore.restored_names("podinfo", "data", "new")
    assert volume != restore.restored_names("podinfo", "data", "old")[0]
    assert claim == "data-restored" and len(restore.restored_names("a", "x" * 70, "b")[1]) == 63
    long_claim = restore.restored_names("a", "x" * 54 + "-" + "y" * 7, "b")[1]
    assert len(long_claim) == 63 and long_claim.endswith("-restored"), "cut the claim, never into a trailing '-'"


def test_the_volume_the_restore_makes_is_one_the_crd_takes(backups):
    volume = restore._volume("restore-1", backups[1], 2)
    jsonschema.validate(volume["spec"], VOLUME_SPEC)
    assert volume["spec"]["fromBackup"] == backups[1]["status"]["url"] and volume["spec"]["size"] == GIB
    assert (volume["apiVersion"], volume["metadata"]["namespace"]) == ("longhorn.io/v1beta2", "longhorn-system")


def test_the_persistent_volume_and_claim_validate_against_the_kubernetes_schema():
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (requirements-test)")
    pv, pvc = restore._volume_and_claim("restore-1", "podinfo", "data-restored", GIB, "longhorn")
    for obj in (pv, pvc):
        kubernetes_validate.validate(obj, "1.31", strict=True)
    assert pv["spec"]["claimRef"] == {"namespace": "podinfo", "name": "data-restored"}
    assert pvc["spec"]["volumeName"] == "restore-1" and pv["spec"]["csi"]["volumeHandle"] == "restore-1"

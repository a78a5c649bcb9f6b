# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Longhorn volume restored from its newest backup into a new claim beside the old one: nerv.homelab.volume_restore.

Longhorn (longhorn-manager v1.9.1) keeps a ``Backup`` (longhorn.io/v1beta2) per backup of a volume, labelled
``backup-volume: <volume>``; ``status.state`` is ``Completed`` once it is whole, ``status.url`` names it in the backup
target, and ``status.labels.KubernetesStatus`` (JSON) records the claim the volume belonged to. A ``Volume`` made
with ``spec.fromBackup`` set to that URL is restored by the volume controller: ``checkAndInitVolumeRestore`` sets
``status.restoreRequired`` and ``status.restoreInitiated`` (only once it finds the Backup), and
``checkAndFinishVolumeRestore`` clears ``restoreRequired`` when the restore is done (controller/volume_controller.go).
Then a PersistentVolume of the Longhorn CSI driver (``volumeHandle``: the volume's name) and a claim bound to it
make the restored data usable; the original claim and its volume are never touched.
"""

from __future__ import annotations

import hashlib
import json

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.kube import KubeError, api_client, call, k8s_client
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Turn

GROUP, VERSION, NAMESPACE = "longhorn.io", "v1beta2", "longhorn-system"
DRIVER = "driver.longhorn.io"


def _objects(api, plural: str) -> list:
    custom = k8s_client.CustomObjectsApi(api)
    listing = call(f"list Longhorn's {plural}", custom.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE, plural)
    return listing.get("items", [])


def _claim_of(backup: dict) -> tuple:
    """(namespace, claim) the backed-up volume belonged to, from the KubernetesStatus Longhorn records."""
    try:
        status = json.loads(((backup.get("status") or {}).get("labels") or {}).get("KubernetesStatus") or "{}")
    except ValueError:
        return "", ""
    return status.get("namespace", ""), status.get("pvcName", "")


def newest_backup(api, namespace: str, claim: str, name: str | None = None) -> dict:
    """The newest Completed Backup of the claim's volume (or the one named); KubeError saying what there is."""
    backups = [b for b in _objects(api, "backups") if _claim_of(b) == (namespace, claim)]
    done = [b for b in backups if (b.get("status") or {}).get("state") == "Completed"]
    if name:
        done = [b for b in done if b["metadata"]["name"] == name]
    if not done:
        what = f"completed backup {name}" if name else "completed backup"
        raise KubeError(
            f"Longhorn has no {what} of claim {namespace}/{claim} ({len(backups)} backup(s) of it in any state): "
            "is backup.volumes set and has its schedule run? `kubectl -n longhorn-system get backups` lists them"
        )
    return max(done, key=lambda b: (b["status"].get("backupCreatedAt") or "", b["metadata"]["name"]))


def restored_names(namespace: str, claim: str, backup: str) -> tuple:
    """(volume, new claim): the volume's name is the same for the same restore, so a second run finds it."""
    digest = hashlib.sha256(f"{namespace}/{claim}/{backup}".encode()).hexdigest()[:10]
    # a claim's name is a DNS subdomain of at most 63 characters here; cutting the claim, not the suffix, never leaves
    # a trailing '-'
    return f"restore-{digest}", f"{claim[:54]}-restored"


def _volume(name: str, backup: dict, replicas: int) -> dict:
    status = backup["status"]
    spec = {"fromBackup": status["url"], "size": status["volumeSize"], "numberOfReplicas": replicas,
            "frontend": "blockdev", "accessMode": "rwo", "dataEngine": "v1"}  # fmt: skip
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Volume",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}  # fmt: skip


def _volume_and_claim(name: str, namespace: str, claim: str, size: str, storage_class: str) -> tuple:
    """The PersistentVolume of the restored volume, bound ahead to the new claim, and that claim."""
    volume = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
              "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                       "persistentVolumeReclaimPolicy": "Retain", "storageClassName": storage_class,
                       "csi": {"driver": DRIVER, "fsType": "ext4", "volumeHandle": name},
                       "claimRef": {"namespace": namespace, "name": claim}}}  # fmt: skip
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": namespace},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                    "storageClassName": storage_class, "volumeName": name}}  # fmt: skip
    return volume, pvc


def _volume_status(api, name: str) -> dict | None:
    """The restored Longhorn volume's status ({} before the controller wrote one), None while there is no volume."""
    read = k8s_client.CustomObjectsApi(api).get_namespaced_custom_object
    volume = call(f"read volume {name}", read, GROUP, VERSION, NAMESPACE, "volumes", name, absent=None)
    return None if volume is None else volume.get("status") or {}


def _restore_progress(api, name: str) -> str | None:
    """None once Longhorn has restored the volume, else what it is doing."""
    status = _volume_status(api, name) or {}
    if not status.get("restoreInitiated"):
        return f"waiting for Longhorn to start restoring volume {name}"
    return f"Longhorn is restoring volume {name}" if status.get("restoreRequired") else None


def _claim_progress(api, namespace: str, claim: str) -> str | None:
    """None once the claim is Bound, else its phase."""
    read = k8s_client.CoreV1Api(api).read_namespaced_persistent_volume_claim
    pvc = call(f"read claim {namespace}/{claim}", read, claim, namespace)
    phase = pvc.status.phase if pvc.status else None
    if phase == "Bound":
        return None
    return f"claim {namespace}/{claim} is {phase}" if phase else f"claim {namespace}/{claim} is not bound yet"


def _wait(progress, turn: Turn, interval: float, result: dict) -> bool:
    """True once progress() says done; False when this call's share of the wait is spent (result says how far);
    KubeError at the deadline."""
    while True:
        doing = progress()
        if doing is None:
            return True
        result["progress"] = doing
        if turn.over:
            return False
        if turn.deadline.passed:
            raise KubeError(f"not restored after {turn.timeout:g} s: {doing}", **result)
        turn.pause(interval)


def _existing_claim(api, namespace: str, claim: str, volume: str):
    """The new claim when it is there already: bound to the restored volume (a second run), else KubeError."""
    core = k8s_client.CoreV1Api(api)
    read = core.read_namespaced_persistent_volume_claim
    pvc = call(f"read claim {namespace}/{claim}", read, claim, namespace, absent=None)
    if pvc is not None and pvc.spec.volume_name != volume:
        raise KubeError(f"claim {namespace}/{claim} exists and is not this restore's: give restore_claim another name")
    return pvc


def run_restore(module) -> dict:
    """nerv.homelab.volume_restore: plan (check mode), or restore and wait until the new claim is Bound; with
    return_after a call may hand back part-way (ready false, progress saying how far)."""
    p = module.params
    api = api_client(p["kubeconfig"], p["context"])
    namespace, claim = p["namespace"], p["claim"]
    backup = newest_backup(api, namespace, claim, p["backup"])
    volume, new_claim = restored_names(namespace, claim, backup["metadata"]["name"])
    new_claim = p["restore_claim"] or new_claim
    result = {
        "changed": False,
        "ready": True,
        "backup": backup["metadata"]["name"],
        "backup_created": backup["status"].get("backupCreatedAt"),
        "volume": volume,
        "restore_claim": f"{namespace}/{new_claim}",
    }
    existing = _existing_claim(api, namespace, new_claim, volume)
    if existing is not None and existing.status and existing.status.phase == "Bound":
        # a task that repeats the call: the claim a try before this one made, since the wait started, is its change
        made = existing.metadata.creation_timestamp
        result["changed"] = bool(p["started"] and made and made.timestamp() >= int(p["started"]))
        return dict(result, progress=f"claim {namespace}/{new_claim} is Bound to volume {volume}")
    result["changed"] = True
    if module.check_mode:
        return dict(result, progress=f"would restore backup {result['backup']} into claim {namespace}/{new_claim}")
    custom, core = k8s_client.CustomObjectsApi(api), k8s_client.CoreV1Api(api)
    if _volume_status(api, volume) is None:
        body = _volume(volume, backup, p["replicas"])
        create = custom.create_namespaced_custom_object
        call(f"create volume {volume}", create, GROUP, VERSION, NAMESPACE, "volumes", body)
    turn = Turn(p["timeout"], p["started"], p["return_after"])
    if not _wait(lambda: _restore_progress(api, volume), turn, p["interval"], result):
        return dict(result, ready=False)
    pv, pvc = _volume_and_claim(volume, namespace, new_claim, backup["status"]["volumeSize"], p["storage_class"])
    if call(f"read PersistentVolume {volume}", core.read_persistent_volume, volume, absent=None) is None:
        call(f"create PersistentVolume {volume}", core.create_persistent_volume, pv)
    if existing is None:
        call(f"create claim {namespace}/{new_claim}", core.create_namespaced_persistent_volume_claim, namespace, pvc)
    if not _wait(lambda: _claim_progress(api, namespace, new_claim), turn, p["interval"], result):
        return dict(result, ready=False)
    return dict(result, progress=f"claim {namespace}/{new_claim} is Bound to volume {volume}")

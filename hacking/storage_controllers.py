"""The controllers a volume restore waits on, for the Kubernetes API emulator (kube_emulator.py): one step of each
moves the emulator's objects as the upstream controller would, and nothing is set Ready by fiat.

- Longhorn's volume controller, the restore path (longhorn-manager v1.9.1, controller/volume_controller.go):
  `checkAndInitVolumeRestore` starts a restore only for a Volume whose `spec.fromBackup` names a Backup the cluster
  has (by the `backup` parameter of the URL, as backupstore.DecodeBackupURL reads it; otherwise it errors with
  "failed to inspect the backup config" and the volume stays as it is), setting `status.restoreRequired` and
  `status.restoreInitiated`; `checkAndFinishVolumeRestore` clears `restoreRequired` once the engine has restored that
  backup and the volume is healthy. Here the engine's restore takes one step; a Backup not `Completed` is never
  restored (its data is not whole in the target).
- kube-controller-manager's PersistentVolume controller for a claim that names its volume
  (pkg/controller/volume/persistentvolume/pv_controller.go, `syncUnboundClaim` with `claim.Spec.VolumeName` set):
  Pending while that volume does not exist; bound when the volume is unclaimed, or pre-bound to this claim by
  namespace and name (`isVolumeBoundToClaim`, the uid only when the claimRef has one); Pending when it is bound to
  another claim. Binding also needs the volume to satisfy the claim (`checkVolumeSatisfyClaim`: the same storage
  class and at least the requested capacity).
"""

from __future__ import annotations

import urllib.parse

from kube_emulator import KINDS

LONGHORN = "longhorn-system"


def kind(name: str):
    return next(k for k in KINDS if k.kind == name)


def _quantity(value) -> int:
    """Bytes of a storage quantity as these tests write them (plain bytes, or Ki/Mi/Gi)."""
    text = str(value)
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40)):
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * factor
    return int(text)


def longhorn_step(store) -> bool:
    """One pass of Longhorn's volume controller over the restoring volumes; True when it changed something."""
    backups = {b["metadata"]["name"]: b for b in store.list(kind("Backup"), LONGHORN)}
    moved = False
    for volume in store.list(kind("Volume"), LONGHORN):
        url, status = (volume.get("spec") or {}).get("fromBackup"), volume.get("status") or {}
        if not url:
            continue
        name = volume["metadata"]["name"]
        if not status.get("restoreInitiated"):
            backup = backups.get(urllib.parse.parse_qs(urllib.parse.urlparse(url).query).get("backup", [""])[0])
            if backup is None or (backup.get("status") or {}).get("state") != "Completed":
                continue
            restoring = {"restoreInitiated": True, "restoreRequired": True, "state": "attached"}
            store.set_status("Volume", LONGHORN, name, {**restoring, "robustness": "unknown"})
            moved = True
        elif status.get("restoreRequired"):
            done = {**status, "restoreRequired": False, "state": "detached", "robustness": "healthy"}
            store.set_status("Volume", LONGHORN, name, done)
            moved = True
    return moved


def _satisfies(volume: dict, claim: dict) -> bool:
    wanted = ((claim["spec"].get("resources") or {}).get("requests") or {}).get("storage", "0")
    same_class = (volume["spec"].get("storageClassName") or "") == (claim["spec"].get("storageClassName") or "")
    return same_class and _quantity(volume["spec"]["capacity"]["storage"]) >= _quantity(wanted)


def bind_step(store) -> bool:
    """One pass of the PersistentVolume controller over the claims that name their volume."""
    moved = False
    for claim in store.list(kind("PersistentVolumeClaim"), None):
        wanted, meta = claim["spec"].get("volumeName"), claim["metadata"]
        if not wanted or (claim.get("status") or {}).get("phase") == "Bound":
            continue
        volume = next((v for v in store.list(kind("PersistentVolume"), None) if v["metadata"]["name"] == wanted), None)
        ref = (volume or {}).get("spec", {}).get("claimRef")
        ours = ref is None or (
            (ref.get("namespace"), ref.get("name")) == (meta["namespace"], meta["name"])
            and ref.get("uid") in (None, meta.get("uid"))
        )
        if volume is None or not ours or not _satisfies(volume, claim):
            store.set_status("PersistentVolumeClaim", meta["namespace"], meta["name"], {"phase": "Pending"})
            continue
        ref = {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}
        store.replace(kind("PersistentVolume"), None, wanted, {**volume, "spec": {**volume["spec"], "claimRef": ref}})
        store.set_status("PersistentVolume", None, wanted, {"phase": "Bound"})
        bound = {"phase": "Bound", "capacity": {"storage": volume["spec"]["capacity"]["storage"]}}
        store.set_status("PersistentVolumeClaim", meta["namespace"], meta["name"], bound)
        moved = True
    return moved

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage beside Longhorn: the StorageClass of the site's nfs section (csi-driver-nfs's, whose HelmRelease is
render.releases'), and which class is the cluster's default. Pure data: no I/O here."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.manifests import object_meta

NFS_PROVISIONER = "nfs.csi.k8s.io"


def default_storage_class(site: dict) -> str:
    """The name of the cluster's default StorageClass: longhorn, or the NFS class when the site says so."""
    nfs = site.get("nfs") or {}
    return nfs.get("storage_class", "nfs") if nfs.get("default_class") else "longhorn"


def nfs_storage_class(site: dict) -> list:
    """The StorageClass of the site's NFS export, in the driver's stage (infrastructure): a StorageClass needs no CRD
    or webhook, and a chart there whose volumes are on it (kube-prometheus-stack's, with nfs.default_class) waits
    for csi-driver-nfs, not for a later stage that could only start once that chart is Ready.

    Each volume is a directory <namespace>/<claim>-<volume> under the export: readable on the NAS, and never the
    directory of an earlier volume (with reclaim Retain, a claim made again under the same name would otherwise
    find the old data)."""
    nfs = site.get("nfs")
    if not nfs:
        return []
    # A StorageClass's parameters are immutable: Flux recreates it when the site changes them (volumes made from
    # it keep theirs)
    annotations = {"kustomize.toolkit.fluxcd.io/force": "enabled"}
    if default_storage_class(site) == nfs["storage_class"]:
        annotations["storageclass.kubernetes.io/is-default-class"] = "true"
    meta = {**object_meta(nfs["storage_class"]), "annotations": annotations}
    return [{
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": meta,
        "provisioner": NFS_PROVISIONER,
        "parameters": {"server": nfs["server"], "share": nfs["export"],
                       "subDir": "${pvc.metadata.namespace}/${pvc.metadata.name}-${pv.metadata.name}"},
        "mountOptions": list(nfs["options"]),
        "reclaimPolicy": nfs["reclaim_policy"],
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }]  # fmt: skip

#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_restore
short_description: Restore a claim's Longhorn volume from its newest backup into a new claim
version_added: 0.1.0
description:
  - Finds the newest C(Completed) Longhorn C(Backup) of the volume claim O(namespace)/O(claim) (Longhorn records the
    claim a volume belonged to, so a claim that is gone can be restored too), or the one named by O(backup).
  - Restores it into a new Longhorn C(Volume) (C(spec.fromBackup)) and waits until Longhorn has finished
    (C(status.restoreInitiated) true, C(status.restoreRequired) false), then makes a PersistentVolume of the Longhorn
    CSI driver for it and the claim O(restore_claim) bound to it, and waits until that claim is C(Bound).
  - The original claim and its volume are never touched; point the workload at the new claim (or copy the data
    back) once it looks right. A second run finds the new claim bound to the restored volume and changes nothing.
  - In check mode it names the backup it would restore and the claim it would make, and changes nothing.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.wait
  - nerv.homelab.wait.progress
  - nerv.homelab.kubeconfig
  - nerv.homelab.attributes
attributes:
  diff_mode:
    support: none
    details: The result names the backup, the volume and the claim.
options:
  namespace:
    description: The namespace of the claim whose volume is restored.
    type: str
    required: true
  claim:
    description: The claim (PersistentVolumeClaim) whose volume is restored.
    type: str
    required: true
  backup:
    description: The Longhorn Backup to restore (its name); the newest completed one by default.
    type: str
  restore_claim:
    description: The new claim, in O(namespace); C(<claim>-restored) by default.
    type: str
  storage_class:
    description: The StorageClass the new volume and claim name (Longhorn's).
    type: str
    default: longhorn
  replicas:
    description: How many replicas the restored volume has.
    type: int
    default: 1
seealso:
  - module: nerv.homelab.keys_restore
"""

EXAMPLES = r"""
- name: Restore the newest backup of the app's data beside it
  nerv.homelab.volume_restore:
    kubeconfig: inventory/home/.state/kubeconfig
    namespace: podinfo
    claim: data
  register: restored
"""

RETURN = r"""
backup:
  description: The Longhorn Backup restored (or in check mode to be restored).
  returned: always
  type: str
backup_created:
  description: When that backup was made (Longhorn's C(status.backupCreatedAt)).
  returned: always
  type: str
volume:
  description: The restored Longhorn volume and PersistentVolume (the same name).
  returned: always
  type: str
restore_claim:
  description: The new claim, C(namespace/name).
  returned: always
  type: str
ready:
  description: Whether the new claim is Bound to the restored volume (false when a call handed back part-way).
  returned: always
  type: bool
progress:
  description: How far the restore got, in words.
  returned: always
  type: str
  sample: Longhorn is restoring volume restore-1a2b3c4d5e
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import kube, restore
from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module


def argument_spec() -> dict:
    return {
        **kube.KUBECONFIG_OPTIONS,
        **kube.WAIT_OPTIONS,
        **kube.PROGRESS_OPTIONS,
        "namespace": {"type": "str", "required": True},
        "claim": {"type": "str", "required": True},
        "backup": {"type": "str"},
        "restore_claim": {"type": "str"},
        "storage_class": {"type": "str", "default": "longhorn"},
        "replicas": {"type": "int", "default": 1},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: restore.run_restore(module))


if __name__ == "__main__":
    main()

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume backups through Longhorn, from the site's backup.volumes: the backup target in Longhorn's values and a
recurring backup job for every volume. Pure data: no I/O here.

Longhorn chart 1.9.1 (chart/values.yaml) sets the default BackupTarget from ``defaultBackupStore.backupTarget`` and
``pollInterval``; the job is a ``RecurringJob`` (longhorn.io/v1beta2, chart/templates/crds.yaml of v1.9.1) in the
group ``default``, which Longhorn applies to every volume that names no recurring job or group of its own, so a
volume made later is backed up too. The job needs Longhorn's CRDs, so it goes one stage after Longhorn's release.
"""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.manifests import object_meta

LONGHORN_NAMESPACE = "longhorn-system"
BACKUP_JOB = "nerv-backup"
BACKUP_STAGE = "infrastructure-config"
BACKUP_FILE = "volume-backups.yaml"


def volume_backups(site: dict) -> dict | None:
    return (site.get("backup") or {}).get("volumes")


def longhorn_backup_values(site: dict) -> dict:
    """Longhorn's values for the site's backup target (none without backup.volumes)."""
    volumes = volume_backups(site)
    if not volumes:
        return {}
    # the chart writes pollInterval into a ConfigMap as a string of seconds
    store = {"backupTarget": volumes["target"], "pollInterval": str(volumes["poll_interval"])}
    return {"defaultBackupStore": store}


def recurring_jobs(site: dict) -> list:
    """The backup job of every volume: at the site's schedule, keeping its newest backups."""
    volumes = volume_backups(site)
    if not volumes:
        return []
    spec = {
        "name": BACKUP_JOB,
        "task": "backup",
        "cron": volumes["schedule"],
        "retain": volumes["retain"],
        # one volume at a time: a homelab's NAS and network, not a backup window to fill
        "concurrency": 1,
        "groups": ["default"],
        "labels": {"nerv.homelab/site": site["site"]["name"]},
    }
    return [{"apiVersion": "longhorn.io/v1beta2", "kind": "RecurringJob",
             "metadata": object_meta(BACKUP_JOB, LONGHORN_NAMESPACE), "spec": spec}]  # fmt: skip

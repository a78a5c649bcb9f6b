"""Volume backups from the site's backup.volumes: Longhorn's backup target in its values, checked against the keys of
the pinned chart's values.yaml, and the recurring backup job checked against its CRD's schema, one stage after the
chart that installs the CRD."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops import backups, render
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import SiteError, load_site, parse_site

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (requirements-test.txt)")

REPO = Path(__file__).resolve().parents[6]
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# RecurringJob longhorn.io/v1beta2 as the CRD of Longhorn 1.9.1 defines it (chart/templates/crds.yaml at tag v1.9.1,
# the chart version the platform pins): every field of its spec with its type and the task's enum. No installable
# package models this CRD, so it is written out here; additionalProperties false stands for the API server pruning
# a field the CRD lacks.
RECURRING_JOB = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "longhorn.io/v1beta2"},
        "kind": {"const": "RecurringJob"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "concurrency": {"type": "integer"},
                "cron": {"type": "string"},
                "groups": {"type": "array", "items": {"type": "string"}},
                "labels": STRING_MAP,
                "name": {"type": "string"},
                "parameters": STRING_MAP,
                "retain": {"type": "integer"},
                "task": {
                    "type": "string",
                    "enum": [
                        "snapshot",
                        "snapshot-force-create",
                        "snapshot-cleanup",
                        "snapshot-delete",
                        "backup",
                        "backup-force-create",
                        "filesystem-trim",
                        "system-backup",
                    ],
                },  # fmt: skip
            },
        },
    },
}
# The keys of Longhorn 1.9.1's chart/values.yaml under defaultBackupStore (the chart reads no other there)
BACKUP_STORE_KEYS = {"backupTarget", "backupTargetCredentialSecret", "pollInterval"}


def site(volumes=None) -> dict:
    data = yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())
    data.pop("backup", None)
    if volumes is not None:
        data["backup"] = {"volumes": volumes}
    return parse_site(data)


def test_a_site_without_volume_backups_renders_none():
    plain = site()
    assert backups.longhorn_backup_values(plain) == {} and backups.recurring_jobs(plain) == []
    files = render.render(plain, "clusters/home")
    assert not any(path.endswith(backups.BACKUP_FILE) for path in files)
    (longhorn,) = files["platform/home/infrastructure/longhorn.yaml"]
    assert "defaultBackupStore" not in longhorn["spec"]["values"]


def test_the_backup_target_and_the_job_follow_the_site_with_defaults():
    backed_up = site({"target": "nfs://nas.lan:/export/longhorn"})
    files = render.render(backed_up, "clusters/home")
    (longhorn,) = files["platform/home/infrastructure/longhorn.yaml"]
    store = longhorn["spec"]["values"]["defaultBackupStore"]
    assert store == {"backupTarget": "nfs://nas.lan:/export/longhorn", "pollInterval": "300"}
    assert set(store) <= BACKUP_STORE_KEYS
    assert longhorn["spec"]["values"]["defaultSettings"], "the other values stay"
    (job,) = files[f"platform/home/{backups.BACKUP_STAGE}/{backups.BACKUP_FILE}"]
    jsonschema.validate(job, RECURRING_JOB)
    assert job["metadata"] == {"name": "nerv-backup", "namespace": "longhorn-system"}
    assert job["spec"]["cron"] == "0 3 * * *" and job["spec"]["retain"] == 14 and job["spec"]["task"] == "backup"
    assert job["spec"]["groups"] == ["default"], "the group Longhorn gives every volume without jobs of its own"
    stage = files[f"platform/home/{backups.BACKUP_STAGE}/kustomization.yaml"][0]["resources"]
    assert backups.BACKUP_FILE in stage
    # the CRD comes with Longhorn's chart (infrastructure): the job is applied in the next stage, not with it
    assert render.STAGES.index(backups.BACKUP_STAGE) == render.STAGES.index("infrastructure") + 1


def test_the_schedule_retention_and_poll_interval_are_the_sites():
    backed_up = site({"target": "nfs://192.168.10.4:/b", "schedule": "@weekly", "retain": 4, "poll_interval": 0})
    (job,) = backups.recurring_jobs(backed_up)
    assert (job["spec"]["cron"], job["spec"]["retain"]) == ("@weekly", 4)
    assert backups.longhorn_backup_values(backed_up)["defaultBackupStore"]["pollInterval"] == "0"


def test_the_schema_of_the_crd_catches_a_misspelt_field_or_an_unknown_task():
    (job,) = backups.recurring_jobs(site({"target": "nfs://nas:/b"}))
    typo = copy.deepcopy(job)
    typo["spec"]["retian"] = typo["spec"].pop("retain")
    with pytest.raises(jsonschema.ValidationError, match="retian"):
        jsonschema.validate(typo, RECURRING_JOB)
    bad = copy.deepcopy(job)
    bad["spec"]["task"] = "backups"
    with pytest.raises(jsonschema.ValidationError, match="backups"):
        jsonschema.validate(bad, RECURRING_JOB)


@pytest.mark.parametrize(
    ("volumes", "field", "words"),
    [
        ({"target": "s3://bucket@us-east-1/x"}, "backup.volumes.target", ["nfs://"]),
        ({"target": "nfs://nas/export"}, "backup.volumes.target", ["nfs://"]),
        ({"target": "nfs://nas:/b", "schedule": "daily"}, "backup.volumes.schedule", ["five cron fields"]),
        ({"target": "nfs://nas:/b", "retain": 0}, "backup.volumes.retain", ["from 1 to 100"]),
    ],
)
def test_bad_volume_backups_are_refused_with_the_field_and_the_fix(tmp_path, volumes, field, words):
    data = yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())
    data["backup"] = {"volumes": volumes}
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SiteError) as raised:
        load_site(str(path))
    problems = [p for p in raised.value.problems if p.path == field]
    assert problems, str(raised.value)
    text = " ".join(f"{p.message} {p.fix}" for p in problems)
    assert all(word in text for word in words), text

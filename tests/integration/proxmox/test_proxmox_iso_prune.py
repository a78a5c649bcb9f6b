"""nerv.homelab.proxmox_iso_prune in real playbooks against fakepve: ISOs uploaded by nerv.homelab.proxmox_iso
(so the record knows them), one put on the storage through the API alone, one attached to a VM."""

from __future__ import annotations

import json

import pytest

from .test_proxmox_iso import make_iso

MODULE = "nerv.homelab.proxmox_iso_prune"
NODE = "pve1"
DIFF = ("--diff", "-vvv")  # results keep their diff only at -vvv
RESCUE_VMID = 150


def play(*tasks):
    return [{"name": "Prune", "hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}]


@pytest.fixture
def state_dir(tmp_path):
    return str(tmp_path / "records")


def run(ansible_cli, pve_site, *tasks, check=False, args=()):
    result = ansible_cli.playbook(play(*tasks), *args, env=pve_site.proxmox_env(), check=check)
    assert pve_site.token_secret not in result.output, "the token secret leaked into the output"
    return result


def upload_ours(ansible_cli, pve_site, tmp_path, state_dir, count):
    """count installer builds uploaded with proxmox_iso (oldest first); their upload times set a minute apart,
    as separate builds would be (the fake stamps whole seconds, and these uploads share one)."""
    tasks, volids = [], []
    for number in range(count):
        (tmp_path / f"build{number}").mkdir()
        src, _sha = make_iso(tmp_path / f"build{number}" / "nixos-installer.iso", seed=f"build-{number}".encode())
        upload = {"node": NODE, "src": str(src), "state_dir": state_dir}
        tasks.append({"name": f"Upload {number}", "nerv.homelab.proxmox_iso": upload})
    uploaded = run(ansible_cli, pve_site, *tasks)
    assert uploaded.rc == 0, uploaded.describe()
    volumes = pve_site.pve.storages["local"]["volumes"]
    for number in range(count):
        volid = uploaded.task(f"Upload {number}")["volid"]
        volumes[volid.split(":", 1)[1]]["ctime"] = 1_700_000_000 + 60 * number
        volids.append(volid)
    return volids


def client(pve_site):
    from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import ProxmoxClient
    from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxSettings

    settings = ProxmoxSettings(
        url=pve_site.url, token_id=pve_site.token_id, token_secret=pve_site.token_secret, ca_path=pve_site.cafile
    )
    return ProxmoxClient(settings)


def prune(state_dir, **options):
    values = {"node": NODE, "storage": "local", "state_dir": state_dir, **options}
    return {"name": "Prune", MODULE: values, "register": "pruned"}


def isos(pve_site):
    return sorted(
        f"local:{name}" for name in pve_site.pve.storages["local"].get("volumes", {}) if name.startswith("iso/")
    )


def records(state_dir):
    with open(f"{state_dir}/records.json", encoding="utf-8") as handle:
        return {key.rsplit("/", 2)[-1].split("local:iso/")[-1]: value for key, value in json.load(handle).items()}


def deletes(pve_site):
    return [r for r in pve_site.pve.requests if r[0] == "DELETE" and "/content/" in r[1]]


@pytest.fixture
def storage(ansible_cli, pve_site, tmp_path, state_dir):
    """Four builds of ours (build 0 oldest), a foreign ISO named like ours and older than all of them, and
    build 1 attached to a VM as its cdrom."""
    ours = upload_ours(ansible_cli, pve_site, tmp_path, state_dir, 4)
    api = client(pve_site)
    src, sha = make_iso(tmp_path / "foreign.iso", seed=b"foreign")
    foreign_name = f"nixos-installer-{sha[:12]}.iso"  # exactly the name proxmox_iso would give it
    fields = [("content", "iso"), ("checksum", sha), ("checksum-algorithm", "sha256")]
    api.wait_task(api.upload(f"/nodes/{NODE}/storage/local/upload", fields, "filename", str(src), foreign_name))
    foreign = f"local:iso/{foreign_name}"
    pve_site.pve.storages["local"]["volumes"][f"iso/{foreign_name}"]["ctime"] = 1_600_000_000
    vm = {"vmid": RESCUE_VMID, "name": "rescue", "memory": 512, "ide2": f"{ours[1]},media=cdrom"}
    api.wait_task(api.post(f"/nodes/{NODE}/qemu", **vm))
    pve_site.pve.requests.clear()
    return ours, foreign


def test_check_mode_then_prune_then_nothing_to_do(ansible_cli, pve_site, state_dir, storage):
    ours, foreign = storage
    everything = sorted([*ours, foreign])
    assert isos(pve_site) == everything
    task = prune(state_dir, keep=2, current=ours[3])

    checked = run(ansible_cli, pve_site, task, check=True, args=DIFF)
    assert checked.rc == 0, checked.describe()
    would = checked.task("Prune")
    assert would["changed"] is True and would["deleted"] == [ours[0]] and would["failures"] == []
    assert isos(pve_site) == everything and deletes(pve_site) == [], "check mode deleted"
    assert len(records(state_dir)) == 4, "check mode forgot a record"
    assert would["diff"]["before"]["isos"] == everything
    assert would["diff"]["after"]["isos"] == sorted([*ours[1:], foreign])

    first = run(ansible_cli, pve_site, task, args=DIFF)
    assert first.rc == 0, first.describe()
    result = first.task("Prune")
    assert result["changed"] is True and result["deleted"] == would["deleted"] == [ours[0]]
    assert {k["volid"]: k["reason"] for k in result["kept"]} == {
        ours[3]: "one of the newest 2",
        ours[2]: "one of the newest 2",
    }
    untouched = {s["volid"]: s["reason"] for s in result["untouched"]}
    assert untouched == {
        foreign: "no record of an upload by nerv.homelab to this API URL, node and storage: not ours",
        ours[1]: f"attached to VM {RESCUE_VMID} ide2: detach it to let it go",
    }
    assert untouched == {s["volid"]: s["reason"] for s in would["untouched"]}, "check mode reported another list"
    assert result["kept"] == would["kept"]
    assert [w for w in result["warnings"] if ours[1] in w] == [
        f"{ours[1]} is kept: attached to VM {RESCUE_VMID} ide2: detach it to let it go"
    ], "in use, not said so"
    assert f"{ours[1]} is kept: attached to VM {RESCUE_VMID} ide2" in first.output
    assert isos(pve_site) == sorted([*ours[1:], foreign]), "foreign or in-use ISO deleted, or the old one kept"
    assert [r[1] for r in deletes(pve_site)] == [f"/api2/json/nodes/{NODE}/storage/local/content/{ours[0]}"]
    assert ours[0].split("/", 1)[1] not in records(state_dir), "the record of the deleted ISO stays"
    assert len(records(state_dir)) == 3

    second = run(ansible_cli, pve_site, task)
    assert second.rc == 0, second.describe()
    again = second.task("Prune")
    assert again["changed"] is False and again["deleted"] == [] and len(deletes(pve_site)) == 1
    assert isos(pve_site) == sorted([*ours[1:], foreign])


def test_once_detached_the_old_iso_goes_too_and_keep_1_leaves_the_current_one(
    ansible_cli, pve_site, state_dir, storage
):
    ours, foreign = storage
    api = client(pve_site)
    api.put(f"/nodes/{NODE}/qemu/{RESCUE_VMID}/config", ide2="none,media=cdrom")
    pruned = run(ansible_cli, pve_site, prune(state_dir, keep=1, current=ours[3]))
    assert pruned.rc == 0, pruned.describe()
    result = pruned.task("Prune")
    assert result["deleted"] == ours[:3], "not oldest first"
    assert "is kept: attached" not in pruned.output
    assert isos(pve_site) == sorted([ours[3], foreign])
    assert list(records(state_dir)) == [ours[3].split("/", 1)[1]]


def test_a_failed_delete_is_reported_and_the_others_still_go(ansible_cli, pve_site, state_dir, storage):
    ours, foreign = storage
    client(pve_site).put(f"/nodes/{NODE}/qemu/{RESCUE_VMID}/config", ide2="none,media=cdrom")
    pve_site.pve.fail("DELETE", f"/content/{ours[1]}", 500, "unable to remove volume: device busy")
    task = prune(state_dir, keep=1, current=ours[3])
    failed = run(ansible_cli, pve_site, task)
    assert failed.rc != 0
    result = failed.task("Prune")
    assert result["failures"] == [
        {
            "volid": ours[1],
            "error": f"Proxmox DELETE /nodes/{NODE}/storage/local/content/{ours[1]}: "
            "HTTP 500 unable to remove volume: device busy",
        }
    ]
    assert result["deleted"] == [ours[0], ours[2]] and result["changed"] is True
    assert "1 ISO(s) could not be deleted (2 deleted)" in result["msg"] and ours[1] in result["msg"]
    assert isos(pve_site) == sorted([ours[1], ours[3], foreign])
    assert sorted(records(state_dir)) == sorted(v.split("/", 1)[1] for v in (ours[1], ours[3])), (
        "the failed one must stay recorded, the deleted ones forgotten"
    )

    pve_site.pve.failures.clear()
    retried = run(ansible_cli, pve_site, task)
    assert retried.rc == 0, retried.describe()
    assert retried.task("Prune")["deleted"] == [ours[1]]
    assert isos(pve_site) == sorted([ours[3], foreign])


def test_a_failed_delete_task_is_reported_with_its_log(ansible_cli, pve_site, state_dir, storage):
    ours, _foreign = storage
    client(pve_site).put(f"/nodes/{NODE}/qemu/{RESCUE_VMID}/config", ide2="none,media=cdrom")
    # The fake refuses to remove a protected volume in the delete task itself, as PVE does.
    pve_site.pve.storages["local"]["volumes"][ours[0].split(":", 1)[1]]["protected"] = True
    failed = run(ansible_cli, pve_site, prune(state_dir, keep=2, current=ours[3]))
    assert failed.rc != 0
    result = failed.task("Prune")
    assert [f["volid"] for f in result["failures"]] == [ours[0]]
    assert "Proxmox task imgdel" in result["failures"][0]["error"] and "protected" in result["failures"][0]["error"]
    assert result["deleted"] == [ours[1]]


def test_bad_input_fails_early_naming_the_option_and_sends_nothing(ansible_cli, pve_site, state_dir):
    cases = [
        (prune(state_dir, keep=0, current="local:iso/a.iso"), "keep must be a whole number from 1 to 100"),
        (prune(state_dir, current="nfs:iso/a.iso"), "current 'nfs:iso/a.iso' is not an ISO volume of storage 'local'"),
    ]
    for task, expected in cases:
        failed = run(ansible_cli, pve_site, task)
        assert failed.rc != 0
        assert expected in failed.task("Prune")["msg"], failed.describe()
    assert pve_site.pve.requests == []

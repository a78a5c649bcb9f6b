"""nerv.homelab.proxmox_iso_prune's pure choice: which ISOs are ours, which of ours go, which stay and why."""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox import iso_prune_plan as retention
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.iso_plan import IsoError

STORAGE = "local"


def sha(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def ours(seed: str, ctime, size=1000, stem="nixos-installer"):
    """A listing entry and the record proxmox_iso wrote for it: (entry, {volid: record})."""
    digest = sha(seed)
    volid = f"{STORAGE}:iso/{stem}-{digest[:12]}.iso"
    entry = {"volid": volid, "content": "iso", "format": "iso", "size": size, "ctime": ctime}
    return entry, {volid: {"sha256": digest, "size": size}}


def listing(*made):
    entries, records = [], {}
    for entry, record in made:
        entries.append(entry)
        records.update(record)
    return retention.iso_volumes(entries, STORAGE), records


def by_volid(items):
    return {item["volid"]: item["reason"] for item in items}


def test_the_newest_two_of_ours_stay_and_the_rest_go_oldest_first():
    made = [ours(str(n), ctime=1000 + n) for n in range(5)]  # 1004 newest
    volumes, records = listing(*made)
    current = made[4][0]["volid"]
    choice = retention.choose(volumes, records, 2, current)
    assert choice.delete == [made[0][0]["volid"], made[1][0]["volid"], made[2][0]["volid"]]
    assert by_volid(choice.kept) == {current: "one of the newest 2", made[3][0]["volid"]: "one of the newest 2"}
    assert choice.untouched == [] and choice.in_use == []


def test_keep_one_leaves_only_the_current_iso():
    made = [ours(str(n), ctime=1000 + n) for n in range(3)]
    volumes, records = listing(*made)
    choice = retention.choose(volumes, records, 1, made[2][0]["volid"])
    assert choice.delete == [made[0][0]["volid"], made[1][0]["volid"]]
    assert [k["volid"] for k in choice.kept] == [made[2][0]["volid"]]


def test_nothing_goes_when_there_are_no_more_than_keep():
    made = [ours("a", ctime=10), ours("b", ctime=20)]
    volumes, records = listing(*made)
    choice = retention.choose(volumes, records, 2, made[1][0]["volid"])
    assert choice.delete == [] and len(choice.kept) == 2


def test_the_current_iso_stays_even_when_it_is_older_than_the_newest_keep():
    made = [ours(str(n), ctime=1000 + n) for n in range(4)]
    volumes, records = listing(*made)
    oldest = made[0][0]["volid"]  # a re-run of an older build
    choice = retention.choose(volumes, records, 2, oldest)
    assert choice.delete == [made[1][0]["volid"]]
    assert by_volid(choice.kept)[oldest] == "the ISO the new template was built from"
    assert by_volid(choice.kept)[made[3][0]["volid"]] == "one of the newest 2"


def test_a_look_alike_name_without_a_record_is_not_ours_and_is_never_deleted():
    made = [ours(str(n), ctime=1000 + n) for n in range(3)]
    volumes, records = listing(*made)
    foreign_entry, _record = ours("foreign", ctime=1)  # same stem and pattern, very old, no record
    volumes += retention.iso_volumes([foreign_entry], STORAGE)
    choice = retention.choose(volumes, records, 2, made[2][0]["volid"])
    assert foreign_entry["volid"] not in choice.delete
    assert by_volid(choice.untouched) == {foreign_entry["volid"]: retention.NOT_RECORDED}
    assert choice.delete == [made[0][0]["volid"]]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"name": "rescue.iso"}, "named explicitly, not after its checksum"),
        ({"record_sha": sha("other")}, "its name carries checksum"),
        ({"listed_size": 999}, "listed at 999 bytes, recorded at 1000: replaced since it was uploaded"),
        ({"ctime": 0}, "its upload time (ctime) is not listed"),
        ({"ctime": None}, "its upload time (ctime) is not listed"),
    ],
)
def test_recorded_isos_that_do_not_match_their_record_or_have_no_age_are_untouched(change, reason):
    entry, record = ours("old", ctime=5)
    [(volid, rec)] = record.items()
    if "name" in change:
        entry["volid"] = f"{STORAGE}:iso/{change['name']}"
        record = {entry["volid"]: rec}
        volid = entry["volid"]
    if "record_sha" in change:
        rec["sha256"] = change["record_sha"]
    if "listed_size" in change:
        entry["size"] = change["listed_size"]
    if "ctime" in change:
        entry["ctime"] = change["ctime"]
    newest = [ours(str(n), ctime=100 + n) for n in range(2)]
    volumes, records = listing((entry, record), *newest)
    choice = retention.choose(volumes, records, 2, newest[1][0]["volid"])
    assert choice.delete == []
    assert by_volid(choice.untouched)[volid].startswith(reason)


def test_an_iso_attached_to_a_vm_is_untouched_and_said_so_and_does_not_count_towards_keep():
    made = [ours(str(n), ctime=1000 + n) for n in range(4)]
    volumes, records = listing(*made)
    attached = made[1][0]["volid"]
    in_use = retention.attached([(105, {"ide2": f"{attached},media=cdrom", "scsi0": "local-lvm:vm-105-disk-0"})])
    choice = retention.choose(volumes, records, 2, made[3][0]["volid"], in_use)
    assert choice.delete == [made[0][0]["volid"]]
    assert by_volid(choice.untouched) == {attached: "attached to VM 105 ide2: detach it to let it go"}
    assert choice.in_use == [attached]


def test_attached_reads_every_drive_kind_and_the_cdrom_alias_but_not_other_keys():
    configs = [
        (101, {"ide2": "local:iso/a.iso,media=cdrom", "sata1": "local:iso/b.iso,media=cdrom"}),
        (102, {"scsi3": "local:iso/a.iso,media=cdrom", "virtio0": "local:iso/c.img", "cdrom": "local:iso/d.iso"}),
        (103, {"description": "installer local:iso/e.iso", "ide0": "none,media=cdrom", "net0": "virtio,bridge=vmbr0"}),
        (104, None),
    ]
    found = retention.attached(configs)
    assert found["local:iso/a.iso"] == ["VM 101 ide2", "VM 102 scsi3"]
    assert found["local:iso/b.iso"] == ["VM 101 sata1"]
    assert found["local:iso/c.img"] == ["VM 102 virtio0"] and found["local:iso/d.iso"] == ["VM 102 cdrom"]
    assert "local:iso/e.iso" not in found


def test_isos_uploaded_in_the_same_second_as_the_last_kept_one_all_stay():
    made = [ours("old", ctime=10), ours("a", ctime=50), ours("b", ctime=50), ours("new", ctime=90)]
    volumes, records = listing(*made)
    choice = retention.choose(volumes, records, 2, made[3][0]["volid"])
    assert choice.delete == [made[0][0]["volid"]], "only the one older than the 2nd newest goes"
    reasons = by_volid(choice.kept)
    assert set(reasons) == {made[1][0]["volid"], made[2][0]["volid"], made[3][0]["volid"]}
    assert sorted(reasons.values()).count("one of the newest 2") == 2
    assert "uploaded in the same second as the newest 2" in reasons.values()


def test_ties_below_the_boundary_go_in_a_stable_order():
    made = [ours("x", ctime=10), ours("y", ctime=10), ours("new", ctime=90)]
    volumes, records = listing(*made)
    choice = retention.choose(volumes, records, 1, made[2][0]["volid"])
    assert choice.delete == sorted([made[0][0]["volid"], made[1][0]["volid"]])
    volumes.reverse()
    assert retention.choose(volumes, records, 1, made[2][0]["volid"]).delete == choice.delete


def test_a_current_iso_that_is_not_ours_stays_and_does_not_take_a_place_among_the_newest():
    made = [ours(str(n), ctime=1000 + n) for n in range(3)]
    volumes, records = listing(*made)
    foreign, _record = ours("handmade", ctime=2000)
    volumes += retention.iso_volumes([foreign], STORAGE)
    choice = retention.choose(volumes, records, 2, foreign["volid"])
    assert by_volid(choice.kept)[foreign["volid"]] == "the ISO the new template was built from"
    assert choice.delete == [made[0][0]["volid"]]


def test_every_listed_iso_gets_exactly_one_verdict():
    made = [ours(str(n), ctime=1000 + n) for n in range(6)]
    volumes, records = listing(*made)
    extra = {"volid": "local:iso/rescue.iso", "content": "iso", "size": 1, "ctime": 3}
    volumes += retention.iso_volumes([extra], STORAGE)
    in_use = {made[2][0]["volid"]: ["VM 9 ide2"]}
    choice = retention.choose(volumes, records, 2, made[5][0]["volid"], in_use)
    seen = choice.delete + [k["volid"] for k in choice.kept] + [s["volid"] for s in choice.untouched]
    assert sorted(seen) == sorted(v["volid"] for v in volumes)


def test_the_listing_keeps_only_iso_volumes_of_the_storage():
    entries = [
        {"volid": "local:iso/a.iso", "content": "iso", "size": 3, "ctime": 7},
        {"volid": "local:vztmpl/debian.tar.zst", "content": "vztmpl", "size": 3, "ctime": 7},
        {"volid": "nfs:iso/b.iso", "content": "iso", "size": 3, "ctime": 7},
        {"volid": "local:iso/c.iso", "content": "iso"},
        "junk",
    ]
    assert retention.iso_volumes(entries, "local") == [
        {"volid": "local:iso/a.iso", "name": "a.iso", "size": 3, "ctime": 7},
        {"volid": "local:iso/c.iso", "name": "c.iso", "size": None, "ctime": None},
    ]


def test_the_diff_lists_the_isos_before_and_after():
    volumes = retention.iso_volumes(
        [{"volid": "local:iso/b.iso", "ctime": 2}, {"volid": "local:iso/a.iso", "ctime": 1}], STORAGE
    )
    assert retention.diff_view(volumes, ["local:iso/a.iso"]) == {
        "before": {"isos": ["local:iso/a.iso", "local:iso/b.iso"]},
        "after": {"isos": ["local:iso/b.iso"]},
    }


@pytest.mark.parametrize("keep", [0, -1, 101, "2", 2.5, True, None])
def test_keep_must_be_a_whole_number_from_1_naming_the_site_option(keep):
    with pytest.raises(IsoError, match=r"^keep must be a whole number from 1 to 100 .*template\.keep_isos"):
        retention.check_keep(keep)


def test_keep_accepts_1_to_100():
    assert retention.check_keep(1) == 1 and retention.check_keep(100) == 100


@pytest.mark.parametrize("current", ["", None, "local:iso/", "nfs:iso/a.iso", "local:vztmpl/a.tar.zst", "a.iso"])
def test_current_must_be_an_iso_volume_of_the_storage(current):
    with pytest.raises(IsoError, match="is not an ISO volume of storage 'local'"):
        retention.check_current(current, STORAGE)
    assert retention.check_current("local:iso/a.iso", STORAGE) == "local:iso/a.iso"

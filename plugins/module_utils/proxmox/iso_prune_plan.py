# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure pieces of nerv.homelab.proxmox_iso_prune: which ISOs on a storage are ours, which of ours go, which stay.

Nothing here talks to Proxmox; iso_prune_apply.py lists the storage, reads the record and the VM configs, and acts.

An ISO is ours only when all of these hold (a name alone proves nothing: anyone can upload a file named
``nixos-installer-0a1b2c3d4e5f.iso``):
  - the record of nerv.homelab.proxmox_iso (iso_plan.Records) has an entry for it under this API URL, node and
    storage: this collection uploaded or downloaded it there;
  - its name is one proxmox_iso derived from the content, ``<stem>-<12 hex>.<iso|img>``, and the 12 hex digits
    are the start of the recorded sha256: an ISO given an explicit name is the user's to manage;
  - the size Proxmox lists is the recorded one: a file replaced since (an upload under the same name) is not.
Of ours, the newest `keep` by upload time (the listing's ctime) stay, the ISO the new template was built from
among them when it is ours; that ISO stays whatever its age, and so does one that would go but is attached to a
VM. Everything else of ours goes, oldest first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.guest import drives
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.iso_plan import HASH_PREFIX, IsoError

KEEP_MAX = 100
DERIVED = re.compile(rf"^.+-(?P<hash>[0-9a-f]{{{HASH_PREFIX}}})\.(?:iso|img)$")

NOT_RECORDED = "no record of an upload by nerv.homelab to this API URL, node and storage: not ours"


@dataclass
class Choice:
    """The verdict on every ISO of the listing: each volid is in exactly one of the three."""

    delete: list = field(default_factory=list)  # volids, oldest first
    kept: list = field(default_factory=list)  # [{volid, reason}] of ours that stay
    untouched: list = field(default_factory=list)  # [{volid, reason}] not ours, unknown age, or in use
    in_use: list = field(default_factory=list)  # volids of the untouched that would go but are attached to a VM


def check_keep(keep) -> int:
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= KEEP_MAX:
        raise IsoError(
            f"keep must be a whole number from 1 to {KEEP_MAX} (how many of the newest ISOs stay), not {keep!r}: "
            "set template.keep_isos in the site file"
        )
    return keep


def check_current(current, storage: str) -> str:
    """The volid of the ISO the new template was built from; it must be on the storage being cleaned."""
    text = str(current or "")
    if not text.startswith(f"{storage}:iso/") or len(text) == len(f"{storage}:iso/"):
        raise IsoError(
            f"current {current!r} is not an ISO volume of storage {storage!r}: give the volid the template was "
            f"built from, e.g. {storage}:iso/nixos-installer-0a1b2c3d4e5f.iso (proxmox_iso returns it as volid)"
        )
    return text


def iso_volumes(listing, storage: str) -> list:
    """The ISO entries of a content listing on this storage: [{volid, name, size, ctime}], ctime None if unknown."""
    prefix = f"{storage}:iso/"
    isos = [item for item in listing or [] if isinstance(item, dict) and item.get("content", "iso") == "iso"]
    return [
        {
            "volid": item["volid"],
            "name": item["volid"][len(prefix) :],
            "size": int(item["size"]) if item.get("size") is not None else None,
            # PVE lists a file's ctime in epoch seconds; 0 or none means the age cannot be told.
            "ctime": int(item["ctime"]) if item.get("ctime") else None,
        }
        for item in isos
        if str(item.get("volid", "")).startswith(prefix)
    ]


def not_ours(volume: dict, record: dict | None) -> str | None:
    """None when the volume is ours (see the module docstring), else why it is not."""
    if not record:
        return NOT_RECORDED
    match = DERIVED.fullmatch(volume["name"])
    if not match:
        return "named explicitly, not after its checksum: only checksum-named ISOs are cleaned up"
    recorded = str(record.get("sha256") or "")
    if not recorded.startswith(match.group("hash")):
        return f"its name carries checksum {match.group('hash')}, the record sha256 {recorded[:HASH_PREFIX] or 'none'}"
    size = record.get("size")
    if size is not None and volume["size"] is not None and int(size) != volume["size"]:
        return f"listed at {volume['size']} bytes, recorded at {size}: replaced since it was uploaded"
    return None


def attached(configs) -> dict:
    """{volid: ['VM 105 ide2', ...]} of the drives in VM configs (an iterable of (vmid, config))."""
    found = {}
    for vmid, config in configs:
        for key, volume in drives(config):
            found.setdefault(volume, []).append(f"VM {vmid} {key}")
    return found


def choose(volumes: list, records: dict, keep: int, current: str, in_use: dict | None = None) -> Choice:
    """Which go and which stay.

    volumes: iso_volumes(); records: {volid: record} for this API URL, node and storage; keep: how many of the
    newest of ours stay (current among them when it is ours); current: the volid that stays whatever its age;
    in_use: attached() of the VMs that may use the storage.

    Ties: when ISOs share the ctime of the keep-th newest, none of them is older than a kept one, so all of
    them stay (a listing in whole seconds cannot order them)."""
    in_use = in_use or {}
    choice = Choice()
    ours = []
    for volume in volumes:
        reason = not_ours(volume, records.get(volume["volid"]))
        if reason is None and volume["ctime"] is None:
            reason = "its upload time (ctime) is not listed, so its age is unknown"
        if reason is None:
            ours.append(volume)
        elif volume["volid"] == current:
            choice.kept.append({"volid": current, "reason": "the ISO the new template was built from"})
        else:
            choice.untouched.append({"volid": volume["volid"], "reason": reason})
    ranked = sorted(ours, key=lambda v: (-v["ctime"], v["volid"]))
    boundary = ranked[keep - 1]["ctime"] if len(ranked) >= keep else None
    going = []
    for rank, volume in enumerate(ranked):
        volid = volume["volid"]
        if rank < keep:
            choice.kept.append({"volid": volid, "reason": f"one of the newest {keep}"})
        elif volid == current:
            choice.kept.append({"volid": volid, "reason": "the ISO the new template was built from"})
        elif volume["ctime"] == boundary:
            choice.kept.append({"volid": volid, "reason": f"uploaded in the same second as the newest {keep}"})
        elif volid in in_use:
            users = ", ".join(in_use[volid])
            choice.untouched.append({"volid": volid, "reason": f"attached to {users}: detach it to let it go"})
            choice.in_use.append(volid)
        else:
            going.append(volume)
    choice.delete = [v["volid"] for v in sorted(going, key=lambda v: (v["ctime"], v["volid"]))]
    return choice


def diff_view(volumes: list, deleted: list) -> dict:
    """The ISOs on the storage before and after, as diff mode shows them."""
    before = sorted(v["volid"] for v in volumes)
    gone = set(deleted)
    return {"before": {"isos": before}, "after": {"isos": [v for v in before if v not in gone]}}

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure pieces of nerv.homelab.proxmox_iso: names, checks, the decision table, sha256 streaming, the record.

Nothing here talks to Proxmox; the module (plugins/modules/proxmox_iso.py) wires these to ProxmoxClient.

Why a record: the Proxmox API lists a stored ISO's name and size, never a checksum of it, and an upload under
an existing name silently replaces the file. So "is the same content already there?" is answered by
  - the name, when it is derived from the content (<stem>-<first 12 hex of the sha256>.iso, the default):
    a volume of that name holds that content;
  - a controller-side record (volid -> sha256 and size, written after every upload or download this module
    made), when the name is chosen by the user: same sha256 recorded and the same size listed -> the same.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError

HASH_PREFIX = 12
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# What PVE keeps of an uploaded name (PVE::Storage::normalize_content_filename) and the ISO extensions it takes.
NAME = re.compile(r"^[A-Za-z0-9_.-]+\.(?:iso|img)$", re.IGNORECASE)
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
RECORD_FILE = "records.json"

ACTION_CREATE = "create"
ACTION_REPLACE = "replace"
ACTION_DELETE = "delete"
ACTION_NONE = "none"


class IsoError(ProxmoxError):
    """Bad input or a refusal: the module fails with the message, before anything is changed."""


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise IsoError(
            f"name {name!r} is not an ISO file name: give a name of letters, digits, '_', '-' and '.' that "
            "ends in .iso or .img (e.g. nixos-installer.iso), or leave name unset to name it after its checksum"
        )
    return name


def check_checksum(checksum) -> str | None:
    """The sha256 in lower case, None for none, IsoError for anything that is not 64 hex digits."""
    if checksum is None or checksum == "":
        return None
    text = str(checksum).strip()
    if text.lower().startswith("sha256:"):
        text = text[len("sha256:") :]
    if not SHA256.match(text):
        raise IsoError(
            f"checksum {checksum!r} is not a sha256: give the 64 hex digits `sha256sum FILE` prints "
            "(optionally prefixed with sha256:)"
        )
    return text.lower()


def source_basename(src: str | None = None, url: str | None = None) -> str:
    """The file name at the end of the local path or of the URL's path."""
    if src:
        return os.path.basename(src.rstrip("/"))
    path = urlsplit(url or "").path
    return unquote(path.rstrip("/").rsplit("/", 1)[-1])


def derived_name(basename: str, sha256: str) -> str:
    """<stem>-<first 12 hex of sha256>.<iso|img>: a new build gets a new name, the same build the same one.

    The stem is the source's name without .iso/.img and without characters PVE would rewrite; an .img
    source keeps .img, anything else becomes .iso."""
    stem, ext = basename, ".iso"
    match = re.search(r"\.(iso|img)$", basename, re.IGNORECASE)
    if match:
        stem, ext = basename[: match.start()], "." + match.group(1).lower()
    stem = UNSAFE.sub("_", stem).strip("._-") or "image"
    return f"{stem}-{sha256[:HASH_PREFIX]}{ext}"


def has_iso_content(status: dict) -> bool:
    """Whether a storage's status (or config) says it takes ISO images."""
    content = str((status or {}).get("content") or "")
    return "iso" in [item.strip() for item in content.split(",")]


def upload_fields(sha256: str) -> list:
    """The form fields of an ISO upload (in the order PVE needs them: all of them before the file part) or
    download."""
    return [("content", "iso"), ("checksum", sha256), ("checksum-algorithm", "sha256")]


def volid_of(storage: str, name: str) -> str:
    return f"{storage}:iso/{name}"


def find_volume(listing, volid: str) -> dict | None:
    """{volid, size} of the volume in a content listing, or None."""
    for item in listing or []:
        if isinstance(item, dict) and item.get("volid") == volid:
            size = item.get("size")
            return {"volid": volid, "size": int(size) if size is not None else None}
    return None


@dataclass(frozen=True)
class Decision:
    """What to do (create, replace, delete, none), why, and, for a refusal, the error to fail with."""

    action: str
    reason: str
    error: str | None = None


def decide(
    state: str,
    volid: str,
    listed: dict | None,
    record: dict | None,
    sha256: str | None,
    size: int | None,
    named_by_content: bool,
    force: bool,
) -> Decision:
    """The decision table.

    listed: {volid, size} as Proxmox lists it, or None; record: {sha256, size} this module wrote, or None;
    sha256/size: of the wanted content (size None when not known, e.g. for a URL); named_by_content: the
    name carries the checksum; force: replace content that differs or is unknown."""
    if state == "absent":
        if listed is None:
            return Decision(ACTION_NONE, f"{volid} is absent")
        return Decision(ACTION_DELETE, f"{volid} exists")
    if listed is None:
        return Decision(ACTION_CREATE, f"{volid} is absent")
    listed_size = listed.get("size")
    if size is not None and listed_size is not None and listed_size != size:
        return _differs(volid, force, f"its size is {listed_size} bytes, the wanted file's {size}")
    if named_by_content:
        return Decision(ACTION_NONE, f"{volid} exists and its name carries the checksum {sha256[:HASH_PREFIX]}")
    if record is None:
        if force:
            return Decision(ACTION_REPLACE, f"{volid} exists with no record of its checksum; force is set")
        return Decision(
            ACTION_NONE,
            "unknown content",
            error=(
                f"{volid} already exists and its content is unknown: Proxmox does not report checksums and "
                "there is no record of an upload by this module. Set force: true to replace it, or leave name "
                "unset so the file is named after its checksum"
            ),
        )
    if record.get("sha256") != sha256:
        return _differs(volid, force, f"its recorded sha256 is {record.get('sha256')}, the wanted {sha256}")
    if record.get("size") is not None and listed_size is not None and record["size"] != listed_size:
        return _differs(volid, force, f"it was recorded at {record['size']} bytes and is listed at {listed_size}")
    return Decision(ACTION_NONE, f"{volid} holds sha256 {sha256} (recorded, size as listed)")


def _differs(volid, force, why):
    if force:
        return Decision(ACTION_REPLACE, f"{volid} holds other content ({why}); force is set")
    return Decision(
        ACTION_NONE,
        "different content",
        error=(
            f"{volid} already exists with different content ({why}). Set force: true to replace it, or leave "
            "name unset so each build gets its own name (<stem>-<sha256 prefix>.iso)"
        ),
    )


def result_action(action: str, from_url: bool) -> str:
    """The returned action: uploaded, downloaded, replaced, deleted or none."""
    if action == ACTION_CREATE:
        return "downloaded" if from_url else "uploaded"
    return {ACTION_REPLACE: "replaced", ACTION_DELETE: "deleted"}.get(action, "none")


def known_sha256(record: dict | None, sha256: str | None, named_by_content: bool) -> str | None:
    """The sha256 a listed volume is known to hold: the recorded one, else the one its name carries."""
    if record:
        return record.get("sha256")
    return sha256 if named_by_content else None


def diff_view(volid: str, volume: dict | None, sha256: str | None = None) -> dict:
    """A volume as diff mode shows it."""
    if volume is None:
        return {"volid": volid, "state": "absent"}
    view = {"volid": volid, "state": "present", "size": volume.get("size")}
    if sha256:
        view["sha256"] = sha256
    return view


def record_key(api_url: str, node: str, storage: str, volid: str) -> str:
    return f"{api_url.rstrip('/')}/{node}/{storage}/{volid}"


class Records:
    """The controller-side record of what this module put on which storage: {key: {sha256, size}} in one JSON
    file, replaced atomically (written beside it, then renamed)."""

    def __init__(self, directory: str):
        self.directory = os.path.expanduser(directory)
        self.path = os.path.join(self.directory, RECORD_FILE)

    def load(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise IsoError(f"the record {self.path} cannot be read ({exc}): fix or remove it (state_dir)") from None
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> dict | None:
        found = self.load().get(key)
        return found if isinstance(found, dict) else None

    def put(self, key: str, value: dict | None) -> None:
        """Set (or, for None, drop) one entry, under a lock so runs in parallel do not lose each other's."""
        if value is None and key not in self.load():
            return
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            with open(os.path.join(self.directory, ".records.lock"), "a", encoding="utf-8") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                data = self.load()
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
                write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True))
        except OSError as exc:
            raise IsoError(
                f"cannot write the record {self.path} ({exc}): set state_dir to a writable directory"
            ) from None

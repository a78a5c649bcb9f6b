# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site's keys in one age-encrypted archive, and a new controller brought back from it.

An export is ``<site>-keys-<UTC time>.tar.age`` (a tar, encrypted to one recovery recipient or to a passphrase, in
the age format the ``age`` tool reads), a ``.sha256`` beside it in ``sha256sum`` format, and a ``.json`` listing of
what it holds: file names, sizes and digests, and the admin identities by their public recipient only. The tar holds
``identities/keys.txt`` (the admins' age identities this controller has) and ``site/<path>`` for each of the site's
key files (encrypted sops files, ``.sops.yaml``, public host keys, known_hosts).

An export is written only when what it would hold differs from the newest listing of the site in the destination,
so a backup run twice changes nothing. No function here puts an identity or a passphrase in a message.
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import io
import json
import os
import tarfile

from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic
from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError

IDENTITIES = "identities/keys.txt"
LISTING = "nerv-keys.json"
SITE = "site/"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- export ---------------------------------------------------------------------------------------------------------


def site_files(site_dir: str, paths: list) -> dict:
    """{relative path: bytes} of the files and the files below the directories of paths (relative to site_dir)."""
    found = {}
    for path in paths:
        full = os.path.join(site_dir, path)
        if os.path.isfile(full):
            found[os.path.normpath(path)] = full
        for root, dirs, files in os.walk(full):
            dirs.sort()
            for name in sorted(files):
                found[os.path.relpath(os.path.join(root, name), site_dir)] = os.path.join(root, name)
    out = {}
    for relative in sorted(found):
        if relative.startswith(".."):
            raise SopsError(f"{relative} is outside the site's directory {site_dir}: list paths inside it")
        with open(found[relative], "rb") as handle:
            out[relative] = handle.read()
    return out


def admin_identities(held: list, admin_recipients: list) -> dict:
    """{recipient: identity text} of the admins' X25519 identities among those this controller holds."""
    out = {}
    for identity in held:
        if identity.public in admin_recipients and identity.public not in out:
            out[identity.public] = str(identity.key)
    if not out:
        raise SopsError(
            "none of the site's admin identities is on this controller (sops.admin_recipients: "
            f"{', '.join(admin_recipients)}): set SOPS_AGE_KEY_FILE to the admin key file, then back up again"
        )
    return out


def listing(site: str, files: dict, identities: dict, encrypted_to: str) -> dict:
    """What an export holds, without a value: file names, sizes and digests; identities by recipient."""
    return {
        "site": site,
        "encrypted_to": encrypted_to,
        "identities": sorted(identities),
        "files": [{"path": path, "size": len(data), "sha256": _digest(data)} for path, data in files.items()],
    }


def _tar(files: dict, identities: dict, listed: dict) -> bytes:
    keys = "".join(f"# recipient: {public}\n{secret}\n" for public, secret in sorted(identities.items()))
    members = {LISTING: (json.dumps(listed, indent=2) + "\n").encode(), IDENTITIES: keys.encode()}
    members.update((SITE + path, data) for path, data in files.items())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, int(listed["created_epoch"])
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def encrypt(data: bytes, recipient: str | None, passphrase: str | None) -> bytes:
    age.require_libraries()
    if passphrase:
        return age.pyrage.passphrase.encrypt(data, passphrase)
    return age.pyrage.encrypt(data, [age.pyrage.x25519.Recipient.from_str(age.check_recipient(recipient))])


def newest_listing(dest: str, site: str) -> tuple[str, dict] | tuple[None, None]:
    """(archive path, listing) of the site's newest export in dest, or (None, None)."""
    for path in sorted(glob.glob(os.path.join(glob.escape(dest), f"{glob.escape(site)}-keys-*.json")), reverse=True):
        try:
            with open(path, encoding="utf-8") as handle:
                return path[: -len(".json")] + ".tar.age", json.load(handle)
        except (OSError, ValueError):
            continue
    return None, None


def _unchanged(old: dict | None, new: dict) -> bool:
    keep = ("site", "encrypted_to", "identities", "files")
    return old is not None and all(old.get(key) == new[key] for key in keep)


def export(params: dict, held: list, check_mode: bool, now: datetime.datetime | None = None) -> dict:
    """Write a new export when what it would hold differs from the newest one in dest."""
    files = site_files(params["site_dir"], params["paths"])
    identities = admin_identities(held, params["admin_recipients"])
    encrypted_to = "passphrase" if params.get("passphrase") else age.check_recipient(params["recipient"])
    listed = listing(params["site"], files, identities, encrypted_to)
    previous, old = newest_listing(params["dest"], params["site"])
    result = {"changed": False, "archive": previous, "listing": old or listed, "files": len(files)}
    if _unchanged(old, listed):
        return result
    now = now or datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (older Pythons of managed nodes)
    archive = os.path.join(params["dest"], f"{params['site']}-keys-{now.strftime('%Y%m%dT%H%M%SZ')}.tar.age")
    listed.update(created=now.isoformat(timespec="seconds"), created_epoch=int(now.timestamp()))
    result.update(changed=True, archive=archive, listing=listed, previous=previous)
    if check_mode:
        return result
    sealed = encrypt(_tar(files, identities, listed), params.get("recipient"), params.get("passphrase"))
    listed["sha256"] = _digest(sealed)
    write_atomic(archive, sealed)
    write_atomic(archive + ".sha256", f"{listed['sha256']}  {os.path.basename(archive)}\n", 0o644)
    write_atomic(archive[: -len(".tar.age")] + ".json", json.dumps(listed, indent=2) + "\n", 0o644)
    return result


# ---- restore --------------------------------------------------------------------------------------------------------


def _checksum(archive: str, sealed: bytes) -> str:
    try:
        with open(archive + ".sha256", encoding="utf-8") as handle:
            expected = handle.read().split()[0]
    except (OSError, IndexError):
        return "absent"
    if expected != _digest(sealed):
        raise SopsError(f"{archive} does not match its checksum {archive}.sha256: the copy is damaged or not the one")
    return "verified"


def decrypt(sealed: bytes, archive: str, identity_file: str | None, passphrase: str | None) -> bytes:
    age.require_libraries()
    keys = [] if passphrase else [identity.key for identity in age.identities_in_file(identity_file)]
    try:
        if passphrase:
            return age.pyrage.passphrase.decrypt(sealed, passphrase)
        return age.pyrage.decrypt(sealed, keys)
    except Exception as exc:  # pyrage's DecryptError; its text names no key, ours names none either
        what = "the passphrase" if passphrase else f"the recovery identity in {identity_file}"
        raise SopsError(f"{what} does not open {archive}: is it the one the backup was made for?") from exc


def unpack(plain: bytes, archive: str) -> dict:
    """{member name: bytes} of an export; SopsError for anything an export does not hold."""
    members = {}
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tar:
        for info in tar:
            name = info.name
            parts = name.split("/")
            unsafe = not info.isfile() or name.startswith("/") or ".." in parts
            if unsafe or not (name in (LISTING, IDENTITIES) or name.startswith(SITE)):
                raise SopsError(f"{archive} holds {name!r}, which no export of nerv.homelab holds: not restored")
            members[name] = tar.extractfile(info).read()
    if LISTING not in members:
        raise SopsError(f"{archive} has no {LISTING}: it is not an export of nerv.homelab.keys_backup")
    return members


def default_key_file(env: dict) -> str:
    """Where sops reads the admin identities: SOPS_AGE_KEY_FILE, else <config>/sops/age/keys.txt."""
    return env.get("SOPS_AGE_KEY_FILE") or age.config_key_file(env)


def _identity_lines(text: str) -> dict:
    """{recipient: line} of the identity lines of an age key file's text."""
    return {identity.public: line for line in text.splitlines() for identity in _parsed(line)}


def _parsed(line: str) -> list:
    line = line.strip()
    return age.parse_identities(line, "the key file") if line.startswith("AGE-SECRET-KEY-") else []


def _read_or_empty(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SopsError(f"cannot read {path}: {exc.strerror}") from None


def _site_plan(members: dict, site_dir: str, force: bool) -> tuple[list, list, list]:
    """(to write, unchanged, differing) relative paths of the export's site files."""
    write, same, differ = [], [], []
    for name in sorted(n for n in members if n.startswith(SITE)):
        relative = name[len(SITE) :]
        current = _read_or_empty(os.path.join(site_dir, relative))
        if current == members[name]:
            same.append(relative)
        elif current is None or force:
            write.append(relative)
        else:
            differ.append(relative)
    return write, same, differ


def restore(params: dict, env: dict, check_mode: bool) -> dict:
    """Bring the site's key files and the admins' identities back from an export; refuse to overwrite a file that
    differs unless force is asked for."""
    archive = params["archive"]
    sealed = _read_or_empty(archive)
    if sealed is None:
        raise SopsError(f"{archive} does not exist: give the path of a <site>-keys-<time>.tar.age export")
    checksum = _checksum(archive, sealed)
    members = unpack(decrypt(sealed, archive, params.get("identity_file"), params.get("passphrase")), archive)
    listed = json.loads(members[LISTING])
    write, same, differ = _site_plan(members, params["site_dir"], params["force"])
    if differ:
        raise SopsError(
            f"these files of {params['site_dir']} differ from the export and were not replaced: {', '.join(differ)}; "
            "restore onto a clean checkout of the site, or set force=true to replace them"
        )
    key_file = params.get("key_file") or default_key_file(env)
    current = (_read_or_empty(key_file) or b"").decode("utf-8", "replace")
    have = _identity_lines(current)
    wanted = _identity_lines(members.get(IDENTITIES, b"").decode())
    added = [public for public in sorted(wanted) if public not in have]
    if not check_mode:
        for relative in write:
            write_atomic(os.path.join(params["site_dir"], relative), members[SITE + relative])
        if added:
            text = current if not current or current.endswith("\n") else current + "\n"
            text += "".join(f"# recipient: {public} (restored from {os.path.basename(archive)})\n" for public in added)
            write_atomic(key_file, text + "".join(wanted[public] + "\n" for public in added))
    return {
        "changed": bool(write or added),
        "site": listed.get("site"),
        "created": listed.get("created"),
        "checksum": checksum,
        "restored": write,
        "unchanged": len(same),
        "key_file": key_file,
        "identities_added": added,
        "diff": {"before": "\n".join(same) + "\n", "after": "\n".join(sorted(same + write)) + "\n"},
    }

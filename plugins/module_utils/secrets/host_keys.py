# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-host SSH host keys of a site: made on the controller or recorded from the host, never silently replaced.

Layout: ``<public_dir>/<host>.pub`` holds the public key in plain text (what known_hosts and the age recipient
come from); ``<secrets_dir>/<host>.sops.yaml`` holds the private key of a key made here, sops-encrypted to the
admins. A key made on the host itself (a VM's first boot) has only the public record.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from ansible_collections.nerv.homelab.plugins.module_utils.common import known_hosts
from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic
from ansible_collections.nerv.homelab.plugins.module_utils.common.known_hosts import pinned_keys
from ansible_collections.nerv.homelab.plugins.module_utils.common.names import is_dns_label
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import (
    SopsError,
    age_recipient_from_ssh,
    check_recipient,
    identities,
    new_ssh_host_key,
    public_line_of,
    require_libraries,
    ssh_public_key_blob,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.document import Rules, new_document
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.runner import admin_identity

PRIVATE_KEY = "ssh_host_ed25519_key"


@dataclass
class HostKey:
    """The plan for one host: what happens (kept, generated, recorded, rotated) and the resulting public key; for
    the new key of a two-step rotation, added (made or recorded now) or kept (added before)."""

    name: str
    action: str
    public_key: str | None = None
    private_pem: bytes | None = None
    source: str = "generated"

    @property
    def changes(self) -> bool:
        return self.action not in ("kept", "pending")

    @property
    def recipient(self) -> str | None:
        return age_recipient_from_ssh(self.public_key) if self.public_key else None


class Store:
    """The two directories of a site's host keys. A key rotation in two steps keeps the host's new key beside its
    current one (upcoming: <host>.next.pub, <host>.next.sops.yaml) until the old one is dropped."""

    def __init__(self, public_dir: str, secrets_dir: str):
        self.public_dir, self.secrets_dir = public_dir, secrets_dir

    def public_path(self, name: str, upcoming: bool = False) -> str:
        return os.path.join(self.public_dir, f"{name}{'.next' if upcoming else ''}.pub")

    def private_path(self, name: str, upcoming: bool = False) -> str:
        return os.path.join(self.secrets_dir, f"{name}{'.next' if upcoming else ''}.sops.yaml")

    def recorded(self, name: str, upcoming: bool = False) -> str | None:
        """The recorded public key line (with its comment), or None."""
        text = files.read_text(self.public_path(name, upcoming))
        return text.strip() if text and text.strip() else None


def fingerprint(line: str) -> str:
    """SHA256:... of a public key line, as ssh-keygen -l prints it."""
    blob = base64.b64decode(_normal(line).split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _normal(line: str) -> str:
    """'type body' of a public key line (the comment is not part of the key)."""
    parts = str(line).split()
    return " ".join(parts[:2])


STAGES = ("replace", "add", "drop")


def plan_next(store: Store, host: dict, current: HostKey, stage: str, rotating: bool, check_mode: bool):
    """The host's new key for a two-step rotation (None when it has none): step add makes or records it beside the
    current one, and a later add keeps it; other hosts and steps report one added before."""
    name, recorded = host["name"], store.recorded(host["name"], upcoming=True)
    given = _normal(host["next_public_key"]) if host.get("next_public_key") else None
    if recorded:
        if rotating and stage == "add" and given and given != _normal(recorded):
            raise SopsError(
                f"{name} is already rotating to {fingerprint(recorded)} ({store.public_path(name, upcoming=True)}), "
                f"not {fingerprint(given)}: finish that rotation (stage drop) first; nothing was changed"
            )
        return HostKey(name, "kept", recorded, source=_source(store, name, upcoming=True))
    if not (rotating and stage == "add"):
        return None
    if not current.public_key and not check_mode:
        raise SopsError(f"{name} has no key yet, so there is none to rotate: record or make its first key first")
    if given and current.public_key and given == _normal(current.public_key):
        raise SopsError(f"the new key given for {name} is its current key {fingerprint(given)}: give its new key")
    return _fresh(name, given, "added", check_mode)


def _source(store: Store, name: str, upcoming: bool = False) -> str:
    """Where a recorded key was made: here (its private key is kept, encrypted) or on the host."""
    return "generated" if os.path.exists(store.private_path(name, upcoming)) else "host"


def promote(store: Store, host: dict, current: HostKey) -> HostKey:
    """Step drop of a rotation: the new key recorded beside the current one becomes the host's key."""
    name, recorded = host["name"], store.recorded(host["name"], upcoming=True)
    if not recorded:
        return current  # dropped already (or never added): nothing left to do
    return HostKey(name, "rotated", recorded, source=_source(store, name, upcoming=True))


def check_hosts(hosts: list, rotate: list) -> None:
    names = [str(h.get("name", "")) for h in hosts]
    for name in names:
        if not is_dns_label(name):
            raise SopsError(f"host name {name!r} is not a DNS label (a-z, 0-9, '-'): it names the host's key files")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SopsError(f"hosts listed twice: {', '.join(duplicates)}")
    unknown = sorted(set(rotate) - set(names))
    if unknown:
        raise SopsError(f"rotate names hosts that are not in hosts: {', '.join(unknown)}")
    for host in hosts:
        if host.get("public_key"):
            ssh_public_key_blob(host["public_key"])


def plan_host(store: Store, host: dict, rotate: bool, check_mode: bool, pinned: dict | None = None) -> HostKey:
    """What to do for one host; raises (changing nothing) when a recorded key would be replaced silently."""
    name, given = host["name"], _normal(host["public_key"]) if host.get("public_key") else None
    if not given and not host.get("generate", True) and host.get("address"):
        # a VM's own key, pinned in known_hosts by proxmox_vms after reading it through the guest agent
        given = (pinned or {}).get(host["address"])
    recorded = store.recorded(name)
    if rotate:
        return _fresh(name, given, "rotated", check_mode)
    if recorded:
        if given and given != _normal(recorded):
            raise SopsError(
                f"host {name} now presents SSH host key {fingerprint(given)}, but {store.public_path(name)} "
                f"records {fingerprint(recorded)}: if {name} was reinstalled or replaced, rotate its key "
                f"explicitly (rotate: [{name}]); nothing was changed"
            )
        return HostKey(name, "kept", recorded, source=_source(store, name))
    if os.path.exists(store.private_path(name)):
        raise SopsError(
            f"{store.private_path(name)} holds a private key but {store.public_path(name)} is missing: restore the "
            f"public key file, or rotate {name}'s key explicitly"
        )
    if not given and not host.get("generate", True):
        # a host that makes its own key (a VM) and has not reported it yet: nothing to record until it does
        return HostKey(name, "pending", source="host")
    return _fresh(name, given, "recorded" if given else "generated", check_mode)


def _fresh(name: str, given: str | None, action: str, check_mode: bool) -> HostKey:
    if given:
        return HostKey(name, action, given, source="host")
    if check_mode:
        return HostKey(name, action)
    pem, public = new_ssh_host_key(f"root@{name}")
    return HostKey(name, action, public, pem)


def apply_promote(store: Store, key: HostKey) -> None:
    """Make the new key the host's: its private key (if kept here) in place of the old one, then the public record;
    the record of the new key goes last, so an interrupted run is finished by running step drop again."""
    name = key.name
    if os.path.exists(store.private_path(name, upcoming=True)):
        os.replace(store.private_path(name, upcoming=True), store.private_path(name))
    elif os.path.exists(store.private_path(name)):
        os.unlink(store.private_path(name))  # the host made its new key: the old private key is no one's now
    write_atomic(store.public_path(name), key.public_key + "\n", mode=0o644)
    os.unlink(store.public_path(name, upcoming=True))


def apply(store: Store, key: HostKey, admins: list) -> None:
    if not key.changes:
        return
    if key.action == "rotated" and store.recorded(key.name, upcoming=True) == key.public_key:
        apply_promote(store, key)
    else:
        _write(store, key, admins)


def _write(store: Store, key: HostKey, admins: list, upcoming: bool = False) -> None:
    """Write a key's files: the encrypted private key (when made here) first, then the public record that points
    at it."""
    private = store.private_path(key.name, upcoming)
    if key.private_pem is not None:
        document = new_document({PRIVATE_KEY: key.private_pem.decode()}, "yaml", admins, Rules())
        write_atomic(private, document.text())
    elif not upcoming and os.path.exists(private):
        # the host made its own key: a private key kept here would be a key no one uses
        os.unlink(private)
    write_atomic(store.public_path(key.name, upcoming), key.public_key + "\n", mode=0o644)


def private_pem(store: Store, key: HostKey, identities: list) -> bytes | None:
    """The host's private key (made now, or decrypted from its sops file), checked against the public record."""
    if key.private_pem is not None:
        return key.private_pem
    if key.source != "generated":
        return None
    plain = files.decrypt_file(store.private_path(key.name), identities)
    pem = str(plain.get(PRIVATE_KEY, "")).encode()
    if _normal(public_line_of(pem)) != _normal(key.public_key):
        raise SopsError(
            f"{store.private_path(key.name)} does not hold the private half of {store.public_path(key.name)}"
        )
    return pem


def write_extra_files(root: str, key: HostKey, pem: bytes) -> tuple[str, bool]:
    """<root>/<host>/etc/ssh/ssh_host_ed25519_key (0600) and .pub (0644), directories 0755, for --extra-files."""
    base = os.path.join(root, key.name)
    ssh_dir = os.path.join(base, "etc", "ssh")
    wanted = {
        os.path.join(ssh_dir, PRIVATE_KEY): (pem, 0o600),
        os.path.join(ssh_dir, PRIVATE_KEY + ".pub"): ((key.public_key + "\n").encode(), 0o644),
    }
    changed = False
    for directory in (base, os.path.join(base, "etc"), ssh_dir):
        if not os.path.isdir(directory):
            os.mkdir(directory, 0o755)
            changed = True
        os.chmod(directory, 0o755)
    for path, (data, mode) in wanted.items():
        if not _same(path, data, mode):
            write_atomic(path, data, mode=mode)
            changed = True
    return base, changed


def _same(path: str, data: bytes, mode: int) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read() == data and (os.stat(path).st_mode & 0o777) == mode
    except OSError:
        return False


def run(module) -> dict:
    """nerv.homelab.host_keys: the admins' identity first, when asked (without one no secret of the site can be read or
    re-keyed later on), then every host's key settled."""
    require_libraries()
    params = module.params
    found = {"admin_identity": admin_identity(params)} if params["require_identity"] else {}
    return {**settle(params, module.check_mode, lambda: identities(params)), **found}


def settle(params: dict, check_mode: bool, load_identities) -> dict:
    """Plan every host's key, write the plans (not in check mode), report.
    load_identities() gives the admin identities, asked for only when a generated private key must be opened."""
    admins = [check_recipient(a) for a in params["admin_recipients"]]
    if not admins:
        raise SopsError("admin_recipients is empty: the private host keys must be encrypted to at least one admin")
    stage = params.get("rotate_stage") or "replace"
    if stage not in STAGES:
        raise SopsError(f"rotate_stage must be one of {', '.join(STAGES)}, not {stage!r}")
    check_hosts(params["hosts"], params["rotate"])
    store = Store(params["public_dir"], params["secrets_dir"])
    before = {h["name"]: store.recorded(h["name"]) for h in params["hosts"]}
    pinned = pinned_keys(params["known_hosts"])
    plans, nexts = [], {}
    for host in params["hosts"]:
        key, upcoming = _plan(store, host, host["name"] in params["rotate"], stage, check_mode, pinned)
        plans.append(key)
        nexts[key.name] = upcoming
    if not check_mode:
        for key in plans:
            new_key = nexts[key.name]
            if new_key is not None and new_key.action == "added":
                _write(store, new_key, admins, upcoming=True)
            apply(store, key, admins)
    extra = _extra_files(params, check_mode, load_identities, store, plans)
    added = [n for n in nexts.values() if n and n.action == "added"]
    pinned = _pin(params, plans, check_mode)
    return {
        "changed": any(k.changes for k in plans)
        or bool(added)
        or any(changed for _path, changed in extra.values())
        or bool(pinned),
        "pinned": pinned,
        "hosts": {k.name: {**_describe(store, k, extra.get(k.name)), **_describe_next(nexts[k.name])} for k in plans},
        "recipients": {k.name: k.recipient for k in plans if k.public_key},
        "next_recipients": {n.name: n.recipient for n in nexts.values() if n and n.public_key},
        "diff": {"before": _listing(before), "after": _listing({k.name: k.public_key for k in plans})},
    }


def _pin(params: dict, plans: list, check_mode: bool) -> list:
    """With pin, every host with a key and an address pinned in known_hosts (one write); the hosts that changed."""
    if not params.get("pin"):
        return []
    if not params["known_hosts"]:
        raise SopsError("pin needs known_hosts: the file to pin the hosts' keys in")
    address = {h["name"]: h.get("address") for h in params["hosts"]}
    keys = {address[k.name]: k.public_key for k in plans if k.public_key and address[k.name]}
    changed = set(known_hosts.pin(params["known_hosts"], keys, check_mode))
    return sorted(name for name, where in address.items() if where in changed)


def _plan(store: Store, host: dict, rotating: bool, stage: str, check_mode: bool, pinned: dict):
    """(current key plan, new key plan or None) of one host, for the rotation stage asked for."""
    if rotating and stage == "replace" and store.recorded(host["name"], upcoming=True):
        raise SopsError(
            f"{host['name']} is being rotated in two steps ({store.public_path(host['name'], upcoming=True)}): "
            "finish with rotate_stage drop rather than replacing its key; nothing was changed"
        )
    key = plan_host(store, _current(store, host, pinned), rotating and stage == "replace", check_mode, pinned)
    if rotating and stage == "drop":
        key = promote(store, host, key)
    if key.action == "rotated":
        return key, None
    return key, plan_next(store, host, key, stage, rotating, check_mode)


def _current(store: Store, host: dict, pinned: dict) -> dict:
    """The host as plan_host sees it: a key it presents that is its recorded new key (re-pinned before step drop)
    is not a different key but the rotation under way."""
    upcoming = store.recorded(host["name"], upcoming=True)
    presented = host.get("public_key") or (pinned.get(host["address"]) if host.get("address") else None)
    if upcoming and presented and _normal(presented) == _normal(upcoming):
        return {**host, "public_key": None, "address": None}
    return host


def _describe_next(key: HostKey | None) -> dict:
    if key is None:
        return dict.fromkeys(("next_action", "next_public_key", "next_age_recipient"))
    return {"next_action": key.action, "next_public_key": key.public_key, "next_age_recipient": key.recipient}


def _extra_files(params: dict, check_mode: bool, load_identities, store, plans) -> dict:
    root = params["extra_files_dir"]
    if not root or check_mode:
        return {}
    ids, out = None, {}
    for key in plans:
        if key.source != "generated":
            continue
        if key.private_pem is None and ids is None:
            ids = load_identities()
        pem = private_pem(store, key, ids or [])
        out[key.name] = write_extra_files(root, key, pem)
    return out


def _describe(store, key, extra) -> dict:
    private = store.private_path(key.name) if key.source == "generated" else None
    return {
        "action": key.action,
        "public_key": key.public_key,
        "age_recipient": key.recipient,
        "source": key.source,
        "private_key_file": private,
        "extra_files": extra[0] if extra else None,
    }


def _listing(keys: dict) -> str:
    return "".join(f"{name}: {public or '(none)'}\n" for name, public in sorted(keys.items()))

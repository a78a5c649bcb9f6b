# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One VM of a site as pure decisions: checking the options, whose VM a vmid holds, the config keys that differ,
the disk size, the cloud-init encodings, and the actions to take.

Every VM nerv.homelab.proxmox_vm makes carries the tag ``nerv-site-<site>``; a VM without it is foreign and never
touched. Nothing here talks to Proxmox, so all of it is unit-tested with plain values.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, unquote

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.guest import (
    BUILD_PREFIX,
    OURS,
    PHASE_PREFIX,
    SITE_TAG_PREFIX,
    drives,
    networks,
    split_tags,
)
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.tasks import TRANSIENT_STATUSES

VMID_MIN, VMID_MAX = 100, 999999999
# The config keys proxmox_vm manages, in the order they are compared and shown.
CONFIG_KEYS = ("cores", "memory", "tags", "description", "onboot", "ciuser", "sshkeys", "ipconfig0", "nameserver",
               "searchdomain")  # fmt: skip
DISK_KEY = "scsi0"
# Keys PVE applies to a running VM at once; the others wait (pending) for its next start.
HOTPLUG = ("name", "description", "onboot", "tags", "protection")
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
GIB = 1024**3
HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"
# PVE's tag syntax (PVE::JSONSchema pve-tag).
_TAG = re.compile(r"^[a-z0-9_][a-z0-9_+.-]*$", re.IGNORECASE)
# PVE's VM name syntax (dns-name).
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)$", re.IGNORECASE)
_LOCKED = re.compile(r"VM is locked|can't lock file")


def fail(message: str):
    raise ProxmoxError(message)


def site_tag(site) -> str:
    tag = f"{SITE_TAG_PREFIX}{site or ''}"
    if not site or not _TAG.match(tag):
        fail(
            f"site {site!r} cannot name a Proxmox tag (nerv-site-<site>): use letters, digits, '_', '-', '+', '.', "
            "e.g. site: demo"
        )
    return tag.lower()


def check_options(params: dict) -> dict:
    """The options checked before anything is asked of Proxmox: a ProxmoxError names the first bad one and the fix."""
    vmid = params["vmid"]
    if not VMID_MIN <= vmid <= VMID_MAX:
        fail(f"vmid {vmid} is out of range: Proxmox vmids are {VMID_MIN}..{VMID_MAX}; take the one the site file gives")
    if not _NAME.fullmatch(params["name"] or ""):
        fail(
            f"name {params['name']!r} is not a valid VM name: use a DNS name (letters, digits, '-', dots between "
            "labels), e.g. cp1"
        )
    site_tag(params["site"])
    for tag in params.get("tags") or []:
        if not _TAG.match(str(tag)):
            fail(
                f"tags: {tag!r} has characters Proxmox refuses in tags: start with a letter, digit or '_', then use "
                "only letters, digits, '_', '-', '+', '.'"
            )
    for key, low in (("cores", 1), ("memory", 16), ("disk", 1)):
        if params.get(key) is not None and params[key] < low:
            fail(f"{key} must be at least {low}, not {params[key]}")
    for key in ("wait_timeout", "lock_timeout"):
        if params.get(key) is not None and params[key] < 0:
            fail(f"{key} must be 0 or more seconds, not {params[key]}")
    if params.get("ipconfig0") is not None:
        parse_ipconfig(params["ipconfig0"])
    if params.get("storage") and not params.get("full", True):
        fail("storage is only for full clones: drop storage, or set full: true")
    if any(not str(line).strip() for line in params.get("sshkeys") or []):
        fail("sshkeys holds an empty key: give one public key per item, e.g. 'ssh-ed25519 AAAA... me@laptop'")
    networks(params.get("cidr"))
    return params


def parse_ipconfig(text) -> dict:
    """ipconfig0 as {ip, gw, ip6, gw6}, or a ProxmoxError showing its shape."""
    hint = "write it like ip=10.0.0.11/24,gw=10.0.0.1 (or ip=dhcp; ip6=, gw6= for IPv6)"
    found = {}
    for part in str(text or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key not in ("ip", "gw", "ip6", "gw6") or not value or key in found:
            fail(f"ipconfig0 {text!r} is not ip=...,gw=...: {hint}")
        found[key] = value
    try:
        ip, ip6 = found.get("ip"), found.get("ip6")
        if ip is not None and ip != "dhcp":
            if "/" not in ip:
                raise ValueError("no prefix length")
            ipaddress.IPv4Interface(ip)
        if "gw" in found:
            ipaddress.IPv4Address(found["gw"])
            if ip in (None, "dhcp"):
                raise ValueError("gw needs a static ip")
        if ip6 is not None and ip6 not in ("dhcp", "auto"):
            if "/" not in ip6:
                raise ValueError("no prefix length")
            ipaddress.IPv6Interface(ip6)
        if "gw6" in found:
            ipaddress.IPv6Address(found["gw6"])
    except ValueError as exc:
        fail(f"ipconfig0 {text!r} is not valid ({exc}): {hint}")
    return found


def encode_sshkeys(keys) -> str:
    """sshkeys as PVE wants them: one key a line, strictly percent-encoded (a space is %20, never '+')."""
    return quote("\n".join(str(k).strip() for k in keys), safe="")


def decode_sshkeys(value) -> list:
    return [line.strip() for line in unquote(str(value or "")).splitlines() if line.strip()]


def parse_size(text) -> int:
    """Bytes of a PVE size: a drive value's size= (``local-lvm:vm-1-disk-0,size=32G``), or ``40G``, ``512M``,
    ``1.5T``, ``1024`` (bytes)."""
    value = str(text or "").strip()
    if "," in value or value.startswith("size="):
        sizes = [p.split("=", 1)[1] for p in value.split(",") if p.startswith("size=")]
        if not sizes:
            fail(f"the drive {value!r} has no size=")
        value = sizes[0]
    match = _SIZE.match(value)
    if not match:
        fail(f"{value!r} is not a disk size (like 32G, 512M or a number of bytes)")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def show_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size >= SIZE_UNITS[unit] and size % SIZE_UNITS[unit] == 0:
            return f"{size // SIZE_UNITS[unit]}{unit}"
    return f"{size / GIB:.2f}G" if size >= GIB else f"{size}"


def memory_of(value):
    """MiB of a memory value: ``2048`` or the PVE 8 property string ``current=2048``."""
    if value is None or value == "":
        return None
    for part in str(value).split(","):
        key, sep, val = part.partition("=")
        if not sep:
            return int(key)
        if key == "current":
            return int(val)
    return None


def _ipconfig_key(value):
    try:
        return tuple(sorted(parse_ipconfig(value).items()))
    except ProxmoxError:
        return (("raw", str(value)),)


def normalise(config: dict) -> dict:
    """The managed keys of a VM config (PVE's strings) as comparable values; unset keys are None."""
    get = config.get
    description = get("description")
    return {
        "cores": int(get("cores")) if get("cores") not in (None, "") else None,
        "memory": memory_of(get("memory")),
        "tags": tuple(sorted(split_tags(get("tags")))),
        "description": str(description).rstrip() if description is not None else None,
        "onboot": str(get("onboot", 0)) in ("1", "true", "True"),
        "ciuser": get("ciuser"),
        "sshkeys": tuple(decode_sshkeys(get("sshkeys"))),
        "ipconfig0": _ipconfig_key(get("ipconfig0")) if get("ipconfig0") else None,
        "nameserver": tuple(split_tags(get("nameserver"))) or None,
        "searchdomain": get("searchdomain"),
    }


def wanted_tags(params: dict, current_tags) -> tuple:
    """The tags the VM should carry: the given ones (or, when none are given, the ones it has less those
    proxmox_template_build put on its template, which a clone must not keep), always with the site tag."""
    given = params.get("tags")
    ours = [t for t in current_tags if t != OURS and not t.startswith((BUILD_PREFIX, PHASE_PREFIX))]
    base = ours if given is None else list(given)
    return tuple(sorted(set(base) | {site_tag(params["site"])}))


# How an option's value compares with normalise(): the keys not named here compare as given.
_FROM_OPTION = {
    "description": str.rstrip,
    "onboot": bool,
    "sshkeys": lambda keys: tuple(str(key).strip() for key in keys),
    "ipconfig0": _ipconfig_key,
    "nameserver": lambda value: tuple(split_tags(value)) or None,
}


def wanted(params: dict, current: dict) -> dict:
    """The normalised values the options ask for; keys the options leave alone are left out."""
    keys = [key for key in CONFIG_KEYS if key != "tags" and params.get(key) is not None]
    out = {key: _FROM_OPTION.get(key, lambda value: value)(params[key]) for key in keys}
    return {**out, "tags": wanted_tags(params, current["tags"])}


def pve_value(key: str, params: dict, value):
    """What PUT .../config is sent for a key: the option as given, but the tags wanted and PVE's onboot and sshkeys."""
    if key == "tags":
        return ";".join(value)
    if key == "onboot":
        return 1 if value else 0
    if key == "sshkeys":
        return encode_sshkeys(params["sshkeys"])
    return params[key]


def shown(key: str, value):
    """A normalised value as the diff shows it."""
    if key == "ipconfig0" and value is not None:
        return ",".join(f"{k}={v}" for k, v in value)
    if key == "nameserver" and value is not None:
        return " ".join(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def config_changes(config: dict, params: dict) -> tuple:
    """(updates for PUT .../config, changed keys, before, after) between a VM config and the options."""
    current = normalise(config)
    want = wanted(params, current)
    updates, changed, before, after = {}, [], {}, {}
    for key in CONFIG_KEYS:
        if key not in want or want[key] == current[key]:
            continue
        updates[key] = pve_value(key, params, want[key])
        changed.append(key)
        before[key], after[key] = shown(key, current[key]), shown(key, want[key])
    return updates, changed, before, after


def disk_change(config: dict, disk_gib):
    """None, or (current bytes, wanted bytes) when scsi0 must grow; a ProxmoxError for a shrink."""
    if disk_gib is None:
        return None
    if not config.get(DISK_KEY):
        fail(f"disk: the VM has no {DISK_KEY} to size; give a template with a {DISK_KEY} disk or drop disk")
    have, want = parse_size(config[DISK_KEY]), disk_gib * GIB
    if want < have:
        fail(
            f"disk: {disk_gib} GiB is smaller than the {DISK_KEY} disk's {show_size(have)}, and disks are never "
            f"shrunk: set disk to {-(-have // GIB)} or more"
        )
    return (have, want) if want > have else None


def guest_at(resources, vmid: int):
    return next((g for g in resources or [] if g.get("vmid") is not None and int(g["vmid"]) == vmid), None)


# What a clone's description says from its first request (the clone call itself), before the first config write
# gives it the site's tag: when the answer to the clone is lost (a 596, a timeout, a killed run) while Proxmox made
# the VM, the next run can still prove the guest is this site's clone of this host, and adopt it. The site's own
# description replaces it at the first config write.
CLONE_MARKER = "nerv.homelab clone of {template} for host {name} of site {site}"


def clone_marker(params: dict, template: dict) -> str:
    source = template.get("name") or f"vmid {template.get('vmid')}"
    return CLONE_MARKER.format(template=source, name=params["name"], site=params["site"])


def is_our_clone(description, params: dict) -> bool:
    """True when a description is the marker this run's clone of this host would carry (whichever template)."""
    first = str(description or "").split("\n", 1)[0].strip()
    prefix, _sep, owner = first.partition(" for host ")
    return prefix.startswith("nerv.homelab clone of ") and owner == f"{params['name']} of site {params['site']}"


def has_site_tag(guest: dict, params: dict) -> bool:
    return site_tag(params["site"]) in [t.lower() for t in split_tags(guest.get("tags"))]


def check_ownership(guest: dict, params: dict, our_clone: bool = False) -> None:
    """A ProxmoxError unless the VM at the vmid is this site's VM of this name: tagged for the site, or (our_clone)
    a clone of it whose answer was lost before it could be tagged."""
    vmid, name, tag = params["vmid"], params["name"], site_tag(params["site"])
    other = guest.get("name") or f"VM {vmid}"
    if guest.get("template"):
        fail(f"vmid {vmid} holds the template {other!r}: it is never touched; give this VM a free vmid")
    if guest.get("type") not in (None, "qemu"):
        fail(f"vmid {vmid} holds a container ({other!r}): it is never touched; give this VM a free vmid")
    if not (has_site_tag(guest, params) or (our_clone and other == name)):
        hint = ""
        if other == name:
            hint = (
                f". If it is a clone of an interrupted run, delete it (qm destroy {vmid}) or tag it {tag}, "
                "then run again"
            )
        fail(
            f"vmid {vmid} holds VM {other!r} without the tag {tag}: nerv.homelab did not make it for site "
            f"{params['site']}, and it is never touched{hint}. Otherwise give this VM a free vmid"
        )
    if other != name:
        fail(
            f"vmid {vmid} holds {other!r} of site {params['site']}, not {name!r}: check the vmids in the site "
            "file (two hosts share one?), or remove the old VM first"
        )


def find_template(resources, template, missing_ok=False):
    """The template's resource entry, from its name or vmid; a ProxmoxError when there is not exactly one (None
    when there is none and missing_ok)."""
    text = str(template or "").strip()
    if not text:
        fail("template is required to create a VM: give the template's name or vmid, e.g. template: nixos-base")
    if text.isdigit():
        found = [g for g in resources if str(g.get("vmid")) == text]
        if found and not found[0].get("template"):
            fail(f"template: vmid {text} ({found[0].get('name')!r}) is not a template: give a template's name or vmid")
    else:
        found = [g for g in resources if g.get("template") and g.get("name") == text]
    if not found and missing_ok:
        return None
    if not found:
        fail(f"template {text!r} not found: no template of that name or vmid in the cluster; build it first")
    if len(found) > 1:
        ids = ", ".join(str(g.get("vmid")) for g in sorted(found, key=lambda g: int(g["vmid"])))
        fail(f"template {text!r} names several templates (vmids {ids}): give the vmid of the one to clone")
    return found[0]


def clone_request(params: dict, template: dict) -> dict:
    data = {"newid": params["vmid"], "name": params["name"], "full": 1 if params["full"] else 0}
    data.update(description=clone_marker(params, template), target=params["node"])
    if params["full"] and params.get("storage"):
        data["storage"] = params["storage"]
    if params.get("pool"):
        data["pool"] = params["pool"]
    return data


def disk_storages(config: dict) -> set:
    """Storage ids of a config's disks (CD-ROM images and empty drives, none or cdrom, left out)."""
    volumes = [volume.partition(":") for _key, volume in drives(config)]
    return {storage for storage, sep, name in volumes if sep and not name.startswith("iso/")}


def cross_node_problem(template: dict, template_config: dict, params: dict, storages) -> None:
    """A ProxmoxError when the clone must cross nodes onto storage that is not shared: Proxmox refuses that."""
    tnode, node = template.get("node"), params["node"]
    if tnode == node:
        return
    wanted = {params["storage"]} if params.get("full") and params.get("storage") else disk_storages(template_config)
    shared = {s.get("storage") for s in storages or [] if s.get("shared")}
    local = sorted(wanted - shared)
    if local:
        fail(
            f"template {template.get('name')!r} (vmid {template.get('vmid')}) is on {tnode} and node is {node}, but "
            f"storage {', '.join(local)} is not shared: Proxmox clones to another node only onto shared storage. "
            f"Give a template on {node} (template: its vmid), a shared storage, or node: {tnode}"
        )


def cloned_config(template_config: dict, params: dict, template: dict | None = None) -> dict:
    """The config a clone of the template starts with, as far as the managed keys and the disk go."""
    config = {k: v for k, v in template_config.items() if k not in ("template", "lock", "digest")}
    config["name"] = params["name"]
    if template is not None:
        config["description"] = clone_marker(params, template)
    return config


def retold(error: ProxmoxError, message: str) -> ProxmoxError:
    """The same error (status, task exit status, log tail, UPID, field errors) with a message that says more."""
    return ProxmoxError(message, error.status, error.exitstatus, error.log_tail, error.upid, error.errors)


def lock_of(config: dict):
    return (config or {}).get("lock") or None


def is_lock_error(error) -> bool:
    return bool(_LOCKED.search(str(getattr(error, "message", error))))


def is_transient(error) -> bool:
    return getattr(error, "status", None) in TRANSIENT_STATUSES


def host_key_of(answer):
    """The ed25519 host key line of a file-read answer, or None."""
    content = str((answer or {}).get("content") or "").strip()
    line = content.splitlines()[0].strip() if content else ""
    parts = line.split()
    if len(parts) >= 2 and parts[0] == "ssh-ed25519":
        return " ".join(parts[:2])
    return None


def plan(state: str, exists: bool, status, updates: bool, resize: bool, protected: bool, force: bool) -> list:
    """The actions, in order, that take the VM from what it is to the state asked for."""
    if state == "absent":
        if not exists:
            return []
        actions = []
        if status == "running":
            actions.append("stop")
        if protected:
            actions.append("unprotect")
        return [*actions, "delete"]
    actions = [] if exists else ["clone"]
    if updates:
        actions.append("config")
    if resize:
        actions.append("resize")
    running = exists and status == "running"
    if state == "started" and not running:
        actions.append("start")
    if state == "stopped" and running:
        actions.append("stop")
    return actions


def check_removal(params: dict, status, protected: bool) -> None:
    """A ProxmoxError when an absent VM is running without force, or protected without unprotect (which follows
    force when not set): protection=1 is its owner saying 'never delete', so only an explicit word overrides it."""
    force = bool(params.get("force"))
    unprotect = force if params.get("unprotect") is None else params["unprotect"]
    states = (("running", status == "running" and not force), ("protected (protection=1)", protected and not unprotect))
    why = [state for state, refused in states if refused]
    if why:
        fail(
            f"VM {params['name']} (vmid {params['vmid']}) is {' and '.join(why)}: it is not removed. Stop it (and "
            "clear protection) first, or set force: true to stop and remove it (unprotect: true clears its "
            "protection; when not set it follows force)"
        )


def final_status(state: str, before, actions: list) -> str:
    if state == "absent":
        return "absent"
    if "start" in actions:
        return "running"
    if "stop" in actions:
        return "stopped"
    return before or "stopped"

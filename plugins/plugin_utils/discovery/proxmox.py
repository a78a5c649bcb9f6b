# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of the nerv.homelab.proxmox inventory plugin, apart from Ansible and HTTP.

    raw = collect(get, map_fn, want_config=False)   # 2 requests + 1 per running qemu guest
    model = build(raw, cidr="10.0.0.0/24")           # hosts, groups, warnings: plain data

``get(path, **params)`` is any function answering a Proxmox API GET with the response's ``data``;
``map_fn(fn, items)`` maps fn over items (concurrently, in the plugin). Nothing here templates,
logs or opens a connection, so every function is unit-tested with plain dicts.
"""

from __future__ import annotations

import re
from collections import Counter

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.guest import (
    agent_addresses,
    networks,
    pick_address,
    split_tags,
    static_address,
)
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery.populate import InventoryModel

# A tag puts a guest into a role group; the names match nerv.homelab.site's groups.
DEFAULT_ROLE_GROUPS = {
    "k8s-control-plane": "control_plane",
    "control-plane": "control_plane",
    "k8s-worker": "workers",
    "worker": "workers",
}
DEFAULT_PREFIX = "proxmox_"
# 500 answers of the agent endpoint that only mean "no address (yet)": no agent, VM down, agent busy.
AGENT_DOWN = ("no qemu guest agent configured", "not running", "got timeout")
CACHE_FORMAT = 1
GUEST_TYPES = ("qemu", "lxc")


def safe_group_name(name) -> str:
    """A valid Ansible group name: letters, digits and '_' only, not starting with a digit."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", str(name))
    return "_" + safe if not safe or safe[0].isdigit() else safe


def role_groups(tags, mapping: dict | None = None) -> list:
    """The role groups the tags put a guest in, e.g. k8s-control-plane -> control_plane."""
    mapping = DEFAULT_ROLE_GROUPS if mapping is None else mapping
    return list(dict.fromkeys(safe_group_name(mapping[t]) for t in split_tags(tags) if t in mapping))


def pick_ansible_host(found, netconfig=None, nets=()):
    """The agent address pick_address prefers when it is inside nets (or nets is empty), else the static address of
    ipconfig0/net0, else None."""
    address, inside = pick_address(found, nets)
    return address if address and (inside or not nets) else static_address(netconfig)


def agent_is_down(status, message) -> bool:
    """True for the 500s that mean the guest has no agent answering (yet): no address, not a failure."""
    text = str(message or "").lower()
    return status == 500 and any(phrase in text for phrase in AGENT_DOWN)


def agent_enabled(config) -> bool:
    """The 'agent' option of a qemu config ('1', 'enabled=1,fstrim_cloned_disks=1', ...) is on."""
    value = str((config or {}).get("agent", "0")).split(",", maxsplit=1)[0]
    return value.split("=")[-1].strip() in ("1", "on", "yes", "true")


def online_nodes(cluster_status) -> dict:
    """node name -> online (bool) from GET /cluster/status."""
    return {
        str(item.get("name")): bool(item.get("online", 1))
        for item in cluster_status or []
        if isinstance(item, dict) and item.get("type") == "node"
    }


def guests(resources) -> list:
    """The qemu and lxc guests of GET /cluster/resources?type=vm, by vmid."""
    found = [r for r in resources or [] if isinstance(r, dict) and r.get("type") in GUEST_TYPES]
    return sorted(found, key=lambda r: int(r.get("vmid", 0)))


def wanted(guest: dict, nodes: dict, want_templates: bool) -> bool:
    return nodes.get(str(guest.get("node")), True) and (want_templates or not guest.get("template"))


def running_qemu(guest: dict) -> bool:
    """A running QEMU VM that is no template: the only guest whose agent may answer."""
    return guest.get("type") == "qemu" and guest.get("status") == "running" and not guest.get("template")


def guest_path(guest: dict) -> str:
    return "/nodes/{}/{}/{}".format(guest["node"], guest["type"], guest["vmid"])


def fetch_guest(get, guest: dict, want_config: bool, api_errors: tuple) -> dict:
    """The per-guest requests: config (only when asked), then agent interfaces of a running qemu guest
    (skipped when the config says the agent is off). Errors are kept as data, never raised."""
    out = {"vmid": guest["vmid"]}
    if want_config:
        try:
            out["config"] = get(guest_path(guest) + "/config")
        except api_errors as exc:
            out["error"] = _describe(exc)
            return out
    if not running_qemu(guest) or (want_config and not agent_enabled(out.get("config"))):
        return out
    try:
        out["interfaces"] = get(guest_path(guest) + "/agent/network-get-interfaces")
    except api_errors as exc:
        status, message = getattr(exc, "status", None), _describe(exc)
        if not agent_is_down(status, message):
            out["error"] = message
    return out


def _describe(exc) -> str:
    status = getattr(exc, "status", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"{status} {message}" if status and not str(message).startswith(str(status)) else str(message)


def collect(get, map_fn, want_config: bool = False, want_templates: bool = False, api_errors=(Exception,)) -> dict:
    """Everything the inventory needs: two listings, then per-guest requests through map_fn.

    The result is plain JSON data: it is what the inventory cache stores."""
    resources = get("/cluster/resources", type="vm")
    status = get("/cluster/status")
    nodes = online_nodes(status)
    # a guest costs a request beyond the two listings only for its config (when asked) or an agent that may answer
    todo = [g for g in guests(resources) if wanted(g, nodes, want_templates) and (want_config or running_qemu(g))]
    details = map_fn(lambda g: fetch_guest(get, g, want_config, tuple(api_errors)), todo)
    return {
        "format": CACHE_FORMAT,
        "want_config": bool(want_config),
        "want_templates": bool(want_templates),
        "resources": resources,
        "cluster_status": status,
        "guests": {str(d["vmid"]): d for d in details},
    }


def cache_usable(raw, want_config: bool, want_templates: bool) -> bool:
    """A cached collect() result answers this run only if it fetched at least what the options ask for."""
    return (
        isinstance(raw, dict)
        and raw.get("format") == CACHE_FORMAT
        and (raw.get("want_config") or not want_config)
        and (raw.get("want_templates") or not want_templates)
    )


def host_names(items: list) -> dict:
    """vmid -> inventory host name: the guest's name, or <name>-<vmid> when names clash (or vm<vmid> unnamed)."""
    counts = Counter(g.get("name") for g in items)
    names = {}
    for g in items:
        name, vmid = g.get("name"), g["vmid"]
        names[vmid] = f"vm{vmid}" if not name else name if counts[name] == 1 else f"{name}-{vmid}"
    return names


def guest_vars(guest: dict, detail: dict, nets=()) -> dict:
    """The host vars of one guest."""
    config = detail.get("config")
    found = agent_addresses(detail.get("interfaces"))
    netconfig = (config or {}).get("ipconfig0" if guest.get("type") == "qemu" else "net0")
    hostvars = {
        "proxmox_vmid": int(guest["vmid"]),
        "proxmox_name": guest.get("name"),
        "proxmox_node": guest.get("node"),
        "proxmox_status": guest.get("status"),
        "proxmox_type": guest.get("type"),
        "proxmox_tags": split_tags(guest.get("tags")),
        "proxmox_pool": guest.get("pool") or None,
        "proxmox_template": bool(guest.get("template")),
        "proxmox_addresses": [entry["address"] for entry in found],
    }
    if config is not None:
        hostvars["proxmox_config"] = config
    address = pick_ansible_host(found, netconfig, nets)
    if address:
        hostvars["ansible_host"] = address
    return hostvars


def guest_groups(hostvars: dict, prefix: str = DEFAULT_PREFIX, roles: dict | None = None) -> list:
    """Groups of a guest: all guests, type, node, status, pool, each tag, and role groups from tags."""
    names = [prefix + "guests", prefix + hostvars["proxmox_type"]]
    names += [prefix + "node_" + hostvars["proxmox_node"], prefix + "status_" + hostvars["proxmox_status"]]
    if hostvars.get("proxmox_pool"):
        names.append(prefix + "pool_" + hostvars["proxmox_pool"])
    names += [prefix + "tag_" + tag for tag in hostvars["proxmox_tags"]]
    return list(dict.fromkeys([safe_group_name(n) for n in names] + role_groups(hostvars["proxmox_tags"], roles)))


def build(raw: dict, cidr=None, prefix: str = DEFAULT_PREFIX, roles: dict | None = None) -> InventoryModel:
    """The inventory of a collect() result: guests of offline nodes skipped with a warning, templates
    only when they were fetched."""
    model, nets = InventoryModel(), networks(cidr)
    nodes = online_nodes(raw.get("cluster_status"))
    everything = guests(raw.get("resources"))
    for node in sorted({str(g.get("node")) for g in everything if not nodes.get(str(g.get("node")), True)}):
        skipped = ", ".join(str(g.get("name") or g["vmid"]) for g in everything if str(g.get("node")) == node)
        model.warnings.append(f"Proxmox node {node} is offline: its guests are not inventoried ({skipped})")
    kept = [g for g in everything if wanted(g, nodes, raw.get("want_templates", False))]
    names = host_names(kept)
    details = raw.get("guests") or {}
    failed = []
    for guest in kept:
        detail = details.get(str(guest["vmid"]), {})
        name = names[guest["vmid"]]
        if detail.get("error"):
            failed.append("{} ({})".format(name, detail["error"]))
        model.hosts[name] = guest_vars(guest, detail, nets)
        for group in guest_groups(model.hosts[name], prefix, roles):
            model.add(group, name)
    if failed:
        model.warnings.append("Proxmox guest details could not be read, so they have no address: " + "; ".join(failed))
    return model

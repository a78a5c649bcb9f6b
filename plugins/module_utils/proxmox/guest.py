# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The facts of a Proxmox guest that the modules and the inventory plugin read alike: its tags, the addresses its
guest agent reports, the one to reach it at, and the static address its config gives.

Nothing here talks to Proxmox, so all of it is unit-tested with plain values.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError

# The tags nerv.homelab gives the guests it makes. A VM of the template pipeline carries OURS, BUILD_PREFIX<build> and
# PHASE_PREFIX<phase>; a VM of a site carries SITE_TAG_PREFIX<site>. A guest without them is foreign, never touched.
OURS = "nerv-template"
BUILD_PREFIX = "nerv-build-"
PHASE_PREFIX = "nerv-phase-"
SITE_TAG_PREFIX = "nerv-site-"
# Interfaces that are not the guest's own network: container and VPN bridges come last when picking an address.
_VIRTUAL_IFACE = re.compile(r"^(cni|flannel|cilium|cali|vxlan|docker|br-|veth|virbr|kube|tailscale|wg|tun|tap)")
# The config keys a VM attaches drives (disks and cdroms) with; `cdrom` is PVE's alias of ide2.
_DRIVE_KEY = re.compile(r"^(?:(?:ide|sata|scsi|virtio)\d+|efidisk0|tpmstate0|cdrom)$")


def split_tags(value) -> list:
    """A Proxmox list value (tags 'a;b', nameservers 'a b'; ',' too, as PVE accepts on input; or a list) as a list,
    order kept, no duplicates."""
    if isinstance(value, (list, tuple)):
        value = ";".join(str(item) for item in value)
    return list(dict.fromkeys(item for item in re.split(r"[;,\s]+", str(value or "")) if item))


def drives(config) -> list:
    """[(key, volume)] of a VM config's drives, by key; volume is the drive's value up to its options (a volid such
    as local-lvm:vm-100-disk-0 or local:iso/x.iso, or none, or cdrom)."""
    found = sorted((key, value) for key, value in (config or {}).items() if _DRIVE_KEY.fullmatch(str(key)))
    return [(key, value.split(",", 1)[0]) for key, value in found if isinstance(value, str)]


def _usable(text):
    """The address in text (a zone suffix dropped), or None when it is none a guest is reached at."""
    try:
        ip = ipaddress.ip_address(str(text).split("%", 1)[0])
    except ValueError:
        return None
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
        return None
    return ip


def agent_addresses(answer) -> list:
    """[{interface, address}] of an agent's network-get-interfaces answer ({result: [...]} or the list), in the
    order reported, each address once: no lo, loopback, link-local, multicast or unspecified address."""
    if isinstance(answer, dict):
        answer = answer.get("result")
    found = {}
    for iface in answer if isinstance(answer, list) else []:
        if not isinstance(iface, dict) or iface.get("name") in ("lo", "lo0"):
            continue
        for entry in iface.get("ip-addresses") or []:
            ip = _usable((entry or {}).get("ip-address", ""))
            if ip is not None:
                found.setdefault(str(ip), {"interface": iface.get("name"), "address": str(ip)})
    return list(found.values())


def networks(cidr) -> list:
    """cidr (a CIDR, a list of them, or None) as ip_network objects; a ProxmoxError names a bad one."""
    out = []
    for text in [cidr] if isinstance(cidr, str) else cidr or []:
        try:
            out.append(ipaddress.ip_network(str(text), strict=False))
        except ValueError:
            raise ProxmoxError(f"cidr: {text!r} is not a network: write it like 10.0.0.0/24") from None
    return out


def _rank(entry: dict, nets) -> tuple:
    address = ipaddress.ip_address(entry["address"])
    inside = any(address in net for net in nets)
    virtual = bool(_VIRTUAL_IFACE.match(str(entry.get("interface") or "")))
    return (not inside, virtual, address.version != 4)


def pick_address(addresses, nets) -> tuple:
    """(address, inside nets): the best of agent_addresses - inside a network of nets, the guest's own interface
    rather than a container or VPN bridge, IPv4 before IPv6, else the order reported. (None, False) for none."""
    if not addresses:
        return None, False
    best = min(enumerate(addresses), key=lambda pair: (_rank(pair[1], nets), pair[0]))[1]
    return best["address"], not _rank(best, nets)[0]


def static_address(netconfig):
    """The static address of ipconfig0 ('ip=10.0.0.5/24,gw=10.0.0.1') or an LXC net0; None for dhcp or none."""
    options = dict(part.split("=", 1) for part in str(netconfig or "").split(",") if "=" in part)
    for key in ("ip", "ip6"):
        try:
            ip = ipaddress.ip_interface(options.get(key, "")).ip
        except ValueError:
            continue
        if _usable(ip) is not None:
            return str(ip)
    return None

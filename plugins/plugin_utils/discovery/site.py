# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of the nerv.homelab.site inventory: hosts and groups from a site, bare metal found by MAC.

Discovery is two steps on the controller's LAN: connect to TCP 22 on every address of the site's CIDR at once
(non-blocking sockets, one deadline), which also makes the kernel resolve each live address's MAC; then read the
neighbour table (/proc/net/arp) and match MACs. No root, no raw sockets, no external command.
"""

from __future__ import annotations

import errno
import ipaddress
import selectors
import socket
from dataclasses import dataclass, field

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import Deadline
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery.populate import InventoryModel

ARP_TABLE = "/proc/net/arp"
_ARP_COMPLETE = 0x2


class DiscoveryError(NervError):
    """Bad discovery input or an ambiguous answer (a declared MAC at two addresses)."""


@dataclass
class Probe:
    """What a scan found: addresses that accepted SSH, and the neighbour table after it (address -> MAC)."""

    ssh: set = field(default_factory=set)
    neighbours: dict = field(default_factory=dict)


def normal_mac(mac: str) -> str:
    return str(mac).strip().lower().replace("-", ":")


def scan_addresses(cidr: str, skip: set) -> list:
    network = ipaddress.ip_network(cidr, strict=False)
    if network.version != 4:
        raise DiscoveryError(f"discovery scans IPv4 networks; {cidr} is not one")
    if network.num_addresses > 65536:
        raise DiscoveryError(f"{cidr} is larger than a /16: narrow discovery_cidr")
    return [str(a) for a in network.hosts() if str(a) not in skip]


def probe_ssh(addresses: list, port: int = 22, timeout: float = 0.5, batch: int = 512) -> set:
    """The addresses where a TCP connection to port opens within timeout; batch sockets are open at once."""
    open_ = set()
    for start in range(0, len(addresses), batch):
        open_ |= _probe_batch(addresses[start : start + batch], port, timeout)
    return open_


def _probe_batch(addresses: list, port: int, timeout: float) -> set:
    selector = selectors.DefaultSelector()
    pending = {}
    found = set()
    for address in addresses:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex((address, port))
        if code == 0:
            found.add(address)
            sock.close()
        elif code in (errno.EINPROGRESS, errno.EWOULDBLOCK):
            selector.register(sock, selectors.EVENT_WRITE, address)
            pending[sock] = address
        else:
            sock.close()
    deadline = Deadline(timeout)
    try:
        while pending and (remaining := deadline.left()) > 0:
            for key, _events in selector.select(remaining):
                sock = key.fileobj
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    found.add(key.data)
                selector.unregister(sock)
                sock.close()
                pending.pop(sock, None)
    finally:
        for sock in pending:
            sock.close()
        selector.close()
    return found


def read_neighbours(text: str) -> dict:
    """address -> MAC of the complete entries of /proc/net/arp's text."""
    table = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        try:
            flags = int(fields[2], 16)
        except ValueError:
            continue
        if flags & _ARP_COMPLETE and fields[3] != "00:00:00:00:00:00":
            table[fields[0]] = normal_mac(fields[3])
    return table


def discover(cidr: str, skip: set, port: int, timeout: float) -> Probe:
    found = probe_ssh(scan_addresses(cidr, skip), port, timeout)
    try:
        with open(ARP_TABLE, encoding="ascii") as handle:
            return Probe(found, read_neighbours(handle.read()))
    except OSError:
        return Probe(found)


# ---- hosts and groups from a site ------------------------------------------------------------------------------


def build(site: dict, probe: Probe | None) -> InventoryModel:
    """Every declared host with its vars and groups; bare metal at its discovered address; unclaimed SSH hosts."""
    model = InventoryModel()
    first_server = next((h["name"] for h in site["hosts"] if h["role"] == "control-plane"), None)
    by_mac = _declared_macs(site)
    located = _locate(by_mac, probe) if probe else {}
    for host in site["hosts"]:
        hostvars, groups = _host(site, host, located, probe)
        if host["name"] == first_server:
            groups.append("k3s_first_server")
        model.hosts[host["name"]] = hostvars
        for group in groups:
            model.add(group, host["name"])
    if probe:
        _unclaimed(model, site, by_mac, probe)
    return model


def _declared_macs(site: dict) -> dict:
    by_mac = {}
    for host in site["hosts"]:
        if host.get("mac"):
            mac = normal_mac(host["mac"])
            if mac in by_mac:
                raise DiscoveryError(f"hosts {by_mac[mac]} and {host['name']} declare the same MAC {mac}")
            by_mac[mac] = host["name"]
    return by_mac


def _locate(by_mac: dict, probe: Probe) -> dict:
    """host name -> live address, from the neighbour table; a declared MAC at two addresses is an error."""
    located = {}
    for address, mac in sorted(probe.neighbours.items(), key=lambda item: ipaddress.ip_address(item[0])):
        name = by_mac.get(mac)
        if not name:
            continue
        if name in located and located[name] != address:
            raise DiscoveryError(
                f"MAC {mac} of {name} answers at {located[name]} and at {address}: two machines share it, or the "
                "host has two addresses on this network; fix the network before installing"
            )
        located[name] = address
    return located


def _host(site: dict, host: dict, located: dict, probe: Probe | None) -> tuple[dict, list]:
    static = host["ip"].split("/")[0]
    hostvars = {
        "nerv_site": site["site"]["name"],
        "nerv_role": host["role"],
        "nerv_kind": host["kind"],
        "nerv_address": static,
        "ansible_host": static,
        "ansible_user": "root",
    }
    for key in ("vmid", "node", "mac", "disk_id", "cores", "memory", "disk"):
        if host.get(key) is not None:
            hostvars[f"nerv_{key}"] = host[key]
    groups = ["control_plane" if host["role"] == "control-plane" else "workers"]
    groups.append("vms" if host["kind"] == "vm" else "baremetal")
    if host["kind"] == "baremetal" and probe is not None:
        live = located.get(host["name"])
        hostvars["nerv_discovered"] = live is not None
        if live:
            hostvars["ansible_host"] = live
            hostvars["nerv_ssh"] = live in probe.ssh
    return hostvars, groups


def _unclaimed(model: InventoryModel, site: dict, by_mac: dict, probe: Probe) -> None:
    """Machines answering SSH whose MAC no host declares (a freshly booted installer, typically)."""
    known = {h["ip"].split("/")[0] for h in site["hosts"]} | {site["network"].get("gateway")}
    for address in sorted(probe.ssh, key=ipaddress.ip_address):
        mac = probe.neighbours.get(address)
        if address in known or (mac and mac in by_mac):
            continue
        name = "unclaimed_" + (mac.replace(":", "") if mac else address.replace(".", "_"))
        model.hosts[name] = {"ansible_host": address, "nerv_mac": mac, "nerv_address": address, "ansible_user": "root"}
        model.add("unclaimed", name)

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks across fields that a schema cannot express: duplicates, address plans, roles and kinds.

Each check reads only the parts it needs and skips values the schema walk already reported as malformed,
so one mistake is reported once, where it is.
"""

from __future__ import annotations

import ipaddress
import os
import re

from ansible_collections.nerv.homelab.plugins.module_utils.site.endpoints import DASHBOARDS, app_host, ingress_hosts
from ansible_collections.nerv.homelab.plugins.module_utils.site.formats import check_relative_path, parse_range
from ansible_collections.nerv.homelab.plugins.module_utils.site.problems import Problem
from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import (
    LOCAL_NAME_PATTERN,
    MOUNT_POINT_PATTERN,
    NFS_MOUNT_POINT,
    NODE_EXPORTER_PORT,
    SERVICE_RESERVED_PORTS,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.services import service


def _entries(data: dict, name: str) -> list:
    """(index, mapping) of the well-formed entries of the list data[name] (hosts, apps)."""
    items = data.get(name)
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _hosts(data: dict) -> list:
    return _entries(data, "hosts")


def _network(data: dict):
    try:
        return ipaddress.IPv4Network(data["network"]["cidr"], strict=True)
    except (KeyError, TypeError, ValueError):
        return None


def _address(value):
    try:
        return ipaddress.IPv4Interface(value).ip if "/" in value else ipaddress.IPv4Address(value)
    except (TypeError, ValueError):
        return None


def _text(value):
    return value if isinstance(value, str) else None


def _integer(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _section(data: dict, name: str) -> dict:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def check_duplicates(data: dict) -> list:
    out = []
    template_vmid = _section(data, "template").get("vmid")
    # each value as compared, or None when malformed (a list given as vmid is the schema walk's to report)
    keys = (("name", _text), ("vmid", _integer), ("ip", _address), ("mac", lambda v: _text(v) and v.lower()))
    for key, norm in keys:
        first = {}
        if key == "vmid" and isinstance(template_vmid, int):
            first[template_vmid] = "template.vmid"
        for index, host in _hosts(data):
            value, path = norm(host.get(key)), f"hosts[{index}].{key}"
            if value is None:
                continue
            if value in first:
                msg = f"{key} {host[key]} is already used by {first[value]}"
                out.append(Problem(path, msg, f"give every host its own {key}"))
            else:
                first.setdefault(value, path)
    return out


# Names Ansible gives a host of its own: plays for localhost run on the controller, not on a machine of the site
_RESERVED_HOST_NAMES = ("localhost",)


def check_host_names(data: dict) -> list:
    out = []
    for index, host in _hosts(data):
        if host.get("name") in _RESERVED_HOST_NAMES:
            msg = f"{host['name']} is Ansible's name for the controller: its plays would run on this machine"
            out.append(Problem(f"hosts[{index}].name", msg, "give the machine its own name, e.g. cp1 or nas"))
    return out


def _reserved(net, gateway) -> dict:
    reserved = {net.network_address: "the network address", net.broadcast_address: "the broadcast address"}
    if gateway is not None:
        reserved[gateway] = "the gateway (network.gateway)"
    return reserved


def check_addresses(data: dict) -> list:
    net = _network(data)
    if net is None:
        return []
    out = []
    gateway = _address(_section(data, "network").get("gateway"))
    if gateway is not None and (gateway not in net or gateway in (net.network_address, net.broadcast_address)):
        out.append(Problem("network.gateway", f"{gateway} is not a usable address of {net}", "fix it"))
    reserved = _reserved(net, gateway)
    for index, host in _hosts(data):
        out.extend(_host_address(host.get("ip"), f"hosts[{index}].ip", net, reserved))
    return out


def _host_address(value, path: str, net, reserved: dict) -> list:
    if not isinstance(value, str) or "/" not in value or _address(value) is None:
        return []
    iface = ipaddress.IPv4Interface(value)
    fix = f"pick a free host address inside network.cidr {net}"
    if iface.ip not in net:
        return [Problem(path, f"{value} is outside network.cidr {net}", fix)]
    if iface.ip in reserved:
        return [Problem(path, f"{iface.ip} is {reserved[iface.ip]}", fix)]
    if iface.network.prefixlen != net.prefixlen:
        msg = f"prefix /{iface.network.prefixlen} differs from network.cidr /{net.prefixlen}"
        return [Problem(path, msg, f"write it as {iface.ip}/{net.prefixlen}")]
    return []


def check_metallb(data: dict) -> list:
    net = _network(data)
    ranges = _section(data, "metallb").get("addresses")
    if net is None or not isinstance(ranges, list):
        return []
    taken = _reserved(net, _address(_section(data, "network").get("gateway")))
    for index, host in _hosts(data):
        if _address(host.get("ip")) is not None:
            taken[_address(host["ip"])] = "the address of hosts[{}] ({})".format(index, host.get("name"))
    out, seen = [], []
    for index, text in enumerate(ranges):
        if not isinstance(text, str):
            continue
        try:
            first, last = parse_range(text)
        except (TypeError, ValueError):
            continue
        out.extend(_range_problems(f"metallb.addresses[{index}]", first, last, net, taken, seen))
        seen.append((first, last, index))
    return out


def _range_problems(path: str, first, last, net, taken: dict, seen: list) -> list:
    if first not in net or last not in net:
        fix = f"choose a range inside network.cidr {net}, outside DHCP"
        return [Problem(path, f"{first}-{last} is not inside network.cidr {net}", fix)]
    out = []
    for address, what in sorted(taken.items()):
        if first <= address <= last:
            msg = f"{first}-{last} contains {address}, {what}"
            out.append(Problem(path, msg, f"shrink or move the range so it leaves {address} out"))
    for other_first, other_last, other in seen:
        if first <= other_last and other_first <= last:
            msg = f"overlaps metallb.addresses[{other}]"
            out.append(Problem(path, msg, "make the ranges disjoint"))
    return out


def check_roles(data: dict) -> list:
    roles = [host.get("role") for _index, host in _hosts(data)]
    if not roles:
        return []
    servers = roles.count("control-plane")
    if servers == 0:
        fix = "set role: control-plane on one host (or three for HA)"
        return [Problem("hosts", "no host has role control-plane; K3s needs at least one", fix)]
    if servers % 2 == 0:
        msg = f"{servers} control-plane hosts: etcd keeps quorum with an odd number"
        return [Problem("hosts", msg, "use 1, 3 or 5 control-plane hosts", "warning")]
    return []


_KIND_FIELDS = {
    "vm": (("vmid", "node"), ("disk_id",)),
    "baremetal": (("mac", "disk_id"), ("vmid", "node")),
}
_FIELD_FIX = {
    "vmid": "add vmid: a free VM id from 100 to 999999999",
    "node": "add node: the Proxmox node that runs this VM (one of proxmox.nodes)",
    "mac": "add mac: the MAC address of the machine's LAN NIC",
    "disk_id": "add disk_id: the /dev/disk/by-id/... path of the disk to install on",
}


def check_kinds(data: dict) -> list:
    out = []
    for index, host in _hosts(data):
        kind = _text(host.get("kind"))
        needed, foreign = _KIND_FIELDS.get(kind, ((), ()))
        for key in needed:
            if key not in host:
                msg = f"is required for a {kind} host but missing"
                out.append(Problem(f"hosts[{index}].{key}", msg, _FIELD_FIX[key]))
        for key in foreign:
            if key in host:
                msg = f"does not apply to a {kind} host"
                out.append(Problem(f"hosts[{index}].{key}", msg, "remove it"))
    return out


def check_proxmox(data: dict) -> list:
    vms = [(i, h) for i, h in _hosts(data) if h.get("kind") == "vm"]
    if not vms:
        return []
    out = []
    for section in ("proxmox", "template"):
        if section not in data:
            msg = f"is required because hosts[{vms[0][0]}] is a vm"
            out.append(Problem(section, msg, f"add the {section} section (see docs/site.md)"))
    nodes = _section(data, "proxmox").get("nodes")
    if not isinstance(nodes, list):
        return out
    placed = [(f"hosts[{i}].node", h.get("node")) for i, h in vms]
    placed.append(("template.node", _section(data, "template").get("node")))
    for path, node in placed:
        if isinstance(node, str) and node not in nodes:
            fix = "use one of proxmox.nodes: {}".format(", ".join(map(str, nodes)))
            out.append(Problem(path, f"{node!r} is not in proxmox.nodes", fix))
    return out + _check_disk_sizes(data, vms)


def _check_disk_sizes(data: dict, vms: list) -> list:
    base = _section(data, "template").get("disk", 20)
    out = []
    for index, host in vms:
        disk = host.get("disk")
        if isinstance(disk, int) and isinstance(base, int) and disk < base:
            msg = f"{disk} GiB is smaller than the template disk ({base} GiB); disks only grow"
            out.append(Problem(f"hosts[{index}].disk", msg, f"give at least {base}"))
    return out


def check_k3s_networks(data: dict) -> list:
    net = _network(data)
    k3s = _section(data, "k3s")
    if net is None:
        return []
    out = []
    for key, default in (("cluster_cidr", "10.42.0.0/16"), ("service_cidr", "10.43.0.0/16")):
        try:
            inner = ipaddress.IPv4Network(k3s.get(key, default), strict=True)
        except (TypeError, ValueError):
            continue
        if inner.overlaps(net):
            msg = f"{inner} overlaps network.cidr {net}"
            out.append(Problem("k3s." + key, msg, "choose a private range the LAN does not use"))
    return out


# Where an NFS mount would hide or replace what the system needs: these paths and every directory above them
# (a mount on /var/lib hides /var/lib/longhorn); K3s's and the kubelet's state is there too.
_SYSTEM_PATHS = ("/", "/nix", "/boot", "/etc", "/var", "/usr", "/home", "/root", "/tmp", "/run", "/proc", "/sys",
                 "/dev", "/var/lib/longhorn", "/var/lib/rancher", "/var/lib/kubelet")  # fmt: skip
# ... and the trees nothing may be mounted inside (the store, boot files, configuration, kernel and runtime state,
# and /tmp, which is emptied at boot and cleaned by age).
_SYSTEM_TREES = ("/nix", "/boot", "/etc", "/proc", "/sys", "/dev", "/run", "/usr", "/tmp", "/var/lib/longhorn",
                 "/var/lib/rancher", "/var/lib/kubelet")  # fmt: skip
# Options the hosts' mount sets itself so a NAS that is down never holds up boot (systemd automount on first
# access, _netdev, timeouts); auto/defaults would mount it at boot and x-systemd.* would change that.
_NFS_MANAGED = ("auto", "defaults", "noauto", "nofail", "_netdev")


def _mount_point_problem(path: str, value) -> list:
    if not isinstance(value, str) or not re.fullmatch(MOUNT_POINT_PATTERN, value):
        return []  # the schema walk reports it
    fix = f"mount the export on a directory of its own, e.g. {NFS_MOUNT_POINT}"
    for system in _SYSTEM_PATHS:
        if value == system or system.startswith(value + "/"):
            return [Problem(path, f"{value} would cover {system}, which the system needs", fix)]
    for tree in _SYSTEM_TREES:
        if value.startswith(tree + "/"):
            return [Problem(path, f"{value} is inside {tree}, which belongs to the system", fix)]
    return []


def _option_problems(path: str, options) -> list:
    if not isinstance(options, list):
        return []
    out = []
    for index, option in enumerate(options):
        if not isinstance(option, str):
            continue
        name = option.split("=", 1)[0]
        if name in _NFS_MANAGED or name.startswith("x-systemd."):
            msg = f"{option} is set by the collection (systemd automount, so a NAS that is down never blocks boot)"
            out.append(Problem(f"{path}[{index}]", msg, f"remove {option}"))
    return out


def check_nfs(data: dict) -> list:
    nfs = data.get("nfs")
    overrides = [(i, h["nfs"]) for i, h in _hosts(data) if "nfs" in h]
    if not isinstance(nfs, dict):
        # false (no mount) says nothing wrong without a section; a mapping or true asks for one that is not there
        overrides = [(i, value) for i, value in overrides if value is not False]
        fix = "add the nfs section (server, export) or remove the host's nfs"
        return [Problem(f"hosts[{i}].nfs", "there is no nfs section to mount", fix) for i, _value in overrides]
    out = []
    export = nfs.get("export")
    if isinstance(export, str) and any(part in (".", "..") for part in export.split("/")):
        out.append(Problem("nfs.export", f"{export} has a '.' or '..' component", "write the export's real path"))
    if nfs.get("storage_class") == "longhorn":
        out.append(Problem("nfs.storage_class", "longhorn is Longhorn's own class", "choose another name, e.g. nfs"))
    out.extend(_mount_point_problem("nfs.mount_point", nfs.get("mount_point", NFS_MOUNT_POINT)))
    out.extend(_option_problems("nfs.options", nfs.get("options")))
    for index, override in overrides:
        if isinstance(override, dict):
            out.extend(_mount_point_problem(f"hosts[{index}].nfs.mount_point", override.get("mount_point")))
            out.extend(_option_problems(f"hosts[{index}].nfs.options", override.get("options")))
    return out


# Namespaces the platform owns (its charts', Flux's, Kubernetes' own): an app there would share, and on removal
# prune, what the platform depends on
PLATFORM_NAMESPACES = (
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "flux-system",
    "metallb-system",
    "cert-manager",
    "traefik",
    "longhorn-system",
    "monitoring",
)


def check_apps(data: dict) -> list:
    out = []
    names = {}
    for index, app in _entries(data, "apps"):
        name = app.get("name")
        if isinstance(name, str):
            if name in names:
                msg = f"{name} is already used by apps[{names[name]}].name"
                out.append(Problem(f"apps[{index}].name", msg, "give every app its own name"))
            names.setdefault(name, index)
        namespace = app.get("namespace", name)
        if isinstance(namespace, str) and namespace in PLATFORM_NAMESPACES:
            where = f"apps[{index}].namespace" if "namespace" in app else f"apps[{index}].name"
            msg = f"{namespace} is a namespace of the platform (the app would share it, and pruning it would hurt)"
            out.append(Problem(where, msg, "set namespace: to a namespace of the app's own, e.g. apps-" + namespace))
    return out + _check_app_hosts(data)


def _check_app_hosts(data: dict) -> list:
    domain = _section(data, "network").get("domain")
    if not isinstance(domain, str):
        return []
    # the platform's own ingresses (<dashboard>.<domain>), and with monitoring Grafana's
    taken = {f"{name}.{domain}": f"the {name} dashboard" for name in DASHBOARDS}
    monitoring = data.get("monitoring")
    if isinstance(monitoring, dict):
        # Grafana's Ingress (site/endpoints.grafana_host): present, even empty, the section turns it on
        grafana = monitoring.get("grafana_host")
        taken[grafana if isinstance(grafana, str) else f"grafana.{domain}"] = "Grafana (monitoring.grafana_host)"
    out = []
    for index, app in _entries(data, "apps"):
        host = (app.get("ingress") or {}).get("host") if isinstance(app.get("ingress"), dict) else None
        if not isinstance(host, str):
            continue
        full, path = app_host(host, domain), f"apps[{index}].ingress.host"
        if full in taken:
            out.append(Problem(path, f"{full} is already served by {taken[full]}", "choose another host name"))
            continue
        taken[full] = f"apps[{index}]"
        if not (full == domain or full.endswith("." + domain)):
            label = full.split(".")[0]
            msg = f"{full} is outside the site's domain {domain} (network.domain)"
            fix = f"write a bare label ({label} means {label}.{domain}), unless that other domain and its DNS are meant"
            out.append(Problem(path, msg, fix, "warning"))
    return out


def site_files(data: dict) -> list:
    """(field, path) of every file the site names relative to its own directory: runs read and write these there."""
    refs = [("proxmox.token_secret_sops.file", _section(_section(data, "proxmox"), "token_secret_sops").get("file")),
            ("k3s.token_sops.file", _section(_section(data, "k3s"), "token_sops").get("file"))]  # fmt: skip
    refs += [(f"apps[{index}].values_sops", app.get("values_sops")) for index, app in _entries(data, "apps")]
    return [(field, path) for field, path in refs if isinstance(path, str) and path]


def _outside(base_dir: str, relative: str) -> str | None:
    """Where relative really leads (links followed) when that is outside base_dir, else None."""
    base = os.path.realpath(base_dir)
    real = os.path.realpath(os.path.join(base, relative))
    return None if os.path.commonpath([base, real]) == base else real


def file_problems(data: dict, base_dir: str) -> list:
    """Files the site names, relative to the site file's directory: each must stay inside it (runs write there),
    and apps' values_sops must exist."""
    out = []
    for field, relative in site_files(data):
        real = _outside(base_dir, relative) if check_relative_path(relative) is None else None
        if real is not None:
            # only a link can lead out now: an absolute path or a '..' that climbs out is the schema walk's to report
            msg = f"{relative} leads to {real} through a link, outside the site's directory {base_dir}"
            fix = "keep the file inside the site's directory, not behind a link that leads out"
            out.append(Problem(field, msg, fix))
        elif field.endswith(".values_sops") and not os.path.isfile(os.path.join(base_dir, relative)):
            msg = f"{relative} does not exist next to the site file (looked in {base_dir})"
            fix = f"create it with sops ({relative} relative to the site file) or fix the path"
            out.append(Problem(field, msg, fix))
    return out


def _cluster_hosts(data: dict) -> dict:
    """Names the cluster's ingresses take (each answered with Traefik's address), or none while the sections they
    come from are malformed (the schema walk reports those)."""
    try:
        return {name: "a cluster ingress (Traefik)" for name in ingress_hosts(data)}
    except (KeyError, TypeError, AttributeError, IndexError):
        return {}


def _named(items, domain: str):
    """(index, full name, item) of the well-formed items of a list of mappings with a name."""
    for index, item in enumerate(items if isinstance(items, list) else []):
        # a malformed name is the schema walk's to report
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and re.fullmatch(LOCAL_NAME_PATTERN, name):
            yield index, app_host(item["name"], domain), item


def check_services(data: dict) -> list:
    domain = _section(data, "network").get("domain")
    if not isinstance(domain, str):
        return []
    taken = {f"{h['name']}.{domain}": f"hosts[{i}] itself" for i, h in _hosts(data) if isinstance(h.get("name"), str)}
    taken.update(_cluster_hosts(data))
    out = _check_proxies(data, domain, taken) + _check_records(data, domain, taken)
    return out + _check_upstreams(data) + _check_exporters(data)


def _check_proxies(data: dict, domain: str, taken: dict) -> list:
    out = []
    for i, host in _hosts(data):
        for j, full, _proxy in _named((service(host, "caddy") or {}).get("proxies"), domain):
            path = f"hosts[{i}].services.caddy.proxies[{j}].name"
            if not (full == domain or full.endswith("." + domain)):
                label = full.split(".")[0]
                msg = f"{full} is outside the site's domain {domain} (network.domain): its DNS and CA are the site's"
                out.append(Problem(path, msg, f"write a bare label ({label} means {label}.{domain})"))
            elif full in taken:
                out.append(Problem(path, f"{full} is already {taken[full]}", "choose another name"))
            else:
                taken[full] = f"proxied by hosts[{i}]"
    return out


def _check_records(data: dict, domain: str, taken: dict) -> list:
    out, records = [], {}
    for i, host in _hosts(data):
        for j, full, record in _named((service(host, "dns") or {}).get("records"), domain):
            path = f"hosts[{i}].services.dns.records[{j}].name"
            if full in taken:
                msg = f"{full} is already answered: it is {taken[full]}"
                out.append(Problem(path, msg, "remove the record, or name something else"))
            elif full in records and records[full][1] != record.get("address"):
                msg = f"{full} already has the address {records[full][1]} ({records[full][0]})"
                out.append(Problem(path, msg, "give a name one address on every DNS host"))
            else:
                records.setdefault(full, (path, record.get("address")))
    return out


def _check_upstreams(data: dict) -> list:
    """A DNS host forwarding to a DNS host of the site would loop."""
    servers = {str(_address(h.get("ip"))): i for i, h in _hosts(data) if service(h, "dns") is not None}
    out = []
    for i, host in _hosts(data):
        upstreams = (service(host, "dns") or {}).get("upstreams")
        for j, upstream in enumerate(upstreams if isinstance(upstreams, list) else []):
            if isinstance(upstream, str) and upstream in servers:
                msg = f"{upstream} is the DNS server of hosts[{servers[upstream]}]: queries would go round in a loop"
                fix = "forward to DNS servers outside the site, e.g. 1.1.1.1 or the router"
                out.append(Problem(f"hosts[{i}].services.dns.upstreams[{j}]", msg, fix))
    return out


def _check_exporters(data: dict) -> list:
    out = []
    for i, host in _hosts(data):
        exporter = service(host, "node_exporter")
        port = (exporter or {}).get("port", NODE_EXPORTER_PORT)
        if exporter is None or not isinstance(port, int) or not 1024 <= port <= 65535:
            continue  # off, or the schema walk reports the port
        path = f"hosts[{i}].services.node_exporter" + (".port" if "port" in exporter else "")
        if port in SERVICE_RESERVED_PORTS:
            msg = f"port {port} is taken on the host (DNS 53, Caddy 80/443, K3s 2379, 2380, 6443, 10250)"
            out.append(Problem(path, msg, "choose another port, e.g. 9100"))
        elif port == NODE_EXPORTER_PORT and data.get("monitoring") is not None:
            msg = "port 9100 is the cluster's own node exporter's (kube-prometheus-stack, on every node's network)"
            out.append(Problem(path, msg, "give the host's exporter another port, e.g. port: 9101"))
    return out


def check_backup(data: dict) -> list:
    keys = _section(_section(data, "backup"), "keys")
    if not keys or ("recipient" in keys) != ("passphrase_env" in keys):
        return []
    msg = "has both recipient and passphrase_env" if "recipient" in keys else "has neither recipient nor passphrase_env"
    return [Problem("backup.keys", msg, "give one of them: recipient (a recovery key kept offline) or passphrase_env")]


CHECKS = (
    check_duplicates,
    check_host_names,
    check_addresses,
    check_metallb,
    check_roles,
    check_kinds,
    check_proxmox,
    check_k3s_networks,
    check_nfs,
    check_apps,
    check_services,
    check_backup,
)


def semantic_problems(data: dict) -> list:
    """Every cross-field problem of a parsed site, in a stable order."""
    return [problem for check in CHECKS for problem in check(data)]

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The two filters' documentation is in nix_hosts.yml and nix_site.yml beside this file: one file holds both, and
# ansible-doc reads each filter's own from <filter>.yml.

from __future__ import annotations

import posixpath

from ansible.errors import AnsibleFilterError

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.site_ca import FILE_NAME as SITE_CA_FILE
from ansible_collections.nerv.homelab.plugins.module_utils.site.nfs import nfs_mount
from ansible_collections.nerv.homelab.plugins.module_utils.site.services import host_services


def nix_hosts(site, vm_disk="/dev/sda", token_dir="secrets"):
    try:
        network, k3s = site["network"], site["k3s"]
        hosts = [_host(site, h, vm_disk) for h in site["hosts"]]
        token = k3s["token_sops"]
    except (KeyError, TypeError) as exc:
        message = f"nix_hosts: the input is not a site model (missing {exc}); run nerv.homelab.site first"
        raise AnsibleFilterError(message) from None
    return {
        "site": site["site"]["name"],
        "domain": network["domain"],
        "network": {
            "cidr": network["cidr"],
            "prefix": int(network["cidr"].split("/")[1]),
            "gateway": network["gateway"],
            "dns": list(network["dns"]),
        },
        "admin_ssh_keys": list(site["admin_ssh_keys"]),
        "k3s": {
            "version": k3s.get("version") or None,
            "cluster_cidr": k3s.get("cluster_cidr", "10.42.0.0/16"),
            "service_cidr": k3s.get("service_cidr", "10.43.0.0/16"),
            "disable": list(k3s.get("disable", ["servicelb", "traefik"])),
            "extra_args": list(k3s.get("extra_args", [])),
            "token_sops_file": posixpath.join(token_dir, posixpath.basename(token["file"])),
            "token_sops_key": token["key"],
        },
        "site_ca_sops_file": posixpath.join(token_dir, SITE_CA_FILE),
        "hosts": hosts,
    }


def nix_site(site, disk="/dev/sda"):
    try:
        keys = list(site["admin_ssh_keys"])
    except (KeyError, TypeError) as exc:
        message = f"nix_site: the input is not a site model (missing {exc}); run nerv.homelab.site first"
        raise AnsibleFilterError(message) from None
    name = (site.get("template") or {}).get("name", "nixos-base")
    return {"hostname": name, "disk": disk, "admin_ssh_keys": keys, "nfs": nfs_mount(site)}


def _host(site, host, vm_disk):
    baremetal = host["kind"] == "baremetal"
    return {
        "name": host["name"],
        "role": host["role"],
        "kind": host["kind"],
        "address": host["ip"].split("/")[0],
        "mac": (host.get("mac") or "").lower() or None,
        "disk": host["disk_id"] if baremetal else vm_disk,
        "nfs": nfs_mount(site, host),
        "services": host_services(site, host),
    }


class FilterModule:
    def filters(self):
        return {"nix_hosts": nix_hosts, "nix_site": nix_site}

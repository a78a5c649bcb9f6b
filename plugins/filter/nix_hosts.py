# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: nix_hosts
short_description: The site model as the flake's nix/hosts.json
version_added: 0.1.0
author:
  - nerv.homelab contributors (@nerv-homelab)
description:
  - Turns a site model (C(site_model), as the role nerv.homelab.site loads it) into the data the flake in C(nix/)
    reads with C(builtins.fromJSON) to make C(nixosConfigurations.<host>) for every host - so Python never needs
    Nix to read the site, and Nix never needs YAML.
  - Bare-metal hosts install onto their C(disk_id); VMs keep the template's disk (O(vm_disk)).
  - The K3s token file is named relative to the flake directory (O(token_dir)), where it is copied; so is the site
    CA (C(site_ca_sops_file), C(site-ca.sops.yaml)), which the hosts that run Caddy decrypt.
  - Each host's C(nfs) is the NFS mount it gets (the site's C(nfs) section with the host's own C(hosts[].nfs)
    applied), or null when the site has none or the host's C(nfs) is false.
  - Each host's C(services) holds its home services (C(hosts[].services)) as C(dns), C(caddy) and C(node_exporter),
    each null when the host does not run it; a DNS host gets every local record of the site (the hosts, the
    cluster's ingress hosts at Traefik's address, the Caddy proxy names), see docs/home-services.md.
options:
  _input:
    description: The site model.
    type: dict
    required: true
  vm_disk:
    description: The disk of a VM cloned from the template (Proxmox C(scsi0)).
    type: str
    default: /dev/sda
  token_dir:
    description: Directory, relative to the flake, the site's encrypted K3s token file and site CA are copied to.
    type: str
    default: secrets
"""

EXAMPLES = r"""
- name: Write the site's hosts for the flake
  ansible.builtin.copy:
    content: "{{ site_model | nerv.homelab.nix_hosts | to_nice_json }}"
    dest: "{{ flake_dir }}/hosts.json"
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The hosts.json data (see docs/nix.md).
  type: dict
"""

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
        return {"nix_hosts": nix_hosts}

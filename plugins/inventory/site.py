# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: site
short_description: The hosts of a nerv.homelab site, with bare-metal machines found on the LAN by MAC
version_added: 0.1.0
author:
  - nerv.homelab contributors (@nerv-homelab)
description:
  - Reads a site file (see C(docs/site.md)) and yields every declared host with its role, kind and sizes as
    C(nerv_*) variables, in the groups C(control_plane), C(workers), C(vms), C(baremetal) and C(k3s_first_server)
    (the first control-plane host of the file).
  - C(ansible_host) is the host's static address; for bare metal, with O(discover) on, the address its MAC
    answers at on the LAN (an installer booted with DHCP, say), and C(nerv_discovered) says whether it was found.
  - Discovery connects to TCP O(port) on every address of the site's CIDR at once, with one deadline of O(timeout)
    seconds (a /24 takes about that long), then reads the controller's neighbour table (C(/proc/net/arp)) and
    matches MACs. It needs no root and runs no command; the controller must be on the site's LAN.
  - A machine answering SSH whose MAC no host declares joins the group C(unclaimed) as C(unclaimed_<mac>), with
    C(nerv_mac) and C(ansible_host) - typically a freshly booted installer waiting to be claimed.
  - Two declared hosts with the same MAC, or a declared MAC answering at two addresses, is an error.
  - With O(cache) on, a cached scan is reused (no scan at all).
  - The configuration file must end in C(site.yml) or C(site.yaml) (for example C(hosts.site.yml)) and name this
    plugin in its C(plugin) key; the site file itself is not a configuration file of this plugin.
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin, so that Ansible knows the file is its configuration.
    type: str
    required: true
    choices: [nerv.homelab.site]
  site_file:
    description: The site file; a relative path is relative to the directory of this configuration file.
    type: str
    default: site.yml
  discover:
    description: Look for the bare-metal hosts on the LAN; off, every host gets its static address.
    type: bool
    default: true
    env:
      - name: NERV_SITE_DISCOVER
  discovery_cidr:
    description: The network to scan instead of the site's C(network.cidr) (IPv4, at most a /16).
    type: str
  port:
    description: The TCP port probed (SSH).
    type: int
    default: 22
  timeout:
    description: Seconds the whole scan waits for connections to open.
    type: float
    default: 1.0
"""

EXAMPLES = r"""
# inventory/home/hosts.site.yml
plugin: nerv.homelab.site
site_file: site.yml

# Without scanning the LAN (static addresses only), and cached for an hour:
# plugin: nerv.homelab.site
# discover: false
# cache: true
# cache_plugin: ansible.builtin.jsonfile
# cache_connection: ~/.cache/nerv-homelab/inventory
# cache_timeout: 3600
"""

import os

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.nerv.homelab.plugins.module_utils.site.model import SiteError, load_site
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery import site as logic
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery.populate import populate


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "nerv.homelab.site"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("site.yml", "site.yaml")) and self._names_us(path)

    @staticmethod
    def _names_us(path):
        # the site file itself also ends in site.yml: only a file saying plugin: nerv.homelab.site is ours
        try:
            with open(path, encoding="utf-8") as handle:
                return any(line.split("#")[0].strip() == "plugin: nerv.homelab.site" for line in handle)
        except OSError:
            return False

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        site = self._site(path)
        probe = self._probe(path, site, cache) if self.get_option("discover") else None
        try:
            model = logic.build(site, probe)
        except logic.DiscoveryError as exc:
            raise AnsibleParserError(f"nerv.homelab.site: {exc}") from None
        # host names are the site file's own (checked DNS labels) or made from a MAC: no need to mark them
        populate(self, model, wrap_names=False)

    def _site(self, path):
        site_file = os.path.join(
            os.path.dirname(os.path.abspath(path)), os.path.expanduser(self.get_option("site_file"))
        )
        try:
            return load_site(site_file)
        except SiteError as exc:
            raise AnsibleParserError(f"nerv.homelab.site: site_file {site_file}: {exc}") from None

    def _probe(self, path, site, cache):
        key = self.get_cache_key(path)
        if cache and self.get_option("cache"):
            try:
                cached = self._cache[key]
                return logic.Probe(set(cached["ssh"]), dict(cached["neighbours"]))
            except KeyError:
                pass
        if not any(h["kind"] == "baremetal" for h in site["hosts"]) and not self.get_option("discovery_cidr"):
            return logic.Probe()  # nothing to find by MAC: no scan (unclaimed machines matter for bare metal)
        cidr = self.get_option("discovery_cidr") or site["network"]["cidr"]
        skip = {site["network"].get("gateway")}
        try:
            probe = logic.discover(cidr, skip, self.get_option("port"), self.get_option("timeout"))
        except (logic.DiscoveryError, ValueError) as exc:
            raise AnsibleParserError(f"nerv.homelab.site: {exc}") from None
        if self.get_option("cache"):
            self._cache[key] = {"ssh": sorted(probe.ssh), "neighbours": probe.neighbours}
        return probe

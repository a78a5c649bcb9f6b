# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: proxmox
short_description: Proxmox VE guests as hosts, from two API calls plus one per running VM
version_added: 0.1.0
author:
  - nerv.homelab contributors (@nerv-homelab)
description:
  - Reads every guest (QEMU VM and LXC container) of a Proxmox VE cluster from one C(GET /cluster/resources?type=vm)
    and the nodes' state from one C(GET /cluster/status). Per guest it asks only what that listing lacks, concurrently
    with O(workers) threads - the guest agent's interfaces of running QEMU VMs, and the config when O(want_config)
    is set.
  - Sets C(ansible_host) itself - an agent address inside O(cidr) (or the site's C(network.cidr)) first, then the
    static address of C(ipconfig0), then none.
  - Guests of an offline node are skipped with a warning; a VM whose agent is not configured, not running or not
    answering gets no address, and no error.
  - Connection settings come from the plugin options (or their environment variables), else from O(site_file).
  - With O(cache) on and a fresh cache entry the plugin makes no request at all, login included.
  - The configuration file must end in C(proxmox.yml) or C(proxmox.yaml).
  - Every string read from Proxmox is marked unsafe, so guest names, tags and descriptions are never templated.
extends_documentation_fragment:
  - nerv.homelab.proxmox_auth.plugin
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin, so that Ansible knows the file is its configuration.
    type: str
    required: true
    choices: [nerv.homelab.proxmox]
  site_file:
    description:
      - A nerv.homelab site file (see C(docs/site.md)) to read the connection settings (C(proxmox.url),
        C(proxmox.token_id), C(proxmox.validate_certs), C(proxmox.ca_path)) and O(cidr) (C(network.cidr)) from.
        The token secret comes from the environment variable the site names in C(proxmox.token_secret_env), else
        from the sops file C(proxmox.token_secret_sops) names (decrypted with the admins' age identity, as sops
        finds it).
      - A relative path is relative to the directory of this configuration file.
      - A setting given as a plugin option or through its environment variable wins over the site file's.
    type: str
  cidr:
    description:
      - Networks (CIDR) C(ansible_host) is chosen in, among the guest agent's addresses.
      - Defaults to the site's C(network.cidr) with O(site_file); without either, any agent address qualifies.
      - Among the addresses that qualify, the guest's own interface comes before a container or VPN bridge
        (C(cni0), C(docker0), C(flannel.1), C(wg0) ...), then IPv4 before IPv6.
    type: list
    elements: str
  want_config:
    description:
      - Also read each guest's config (one request per guest) - the C(ipconfig0) (LXC C(net0)) static address
        becomes the C(ansible_host) fallback, the agent is asked only where the config enables it, and the config is
        exposed as C(proxmox_config).
    type: bool
    default: false
  want_templates:
    description: Inventory templates too (they are skipped by default).
    type: bool
    default: false
  workers:
    description:
      - How many per-guest requests run at once, each on its own kept-alive connection.
      - Proxmox answers agent requests from the node's pveproxy workers; lower it for a small or busy cluster.
    type: int
    default: 16
  group_prefix:
    description: Prefix of the node, status, pool, tag and type groups.
    type: str
    default: proxmox_
  role_groups:
    description:
      - Tag -> group. A guest carrying the tag joins the group (not prefixed). The default maps the K3s roles onto
        the groups of nerv.homelab's site inventory.
      - Give C({}) to make no role groups.
    type: dict
    default:
      k8s-control-plane: control_plane
      control-plane: control_plane
      k8s-worker: workers
      worker: workers
notes:
  - Without O(want_config) the listing does not say which VMs have the guest agent enabled, so every running QEMU VM
    costs one agent request; one without an agent answers C(500 No QEMU guest agent configured) and gets no address.
"""

EXAMPLES = r"""
# inventory/home/proxmox.yml, the whole file: everything from the site file beside it, the token secret from
# the variable the site names (proxmox.token_secret_env, default PROXMOX_TOKEN_SECRET):
#
#   plugin: nerv.homelab.proxmox
#   site_file: site.yml
#
# Without a site file: the connection from options, or from PROXMOX_URL, PROXMOX_TOKEN_ID and
# PROXMOX_TOKEN_SECRET; configs read too, a cache, and groups of one's own.
plugin: nerv.homelab.proxmox
url: https://pve1.lab.example:8006
token_id: automation@pve!inventory
ca_path: /etc/ssl/certs/pve-root-ca.pem
cidr: [192.168.10.0/24]
want_config: true
workers: 16
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/nerv-homelab-inventory
cache_timeout: 300
keyed_groups:
  - key: proxmox_node
    prefix: node
compose:
  ansible_user: "'root'"
"""

import os

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import ProxmoxClient
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.guest import networks
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import (
    ProxmoxError,
    proxmox_argument_spec,
    settings_from_params,
    settings_from_site,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import (
    SopsError,
    load_identities,
    require_libraries,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files
from ansible_collections.nerv.homelab.plugins.module_utils.site.model import SiteError, load_site
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery import proxmox as logic
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery.populate import populate


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "nerv.homelab.proxmox"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("proxmox.yml", "proxmox.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        self._source_dir = os.path.dirname(os.path.abspath(path))
        site = self._site()
        cidr = self._cidr(site)
        want_config, want_templates = self.get_option("want_config"), self.get_option("want_templates")
        raw = self._cached(path, cache, want_config, want_templates)
        if raw is None:
            raw = self._fetch(site, want_config, want_templates)
            if self.get_option("cache"):
                self._cache[self.get_cache_key(path)] = raw
        self._populate(logic.build(raw, cidr, self.get_option("group_prefix"), self.get_option("role_groups")))

    def _fetch(self, site, want_config, want_templates):
        """The raw listing from Proxmox: two requests, then the per-guest ones on `workers` threads."""
        workers = self.get_option("workers")
        if workers < 1:
            raise AnsibleParserError(f"nerv.homelab.proxmox: workers must be 1 or more, not {workers}")
        try:
            client = ProxmoxClient(self._settings(site), pool_size=workers)
            return logic.collect(client.get, client.map, want_config, want_templates, api_errors=(ProxmoxError,))
        except ProxmoxError as exc:
            raise AnsibleError(f"nerv.homelab.proxmox: {exc}") from None

    def _settings(self, site):
        """Connection settings: options (and their environment variables) over the site file's."""
        options = {key: self.get_option(key) for key in proxmox_argument_spec()}
        if site is not None:
            return settings_from_site(site, read_secret=self._read_secret, **options)
        return settings_from_params(options)

    def _read_secret(self, file, key):
        """The token secret from the site's sops file (proxmox.token_secret_sops), with the admins' identity."""
        path = os.path.join(self._site_dir, file)
        try:
            require_libraries()
            return files.read_value(path, key, load_identities())
        except SopsError as exc:
            raise AnsibleParserError(
                f"nerv.homelab.proxmox: the token secret (proxmox.token_secret_sops): {exc}"
            ) from None

    def _cached(self, path, cache, want_config, want_templates):
        if not (cache and self.get_option("cache")):
            return None
        try:
            raw = self._cache[self.get_cache_key(path)]
        except KeyError:
            return None
        return raw if logic.cache_usable(raw, want_config, want_templates) else None

    def _site(self):
        """The validated site of site_file (relative to this source's directory), or None."""
        site_file = self.get_option("site_file")
        if not site_file:
            return None
        path = os.path.join(self._source_dir, os.path.expanduser(site_file))
        self._site_dir = os.path.dirname(path)
        try:
            return load_site(path)
        except SiteError as exc:
            raise AnsibleParserError(f"nerv.homelab.proxmox: site_file {path}: {exc}") from None

    def _cidr(self, site):
        cidr = self.get_option("cidr") or (site and [site["network"]["cidr"]]) or None
        try:
            networks(cidr)
        except ProxmoxError as exc:
            raise AnsibleParserError(f"nerv.homelab.proxmox: {exc}") from None
        return cidr

    def _populate(self, model):
        # guest names come from Proxmox: marked unsafe like every other string read from it
        populate(self, model, wrap_names=True)

# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model the nerv.homelab inventories build (hosts, variables, groups, warnings) and what they do with it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible.utils.unsafe_proxy import wrap_var


@dataclass
class InventoryModel:
    """What the plugin adds to the inventory: host -> vars, group -> hosts, and what to warn about."""

    hosts: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def add(self, group: str, host: str) -> None:
        members = self.groups.setdefault(group, [])
        if host not in members:
            members.append(host)


def populate(plugin, model, wrap_names: bool) -> None:
    """Add model.hosts (vars marked unsafe: they come from the network) and model.groups to plugin.inventory,
    then apply the plugin's compose, groups and keyed_groups. wrap_names marks host names unsafe too."""
    for warning in model.warnings:
        plugin.display.warning(f"{plugin.NAME}: {warning}")
    strict = plugin.get_option("strict")
    member_of = {}
    for group, hosts in model.groups.items():
        for host in hosts:
            member_of.setdefault(host, []).append(group)
    for name, hostvars in model.hosts.items():
        host = wrap_var(name) if wrap_names else name
        safe_vars = wrap_var(hostvars)
        plugin.inventory.add_host(host)
        for key, value in safe_vars.items():
            plugin.inventory.set_variable(host, key, value)
        # Group names are the plugins' own (letters, digits, '_', or configured role groups): nothing in them can
        # template, and wrapping several names per host costs as much as the host.
        for group in member_of.get(name, []):
            plugin.inventory.add_child(plugin.inventory.add_group(group), host)
        plugin._set_composite_vars(plugin.get_option("compose"), safe_vars, host, strict=strict)
        plugin._add_host_to_composed_groups(plugin.get_option("groups"), safe_vars, host, strict=strict)
        plugin._add_host_to_keyed_groups(plugin.get_option("keyed_groups"), safe_vars, host, strict=strict)

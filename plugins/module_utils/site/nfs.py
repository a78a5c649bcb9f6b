# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NFS mount a host of a site gets: the site's nfs section with the host's own hosts[].nfs applied."""

from __future__ import annotations

from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import NFS_MOUNT_POINT, NFS_OPTIONS


def nfs_mount(site: dict, host: dict | None = None) -> dict | None:
    """{server, export, mount_point, options} for host (the site-wide mount when host is None, as the template
    gets it), or None when the site has no nfs section or the host opts out with nfs: false."""
    nfs = site.get("nfs")
    override = True if host is None else host.get("nfs", True)
    if not nfs or override is False:
        return None
    own = override if isinstance(override, dict) else {}
    return {
        "server": nfs["server"],
        "export": nfs["export"],
        "mount_point": own.get("mount_point") or nfs.get("mount_point") or NFS_MOUNT_POINT,
        "options": list(own.get("options") or nfs.get("options") or NFS_OPTIONS),
    }
